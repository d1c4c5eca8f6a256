"""Qdrant specifics: URLs, scoping inside the query, one round trip per search, keyword terms, error
translation and persistence in local mode. The contract suite (tests/contract/) covers the rest.

Most tests use 3-dimensional vectors (``dimensions=3``), so they need no embedding model. No Qdrant
server runs here: what needs one (payload indexes in collection info) is checked on the declarations
the store creates them from.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from qdrant_client import models
from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from memory import (
    ConfigurationError,
    DuplicateContentError,
    InvalidInputError,
    MemoryEntry,
    MemoryFilter,
    Ranking,
    Scope,
    SearchMode,
    SearchRequest,
    StoreError,
    StoreUnavailableError,
)
from memory.errors import AgentMemoryError
from memory.models import MemoryType
from memory.stores import open_store, sqlite_driver
from memory.stores.qdrant import QdrantStore, _translate
from memory.stores.qdrant_keywords import document_terms, index, query_terms, term
from memory.stores.qdrant_schema import EVENT_INDEXES, MEMORY_INDEXES, TURN_INDEXES, VERSION_INDEXES, index_schema
from memory.turns import TurnRecord, TurnStatus

ALICE, BOB = Scope("alice"), Scope("bob")
REPO = Path(__file__).parent.parent


def entry(content: str, vector: list[float], user_id: str = "alice", **fields: Any) -> MemoryEntry:
    return MemoryEntry(user_id=user_id, content=content, embedding=np.array(vector, dtype=np.float32), **fields)


def request(text: str, vector: list[float], **fields: Any) -> SearchRequest:
    return SearchRequest(text=text, embedding=np.array(vector, dtype=np.float32), **fields)


@pytest.fixture
def calls() -> list[tuple[str, Any]]:
    return []


@pytest.fixture
def store(calls: list[tuple[str, Any]]) -> Any:
    store = QdrantStore(dimensions=3, tracer=lambda operation, params: calls.append((operation, params)))
    yield store
    store.close()


# -- URLs ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "location"),
    [
        ("qdrant://db.internal:6334", "http://db.internal:6334"),
        ("qdrant://db.internal", "http://db.internal:6333"),
        ("qdrants://db.internal", "https://db.internal:6333"),
        ("qdrant://[::1]:7000/qdrant/", "http://[::1]:7000/qdrant"),
        ("qdrant+local://", ":memory:"),
        ("qdrant+local:///:memory:", ":memory:"),
        ("qdrant+local:///qdrant_data", "qdrant_data"),
        ("qdrant+local:////var/lib/memory", "/var/lib/memory"),
    ],
)
def test_urls_name_a_server_or_local_mode(url: str, location: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QDRANT_API_KEY", "s3cret")

    store = open_store(url)  # no I/O: not even an unreachable server fails here

    assert isinstance(store, QdrantStore)
    assert store.location == location
    assert store.api_key == ("s3cret" if url.startswith("qdrant") and "+local" not in url else None)
    assert ("persistent" in store.capabilities) is (location != ":memory:")
    assert (store.memories, store.events) == ("agent_memory_memories", "agent_memory_events")


def test_url_prefix_names_the_collections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QDRANT_API_KEY", raising=False)

    store = open_store("qdrant://localhost?prefix=support_bot")

    assert (store.memories, store.events, store.api_key) == ("support_bot_memories", "support_bot_events", None)
    assert store.turns == "support_bot_turns"


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("qdrant+local://host/dir", "three slashes"),
        ("qdrant://", "qdrant://localhost:6333"),
        ("qdrant://:key@db.internal", "QDRANT_API_KEY"),
        ("qdrant://db.internal:port", "port"),
        ("qdrant://db.internal?collection=x", r"\?prefix=NAME"),
    ],
)
def test_a_bad_qdrant_url_names_the_setting_and_the_fix(url: str, hint: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"MEMORY_STORE_URL.*{hint}"):
        open_store(url)


# -- scoping -------------------------------------------------------------------------------------
def test_a_non_string_user_id_is_rejected_before_reaching_qdrant(store: QdrantStore, calls: list) -> None:
    store.add(entry("My locker code is 4512", [1, 0, 0], user_id="42"))
    forged = object.__new__(Scope)  # as a caller bypassing Scope's own validation would
    object.__setattr__(forged, "user_id", 42)
    object.__setattr__(forged, "tenant_id", "default")
    before = len(calls)

    for call in (
        lambda: store.get(forged, "x"),
        lambda: store.list(forged),
        lambda: store.count(forged),
        lambda: store.search(forged, request("locker", [1, 0, 0])),
        lambda: store.history(forged),
        lambda: store.forget_user(forged),
        lambda: store.get_turn(forged, "turn-1"),
        lambda: store.list_turns(forged),
    ):
        with pytest.raises(InvalidInputError, match="user_id must be a string, got int 42"):
            call()

    assert len(calls) == before  # nothing was sent
    assert [e.content for e in store.list(Scope("42"))] == ["My locker code is 4512"]


def test_filters_are_inside_the_query_so_a_top_neighbour_of_another_user_never_crowds_out(
    store: QdrantStore, calls: list
) -> None:
    """With one candidate per side, a filter applied after the query would get bob's memory (the exact
    match) and drop it, returning nothing; applied inside the query, alice's own memory is found."""
    store.add(entry("My locker code is 4512", [1, 0, 0], user_id="bob"))
    mine = store.add(entry("My locker has a blue door", [0.2, 1, 0]))
    calls.clear()

    for mode in SearchMode:
        hits = store.search(ALICE, request("locker code 4512", [1, 0, 0], mode=mode, ranking=Ranking(candidates=1)))
        assert [h.entry.id for h in hits] == [mine.id], mode

    assert {operation for operation, _ in calls} == {"query_batch_points"}
    for query in (query for _, params in calls for query in params["requests"]):
        assert "key='user_id', match=MatchValue(value='alice')" in repr(query.filter)


def test_a_search_is_one_round_trip(store: QdrantStore, calls: list) -> None:
    store.add_many([entry("I cycle to work", [1, 0, 0]), entry("I own a red bike", [0.9, 0.1, 0])])
    calls.clear()

    hits = store.search(ALICE, request("red bike", [1, 0, 0]))

    assert [operation for operation, _ in calls] == ["query_batch_points"]
    assert [len(params["requests"]) for _, params in calls] == [2]  # the vector and the keyword query
    assert hits[0].entry.content == "I own a red bike"
    assert (hits[0].vector_rank, hits[0].keyword_rank) == (2, 1)


def test_every_payload_key_the_store_filters_on_has_a_payload_index(store: QdrantStore, calls: list) -> None:
    """A server makes these indexes with the collection (local mode has none, and no Qdrant server runs
    here to show them in the collection info): a filter on a key without one is a full scan there, or
    an error in strict mode. The keys are read from the requests the store really sends."""
    bike = store.add(entry("I own a red bike", [1, 0, 0]))
    every_filter = MemoryFilter(memory_types=(MemoryType.FACT,), tags=("x",), session_id="s")
    calls.clear()
    store.list(ALICE, every_filter)
    store.count(ALICE, every_filter)
    store.get_by_hash(ALICE, bike.content_hash)
    store.search(ALICE, request("red bike", [1, 0, 0], filters=every_filter))
    store.search(ALICE, request("red bike", [1, 0, 0], mode=SearchMode.VECTOR, embedding_model=None))
    store.prune(ALICE, 1, ranking=Ranking(), now=0.0)
    memory_keys = {key for op, params in calls for key in re.findall(r"key='(\w+)'", repr(params))}
    calls.clear()
    store.history(ALICE, bike.id)
    store.delete(ALICE, bike.id)
    event_keys = {key for op, params in calls if params.get("collection_name") == store.events
                  for key in re.findall(r"key='(\w+)'", repr(params))}  # fmt: skip
    calls.clear()
    store.save_turn(TurnRecord(turn_id="turn-1", user_id="alice"))
    store.get_turn(ALICE, "turn-1")
    store.list_turns(ALICE, TurnStatus)
    store.forget_user(ALICE)
    turn_keys = {key for op, params in calls if params.get("collection_name") == store.turns
                 for key in re.findall(r"key='(\w+)'", repr(params))}  # fmt: skip
    calls.clear()
    store.add(entry("I own a red bike", [1, 0, 0]))
    store.version(ALICE)
    store.forget_user(ALICE)
    version_keys = {key for op, params in calls if params.get("collection_name") == store.versions
                    for key in re.findall(r"key='(\w+)'", repr(params))}  # fmt: skip

    assert memory_keys == set(MEMORY_INDEXES)
    assert event_keys == set(EVENT_INDEXES)  # seq: history is read in order_by seq
    assert turn_keys == set(TURN_INDEXES)  # a turn is read by its point id, so turn_id needs no index
    assert version_keys == set(VERSION_INDEXES)  # a version is read by its point id, within the scope
    assert index_schema("tenant").is_tenant is True
    assert index_schema("integer").range is True  # order_by needs a range index
    assert index_schema("float") == models.PayloadSchemaType.FLOAT


def test_local_mode_makes_no_payload_indexes(store: QdrantStore, calls: list) -> None:
    store.open()

    assert [op for op, _ in calls] == ["collection_exists", "create_collection"] * 4


# -- keywords ------------------------------------------------------------------------------------
def test_stems_equal_the_sqlite_stores_porter_tokenizer() -> None:
    """The SQLite store's FTS5 ``porter`` tokenizer and ``stem`` agree on every word of this repository."""
    text = " ".join(p.read_text() for p in [REPO / "README.md", *REPO.glob("memory/**/*.py")])
    words = sorted({w for w in re.findall(r"[^\W\d_]+", text.casefold())} | {"café", "naïve", "feed", "ies"})
    conn = sqlite_driver.choose_driver().module.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(x, tokenize = 'porter unicode61 remove_diacritics 2')")
    conn.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
    conn.executemany("INSERT INTO t (rowid, x) VALUES (?, ?)", enumerate(words, 1))
    fts5 = {words[doc - 1]: term for term, doc in conn.execute("SELECT term, doc FROM v")}

    assert len(fts5) > 1000
    assert {w: term(w) for w in words} == fts5


def test_keyword_terms_match_joined_tokens_whole_and_in_parts() -> None:
    doc = set(document_terms("Parcel ORD-48213 from Dr. Okonkwo-Haralds reached the café by trains"))

    assert set(query_terms("ORD-48213")) <= doc
    assert not set(query_terms("ORD-51907")) & doc  # another order number shares the "ord" part only
    assert set(query_terms("Okonkwo")) <= doc
    assert set(query_terms("cafe train")) <= doc
    assert index("train") == 2498747759  # stored sparse indices must never change between versions


# -- errors --------------------------------------------------------------------------------------
def response(status: int) -> UnexpectedResponse:
    return UnexpectedResponse(status, "reason", b"{}", httpx.Headers())


@pytest.mark.parametrize(
    ("error", "expected", "hint"),
    [
        (response(401), StoreUnavailableError, "QDRANT_API_KEY"),
        (response(403), StoreUnavailableError, "QDRANT_API_KEY"),
        (response(503), StoreUnavailableError, "MEMORY_STORE_URL"),
        (response(400), StoreError, "Qdrant error"),
        (ResponseHandlingException(httpx.ConnectError("refused")), StoreUnavailableError, "MEMORY_STORE_URL"),
        (ResourceExhaustedResponse("slow down", 1), StoreUnavailableError, "MEMORY_STORE_URL"),
        (RuntimeError("QdrantLocal instance is closed"), StoreUnavailableError, "one client at a time"),
        (ValueError("Wrong input"), StoreError, "rejected"),
    ],
    ids=["401", "403", "503", "400", "connection-refused", "rate-limited", "local-closed", "bad-input"],
)
def test_every_driver_error_maps_to_the_error_tree(error: Exception, expected: type, hint: str) -> None:
    translated = _translate(error, "http://db.internal:6333")

    assert type(translated) is expected and isinstance(translated, AgentMemoryError)
    assert re.search(hint, str(translated))


def test_an_unreachable_server_is_store_unavailable_naming_the_setting() -> None:
    store = open_store("qdrant://127.0.0.1:1")

    with pytest.raises(StoreUnavailableError, match="MEMORY_STORE_URL") as info:
        store.count(ALICE)

    assert isinstance(info.value.__cause__, ResponseHandlingException)
    with pytest.raises(StoreUnavailableError):  # each call tries again, and fails the same way
        store.search(ALICE, SearchRequest(text="bike", embedding=None))


def test_a_closed_client_or_a_locked_directory_is_store_unavailable(tmp_path: Path) -> None:
    with QdrantStore(str(tmp_path), dimensions=3) as first:
        with pytest.raises(StoreUnavailableError, match="one client at a time") as info:
            QdrantStore(str(tmp_path), dimensions=3).open()
        assert isinstance(info.value.__cause__, RuntimeError)

        first._client.close()  # closed behind the store's back
        with pytest.raises(StoreUnavailableError, match="closed"):
            first.count(ALICE)


def test_bad_embeddings_and_duplicates_are_refused_before_writing(store: QdrantStore) -> None:
    with pytest.raises(InvalidInputError, match="2 dimensions; this store holds 3"):
        store.add(entry("I own a red bike", [1, 0]))
    with pytest.raises(InvalidInputError, match="needs an embedding"):
        store.add(MemoryEntry(user_id="alice", content="I own a red bike"))
    with pytest.raises(DuplicateContentError):
        store.add_many([entry("I own a red bike", [1, 0, 0]), entry("I OWN A RED BIKE.", [0, 1, 0])])
    kept = store.add(entry("I own a red bike", [1, 0, 0]))
    with pytest.raises(StoreError, match="already exists"):
        store.add(entry("I own a blue car", [0, 1, 0], id=kept.id))

    assert [e.id for e in store.list(ALICE)] == [kept.id]
    assert len(store.history(ALICE)) == 1


# -- local mode on disk --------------------------------------------------------------------------
def test_local_mode_on_disk_keeps_memories_and_history_across_reopen(tmp_path: Path) -> None:
    with QdrantStore(str(tmp_path), dimensions=3) as store:
        bike = store.add(entry("I own a red bike", [1, 0, 0], tags=("bikes",)))
        store.update(ALICE, bike.id, {"importance": 0.9})

    with QdrantStore(str(tmp_path), dimensions=3) as store:
        assert store.get(ALICE, bike.id).importance == 0.9
        assert [h.entry.id for h in store.search(ALICE, request("bike", [1, 0, 0]))] == [bike.id]
        store.update(ALICE, bike.id, {"importance": 0.7})
        history = store.history(ALICE, bike.id)

    assert [ev.kind.value for ev in history] == ["added", "updated", "updated"]
    assert [ev.id for ev in history] == sorted(ev.id for ev in history)


def test_a_storage_from_before_turn_records_gains_their_collection_on_open(tmp_path: Path) -> None:
    """The turns collection is created beside existing ones: no memory or event of the storage is lost. Like
    the events collection it has no vectors (``vectors_config={}``), which local mode and servers accept."""
    with QdrantStore(str(tmp_path), dimensions=3) as store:
        bike = store.add(entry("I own a red bike", [1, 0, 0]))
        store._call("delete_collection", collection_name=store.turns)  # as the release before wrote it

    with QdrantStore(str(tmp_path), dimensions=3) as store:
        record = store.save_turn(TurnRecord(turn_id="turn-1", user_id="alice"))

        assert store.get(ALICE, bike.id) == bike
        assert [ev.kind.value for ev in store.history(ALICE)] == ["added"]
        assert store.list_turns(ALICE) == [record]
        assert store._call("get_collection", collection_name=store.turns).config.params.vectors == {}


def test_a_storage_from_before_versions_gains_their_collection_and_versions_its_users(tmp_path: Path) -> None:
    """The versions collection is created beside the others; a user who already has memories gets a version
    when one is first asked for (``None`` keeps meaning "nothing stored"), and writes move it from then on."""
    with QdrantStore(str(tmp_path), dimensions=3) as store:
        bike = store.add(entry("I own a red bike", [1, 0, 0]))
        store._call("delete_collection", collection_name=store.versions)  # as the release before wrote it

    with QdrantStore(str(tmp_path), dimensions=3) as store:
        first = store.version(ALICE)

        assert first is not None and store.version(ALICE) == first  # made once, then only read
        assert store.version(BOB) is None
        store.update(ALICE, bike.id, {"importance": 0.9})
        assert store.version(ALICE) > first
        assert store._call("get_collection", collection_name=store.versions).config.params.vectors == {}


def test_the_version_is_bumped_after_the_write_not_with_it(store: QdrantStore, calls: list) -> None:
    """No transaction spans the collections: the version follows the write. When the bump fails (here: the
    versions collection is gone) the write stands and the error is raised; the version was not moved."""
    bike = store.add(entry("I own a red bike", [1, 0, 0]))
    before = store.version(ALICE)
    calls.clear()
    store.update(ALICE, bike.id, {"importance": 0.9})
    written = [(op, params["collection_name"]) for op, params in calls if op == "upsert"]

    assert written == [("upsert", store.memories), ("upsert", store.events), ("upsert", store.versions)]
    assert store.version(ALICE) > before

    store._call("delete_collection", collection_name=store.versions)  # behind the store's back
    with pytest.raises(StoreError):
        store.update(ALICE, bike.id, {"importance": 0.1})

    assert store.get(ALICE, bike.id).importance == 0.1


def test_local_mode_on_disk_serves_any_thread(tmp_path: Path) -> None:
    store = QdrantStore(str(tmp_path), dimensions=3)
    store.open()  # opened in this thread, used from another
    results: list[Any] = []
    worker = threading.Thread(target=lambda: results.append(store.add(entry("I own a red bike", [1, 0, 0]))))
    worker.start()
    worker.join()
    store.close()

    assert [e.content for e in results] == ["I own a red bike"]


def test_a_server_store_cannot_lease_and_says_where_to_lease_instead() -> None:
    store = QdrantStore("http://localhost:6333")  # refused before any request: no server needed
    calls = (lambda: store.try_lease(Scope("alice"), "run-1", 60), lambda: store.release_lease(Scope("alice"), "run-1"))

    assert "leases" not in store.capabilities
    for call in calls:
        with pytest.raises(ConfigurationError, match=r"'leases' in store\.capabilities.*Redis"):
            call()


def test_local_leases_are_shared_by_the_stores_of_one_directory_only(tmp_path: Path) -> None:
    """Local mode: one process holds a directory, so a table in the process sees every client of its data."""
    alice = Scope("alice")
    first, second = QdrantStore(str(tmp_path / "q")), QdrantStore(str(tmp_path / "q" / ".." / "q"))
    elsewhere, in_memory = QdrantStore(str(tmp_path / "other")), QdrantStore(":memory:")

    assert first.try_lease(alice, "run-1", 60)
    assert second.try_lease(alice, "run-2", 60) is False
    assert elsewhere.try_lease(alice, "run-2", 60) is True
    assert in_memory.try_lease(alice, "run-2", 60) is True
    assert QdrantStore(":memory:").try_lease(alice, "run-3", 60) is True  # each in-memory store is its own data
    first.release_lease(alice, "run-1")
    assert second.try_lease(alice, "run-2", 60) is True
