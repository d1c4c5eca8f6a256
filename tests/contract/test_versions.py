"""``version(scope)``: every change to a scope's memories strictly increases it, nothing else moves it, no
other scope's changes, and ``forget_user`` removes it so that the next write starts above every earlier
value. And ``list(order_by="importance")``: importance first, then the most recently updated, then id.

A cache of a user's core memories keys its entries by this version: these are the promises it relies on.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import pytest

from memory import (
    DuplicateContentError,
    InvalidInputError,
    Memory,
    MemoryFilter,
    MemoryNotFoundError,
    Ranking,
    Scope,
    SearchRequest,
)
from memory.stores.base import MemoryStore
from memory.turns import TurnRecord, TurnStatus

from .conftest import EVERYTHING

ALICE = Scope("alice")
BOB = Scope("bob")
ALICE_AT_ACME = Scope("alice", tenant_id="acme")


class Versions:
    """Reads a scope's version after each step and checks how it moved."""

    def __init__(self, store: MemoryStore, scope: Scope = ALICE) -> None:
        self.store, self.scope = store, scope
        self.seen: list[int] = []

    def increased_by(self, write: Callable[[], object]) -> None:
        before = self.store.version(self.scope)
        write()
        after = self.store.version(self.scope)
        assert isinstance(after, int) and not isinstance(after, bool)
        assert before is None or after > before, (before, after)
        self.seen.append(after)

    def unchanged_by(self, call: Callable[[], object]) -> None:
        before = self.store.version(self.scope)
        call()
        assert self.store.version(self.scope) == before


def test_a_scope_that_never_wrote_has_no_version(store: MemoryStore) -> None:
    assert store.version(ALICE) is None
    assert store.forget_user(ALICE) == 0  # forgetting nobody makes no version either
    assert store.version(ALICE) is None


def test_every_kind_of_write_strictly_increases_the_version(store: MemoryStore, mem: Memory, make_entry) -> None:
    versions = Versions(store)
    first, second, third = make_entry("I own a red bike"), make_entry("I live in Lisbon"), make_entry("I play chess")

    versions.increased_by(lambda: store.add(first))
    versions.increased_by(lambda: store.add_many([second, third]))
    versions.increased_by(lambda: store.update(ALICE, first.id, {"content": "I own a blue bike"}))
    versions.increased_by(lambda: store.update(ALICE, first.id, {"importance": 0.9}))
    versions.increased_by(lambda: store.update(ALICE, first.id, {"tags": ("bikes",), "metadata": {"n": 1}}))
    versions.increased_by(lambda: store.update(ALICE, third.id, {"status": "pruned"}))  # archived
    versions.increased_by(lambda: store.update(ALICE, third.id, {"status": "active"}))  # restored
    versions.increased_by(lambda: store.prune(ALICE, 1, ranking=Ranking(), now=time.time()))
    versions.increased_by(lambda: mem.remember("alice", "I own a blue bike"))  # an exact repeat merges
    versions.increased_by(lambda: mem.remember("alice", "I own a green bike", supersedes=first.id))
    versions.increased_by(lambda: store.delete(ALICE, second.id))
    for _ in range(5):  # writes in quick succession, many within one tick of a coarse clock
        versions.increased_by(lambda: store.update(ALICE, first.id, {"importance": 0.5}))

    assert versions.seen == sorted(set(versions.seen))


def test_reads_history_turn_records_and_refused_writes_leave_the_version_alone(store: MemoryStore, make_entry) -> None:
    kept = store.add(make_entry("I own a red bike", importance=0.7))
    store.add(make_entry("I play chess", importance=0.9))
    versions = Versions(store)
    record = TurnRecord(turn_id="turn-1", user_id="alice", user_message="I own a red bike")
    search = SearchRequest(text="red bike", embedding=kept.embedding, embedding_model=kept.embedding_model)

    for call in (
        lambda: store.get(ALICE, kept.id),
        lambda: store.get_by_hash(ALICE, kept.content_hash),
        lambda: store.list(ALICE, EVERYTHING),
        lambda: store.list(ALICE, order_by="importance"),
        lambda: store.count(ALICE),
        lambda: store.search(ALICE, search),
        lambda: store.history(ALICE),
        lambda: store.history(ALICE, kept.id),
        lambda: store.save_turn(record),
        lambda: store.save_turn(dataclasses.replace(record, status=TurnStatus.DONE, assistant_reply="Noted")),
        lambda: store.get_turn(ALICE, "turn-1"),
        lambda: store.list_turns(ALICE, TurnStatus),
        lambda: store.version(ALICE),
        lambda: store.prune(ALICE, 10, ranking=Ranking(), now=time.time()),  # nothing beyond the cap
    ):
        versions.unchanged_by(call)
    for refused, error in (
        (lambda: store.add(make_entry("I own a red bike")), DuplicateContentError),
        (lambda: store.update(ALICE, "nope", {"importance": 0.1}), MemoryNotFoundError),
        (lambda: store.update(ALICE, kept.id, {"user_id": "bob"}), InvalidInputError),
        (lambda: store.update(ALICE, kept.id, {"importance": 7}), InvalidInputError),
        (lambda: store.delete(ALICE, "nope"), MemoryNotFoundError),
    ):

        def attempt(refused: Callable[[], object] = refused, error: type[Exception] = error) -> None:
            with pytest.raises(error):
                refused()

        versions.unchanged_by(attempt)


def test_another_scopes_version_is_untouched(store: MemoryStore, make_entry) -> None:
    bob_entry = store.add(make_entry("I play chess", user_id="bob"))
    bob_before = store.version(BOB)
    alice = store.add(make_entry("I own a red bike"))

    store.update(ALICE, alice.id, {"importance": 0.9})
    store.add_many([make_entry("I live in Lisbon"), make_entry("I ride to work")])
    store.delete(ALICE, alice.id)
    store.prune(ALICE, 0, ranking=Ranking(), now=time.time())
    with pytest.raises(MemoryNotFoundError):
        store.update(ALICE, bob_entry.id, {"importance": 0.1})  # bob's id, alice's scope: not found

    assert store.version(BOB) == bob_before
    assert store.version(ALICE_AT_ACME) is None  # the same user id in another tenant is another user

    store.forget_user(ALICE)

    assert store.version(BOB) == bob_before


def test_add_many_across_scopes_changes_each_of_them(store: MemoryStore, make_entry) -> None:
    store.add(make_entry("I own a red bike"))
    alice_before = store.version(ALICE)

    store.add_many([make_entry("I play chess", user_id="bob"), make_entry("I live in Lisbon")])

    assert store.version(ALICE) > alice_before
    assert store.version(BOB) is not None


def test_forget_user_removes_the_version_and_the_next_write_starts_above_it(store: MemoryStore, make_entry) -> None:
    bike, chess = make_entry("I own a red bike"), make_entry("I play chess")
    for round_ in range(5):  # no embedding between the calls: a forget and a write within one clock tick
        store.add_many([bike, chess])
        store.update(ALICE, bike.id, {"importance": 0.9})
        store.delete(ALICE, chess.id)
        highest = store.version(ALICE)

        assert store.forget_user(ALICE) == 1
        assert store.version(ALICE) is None, round_

        store.add(bike)
        assert store.version(ALICE) > highest, round_
        store.forget_user(ALICE)


# -- list(order_by="importance") ---------------------------------------------------------------------------

# (id, importance, seconds before now it was updated, memory type, tags, status). Ties on importance break
# on the most recent update, ties on both on id.
ENTRIES = [
    ("e", 0.1, 10, "fact", ("travel",), "active"),
    ("b", 0.5, 30, "task", ("work",), "active"),
    ("d", 0.5, 30, "fact", ("travel", "work"), "active"),
    ("a", 0.9, 50, "preference", (), "active"),
    ("c", 0.5, 40, "fact", ("travel",), "active"),
    ("f", 1.0, 5, "fact", ("travel",), "superseded"),
]
BY_IMPORTANCE = ["a", "b", "d", "c", "e"]


@pytest.fixture
def ranked(store: MemoryStore, make_entry) -> MemoryStore:
    now = time.time()
    store.add_many(
        [
            make_entry(
                f"Memory number {memory_id}", id=memory_id, importance=importance, memory_type=kind, tags=tags,
                status=status, created_at=now - 1000 + ord(memory_id), updated_at=now - age,
            )
            for memory_id, importance, age, kind, tags, status in ENTRIES
        ]
    )  # fmt: skip
    store.add(make_entry("Memory number g", id="g", importance=1.0, created_at=now - 100, expires_at=now - 50))
    return store


def ids(entries: list) -> list[str]:
    return [entry.id for entry in entries]


def test_list_by_importance_breaks_ties_by_update_then_id(ranked: MemoryStore) -> None:
    assert ids(ranked.list(ALICE, order_by="importance")) == BY_IMPORTANCE
    assert ids(ranked.list(ALICE, order_by="newest")) == ids(ranked.list(ALICE)) == ["e", "d", "c", "b", "a"]


def test_list_by_importance_filters_and_pages(ranked: MemoryStore) -> None:
    def listed(filters: MemoryFilter | None = None, **page: int) -> list[str]:
        return ids(ranked.list(ALICE, filters, order_by="importance", **page))

    assert listed(limit=2) == BY_IMPORTANCE[:2]
    assert listed(limit=2, offset=1) == BY_IMPORTANCE[1:3]
    assert listed(offset=4) == BY_IMPORTANCE[4:]
    assert listed(offset=5) == []
    assert listed(MemoryFilter(memory_types=("fact",))) == ["d", "c", "e"]
    assert listed(MemoryFilter(tags=("work",))) == ["b", "d"]
    assert listed(MemoryFilter(memory_types=("fact",), tags=("work",))) == ["d"]
    assert listed(MemoryFilter(include_inactive=True)) == ["f", *BY_IMPORTANCE]
    assert listed(MemoryFilter(include_expired=True)) == ["g", *BY_IMPORTANCE]
    assert listed(EVERYTHING, limit=3) == ["f", "g", "a"]  # equal importance, f updated more recently
    assert ids(ranked.list(BOB, order_by="importance")) == []


@pytest.mark.parametrize("order_by", ["oldest", "", "IMPORTANCE", "importance ", None, 1, ("importance",)])
def test_list_rejects_an_unknown_order_naming_the_accepted_ones(ranked: MemoryStore, order_by: object) -> None:
    with pytest.raises(InvalidInputError, match=r"order_by.*'newest'.*'importance'") as info:
        ranked.list(ALICE, order_by=order_by)

    assert isinstance(info.value, ValueError)
