"""The core-memory cache (memory/cache.py) on the real Redis, the Upstash protocol and in process.

Consistency is checked against the store itself: after any write returns, ``core_memories`` must equal the
store's own top-N by importance, whatever Redis missed. Nothing is mocked: Redis is the local server,
Upstash is tests/upstash_server.py in front of it, the store is real SQLite or the embedded Postgres.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memory import Memory, Scope, get_settings
from memory.cache import MemoryCache, core_key, pointer_key
from memory.cli import main
from memory.errors import SessionStoreError
from memory.models import MemoryEntry
from memory.sessions import open_session_store
from memory.stores.cached import CachingStore
from memory.stores.postgres import PostgresStore
from memory.stores.sqlite import SQLiteStore
from tests.postgres_support import PostgresDatabase
from tests.sessions_support import DEAD_PORT, REDIS_URL, UPSTASH_TOKEN, backend_url, delete_tenant, real_redis
from tests.upstash_server import UpstashServer, serve_upstash

BACKENDS = ("memory", "redis", "upstash")
CacheFactory = Callable[..., MemoryCache]


@pytest.fixture(scope="module")
def upstash() -> Iterator[UpstashServer]:
    with serve_upstash(REDIS_URL, UPSTASH_TOKEN) as server:
        yield server


@pytest.fixture
def tenant() -> Iterator[str]:
    tenant_id = f"test-{uuid.uuid4().hex}"
    yield tenant_id
    delete_tenant(tenant_id)


@pytest.fixture
def make_cache(upstash: UpstashServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[CacheFactory]:
    built: list[MemoryCache] = []

    def make(backend: str, **options: Any) -> MemoryCache:
        url = backend_url(backend, upstash, monkeypatch)
        cache = MemoryCache(open_session_store(url, get_settings()), **options)
        built.append(cache)
        return cache

    yield make
    for cache in built:
        cache.close()


def cached_memory(store: Any, embedder: Any, cache: MemoryCache, **overrides: Any) -> Memory:
    return Memory(store, embedder, get_settings(**overrides), cache=cache)


def truth(memory: Memory, scope: Scope) -> list[tuple[str, str, float]]:
    """The store's own answer, bypassing the cache: what ``core_memories`` must return."""
    inner = memory.store.inner if isinstance(memory.store, CachingStore) else memory.store
    entries = inner.list(scope, limit=memory.settings.cache_size, order_by="importance")
    return [(e.id, e.content, e.importance) for e in entries]


def core(memory: Memory, scope: Scope) -> list[tuple[str, str, float]]:
    return [(e.id, e.content, e.importance) for e in memory.core_memories(scope.user_id, tenant_id=scope.tenant_id)]


# -- the cache itself ------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_fill_is_one_sorted_set_scored_by_importance_with_a_ttl(
    backend: str, make_cache: CacheFactory, tenant: str
) -> None:
    cache = make_cache(backend, size=2, ttl_seconds=300)
    scope = Scope("u1", tenant)
    entries = [MemoryEntry("u1", f"fact {n}", importance=n / 10, tenant_id=tenant) for n in (3, 9, 5)]

    assert cache.get(scope, 7) is None
    assert cache.fill(scope, 7, entries)

    cached = cache.get(scope, 7)
    assert [e.content for e in cached] == ["fact 9", "fact 5"]  # the top 2 by importance
    assert cached[0] == entries[1]  # every field survives the round trip (the embedding is not cached)
    [members, ttl, pointer_ttl, score] = cache.transport.execute(
        [
            ["ZRANGE", core_key(scope, 7), 0, -1],
            ["TTL", core_key(scope, 7)],
            ["TTL", pointer_key(scope)],
            ["ZSCORE", core_key(scope, 7), members_of(cache, scope, 7)[-1]],
        ]
    )
    assert len(members) == 3 and members[0] == "#"  # the filled marker sorts first (score -1)
    assert 0 < int(ttl) <= 300 and int(pointer_ttl) > 300
    assert float(score) == pytest.approx(0.9)
    assert cache.get(scope, 8) is None  # another version is another set
    assert cache.stats.as_dict()["hits"] == 1 and cache.stats.misses == 2


def members_of(cache: MemoryCache, scope: Scope, version: int) -> list[str]:
    [members] = cache.transport.execute([["ZRANGE", core_key(scope, version), 0, -1]])
    return list(members)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_users_set_is_never_read_for_another_user_or_tenant(
    backend: str, make_cache: CacheFactory, tenant: str
) -> None:
    cache = make_cache(backend)
    mine, other_user, other_tenant = Scope("u1", tenant), Scope("u2", tenant), Scope("u1", f"{tenant}-b")
    cache.fill(mine, 3, [MemoryEntry("u1", "my secret", tenant_id=tenant)])
    cache.fill(mine, 3, [MemoryEntry("u2", "not mine", tenant_id=tenant)])  # an entry of another scope is dropped
    assert [e.content for e in cache.get(mine, 3)] == []
    cache.fill(mine, 4, [MemoryEntry("u1", "my secret", tenant_id=tenant)])
    for scope in (other_user, other_tenant):
        assert cache.get(scope, 4) is None and cache.latest(scope) is None
    delete_tenant(f"{tenant}-b")


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_empty_user_is_cached_as_empty_and_expired_memories_are_not_served(
    backend: str, make_cache: CacheFactory, tenant: str
) -> None:
    cache = make_cache(backend)
    scope = Scope("u1", tenant)
    assert cache.fill(scope, 1, [])
    assert cache.get(scope, 1) == []
    soon = MemoryEntry("u1", "expires", tenant_id=tenant, created_at=time.time() - 10, expires_at=time.time() + 0.3)
    assert cache.fill(scope, 2, [soon])
    assert [e.content for e in cache.get(scope, 2)] == ["expires"]
    time.sleep(0.4)
    assert cache.get(scope, 2) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_pointer_only_moves_forward_and_invalidation_drops_older_sets(
    backend: str, make_cache: CacheFactory, tenant: str
) -> None:
    cache = make_cache(backend)
    scope = Scope("u1", tenant)
    entry = MemoryEntry("u1", "old", tenant_id=tenant)
    cache.fill(scope, 10, [entry])
    assert [e.content for e in cache.latest(scope)] == ["old"]

    assert cache.invalidate(scope, 11)  # a write made version 11
    assert cache.latest(scope) is None  # nobody filled 11 yet: degraded mode finds nothing, not "old"
    assert cache.get(scope, 10) is None  # the older set is gone
    cache.fill(scope, 10, [entry])  # a filler that read version 10 before the write finishes late
    assert cache.latest(scope) is None  # ... and cannot move the pointer back
    cache.fill(scope, 11, [MemoryEntry("u1", "new", tenant_id=tenant)])
    assert [e.content for e in cache.latest(scope)] == ["new"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_forget_blocks_degraded_reads_even_against_a_late_filler(
    backend: str, make_cache: CacheFactory, tenant: str
) -> None:
    cache = make_cache(backend)
    scope = Scope("u1", tenant)
    secret = MemoryEntry("u1", "a secret", tenant_id=tenant)
    cache.fill(scope, 5, [secret])
    assert cache.invalidate(scope, None)  # forget_user
    cache.fill(scope, 5, [secret])  # a request that read the store before the forget fills afterwards
    assert cache.latest(scope) is None
    assert cache.describe(scope)["degraded_reads_blocked"] is True


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_spool_keeps_turns_in_order_and_clear_leaves_it(
    backend: str, make_cache: CacheFactory, tenant: str
) -> None:
    cache = make_cache(backend)
    scope = Scope("u1", tenant)
    for n in range(3):
        assert cache.spool(scope, {"turn_id": f"t{n}", "message": "ü ✓ 你好"})
    items = cache.spooled(scope)
    assert [json.loads(item)["turn_id"] for item in items] == ["t0", "t1", "t2"]
    cache.fill(scope, 1, [])
    assert cache.clear(scope) >= 2
    assert cache.get(scope, 1) is None and len(cache.spooled(scope)) == 3
    cache.unspool(scope, items[1])
    assert [json.loads(item)["turn_id"] for item in cache.spooled(scope)] == ["t0", "t2"]
    cache.forget_spool(scope)
    assert cache.spooled(scope) == []


def test_redis_down_makes_every_read_a_logged_miss_and_never_raises(
    caplog: pytest.LogCaptureFixture, tenant: str
) -> None:
    settings = get_settings(session_timeout_seconds=0.5)
    cache = MemoryCache(open_session_store(f"redis://127.0.0.1:{DEAD_PORT}/0", settings))
    scope = Scope("u1", tenant)
    with caplog.at_level(logging.WARNING, logger="memory.cache"):
        assert cache.get(scope, 1) is None
        assert cache.fill(scope, 1, []) is False
        assert cache.latest(scope) is None
        assert cache.invalidate(scope, 2) is False
        assert cache.spool(scope, {"turn_id": "t"}) is False
    assert cache.stats.failures == 5 and "ConnectionError" in cache.stats.last_error
    assert "u1" not in caplog.text and tenant not in caplog.text  # keys are logged as hashes
    with pytest.raises(SessionStoreError):
        cache.clear(scope)


# -- consistency through Memory --------------------------------------------------------------------------
class FlakyTransport:
    """A real transport that refuses commands while ``down`` is set: Redis missing an invalidation."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.down = False
        self.backend = inner.backend

    def execute(self, commands: Any, *, atomic: bool = False) -> list[Any]:
        if self.down:
            raise SessionStoreError("Redis is unreachable (test)")
        return self.inner.execute(commands, atomic=atomic)

    def close(self) -> None:
        self.inner.close()


# Forty statements on forty topics: no two are near duplicates, so each remember adds a memory of its own.
TOPICS = (
    "kayaking rivers", "baking sourdough", "chess openings", "jazz piano", "vintage cameras", "rock climbing",
    "tax deadlines", "orchid care", "marathon training", "vegan recipes", "oil painting", "stamp collecting",
    "astronomy nights", "sailing lessons", "knitting scarves", "espresso machines", "bird watching",
    "cycling routes", "pottery classes", "salsa dancing", "beekeeping", "fly fishing", "origami cranes",
    "wine tasting", "scuba diving", "board games", "calligraphy", "gardening tomatoes", "skiing trips",
    "podcast editing", "guitar chords", "yoga mornings", "surfing waves", "comic books", "tea ceremonies",
    "model trains", "poetry slams", "mountain biking", "camping gear", "violin practice",
)  # fmt: skip
WRITES = st.sampled_from(
    ["remember", "repeat", "importance", "content", "supersede", "retire", "delete", "prune", "forget"]
)
STEPS = st.lists(st.tuples(WRITES, st.integers(0, 9), st.booleans(), st.booleans()), min_size=1, max_size=14)


@pytest.mark.parametrize("backend", ["redis", "upstash"])
def test_no_sequence_of_writes_and_reads_finds_a_stale_core(
    backend: str, embedder: Any, upstash: UpstashServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random writes of every kind, with reads between them, some while Redis misses the invalidation."""
    url = backend_url(backend, upstash, monkeypatch)

    examples = 25 if backend == "redis" else 10  # each Upstash call is an HTTP request: fewer, same coverage of kinds

    @settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(steps=STEPS)
    def run(steps: list[tuple[str, int, bool, bool]]) -> None:
        tenant = f"test-{uuid.uuid4().hex}"
        flaky = FlakyTransport(open_session_store(url, get_settings()))
        cache = MemoryCache(flaky, size=4)  # type: ignore[arg-type]
        memory = cached_memory(SQLiteStore(":memory:"), embedder, cache, cache_size=4)
        scope = Scope("u1", tenant)
        try:
            for n in range(5):
                memory.remember("u1", f"seed fact number {n} about topic {n}", importance=n / 5, tenant_id=tenant)
            assert core(memory, scope) == truth(memory, scope)
            for action, pick, redis_down, read_after in steps:
                flaky.down = redis_down
                apply_write(memory, scope, action, pick)
                flaky.down = False
                if read_after:
                    assert core(memory, scope) == truth(memory, scope), (action, pick, redis_down)
                    latest = cache.latest(scope)
                    if latest is not None and not redis_down:
                        assert [(e.id, e.content, e.importance) for e in latest] == truth(memory, scope)
            assert core(memory, scope) == truth(memory, scope)
        finally:
            memory.close()
            delete_tenant(tenant)

    run()


def apply_write(memory: Memory, scope: Scope, action: str, pick: int) -> None:
    """One write of ``action`` on the ``pick``-th active memory (or a new one); failures of the cache ignored."""
    user, tenant = scope.user_id, scope.tenant_id
    active = memory.list(user, tenant_id=tenant, limit=100)
    target = active[pick % len(active)] if active else None
    try:
        if action == "remember" or target is None:
            memory.remember(
                user, f"new fact {uuid.uuid4().hex[:6]} number {pick}", importance=pick / 9, tenant_id=tenant
            )
        elif action == "repeat":  # an exact repeat merges: the same entry, importance raised
            memory.remember(user, target.content, importance=target.importance, tenant_id=tenant)
        elif action == "importance":
            memory.update(user, target.id, importance=round(1 - target.importance, 3), tenant_id=tenant)
        elif action == "content":
            memory.update(user, target.id, content=f"changed text {uuid.uuid4().hex[:6]}", tenant_id=tenant)
        elif action == "supersede":
            memory.remember(user, f"correction {uuid.uuid4().hex[:6]}", supersedes=target.id, tenant_id=tenant)
        elif action == "retire":
            memory.retire(user, target.id, tenant_id=tenant)
        elif action == "delete":
            memory.delete(user, target.id, tenant_id=tenant)
        elif action == "prune":
            memory.prune(user, max(1, pick // 3), tenant_id=tenant)
        elif action == "forget":
            memory.forget_user(user, tenant_id=tenant)
    except SessionStoreError:  # forget_user says so when Redis could not be cleared; the store did forget
        assert action == "forget"


@pytest.mark.parametrize("backend", ["redis", "upstash"])
def test_concurrent_writers_never_leave_a_reader_with_a_stale_core(
    backend: str, embedder: Any, upstash: UpstashServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Any, tenant: str
) -> None:
    """Four threads, each with its own Memory (and cache client) over one SQLite file and one Redis, writing
    and reading at once. Every read that starts after a change returned must reflect it: no deleted memory
    and no old text, whichever thread wrote and whichever filled the cache. Then every reader agrees with
    the store."""
    url = backend_url(backend, upstash, monkeypatch)
    path = tmp_path / "shared.db"
    first = SQLiteStore(str(path))
    first.open()  # the schema first: the threads test the cache (first opens racing have a test of their own)
    first.close()
    scope = Scope("u1", tenant)
    changes: list[tuple[float, str, str | None]] = []  # (returned at, memory id, its text now; None: deleted)
    reads: list[tuple[float, dict[str, str]]] = []  # (started at, {id: text} read)
    lock = threading.Lock()

    def worker(number: int) -> None:
        cache = MemoryCache(open_session_store(url, get_settings()), size=5)
        memory = cached_memory(SQLiteStore(str(path)), embedder, cache, cache_size=5)

        def read() -> None:
            started = time.monotonic()
            seen = {e.id: e.content for e in memory.core_memories("u1", tenant_id=tenant)}
            with lock:
                reads.append((started, seen))

        def changed(memory_id: str, content: str | None) -> None:
            with lock:
                changes.append((time.monotonic(), memory_id, content))

        try:
            for step in range(5):
                topic = TOPICS[number * 10 + step * 2]
                added = memory.remember(
                    "u1", f"The user loves {topic}", importance=0.9 + step / 100, tenant_id=tenant
                ).entry
                changed(added.id, added.content)
                read()
                text = f"The user has given up {TOPICS[number * 10 + step * 2 + 1]}"
                memory.update("u1", added.id, content=text, tenant_id=tenant)
                changed(added.id, text)
                read()
                if step % 2:
                    memory.delete("u1", added.id, tenant_id=tenant)
                    changed(added.id, None)
                    read()
        finally:
            memory.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stale = []
    for started, seen in reads:
        # What a read that started then may show of a memory: its text as of the last change that had
        # returned by then, or any later one (a read may see a write still returning); never an older one.
        allowed: dict[str, set[str | None]] = {}
        for returned, memory_id, content in sorted(changes):
            if returned < started:
                allowed[memory_id] = {content}
            else:
                allowed.setdefault(memory_id, set()).add(content)
        stale += [(memory_id, text) for memory_id, text in seen.items() if text not in allowed.get(memory_id, {text})]
    assert len(reads) == 4 * (5 * 2 + 2) and stale == []
    cache = MemoryCache(open_session_store(url, get_settings()), size=5)
    memory = cached_memory(SQLiteStore(str(path)), embedder, cache, cache_size=5)
    assert core(memory, scope) == truth(memory, scope) and len(truth(memory, scope)) == 5
    memory.close()


# -- turns -----------------------------------------------------------------------------------------------
def test_turns_answer_from_the_store_when_redis_is_down(embedder: Any, tenant: str) -> None:
    from memory.agent import Agent

    settings = get_settings(session_timeout_seconds=0.5, cache_url=f"redis://127.0.0.1:{DEAD_PORT}/0")
    cache = MemoryCache.from_settings(settings)
    mem = cached_memory(SQLiteStore(":memory:"), embedder, cache)
    mem.remember("u1", "I am allergic to peanuts", importance=0.9, tenant_id=tenant)
    mem.remember("u1", "My cat is called Miso", importance=0.4, tenant_id=tenant)
    agent = Agent(mem, settings=settings)
    turn = agent.prepare("u1", "what is my cat called?", tenant_id=tenant)
    assert not turn.degraded
    assert turn.hits and turn.hits[0].entry.content == "My cat is called Miso"
    assert "allergic to peanuts" in turn.block.text  # the core memory came from the store itself
    agent.close()


@pytest.fixture
def postgres_memory(
    postgres: PostgresDatabase, embedder: Any, tenant: str
) -> Iterator[Callable[..., tuple[Memory, MemoryCache]]]:
    built: list[Memory] = []

    def make(url: str | None = None, **overrides: Any) -> tuple[Memory, MemoryCache]:
        cache = MemoryCache(open_session_store(REDIS_URL, get_settings()))
        mem = cached_memory(PostgresStore(url or postgres.app_url), embedder, cache, **overrides)
        built.append(mem)
        return mem, cache

    yield make
    for mem in built:
        mem.close()
    with psycopg.connect(postgres.owner_url, autocommit=True) as conn:
        for table in ("memories", "memory_events", "turn_records", "memory_versions"):
            conn.execute(f"DELETE FROM {table} WHERE tenant_id = %s", (tenant,))


def test_a_turn_answers_from_the_cache_within_the_budget_when_the_store_hangs(
    postgres: PostgresDatabase,
    postgres_memory: Callable[..., tuple[Memory, MemoryCache]],
    messages_api: Any,
    tenant: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The memories table locked by another session: the store's statements wait; the turn does not."""
    from memory.agent import Agent
    from memory.claude import make_client
    from memory.extraction import RuleExtractor
    from memory.writeback import retry_pending
    from tests.messages_api import API_KEY

    settings = get_settings(
        anthropic_api_key=API_KEY,
        anthropic_base_url=messages_api.url,
        claude_max_retries=0,
        store_budget_seconds=0.5,
        extraction="rules",
    )
    mem, cache = postgres_memory()
    mem.remember("u1", "I am allergic to peanuts", importance=0.9, tenant_id=tenant)
    mem.remember("u1", "I live in Lisbon", importance=0.7, tenant_id=tenant)
    assert len(mem.core_memories("u1", tenant_id=tenant)) == 2  # fills the cache
    agent = Agent(mem, client=make_client(settings), extractor=RuleExtractor(), settings=settings)
    messages_api.reply_text("Noted.")

    with psycopg.connect(postgres.owner_url) as locker:
        locker.execute("LOCK TABLE memories IN ACCESS EXCLUSIVE MODE")
        started = time.perf_counter()
        with caplog.at_level(logging.WARNING, logger="memory.agent"):
            result = agent.run_turn("u1", "My name is Ada.", tenant_id=tenant, turn_id="t-degraded")
        elapsed = time.perf_counter() - started
        locker.rollback()

    assert result.degraded and elapsed < 0.5 + 1.0
    system = messages_api.requests[-1]["body"]["system"][-1]["text"]
    assert "allergic to peanuts" in system and "Lisbon" in system
    assert "t-degraded" in caplog.text and "degraded" in caplog.text
    assert cache.stats.degraded_turns == 1
    assert result.write_back is not None and result.write_back.status == "queued"
    assert [json.loads(item)["turn_id"] for item in cache.spooled(Scope("u1", tenant))] == ["t-degraded"]

    # The store is back: the next write-back drains the spool into the store; nothing was dropped.
    results = retry_pending(mem, RuleExtractor(), Scope("u1", tenant))
    assert [r.turn_id for r in results] == ["t-degraded"] and results[0].status == "done"
    assert cache.spooled(Scope("u1", tenant)) == []
    assert "My name is Ada" in [e.content for e in mem.list("u1", tenant_id=tenant)]
    agent.close()


def test_a_turn_answers_from_the_cache_when_the_store_is_down(
    postgres: PostgresDatabase, postgres_memory: Callable[..., tuple[Memory, MemoryCache]], tenant: str
) -> None:
    """One container filled the cache; another finds the database unreachable and still answers."""
    from memory.agent import Agent

    healthy, _ = postgres_memory()
    healthy.remember("u1", "I prefer aisle seats", importance=0.8, tenant_id=tenant)
    healthy.core_memories("u1", tenant_id=tenant)
    dead_url = f"postgresql://nobody@127.0.0.1:{DEAD_PORT}/none?connect_timeout=1"
    broken, _cache = postgres_memory(dead_url, store_budget_seconds=1.0)
    agent = Agent(broken, settings=broken.settings)
    turn = agent.prepare("u1", "book me a flight", tenant_id=tenant)
    assert turn.degraded and [e.content for e in turn.core] == ["I prefer aisle seats"]
    assert "aisle seats" in turn.block.text
    agent.close()


def test_forget_user_clears_the_cache_and_the_spool_and_blocks_degraded_reads(
    embedder: Any, make_cache: CacheFactory, tenant: str
) -> None:
    cache = make_cache("redis")
    mem = cached_memory(SQLiteStore(":memory:"), embedder, cache)
    scope = Scope("u1", tenant)
    mem.remember("u1", "my bank PIN hint is blue", tenant_id=tenant)
    assert [e.content for e in mem.core_memories("u1", tenant_id=tenant)] == ["my bank PIN hint is blue"]
    cache.spool(scope, {"turn_id": "t1", "message": "private"})

    mem.forget_user("u1", tenant_id=tenant)

    assert mem.core_memories("u1", tenant_id=tenant) == []
    assert cache.latest(scope) is None and cache.spooled(scope) == []
    keys = real_redis().keys(f"am:{{{tenant}:*")
    assert [key for key in keys if key != pointer_key(scope)] == []  # only the block marker is left
    mem.close()


def test_cli_cache_stats_and_clear(tmp_path: Any, monkeypatch: pytest.MonkeyPatch, tenant: str) -> None:
    monkeypatch.setenv("MEMORY_CACHE_URL", REDIS_URL)
    store = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()
    base = ["--store", store, "--tenant", tenant]
    assert runner.invoke(main, [*base, "remember", "--user", "u1", "I like tea", "--importance", "0.8"]).exit_code == 0
    stats = json.loads(runner.invoke(main, [*base, "cache", "stats", "--user", "u1", "--json"]).output)
    # the write moved the pointer to the store's version, but nothing has filled a set for it yet
    assert stats["newest_version"] == stats["store_version"] is not None
    assert stats["cached_memories"] is None and not stats["current"]

    memory = Memory.from_settings(get_settings(store_url=store))
    memory.core_memories("u1", tenant_id=tenant)
    memory.close()
    stats = json.loads(runner.invoke(main, [*base, "cache", "stats", "--user", "u1", "--json"]).output)
    assert stats["current"] and stats["cached_memories"] == 1 and stats["backend"] == "redis"

    cleared = runner.invoke(main, [*base, "cache", "clear", "--user", "u1"])
    assert cleared.exit_code == 0 and "cleared" in cleared.output
    stats = json.loads(runner.invoke(main, [*base, "cache", "stats", "--user", "u1", "--json"]).output)
    assert stats["newest_version"] is None and stats["cached_memories"] is None and not stats["current"]
    table = runner.invoke(main, [*base, "cache", "stats", "--user", "u1"])
    assert table.exit_code == 0 and "store_version" in table.output

    monkeypatch.setenv("MEMORY_CACHE_URL", "none")
    off = runner.invoke(main, [*base, "cache", "stats", "--user", "u1"])
    assert off.exit_code == 2 and "cache is off" in off.output


def test_the_cache_defaults_to_the_session_store_and_none_turns_it_off(
    monkeypatch: pytest.MonkeyPatch, embedder: Any
) -> None:
    from memory.agent import Agent

    assert get_settings().cache_location == "memory://"
    agent = Agent.from_settings(get_settings(store_url="sqlite://"), memory=None)
    assert agent.sessions is agent.memory.cache.transport  # one backend: one client for both
    agent.close()
    split = Agent.from_settings(get_settings(store_url="sqlite://", cache_url=REDIS_URL))
    assert split.sessions is not split.memory.cache.transport and split.sessions.backend == "memory"
    split.close()
    monkeypatch.setenv("SESSION_STORE_URL", REDIS_URL)
    assert get_settings().cache_location == REDIS_URL
    monkeypatch.setenv("MEMORY_CACHE_URL", "None")
    assert get_settings().cache_location is None
    assert MemoryCache.from_settings(get_settings()) is None


def test_a_corrupt_spooled_turn_is_logged_with_the_user_hashed(
    make_cache: CacheFactory, tenant: str, embedder: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Logs name users as telemetry does (a hash), never by id: a spool entry that is not JSON is reported
    and left in place."""
    from memory import telemetry
    from memory.cache import spool_key
    from memory.extraction import RuleExtractor
    from memory.writeback import drain_spool

    cache = make_cache("redis")
    scope = Scope("user-ZEBRA-7781", tenant)
    cache.transport.execute([["RPUSH", spool_key(scope), "{not json"]])
    memory = cached_memory(SQLiteStore(":memory:"), embedder, cache)
    caplog.set_level(logging.ERROR, logger="memory.writeback")
    assert drain_spool(memory, RuleExtractor(), scope) == []
    assert telemetry.user_hash(scope) in caplog.text and "ZEBRA" not in caplog.text
    assert cache.spooled(scope) == ["{not json"]
