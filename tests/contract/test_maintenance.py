"""What the scheduled maintenance job relies on: ``scopes`` walks every scope with a version in code point
order, page by page, resuming after any scope; ``try_lease`` / ``release_lease`` let one run at a time work on
a user, and a crashed run's lease expires. Leases need the ``leases`` capability (not a Qdrant server)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import pytest

from memory import InvalidInputError, MemoryEntry, MemoryStatus, Ranking, Scope
from memory.stores.base import MemoryStore

ALICE = Scope("alice")
BOB = Scope("bob")
ALICE_AT_ACME = Scope("alice", tenant_id="acme")
# In code point order: upper case before lower case, "acme" before "default", "é" (U+00E9) after "z".
ORDERED = [
    Scope("Zoe", tenant_id="acme"),
    Scope("alice", tenant_id="acme"),
    Scope("alice", tenant_id="default"),
    Scope("bob", tenant_id="default"),
    Scope("zed", tenant_id="default"),
    Scope("\u00e9mile", tenant_id="default"),
    Scope("alice", tenant_id="\u00e9cole"),
]


def remember(store: MemoryStore, make_entry: Callable[..., MemoryEntry], scope: Scope, text: str) -> MemoryEntry:
    return store.add(make_entry(text, user_id=scope.user_id, tenant_id=scope.tenant_id))


def test_scopes_of_an_empty_store_is_empty(store: MemoryStore) -> None:
    assert store.scopes() == []
    assert store.scopes(after=ALICE, limit=1) == []


def test_scopes_are_in_code_point_order_and_page_after_any_scope(
    store: MemoryStore, make_entry: Callable[..., MemoryEntry]
) -> None:
    for n, scope in enumerate(reversed(ORDERED)):
        remember(store, make_entry, scope, f"I own {n + 1} bikes")
    remember(store, make_entry, ORDERED[0], "I prefer metric units")  # a second memory: still one scope

    pages, after = [], None
    while page := store.scopes(after=after, limit=3):
        pages.append(page)
        after = page[-1]

    assert store.scopes() == ORDERED
    assert pages == [ORDERED[0:3], ORDERED[3:6], ORDERED[6:]]
    assert store.scopes(after=ORDERED[2], limit=2) == ORDERED[3:5]  # strictly after
    assert store.scopes(after=Scope("carol"), limit=100) == ORDERED[4:]  # after a scope that holds nothing
    assert store.scopes(after=ORDERED[-1]) == []
    assert store.scopes(limit=1) == ORDERED[:1]


def test_archived_and_deleted_memories_keep_a_scope_listed_until_it_is_forgotten(
    store: MemoryStore, make_entry: Callable[..., MemoryEntry]
) -> None:
    archived = remember(store, make_entry, ALICE, "I own a red bike")
    store.prune(ALICE, 0, ranking=Ranking(), now=time.time())
    superseded = remember(store, make_entry, ALICE_AT_ACME, "The launch is in March")
    store.update(ALICE_AT_ACME, superseded.id, {"status": MemoryStatus.SUPERSEDED})
    deleted = remember(store, make_entry, BOB, "My locker code is 4512")
    store.delete(BOB, deleted.id)

    assert store.get(ALICE, archived.id).status is MemoryStatus.PRUNED
    assert store.scopes() == [ALICE_AT_ACME, ALICE, BOB]  # bob has a version still, though no memory

    assert store.forget_user(ALICE) == 1
    assert store.forget_user(BOB) == 0

    assert store.scopes() == [ALICE_AT_ACME]


def test_leases_do_not_list_a_scope_nor_change_its_version(
    store: MemoryStore, make_entry: Callable[..., MemoryEntry]
) -> None:
    remember(store, make_entry, ALICE, "I own a red bike")
    version = store.version(ALICE)
    if "leases" in store.capabilities:
        assert store.try_lease(ALICE, "run-1", 60)
        assert store.try_lease(BOB, "run-1", 60)  # a scope without memories can be leased
        store.release_lease(ALICE, "run-1")
        store.release_lease(BOB, "run-1")

    assert store.version(ALICE) == version
    assert store.scopes() == [ALICE]


@pytest.mark.parametrize("limit", [0, -1, True, 1.5, "10", None])
def test_scopes_rejects_a_bad_limit(store: MemoryStore, limit: object) -> None:
    with pytest.raises(InvalidInputError, match="limit must be a whole number >= 1"):
        store.scopes(limit=limit)  # type: ignore[arg-type]


def test_scopes_rejects_an_after_that_is_not_a_scope(store: MemoryStore) -> None:
    for after in ("alice", ("default", "alice")):
        with pytest.raises(InvalidInputError, match="after must be a Scope"):
            store.scopes(after=after)  # type: ignore[arg-type]


@pytest.mark.requires("leases")
def test_a_lease_is_taken_refused_to_others_renewed_and_released(store: MemoryStore) -> None:
    assert store.try_lease(ALICE, "run-1", 60) is True
    assert store.try_lease(ALICE, "run-2", 60) is False
    assert store.try_lease(ALICE, "run-1", 60) is True  # renewed by its owner

    store.release_lease(ALICE, "run-1")

    assert store.try_lease(ALICE, "run-2", 60) is True
    assert store.try_lease(ALICE, "run-1", 60) is False
    store.release_lease(ALICE, "run-2")


@pytest.mark.requires("leases")
def test_an_expired_lease_passes_to_another_owner(store: MemoryStore) -> None:
    assert store.try_lease(ALICE, "crashed", 0.2)
    assert store.try_lease(ALICE, "run-2", 60) is False

    time.sleep(0.4)

    assert store.try_lease(ALICE, "run-2", 60) is True
    assert store.try_lease(ALICE, "crashed", 0.2) is False
    store.release_lease(ALICE, "run-2")


@pytest.mark.requires("leases")
def test_renewing_extends_the_lease_from_now(store: MemoryStore) -> None:
    assert store.try_lease(ALICE, "run-1", 0.3)
    time.sleep(0.15)
    assert store.try_lease(ALICE, "run-1", 60)  # renewed before it ran out

    time.sleep(0.3)  # past the first ttl

    assert store.try_lease(ALICE, "run-2", 60) is False
    store.release_lease(ALICE, "run-1")


@pytest.mark.requires("leases")
def test_releasing_a_lease_one_does_not_hold_does_nothing(store: MemoryStore) -> None:
    store.release_lease(ALICE, "nobody")  # no lease at all

    assert store.try_lease(ALICE, "run-1", 60)
    store.release_lease(ALICE, "run-2")
    store.release_lease(BOB, "run-1")  # another scope

    assert store.try_lease(ALICE, "run-2", 60) is False
    store.release_lease(ALICE, "run-1")
    store.release_lease(ALICE, "run-1")  # twice is safe
    assert store.try_lease(ALICE, "run-2", 60) is True
    store.release_lease(ALICE, "run-2")


@pytest.mark.requires("leases")
def test_leases_are_per_scope(store: MemoryStore) -> None:
    assert store.try_lease(ALICE, "run-1", 60)

    assert store.try_lease(BOB, "run-2", 60) is True
    assert store.try_lease(ALICE_AT_ACME, "run-2", 60) is True  # the same user id in another tenant
    assert store.try_lease(ALICE, "run-2", 60) is False
    for scope, owner in ((ALICE, "run-1"), (BOB, "run-2"), (ALICE_AT_ACME, "run-2")):
        store.release_lease(scope, owner)


@pytest.mark.requires("leases")
def test_forget_user_drops_the_lease_of_its_scope_only(
    store: MemoryStore, make_entry: Callable[..., MemoryEntry]
) -> None:
    remember(store, make_entry, ALICE, "I own a red bike")
    assert store.try_lease(ALICE, "run-1", 60)
    assert store.try_lease(BOB, "run-1", 60)

    store.forget_user(ALICE)

    assert store.try_lease(ALICE, "run-2", 60) is True
    assert store.try_lease(BOB, "run-2", 60) is False
    store.release_lease(ALICE, "run-2")
    store.release_lease(BOB, "run-1")


@pytest.mark.requires("leases")
def test_bad_lease_arguments_raise_invalid_input(store: MemoryStore) -> None:
    for owner in ("", " ", 5, None, "run\n1"):
        with pytest.raises(InvalidInputError, match="owner"):
            store.try_lease(ALICE, owner, 60)  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError, match="owner"):
            store.release_lease(ALICE, owner)  # type: ignore[arg-type]
    for ttl in (0, -1, math.nan, math.inf, True, "60", None):
        with pytest.raises(InvalidInputError, match="ttl_seconds"):
            store.try_lease(ALICE, "run-1", ttl)  # type: ignore[arg-type]

    assert store.try_lease(ALICE, "run-2", 60)  # nothing was taken
    store.release_lease(ALICE, "run-2")
