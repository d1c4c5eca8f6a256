"""What a turn costs outside the Claude call: session read, embed, search, prompt, session write.

Loads 10,000 memories for one user (real all-MiniLM-L6-v2 embeddings of template sentences, plus
2,000 of other users) into SQLite, or into Postgres + pgvector (``--store postgres``: an embedded
PostgreSQL 18 started in a temporary folder, or a scratch database on ``DATABASE_URL``'s server, searched
as the application role under row-level security). Sessions are on the real Redis at
``--redis`` (default redis://127.0.0.1:6379/0), holding 10 earlier turns of the session; so is the
core-memory cache, unless ``--cache none`` (then each turn reads its core memories from the store).

Each timed turn runs exactly what ``Agent.run_turn`` runs before and after the Claude call:
``Agent.prepare`` (session read, query embedding, hybrid search, core memories, memory block and system
prompt) and
the two session appends (user and assistant turns). Claude and write-back are not part of it (write-back
runs after the reply, off the request path in Lambda). Prints p50/p95 per step and in total, and writes
``bench/results/turn_overhead_<store>.json``.

    .venv/bin/python bench/turn_overhead.py [--store sqlite|postgres] [--cache redis|none] [--memories 10000]
        [--turns 200]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from recall_latency import QUESTIONS, build

from memory import Memory, Scope, get_settings
from memory.agent import Agent
from memory.embeddings import get_embedder
from memory.sessions import Turn, open_session_store

BUDGET_P50_MS = 20.0  # the requirement for the whole overhead


@contextlib.contextmanager
def store_url(kind: str, folder: Path) -> Iterator[tuple[str, str | None]]:
    """(URL the store connects with, owner URL for the bulk load or None)."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'bench.db'}", None
        return
    from memory.local_postgres import scratch_database

    with scratch_database(folder) as database:
        yield database.app_url, database.owner_url


def percentiles(samples: list[float], digits: int = 2) -> dict[str, float]:
    """p50, p95 and max of millisecond samples, rounded to ``digits`` (shared by the other benchmarks)."""
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered), digits),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], digits),
        "max_ms": round(ordered[-1], digits),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--memories", type=int, default=10_000)
    parser.add_argument("--others", type=int, default=2_000, help="memories of other users")
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--cache",
        choices=("redis", "none"),
        default="redis",
        help="the core-memory cache on --redis (the default), or none: the core memories read from the store",
    )
    parser.add_argument(
        "--maintenance",
        choices=("vacuum", "analyze", "none"),
        default="vacuum",
        help="Postgres: what runs after the bulk load (autovacuum would, within a minute or so)",
    )
    args = parser.parse_args()
    rng = random.Random(11)
    embedder = get_embedder()
    embedder.warm_up()
    user = f"bench-{uuid.uuid4().hex[:8]}"
    session = "bench-session"

    with tempfile.TemporaryDirectory() as folder, store_url(args.store, Path(folder)) as (url, owner_url):
        cache_url = args.redis if args.cache == "redis" else "none"
        settings = get_settings(store_url=url, session_store_url=args.redis, cache_url=cache_url)
        loader = Memory.from_settings(get_settings(store_url=owner_url or url, cache_url="none"), embedder=embedder)
        started = time.perf_counter()
        build(loader, user, args.memories, rng)
        for n in range(4):
            build(loader, f"other-{n}", args.others // 4, rng)
        load_seconds = time.perf_counter() - started
        loader.close()
        if owner_url and args.maintenance != "none":
            import psycopg

            with psycopg.connect(owner_url, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE memories" if args.maintenance == "vacuum" else "ANALYZE memories")

        memory = Memory.from_settings(settings, embedder=embedder)
        sessions = open_session_store(settings=settings)
        agent = Agent(memory, sessions=sessions, settings=settings)
        scope = Scope(user)
        assert memory.store.count(scope) == args.memories, "the store did not receive every memory"
        for i in range(5):
            sessions.append(scope, session, Turn("user", f"Earlier question number {i} about my trip"))
            sessions.append(scope, session, Turn("assistant", f"Earlier answer number {i}: here is what I found"))
        agent.prepare(user, "warm up", session)  # first statement plans and pages the data in

        steps: dict[str, list[float]] = {"session_read": [], "recall": [], "prompt": [], "session_write": []}
        totals: list[float] = []
        injected = []
        try:
            for _ in range(args.turns):
                question = rng.choice(QUESTIONS).format(order=rng.randint(10000, 99999))
                t0 = time.perf_counter()
                turn = agent.prepare(user, question, session)
                t1 = time.perf_counter()
                sessions.append(scope, session, Turn("user", question, turn_id=f"{turn.turn_id}.user"))
                sessions.append(scope, session, Turn("assistant", "A reply.", turn_id=f"{turn.turn_id}.assistant"))
                t2 = time.perf_counter()
                for name in ("session_read", "recall", "prompt"):
                    steps[name].append(turn.timings[name])
                steps["session_write"].append((t2 - t1) * 1000)
                totals.append((t2 - t0) * 1000)
                injected.append(len(turn.block.used))
                assert turn.history, "the session's turns did not come back"
        finally:
            sessions.forget_user(scope)
            if memory.cache is not None:
                memory.cache.clear(scope)
            agent.close()

    rows = {name: percentiles(values) for name, values in steps.items()}
    rows["total (outside Claude)"] = percentiles(totals)
    total_p50 = rows["total (outside Claude)"]["p50_ms"]
    print(
        f"\n{args.store}: {args.memories:,} memories for the user (+{args.others:,} of others), {args.turns} turns, "
        f"sessions on {args.redis}, core-memory cache: {args.cache}; "
        f"{platform.machine()}, Python {platform.python_version()}; load {load_seconds:.0f} s"
    )
    print(f"{'step':28} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for name, figures in rows.items():
        print(f"{name:28} {figures['p50_ms']:8.2f} {figures['p95_ms']:8.2f} {figures['max_ms']:8.2f}")
    verdict = "meets" if total_p50 < BUDGET_P50_MS else "DOES NOT meet"
    print(
        f"\n{verdict} the {BUDGET_P50_MS:.0f} ms p50 budget; "
        f"memories injected per turn: {statistics.mean(injected):.1f}"
    )
    suffix = "" if args.cache == "redis" else "_nocache"
    out = Path(__file__).parent / "results" / f"turn_overhead_{args.store}{suffix}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "store": args.store,
                "memories": args.memories,
                "others": args.others,
                "turns": args.turns,
                "maintenance": args.maintenance if args.store == "postgres" else None,
                "cache": args.cache,
                "steps": rows,
                "budget_p50_ms": BUDGET_P50_MS,
                "meets_budget": total_p50 < BUDGET_P50_MS,
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
