"""The Lambda handlers with real events, a real SQS (moto), Postgres and the fake Messages API.

The API's turn goes through the queue to the writeback handler as in AWS: the API records the turn and sends
its ids to SQS; the test receives them as Lambda's event source mapping would and hands the batch over.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from handlers import writeback
from memory.config import get_settings
from memory.errors import ConfigurationError
from memory.models import Scope
from memory.queue import open_writeback_queue
from memory.stores import redact_url
from memory.stores.postgres import SCHEMA_REVISION
from memory.turns import TurnStatus
from memory.writeback import process, record_turn
from tests.aws_support import LocalAWS, aws, aws_server, create_secret, queue_arn, sqs_event
from tests.messages_api import MessagesAPI, error_reply, text_reply, tool_use_reply
from tests.postgres_auth import PasswordServer
from tests.postgres_support import PostgresDatabase

__all__ = ["aws", "aws_server"]  # fixtures used by name
ROOT = Path(__file__).resolve().parent.parent
API_KEY = "am_test_key"


def http_event(method: str, path: str, body: Any = None, *, key: str | None = API_KEY) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event, as Lambda delivers it."""
    headers = {"host": "api.example.com", "content-type": "application/json", "user-agent": "pytest"}
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "api.example.com",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
            "requestId": uuid.uuid4().hex,
            "routeKey": "$default",
            "stage": "$default",
            "time": "25/Nov/2026:12:00:00 +0000",
            "timeEpoch": 1_795_600_000_000,
        },
        "body": None if body is None else json.dumps(body),
        "isBase64Encoded": False,
    }


def call(handler: Any, event: dict[str, Any]) -> tuple[int, Any]:
    response = handler(event, None)
    return response["statusCode"], json.loads(response["body"]) if response.get("body") else None


@pytest.fixture
def lambda_env(
    postgres: PostgresDatabase, messages_api: MessagesAPI, aws: LocalAWS, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """The environment serverless.yml gives the functions, pointed at the local services."""
    monkeypatch.setenv("MEMORY_STORE_URL", postgres.app_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", messages_api.api_key)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", messages_api.url)
    monkeypatch.setenv("MEMORY_CLAUDE_MAX_RETRIES", "0")
    monkeypatch.setenv("MEMORY_EXTRACTION", "claude")
    monkeypatch.setenv("MEMORY_API_KEYS", f"acme:{hashlib.sha256(API_KEY.encode()).hexdigest()}")
    writeback.services.cache_clear()
    yield
    if writeback.services.cache_info().currsize:
        writeback.services()[0].close()
    writeback.services.cache_clear()
    sys.modules.pop("handlers.api", None)


def api_handler() -> Any:
    """handlers.api imported afresh: it builds its app from the environment at import, as in a new container."""
    sys.modules.pop("handlers.api", None)
    return importlib.import_module("handlers.api").handler


def extraction_model(*, broken: bool) -> Any:
    """The fake extraction model: one memory per turn; with ``broken``, an API error for a turn that says so."""

    def respond(body: dict[str, Any]) -> Any:
        text = json.dumps(body["messages"])
        if broken and "broken" in text:
            return error_reply(400, "invalid_request_error", "scripted failure")
        # The request shows the user's similar memories too, so the later turns' words are looked for first.
        memories = {"like trains": "Likes trains", "window": "Prefers window seats"}
        content = next((memory for words, memory in memories.items() if words in text), "Is vegetarian")
        return tool_use_reply("save_memories", {"operations": [{"action": "add", "content": content}]})

    return respond


def turn_of(message: dict[str, Any]) -> str:
    try:
        return json.loads(message["Body"])["turn_id"]
    except ValueError:
        return "malformed"


def failed(answer: dict[str, list[dict[str, str]]]) -> list[str]:
    return sorted(item["itemIdentifier"] for item in answer["batchItemFailures"])


def test_a_batch_reports_exactly_the_failed_records_and_a_replay_applies_nothing_twice(
    lambda_env: None, aws: LocalAWS, messages_api: MessagesAPI
) -> None:
    memory, extractor = writeback.services()
    messages_api.default = extraction_model(broken=True)
    user = f"u-{uuid.uuid4().hex[:8]}"
    scope = Scope(user)
    record_turn(memory, user_id=user, turn_id="good", message="I always book a window seat")
    record_turn(memory, user_id=user, turn_id="done", message="I am vegetarian")
    assert process(memory, extractor, memory.store.get_turn(scope, "done")).status == "done"
    record_turn(memory, user_id=user, turn_id="failing", message="this turn is broken; I like trains")
    url = aws.create_queue("writeback")
    queue = open_writeback_queue(get_settings(writeback_queue_url=url))
    assert queue is not None
    for turn_id in ("good", "done", "failing"):
        queue.enqueue(scope, turn_id)
    aws.client("sqs").send_message(QueueUrl=url, MessageBody="{not a write-back")
    messages = aws.receive(url, 4)
    ids = {turn_of(message): message["MessageId"] for message in messages}
    event = sqs_event(messages, queue_arn(aws, url))
    calls = len(messages_api.requests)

    answer = writeback.handler(event, None)

    assert failed(answer) == sorted([ids["failing"], ids["malformed"]])
    assert len(messages_api.requests) == calls + 2  # "done" was not extracted again
    assert memory.store.get_turn(scope, "good").status is TurnStatus.DONE
    failing = memory.store.get_turn(scope, "failing")
    assert failing.status is TurnStatus.FAILED and failing.attempts == 1 and "scripted failure" in failing.error
    assert sorted(entry.content for entry in memory.list(user)) == ["Is vegetarian", "Prefers window seats"]

    # SQS delivers the failed records again (here: the whole batch, as after a crash); Claude is back.
    messages_api.default = extraction_model(broken=False)
    answer = writeback.handler(event, None)

    assert failed(answer) == [ids["malformed"]]
    assert len(messages_api.requests) == calls + 3  # only the failed turn was extracted again
    assert sorted(entry.content for entry in memory.list(user)) == [
        "Is vegetarian",
        "Likes trains",
        "Prefers window seats",
    ]
    assert memory.store.get_turn(scope, "failing").status is TurnStatus.DONE
    writeback.handler(event, None)
    assert len(memory.list(user)) == 3 and len(messages_api.requests) == calls + 3


def test_a_turn_goes_from_the_api_through_sqs_to_the_writeback_handler(
    lambda_env: None, aws: LocalAWS, messages_api: MessagesAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = aws.create_queue("writeback")
    monkeypatch.setenv("MEMORY_WRITEBACK_QUEUE_URL", url)
    handler = api_handler()
    user = f"u-{uuid.uuid4().hex[:8]}"
    messages_api.reply(text_reply("Noted: a window seat."))

    status, turn = call(handler, http_event("POST", "/v1/turns", {"user_id": user, "message": "I want a window seat"}))

    assert status == 200, turn
    assert turn["reply"] == "Noted: a window seat." and turn["write_back"]["status"] == "queued"
    [message] = aws.receive(url, 1)
    assert json.loads(message["Body"]) == {"tenant_id": "acme", "user_id": user, "turn_id": turn["turn_id"]}
    messages_api.default = extraction_model(broken=False)
    assert writeback.handler(sqs_event([message], queue_arn(aws, url)), None) == {"batchItemFailures": []}
    status, listed = call(handler, http_event("GET", f"/v1/users/{user}/memories"))
    assert status == 200 and [item["content"] for item in listed["items"]] == ["Prefers window seats"]


def test_the_api_handler_answers_health_without_a_key_and_nothing_else(lambda_env: None) -> None:
    handler = api_handler()
    assert call(handler, http_event("GET", "/healthz", key=None)) == (200, {"status": "ok"})
    status, body = call(handler, http_event("GET", "/v1/users/u1/memories", key=None))
    assert status == 401 and body["error"]["type"] == "unauthorized"
    status, body = call(handler, http_event("GET", "/v1/users/u1/memories", key="wrong"))
    assert status == 401


def test_the_api_handler_imports_nothing_heavy() -> None:
    """A cold start that answers /healthz loads neither the model, the drivers, Claude's SDK nor boto3."""
    heavy = ("torch", "sentence_transformers", "anthropic", "psycopg", "sqlalchemy", "boto3")
    script = f"import sys, handlers.api; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_migrate_handler_upgrades_with_the_owner_url_from_a_secret(
    lambda_env: None, aws: LocalAWS, postgres: PostgresDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from handlers import migrate
    from memory.migrations import ALEMBIC_INI

    monkeypatch.setenv("MEMORY_STORE_URL", "sqlite://")  # not what migrations use: the owner's secret is
    monkeypatch.setenv("MEMORY_DATABASE_URL_SECRET_ARN", create_secret(aws, "owner-url", postgres.owner_url))
    answer = migrate.handler({}, None)
    head = ScriptDirectory.from_config(Config(str(ALEMBIC_INI))).get_current_head()
    assert answer == {"revision": head, "database": redact_url(postgres.owner_url), "app_login": None}


def test_the_migrate_handler_makes_the_login_of_generated_secrets_and_rolls_the_schema_back_and_forth(
    lambda_env: None, aws: LocalAWS, password_postgres: PasswordServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on AWS: two generated secrets hold a username and password only (the master's, the app's), the host
    is the proxy's, in MEMORY_DATABASE_HOST; the server checks every password."""
    from handlers import migrate

    owner = {"username": "postgres", "password": password_postgres.superuser_password}
    app = {"username": "agent_memory", "password": f"gen/{uuid.uuid4().hex}@x"}
    monkeypatch.delenv("MEMORY_STORE_URL")
    monkeypatch.setenv("MEMORY_DATABASE_URL_SECRET_ARN", create_secret(aws, "master", owner))
    monkeypatch.setenv("MEMORY_STORE_URL_SECRET_ARN", create_secret(aws, "app", app))
    monkeypatch.setenv("MEMORY_DATABASE_HOST", password_postgres.socket_dir)
    monkeypatch.setenv("MEMORY_DATABASE_PORT", "5432")  # the socket's: .s.PGSQL.5432
    user = f"u-{uuid.uuid4().hex[:8]}"
    with password_postgres.database() as name:
        monkeypatch.setenv("MEMORY_DATABASE_NAME", name)
        sessions = "SELECT usename FROM pg_stat_activity WHERE datname = %s AND usename = 'agent_memory'"
        try:
            answer = migrate.handler({}, None)

            assert answer["revision"] == SCHEMA_REVISION and answer["app_login"] == "agent_memory"
            assert answer["database"].startswith(f"postgresql://postgres:***@/{name}?host=")
            status, body = call(api_handler(), http_event("POST", f"/v1/users/{user}/memories", {"content": "Tea"}))
            assert status == 201, body
            with psycopg.connect(password_postgres.superuser_url(name)) as conn:
                assert conn.execute(sessions, [name]).fetchall() == [("agent_memory",)]  # the API's connection

            answer = migrate.handler({"revision": "0005"}, None)  # the rollback of a code rollback

            assert answer == {**answer, "revision": "0005", "app_login": None, "downgraded": True}
            with psycopg.connect(password_postgres.url("agent_memory", app["password"], name)) as conn:
                assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0005",)
            for event, message in [
                ({"revision": "base"}, "confirm"),
                ({"revision": "nope"}, "unknown schema revision"),
                ({"revision": 5}, "must be a revision id"),
            ]:
                with pytest.raises(ConfigurationError, match=message):
                    migrate.handler(event, None)
            assert migrate.handler({}, None)["revision"] == SCHEMA_REVISION
            answer = migrate.handler({"revision": "0005", "drop_app_login": True}, None)
            assert answer["app_login"] == "agent_memory"
            with psycopg.connect(password_postgres.superuser_url(name)) as conn:
                assert conn.execute("SELECT FROM pg_roles WHERE rolname = 'agent_memory'").fetchall() == []

            assert migrate.handler({}, None)["app_login"] == "agent_memory"  # and back: the login too

            status, listed = call(api_handler(), http_event("GET", f"/v1/users/{user}/memories"))
            assert status == 200 and [item["content"] for item in listed["items"]] == ["Tea"]
        finally:
            sys.modules.pop("handlers.api", None)
            with psycopg.connect(password_postgres.superuser_url(), autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                conn.execute("DROP ROLE IF EXISTS agent_memory")


class LambdaContext:
    """What the consolidation handler reads of Lambda's context: the time left."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def get_remaining_time_in_millis(self) -> int:
        return int(self.seconds * 1000)


def test_the_consolidate_handler_runs_the_job_within_the_function_deadline(
    lambda_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, messages_api: MessagesAPI
) -> None:
    from handlers import consolidate
    from memory import Memory
    from memory.models import MemoryEntry
    from memory.summariser import TOOL_NAME

    messages_api.default = tool_use_reply(TOOL_NAME, {"summary": "Lives in Lisbon."})  # the profile's writer
    url = f"sqlite:///{tmp_path / 'scheduled.db'}"
    monkeypatch.setenv("MEMORY_STORE_URL", url)
    consolidate.consolidator.cache_clear()
    memory = Memory.from_url(url)
    for user in ("ana", "bo"):
        for content, age in (("I live in Lisbon", 60), ("I live in Lisbon now", 30)):
            vector = memory.embedder.embed([content])[0]
            memory.store.add(
                MemoryEntry(
                    user_id=user,
                    content=content,
                    created_at=time.time() - age,
                    embedding=vector,
                    embedding_model=memory.embedder.model_name,
                )
            )
    try:
        answer = consolidate.handler({"source": "aws.events"}, LambdaContext(900))
        assert answer["users"] == 2 and answer["changed"] == 2 and answer["complete"] and answer["errors"] == 0
        for user in ("ana", "bo"):
            assert sorted(e.content for e in memory.list(user)) == ["I live in Lisbon now", "Lives in Lisbon."]
        again = consolidate.handler({"source": "aws.events"}, LambdaContext(900))
        assert again["users"] == 2 and again["changed"] == 0
        # a minute or less left: one user, then it stops and says it is not done
        short = consolidate.handler({}, LambdaContext(30))
        assert short["users"] == 1 and not short["complete"]
    finally:
        memory.close()
        if consolidate.consolidator.cache_info().currsize:
            consolidate.consolidator().memory.close()
        consolidate.consolidator.cache_clear()
