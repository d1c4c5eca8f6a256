"""LoCoMo for retrieval: the turns as memories, the questions with clean evidence, and the metrics.

The data (``locomo10.json``, CC BY-NC 4.0, Maharana et al., ACL 2024) is never copied into this repository:
it is read from ``$LOCOMO_DATA``, else from ``shared/data/locomo/locomo10.json`` two folders above this file
(``/work/shared/...`` beside the checkout ``/work/main``). ``/work/shared/data/locomo/README.md`` describes it.

Turns are read from the ``session_<N>`` lists (never from the ``session_<N>_date_time`` keys: conv-26 has
timestamps of sessions without turns). A turn's memory reads ``[8 May 2023] Caroline: text`` plus
`` [shares a photo: <blip_caption>]`` when the turn shares an image.

Evidence ids are cleaned before use as ground truth (``clean_evidence``): a string holding several ids is split
(``"D8:6; D9:17"``, ``"D9:1 D4:4 D4:6"``), a malformed id is repaired only when the repair names an existing
turn (``"D:11:26"`` -> ``D11:26``, ``"D30:05"`` -> ``D30:5``), and what names no turn (``"D"``, an index past
the end of its session) is dropped; a repeated id counts once. Every change is reported.

Metrics, for one question with evidence set E and a ranking of turn ids: Recall@k = |E ∩ top k| / |E|;
NDCG@10 with binary relevance, the ideal ranking putting min(|E|, 10) relevant turns first. A question without
evidence has no score (``None``) unless the caller says what it counts (the upstream convention: 1).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

KS = (1, 5, 10, 25, 50)
NDCG_K = 10
# The integer categories as the paper's statistics and the upstream scoring code fix them (NOT the order in
# which the paper introduces the question types, and not the labels of the Mem0 paper's evaluation code).
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}
RETRIEVAL_CATEGORIES = (1, 2, 3, 4)  # category 5's evidence marks the distractor turn, not a supporting one
DATE_FORMAT = "%I:%M %p on %d %B, %Y"  # "1:56 pm on 8 May, 2023"
_SESSION = re.compile(r"session_(\d+)")
_SEPARATORS = re.compile(r"[;,\s]+")
_REPAIRABLE = re.compile(r"D:?(\d+):(\d+)")


def default_data_path() -> Path:
    configured = os.environ.get("LOCOMO_DATA")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "locomo" / "locomo10.json"


@dataclass(frozen=True, slots=True)
class Turn:
    sample_id: str
    dia_id: str
    session: int
    speaker: str
    text: str
    caption: str | None
    date: str  # "8 May 2023"
    timestamp: float  # the session's start (UTC) plus the turn's index in seconds: turns keep their order

    @property
    def content(self) -> str:
        photo = f" [shares a photo: {self.caption}]" if self.caption else ""
        return f"[{self.date}] {self.speaker}: {self.text}{photo}"


@dataclass(frozen=True, slots=True)
class Question:
    sample_id: str
    index: int  # position in the conversation's ``qa`` list
    category: int
    text: str
    evidence: tuple[str, ...]  # cleaned: each names a turn of the conversation, once


@dataclass(frozen=True, slots=True)
class Conversation:
    sample_id: str
    turns: tuple[Turn, ...]
    questions: tuple[Question, ...]


@dataclass(frozen=True, slots=True)
class Change:
    """One evidence entry that ``clean_evidence`` did not keep as it was."""

    sample_id: str
    question: int
    raw: str
    action: str  # "split", "repaired", "dropped" or "repeated"
    result: tuple[str, ...]

    def describe(self) -> str:
        kept = ", ".join(self.result) or "nothing"
        return f"{self.sample_id} q{self.question}: {self.raw!r} {self.action} -> {kept}"


def clean_evidence(raw: Sequence[str], turn_ids: set[str]) -> tuple[tuple[str, ...], list[tuple[str, str, tuple]]]:
    """The evidence ids that name a turn in ``turn_ids``, in order, once each, and what changed:
    (raw entry, action, ids kept from it) per entry not kept as it was."""
    kept: list[str] = []
    changes: list[tuple[str, str, tuple]] = []
    for entry in raw:
        pieces = [piece for piece in _SEPARATORS.split(entry.strip()) if piece]
        found: list[str] = []
        repaired = dropped = False
        for piece in pieces:
            if piece in turn_ids:
                found.append(piece)
                continue
            match = _REPAIRABLE.fullmatch(piece)
            fixed = f"D{int(match[1])}:{int(match[2])}" if match else None
            if fixed in turn_ids:
                found.append(fixed)
                repaired = True
            else:
                dropped = True
        fresh = [i for i in found if i not in kept]
        if len(pieces) > 1:
            changes.append((entry, "split", tuple(fresh)))
        elif repaired:
            changes.append((entry, "repaired", tuple(fresh)))
        elif dropped or not pieces:
            changes.append((entry, "dropped", ()))
        elif len(fresh) < len(found):
            changes.append((entry, "repeated", ()))
        kept.extend(fresh)
    return tuple(kept), changes


def _date(stamp: str) -> tuple[str, float]:
    when = datetime.strptime(stamp, DATE_FORMAT).replace(tzinfo=UTC)
    return f"{when.day} {when:%B %Y}", when.timestamp()


def parse_conversation(sample: dict) -> tuple[Conversation, list[Change]]:
    conversation = sample["conversation"]
    sample_id = sample["sample_id"]
    sessions = sorted(int(m[1]) for key in conversation if (m := _SESSION.fullmatch(key)))
    turns: list[Turn] = []
    for number in sessions:
        date, start = _date(conversation[f"session_{number}_date_time"])
        for position, turn in enumerate(conversation[f"session_{number}"]):
            turns.append(
                Turn(
                    sample_id=sample_id,
                    dia_id=turn["dia_id"],
                    session=number,
                    speaker=turn["speaker"],
                    text=turn["text"],
                    caption=turn.get("blip_caption") or None,
                    date=date,
                    timestamp=start + position,
                )
            )
    turn_ids = {turn.dia_id for turn in turns}
    questions: list[Question] = []
    changes: list[Change] = []
    for index, item in enumerate(sample["qa"]):
        evidence, changed = clean_evidence(item.get("evidence", []), turn_ids)
        changes.extend(Change(sample_id, index, raw, action, kept) for raw, action, kept in changed)
        questions.append(Question(sample_id, index, int(item["category"]), item["question"], evidence))
    return Conversation(sample_id, tuple(turns), tuple(questions)), changes


def load(path: Path | None = None) -> tuple[list[Conversation], list[Change]]:
    """Every conversation of the file, and every change made to its evidence ids.

    Raises ``FileNotFoundError`` naming ``LOCOMO_DATA`` when the file is not there."""
    path = path or default_data_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"LoCoMo data not found at {path}: set LOCOMO_DATA to the path of locomo10.json "
            "(https://github.com/snap-research/locomo, data/locomo10.json; CC BY-NC 4.0, not shipped here)"
        )
    conversations, changes = [], []
    for sample in json.loads(path.read_text()):
        conversation, changed = parse_conversation(sample)
        conversations.append(conversation)
        changes.extend(changed)
    return conversations, changes


# -- metrics -----------------------------------------------------------------------------------------------
def recall_at(ranking: Sequence[str], evidence: Sequence[str], k: int) -> float:
    relevant = set(evidence)
    return len(relevant.intersection(ranking[:k])) / len(relevant)


def ndcg_at(ranking: Sequence[str], evidence: Sequence[str], k: int = NDCG_K) -> float:
    relevant = set(evidence)
    dcg = sum(1.0 / math.log2(rank + 2) for rank, turn in enumerate(ranking[:k]) if turn in relevant)
    ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(len(relevant), k)))
    return dcg / ideal


def question_scores(ranking: Sequence[str], evidence: Sequence[str], empty: float | None = None) -> dict | None:
    """Recall@k for each of ``KS`` and NDCG@10; without evidence, ``empty`` for each (``None``: no score)."""
    if not evidence:
        return None if empty is None else {**{f"recall@{k}": empty for k in KS}, f"ndcg@{NDCG_K}": empty}
    scores = {f"recall@{k}": recall_at(ranking, evidence, k) for k in KS}
    scores[f"ndcg@{NDCG_K}"] = ndcg_at(ranking, evidence)
    return scores


def mean_scores(rows: Sequence[dict]) -> dict:
    """The mean of each metric over ``rows`` (one dict per scored question), with ``questions``: how many."""
    if not rows:
        return {"questions": 0}
    return {"questions": len(rows), **{name: sum(row[name] for row in rows) / len(rows) for name in rows[0]}}


def summarise(questions: Sequence[Question], rankings: dict[tuple[str, int], list[str]]) -> dict:
    """The figures of one backend and mode: categories 1-4 (questions with evidence) overall and per category,
    and the upstream convention (every question, no evidence counting 1) overall and per category."""
    ours: dict[int, list[dict]] = {}
    upstream: dict[int, list[dict]] = {}
    for question in questions:
        ranking = rankings[question.sample_id, question.index]
        scored = question_scores(ranking, question.evidence)
        if scored is not None and question.category in RETRIEVAL_CATEGORIES:
            ours.setdefault(question.category, []).append(scored)
        upstream.setdefault(question.category, []).append(question_scores(ranking, question.evidence, empty=1.0))
    return {
        "categories_1_4": mean_scores([row for rows in ours.values() for row in rows]),
        "by_category": {CATEGORIES[c]: mean_scores(ours[c]) for c in sorted(ours)},
        "upstream": mean_scores([row for rows in upstream.values() for row in rows]),
        "upstream_by_category": {CATEGORIES[c]: mean_scores(upstream[c]) for c in sorted(upstream)},
    }
