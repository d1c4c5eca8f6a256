"""Remembering a repeat merges it, remembering a correction supersedes the old entry; nothing is lost.

Pairs were chosen from the real model's cosines: "I drink coffee every morning" / "Every morning I drink
coffee" is 0.948 (a paraphrase adding no word), "The meeting is on Monday" / "... Tuesday" is 0.944
(a near duplicate that changes a fact); the default ``MEMORY_DEDUP_THRESHOLD`` is 0.92.
"""

from __future__ import annotations

import pytest

from memory import EventKind, Memory, MemoryNotFoundError, MemoryStatus, RememberAction, get_settings
from memory.service import REINFORCEMENT

MONDAY, TUESDAY = "The meeting is on Monday", "The meeting is on Tuesday"


def active(mem: Memory, user: str = "alice") -> list[str]:
    return [e.content for e in mem.list(user)]


@pytest.mark.parametrize(
    "repeat", ["i am ALLERGIC to peanuts", "  I am allergic\tto  peanuts!! ", "I am allergic to peanuts."]
)
def test_exact_repeat_merges_and_reinforces(mem: Memory, repeat: str) -> None:
    first = mem.remember("alice", "I am allergic to peanuts", importance=0.5, tags=["health"])

    again = mem.remember("alice", repeat, importance=0.6, tags=["food", "health"])

    assert again.action is RememberAction.MERGED
    assert again.entry.id == again.previous_id == first.entry.id
    assert again.entry.importance == pytest.approx(0.6 + REINFORCEMENT)
    assert again.entry.tags == ("health", "food")
    assert active(mem) == ["I am allergic to peanuts"]  # the first wording stays
    assert mem.get("alice", first.entry.id).importance == pytest.approx(0.6 + REINFORCEMENT)


def test_reinforcement_is_capped_at_one(mem: Memory) -> None:
    mem.remember("alice", "I am allergic to peanuts", importance=0.99)

    merged = [mem.remember("alice", "I am allergic to peanuts").entry for _ in range(3)]

    assert [e.importance for e in merged] == [1.0, 1.0, 1.0]


def test_near_duplicate_adding_no_word_merges(mem: Memory) -> None:
    first = mem.remember("alice", "I drink coffee every morning")

    again = mem.remember("alice", "Every morning I drink coffee")

    assert again.action is RememberAction.MERGED
    assert again.entry.id == first.entry.id
    assert active(mem) == ["I drink coffee every morning"]
    merged_event = mem.history("alice", first.entry.id)[-1]
    assert merged_event.kind is EventKind.MERGED
    assert merged_event.details["merged_content"] == "Every morning I drink coffee"
    assert 0.92 <= merged_event.details["similarity"] < 1.0


def test_near_duplicate_that_changes_a_fact_supersedes(mem: Memory) -> None:
    old = mem.remember("alice", MONDAY, importance=0.8, tags=["work"]).entry

    new = mem.remember("alice", TUESDAY, importance=0.3)

    assert new.action is RememberAction.SUPERSEDED
    assert new.previous_id == old.id
    assert (new.entry.importance, new.entry.tags) == (0.8, ("work",))  # carried over from the old entry
    archived = mem.get("alice", old.id)
    assert (archived.status, archived.superseded_by) == (MemoryStatus.SUPERSEDED, new.entry.id)
    assert active(mem) == [TUESDAY]
    assert {e.id for e in mem.list("alice", include_inactive=True)} == {old.id, new.entry.id}
    for mode in ("hybrid", "vector", "keyword"):
        assert [h.entry.id for h in mem.search("alice", "meeting Monday", mode=mode)] == [new.entry.id]
    event = mem.history("alice", old.id)[-1]
    assert (event.kind, event.related_id, event.details["automatic"]) == (
        EventKind.SUPERSEDED,
        new.entry.id,
        True,
    )


def test_explicit_supersedes_replaces_an_unrelated_entry(mem: Memory) -> None:
    old = mem.remember("alice", "I live in Paris").entry

    new = mem.remember("alice", "I moved to a farm near Porto last spring", supersedes=old.id)

    assert (new.action, new.previous_id) == (RememberAction.SUPERSEDED, old.id)
    assert mem.get("alice", old.id).superseded_by == new.entry.id
    assert active(mem) == ["I moved to a farm near Porto last spring"]
    event = mem.history("alice", old.id)[-1]
    assert (event.kind, event.related_id, event.details["automatic"]) == (
        EventKind.SUPERSEDED,
        new.entry.id,
        False,
    )


def test_supersedes_unknown_id_raises_and_stores_nothing(mem: Memory) -> None:
    mem.remember("alice", "I live in Paris")

    with pytest.raises(MemoryNotFoundError, match="no-such-id"):
        mem.remember("alice", "I live in Rome", supersedes="no-such-id")

    assert active(mem) == ["I live in Paris"]


def test_supersedes_with_a_restatement_of_the_same_text(mem: Memory) -> None:
    """Library bug: the new entry is inserted before the old one is archived, so the unique active
    content hash rejects it and a ``DuplicateContentError`` escapes from ``remember``."""
    old = mem.remember("alice", MONDAY).entry

    result = mem.remember("alice", MONDAY.lower() + ".", supersedes=old.id)

    assert len(active(mem)) == 1
    assert result.entry.status is MemoryStatus.ACTIVE


def test_supersedes_is_honoured_when_the_text_repeats_another_entry(mem: Memory) -> None:
    """Library bug: the exact-dedup shortcut merges into the other entry and drops the correction,
    leaving the entry the caller said was wrong active and recalled."""
    wrong = mem.remember("alice", "I live in Paris").entry
    mem.remember("alice", "My office is in Rome")

    mem.remember("alice", "my office is in Rome", supersedes=wrong.id)

    assert mem.get("alice", wrong.id).status is MemoryStatus.SUPERSEDED
    assert "I live in Paris" not in active(mem)


def test_dedup_threshold_is_configurable(store, embedder) -> None:
    strict = Memory(store, embedder, get_settings(dedup_threshold=0.99))

    actions = [strict.remember("alice", text).action for text in (MONDAY, TUESDAY)]

    assert actions == [RememberAction.ADDED, RememberAction.ADDED]
    assert sorted(e.content for e in strict.list("alice")) == [MONDAY, TUESDAY]
