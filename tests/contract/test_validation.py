"""Bad input fails where the caller made it: an ``InvalidInputError`` (a ``ValueError``) naming the field,
before anything is stored."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from memory import InvalidInputError, Memory, Scope

from .conftest import EVERYTHING

BAD_USER_IDS = [42, None, "", "   ", "tab\there", "x" * 257]
# Every facade method that takes a user id, called with ``user`` and otherwise valid arguments.
BY_USER: dict[str, Callable[[Memory, object, str], object]] = {
    "remember": lambda m, user, mid: m.remember(user, "I like tea"),
    "search": lambda m, user, mid: m.search(user, "tea"),
    "list": lambda m, user, mid: m.list(user),
    "get": lambda m, user, mid: m.get(user, mid),
    "history": lambda m, user, mid: m.history(user, mid),
    "update": lambda m, user, mid: m.update(user, mid, importance=0.9),
    "delete": lambda m, user, mid: m.delete(user, mid),
    "forget_user": lambda m, user, mid: m.forget_user(user),
    "prune": lambda m, user, mid: m.prune(user, keep_top=0),
}

CALLS = [
    pytest.param(lambda m: m.remember("alice", ""), "content", id="empty-content"),
    pytest.param(lambda m: m.remember("alice", " \n\t "), "content", id="blank-content"),
    pytest.param(lambda m: m.remember("alice", 17), "content", id="int-content"),
    pytest.param(lambda m: m.remember("alice", "x" * 2001), "content.*2000", id="long-content"),
    pytest.param(lambda m: m.remember("alice", "I like tea", importance=-0.1), "importance", id="importance-negative"),
    pytest.param(lambda m: m.remember("alice", "I like tea", importance=1.1), "importance", id="importance-above-1"),
    pytest.param(lambda m: m.remember("alice", "I like tea", importance=math.nan), "importance", id="importance-nan"),
    pytest.param(lambda m: m.remember("alice", "I like tea", importance=True), "importance", id="importance-bool"),
    pytest.param(lambda m: m.remember("alice", "I like tea", importance="high"), "importance", id="importance-str"),
    pytest.param(
        lambda m: m.remember("alice", "I like tea", memory_type="opinion"),
        "memory type.*preference",
        id="unknown-type",
    ),
    pytest.param(lambda m: m.remember("alice", "I like tea", tags="drinks"), "tags", id="remember-tags-str"),
    pytest.param(lambda m: m.remember("alice", "I like tea", tags=[""]), "tag", id="empty-tag"),
    pytest.param(
        lambda m: m.remember("alice", "I like tea", metadata=["not", "a", "dict"]),
        "metadata",
        id="metadata-list",
    ),
    pytest.param(lambda m: m.remember("alice", "I like tea", tenant_id=""), "tenant_id", id="empty-tenant"),
    pytest.param(lambda m: m.remember("alice", "I like tea", session_id=5), "session_id", id="int-session"),
    pytest.param(lambda m: m.search("alice", "tea", top_k=0), "top_k", id="top_k-0"),
    pytest.param(lambda m: m.search("alice", "tea", top_k=101), "top_k", id="top_k-101"),
    pytest.param(lambda m: m.search("alice", "tea", top_k=2.5), "top_k", id="top_k-float"),
    pytest.param(lambda m: m.search("alice", "tea", mode="semantic"), "mode.*hybrid", id="unknown-mode"),
    pytest.param(lambda m: m.search("alice", "   "), "query", id="blank-query"),
    pytest.param(lambda m: m.search("alice", "tea", memory_types=["opinion"]), "memory type", id="search-unknown-type"),
    pytest.param(lambda m: m.search("alice", "tea", tags="drinks"), "tags", id="search-tags-str"),
    pytest.param(lambda m: m.list("alice", tags="drinks"), "tags", id="list-tags-str"),
    pytest.param(lambda m: m.list("alice", limit=0), "limit", id="limit-0"),
    pytest.param(lambda m: m.list("alice", offset=-1), "offset", id="offset-negative"),
    pytest.param(lambda m: m.update("alice", "some-id"), "nothing to update", id="update-nothing"),
]


@pytest.fixture
def existing(mem: Memory) -> str:
    return mem.remember("alice", "I like coffee").entry.id


def assert_unchanged(mem: Memory, existing: str) -> None:
    entries = mem.store.list(Scope("alice"), EVERYTHING)
    assert [(e.id, e.importance, e.tags) for e in entries] == [(existing, 0.5, ())]
    assert len(mem.store.history(Scope("alice"))) == 1


@pytest.mark.parametrize("user", BAD_USER_IDS, ids=repr)
@pytest.mark.parametrize("method", list(BY_USER))
def test_bad_user_id_is_rejected_by_every_method(mem: Memory, existing: str, method: str, user: object) -> None:
    with pytest.raises(InvalidInputError, match="user_id") as info:
        BY_USER[method](mem, user, existing)

    assert isinstance(info.value, ValueError)
    assert_unchanged(mem, existing)


@pytest.mark.parametrize(("call", "field"), CALLS)
def test_bad_argument_names_the_field(mem: Memory, existing: str, call, field: str) -> None:
    with pytest.raises(InvalidInputError, match=field) as info:
        call(mem)

    assert isinstance(info.value, ValueError)
    assert_unchanged(mem, existing)


def test_bad_update_values_leave_the_entry_unchanged(mem: Memory, existing: str) -> None:
    for changes, field in [({"importance": 2.0}, "importance"), ({"memory_type": "rumour"}, "memory type")]:
        with pytest.raises(InvalidInputError, match=field):
            mem.update("alice", existing, **changes)
    with pytest.raises(InvalidInputError, match="content"):
        mem.update("alice", existing, content="x" * 2001)

    assert_unchanged(mem, existing)


def test_update_rejects_tags_given_as_one_string(mem: Memory, existing: str) -> None:
    """Library bug: ``Memory.update`` (like ``remember``, ``search`` and ``list``) calls ``tuple(tags)``
    before validating, so ``tags="drinks"`` is stored as the tags d, r, i, n, k, s."""
    with pytest.raises(InvalidInputError, match="tags"):
        mem.update("alice", existing, tags="drinks")

    assert_unchanged(mem, existing)
