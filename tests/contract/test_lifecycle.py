"""Prune archives, forget removes, history records every change, expired memories are not recalled."""

from __future__ import annotations

import time

import pytest

from memory import (
    EventKind,
    InvalidInputError,
    Memory,
    MemoryFilter,
    MemoryNotFoundError,
    MemoryStatus,
    Scope,
)

from .conftest import EVERYTHING

DAY = 86_400.0
ALICE = Scope("alice")
FACTS = ["I play chess", "I grow tomatoes", "I speak Finnish", "I own a kayak", "I bake sourdough"]


def remember_all(mem: Memory, importances: list[float], user: str = "alice") -> list[str]:
    return [mem.remember(user, text, importance=i).entry.id for text, i in zip(FACTS, importances, strict=False)]


def test_prune_archives_all_but_the_most_important(mem: Memory) -> None:
    ids = remember_all(mem, [0.1, 0.9, 0.3, 0.7, 0.5])

    archived = mem.prune("alice", keep_top=2)

    assert sorted(archived) == sorted([ids[0], ids[2], ids[4]])
    assert sorted(e.id for e in mem.list("alice")) == sorted([ids[1], ids[3]])
    assert mem.store.count(ALICE, EVERYTHING) == 5  # archived, not deleted
    assert {e.id for e in mem.list("alice", include_inactive=True)} == set(ids)
    for memory_id in archived:
        assert mem.get("alice", memory_id).status is MemoryStatus.PRUNED
        assert mem.history("alice", memory_id)[-1].kind is EventKind.PRUNED
    hits = mem.search("alice", "chess tomatoes Finnish kayak sourdough", top_k=10)
    assert {h.entry.id for h in hits} == {ids[1], ids[3]}


def test_prune_breaks_equal_importance_by_recency(mem: Memory, make_entry) -> None:
    now = time.time()
    stale = make_entry("I used to collect coins", created_at=now - 400 * DAY)
    fresh = make_entry("I collect vinyl records", created_at=now - DAY)
    mem.store.add_many([stale, fresh])

    assert mem.prune("alice", keep_top=1) == [stale.id]
    assert mem.prune("alice", keep_top=1) == []  # already within the cap


def test_prune_keep_top_zero_archives_everything(mem: Memory) -> None:
    ids = remember_all(mem, [0.5, 0.5, 0.5])

    assert sorted(mem.prune("alice", keep_top=0)) == sorted(ids)
    assert mem.list("alice") == []


@pytest.mark.parametrize("keep_top", [-1, 1.5, "2", None, True])
def test_prune_rejects_a_bad_keep_top(mem: Memory, keep_top: object) -> None:
    ids = remember_all(mem, [0.5, 0.5])

    with pytest.raises(InvalidInputError, match="keep_top"):
        mem.prune("alice", keep_top=keep_top)

    assert sorted(e.id for e in mem.list("alice")) == sorted(ids)


def test_forget_user_removes_memories_and_history(mem: Memory) -> None:
    ids = remember_all(mem, [0.5, 0.5, 0.5])
    mem.remember("alice", "I speak fluent Finnish", supersedes=ids[2])  # an inactive entry goes too
    bob = mem.remember("bob", FACTS[0]).entry

    assert mem.forget_user("alice") == 4

    assert mem.store.count(ALICE, EVERYTHING) == 0
    assert mem.history("alice") == []
    assert [e.id for e in mem.list("bob")] == [bob.id]
    assert [ev.kind for ev in mem.history("bob")] == [EventKind.ADDED]
    assert mem.forget_user("alice") == 0


def test_delete_removes_one_memory_and_records_it_without_content(mem: Memory) -> None:
    keep, gone = remember_all(mem, [0.5, 0.5])

    mem.delete("alice", gone)

    with pytest.raises(MemoryNotFoundError):
        mem.get("alice", gone)
    assert [e.id for e in mem.list("alice", include_inactive=True)] == [keep]
    last = mem.history("alice", gone)[-1]
    assert (last.kind, last.content, last.previous_content) == (EventKind.DELETED, None, None)
    with pytest.raises(MemoryNotFoundError):
        mem.delete("alice", gone)


def test_delete_leaves_no_copy_of_the_content_in_history(mem: Memory) -> None:
    """Library bug: ``delete`` records ``deleted`` without content, but the earlier ``added`` (and
    ``merged``/``updated``) events of the same memory keep the full text, so a deleted memory can still
    be read back through ``history``: it is not removed "for good"."""
    secret = mem.remember("alice", "My bank PIN is 7391").entry
    mem.update("alice", secret.id, content="My bank PIN is 7392")

    mem.delete("alice", secret.id)

    leaked = [
        ev for ev in mem.history("alice", secret.id) if "PIN" in f"{ev.content} {ev.previous_content} {ev.details}"
    ]
    assert leaked == []


def test_history_records_every_change_in_order(mem: Memory) -> None:
    coffee = mem.remember("alice", "I drink coffee every morning").entry
    mem.remember("alice", "Every morning I drink coffee")  # merged
    mem.update("alice", coffee.id, content="I drink green tea every morning", importance=0.7)
    tea = mem.remember("alice", "I stopped drinking anything hot", supersedes=coffee.id).entry
    pruned, deleted = remember_all(mem, [0.1, 0.2])
    mem.prune("alice", keep_top=2)
    mem.delete("alice", deleted)

    events = mem.history("alice", coffee.id)
    assert [ev.kind for ev in events] == [
        EventKind.ADDED,
        EventKind.MERGED,
        EventKind.UPDATED,
        EventKind.SUPERSEDED,
    ]
    updated = events[2]
    assert (updated.previous_content, updated.content) == (
        "I drink coffee every morning",
        "I drink green tea every morning",
    )
    assert updated.details["changed"] == ["content", "importance"]
    assert events[3].related_id == tea.id
    assert [ev.kind for ev in mem.history("alice", pruned)] == [EventKind.ADDED, EventKind.PRUNED]
    assert [ev.kind for ev in mem.history("alice", deleted)] == [EventKind.ADDED, EventKind.DELETED]
    everything = mem.history("alice")
    assert [ev.id for ev in everything] == sorted(ev.id for ev in everything)  # oldest first
    assert [ev.created_at for ev in everything] == sorted(ev.created_at for ev in everything)
    assert len(everything) == 4 + 1 + 2 + 2
    assert len(mem.history("alice", limit=3)) == 3


def test_expired_memory_is_not_recalled(mem: Memory, make_entry) -> None:
    now = time.time()
    mem.store.add(make_entry("My hotel room is 512", created_at=now - 2 * DAY, expires_at=now - DAY))
    soon = mem.remember("alice", "My parking spot is B7", ttl=0.05).entry
    kept = mem.remember("alice", "My hotel is near the harbour").entry
    time.sleep(0.1)

    for mode in ("hybrid", "vector", "keyword"):
        hits = mem.search("alice", "hotel room 512 parking spot B7", mode=mode, top_k=10)
        assert [h.entry.id for h in hits] == [kept.id], mode
    assert [e.id for e in mem.list("alice")] == [kept.id]
    assert mem.store.count(ALICE) == 1
    with_expired = mem.store.list(ALICE, MemoryFilter(include_expired=True))
    assert {e.content for e in with_expired} == {
        "My hotel room is 512",
        "My parking spot is B7",
        kept.content,
    }
    assert mem.get("alice", soon.id).expires_at == pytest.approx(soon.created_at + 0.05)


@pytest.mark.parametrize("ttl", [0, -5, "soon", True])
def test_ttl_must_be_positive(mem: Memory, ttl: object) -> None:
    with pytest.raises(InvalidInputError, match="ttl"):
        mem.remember("alice", "My parking spot is B7", ttl=ttl)
    assert mem.list("alice") == []
