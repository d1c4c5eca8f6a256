"""How fast `agent-memory recall` answers on a SQLite store holding 10,000 memories for one user.

Builds the store (plus 2,000 memories of other users, so the scope filter has something to skip),
loads the model once, then times: the query embedding alone, the one-statement store search alone,
``Memory.search`` (both), and the ``agent-memory recall`` command run in-process (which also opens the
store and prints the table). Prints a table and writes ``bench/results/recall_latency.json``.

    .venv/bin/python bench/recall_latency.py [--memories 10000] [--queries 200]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

from click.testing import CliRunner

from memory import Memory, MemoryEntry, SearchRequest, get_settings
from memory.cli import main as cli
from memory.embeddings import get_embedder
from memory.models import Scope

SUBJECTS = [
    "my sister",
    "my manager",
    "our team",
    "my landlord",
    "the dentist",
    "my son",
    "Priya",
    "Tomás",
    "the client in Osaka",
    "my running club",
    "the billing service",
    "my cat",
    "the new intern",
]
VERBS = [
    "prefers",
    "asked about",
    "is worried about",
    "booked",
    "cancelled",
    "recommended",
    "complained about",
    "decided on",
    "is allergic to",
    "wants to learn",
    "forgot about",
    "paid for",
]
OBJECTS = [
    "the quarterly report",
    "a flight to Lisbon",
    "vegetarian food",
    "the Postgres migration",
    "piano lessons",
    "a refund for order {order}",
    "the blue sofa",
    "weekend hiking trips",
    "invoice {order}",
    "the dentist appointment",
    "a standing desk",
    "Rust programming",
    "the late train",
    "metric units",
    "the summer holiday in Crete",
    "a new laptop",
    "jazz concerts",
    "the marathon in October",
]
WHEN = ["on Monday", "last week", "in March", "yesterday", "every Friday", "before the holidays", "", ""]
QUESTIONS = [
    "What does my sister prefer?",
    "Any update on the refund?",
    "What food should I avoid?",
    "Where am I travelling this summer?",
    "What did the team decide about the database?",
    "Which hobbies have I mentioned?",
    "What is happening with order ORD-{order}?",
    "Who recommended the standing desk?",
    "What does Priya want to learn?",
    "When is the marathon?",
]


def sentence(rng: random.Random) -> str:
    order = f"ORD-{rng.randint(10000, 99999)}"
    thing = rng.choice(OBJECTS).format(order=order)
    text = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {thing} {rng.choice(WHEN)}"
    return text.strip().capitalize() + "."


def build(mem: Memory, user_id: str, count: int, rng: random.Random) -> float:
    """Bulk-load ``count`` memories for ``user_id`` (batch embedding, one transaction per 1,000)."""
    started = time.perf_counter()
    texts = list(dict.fromkeys(sentence(rng) for _ in range(count * 2)))[:count]
    vectors = mem.embedder.embed(texts)
    now = time.time()
    entries = [
        MemoryEntry(
            user_id=user_id,
            content=text,
            importance=rng.random(),
            embedding=vector,
            embedding_model=mem.embedder.model_name,
            created_at=now - rng.random() * 86_400 * 365,
        )
        for text, vector in zip(texts, vectors, strict=True)
    ]
    for start in range(0, len(entries), 1000):
        mem.store.add_many(entries[start : start + 1000])
    return time.perf_counter() - started


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": statistics.median(ordered) * 1000,
        "p95_ms": ordered[int(0.95 * (len(ordered) - 1))] * 1000,
        "max_ms": ordered[-1] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memories", type=int, default=10_000)
    parser.add_argument("--others", type=int, default=2_000, help="memories of other users")
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    rng = random.Random(7)

    started = time.perf_counter()
    embedder = get_embedder()
    embedder.warm_up()
    load_seconds = time.perf_counter() - started

    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'bench.db'}"
        mem = Memory.from_url(url, embedder=embedder)
        build_seconds = build(mem, "bench-user", args.memories, rng)
        for n in range(4):
            build(mem, f"other-{n}", args.others // 4, rng)
        scope = Scope("bench-user")
        assert mem.store.count(scope) == args.memories, "the store did not receive every memory"

        queries = [rng.choice(QUESTIONS).format(order=rng.randint(10000, 99999)) for _ in range(args.queries)]
        settings = get_settings()
        embed_t, store_t, search_t, cli_t = [], [], [], []
        mem.search("bench-user", "warm up")  # first statement compiles and pages the file in
        for query in queries:
            t0 = time.perf_counter()
            vector = embedder.embed([query])[0]
            t1 = time.perf_counter()
            request = SearchRequest(
                text=query, embedding=vector, ranking=settings.ranking, embedding_model=embedder.model_name
            )
            hits = mem.store.search(scope, request)
            t2 = time.perf_counter()
            mem.search("bench-user", query)
            t3 = time.perf_counter()
            embed_t.append(t1 - t0)
            store_t.append(t2 - t1)
            search_t.append(t3 - t2)
            assert hits, f"no hits for {query!r}"
        runner = CliRunner()
        for query in queries[:50]:
            t0 = time.perf_counter()
            result = runner.invoke(cli, ["--store", url, "recall", "--user", "bench-user", query])
            cli_t.append(time.perf_counter() - t0)
            assert result.exit_code == 0, result.output
        mem.close()

    rows = {
        "embed query": percentiles(embed_t),
        "store search (1 SQL statement)": percentiles(store_t),
        "Memory.search (embed + store)": percentiles(search_t),
        "agent-memory recall (in-process CLI)": percentiles(cli_t),
    }
    print(
        f"\n{args.memories:,} memories for one user (+{args.others:,} of others), {args.queries} queries; "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}"
    )
    print(f"model load {load_seconds:.2f} s (once per process); bulk load {build_seconds:.1f} s\n")
    print(f"{'operation':40} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for name, figures in rows.items():
        print(f"{name:40} {figures['p50_ms']:8.1f} {figures['p95_ms']:8.1f} {figures['max_ms']:8.1f}")
    out = Path(__file__).parent / "results" / "recall_latency.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "memories": args.memories,
                "others": args.others,
                "queries": args.queries,
                "model_load_s": load_seconds,
                "build_s": build_seconds,
                "results": rows,
            },
            indent=2,
        )
    )
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
