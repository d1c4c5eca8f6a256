"""bench/locomo_retrieval.py: the cleaning of LoCoMo's evidence ids, the metrics, and a run on one conversation.

The cleaning and metric tests use hand-made data. The two that read the LoCoMo file (CC BY-NC, never in this
repository: ``$LOCOMO_DATA`` or ``../shared/data/locomo/locomo10.json``) skip, saying so, when it is absent.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.append(str(BENCH))

import locomo_data as data  # noqa: E402  (bench/ is not a package: its scripts import each other by path)

TURNS = {"D1:1", "D1:2", "D1:3", "D4:4", "D4:6", "D8:6", "D9:1", "D9:17", "D11:26", "D30:5"}
NEEDS_DATA = pytest.mark.skipif(
    not data.default_data_path().is_file(),
    reason=f"LoCoMo data not at {data.default_data_path()} (set LOCOMO_DATA)",
)


@pytest.mark.parametrize(
    ("raw", "kept", "action"),
    [
        (["D8:6; D9:17"], ("D8:6", "D9:17"), "split"),
        (["D9:1 D4:4 D4:6"], ("D9:1", "D4:4", "D4:6"), "split"),
        (["D:11:26"], ("D11:26",), "repaired"),
        (["D30:05"], ("D30:5",), "repaired"),
        (["D1:1", "D", "D1:2"], ("D1:1", "D1:2"), "dropped"),
        (["D1:3", "D1:19"], ("D1:3",), "dropped"),  # past the end of session 1
        (["D1:3", "D1:3"], ("D1:3",), "repeated"),
    ],
)
def test_clean_evidence_repairs_splits_and_drops(raw: list[str], kept: tuple, action: str) -> None:
    cleaned, changes = data.clean_evidence(raw, TURNS)
    assert cleaned == kept
    assert [change[1] for change in changes] == [action]


def test_a_repair_that_names_no_turn_is_a_drop() -> None:
    assert data.clean_evidence(["D:12:26", "D31:05"], TURNS) == (
        (),
        [("D:12:26", "dropped", ()), ("D31:05", "dropped", ())],
    )
    assert data.clean_evidence(["D1:1", "D4:6"], TURNS) == (("D1:1", "D4:6"), [])


@NEEDS_DATA
def test_the_file_needs_exactly_the_nine_known_fixes_and_one_repeat() -> None:
    conversations, changes = data.load()
    assert sum(len(c.turns) for c in conversations) == 5_882
    assert sum(len(c.questions) for c in conversations) == 1_986
    assert sum(q.category != 5 for c in conversations for q in c.questions) == 1_540
    assert sorted((c.sample_id, c.raw, c.action) for c in changes) == [
        ("conv-26", "D8:6; D9:17", "split"),
        ("conv-42", "D", "dropped"),
        ("conv-42", "D10:19", "dropped"),
        ("conv-43", "D:11:26", "repaired"),
        ("conv-47", "D4:36", "dropped"),
        ("conv-49", "D21:18 D21:22 D11:15 D11:19", "split"),
        ("conv-49", "D22:1 D22:2 D9:10 D9:11", "split"),
        ("conv-49", "D9:1 D4:4 D4:6", "split"),
        ("conv-50", "D30:05", "repaired"),
        ("conv-50", "D4:5", "repeated"),
    ]
    empty = [q for c in conversations for q in c.questions if not q.evidence]
    assert [q.category for q in empty] == [3, 3, 3, 3]
    first = conversations[0].turns[0]
    assert first.content == "[8 May 2023] Caroline: Hey Mel! Good to see you! How have you been?"
    photo = next(t for t in conversations[0].turns if t.caption)
    assert photo.content.endswith(f" [shares a photo: {photo.caption}]")
    # conv-26 has timestamps of 35 sessions but turns in 19: sessions come from the turn lists.
    assert max(t.session for t in conversations[0].turns) == 19


def test_recall_at_k_is_the_share_of_evidence_in_the_top_k() -> None:
    ranking = ["a", "b", "c", "d", "e"]
    assert data.recall_at(ranking, ["a"], 1) == 1.0
    assert data.recall_at(ranking, ["c", "x"], 1) == 0.0
    assert data.recall_at(ranking, ["c", "x"], 5) == 0.5
    assert data.recall_at(ranking, ["e", "b", "z", "y"], 5) == 0.5
    assert data.recall_at(ranking[:2], ["a", "b"], 50) == 1.0  # fewer hits than k


def test_ndcg_at_10_with_binary_relevance() -> None:
    assert data.ndcg_at(["a", "b"], ["a"]) == 1.0
    assert data.ndcg_at(["x", "a"], ["a"]) == pytest.approx(1 / math.log2(3))
    # two relevant, found at ranks 1 and 3: (1 + 1/2) / (1 + 1/log2(3))
    assert data.ndcg_at(["a", "x", "b"], ["a", "b"]) == pytest.approx(1.5 / (1 + 1 / math.log2(3)))
    assert data.ndcg_at([f"x{i}" for i in range(10)] + ["a"], ["a"]) == 0.0  # rank 11 is outside the top 10
    # more than 10 relevant: the ideal DCG stops at 10, so ten hits in the top 10 score 1
    many = [str(i) for i in range(12)]
    assert data.ndcg_at(many, many) == pytest.approx(1.0)


def test_questions_without_evidence_are_unscored_or_count_one_upstream() -> None:
    assert data.question_scores(["a"], ()) is None
    upstream = data.question_scores(["a"], (), empty=1.0)
    assert set(upstream.values()) == {1.0} and len(upstream) == len(data.KS) + 1
    questions = [
        data.Question("s", 0, 4, "q0", ("a",)),
        data.Question("s", 1, 1, "q1", ("a", "b")),
        data.Question("s", 2, 3, "q2", ()),
        data.Question("s", 3, 5, "q3", ("b",)),
    ]
    rankings = {("s", 0): ["a"], ("s", 1): ["b", "x"], ("s", 2): ["a"], ("s", 3): ["x"]}
    summary = data.summarise(questions, rankings)
    assert summary["categories_1_4"] == pytest.approx(
        {"questions": 2, **{f"recall@{k}": 0.75 for k in data.KS}, "ndcg@10": (1 + 1 / (1 + 1 / math.log2(3))) / 2}
    )
    assert summary["by_category"]["single-hop"]["recall@5"] == 1.0
    assert summary["by_category"]["multi-hop"]["recall@1"] == 0.5
    assert "open-domain" not in summary["by_category"]  # its only question has no evidence
    assert summary["upstream"]["questions"] == 4
    assert summary["upstream"]["recall@5"] == pytest.approx((1 + 0.5 + 1 + 0) / 4)
    assert summary["upstream_by_category"]["adversarial"]["recall@50"] == 0.0


@NEEDS_DATA
def test_one_conversation_runs_through_the_product_search(tmp_path: Path) -> None:
    """End to end on SQLite: every turn stored as its own memory, searched in the three modes, in seconds."""
    import locomo_retrieval

    started = time.perf_counter()
    out = tmp_path / "locomo.json"
    report = locomo_retrieval.main(["--conversations", "1", "--backends", "sqlite", "--no-plots", "--out", str(out)])
    assert time.perf_counter() - started < 60
    sqlite = report["backends"]["sqlite"]
    assert sqlite["stored"] == report["data"]["turns"] == 419
    for mode in locomo_retrieval.MODES:
        figures = sqlite["modes"][mode]
        assert figures["categories_1_4"]["questions"] == 150  # 152 of categories 1-4, two without evidence
        assert figures["upstream"]["questions"] == 199
        recalls = [figures["categories_1_4"][f"recall@{k}"] for k in data.KS]
        assert recalls == sorted(recalls) and 0.1 < recalls[1] < 0.9
    assert out.is_file()
