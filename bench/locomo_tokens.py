"""Tokens on LoCoMo: the memory block a turn injects for a question versus replaying the conversation.

The corpus is the one of ``bench/locomo_retrieval.py`` (every dialogue turn of the ten LoCoMo conversations a
memory of its own, ``[8 May 2023] Caroline: text [shares a photo: caption]``, loaded through
``Memory.store.add_many``; data and cleaning: ``bench/locomo_data.py``), on SQLite by default. Each of the
1,986 questions then goes through ``Agent.prepare``, the product's own path before the Claude call: the
question is embedded, searched in hybrid mode for the ``MEMORY_PROMPT_MEMORIES`` best memories (5 by default)
with the product's ranking settings (defaults unless ``MEMORY_*`` says otherwise), and rendered by
``memory.prompting.render_memories`` with the turn's budget (``MEMORY_PROMPT_MEMORY_TOKENS``). Per question:

- injected: the tokens of the ``<memories>`` block of those top-5 hits, one ``<memory type=... age=...>``
  element per hit, rendered as ``Agent.prepare`` renders it (same function, same budget; a test checks the
  text equals the block of a real ``Agent.prepare`` without core memories). Reported without and with the
  fixed ``MEMORY_RULES`` text that precedes the block in the system prompt: the rules never change, so they sit
  in the cached prefix and are paid once per cache lifetime, not per question. A default turn also adds up to
  ``MEMORY_PROMPT_CORE_MEMORIES`` (3) "core" memories, the user's most important ones, to the same block; every
  LoCoMo memory has the same importance, so those three are arbitrary filler here. That block ("agent block")
  is reported too, in the JSON and on one line, but the issue's figure is the top-5 block.
- replay: the tokens of the whole conversation up to the question. LoCoMo asks its questions after the last
  session, so that is every session. Rendering, the plainest fair transcript: per session a header line with
  its date as the memories carry it (``[8 May 2023]``), then one line per turn, ``Speaker: text`` plus
  `` [shares a photo: caption]`` as in the memories, sessions separated by a blank line. No roles, message
  framing or instructions: an API replay would add per-message overhead, so this under-counts the replay if
  anything. A kinder baseline, for questions with evidence: the history only up to and including the session
  of the question's latest evidence turn (the least a replay needs to contain the answer, knowing where it is).
- evidence kept: the share of the question's evidence turns among the memories the block holds (Recall@5
  when all five fit the budget, as they nearly always do); 1 for a replay by construction. Questions without
  evidence (four, category 3) have none. Category 5's evidence is the distractor turn of a false premise.
- saving = 1 - injected / replay, in percent: the mean and median of the per-question figures, the saving of
  the totals (1 - sum injected / sum replay) over the questions of a group, and the worst question's.

Groups: categories 1-4 (1 multi-hop, 2 temporal, 3 open-domain, 4 single-hop), each category (5 adversarial
too), and all questions.

Tokens are counted with ``memory.prompting.estimate_tokens``, the product's own estimator (characters / 3.5,
rounded up; no Claude tokenizer ships offline). The saving is a ratio of two counts of mostly the same kind of
English text, so the estimator's bias largely cancels in it; not entirely: the block carries XML markup and
escaped characters (each apostrophe is ``&#x27;``) that a real tokenizer counts differently from prose, and the
absolute counts carry the estimator's full error. These are tokens, not money: a replayed history is a stable
prefix that prompt caching could bill at the cache-read rate, which this benchmark does not model.

Prints two tables, writes ``bench/results/locomo_tokens.json`` (per group and per question) and
``bench/results/locomo_tokens.png`` (mean tokens per category, log scale; and per question, the block against
the replay up to the evidence's session). A run on fewer conversations writes ``*_quick*`` names (git-ignored),
another backend ``locomo_tokens_<backend>*``.

    .venv/bin/python bench/locomo_tokens.py [--backend sqlite|postgres|qdrant] [--conversations 10]
        [--data PATH] [--no-plots] [--out PATH]
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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import locomo_data as data
import locomo_retrieval as retrieval

from memory import MemoryEntry, telemetry
from memory.agent import Agent
from memory.config import Settings, get_settings
from memory.embeddings import embedder_for
from memory.prompting import MEMORY_RULES, MemoryBlock, estimate_tokens, render_memories

RESULTS = retrieval.RESULTS
RULES_TOKENS = estimate_tokens(MEMORY_RULES)
GROUPS = ("categories_1_4", *(data.CATEGORIES[c] for c in sorted(data.CATEGORIES)), "all")


# -- the replay ----------------------------------------------------------------------------------------------
def replay_text(turns: Sequence[data.Turn]) -> str:
    """The plain transcript of ``turns``: a ``[date]`` header per session, then ``Speaker: text`` per turn.

    The turn line is the memory's own text without its date prefix, so a turn costs the same words in the
    replay as in a memory (the photo caption included) and the comparison is of like with like."""
    sessions: list[str] = []
    lines: list[str] = []
    current = None
    for turn in turns:
        if turn.session != current:
            if lines:
                sessions.append("\n".join(lines))
            lines, current = [f"[{turn.date}]"], turn.session
        lines.append(turn.content.removeprefix(f"[{turn.date}] "))
    if lines:
        sessions.append("\n".join(lines))
    return "\n\n".join(sessions)


def replay_tokens_through(conversation: data.Conversation) -> dict[int, int]:
    """Per session number, the tokens of replaying the conversation from its start through that session."""
    sessions = sorted({turn.session for turn in conversation.turns})
    return {
        number: estimate_tokens(replay_text([turn for turn in conversation.turns if turn.session <= number]))
        for number in sessions
    }


# -- per question --------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class QuestionTokens:
    """One question's injected block, the agent's full block, and the two replay baselines."""

    question: data.Question
    block: MemoryBlock  # the top-k hits rendered as a turn renders them (no core memories)
    agent_block: MemoryBlock  # what a default turn injects: the same hits, then up to 3 core memories
    replay: int  # the whole conversation
    replay_to_evidence: int | None  # through the session of the latest evidence turn; None without evidence
    evidence_kept: float | None  # share of the evidence among the block's memories; None without evidence
    agent_evidence_kept: float | None

    @property
    def injected(self) -> int:
        return self.block.tokens

    @property
    def content(self) -> int:
        """The tokens of the block's memory texts alone, unescaped: the rest is markup and escaping."""
        return estimate_tokens("\n".join(hit.entry.content for hit in self.block.used))

    def row(self) -> dict[str, Any]:
        return {
            "sample_id": self.question.sample_id,
            "index": self.question.index,
            "category": self.question.category,
            "evidence": len(self.question.evidence),
            "injected": self.injected,
            "injected_with_rules": self.injected + RULES_TOKENS,
            "content": self.content,
            "memories": len(self.block.used),
            "left_out": self.block.left_out,
            "agent_block": self.agent_block.tokens,
            "replay": self.replay,
            "replay_to_evidence": self.replay_to_evidence,
            "evidence_kept": self.evidence_kept,
            "agent_evidence_kept": self.agent_evidence_kept,
        }


def kept(block: MemoryBlock, evidence: Sequence[str]) -> float | None:
    """The share of ``evidence`` among the block's memories: what the model can actually read."""
    if not evidence:
        return None
    ids = [hit.entry.metadata["dia_id"] for hit in block.used]
    return data.recall_at(ids, evidence, len(ids))


def top_block(hits: Sequence, settings: Settings) -> MemoryBlock:
    """The block of the recalled hits alone, with the arguments ``Agent.prepare`` passes to the same function."""
    return render_memories(hits, max_memories=len(hits), max_tokens=settings.prompt_memory_tokens)


def measure(agent: Agent, conversation: data.Conversation, questions: Sequence[data.Question]) -> list[QuestionTokens]:
    """Each question of ``conversation`` through ``Agent.prepare``: its blocks, replays and evidence kept."""
    through = replay_tokens_through(conversation)
    whole = through[max(through)]
    session_of = {turn.dia_id: turn.session for turn in conversation.turns}
    rows: list[QuestionTokens] = []
    for question in questions:
        prepared = agent.prepare(question.sample_id, question.text, tenant_id=retrieval.TENANT)
        block = top_block(prepared.hits, agent.settings)
        last = max((session_of[turn] for turn in question.evidence), default=None)
        rows.append(
            QuestionTokens(
                question=question,
                block=block,
                agent_block=prepared.block,
                replay=whole,
                replay_to_evidence=None if last is None else through[last],
                evidence_kept=kept(block, question.evidence),
                agent_evidence_kept=kept(prepared.block, question.evidence),
            )
        )
    return rows


# -- the store -----------------------------------------------------------------------------------------------
def build_corpus(conversations: Sequence[data.Conversation], embedder: Any) -> dict[str, list[MemoryEntry]]:
    """Each user's turns as memories, embedded in batches (the questions are embedded by each turn itself)."""
    corpus = {}
    for conversation in conversations:
        texts = retrieval.memory_texts(conversation, 0)
        corpus[conversation.sample_id] = retrieval.entries(
            conversation, texts, embedder.embed(texts), embedder.model_name
        )
    return corpus


@contextlib.contextmanager
def loaded_agent(kind: str, corpus: dict[str, list[MemoryEntry]], embedder: Any) -> Iterator[Agent]:
    """An ``Agent`` (no session store, no Claude client) over a store of ``kind`` holding exactly ``corpus``."""
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="locomo-tokens-")))
        memory, owner_url = stack.enter_context(retrieval.open_backend(kind, folder, embedder))
        retrieval.load_corpus(memory, corpus, owner_url)
        agent = Agent(memory)
        stack.callback(agent.close)
        memory.search(next(iter(corpus)), "warm up", tenant_id=retrieval.TENANT)
        yield agent


@contextlib.contextmanager
def measured(
    kind: str, conversations: Sequence[data.Conversation], embedder: Any
) -> Iterator[tuple[Agent, list[QuestionTokens], dict[str, float]]]:
    """Every question of ``conversations`` measured on a fresh store of ``kind``, and the seconds each step took;
    the agent stays open inside the block, so a test can ask its store directly."""
    started = time.perf_counter()
    corpus = build_corpus(conversations, embedder)
    embedded = time.perf_counter()
    with loaded_agent(kind, corpus, embedder) as agent:
        loaded = time.perf_counter()
        rows = [row for conversation in conversations for row in measure(agent, conversation, conversation.questions)]
        timings = {
            "embed_turns_s": round(embedded - started, 1),
            "load_s": round(loaded - embedded, 1),
            "questions_s": round(time.perf_counter() - loaded, 1),
        }
        yield agent, rows, timings


# -- figures -------------------------------------------------------------------------------------------------
def saving(injected: float, replay: float) -> float:
    return 100.0 * (1.0 - injected / replay)


def savings(pairs: Sequence[tuple[int, int]]) -> dict[str, float]:
    """Per-question savings (mean, median, the worst) and the saving of the totals, in percent."""
    each = [saving(injected, replay) for injected, replay in pairs]
    return {
        "mean_pct": statistics.fmean(each),
        "median_pct": statistics.median(each),
        "of_totals_pct": saving(sum(i for i, _ in pairs), sum(r for _, r in pairs)),
        "worst_pct": min(each),
    }


def tokens(values: Sequence[int]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "median": statistics.median(values), "total": sum(values)}


def summarise_group(rows: Sequence[QuestionTokens]) -> dict[str, Any]:
    """The figures of one group of questions: tokens, savings against both replays, evidence kept."""
    with_evidence = [row for row in rows if row.replay_to_evidence is not None]
    kept_shares = [row.evidence_kept for row in with_evidence]
    summary: dict[str, Any] = {
        "questions": len(rows),
        "injected": tokens([row.injected for row in rows]),
        "injected_with_rules": tokens([row.injected + RULES_TOKENS for row in rows]),
        "memory_texts": tokens([row.content for row in rows]),
        "agent_block": tokens([row.agent_block.tokens for row in rows]),
        "replay": tokens([row.replay for row in rows]),
        "saving": savings([(row.injected, row.replay) for row in rows]),
        "saving_with_rules": savings([(row.injected + RULES_TOKENS, row.replay) for row in rows]),
        "agent_saving": savings([(row.agent_block.tokens, row.replay) for row in rows]),
        "memories_left_out": sum(row.block.left_out for row in rows),
        "evidence_kept": {
            "questions": len(with_evidence),
            "mean": statistics.fmean(kept_shares) if kept_shares else None,
            "agent_block_mean": statistics.fmean([r.agent_evidence_kept for r in with_evidence])
            if with_evidence
            else None,
        },
    }
    if with_evidence:
        summary["to_evidence"] = {
            "questions": len(with_evidence),
            "injected": tokens([row.injected for row in with_evidence]),
            "replay": tokens([row.replay_to_evidence for row in with_evidence]),
            "saving": savings([(row.injected, row.replay_to_evidence) for row in with_evidence]),
            "saving_with_rules": savings(
                [(row.injected + RULES_TOKENS, row.replay_to_evidence) for row in with_evidence]
            ),
        }
    return summary


def summarise(rows: Sequence[QuestionTokens]) -> dict[str, dict]:
    """Categories 1-4, each category present, and all questions."""
    groups: dict[str, list[QuestionTokens]] = {
        "categories_1_4": [r for r in rows if r.question.category in data.RETRIEVAL_CATEGORIES]
    }
    for category in sorted(data.CATEGORIES):
        groups[data.CATEGORIES[category]] = [r for r in rows if r.question.category == category]
    groups["all"] = list(rows)
    return {name: summarise_group(members) for name, members in groups.items() if members}


HEAD = (
    f"{'group':15} {'n':>5} {'inject':>6} {'+rules':>6} {'replay':>7}  {'saving: mean':>12} {'median':>6} "
    f"{'totals':>6} {'worst':>6}  {'+rules: totals':>14}"
)


def _line(name: str, n: int, injected: float, replay: float, saved: dict, with_rules: dict) -> str:
    return (
        f"{name:15} {n:5d} {injected:6.0f} {injected + RULES_TOKENS:6.0f} {replay:7.0f}  {saved['mean_pct']:12.2f} "
        f"{saved['median_pct']:6.2f} {saved['of_totals_pct']:6.2f} {saved['worst_pct']:6.2f}  "
        f"{with_rules['of_totals_pct']:14.2f}"
    )


def print_tables(report: dict) -> None:
    groups = report["groups"]
    k = report["settings"]["prompt_memories"]
    print(
        "\nTokens per question, counted with memory.prompting.estimate_tokens (characters / 3.5, rounded up).\n"
        f"inject: the <memories> block of the top-{k} hybrid hits as a turn renders it (mean); +rules: with the "
        f"fixed MEMORY_RULES ({RULES_TOKENS} tokens, a cached prefix).\nSaving = 1 - injected / replay, in %: "
        "per-question mean, median, of the totals, and the worst question."
    )
    print("\nA. Against replaying the whole conversation (LoCoMo asks after the last session)")
    print(f"{HEAD}  {'evidence kept':>13}")
    for name, g in groups.items():
        evidence = g["evidence_kept"]
        share = f"{evidence['mean']:.3f} ({evidence['questions']})" if evidence["mean"] is not None else "-"
        line = _line(
            name, g["questions"], g["injected"]["mean"], g["replay"]["mean"], g["saving"], g["saving_with_rules"]
        )
        print(f"{line}  {share:>13}")
    print("\nB. Against replaying only through the session of the question's latest evidence turn (with evidence)")
    print(HEAD)
    for name, g in groups.items():
        if "to_evidence" in g:
            t = g["to_evidence"]
            print(
                _line(
                    name,
                    t["questions"],
                    t["injected"]["mean"],
                    t["replay"]["mean"],
                    t["saving"],
                    t["saving_with_rules"],
                )
            )
    every = groups["all"]
    print(
        f"\nEvidence kept: the share of a question's evidence turns in the block (Recall@{k}); 1 for a replay.\n"
        f"A default turn also adds up to {report['settings']['prompt_core_memories']} core memories to the block: "
        f"{every['agent_block']['mean']:.0f} tokens on average (all questions), saving "
        f"{every['agent_saving']['of_totals_pct']:.2f}% of the totals against the whole conversation.\n"
        f"Memories left out by the {report['settings']['prompt_memory_tokens']}-token budget: "
        f"{every['memories_left_out']}. Of the {every['injected']['mean']:.0f} injected tokens, "
        f"{every['memory_texts']['mean']:.0f} are the memories' own text; the rest is markup and escaping."
    )


def plot(report: dict, stem: str) -> Path:
    try:
        import matplotlib
    except ImportError:
        raise SystemExit(
            "the plot needs matplotlib: .venv/bin/pip install matplotlib (or run with --no-plots)"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    groups = report["groups"]
    names = [name for name in GROUPS if name in groups and name != "categories_1_4"]
    names.insert(names.index("all"), "categories_1_4")
    series = {
        "injected": [groups[n]["injected"]["mean"] for n in names],
        "injected + rules": [groups[n]["injected_with_rules"]["mean"] for n in names],
        "replay to evidence session": [
            groups[n].get("to_evidence", {}).get("replay", {}).get("mean", 0) for n in names
        ],
        "replay whole conversation": [groups[n]["replay"]["mean"] for n in names],
    }
    colours = ["tab:green", "tab:olive", "tab:orange", "tab:red"]
    figure, (bars, scatter) = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.2
    for offset, ((label, values), colour) in enumerate(zip(series.items(), colours, strict=True)):
        bars.bar(np.arange(len(names)) + (offset - 1.5) * width, values, width, color=colour, label=label)
    bars.set(yscale="log", ylim=(100, 200_000), ylabel="tokens per question (mean, estimated)")
    bars.set_xticks(np.arange(len(names)), [n.replace("categories_1_4", "cat. 1-4") for n in names], fontsize=7)
    bars.legend(fontsize=7, ncol=2, loc="upper left")
    bars.grid(axis="y", alpha=0.3)
    bars.set_title("mean tokens per question", fontsize=9)

    points = [row for row in report["questions"] if row["replay_to_evidence"] is not None]
    for category in sorted(data.CATEGORIES):
        chosen = [row for row in points if row["category"] == category]
        scatter.scatter(
            [row["replay_to_evidence"] for row in chosen],
            [row["injected"] for row in chosen],
            s=6,
            alpha=0.5,
            label=data.CATEGORIES[category],
        )
    top = max(row["replay"] for row in report["questions"])
    scatter.plot([100, top], [100, top], color="grey", lw=0.8, ls=":", label="injected = replay")
    scatter.set(xscale="log", yscale="log", xlabel="replay through the latest evidence session (tokens)")
    scatter.set_ylabel("injected block, top-5 (tokens)")
    scatter.legend(fontsize=7, markerscale=2)
    scatter.grid(alpha=0.3)
    scatter.set_title("per question (questions with evidence)", fontsize=9)
    figure.suptitle("LoCoMo: tokens injected by the memory block vs replaying the history", fontsize=10)
    figure.tight_layout()
    path = RESULTS / f"{stem}.png"
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path


def make_report(
    path: Path, conversations: Sequence[data.Conversation], kind: str, agent: Agent, rows: Sequence, timings: dict
) -> dict[str, Any]:
    """The JSON report: the run's settings and data, the groups' figures and every question's row."""
    settings = agent.settings
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}",
        "backend": kind,
        "embedder": type(agent.memory.embedder).__name__,
        "ranking": retrieval._ranking(),
        "settings": {
            "prompt_memories": settings.prompt_memories,
            "prompt_memory_tokens": settings.prompt_memory_tokens,
            "prompt_core_memories": settings.prompt_core_memories,
            "search_mode": "hybrid",
        },
        "token_estimator": "memory.prompting.estimate_tokens: ceil(characters / 3.5)",
        "rules_tokens": RULES_TOKENS,
        "replay_rendering": "per session '[8 May 2023]' then 'Speaker: text [shares a photo: caption]' per turn; "
        "sessions separated by a blank line",
        "data": {
            "path": str(path),
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "conversations": len(conversations),
            "turns": sum(len(c.turns) for c in conversations),
            "questions": len(rows),
        },
        "conversations": {
            c.sample_id: {
                "sessions": len({t.session for t in c.turns}),
                "turns": len(c.turns),
                "replay_chars": len(replay_text(c.turns)),
                "replay_tokens": estimate_tokens(replay_text(c.turns)),
            }
            for c in conversations
        },
        **timings,
        "groups": summarise(rows),
        "questions": [row.row() for row in rows],
    }


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=retrieval.BACKENDS, default="sqlite")
    parser.add_argument("--conversations", type=int, default=10, help="the first N conversations")
    parser.add_argument("--data", type=Path, default=None, help="locomo10.json (default: $LOCOMO_DATA or ../shared)")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="the JSON report (default under bench/results/)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    telemetry.install(telemetry.Telemetry("off"))

    path = args.data or data.default_data_path()
    everything, _ = data.load(path)  # the evidence changes: bench/locomo_retrieval.py prints them
    conversations = everything[: args.conversations]
    quick = len(conversations) < len(everything)
    stem = "locomo_tokens" + (f"_{args.backend}" if args.backend != "sqlite" else "") + ("_quick" if quick else "")
    questions = sum(len(c.questions) for c in conversations)
    print(f"LoCoMo: {path}; {len(conversations)} conversations, {questions:,} questions, backend {args.backend}")
    embedder = embedder_for(get_settings())
    embedder.warm_up()
    with measured(args.backend, conversations, embedder) as (agent, rows, timings):
        report = make_report(path, conversations, args.backend, agent, rows, timings)
    report["total_s"] = round(time.perf_counter() - started, 1)
    print(
        f"{report['data']['turns']:,} turns embedded in {timings['embed_turns_s']} s; "
        f"questions through Agent.prepare in {timings['questions_s']} s"
    )
    print_tables(report)
    RESULTS.mkdir(exist_ok=True)
    out = args.out or RESULTS / f"{stem}.json"
    out.write_text(json.dumps(report, indent=2))
    written = [out] + ([] if args.no_plots else [plot(report, stem)])
    print(f"\ntotal {report['total_s']:.0f} s; written: " + ", ".join(str(p) for p in written))
    return report


if __name__ == "__main__":
    main()
