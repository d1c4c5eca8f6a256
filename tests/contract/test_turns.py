"""The write-back ledger (``save_turn``, ``get_turn``, ``list_turns``): exact round trips, upsert by turn id,
scoping as for memories, oldest-first listing by status, and removal by ``forget_user``."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from memory import InvalidInputError, Scope
from memory.stores.base import MemoryStore
from memory.turns import TurnRecord, TurnStatus

ALICE, BOB, ACME = Scope("alice"), Scope("bob"), Scope("alice", tenant_id="acme")
PENDING, FAILED, DONE = TurnStatus.PENDING, TurnStatus.FAILED, TurnStatus.DONE
T0 = 1_767_225_600.123457  # microseconds that a float rounding would lose


def turn(turn_id: str, scope: Scope = ALICE, **fields: object) -> TurnRecord:
    fields.setdefault("created_at", T0)
    return TurnRecord(turn_id=turn_id, user_id=scope.user_id, tenant_id=scope.tenant_id, **fields)


def full(turn_id: str = "turn-1", scope: Scope = ALICE) -> TurnRecord:
    """A record with every field set, in text no encoding step may alter."""
    return turn(
        turn_id,
        scope,
        session_id="session-7",
        status=FAILED,
        user_message="Je préfère le thé 🍵, pas le café.\nLine two: \"quoted\" \\ 'single' — 漢字 עברית",
        assistant_reply="Noted ✔ — tea, not coffee.",
        operations=[
            {"action": "add", "content": "Prefers tea 🍵", "importance": 0.8, "tags": ["drinks"], "id": None},
            {"action": "update", "id": "m-1", "nested": {"ok": True, "n": 3, "list": [1, 2.5, "x"]}},
        ],
        result={"added": ["m-2"], "merged": [], "ratio": 0.25, "note": "ünïcode"},
        attempts=2,
        error="Claude overloaded (529): retry later",
        updated_at=T0 + 1.000001,
    )


def ids(records: list[TurnRecord]) -> list[str]:
    return [record.turn_id for record in records]


def test_save_then_get_round_trips_every_field(store: MemoryStore) -> None:
    record = full()
    not_extracted = turn("turn-2")  # operations None: extraction has not answered yet
    nothing_to_keep = turn("turn-3", operations=[], status=DONE)  # it answered: nothing worth keeping
    unicode_id = turn("tür/会話 3 🎉")

    for saved in (record, not_extracted, nothing_to_keep, unicode_id):
        assert store.save_turn(saved) == saved
        assert store.get_turn(ALICE, saved.turn_id) == saved

    assert store.get_turn(ALICE, "turn-1").updated_at == T0 + 1.000001
    assert store.get_turn(ALICE, "turn-2").operations is None
    assert store.get_turn(ALICE, "turn-3").operations == []
    assert store.get_turn(ALICE, "turn-2").result == {}
    assert store.get_turn(ALICE, "no-such-turn") is None


def test_save_turn_replaces_every_field_but_created_at(store: MemoryStore) -> None:
    store.save_turn(full())
    done = turn("turn-1", status=DONE, result={"added": ["m-2"]}, attempts=3, created_at=T0 + 50, updated_at=T0 + 60)

    stored = store.save_turn(done)

    expected = dataclasses.replace(done, created_at=T0)  # the first save's; everything else is the new record's
    assert stored == expected
    assert store.get_turn(ALICE, "turn-1") == expected
    assert store.list_turns(ALICE, TurnStatus) == [expected]  # replaced, not added
    back = store.save_turn(full())  # and back again: None replaces values, [] replaces None
    assert back == full()


def test_turns_of_another_scope_are_invisible_and_untouched(store: MemoryStore) -> None:
    bob, acme = store.save_turn(full(scope=BOB)), store.save_turn(full(scope=ACME))

    assert store.get_turn(ALICE, "turn-1") is None
    assert store.get_turn(Scope("bob", tenant_id="acme"), "turn-1") is None
    assert store.list_turns(ALICE, TurnStatus) == []

    alice = store.save_turn(turn("turn-1", status=DONE))  # the same turn id in another scope: another record

    assert store.get_turn(ALICE, "turn-1") == alice
    assert store.get_turn(BOB, "turn-1") == bob
    assert store.get_turn(ACME, "turn-1") == acme
    assert store.list_turns(BOB, TurnStatus) == [bob]
    assert store.list_turns(ACME, TurnStatus) == [acme]


def test_list_turns_filters_by_status_oldest_first_and_honours_limit(store: MemoryStore) -> None:
    records = [
        turn("c", status=PENDING, created_at=T0 + 2),
        turn("e", status=FAILED, created_at=T0 + 3),
        turn("a", status=PENDING),
        turn("B", status=FAILED),  # ties on created_at go by turn id, code point order: "B" before "a"
        turn("d", status=DONE, created_at=T0 + 1),
    ]
    for record in records:
        store.save_turn(record)

    assert ids(store.list_turns(ALICE)) == ["B", "a", "c", "e"]  # by default: what write-back must still do
    assert ids(store.list_turns(ALICE, [DONE])) == ["d"]
    assert ids(store.list_turns(ALICE, [FAILED])) == ["B", "e"]
    assert ids(store.list_turns(ALICE, TurnStatus)) == ["B", "a", "d", "c", "e"]
    assert ids(store.list_turns(ALICE, ["pending", "done"])) == ["a", "d", "c"]  # plain strings too
    assert ids(store.list_turns(ALICE, TurnStatus, limit=2)) == ["B", "a"]
    assert ids(store.list_turns(ALICE, [PENDING], limit=1)) == ["a"]
    assert store.list_turns(ALICE, []) == []
    assert store.list_turns(ALICE)[0] == records[3]  # whole records, not keys


BAD_QUERIES = [
    pytest.param(lambda s: s.list_turns(ALICE, limit=0), "limit", id="limit-zero"),
    pytest.param(lambda s: s.list_turns(ALICE, limit=-1), "limit", id="limit-negative"),
    pytest.param(lambda s: s.list_turns(ALICE, limit=1.5), "limit", id="limit-float"),
    pytest.param(lambda s: s.list_turns(ALICE, limit="10"), "limit", id="limit-str"),
    pytest.param(lambda s: s.list_turns(ALICE, limit=None), "limit", id="limit-none"),
    pytest.param(lambda s: s.list_turns(ALICE, limit=True), "limit", id="limit-bool"),
    pytest.param(lambda s: s.list_turns(ALICE, "pending"), "statuses.*one string", id="statuses-str"),
    pytest.param(lambda s: s.list_turns(ALICE, ["finished"]), "turn status.*pending", id="unknown-status"),
    pytest.param(lambda s: s.get_turn(ALICE, 42), "turn_id", id="turn-id-int"),
    pytest.param(
        lambda s: s.save_turn(turn("t", operations=[{"at": datetime.now(UTC)}])), "operations", id="operations-json"
    ),
    pytest.param(lambda s: s.save_turn(turn("t", result={"x": float("nan")})), "result", id="result-nan"),
]


@pytest.mark.parametrize(("call", "field"), BAD_QUERIES)
def test_bad_turn_arguments_raise_invalid_input_and_store_nothing(store: MemoryStore, call, field: str) -> None:
    store.save_turn(turn("kept"))

    with pytest.raises(InvalidInputError, match=field):
        call(store)

    assert store.list_turns(ALICE, TurnStatus) == [turn("kept")]


def test_forget_user_removes_the_users_turn_records_and_only_theirs(store: MemoryStore, make_entry) -> None:
    store.add(make_entry("I play chess"))
    for record in (full(), turn("turn-2", status=DONE), turn("turn-3", operations=[])):
        store.save_turn(record)
    bob, acme = store.save_turn(full(scope=BOB)), store.save_turn(full(scope=ACME))

    assert store.forget_user(ALICE) == 1  # still the number of memories

    assert store.list_turns(ALICE, TurnStatus) == []
    assert store.get_turn(ALICE, "turn-1") is None
    assert store.list_turns(BOB, TurnStatus) == [bob]
    assert store.list_turns(ACME, TurnStatus) == [acme]
    assert store.forget_user(ALICE) == 0


@pytest.mark.requires("persistent")
def test_turn_records_survive_close_and_reopen(store: MemoryStore) -> None:
    saved = [store.save_turn(full()), store.save_turn(turn("turn-2", operations=[]))]
    store.close()

    store.open()
    assert store.list_turns(ALICE, TurnStatus) == saved
    assert store.get_turn(ALICE, "turn-1") == full()
    store.close()
    assert store.get_turn(ALICE, "turn-2").operations == []  # a call after close reopens by itself
