"""The consolidation job (memory/consolidation.py) on real stores, the real model and the fake Messages API.

The fake model writes each summary as the list of the facts it was sent, so "every fact survives" is
checked twice: in the request the model received, and in the summary that was stored.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from memory import Memory, get_settings
from memory.claude import make_client
from memory.consolidation import PROFILE_TAG, Consolidator
from memory.embeddings import Embedder
from memory.models import MemoryEntry, MemoryFilter, MemoryStatus, Scope
from memory.stores import open_store
from memory.summariser import TOOL_NAME, ClaudeSummariser
from tests.messages_api import API_KEY, MessagesAPI, tool_use_reply
from tests.postgres_support import PostgresDatabase

DOG = [
    "My dog Rex is a beagle",
    "Rex the beagle chases squirrels in the park",
    "Rex my dog hates baths",
    "My beagle Rex eats salmon kibble",
]
COOKING = [
    "I bake sourdough bread every Sunday",
    "I bake my sourdough bread with a starter called Bubbles",
    "I bake bread with rye flour",
    "Sourdough baking is my weekend hobby",
]
TRAVEL = [
    "I visited Kyoto in April",
    "In Kyoto I loved the temples",
    "My Kyoto trip was in spring",
    "I want to go back to Kyoto",
]
IMPORTANT = ["I am allergic to penicillin", "My daughter is called Ana"]
TENANT = "t"


def summarise_request(body: dict[str, Any]) -> Any:
    """The fake cheap model: the summary is every numbered memory it was sent, joined, within the limit the
    instructions give (a profile is capped shorter than a cluster's summary)."""
    text = body["messages"][0]["content"]
    facts = re.findall(r"^\d+\. \[\w+\] (.+)$", text, re.MULTILINE)
    limit = int(re.search(r"At most (\d+) characters", body["system"][0]["text"]).group(1))
    summary = " | ".join(facts)[:limit].rstrip(" |")
    return tool_use_reply(TOOL_NAME, {"summary": summary}, usage={"input_tokens": 50, "output_tokens": 20})


@pytest.fixture(params=["sqlite", "postgres", "qdrant"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "qdrant":
        return f"qdrant+local:///{tmp_path / 'qdrant'}"  # four slashes: an absolute path
    if request.param == "postgres":
        database: PostgresDatabase = request.getfixturevalue("postgres")
        return database.app_url
    return f"sqlite:///{tmp_path / 'consolidate.db'}"


@pytest.fixture
def make_consolidator(
    embedder: Embedder, messages_api: MessagesAPI, tmp_path: Path
) -> Iterator[Callable[..., Consolidator]]:
    memories: list[Memory] = []
    messages_api.default = summarise_request

    def build(url: str, *, summarise: bool = True, store: Any = None, **overrides: Any) -> Consolidator:
        values = {"consolidation_min_age_days": 0.0, "consolidation_cluster_similarity": 0.45, **overrides}
        settings = get_settings(
            store_url=url,
            anthropic_api_key=API_KEY,
            anthropic_base_url=messages_api.url,
            claude_max_retries=0,
            **values,
        )
        memory = Memory(store if store is not None else open_store(url), embedder, settings)
        memories.append(memory)
        summariser = None
        if summarise:
            summariser = ClaudeSummariser(make_client(settings), settings.extraction_model, max_chars=2000)
        return Consolidator(memory, summariser, settings)

    yield build
    for memory in memories:
        memory.close()


def seed(memory: Memory, user: str) -> dict[str, str]:
    """The scenario every test starts from; returns {fact: id}."""
    ids = {}
    for fact in DOG + COOKING + TRAVEL:
        ids[fact] = memory.remember(user, fact, importance=0.3, tenant_id=TENANT).entry.id
    for fact in IMPORTANT:
        ids[fact] = memory.remember(user, fact, importance=0.9, tenant_id=TENANT).entry.id
    Scope(user, TENANT)
    embed = memory.embedder.embed
    now = time.time()
    # a near duplicate that slipped past the write path, and a memory whose TTL has passed
    for content, created in (("I live in Lisbon", now - 60), ("I live in Lisbon now", now - 30)):
        entry = MemoryEntry(
            user_id=user,
            tenant_id=TENANT,
            content=content,
            created_at=created,
            importance=0.7,
            embedding=embed([content])[0],
            embedding_model=memory.embedder.model_name,
        )
        ids[content] = memory.store.add(entry).id
    expired = MemoryEntry(
        user_id=user,
        tenant_id=TENANT,
        content="Call the plumber today",
        created_at=now - 100,
        expires_at=now - 50,
        embedding=embed(["Call the plumber today"])[0],
        embedding_model=memory.embedder.model_name,
    )
    ids["Call the plumber today"] = memory.store.add(expired).id
    return ids


def reachable(memory: Memory, scope: Scope, fact: str) -> bool:
    """An active memory holds the fact, or it is archived with a chain of successors that ends in one."""
    if any(fact in e.content for e in memory.store.list(scope, limit=10_000)):
        return True
    everything = {
        e.id: e
        for e in memory.store.list(scope, MemoryFilter(include_inactive=True, include_expired=True), limit=10_000)
    }
    for entry in everything.values():
        if entry.content != fact:
            continue
        seen = set()
        while entry.status is not MemoryStatus.ACTIVE and entry.superseded_by in everything and entry.id not in seen:
            seen.add(entry.id)
            entry = everything[entry.superseded_by]
        if entry.status is MemoryStatus.ACTIVE and (fact in entry.content or entry.content in fact):
            return True
    return False


def test_consolidation_summarises_merges_expires_and_keeps_every_fact(
    store_url: str, make_consolidator: Callable[..., Consolidator], messages_api: MessagesAPI
) -> None:
    consolidator = make_consolidator(store_url)
    memory, user = consolidator.memory, f"u-{time.time_ns()}"
    scope = Scope(user, TENANT)
    seed(memory, user)
    report = consolidator.run_user(scope)

    assert report.expired == 1 and report.merged == 1 and report.summaries == 3 and report.summarised == 12
    assert report.profile == "written" and report.model_calls == 4 and not report.errors
    sent = "\n".join(r["body"]["messages"][0]["content"] for r in messages_api.requests)
    for fact in DOG + COOKING + TRAVEL:
        assert fact in sent, f"the model never saw {fact!r}"
        assert reachable(memory, scope, fact), f"{fact!r} is lost"
    for fact in [*IMPORTANT, "I live in Lisbon now"]:
        assert (
            memory.store.get(
                scope, next(e.id for e in memory.list(user, tenant_id=TENANT, limit=100) if e.content == fact)
            ).status
            is MemoryStatus.ACTIVE
        )
    assert reachable(memory, scope, "I live in Lisbon")  # archived into the newer statement
    assert not any(
        e.content == "Call the plumber today"
        for e in memory.store.list(scope, MemoryFilter(include_inactive=True, include_expired=True))
    )
    active = memory.list(user, tenant_id=TENANT, limit=100)
    summaries = [e for e in active if e.memory_type.value == "summary" and PROFILE_TAG not in e.tags]
    assert len(summaries) == 3 and all(len(e.metadata["consolidated_from"]) == 4 for e in summaries)
    profile = [e for e in active if PROFILE_TAG in e.tags]
    assert len(profile) == 1 and "penicillin" in profile[0].content
    assert report.active_before == 16 and report.active_after == len(active) == 7  # 2 + Lisbon + 3 + profile


def test_a_second_run_changes_nothing(store_url: str, make_consolidator: Callable[..., Consolidator]) -> None:
    consolidator = make_consolidator(store_url)
    user = f"u-{time.time_ns()}"
    seed(consolidator.memory, user)
    scope = Scope(user, TENANT)
    assert consolidator.run_user(scope).changed
    version = consolidator.memory.store.version(scope)
    again = consolidator.run_user(scope)
    assert not again.changed and again.model_calls == 0 and again.summaries == 0, again
    assert consolidator.memory.store.version(scope) == version


def test_a_dry_run_reports_the_same_and_changes_nothing(
    make_consolidator: Callable[..., Consolidator], tmp_path: Path, messages_api: MessagesAPI
) -> None:
    url = f"sqlite:///{tmp_path / 'dry.db'}"
    consolidator = make_consolidator(url)
    user = f"u-{time.time_ns()}"
    seed(consolidator.memory, user)
    scope = Scope(user, TENANT)
    version = consolidator.memory.store.version(scope)
    dry = consolidator.run_user(scope, dry_run=True)
    assert consolidator.memory.store.version(scope) == version and not messages_api.requests
    real = consolidator.run_user(scope)
    fields = ("expired", "merged", "summaries", "summarised", "profile", "pruned", "purged")
    assert {f: getattr(dry, f) for f in fields} == {f: getattr(real, f) for f in fields}


class Crash(Exception):
    pass


class CrashingStore:
    """The real store, failing its ``crash_at``-th write: a crash between any two commits of a run."""

    WRITES = frozenset({"add", "add_many", "update", "delete", "prune"})

    def __init__(self, inner: Any, crash_at: int | None) -> None:
        self.inner, self.crash_at, self.writes = inner, crash_at, 0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if name not in self.WRITES:
            return attribute

        def write(*args: Any, **kwargs: Any) -> Any:
            self.writes += 1
            if self.writes == self.crash_at:
                raise Crash(f"crash at write {self.writes} ({name})")
            return attribute(*args, **kwargs)

        return write


def final_state(memory: Memory, scope: Scope) -> set[tuple[str, str]]:
    return {(e.memory_type.value, e.content) for e in memory.store.list(scope, limit=1000)}


def test_a_crash_at_any_write_loses_nothing_and_the_next_run_finishes(
    make_consolidator: Callable[..., Consolidator], tmp_path: Path
) -> None:
    baseline = make_consolidator(f"sqlite:///{tmp_path / 'base.db'}", consolidation_retention_days=0)
    baseline_store = CrashingStore(baseline.memory.store, None)
    baseline.memory.store = baseline_store
    seed(baseline.memory, "u")
    writes_before = baseline_store.writes
    baseline.run_user(Scope("u", TENANT))
    run_writes = baseline_store.writes - writes_before
    expected = final_state(baseline.memory, Scope("u", TENANT))
    assert run_writes >= 18  # expire 1, merge 1, 3 summaries and their 12 sources, the profile

    for crash_at in range(1, run_writes + 1):
        url = f"sqlite:///{tmp_path / f'crash-{crash_at}.db'}"
        consolidator = make_consolidator(url, consolidation_retention_days=0)
        seed(consolidator.memory, "u")
        store = CrashingStore(consolidator.memory.store, None)
        consolidator.memory.store = store
        store.crash_at = store.writes + crash_at
        scope = Scope("u", TENANT)
        with pytest.raises(Crash):
            consolidator.run_user(scope)
        for fact in DOG + COOKING + TRAVEL + IMPORTANT + ["I live in Lisbon now"]:
            assert reachable(consolidator.memory, scope, fact), f"crash at write {crash_at}: {fact!r} is lost"
        store.crash_at = None
        consolidator.run_user(scope)
        assert final_state(consolidator.memory, scope) == expected, f"crash at write {crash_at}"


def test_two_runs_never_work_on_the_same_user(
    make_consolidator: Callable[..., Consolidator], tmp_path: Path, messages_api: MessagesAPI
) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    first, second = make_consolidator(url), make_consolidator(url)  # two stores: two connections to one file
    seed(first.memory, "u")
    scope = Scope("u", TENANT)
    assert second.memory.store.try_lease(scope, "someone-else", 60)
    assert first.run_user(scope).skipped == "locked"
    second.memory.store.release_lease(scope, "someone-else")

    slow_start = threading.Event()

    def slow_summary(body: dict[str, Any]) -> Any:
        slow_start.set()
        time.sleep(0.3)
        return summarise_request(body)

    messages_api.default = slow_summary
    reports: list[Any] = []
    threads = [threading.Thread(target=lambda c=c: reports.append(c.run_user(scope))) for c in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.skipped or "ran" for r in reports) == ["locked", "ran"]
    summaries = [e for e in first.memory.list("u", tenant_id=TENANT, limit=100) if "consolidated_from" in e.metadata]
    assert len(summaries) == 3


def test_without_a_key_it_does_the_rest_and_says_so(
    make_consolidator: Callable[..., Consolidator], tmp_path: Path, messages_api: MessagesAPI
) -> None:
    consolidator = make_consolidator(f"sqlite:///{tmp_path / 'nokey.db'}", summarise=False)
    seed(consolidator.memory, "u")
    report = consolidator.run_user(Scope("u", TENANT))
    assert (report.expired, report.merged, report.summaries, report.profile) == (1, 1, 0, "skipped")
    assert "ANTHROPIC_API_KEY" in (consolidator.note or "") and not messages_api.requests


def test_sources_are_purged_only_after_the_retention_period(
    make_consolidator: Callable[..., Consolidator], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'purge.db'}"
    keep = make_consolidator(url)
    seed(keep.memory, "u")
    scope = Scope("u", TENANT)
    assert keep.run_user(scope).purged == 0
    purge = make_consolidator(url, consolidation_retention_days=0)
    assert purge.run_user(scope).purged == 12
    for fact in DOG + COOKING + TRAVEL:
        assert any(fact in e.content for e in purge.memory.list("u", tenant_id=TENANT, limit=100)), fact


def test_run_all_resumes_where_it_stopped(make_consolidator: Callable[..., Consolidator], tmp_path: Path) -> None:
    consolidator = make_consolidator(f"sqlite:///{tmp_path / 'all.db'}", summarise=False)
    users = [f"user-{n}" for n in range(4)]
    for user in users:
        consolidator.memory.remember(user, f"{user} likes tea", tenant_id=TENANT)
    runs = [consolidator.run_all(budget_seconds=1e-9) for _ in users]  # one user per run, then stop
    assert [[u.user_id for u in run.users] for run in runs] == [[user] for user in users]
    assert [run.complete for run in runs] == [False, False, False, True]  # the last one found no user after it
    assert [run.resumed_after for run in runs] == [None, [TENANT, "user-0"], [TENANT, "user-1"], [TENANT, "user-2"]]
    assert [u.user_id for u in consolidator.run_all().users] == users  # a new pass starts from the first
