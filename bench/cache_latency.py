"""How fast a user's core memories come back from the cache, and what the cache adds to or saves a turn.

Builds a SQLite file with ``--memories`` (default 10,000) memories for one user (template sentences, real
all-MiniLM-L6-v2 embeddings, through ``recall_latency.build``), then times, ``--reads`` times each:

- ``MemoryCache.get`` of the user's filled set (``MEMORY_CACHE_SIZE``, 20 memories), a cache hit: in
  process (``memory://``), on the local Redis (``--redis``) and through the Upstash REST protocol
  (``tests/upstash_server.py`` in front of that Redis, with the real ``upstash-redis`` SDK: the protocol's
  cost on this machine, not Upstash's network);
- ``Memory.core_memories`` with each cache: the store's version read plus that hit, what a turn pays;
- the same top 20 by importance read from the store without a cache.

Last, a turn's ``Agent.prepare`` (embed, search, core memories, prompt) with the cache on the local Redis
and without one (core memories from the store's importance index), over the same file, alternating turn
by turn so that both see the same machine (its speed drifts). ``bench/turn_overhead.py [--cache none]``
gives the whole turn overhead with sessions.
Prints a table and writes ``bench/results/cache_latency.json``.

    .venv/bin/python bench/cache_latency.py [--memories 10000] [--reads 500] [--redis redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recall_latency import QUESTIONS, build
from turn_overhead import percentiles

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.upstash_server

from memory import Memory, Scope, get_settings
from memory.cache import MemoryCache
from memory.embeddings import get_embedder
from memory.sessions import open_session_store
from memory.stores.sqlite import SQLiteStore
from tests.upstash_server import serve_upstash


def timed(call: Callable[[], Any], reads: int) -> dict[str, float]:
    for _ in range(10):
        call()
    samples = []
    for _ in range(reads):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return percentiles(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memories", type=int, default=10_000)
    parser.add_argument("--reads", type=int, default=500)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--turns", type=int, default=200, help="turns prepared with and without the cache")
    args = parser.parse_args()
    embedder = get_embedder()
    embedder.warm_up()
    user = f"bench-{uuid.uuid4().hex[:8]}"
    scope = Scope(user)
    tenant = scope.tenant_id
    rows: dict[str, dict[str, float]] = {}

    with tempfile.TemporaryDirectory() as folder, serve_upstash(args.redis, "bench-token") as upstash:
        path = Path(folder) / "bench.db"
        loader = Memory(SQLiteStore(str(path)), embedder, get_settings(cache_url="none"))
        started = time.perf_counter()
        build(loader, user, args.memories, random.Random(5))
        load_seconds = time.perf_counter() - started
        loader.close()

        os.environ["UPSTASH_REDIS_REST_URL"], os.environ["UPSTASH_REDIS_REST_TOKEN"] = upstash.url, upstash.token
        plain = Memory(SQLiteStore(str(path)), embedder, get_settings(cache_url="none"))
        no_cache = "store: top 20 by importance, no cache"
        rows[no_cache] = timed(lambda: plain.core_memories(user, tenant_id=tenant), args.reads)
        version = plain.store.version(scope)
        rows["store: version read"] = timed(lambda: plain.store.version(scope), args.reads)
        plain.close()

        for label, url in (
            ("in process", "memory://"),
            ("local Redis", args.redis),
            ("Upstash protocol", "upstash://"),
        ):
            cache = MemoryCache(open_session_store(url, get_settings()))
            memory = Memory(SQLiteStore(str(path)), embedder, get_settings(), cache=cache)
            expected = [entry.id for entry in memory.core_memories(user, tenant_id=tenant)]  # fills the set
            assert [entry.id for entry in cache.get(scope, version)] == expected, "the cache is not the store's top 20"
            rows[f"cache hit, {label}"] = timed(lambda cache=cache: cache.get(scope, version), args.reads)
            rows[f"core_memories (version + hit), {label}"] = timed(
                lambda memory=memory: memory.core_memories(user, tenant_id=tenant), args.reads
            )
            cache.clear(scope)
            memory.close()

        from memory.agent import Agent

        agents = {}
        for label, cache_url in (
            ("turn prepare, cache on local Redis", args.redis),
            ("turn prepare, no cache", "none"),
        ):
            settings = get_settings(cache_url=cache_url)
            agents[label] = Agent(
                Memory(SQLiteStore(str(path)), embedder, settings, cache=MemoryCache.from_settings(settings))
            )
        samples: dict[str, list[float]] = {label: [] for label in agents}
        rng = random.Random(9)
        for n in range(args.turns + 10):
            question = rng.choice(QUESTIONS).format(order=rng.randint(10000, 99999))
            for label, agent in agents.items():
                started = time.perf_counter()
                turn = agent.prepare(user, question)
                if n >= 10:
                    samples[label].append((time.perf_counter() - started) * 1000)
                assert len(turn.core) == 20 and not turn.degraded
        for label, agent in agents.items():
            rows[label] = percentiles(samples[label])
            if agent.memory.cache is not None:
                agent.memory.cache.clear(scope)
            agent.close()

    print(
        f"\n{args.memories:,} memories for the user (SQLite file), {args.reads} reads each, 20 core memories; "
        f"{platform.machine()}, Python {platform.python_version()}; load {load_seconds:.0f} s"
    )
    print(f"{'read':48} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for name, figures in rows.items():
        print(f"{name:48} {figures['p50_ms']:8.3f} {figures['p95_ms']:8.3f} {figures['max_ms']:8.3f}")
    out = Path(__file__).parent / "results" / "cache_latency.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "memories": args.memories,
                "reads": args.reads,
                "rows": rows,
                "machine": platform.machine(),
                "python": platform.python_version(),
                "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
            indent=2,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
