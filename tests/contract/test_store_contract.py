"""What the ``MemoryStore`` protocol promises when called directly, beneath the ``Memory`` facade."""

from __future__ import annotations

import time

import pytest

from memory import (
    DuplicateContentError,
    EventKind,
    InvalidInputError,
    Memory,
    MemoryNotFoundError,
    MemoryStatus,
    Scope,
    SearchMode,
    SearchRequest,
)
from memory.stores.base import MemoryStore

from .conftest import EVERYTHING, state

ALICE = Scope("alice")


def events(store: MemoryStore, scope: Scope = ALICE) -> list[tuple]:
    return [(ev.memory_id, ev.kind) for ev in store.history(scope)]


def test_add_then_get_round_trips_every_field(store: MemoryStore, make_entry) -> None:
    entry = make_entry(
        "I prefer aisle seats",
        memory_type="preference",
        importance=0.75,
        tags=("travel", "flights"),
        metadata={"source": "chat", "turn": 3},
        session_id="s-1",
        created_at=1_700_000_000.5,
        expires_at=4_000_000_000.0,
    )

    assert state(store.add(entry)) == state(entry)
    assert state(store.get(ALICE, entry.id)) == state(entry)
    assert store.get_by_hash(ALICE, entry.content_hash).id == entry.id
    assert events(store) == [(entry.id, EventKind.ADDED)]


def test_missing_ids(store: MemoryStore) -> None:
    assert store.get(ALICE, "nope") is None
    assert store.get_by_hash(ALICE, "0" * 64) is None
    with pytest.raises(MemoryNotFoundError):
        store.update(ALICE, "nope", {"importance": 0.9})
    with pytest.raises(MemoryNotFoundError):
        store.delete(ALICE, "nope")
    assert store.history(ALICE, "nope") == []


def test_add_rejects_a_second_active_entry_with_the_same_content(store: MemoryStore, make_entry) -> None:
    first = store.add(make_entry("I own a red bike"))

    with pytest.raises(DuplicateContentError):
        store.add(make_entry("i own a RED bike."))
    store.add(make_entry("I own a red bike", user_id="bob"))  # another scope may
    store.update(ALICE, first.id, {"status": MemoryStatus.SUPERSEDED})
    again = store.add(make_entry("I own a red bike"))  # once the first is no longer active, so may we

    assert store.get_by_hash(ALICE, first.content_hash).id == again.id


def test_add_many_is_all_or_nothing(store: MemoryStore, make_entry) -> None:
    store.add(make_entry("I own a red bike"))
    batch = [make_entry("I own a blue car"), make_entry("I own a red bike")]

    with pytest.raises(DuplicateContentError):
        store.add_many(batch)

    assert [e.content for e in store.list(ALICE, EVERYTHING)] == ["I own a red bike"]
    assert len(store.history(ALICE)) == 1
    assert store.add_many([]) == []


def test_update_applies_changes_and_records_them(store: MemoryStore, make_entry) -> None:
    entry = store.add(make_entry("I own a red bike", created_at=time.time() - 60))
    before = time.time()

    updated = store.update(ALICE, entry.id, {"importance": 0.9, "tags": ("bikes",)}, details={"why": "test"})

    assert state(updated) == state(store.get(ALICE, entry.id))
    assert (updated.importance, updated.tags, updated.content) == (0.9, ("bikes",), entry.content)
    assert before <= updated.updated_at <= time.time()
    assert updated.created_at == entry.created_at
    event = store.history(ALICE, entry.id)[-1]
    assert (event.kind, event.details) == (
        EventKind.UPDATED,
        {"changed": ["importance", "tags"], "why": "test"},
    )
    explicit = store.update(ALICE, entry.id, {"updated_at": entry.created_at + 1})
    assert explicit.updated_at == entry.created_at + 1


def test_update_rejects_an_unknown_field(store: MemoryStore, make_entry) -> None:
    entry = store.add(make_entry("I own a red bike"))

    for field in ("id", "user_id", "tenant_id", "created_at", "colour"):
        with pytest.raises(InvalidInputError, match=field):
            store.update(ALICE, entry.id, {field: "x"})

    assert state(store.get(ALICE, entry.id)) == state(entry)
    assert events(store) == [(entry.id, EventKind.ADDED)]


@pytest.mark.parametrize(
    "changes",
    [
        {"importance": 1.5},
        {"memory_type": "rumour"},
        {"content": "  "},
        {"tags": "bikes"},
        {"status": "lost"},
    ],
    ids=["importance", "memory_type", "content", "tags", "status"],
)
def test_update_rejects_a_value_the_entry_would_reject(store: MemoryStore, make_entry, changes) -> None:
    """``{"status": "lost"}`` fails on a library bug: ``MemoryEntry`` converts status with
    ``MemoryStatus(...)``, which raises a bare ``ValueError`` instead of an ``InvalidInputError``."""
    entry = store.add(make_entry("I own a red bike"))

    with pytest.raises(InvalidInputError):
        store.update(ALICE, entry.id, changes)

    assert state(store.get(ALICE, entry.id)) == state(entry)
    assert events(store) == [(entry.id, EventKind.ADDED)]


def test_vector_search_only_compares_embeddings_of_the_same_model(store: MemoryStore, make_entry) -> None:
    ours = store.add(make_entry("I own a red bike"))
    theirs = store.add(make_entry("I own a red bicycle", embedding_model="some-other-model"))

    def search(mode: SearchMode) -> list[str]:
        request = SearchRequest(
            text="red bike", embedding=ours.embedding, mode=mode, embedding_model=ours.embedding_model
        )
        return [h.entry.id for h in store.search(ALICE, request)]

    assert search(SearchMode.VECTOR) == [ours.id]
    assert set(search(SearchMode.KEYWORD)) == {ours.id, theirs.id}


def test_search_excludes_inactive_entries_even_when_asked(store: MemoryStore, make_entry) -> None:
    entry = store.add(make_entry("I own a red bike"))
    store.update(ALICE, entry.id, {"status": MemoryStatus.PRUNED})
    request = SearchRequest(
        text="red bike", embedding=entry.embedding, filters=EVERYTHING, embedding_model=entry.embedding_model
    )

    assert store.search(ALICE, request) == []


@pytest.mark.requires("persistent")
def test_data_survives_close_and_reopen(mem: Memory) -> None:
    kept = mem.remember("alice", "I own a red bike", tags=["bikes"]).entry
    mem.remember("alice", "I OWN A RED BIKE")  # merged: history has two events
    mem.close()
    mem.close()  # closing twice is safe

    mem.store.open()
    assert mem.get("alice", kept.id).tags == ("bikes",)
    assert [h.entry.id for h in mem.search("alice", "bicycle colour")] == [kept.id]
    assert [ev.kind for ev in mem.history("alice", kept.id)] == [EventKind.ADDED, EventKind.MERGED]
    mem.close()
    assert mem.store.count(ALICE) == 1  # a call after close reopens by itself
