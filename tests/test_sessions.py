"""The session store contract, run on every backend: in process, redis-py on the real Redis, and the real
upstash-redis SDK through a REST server in front of that same Redis."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from memory.errors import InvalidInputError
from memory.models import Scope
from memory.sessions import SessionStore, Turn
from memory.sessions.base import session_key, sessions_key
from tests.sessions_support import BACKENDS, REDIS_URL, UPSTASH_TOKEN, delete_tenant, fresh_scope, store_factory
from tests.upstash_server import UpstashServer, serve_upstash

MakeStore = Callable[..., SessionStore]


@pytest.fixture(scope="module")
def upstash() -> Iterator[UpstashServer]:
    with serve_upstash(REDIS_URL, UPSTASH_TOKEN) as server:
        yield server


@pytest.fixture(params=BACKENDS)
def make_store(
    request: pytest.FixtureRequest, upstash: UpstashServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[MakeStore]:
    yield from store_factory(request.param, upstash, monkeypatch)


@pytest.fixture
def store(make_store: MakeStore) -> SessionStore:
    return make_store()


@pytest.fixture
def scope() -> Iterator[Scope]:
    scope = fresh_scope()
    yield scope
    delete_tenant(scope.tenant_id)


def raw(store: SessionStore, *command: str | int) -> object:
    """One command sent the store's own way: what is really in Redis (or the in-process twin)."""
    [reply] = store._run([list(command)], atomic=False)  # type: ignore[attr-defined]
    return reply


def say(store: SessionStore, scope: Scope, session_id: str, *contents: str) -> list[Turn]:
    turns = [Turn("user" if i % 2 == 0 else "assistant", content) for i, content in enumerate(contents)]
    for turn in turns:
        assert store.append(scope, session_id, turn) is True
    return turns


def test_store_follows_the_protocol(store: SessionStore) -> None:
    assert isinstance(store, SessionStore)
    assert (store.max_turns, store.ttl_seconds, store.timeout_seconds) == (20, 3600, 2.0)


def test_an_unknown_session_has_no_turns(store: SessionStore, scope: Scope) -> None:
    assert store.recent(scope, "never-used") == []


def test_recent_returns_the_turns_oldest_first_as_they_were(store: SessionStore, scope: Scope) -> None:
    turns = say(store, scope, "s1", "Hi, I'm planning a trip to Lisbon", "Lovely! When do you go?", "In May ü 🌞")
    assert store.recent(scope, "s1") == turns
    assert [turn.as_message()["role"] for turn in store.recent(scope, "s1")] == ["user", "assistant", "user"]


def test_recent_n_is_the_last_n_oldest_first(store: SessionStore, scope: Scope) -> None:
    turns = say(store, scope, "s1", "one", "two", "three", "four")
    assert store.recent(scope, "s1", 2) == turns[2:]
    assert store.recent(scope, "s1", 1) == turns[3:]
    assert store.recent(scope, "s1", 100) == turns


def test_the_list_is_trimmed_to_max_turns(make_store: MakeStore, scope: Scope) -> None:
    store = make_store(max_turns=3)
    turns = say(store, scope, "s1", *[f"turn {i}" for i in range(7)])
    assert store.recent(scope, "s1") == turns[-3:]
    assert len(raw(store, "LRANGE", session_key(scope, "s1"), 0, -1)) == 3  # type: ignore[arg-type]


def test_sessions_are_scoped_by_user_and_tenant(store: SessionStore, scope: Scope) -> None:
    say(store, scope, "s1", "mine")
    other_user = Scope(user_id="user-2", tenant_id=scope.tenant_id)
    other_tenant = Scope(user_id=scope.user_id, tenant_id=scope.tenant_id + "-other")
    try:
        assert store.recent(other_user, "s1") == []
        assert store.recent(other_tenant, "s1") == []
        store.clear(other_user, "s1")
        assert store.forget_user(other_tenant) == 0
        assert [turn.content for turn in store.recent(scope, "s1")] == ["mine"]
    finally:
        delete_tenant(other_tenant.tenant_id)


def test_ids_with_separators_cannot_collide(store: SessionStore, scope: Scope) -> None:
    a = Scope(user_id="a:session:b", tenant_id=scope.tenant_id)
    b = Scope(user_id="a", tenant_id=scope.tenant_id)
    say(store, a, "c", "from a")
    say(store, b, "b:session:c", "from b")
    say(store, b, "{x}%3A", "braces")
    assert [turn.content for turn in store.recent(a, "c")] == ["from a"]
    assert [turn.content for turn in store.recent(b, "b:session:c")] == ["from b"]
    assert [turn.content for turn in store.recent(b, "{x}%3A")] == ["braces"]
    assert store.forget_user(a) == 1
    assert len(store.recent(b, "b:session:c")) == 1


def test_clear_deletes_one_session(store: SessionStore, scope: Scope) -> None:
    say(store, scope, "s1", "first")
    kept = say(store, scope, "s2", "second")
    store.clear(scope, "s1")
    store.clear(scope, "never-used")
    assert store.recent(scope, "s1") == []
    assert store.recent(scope, "s2") == kept
    assert sorted(raw(store, "SMEMBERS", sessions_key(scope))) == ["s2"]  # type: ignore[arg-type]


def test_forget_user_deletes_every_session_of_the_user_only(store: SessionStore, scope: Scope) -> None:
    neighbour = Scope(user_id="user-2", tenant_id=scope.tenant_id)
    say(store, scope, "s1", "one")
    say(store, scope, "s2", "two")
    kept = say(store, neighbour, "s1", "neighbour")
    assert store.forget_user(scope) == 2
    assert store.recent(scope, "s1") == [] and store.recent(scope, "s2") == []
    assert raw(store, "TTL", sessions_key(scope)) == -2  # the index is gone too
    assert store.recent(neighbour, "s1") == kept
    assert store.forget_user(scope) == 0


def test_append_sets_and_restarts_the_ttl(make_store: MakeStore, scope: Scope) -> None:
    store = make_store(ttl_seconds=60)
    say(store, scope, "s1", "hello")
    for key in (session_key(scope, "s1"), sessions_key(scope)):
        assert 55 <= raw(store, "TTL", key) <= 60  # type: ignore[operator]
    raw(store, "EXPIRE", session_key(scope, "s1"), 5)
    say(store, scope, "s1", "again")
    assert raw(store, "TTL", session_key(scope, "s1")) >= 55  # type: ignore[operator]


def test_turns_expire_after_the_ttl(make_store: MakeStore, scope: Scope) -> None:
    store = make_store(ttl_seconds=1)
    say(store, scope, "s1", "soon gone")
    assert len(store.recent(scope, "s1")) == 1
    time.sleep(1.2)
    assert store.recent(scope, "s1") == []
    assert raw(store, "TTL", session_key(scope, "s1")) == -2
    assert raw(store, "TTL", sessions_key(scope)) == -2


@pytest.mark.parametrize(("max_turns", "expected"), [(1000, 160), (20, 20)])
def test_concurrent_appends_lose_nothing(make_store: MakeStore, scope: Scope, max_turns: int, expected: int) -> None:
    store = make_store(max_turns=max_turns)
    threads, per_thread = 8, 20
    start = threading.Barrier(threads)
    results: list[bool] = []

    def writer(thread: int) -> None:
        start.wait()
        results.extend(store.append(scope, "s1", Turn("user", f"{thread}:{i}")) for i in range(per_thread))

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert results == [True] * threads * per_thread
    stored = store.recent(scope, "s1")
    assert len(raw(store, "LRANGE", session_key(scope, "s1"), 0, -1)) == expected  # type: ignore[arg-type]
    assert len(stored) == expected
    if max_turns >= threads * per_thread:
        assert {turn.content for turn in stored} == {f"{t}:{i}" for t in range(threads) for i in range(per_thread)}
    for thread in range(threads):  # each writer's turns stay in the order it wrote them
        mine = [int(turn.content.split(":")[1]) for turn in stored if turn.content.startswith(f"{thread}:")]
        assert mine == sorted(mine)
    assert store.stats.appends == threads * per_thread and store.stats.append_failures == 0


def test_a_retried_turn_is_returned_once(store: SessionStore, scope: Scope) -> None:
    turn = Turn("user", "sent twice by a retry")
    assert store.append(scope, "s1", turn) and store.append(scope, "s1", turn)
    assert store.recent(scope, "s1") == [turn]


def test_an_entry_that_is_not_a_turn_is_skipped(
    store: SessionStore, scope: Scope, caplog: pytest.LogCaptureFixture
) -> None:
    raw(store, "RPUSH", session_key(scope, "s1"), "not json")
    turns = say(store, scope, "s1", "real")
    assert store.recent(scope, "s1") == turns
    assert "skipping an entry that is not a turn" in caplog.text


def test_stats_count_what_happened(store: SessionStore, scope: Scope) -> None:
    say(store, scope, "s1", "a", "b")
    store.recent(scope, "s1")
    store.clear(scope, "s1")
    assert store.stats.as_dict() == {
        "appends": 2,
        "append_failures": 0,
        "reads": 1,
        "read_failures": 0,
        "deletes": 1,
        "delete_failures": 0,
        "failures": 0,
        "last_error": None,
    }


@pytest.mark.parametrize("session_id", ["", "   ", "a\nb", "x" * 257, 42, None])
def test_a_bad_session_id_is_refused(store: SessionStore, scope: Scope, session_id: object) -> None:
    for call in (
        lambda: store.append(scope, session_id, Turn("user", "hi")),  # type: ignore[arg-type]
        lambda: store.recent(scope, session_id),  # type: ignore[arg-type]
        lambda: store.clear(scope, session_id),  # type: ignore[arg-type]
    ):
        with pytest.raises(InvalidInputError, match="session_id"):
            call()


def test_bad_arguments_are_refused(store: SessionStore, scope: Scope) -> None:
    with pytest.raises(InvalidInputError, match="scope"):
        store.recent("user-1", "s1")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="turn"):
        store.append(scope, "s1", {"role": "user", "content": "hi"})  # type: ignore[arg-type]
    for n in (0, -1, True, 2.5):
        with pytest.raises(InvalidInputError, match="n must be"):
            store.recent(scope, "s1", n)  # type: ignore[arg-type]
    assert store.stats.failures == 0


# --- the turn itself --------------------------------------------------------------------------------


def test_a_turn_round_trips_through_json_exactly() -> None:
    turn = Turn("assistant", 'Bom dia! 🌞 "quoted"\nsecond line', created_at=1_700_000_000.123456, turn_id="t-1")
    assert Turn.from_json(turn.to_json()) == turn
    assert Turn.from_json(turn.to_json().encode()) == turn
    assert turn.as_message() == {"role": "assistant", "content": turn.content}
    fresh = Turn("user", "hi")
    assert fresh.turn_id and abs(fresh.created_at - time.time()) < 5


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"role": "system"}, "role must be 'user' or 'assistant'"),
        ({"content": "   "}, "content of a turn must be a non-empty string"),
        ({"content": None}, "content of a turn must be a non-empty string"),
        ({"created_at": "yesterday"}, "created_at must be UNIX seconds"),
        ({"created_at": float("nan")}, "created_at must be UNIX seconds"),
        ({"created_at": True}, "created_at must be UNIX seconds"),
        ({"turn_id": ""}, "turn_id must be a non-empty string"),
        ({"turn_id": 7}, "turn_id must be a string"),
    ],
)
def test_a_bad_turn_is_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        Turn(**{"role": "user", "content": "hi", **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text", ["not json", "[]", '{"role": "user"}', '{"role": "robot", "content": "x", "created_at": 1, "turn_id": "a"}']
)
def test_from_json_refuses_what_is_not_a_turn(text: str) -> None:
    with pytest.raises(InvalidInputError, match=r"not a stored turn|role"):
        Turn.from_json(text)
