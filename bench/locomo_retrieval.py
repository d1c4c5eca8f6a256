"""Retrieval quality on LoCoMo: does the project's own search find the turns that answer a question?

Every dialogue turn of the ten LoCoMo conversations (5,882 turns; data and cleaning: ``bench/locomo_data.py``)
becomes a memory of its conversation's user (``user_id`` = the sample id, tenant ``locomo``), reading
``[8 May 2023] Caroline: text [shares a photo: caption]``, with the turn's ``dia_id`` in its metadata and the
session's date as its ``created_at``. Each question is asked through ``Memory.search(top_k=50, mode=...)`` in
vector, keyword and hybrid mode, with the product's ranking settings (``MEMORY_*``, defaults unless set),
on each backend: SQLite (a file), Postgres (an embedded PostgreSQL 18 + pgvector, searched as the application
role under row-level security; ``DATABASE_URL`` names another server) and Qdrant (local mode in a folder).

The corpus goes in through the store (``Memory.store.add_many``, one transaction per conversation), with
embeddings from the Memory's own embedder in batches: ``Memory.remember`` would fold a near duplicate (cosine >=
0.92) into the earlier memory or let it supersede that one, and 104 of the 5,882 turns have such an earlier turn
in their conversation (two speakers' "Thanks, ...! ... great ..." replies, say), while an evaluation corpus needs
every turn as its own memory. ``Memory`` has no switch for a bulk import without dedup. The run checks that each
user holds exactly their turns. Question embeddings are computed once, in a batch, and handed to
``Memory.search`` (``embedding=``), which is what a turn does; keyword mode ignores them.

Reported per backend and mode: Recall@1/5/10/25/50 (the share of a question's evidence turns in the top k)
and NDCG@10 (binary relevance), on categories 1-4 (1 multi-hop, 2 temporal, 3 open-domain, 4 single-hop;
the four questions without evidence have no score) overall and per category, and in the upstream convention
(all 1,986 questions, category 5 included, no evidence counting 1), beside the LoCoMo paper's DRAGON
dialog-turn retrieval (Table 3). Prints tables, writes ``bench/results/locomo_retrieval.json`` and two
PNG plots beside it (``--quick``: ``*_quick*`` names, git-ignored).

    .venv/bin/python bench/locomo_retrieval.py [--backends sqlite postgres qdrant] [--conversations 10]
        [--context 0] [--data PATH] [--quick]

``--quick`` (CI, ``make bench-quick``): two conversations, SQLite only, under a minute. ``--context N`` (a
knob of this benchmark, not of the product) appends the text of the N turns before and after each turn, of
the same session, to its memory; its results go to ``locomo_retrieval_context<N>*``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import locomo_data as data
import numpy as np

from memory import Memory, MemoryEntry, Scope, telemetry
from memory.config import get_settings
from memory.embeddings import embedder_for

TENANT = "locomo"
MODES = ("vector", "keyword", "hybrid")
BACKENDS = ("sqlite", "postgres", "qdrant")
TOP_K = max(data.KS)
GOAL_RECALL_5 = 0.60  # issue #10, categories 1-4
# LoCoMo paper (arXiv 2402.17753) Table 3, dialog turns retrieved by DRAGON, upstream convention.
DRAGON = {5: 0.567, 10: 0.662, 25: 0.767, 50: 0.827}
RESULTS = Path(__file__).resolve().parent / "results"


@contextlib.contextmanager
def open_backend(kind: str, folder: Path, embedder: Any) -> Iterator[tuple[Memory, str | None]]:
    """A Memory on an empty store of ``kind`` and the owner URL to VACUUM with (Postgres), closed afterwards."""
    with contextlib.ExitStack() as stack:
        owner_url = None
        if kind == "sqlite":
            url = f"sqlite:///{folder / 'locomo.db'}"
        elif kind == "postgres":
            from memory.local_postgres import scratch_database

            database = stack.enter_context(scratch_database(folder, prefix="locomo_bench"))
            url, owner_url = database.app_url, database.owner_url
        elif kind == "qdrant":
            url = f"qdrant+local:///{folder / 'qdrant'}"  # four slashes: an absolute path
        else:
            raise ValueError(f"unknown backend {kind!r}; use one of {', '.join(BACKENDS)}")
        memory = Memory.from_url(url, embedder=embedder, cache_url="none")
        stack.callback(memory.close)
        yield memory, owner_url


def memory_texts(conversation: data.Conversation, context: int) -> list[str]:
    """Each turn's content, plus with ``context`` the text of that many turns on each side in its session."""
    if context == 0:
        return [turn.content for turn in conversation.turns]
    turns = conversation.turns
    texts = []
    for i, turn in enumerate(turns):
        near = [turns[j] for j in range(max(0, i - context), min(len(turns), i + context + 1)) if j != i]
        around = " | ".join(f"{other.speaker}: {other.text}" for other in near if other.session == turn.session)
        texts.append(f"{turn.content} (context: {around})" if around else turn.content)
    return texts


def entries(conversation: data.Conversation, texts: Sequence[str], vectors: np.ndarray, model: str) -> list:
    return [
        MemoryEntry(
            user_id=conversation.sample_id,
            tenant_id=TENANT,
            content=text,
            session_id=f"session_{turn.session}",
            metadata={"dia_id": turn.dia_id, "speaker": turn.speaker, "session": turn.session},
            created_at=turn.timestamp,
            embedding=vector,
            embedding_model=model,
        )
        for turn, text, vector in zip(conversation.turns, texts, vectors, strict=True)
    ]


def embed(conversations: Sequence, questions: Sequence, embedder: Any, context: int) -> tuple[dict, Any, dict]:
    """Each user's entries (turns embedded in batches), the questions' embeddings, and the seconds each took."""
    started = time.perf_counter()
    texts = {c.sample_id: memory_texts(c, context) for c in conversations}
    corpus = {
        c.sample_id: entries(c, texts[c.sample_id], embedder.embed(texts[c.sample_id]), embedder.model_name)
        for c in conversations
    }
    middle = time.perf_counter()
    question_vectors = embedder.embed([q.text for q in questions])
    timings = {"embed_turns_s": round(middle - started, 1), "embed_questions_s": round(time.perf_counter() - middle, 1)}
    return corpus, question_vectors, timings


def load_corpus(memory: Memory, corpus: dict[str, list[MemoryEntry]], owner_url: str | None) -> float:
    """Store every turn as its own memory (no dedup: see the module docstring) and check the counts."""
    started = time.perf_counter()
    for rows in corpus.values():
        memory.store.add_many(rows)
    if owner_url is not None:  # what autovacuum would do within a minute: plans and index-only scans as usual
        import psycopg

        with psycopg.connect(owner_url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE memories")
    seconds = time.perf_counter() - started
    for user, rows in corpus.items():
        stored = memory.store.count(Scope(user, TENANT))
        assert stored == len(rows), f"{user}: {stored} memories stored for {len(rows)} turns"
    return seconds


def ask(memory: Memory, questions: Sequence[data.Question], vectors: np.ndarray, mode: str) -> tuple[dict, list]:
    """Each question's ranking of dia_ids (best first, at most TOP_K) and each search's milliseconds."""
    rankings: dict[tuple[str, int], list[str]] = {}
    times: list[float] = []
    for question, vector in zip(questions, vectors, strict=True):
        started = time.perf_counter()
        hits = memory.search(
            question.sample_id, question.text, top_k=TOP_K, mode=mode, tenant_id=TENANT, embedding=vector
        )
        times.append((time.perf_counter() - started) * 1000)
        rankings[question.sample_id, question.index] = [hit.entry.metadata["dia_id"] for hit in hits]
    return rankings, times


def run_backend(kind: str, corpus: dict, questions: Sequence, vectors: np.ndarray, embedder: Any) -> dict:
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="locomo-")))
        memory, owner_url = stack.enter_context(open_backend(kind, folder, embedder))
        result: dict[str, Any] = {"load_s": round(load_corpus(memory, corpus, owner_url), 2), "modes": {}}
        result["stored"] = sum(memory.store.count(Scope(user, TENANT)) for user in corpus)
        memory.search(questions[0].sample_id, "warm up", tenant_id=TENANT)  # first statement plans, pages in
        for mode in MODES:
            rankings, times = ask(memory, questions, vectors, mode)
            result["modes"][mode] = {
                "search_s": round(sum(times) / 1000, 2),
                "search_p50_ms": round(statistics.median(times), 2),
                "search_p95_ms": round(sorted(times)[int(0.95 * (len(times) - 1))], 2),
                **data.summarise(questions, rankings),
            }
    return result


def hybrid_wins(result: dict, metric: str = "recall@5") -> bool:
    modes = {mode: result["modes"][mode]["categories_1_4"][metric] for mode in MODES}
    return modes["hybrid"] > max(modes["vector"], modes["keyword"])


def print_tables(report: dict) -> None:
    ks = [f"recall@{k}" for k in data.KS]
    head = "  ".join(f"R@{k:<3}" for k in data.KS) + "  NDCG@10"
    cats = [data.CATEGORIES[c] for c in data.RETRIEVAL_CATEGORIES]
    first = next(iter(report["backends"].values()))["modes"]["hybrid"]
    scored, upstream = first["categories_1_4"]["questions"], first["upstream"]["questions"]
    print(f"\nCategories 1-4: {scored} questions with evidence; Recall@k and NDCG@10 (R@5 per category on the right)")
    print(f"{'backend':9} {'mode':8} {head}  | " + " ".join(f"{c:>11}" for c in cats))
    for kind, result in report["backends"].items():
        for mode in MODES:
            figures = result["modes"][mode]
            row = figures["categories_1_4"]
            per = " ".join(f"{figures['by_category'].get(c, {}).get('recall@5', float('nan')):11.3f}" for c in cats)
            print(f"{kind:9} {mode:8} " + "  ".join(f"{row[k]:.3f}" for k in ks) + f"  {row['ndcg@10']:.3f}  | {per}")
    print(f"\nUpstream convention: all {upstream} questions, no evidence = 1")
    print(f"{'backend':9} {'mode':8} {head}")
    for kind, result in report["backends"].items():
        for mode in MODES:
            row = result["modes"][mode]["upstream"]
            print(f"{kind:9} {mode:8} " + "  ".join(f"{row[k]:.3f}" for k in ks) + f"  {row['ndcg@10']:.3f}")
    dragon = "  ".join(f"{DRAGON[k]:.3f}" if k in DRAGON else "  -  " for k in data.KS)
    print(f"{'paper':9} {'DRAGON':8} {dragon}")
    print("\nseconds: load, then search (all questions) per mode; p50 ms per search")
    for kind, result in report["backends"].items():
        searches = "  ".join(
            f"{mode} {result['modes'][mode]['search_s']:.1f} s ({result['modes'][mode]['search_p50_ms']:.1f} ms)"
            for mode in MODES
        )
        print(f"{kind:9} load {result['load_s']:.1f} s, {result['stored']} memories; {searches}")
    for kind, result in report["backends"].items():
        figures = {mode: result["modes"][mode]["categories_1_4"]["recall@5"] for mode in MODES}
        versus = ", ".join(
            f"{'beats' if figures['hybrid'] > figures[mode] else 'does NOT beat'} {mode} {figures[mode]:.3f}"
            for mode in ("vector", "keyword")
        )
        goal = "meets" if figures["hybrid"] >= GOAL_RECALL_5 else "is below"
        print(f"{kind}: hybrid R@5 {figures['hybrid']:.3f} {versus}; {goal} the goal of {GOAL_RECALL_5:.2f}")


def plot(report: dict, stem: str) -> list[Path]:
    try:
        import matplotlib
    except ImportError:
        raise SystemExit(
            "the plots need matplotlib: .venv/bin/pip install matplotlib (or run with --no-plots)"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    backends = list(report["backends"])
    colours = {"vector": "tab:blue", "keyword": "tab:orange", "hybrid": "tab:green"}
    figure, axes = plt.subplots(1, len(backends), figsize=(4.2 * len(backends), 3.6), sharey=True, squeeze=False)
    for ax, kind in zip(axes[0], backends, strict=True):
        modes = report["backends"][kind]["modes"]
        for mode in MODES:
            values = [modes[mode]["categories_1_4"][f"recall@{k}"] for k in data.KS]
            ax.plot(data.KS, values, marker="o", color=colours[mode], label=f"{mode} (cat. 1-4)")
        values = [modes["hybrid"]["upstream"][f"recall@{k}"] for k in data.KS]
        ax.plot(data.KS, values, ls="--", color=colours["hybrid"], alpha=0.6, label="hybrid (upstream conv.)")
        ax.plot(list(DRAGON), list(DRAGON.values()), "kx", label="DRAGON, paper (upstream conv.)")
        ax.axhline(GOAL_RECALL_5, color="grey", lw=0.8, ls=":")
        ax.set(xscale="log", xticks=data.KS, xticklabels=[str(k) for k in data.KS], title=kind, xlabel="k")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("Recall@k")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    figure.suptitle("LoCoMo: evidence turns in the top k", fontsize=10)
    figure.tight_layout()
    curves = RESULTS / f"{stem}_recall.png"
    figure.savefig(curves, dpi=80)
    plt.close(figure)

    groups = [data.CATEGORIES[c] for c in data.RETRIEVAL_CATEGORIES] + ["all 1-4"]
    figure, axes = plt.subplots(1, len(backends), figsize=(4.2 * len(backends), 3.4), sharey=True, squeeze=False)
    for ax, kind in zip(axes[0], backends, strict=True):
        modes = report["backends"][kind]["modes"]
        for offset, mode in enumerate(MODES):
            by = modes[mode]["by_category"]
            values = [by.get(g, {}).get("recall@5", 0.0) for g in groups[:-1]]
            values.append(modes[mode]["categories_1_4"]["recall@5"])
            ax.bar(np.arange(len(groups)) + (offset - 1) * 0.27, values, 0.27, color=colours[mode], label=mode)
        ax.axhline(GOAL_RECALL_5, color="grey", lw=0.8, ls=":")
        ax.set_xticks(np.arange(len(groups)), groups, fontsize=7)
        ax.set_title(kind)
    axes[0][0].set_ylabel("Recall@5")
    axes[0][-1].legend(fontsize=7)
    figure.suptitle("LoCoMo: Recall@5 per question category", fontsize=10)
    figure.tight_layout()
    bars = RESULTS / f"{stem}_categories.png"
    figure.savefig(bars, dpi=80)
    plt.close(figure)
    return [curves, bars]


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--conversations", type=int, default=10, help="the first N conversations")
    parser.add_argument("--context", type=int, default=0, help="neighbouring turns added to each memory")
    parser.add_argument("--data", type=Path, default=None, help="locomo10.json (default: $LOCOMO_DATA or ../shared)")
    parser.add_argument("--quick", action="store_true", help="CI: 2 conversations, SQLite only")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="the JSON report (default under bench/results/)")
    args = parser.parse_args(argv)
    if args.quick:
        args.backends, args.conversations = ["sqlite"], 2
    stem = "locomo_retrieval" + (f"_context{args.context}" if args.context else "") + ("_quick" if args.quick else "")
    started = time.perf_counter()
    telemetry.install(telemetry.Telemetry("off"))

    path = args.data or data.default_data_path()
    conversations, changes = data.load(path)
    conversations = conversations[: args.conversations]
    print(f"LoCoMo: {path}; evidence ids cleaned in the whole file ({len(changes)} entries changed):")
    for change in changes:
        print(f"  {change.describe()}")
    questions = [q for c in conversations for q in c.questions]
    embedder = embedder_for(get_settings())
    embedder.warm_up()
    corpus, question_vectors, timings = embed(conversations, questions, embedder, args.context)
    turns = sum(len(rows) for rows in corpus.values())
    print(
        f"{turns:,} turns embedded in {timings['embed_turns_s']} s, {len(questions):,} questions in "
        f"{timings['embed_questions_s']} s"
    )

    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}",
        "embedder": type(embedder).__name__,
        "ranking": _ranking(),
        "data": {
            "path": str(path),
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "conversations": len(conversations),
            "turns": turns,
            "questions": len(questions),
            "evidence_changes": [change.describe() for change in changes],
        },
        "context": args.context,
        **timings,
        "backends": {},
    }
    for kind in args.backends:
        report["backends"][kind] = run_backend(kind, corpus, questions, question_vectors, embedder)
        assert report["backends"][kind]["stored"] == turns, f"{kind}: not every turn was stored"
    report["hybrid_beats_vector_and_keyword_at_recall@5"] = {k: hybrid_wins(r) for k, r in report["backends"].items()}
    report["total_s"] = round(time.perf_counter() - started, 1)
    print_tables(report)
    RESULTS.mkdir(exist_ok=True)
    out = args.out or RESULTS / f"{stem}.json"
    out.write_text(json.dumps(report, indent=2))
    written = [out] + ([] if args.no_plots else plot(report, stem))
    print(f"\ntotal {report['total_s']:.0f} s; written: " + ", ".join(str(p) for p in written))
    return report


def _ranking() -> dict:
    ranking = get_settings().ranking
    return {name: getattr(ranking, name) for name in ranking.__slots__}


if __name__ == "__main__":
    main()
