"""Scoping: no call returns or touches a memory of another user or another tenant.

The neighbours store exactly the text alice queries, word for word, so any leak would rank first.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from memory import Memory, MemoryNotFoundError, RememberAction, Scope
from memory.models import content_hash

from .conftest import EVERYTHING

SECRET = "My locker code is 4512"
ALICE, BOB, ACME = Scope("alice"), Scope("bob"), Scope("alice", tenant_id="acme")


@pytest.fixture
def world(mem: Memory) -> SimpleNamespace:
    """alice has two memories of her own; bob, and alice in tenant acme, each store ``SECRET``."""
    alice_ids = [mem.remember("alice", text).entry.id for text in ("I enjoy hiking", "I collect stamps")]
    bob = mem.remember("bob", SECRET, tags=["private"])
    acme = mem.remember("alice", SECRET, tenant_id="acme")
    assert bob.action is acme.action is RememberAction.ADDED  # the same text in two scopes is no duplicate
    return SimpleNamespace(alice_ids=alice_ids, bob_id=bob.entry.id, acme_id=acme.entry.id)


def snapshot(mem: Memory, scope: Scope) -> tuple:
    """Everything observable about a scope, to compare before and after a call that must not touch it."""
    entries = mem.store.list(scope, EVERYTHING)
    return (
        [(e.id, e.content, e.importance, e.tags, e.status, e.updated_at) for e in entries],
        [(ev.id, ev.kind, ev.memory_id) for ev in mem.store.history(scope)],
    )


@pytest.mark.parametrize("mode", ["hybrid", "vector", "keyword"])
def test_search_never_returns_another_scope(mem: Memory, world: SimpleNamespace, mode: str) -> None:
    hits = mem.search("alice", SECRET, mode=mode, top_k=100)

    assert {h.entry.id for h in hits} <= set(world.alice_ids)
    assert all(h.entry.scope == ALICE for h in hits)
    # The same query does find the text in the scopes that own it.
    assert mem.search("bob", SECRET, mode=mode)[0].entry.id == world.bob_id
    assert mem.search("alice", SECRET, mode=mode, tenant_id="acme")[0].entry.id == world.acme_id


def test_get_and_get_by_hash_do_not_see_another_scope(mem: Memory, world: SimpleNamespace) -> None:
    with pytest.raises(MemoryNotFoundError):
        mem.get("alice", world.bob_id)
    assert mem.store.get(ALICE, world.bob_id) is None
    assert mem.store.get(Scope("bob", tenant_id="acme"), world.bob_id) is None
    assert mem.store.get(ALICE, world.acme_id) is None

    assert mem.store.get_by_hash(ALICE, content_hash(SECRET)) is None
    assert mem.store.get_by_hash(ACME, content_hash(SECRET)).id == world.acme_id
    assert mem.store.get_by_hash(Scope("bob"), content_hash(SECRET)).id == world.bob_id


def test_list_count_and_history_stay_in_scope(mem: Memory, world: SimpleNamespace) -> None:
    assert sorted(e.id for e in mem.list("alice")) == sorted(world.alice_ids)
    assert mem.store.count(ALICE, EVERYTHING) == 2
    assert [e.id for e in mem.list("alice", tenant_id="acme")] == [world.acme_id]
    assert {ev.memory_id for ev in mem.history("alice")} == set(world.alice_ids)
    assert mem.history("alice", world.bob_id) == []
    assert mem.history("alice", world.acme_id) == []


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda m, w: m.update("alice", w.bob_id, content="hacked"), id="update-content"),
        pytest.param(lambda m, w: m.update("alice", w.bob_id, importance=1.0), id="update-importance"),
        pytest.param(lambda m, w: m.update("bob", w.bob_id, tags=["x"], tenant_id="acme"), id="update-tenant"),
        pytest.param(lambda m, w: m.delete("alice", w.bob_id), id="delete"),
        pytest.param(lambda m, w: m.delete("bob", w.bob_id, tenant_id="acme"), id="delete-tenant"),
        pytest.param(lambda m, w: m.remember("alice", "My locker code is 9999", supersedes=w.bob_id), id="supersede"),
    ],
)
def test_writes_to_another_scope_raise_not_found_and_change_nothing(mem: Memory, world: SimpleNamespace, call) -> None:
    before = snapshot(mem, Scope("bob")), snapshot(mem, ALICE), snapshot(mem, ACME)

    with pytest.raises(MemoryNotFoundError):
        call(mem, world)

    assert (snapshot(mem, Scope("bob")), snapshot(mem, ALICE), snapshot(mem, ACME)) == before


def test_prune_archives_only_its_own_scope(mem: Memory, world: SimpleNamespace) -> None:
    bob_before, acme_before = snapshot(mem, Scope("bob")), snapshot(mem, ACME)

    assert sorted(mem.prune("alice", keep_top=0)) == sorted(world.alice_ids)

    assert snapshot(mem, Scope("bob")) == bob_before
    assert snapshot(mem, ACME) == acme_before


def test_forget_user_removes_only_its_own_scope(mem: Memory, world: SimpleNamespace) -> None:
    bob_before, acme_before = snapshot(mem, Scope("bob")), snapshot(mem, ACME)

    assert mem.forget_user("alice") == 2

    assert snapshot(mem, ALICE) == ([], [])
    assert snapshot(mem, Scope("bob")) == bob_before
    assert snapshot(mem, ACME) == acme_before


def test_dedup_never_merges_across_scopes(mem: Memory, world: SimpleNamespace) -> None:
    bob_before = snapshot(mem, Scope("bob"))

    result = mem.remember("alice", SECRET.upper())

    assert result.action is RememberAction.ADDED
    assert result.entry.id not in (world.bob_id, world.acme_id)
    assert snapshot(mem, Scope("bob")) == bob_before


def test_same_user_id_in_two_tenants_is_two_users(mem: Memory, world: SimpleNamespace) -> None:
    default_before = snapshot(mem, ALICE)

    assert mem.forget_user("alice", tenant_id="acme") == 1

    assert snapshot(mem, ACME) == ([], [])
    assert snapshot(mem, ALICE) == default_before
