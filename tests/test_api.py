"""The HTTP API (memory/api.py) over real stores (SQLite and Postgres), the real model and the fake Messages API."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from memory.api import create_app
from memory.api_schemas import MemoryTypeName
from memory.config import get_settings
from memory.models import MemoryType
from tests.messages_api import API_KEY, MessagesAPI, error_reply
from tests.postgres_support import PostgresDatabase

KEY_A, KEY_B = "am_test_key_tenant_a", "am_test_key_tenant_b"
API_KEYS = ",".join(
    f"{tenant}:{hashlib.sha256(key.encode()).hexdigest()}" for tenant, key in (("a", KEY_A), ("b", KEY_B))
)
AUTH_A = {"Authorization": f"Bearer {KEY_A}"}
AUTH_B = {"Authorization": f"Bearer {KEY_B}"}

ClientFactory = Callable[..., TestClient]


@pytest.fixture
def make_client(tmp_path: Path, messages_api: MessagesAPI) -> Iterator[ClientFactory]:
    """Test clients of apps over a fresh SQLite file (or ``store_url``), talking to the fake Messages API."""
    clients: list[TestClient] = []

    def build(store_url: str | None = None, *, raise_server_exceptions: bool = True, **overrides: Any) -> TestClient:
        defaults = {
            "anthropic_api_key": API_KEY,
            "anthropic_base_url": messages_api.url,
            "session_store_url": "memory://",
            "api_keys": API_KEYS,
            "extraction": "rules",
            "claude_max_retries": 0,
        }
        store_url = store_url or f"sqlite:///{tmp_path / f'api-{len(clients)}.db'}"
        settings = get_settings(store_url=store_url, **{**defaults, **overrides})
        client = TestClient(create_app(settings), raise_server_exceptions=raise_server_exceptions)
        client.__enter__()
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture(params=["sqlite", "postgres"])
def client(request: pytest.FixtureRequest, make_client: ClientFactory) -> TestClient:
    if request.param == "postgres":
        database: PostgresDatabase = request.getfixturevalue("postgres")
        return make_client(database.app_url)
    return make_client()


def new_user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


def error_of(response: Any, status: int) -> dict[str, str]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "message"}, body
    return body["error"]


def test_health_needs_no_key_and_readiness_asks_the_store(make_client: ClientFactory) -> None:
    client = make_client()
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    down = make_client("postgresql://nobody@127.0.0.1:9/none?connect_timeout=1")
    assert down.get("/healthz").status_code == 200
    error = error_of(down.get("/readyz"), 503)
    assert error["type"] == "unavailable" and "127.0.0.1" not in error["message"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {KEY_A}"},
        {"Authorization": "Bearer "},
        {"Authorization": KEY_A},
        {"Authorization": ("Bearer " + "\u00e9" * 50).encode()},
    ],
    ids=["missing", "wrong", "basic", "empty", "no-scheme", "non-ascii"],
)
def test_a_request_without_a_valid_key_is_a_401_that_says_nothing_more(
    make_client: ClientFactory, headers: dict[str, str]
) -> None:
    client = make_client()
    user = new_user()
    assert client.post(f"/v1/users/{user}/memories", json={"content": "x1"}, headers=AUTH_A).status_code == 201
    for method, path, body in [
        ("GET", f"/v1/users/{user}/memories", None),
        ("POST", f"/v1/users/{user}/memories/search", {"query": "x1"}),
        ("DELETE", f"/v1/users/{user}", None),
        ("POST", "/v1/turns", {"user_id": user, "message": "hi"}),
    ]:
        response = client.request(method, path, json=body, headers=headers)
        assert error_of(response, 401) == {"type": "unauthorized", "message": "a valid API key is required"}
        assert response.headers["www-authenticate"] == "Bearer"
    assert len(client.get(f"/v1/users/{user}/memories", headers=AUTH_A).json()["items"]) == 1  # nothing forgotten


def test_no_configured_keys_refuse_every_request(make_client: ClientFactory) -> None:
    client = make_client(api_keys="")
    error_of(client.get(f"/v1/users/{new_user()}/memories", headers=AUTH_A), 401)


def test_memories_crud_paging_search_and_history(client: TestClient) -> None:
    user = new_user()
    base = f"/v1/users/{user}/memories"
    created = client.post(
        base,
        json={
            "content": "I prefer metric units",
            "memory_type": "preference",
            "importance": 0.8,
            "tags": ["Units"],
            "metadata": {"source": "test", "nested": {"n": [1, 2.5, None, True]}},
        },
        headers=AUTH_A,
    )
    assert created.status_code == 201, created.text
    first = created.json()
    assert first["action"] == "added" and first["previous_id"] is None
    memory = first["memory"]
    assert memory["content"] == "I prefer metric units" and memory["tags"] == ["units"]
    assert memory["metadata"] == {"source": "test", "nested": {"n": [1, 2.5, None, True]}}
    again = client.post(base, json={"content": "I prefer metric units."}, headers=AUTH_A).json()
    assert again["action"] == "merged" and again["memory"]["id"] == memory["id"]
    for fact in ["My sister lives in Porto", "I run on Tuesdays", "My laptop is a ThinkPad", "I am allergic to cats"]:
        assert client.post(base, json={"content": fact, "ttl_seconds": 3600}, headers=AUTH_A).status_code == 201

    pages, offset = [], 0
    while offset is not None:
        page = client.get(base, params={"limit": 2, "offset": offset}, headers=AUTH_A).json()
        pages.append([item["id"] for item in page["items"]])
        offset = page["next_offset"]
    assert [len(p) for p in pages] == [2, 2, 1] and len({i for p in pages for i in p}) == 5
    only = client.get(base, params={"memory_type": "preference", "order_by": "importance"}, headers=AUTH_A).json()
    assert [item["id"] for item in only["items"]] == [memory["id"]]

    hits = client.post(f"{base}/search", json={"query": "which units should I use?", "top_k": 3}, headers=AUTH_A)
    assert hits.status_code == 200, hits.text
    assert hits.json()["hits"][0]["memory"]["id"] == memory["id"]
    assert hits.json()["hits"][0]["reasons"]

    path = f"{base}/{memory['id']}"
    assert client.get(path, headers=AUTH_A).json()["content"] == "I prefer metric units"
    patched = client.patch(path, json={"content": "I prefer imperial units", "importance": 0.9}, headers=AUTH_A)
    assert patched.status_code == 200 and patched.json()["content"] == "I prefer imperial units"
    error_of(client.patch(path, json={}, headers=AUTH_A), 422)
    kinds = [event["kind"] for event in client.get(f"{path}/history", headers=AUTH_A).json()["events"]]
    assert kinds[0] == "added" and "updated" in kinds
    assert client.delete(path, headers=AUTH_A).status_code == 204
    assert error_of(client.get(path, headers=AUTH_A), 404)["type"] == "not_found"
    error_of(client.delete(path, headers=AUTH_A), 404)
    everything = client.get(f"/v1/users/{user}/history", headers=AUTH_A).json()["events"]
    assert everything[-1]["kind"] == "deleted" and everything[-1]["content"] is None


def test_a_key_reaches_its_own_tenant_only(client: TestClient) -> None:
    user = new_user()
    base = f"/v1/users/{user}/memories"
    memory = client.post(base, json={"content": "My PIN hint is the dog's birthday"}, headers=AUTH_A).json()["memory"]
    assert memory["tenant_id"] == "a"
    assert client.get(base, headers=AUTH_B).json()["items"] == []
    assert client.post(f"{base}/search", json={"query": "PIN hint"}, headers=AUTH_B).json()["hits"] == []
    for method in ("GET", "DELETE"):
        assert error_of(client.request(method, f"{base}/{memory['id']}", headers=AUTH_B), 404)["type"] == "not_found"
    error_of(client.patch(f"{base}/{memory['id']}", json={"importance": 1}, headers=AUTH_B), 404)
    assert client.get(f"{base}/{memory['id']}/history", headers=AUTH_B).json()["events"] == []
    assert client.delete(f"/v1/users/{user}", headers=AUTH_B).json()["memories_deleted"] == 0
    assert client.get(f"{base}/{memory['id']}", headers=AUTH_A).status_code == 200  # untouched
    # a tenant named in the body is no field at all, not a way in
    error_of(client.post(base, json={"content": "x", "tenant_id": "a"}, headers=AUTH_B), 422)


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "content"),
        ({"content": 5}, "content"),
        ({"content": ""}, "content"),
        ({"content": "ok", "importance": 2}, "importance"),
        ({"content": "ok", "importance": "high"}, "importance"),
        ({"content": "ok", "memory_type": "secret"}, "memory_type"),
        ({"content": "ok", "tags": "one"}, "tags"),
        ({"content": "ok", "tags": [""]}, "tag"),
        ({"content": "ok", "metadata": []}, "metadata"),
        ({"content": "ok", "ttl_seconds": -1}, "ttl_seconds"),
        ({"content": "ok", "surprise": 1}, "surprise"),
        ({"content": "a\u0000b"}, "NUL"),
        ({"content": "ok", "metadata": {"k": "v\u0000"}}, "NUL"),
        ({"content": "x" * 2001}, "2000"),
        ({"content": "ok", "metadata": {"deep": json.loads("[" * 40 + "]" * 40)}}, "deeper"),
        ({"content": "ok", "session_id": "a\nb"}, "session_id"),
    ],
)
def test_bad_input_is_a_422_that_names_the_field(make_client: ClientFactory, body: Any, field: str) -> None:
    client = make_client()
    error = error_of(client.post(f"/v1/users/{new_user()}/memories", json=body, headers=AUTH_A), 422)
    assert error["type"] == "invalid_input" and field in error["message"], error


@pytest.mark.parametrize(
    "raw",
    [
        b'{"content": "\\ud800 lone"}',
        b'{"content": "ok", "tags": ["\\udfff"]}',
        b"{not json",
        b"\xff\xfe",
        b"[" * 5000 + b"]" * 5000,
        b'"just a string"',
        b"null",
    ],
    ids=["surrogate", "surrogate-tag", "broken", "not-utf8", "deep", "string", "null"],
)
def test_bodies_that_are_not_json_objects_are_4xx(make_client: ClientFactory, raw: bytes) -> None:
    client = make_client()
    headers = {**AUTH_A, "Content-Type": "application/json"}
    response = client.post(f"/v1/users/{new_user()}/memories", content=raw, headers=headers)
    assert 400 <= response.status_code < 500, response.text
    assert "error" in response.json()


def test_odd_users_and_sql_looking_text_are_kept_as_given(client: TestClient) -> None:
    for user in ["'; DROP TABLE memories; --", "\u00e9l\u00e8ve \U0001f600", "x" * 256, "ana@example.com", "null"]:
        base = f"/v1/users/{quote(user, safe='')}/memories"
        content = f"{user} said: SELECT * FROM memories WHERE 1=1; -- \u202e\u200b"
        response = client.post(base, json={"content": content, "tags": ["' OR 1=1"]}, headers=AUTH_A)
        assert response.status_code == 201, (user, response.text)
        assert response.json()["memory"]["user_id"] == user
        listed = client.get(base, headers=AUTH_A).json()["items"]
        assert [item["user_id"] for item in listed] == [user]
    error_of(client.get("/v1/users/" + "x" * 257 + "/memories", headers=AUTH_A), 422)
    error_of(client.get("/v1/users/%20/memories", headers=AUTH_A), 422)


def test_bodies_over_the_limit_are_a_413_with_or_without_a_length(make_client: ClientFactory) -> None:
    client = make_client(api_max_body_bytes=4096)
    path = f"/v1/users/{new_user()}/memories"
    megabyte = json.dumps({"content": "x" * 2**20}).encode()
    error = error_of(client.post(path, content=megabyte, headers={**AUTH_A, "Content-Type": "application/json"}), 413)
    assert error["type"] == "payload_too_large" and "MEMORY_API_MAX_BODY_BYTES" in error["message"]

    def chunks() -> Iterator[bytes]:
        yield b'{"content": "'
        for _ in range(100):
            yield b"y" * 1000
        yield b'"}'

    error_of(client.post(path, content=chunks(), headers={**AUTH_A, "Content-Type": "application/json"}), 413)
    assert client.post(path, json={"content": "small enough"}, headers=AUTH_A).status_code == 201


def test_a_turn_answers_and_writes_back_inline(client: TestClient, messages_api: MessagesAPI) -> None:
    user = new_user()
    client.post(f"/v1/users/{user}/memories", json={"content": "I am vegetarian"}, headers=AUTH_A)
    messages_api.reply_text("Try the mushroom risotto.", usage={"input_tokens": 321, "output_tokens": 7})
    body = {"user_id": user, "message": "I live in Lisbon. What should I cook tonight?", "session_id": "s1"}
    response = client.post("/v1/turns", json=body, headers=AUTH_A)
    assert response.status_code == 200, response.text
    turn = response.json()
    assert turn["reply"] == "Try the mushroom risotto."
    assert turn["usage"]["input_tokens"] == 321 and turn["usage"]["output_tokens"] == 7
    assert [hit["memory"]["content"] for hit in turn["memories"]][:1] == ["I am vegetarian"]
    assert turn["write_back"]["status"] == "done" and turn["write_back"]["applied"]
    contents = [item["content"] for item in client.get(f"/v1/users/{user}/memories", headers=AUTH_A).json()["items"]]
    assert any("Lisbon" in content for content in contents)
    assert "I am vegetarian" in json.dumps(messages_api.requests[-1]["body"]["system"])

    forgotten = client.delete(f"/v1/users/{user}", headers=AUTH_A).json()
    assert forgotten == {"user_id": user, "memories_deleted": len(contents), "sessions_deleted": 1}
    assert client.get(f"/v1/users/{user}/memories", headers=AUTH_A).json()["items"] == []
    messages_api.reply_text("Hello.")
    client.post("/v1/turns", json={**body, "message": "hi"}, headers=AUTH_A)
    history = messages_api.requests[-1]["body"]["messages"]
    assert len(history) == 1, "the forgotten session's turns came back"


def test_turn_failures_are_clear_and_lose_nothing(make_client: ClientFactory, messages_api: MessagesAPI) -> None:
    client = make_client()
    user = new_user()
    messages_api.reply(error_reply(500, "api_error", "Internal server error"))
    error = error_of(client.post("/v1/turns", json={"user_id": user, "message": "I own a cat."}, headers=AUTH_A), 502)
    assert error["type"] == "claude_unavailable"
    error_of(client.post("/v1/turns", json={"user_id": user, "message": "  "}, headers=AUTH_A), 422)
    error_of(client.post("/v1/turns", json={"user_id": user, "message": "x" * 32_001}, headers=AUTH_A), 422)
    error_of(client.post("/v1/turns", json={"user_id": user, "message": "hi", "memory_mode": "x"}, headers=AUTH_A), 422)
    keyless = make_client(anthropic_api_key=None)
    error = error_of(keyless.post("/v1/turns", json={"user_id": user, "message": "hi"}, headers=AUTH_A), 503)
    assert error["type"] == "not_configured" and "ANTHROPIC_API_KEY" in error["message"]


def test_a_store_that_is_down_is_a_503_without_internals(make_client: ClientFactory) -> None:
    client = make_client("postgresql://nobody:hunter2@127.0.0.1:9/none?connect_timeout=1")
    error = error_of(client.get(f"/v1/users/{new_user()}/memories", headers=AUTH_A), 503)
    assert error["type"] == "unavailable"
    assert "hunter2" not in error["message"] and "127.0.0.1" not in error["message"]


def test_unknown_routes_methods_and_crashes_are_json(make_client: ClientFactory) -> None:
    client = make_client(raise_server_exceptions=False)
    assert error_of(client.get("/v2/nothing", headers=AUTH_A), 404)["type"] == "not_found"
    assert error_of(client.put(f"/v1/users/{new_user()}", headers=AUTH_A), 405)["type"] == "method_not_allowed"

    @client.app.get("/crash")  # type: ignore[attr-defined]
    def crash() -> None:
        raise RuntimeError("secret internals")

    error = error_of(client.get("/crash"), 500)
    assert error == {"type": "internal", "message": "internal error; it has been logged"}


def test_openapi_documents_every_route_with_bearer_auth(make_client: ClientFactory) -> None:
    client = make_client()
    spec = client.get("/openapi.json").json()
    assert {"/v1/turns", "/v1/users/{user_id}/memories", "/v1/users/{user_id}", "/healthz"} <= set(spec["paths"])
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert client.get("/docs").status_code == 200


def test_the_api_lists_every_memory_type() -> None:
    assert set(MemoryTypeName.__args__) == {member.value for member in MemoryType}  # type: ignore[attr-defined]
