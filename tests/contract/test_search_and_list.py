"""Filters by type and tag, ordering (list newest first, search best first), limits and ``top_k``."""

from __future__ import annotations

import time

import pytest

from memory import Memory, MemoryFilter, Scope

ALICE = Scope("alice")
MEMORIES = [
    ("I prefer window seats on trains", "preference", ["travel"]),
    ("I prefer tea over coffee", "preference", ["food"]),
    ("My train to Vienna leaves at 9", "fact", ["travel", "work"]),
    ("Book the train tickets for the conference", "task", ["work"]),
    ("We decided to travel by train, not plane", "decision", ["travel"]),
    ("I am vegetarian", "fact", []),
]


@pytest.fixture
def ids(mem: Memory) -> dict[str, str]:
    return {text: mem.remember("alice", text, memory_type=kind, tags=tags).entry.id for text, kind, tags in MEMORIES}


def by_type(kind: str) -> set[str]:
    return {text for text, k, _ in MEMORIES if k == kind}


def by_tag(*tags: str) -> set[str]:
    return {text for text, _, t in MEMORIES if set(t) & set(tags)}


@pytest.mark.parametrize("mode", ["hybrid", "vector", "keyword"])
def test_search_filters_by_type_and_tag(mem: Memory, ids: dict[str, str], mode: str) -> None:
    query = "train travel preference tickets"

    def found(**filters) -> set[str]:
        return {h.entry.content for h in mem.search("alice", query, mode=mode, top_k=100, **filters)}

    everything = found()
    assert by_type("preference") & everything  # the filters below have something to exclude
    assert found(memory_types=["preference"]) <= by_type("preference")
    assert found(memory_types=["task", "decision"]) <= by_type("task") | by_type("decision")
    assert found(memory_types=["task", "decision"])
    assert found(tags=["work"]) == by_tag("work") & everything
    assert found(tags=["WORK", "food"]) == by_tag("work", "food") & everything  # tags match case-insensitively
    assert found(memory_types=["fact"], tags=["travel"]) == {"My train to Vienna leaves at 9"}


def test_list_filters_by_type_and_tag(mem: Memory, ids: dict[str, str]) -> None:
    def listed(**filters) -> set[str]:
        return {e.content for e in mem.list("alice", **filters)}

    assert listed() == {text for text, _, _ in MEMORIES}
    assert listed(memory_types=["preference"]) == by_type("preference")
    assert listed(memory_types=["fact", "task"]) == by_type("fact") | by_type("task")
    assert listed(tags=["travel"]) == by_tag("travel")
    assert listed(tags=["travel"], memory_types=["decision"]) == {"We decided to travel by train, not plane"}
    assert listed(tags=["nothing-has-this"]) == set()
    assert mem.store.count(ALICE, MemoryFilter(tags=("work",))) == len(by_tag("work"))
    assert mem.store.count(ALICE, MemoryFilter(memory_types=("fact",))) == len(by_type("fact"))


def test_list_is_newest_first_and_pages(mem: Memory, ids: dict[str, str]) -> None:
    newest_first = [text for text, _, _ in reversed(MEMORIES)]

    assert [e.content for e in mem.list("alice")] == newest_first
    assert [e.content for e in mem.list("alice", limit=2, offset=1)] == newest_first[1:3]
    assert mem.list("alice", offset=len(MEMORIES)) == []


def test_list_breaks_created_at_ties_by_id(mem: Memory, make_entry) -> None:
    now = time.time()
    entries = [make_entry(f"Fact number {n}", id=memory_id, created_at=now) for n, memory_id in enumerate("cab")]
    mem.store.add_many(entries)

    assert [e.id for e in mem.store.list(ALICE)] == ["a", "b", "c"]


def test_list_filters_by_session(mem: Memory) -> None:
    mem.remember("alice", "I am vegetarian", session_id="s1")
    mem.remember("alice", "I prefer tea over coffee", session_id="s2")

    assert [e.content for e in mem.store.list(ALICE, MemoryFilter(session_id="s1"))] == ["I am vegetarian"]


@pytest.mark.parametrize("mode", ["hybrid", "vector", "keyword"])
def test_search_is_best_first_and_honours_top_k(mem: Memory, ids: dict[str, str], mode: str) -> None:
    hits = mem.search("alice", "train to Vienna", mode=mode, top_k=100)

    assert len(hits) >= 4
    assert hits[0].entry.content == "My train to Vienna leaves at 9"
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    for top_k in (1, 3):
        assert [h.entry.id for h in mem.search("alice", "train to Vienna", mode=mode, top_k=top_k)] == [
            h.entry.id for h in hits[:top_k]
        ]


def test_search_reports_which_signals_matched(mem: Memory, ids: dict[str, str]) -> None:
    keyword = mem.search("alice", "Vienna", mode="keyword")
    vector = mem.search("alice", "Vienna", mode="vector")
    hybrid = mem.search("alice", "Vienna", mode="hybrid")

    assert all(h.vector_rank is None and h.similarity is None and h.keyword_rank for h in keyword)
    assert all(h.keyword_rank is None and h.vector_rank and -1.0 <= h.similarity <= 1.0 for h in vector)
    top = hybrid[0]
    assert top.entry.content == "My train to Vienna leaves at 9"
    assert (top.vector_rank, top.keyword_rank) == (1, 1)
    assert 0.0 < top.recency <= 1.0


def test_search_on_an_empty_scope_returns_nothing(mem: Memory) -> None:
    for mode in ("hybrid", "vector", "keyword"):
        assert mem.search("alice", "anything at all", mode=mode) == []
