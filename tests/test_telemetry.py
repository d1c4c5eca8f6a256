"""Telemetry (memory/telemetry.py): scripted turns through the real API, store, model and the fake Messages API,
read back from the EMF lines, from ``GET /metrics`` and from the local file; and nothing a user said in any of them.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from memory import Memory, MemoryEntry, Scope, get_settings, telemetry
from memory.api import create_app
from memory.claude import make_client
from memory.cli import main
from memory.consolidation import Consolidator
from memory.errors import StoreError
from memory.prompting import estimate_tokens
from memory.stores.sqlite import SQLiteStore
from memory.summariser import TOOL_NAME as SUMMARY_TOOL
from memory.summariser import ClaudeSummariser
from memory.telemetry import METRICS, JsonFormatter, Telemetry, user_hash
from memory.telemetry_file import EventFile, read_events
from memory.usage import TokenUsage, estimate_cost
from tests.messages_api import MessagesAPI, error_reply, text_reply, tool_use_reply

KEY = "am_telemetry_bearer_QX7"
AUTH = {"Authorization": f"Bearer {KEY}"}
CLAUDE_KEY = "sk-ant-api03-telemetry-SECRET-9QX"
SERVICE = "agent-memory-test"
UNITS = {  # what the lead's dashboard and alarms are built from: names and units, written out again here
    **dict.fromkeys(("SearchEmbedMs", "SearchStoreMs", "SearchTotalMs"), "Milliseconds"),
    **dict.fromkeys(("RecallAgeDays", "ClaudeCostUsd"), "None"),
    **dict.fromkeys(
        (
            "MemoriesInjected",
            "MemoryTokensInjected",
            "RecallEmpty",
            "DegradedTurns",
            "CacheHits",
            "CacheMisses",
            "ClaudeInputTokens",
            "ClaudeOutputTokens",
            "ClaudeCacheReadTokens",
            "ClaudeCacheWriteTokens",
            "ExtractionOk",
            "ExtractionRetried",
            "ExtractionFailed",
            "MemoriesAdded",
            "MemoriesDeduplicated",
            "MemoriesSuperseded",
            "ConsolidationUsers",
            "ConsolidationArchived",
            "ConsolidationSummaries",
            "ConsolidationErrors",
        ),
        "Count",
    ),
}


def usage(input_tokens: int, output_tokens: int, cache_read: int = 0, cache_write: int = 0) -> dict[str, int]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read_input_tokens": cache_read,
        "cache_creation_input_tokens": cache_write,
    }


@dataclass
class Scenario:
    """What the scripted turns sent and got: the figures every sink must show."""

    turns: list[dict[str, Any]] = field(default_factory=list)  # the API's answers
    blocks: list[str] = field(default_factory=list)  # the memory block of each chat request
    chat: list[dict[str, int]] = field(default_factory=list)  # the fake API's usage, call by call
    extraction: list[dict[str, int]] = field(default_factory=list)
    api_searches: int = 0


@pytest.fixture
def api_server() -> Iterator[MessagesAPI]:
    with MessagesAPI(api_key=CLAUDE_KEY) as server:
        yield server


@pytest.fixture
def make_app(tmp_path: Path, api_server: MessagesAPI, embedder: Any) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def build(**overrides: Any) -> TestClient:
        values = {
            "store_url": f"sqlite:///{tmp_path / 'telemetry.db'}",
            "session_store_url": "memory://",  # the cache too
            "anthropic_api_key": CLAUDE_KEY,
            "anthropic_base_url": api_server.url,
            "api_keys": f"t:{hashlib.sha256(KEY.encode()).hexdigest()}",
            "extraction": "claude",
            "claude_max_retries": 0,
            "metrics_service": SERVICE,
            **overrides,
        }
        client = TestClient(create_app(get_settings(**values)))
        client.__enter__()
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)


def extraction(operations: Callable[[str], list[dict[str, Any]]], tokens: dict[str, int]) -> Callable[..., Any]:
    """The fake extraction model: ``operations(request text)`` as its save_memories call, with ``tokens``."""

    def respond(body: dict[str, Any]) -> Any:
        return tool_use_reply("save_memories", {"operations": operations(body["messages"][0]["content"])}, usage=tokens)

    respond.tokens = tokens  # type: ignore[attr-defined]
    return respond


def nothing(request: str) -> list[dict[str, Any]]:
    return []


def run_scenario(client: TestClient, server: MessagesAPI, *, marker: str = "") -> Scenario:
    """Six turns of two users and a search, covering every figure: an old memory injected, an extraction that
    adds, merges and supersedes, one that fails and is retried, an empty recall, a cache hit, a degraded turn."""
    done = Scenario()
    memory: Memory = client.app.state.services.memory

    def said(text: str) -> str:
        return f"{text} {marker}".strip()

    answer = client.post(
        "/v1/users/ana/memories",
        json={"content": said("I prefer aisle seats on long flights"), "memory_type": "preference"},
        headers=AUTH,
    )
    aisle = answer.json()["memory"]
    ten_days_ago, lisbon = time.time() - 10 * 86_400, said("My sister lives in Lisbon")
    memory.store.add(
        MemoryEntry(
            user_id="ana",
            tenant_id="t",
            content=lisbon,
            created_at=ten_days_ago,
            updated_at=ten_days_ago,
            embedding=memory.embedder.embed([lisbon])[0],
            embedding_model=memory.embedder.model_name,
        )
    )

    def turn(user: str, message: str, chat: dict[str, int], *write_backs: Any) -> None:
        server.reply(text_reply(said("Noted"), usage=chat))
        done.chat.append(chat)
        for answer in write_backs:  # a Reply (an API error), or an extraction responder
            server.reply(answer)
            if hasattr(answer, "tokens"):
                done.extraction.append(answer.tokens)
        response = client.post("/v1/turns", json={"user_id": user, "message": said(message)}, headers=AUTH)
        assert response.status_code == 200, response.text
        done.turns.append(response.json())
        assert server.pending == 0, "every scripted answer was used"
        chat_body = [r["body"] for r in server.requests if "tools" not in r["body"]][-1]
        done.blocks.append(chat_body["system"][1]["text"])

    def corrections(request: str) -> list[dict[str, Any]]:
        assert aisle["id"] in request, "the extractor is shown the memory it corrects"
        return [
            {"action": "add", "content": said("I am flying to Tokyo in May")},
            {"action": "add", "content": aisle["content"]},  # says the same: merged
            {"action": "update", "id": aisle["id"], "content": said("I prefer window seats now")},
        ]

    turn("ana", "Which seat should I book to Tokyo? I prefer window seats now.", usage(900, 12, 640, 128),
         extraction(corrections, usage(300, 40, 0, 256)))  # fmt: skip
    failure = error_reply(400, "invalid_request_error", "scripted extraction failure")
    turn("ana", "Please remember that I like green tea.", usage(950, 9, 640, 0), failure, failure)  # retried at once
    turn("bo", "Hello there, nice to meet you.", usage(400, 7), extraction(nothing, usage(200, 3)))
    tea = [{"action": "add", "content": said("I like green tea")}]
    turn("ana", "And what about the return flight?", usage(990, 15, 700, 0),
         extraction(nothing, usage(310, 5)),  # this turn's own: nothing worth keeping; then the failed one again
         extraction(lambda request: tea, usage(305, 30)))  # fmt: skip
    turn("ana", "Thanks, that is all.", usage(1000, 4, 700, 0), extraction(nothing, usage(280, 2)))
    store = memory.store

    def down(*args: Any, **kwargs: Any) -> Any:
        raise StoreError("scripted outage")

    original, store.search = store.search, down  # type: ignore[method-assign]
    try:
        turn("ana", "Is the store down?", usage(500, 6))  # degraded: cached core memories alone, write-back spooled
    finally:
        store.search = original  # type: ignore[method-assign]
    search = client.post("/v1/users/ana/memories/search", json={"query": "seats"}, headers=AUTH)
    assert search.status_code == 200
    done.api_searches = 1
    return done


SEARCHES = 5 + 7  # recalls (not the degraded turn's, which failed) and extraction context searches (failed ones too)


def emf_documents(text: str) -> list[dict[str, Any]]:
    documents = [json.loads(line) for line in text.splitlines() if line.startswith('{"_aws"')]
    for document in documents:
        [directive] = document["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "AgentMemory" and directive["Dimensions"] == [["Service"]]
        assert document["Service"] == SERVICE
        assert isinstance(document["_aws"]["Timestamp"], int)
        for metric in directive["Metrics"]:
            assert metric["Unit"] == UNITS[metric["Name"]], metric
            assert isinstance(document[metric["Name"]], int | float), metric
        assert set(METRICS) & set(document) == {metric["Name"] for metric in directive["Metrics"]}
    return documents


def of(documents: list[dict[str, Any]], event: str, **properties: Any) -> list[dict[str, Any]]:
    return [d for d in documents if d["event"] == event and all(d.get(k) == v for k, v in properties.items())]


def cost(model: str, tokens: dict[str, int]) -> float | None:
    return estimate_cost(model, TokenUsage(**tokens))


def test_every_figure_of_a_scripted_turn_is_an_emf_line_with_the_fake_apis_numbers(
    make_app: Callable[..., TestClient], api_server: MessagesAPI, capsys: pytest.CaptureFixture[str]
) -> None:
    client = make_app(telemetry="emf")
    capsys.readouterr()

    done = run_scenario(client, api_server)

    documents = emf_documents(capsys.readouterr().out)
    # Claude: one line per call, token for token what the fake API answered, the purpose a property
    chat, extraction = of(documents, "claude_call", purpose="chat"), of(documents, "claude_call", purpose="extraction")
    assert len(chat) == len(done.chat) == 6 and len(extraction) == len(done.extraction) == 5
    for lines, scripted, model in ((chat, done.chat, "claude-sonnet-5-5"), (extraction, done.extraction,
                                                                            "claude-haiku-5-5")):  # fmt: skip
        for line, tokens in zip(lines, scripted, strict=True):
            assert line["model"] == model
            assert line["ClaudeInputTokens"] == tokens["input_tokens"]
            assert line["ClaudeOutputTokens"] == tokens["output_tokens"]
            assert line["ClaudeCacheReadTokens"] == tokens["cache_read_input_tokens"]
            assert line["ClaudeCacheWriteTokens"] == tokens["cache_creation_input_tokens"]
            assert line["ClaudeCostUsd"] == pytest.approx(cost(model, tokens)) and line["ClaudeCostUsd"] > 0
    # searches: every recall that reached the store, every extraction's context search, and the API's one
    searches = of(documents, "search")
    assert len(searches) == SEARCHES + done.api_searches
    for line in searches:
        assert line["SearchEmbedMs"] > 0 and line["SearchStoreMs"] > 0
        assert line["SearchTotalMs"] >= line["SearchEmbedMs"] + line["SearchStoreMs"]
    # turns
    turns = of(documents, "turn")
    assert len(turns) == len(done.turns) == 6
    for line, answer, block in zip(turns, done.turns, done.blocks, strict=True):
        assert line["MemoriesInjected"] == len(answer["memories"])
        assert line["MemoryTokensInjected"] == estimate_tokens(block)
        assert line["RecallEmpty"] == (0 if answer["memories"] else 1)
        assert line["DegradedTurns"] == (1 if answer["degraded"] else 0)
        if answer["memories"]:
            ages = [time.time() - hit["memory"]["updated_at"] for hit in answer["memories"]]
            assert line["RecallAgeDays"] == pytest.approx(sum(ages) / len(ages) / 86_400, abs=1e-3)
        else:
            assert "RecallAgeDays" not in line
    first, bo, degraded = turns[0], turns[2], turns[-1]
    assert first["MemoriesInjected"] == 2 and first["RecallAgeDays"] == pytest.approx(5.0, abs=0.01)
    assert bo["user"] == user_hash(Scope("bo", "t")) and bo["RecallEmpty"] == 1
    assert degraded["DegradedTurns"] == 1 and degraded["MemoriesInjected"] >= 1
    cache = [(line["CacheHits"], line["CacheMisses"]) for line in turns]
    # hits and misses: each write changes the user's version (a miss); bo has nothing to cache; degraded: no read
    assert cache == [(0, 1), (0, 1), (0, 0), (1, 0), (0, 1), (0, 0)]
    # write-backs: ok (added, merged, superseded); failed, and failed again when the turn retried it; ok (bo);
    # ok and the failed one retried; ok. The degraded turn's is spooled, not run.
    write_backs = of(documents, "write_back")
    outcomes = [(w["ExtractionOk"], w["ExtractionRetried"], w["ExtractionFailed"]) for w in write_backs]
    assert outcomes == [(1, 0, 0), (0, 0, 1), (0, 0, 1), (1, 0, 0), (1, 0, 0), (0, 1, 0), (1, 0, 0)]
    memories = [(w["MemoriesAdded"], w["MemoriesDeduplicated"], w["MemoriesSuperseded"]) for w in write_backs]
    assert memories == [(1, 1, 1), (0, 0, 0), (0, 0, 0), (0, 0, 0), (0, 0, 0), (1, 0, 0), (0, 0, 0)]
    assert write_backs[1]["error_type"] == "ExtractionError" and write_backs[1]["outcome"] == "failed"
    assert {w["extractor"] for w in write_backs} == {"claude"}
    assert set(UNITS) - {name for d in documents for name in d} == {
        "ConsolidationUsers",
        "ConsolidationArchived",
        "ConsolidationSummaries",
        "ConsolidationErrors",
    }  # every figure of a turn was there (consolidation has a test of its own)


def samples(page: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_the_same_figures_are_on_the_metrics_page(make_app: Callable[..., TestClient], api_server: MessagesAPI) -> None:
    client = make_app()  # outside Lambda, auto is prometheus
    done = run_scenario(client, api_server)

    response = client.get("/metrics")  # no key

    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)

    def value(name: str, **labels: str) -> float:
        return found[(f"agent_memory_{name}", tuple(sorted(labels.items())))]

    searches = SEARCHES + done.api_searches
    for stage in ("embed", "store", "total"):
        assert value("search_seconds_count", stage=stage) == searches
        assert value("search_seconds_sum", stage=stage) > 0
    assert value("search_seconds_sum", stage="total") >= value("search_seconds_sum", stage="store")
    for purpose, scripted, model in (("chat", done.chat, "claude-sonnet-5-5"),
                                     ("extraction", done.extraction, "claude-haiku-5-5")):  # fmt: skip
        assert value("claude_calls_total", purpose=purpose) == len(scripted)
        kinds = {"input": "input_tokens", "output": "output_tokens", "cache_read": "cache_read_input_tokens"}
        for kind, key in {**kinds, "cache_write": "cache_creation_input_tokens"}.items():
            assert value("claude_tokens_total", purpose=purpose, kind=kind) == sum(u[key] for u in scripted)
        expected = sum(cost(model, tokens) for tokens in scripted)
        assert value("claude_cost_usd_total", purpose=purpose) == pytest.approx(expected)
    assert value("turns_total") == 6 and value("degraded_turns_total") == 1 and value("recall_empty_turns_total") == 1
    assert value("memories_injected_total") == sum(len(answer["memories"]) for answer in done.turns)
    assert value("memory_tokens_injected_total") == sum(estimate_tokens(block) for block in done.blocks)
    assert value("recall_age_days_count") == 5 and value("recall_age_days_sum") > 5
    assert value("cache_reads_total", outcome="hit") == 1 and value("cache_reads_total", outcome="miss") == 3
    assert value("extractions_total", outcome="ok") == 4
    assert value("extractions_total", outcome="retried") == 1 and value("extractions_total", outcome="failed") == 2
    for outcome, count in (("added", 2), ("deduplicated", 1), ("superseded", 1)):
        assert value("writeback_memories_total", outcome=outcome) == count
    for name in ("users", "archived", "summaries", "errors"):
        assert value(f"consolidation_{name}_total") == 0


def test_the_metrics_page_can_be_turned_off_and_is_not_served_with_emf(make_app: Callable[..., TestClient]) -> None:
    assert make_app().get("/metrics").status_code == 200
    assert make_app(metrics_endpoint=False).get("/metrics").status_code == 404
    assert make_app(telemetry="emf").get("/metrics").status_code == 404
    assert "/metrics" not in make_app().get("/openapi.json").json()["paths"]


@pytest.mark.parametrize("mode", ["emf", "prometheus"])
def test_no_content_message_or_key_reaches_a_log_line_a_metric_or_the_file(
    make_app: Callable[..., TestClient],
    api_server: MessagesAPI,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    mode: str,
) -> None:
    marker = "ZEBRA-7781"
    events = tmp_path / "events.jsonl"
    client = make_app(telemetry=mode, telemetry_file=str(events))
    caplog.set_level(logging.DEBUG)  # every logger, the SDK's and the HTTP client's included

    run_scenario(client, api_server, marker=marker)
    stored = client.app.state.services.memory.list("ana", include_inactive=True, tenant_id="t")

    assert any(marker in entry.content for entry in stored)  # the marker went everywhere a user's words go
    assert any(marker in json.dumps(request["body"]) for request in api_server.requests)
    secrets = (marker, CLAUDE_KEY, KEY, hashlib.sha256(KEY.encode()).hexdigest())
    formatter = JsonFormatter()
    for record in caplog.records:
        for text in (record.getMessage(), formatter.format(record), repr(record.args)):
            assert not any(secret in text for secret in secrets), text
    assert len(caplog.records) > 10  # the usage lines, the SDK's and httpx's among them
    outputs = {"file": events.read_text(), "stdout": capsys.readouterr().out}
    if mode == "prometheus":
        outputs["metrics"] = client.get("/metrics").text
    else:
        assert len(emf_documents(outputs["stdout"])) > 20
    assert len(outputs["file"].splitlines()) > 20
    for where, text in outputs.items():
        assert not any(secret in text for secret in secrets), where
        assert '"ana"' not in text and '"bo"' not in text, where  # users appear hashed only


def test_lambda_lines_carry_the_request_id_and_logs_are_json() -> None:
    out, logs = io.StringIO(), io.StringIO()
    telemetry.install(Telemetry("emf", service=SERVICE, stream=out))
    handler = logging.StreamHandler(logs)
    handler.setFormatter(JsonFormatter())
    agent_logger = logging.getLogger("memory.agent")
    agent_logger.addHandler(handler)

    @telemetry.lambda_handler
    def function(event: Any, context: Any) -> str:
        agent_logger.warning("turn %s: the memory store failed", "t-1", extra={"turn_id": "t-1", "degraded": True})
        telemetry.current().search(Scope("u1"), embed_ms=1.5, store_ms=2.5, total_ms=4.0)
        return "done"

    try:
        assert function({}, SimpleNamespace(aws_request_id="req-8b2f")) == "done"
        function({}, None)  # no context (a test, a local invoke): no request id
    finally:
        agent_logger.removeHandler(handler)
    first, second = [json.loads(line) for line in logs.getvalue().splitlines()]
    assert first["request_id"] == "req-8b2f" and first["turn_id"] == "t-1" and first["degraded"] is True
    assert first["level"] == "WARNING" and first["logger"] == "memory.agent"
    assert first["message"] == "turn t-1: the memory store failed" and first["timestamp"].endswith("Z")
    assert second["request_id"] is None
    lines = emf_documents(out.getvalue())
    assert [line.get("request_id") for line in lines] == ["req-8b2f", None]
    assert lines[0]["user"] == user_hash(Scope("u1")) and lines[0]["SearchTotalMs"] == 4.0


def test_auto_is_emf_in_lambda_and_prometheus_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    assert telemetry.configure(get_settings()).mode == "prometheus"
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "agent-memory-dev-api")
    assert telemetry.configure(get_settings()).mode == "emf"
    assert telemetry.configure(get_settings(telemetry="off")).active is False
    same = telemetry.configure(get_settings())
    assert telemetry.configure(get_settings()) is same  # the same settings keep the same recorder


def test_a_failing_sink_never_fails_what_it_measures(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError("stdout is gone")

    recorder = Telemetry("emf", stream=Broken())
    recorder.search(Scope("u1"), embed_ms=1, store_ms=1, total_ms=2)
    recorder.search(Scope("u1"), embed_ms=1, store_ms=1, total_ms=2)
    assert [r.getMessage() for r in caplog.records if r.name == "memory.telemetry"] == [
        "telemetry: recording a search event failed; later failures are not logged"
    ]


def test_the_event_file_is_bounded_and_rotates(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "events.jsonl"
    events = EventFile(path, max_bytes=2_000)
    for number in range(100):
        events.write("search", {"SearchTotalMs": number}, {"user": "x"})
    events.close()
    assert path.stat().st_size < 2_000 and (tmp_path / "deep" / "events.jsonl.1").stat().st_size < 2_200
    kept = [event["SearchTotalMs"] for event in read_events(path, since=0)]
    assert kept == sorted(kept) and kept[-1] == 99 and 20 < len(kept) < 100  # the newest, in order


def test_stats_prints_the_last_hour_of_a_local_run(
    tmp_path: Path, api_server: MessagesAPI, embedder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = tmp_path / "telemetry.jsonl"
    env = {
        "ANTHROPIC_API_KEY": CLAUDE_KEY,
        "ANTHROPIC_BASE_URL": api_server.url,
        "MEMORY_CLAUDE_MAX_RETRIES": "0",
        "MEMORY_TELEMETRY_FILE": str(events),
    }
    api_server.reply_text("Noted, Ana.", usage=usage(400, 6, 100, 50))
    api_server.reply_tool_use(
        "save_memories", {"operations": [{"action": "add", "content": "My name is Ana"}]}, usage=usage(120, 20)
    )
    store = f"sqlite:///{tmp_path / 'chat.db'}"
    runner = CliRunner()
    chat = runner.invoke(main, ["--store", store, "chat", "--user", "ana", "--message", "My name is Ana."], env=env)
    assert chat.exit_code == 0, chat.output
    old = {"ts": time.time() - 2 * 3600, "event": "claude_call", "purpose": "chat", "ClaudeInputTokens": 777_777}
    with events.open("a") as file:
        file.write(json.dumps(old) + "\n")

    table = runner.invoke(main, ["stats"], env=env)
    as_json = runner.invoke(main, ["stats", "--json", "--since", "3h"], env=env)

    assert table.exit_code == 0, table.output
    rows = {line.split()[0]: line.split()[1:] for line in table.stdout.splitlines()[2:]}
    assert rows["ClaudeInputTokens[chat]"][:2] == ["1", "400"]  # events, sum: the old line is past the hour
    assert rows["ClaudeCacheReadTokens[chat]"][:2] == ["1", "100"]
    assert rows["ClaudeInputTokens[extraction]"][:2] == ["1", "120"]
    assert rows["ExtractionOk"][:2] == ["1", "1"] and rows["MemoriesAdded"][:2] == ["1", "1"]
    assert rows["SearchTotalMs"][0] == "2" and len(rows["SearchTotalMs"]) == 5  # recall + context search; no sum
    assert rows["MemoriesInjected"][:2] == ["1", "0"] and rows["RecallEmpty"][:2] == ["1", "1"]
    assert "777777" not in table.stdout and "Ana" not in table.stdout
    assert re.search(r"ClaudeCostUsd\[chat\]\s+1\s+0\.00", table.stdout)
    figures = {row["metric"]: row for row in json.loads(as_json.stdout)["metrics"]}
    assert figures["ClaudeInputTokens[chat]"]["sum"] == 400 + 777_777  # three hours back, it is counted
    missing = runner.invoke(main, ["stats", "--file", str(tmp_path / "none.jsonl")])
    assert missing.exit_code == 0 and "(nothing)" in missing.stdout


def test_a_consolidation_run_reports_its_progress(
    tmp_path: Path, api_server: MessagesAPI, embedder: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    def summarise(body: dict[str, Any]) -> Any:
        facts = re.findall(r"^\d+\. \[\w+\] (.+)$", body["messages"][0]["content"], re.MULTILINE)
        return tool_use_reply(SUMMARY_TOOL, {"summary": " | ".join(facts)[:500]}, usage=usage(50, 20, 0, 10))

    api_server.default = summarise
    settings = get_settings(
        anthropic_api_key=CLAUDE_KEY,
        anthropic_base_url=api_server.url,
        consolidation_min_age_days=0.0,
        consolidation_cluster_similarity=0.45,
        cache_url="none",
        telemetry="emf",
        metrics_service=SERVICE,
    )
    telemetry.configure(settings)
    memory = Memory(SQLiteStore(str(tmp_path / "c.db")), embedder, settings)
    for content in ("My dog Rex is a beagle", "Rex the beagle chases squirrels", "Rex my dog hates baths",
                    "My beagle Rex eats salmon kibble", "I am allergic to penicillin"):  # fmt: skip
        memory.remember("ana", content, importance=0.9 if "allergic" in content else 0.3, tenant_id="t")
    summariser = ClaudeSummariser(make_client(settings), settings.extraction_model, max_chars=2000)
    capsys.readouterr()

    run = Consolidator(memory, summariser, settings).run_all()

    documents = emf_documents(capsys.readouterr().out)
    [report] = run.users
    [line] = of(documents, "consolidation")
    assert line["ConsolidationUsers"] == 1 and line["user"] == user_hash(Scope("ana", "t"))
    assert line["ConsolidationArchived"] == report.merged + report.summarised + report.pruned > 0
    assert line["ConsolidationSummaries"] == report.summaries + (report.profile == "written") >= 2
    assert line["ConsolidationErrors"] == 0
    calls = of(documents, "claude_call")
    assert {call["purpose"] for call in calls} == {"consolidation-cluster", "consolidation-profile"}
    assert all(call["ClaudeInputTokens"] == 50 and call["ClaudeCacheWriteTokens"] == 10 for call in calls)
    assert len(calls) == report.model_calls
    memory.close()
