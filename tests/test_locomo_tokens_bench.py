"""bench/locomo_tokens.py: the replay rendering, the savings, and a run on one LoCoMo conversation.

The first tests use hand-made data. The others read the LoCoMo file (CC BY-NC, never in this repository:
``$LOCOMO_DATA`` or ``../shared/data/locomo/locomo10.json``) and skip, saying so, when it is absent; they run
the benchmark on the first conversation (199 questions) and check it against the product's own search and turn.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.append(str(BENCH))

import locomo_data as data  # noqa: E402  (bench/ is not a package: its scripts import each other by path)
import locomo_tokens as tokens  # noqa: E402

from memory.agent import Agent  # noqa: E402
from memory.prompting import MEMORY_RULES, estimate_tokens  # noqa: E402

NEEDS_DATA = pytest.mark.skipif(
    not data.default_data_path().is_file(),
    reason=f"LoCoMo data not at {data.default_data_path()} (set LOCOMO_DATA)",
)


def turn(session: int, index: int, speaker: str, text: str, caption: str | None = None) -> data.Turn:
    date = f"{7 + session} May 2023"
    return data.Turn("s", f"D{session}:{index}", session, speaker, text, caption, date, float(session * 100 + index))


def test_the_replay_is_a_plain_transcript_with_a_date_header_per_session() -> None:
    turns = [turn(1, 1, "Ann", "Hi!"), turn(1, 2, "Bob", "Look.", "a dog"), turn(2, 1, "Ann", "Bye & thanks")]
    first = "[8 May 2023]\nAnn: Hi!\nBob: Look. [shares a photo: a dog]"
    assert tokens.replay_text(turns) == f"{first}\n\n[9 May 2023]\nAnn: Bye & thanks"
    through = tokens.replay_tokens_through(data.Conversation("s", tuple(turns), ()))
    assert through == {1: estimate_tokens(first), 2: estimate_tokens(tokens.replay_text(turns))}
    assert through[1] < through[2]


def test_savings_are_per_question_and_of_the_totals() -> None:
    figures = tokens.savings([(10, 100), (10, 1000), (50, 100)])  # 90 %, 99 %, 50 %
    assert figures["mean_pct"] == pytest.approx((90 + 99 + 50) / 3)
    assert figures["median_pct"] == pytest.approx(90)
    assert figures["of_totals_pct"] == pytest.approx(100 * (1 - 70 / 1200))
    assert figures["worst_pct"] == pytest.approx(50)
    assert tokens.RULES_TOKENS == estimate_tokens(MEMORY_RULES) > 100


@pytest.fixture(scope="module")
def run() -> Iterator[tuple[dict, data.Conversation, Agent]]:
    """The benchmark's report on the first conversation, and its Agent, still open, for direct searches."""
    from memory.config import get_settings
    from memory.embeddings import embedder_for

    with pytest.MonkeyPatch.context() as patch:  # as conftest's clean_environ does, for the whole module
        for name in list(os.environ):
            if name.startswith(("MEMORY_", "UPSTASH_", "ANTHROPIC_")):
                patch.delenv(name)
        patch.setenv("MEMORY_TELEMETRY_FILE", "none")
        path = data.default_data_path()
        conversation = data.load(path)[0][0]
        embedder = embedder_for(get_settings())
        with tokens.measured("sqlite", [conversation], embedder) as (agent, rows, timings):
            report = tokens.make_report(path, [conversation], "sqlite", agent, rows, timings)
            json.loads(json.dumps(report))  # what main writes
            yield report, conversation, agent


@NEEDS_DATA
def test_the_tables_print_every_group(run: tuple, capsys: pytest.CaptureFixture[str]) -> None:
    report, _, _ = run
    tokens.print_tables(report)
    printed = capsys.readouterr().out
    assert "estimate_tokens" in printed and "top-5 hybrid hits" in printed
    for name in ("categories_1_4", "multi-hop", "temporal", "open-domain", "single-hop", "adversarial", "all"):
        assert sum(line.startswith(f"{name} ") for line in printed.splitlines()) == 2  # tables A and B


@NEEDS_DATA
def test_every_question_injects_far_less_than_the_replay(run: tuple) -> None:
    report, conversation, _ = run
    rows = report["questions"]
    assert len(rows) == 199 and report["data"]["turns"] == 419
    whole = estimate_tokens(tokens.replay_text(conversation.turns))
    assert whole > 15_000  # the paper's ~16.6k tokens per conversation, on average over the ten
    for row in rows:
        assert row["replay"] == whole
        assert 0 < row["content"] < row["injected"] < row["replay"] / 20
        assert row["injected_with_rules"] == row["injected"] + tokens.RULES_TOKENS
        assert row["memories"] + row["left_out"] == report["settings"]["prompt_memories"] == 5
        assert row["agent_block"] >= row["injected"]
        if row["replay_to_evidence"] is not None:
            assert row["replay_to_evidence"] <= row["replay"]
    groups = report["groups"]
    assert groups["all"]["questions"] == 199 and groups["categories_1_4"]["questions"] == 152
    assert groups["categories_1_4"]["evidence_kept"]["questions"] == 150  # two open-domain without evidence
    totals = 100 * (1 - sum(r["injected"] for r in rows) / sum(r["replay"] for r in rows))
    assert groups["all"]["saving"]["of_totals_pct"] == pytest.approx(totals)
    assert 90 < groups["all"]["saving_with_rules"]["of_totals_pct"] < groups["all"]["saving"]["of_totals_pct"]


@NEEDS_DATA
def test_the_kinder_baseline_stops_after_the_latest_evidence_session(run: tuple) -> None:
    report, conversation, _ = run
    questions = {q.index: q for q in conversation.questions}
    line = {t.dia_id: t.content.removeprefix(f"[{t.date}] ") for t in conversation.turns}
    session = {t.dia_id: t.session for t in conversation.turns}
    earlier_sessions = 0
    for row in report["questions"]:
        evidence = questions[row["index"]].evidence
        if not evidence:
            assert row["replay_to_evidence"] is None
            continue
        last = max(session[e] for e in evidence)
        text = tokens.replay_text([t for t in conversation.turns if t.session <= last])
        assert all(line[e] in text for e in evidence)
        assert estimate_tokens(text) == row["replay_to_evidence"]
        if last > 1:  # one session less would miss the latest evidence turn: it is the least replay
            shorter = tokens.replay_text([t for t in conversation.turns if t.session < last])
            assert estimate_tokens(shorter) < row["replay_to_evidence"]
            earlier_sessions += row["replay_to_evidence"] < row["replay"]
    assert earlier_sessions > 100


@NEEDS_DATA
def test_evidence_kept_is_recall_at_5_of_a_direct_search(run: tuple) -> None:
    report, conversation, agent = run
    questions = {q.index: q for q in conversation.questions}
    vectors = agent.memory.embedder.embed([q.text for q in conversation.questions])  # one batch: quicker
    shares = []
    for row in report["questions"]:
        question = questions[row["index"]]
        if not question.evidence:
            assert row["evidence_kept"] is None
            continue
        hits = agent.memory.search(
            question.sample_id,
            question.text,
            top_k=5,
            tenant_id=tokens.retrieval.TENANT,
            embedding=vectors[row["index"]],
        )
        ranking = [hit.entry.metadata["dia_id"] for hit in hits]
        assert row["evidence_kept"] == pytest.approx(data.recall_at(ranking, question.evidence, 5))
        shares.append(row["evidence_kept"])
    assert 0.3 < sum(shares) / len(shares) < 0.9  # neither nothing nor everything: the replay's 1 is not free
    assert report["groups"]["all"]["evidence_kept"]["mean"] == pytest.approx(sum(shares) / len(shares))


@NEEDS_DATA
def test_the_block_is_the_one_a_turn_injects(run: tuple) -> None:
    """The top-5 block equals what ``Agent.prepare`` injects without core memories; a default turn adds them."""
    report, conversation, agent = run
    # No cache: a turn's recall runs inline, so this Agent starts no threads and needs no close (which would
    # close the shared store).
    plain = Agent(agent.memory, settings=agent.settings.model_copy(update={"prompt_core_memories": 0}))
    questions = conversation.questions[:12]
    measured = tokens.measure(agent, conversation, questions)
    more = 0
    for question, row, reported in zip(questions, measured, report["questions"], strict=False):
        turn_block = plain.prepare(question.sample_id, question.text, tenant_id=tokens.retrieval.TENANT).block
        assert row.block.text == turn_block.text and row.block.tokens == turn_block.tokens == reported["injected"]
        lines = row.block.text.splitlines()
        assert lines[0] == "<memories>" and lines[-1] == "</memories>"
        assert len(lines) - 2 == len(row.block.used) == 5
        assert all(line.startswith('<memory type="fact" age="') for line in lines[1:-1])
        assert row.agent_block.text.startswith(row.block.text.removesuffix("</memories>"))
        more += len(row.agent_block.used) > len(row.block.used)
    assert more > 0  # the core memories of a default turn are in its block, not in the top-5 figure
