"""SQLite specifics: schema versioning, WAL, one statement per search, FTS5 quoting, the driver choice,
and the translation of every driver error into ``memory.errors``."""

from __future__ import annotations

import sys
import threading
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from memory import ConfigurationError, Memory, MemoryEntry, Scope, StoreError, get_settings
from memory.errors import StoreUnavailableError
from memory.stores import sqlite_driver
from memory.stores import sqlite_schema as schema
from memory.stores.sqlite import SEARCH_SQL, SQLiteStore, fts_query, scope_key
from memory.turns import TurnRecord, TurnStatus
from tests.store_calls import CALLS, PROTOCOL_METHODS, race_for_lease

ALICE = Scope("alice")
DRIVER = sqlite_driver.choose_driver()


def raw(path: Path) -> Any:
    """A second connection to the file, behind the store's back."""
    return DRIVER.module.connect(str(path), isolation_level=None)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "memory.db"


@pytest.fixture
def entry(embedder) -> Callable[..., MemoryEntry]:
    def make(content: str = "I own a red bike", **fields: Any) -> MemoryEntry:
        vector = embedder.embed([content])[0]
        return MemoryEntry(
            user_id="alice", content=content, embedding=vector, embedding_model=embedder.model_name, **fields
        )

    return make


def test_a_new_file_gets_the_current_schema_version_and_wal(db: Path) -> None:
    with SQLiteStore(str(db)):
        pass

    conn = raw(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_reopening_keeps_the_data_and_runs_no_migration(db: Path, entry) -> None:
    with SQLiteStore(str(db)) as store:
        kept = store.add(entry())

    assert schema.migrate(raw(db)) == schema.SCHEMA_VERSION  # found current: no step ran
    with SQLiteStore(str(db)) as store:
        assert store.get(ALICE, kept.id).content == kept.content
        assert len(store.history(ALICE)) == 1


def test_several_first_opens_of_a_new_file_at_once_all_succeed(db: Path, entry) -> None:
    """Processes starting together on a new file: one creates the schema, the others wait and use it."""
    stores = [SQLiteStore(str(db)) for _ in range(6)]
    barrier = threading.Barrier(len(stores))
    failures: list[BaseException] = []

    def first_open(store: SQLiteStore) -> None:
        barrier.wait()
        try:
            store.open()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=first_open, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    stores[0].add(entry("written by one"))
    assert all(store.count(Scope("alice")) == 1 for store in stores)
    for store in stores:
        store.close()


def test_a_newer_schema_is_refused(db: Path) -> None:
    SQLiteStore(str(db)).open()
    raw(db).execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION + 1}")

    store = SQLiteStore(str(db))
    with pytest.raises(ConfigurationError, match=r"newer.*MEMORY_STORE_URL"):
        store.open()
    with pytest.raises(ConfigurationError):
        store.count(ALICE)


def test_a_file_from_before_turn_records_is_upgraded_in_place(db: Path, entry, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file written at schema version 1 (memories and history, no write-back ledger) gains the
    ``turn_records`` table when the current code opens it, and keeps every memory and event."""
    with monkeypatch.context() as released:  # the code as it was: one step
        released.setattr(schema, "STEPS", schema.STEPS[:1])
        released.setattr(schema, "SCHEMA_VERSION", 1)
        with SQLiteStore(str(db)) as store:
            kept = store.add(entry())
    conn = raw(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'turn_records'").fetchone()[0] == 0
    conn.close()

    with SQLiteStore(str(db)) as store:
        assert store.get(ALICE, kept.id) == kept
        assert store.get(ALICE, kept.id).embedding.tobytes() == kept.embedding.tobytes()
        assert [ev.memory_id for ev in store.history(ALICE)] == [kept.id]
        record = store.save_turn(TurnRecord(turn_id="turn-1", user_id="alice", user_message="I own a red bike"))
        assert store.list_turns(ALICE) == [record]
        assert store.forget_user(ALICE) == 1
        assert store.list_turns(ALICE, TurnStatus) == []

    assert raw(db).execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION


def test_a_file_from_before_versions_is_upgraded_in_place(db: Path, entry, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file at schema version 2 gains ``memory_versions`` and its triggers: every scope that already has
    memories gets a version (``None`` keeps meaning "nothing stored"), and the triggers keep it from then on."""
    bob = Scope("bob")
    with monkeypatch.context() as released:  # the code as it was: two steps
        released.setattr(schema, "STEPS", schema.STEPS[:2])
        released.setattr(schema, "SCHEMA_VERSION", 2)
        with SQLiteStore(str(db)) as store:
            kept = store.add(entry())
            store.save_turn(TurnRecord(turn_id="turn-1", user_id="bob"))  # a turn record is not a memory
    assert raw(db).execute("SELECT count(*) FROM sqlite_master WHERE name = 'memory_versions'").fetchone()[0] == 0

    with SQLiteStore(str(db)) as store:
        upgraded = store.version(ALICE)
        assert upgraded is not None and store.version(bob) is None
        assert store.get(ALICE, kept.id) == kept
        store.update(ALICE, kept.id, {"importance": 0.9})
        assert store.version(ALICE) > upgraded

    assert raw(db).execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION


def test_a_file_from_before_leases_is_upgraded_in_place(db: Path, entry, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file at schema version 3 gains ``maintenance_leases``; its scopes are listed as they were versioned."""
    with monkeypatch.context() as released:  # the code as it was: three steps
        released.setattr(schema, "STEPS", schema.STEPS[:3])
        released.setattr(schema, "SCHEMA_VERSION", 3)
        with SQLiteStore(str(db)) as store:
            store.add(entry())
            store.add(entry(tenant_id="acme"))

    with SQLiteStore(str(db)) as store:
        assert store.scopes() == [Scope("alice", tenant_id="acme"), ALICE]
        assert store.try_lease(ALICE, "run-1", 60) and not store.try_lease(ALICE, "run-2", 60)

    assert raw(db).execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION == 4


def test_the_triggers_keep_the_version_whoever_writes(db: Path, entry) -> None:
    """The version changes in the transaction of the change even when the store is not the writer (a
    script, the sqlite3 shell), and a rolled-back change leaves it as it was."""
    with SQLiteStore(str(db)) as store:
        kept = store.add(entry())
        before = store.version(ALICE)
    conn = raw(db)
    conn.execute("BEGIN")
    conn.execute("UPDATE memories SET importance = 0.1")
    conn.execute("ROLLBACK")
    with SQLiteStore(str(db)) as store:
        assert store.version(ALICE) == before
    conn.execute("UPDATE memories SET user_id = 'bob'")  # moved: both scopes changed
    with SQLiteStore(str(db)) as store:
        assert store.version(ALICE) > before
        assert store.version(Scope("bob")) is not None
        assert store.get(Scope("bob"), kept.id) is not None


@pytest.mark.parametrize("mode", ["hybrid", "vector", "keyword"])
def test_a_search_is_one_statement(embedder, mode: str) -> None:
    statements: list[tuple[str, Any]] = []
    mem = Memory(SQLiteStore(tracer=lambda sql, params: statements.append((sql, params))), embedder, get_settings())
    for text in ("I own a red bike", "My bike has a flat tyre", "I ride to work"):
        mem.remember("alice", text)
    statements.clear()

    hits = mem.search("alice", "bike", mode=mode)

    assert hits
    assert [sql for sql, _ in statements] == [SEARCH_SQL]
    assert (statements[0][1]["tenant_id"], statements[0][1]["user_id"]) == ("default", "alice")


QUOTING = [
    ('"Orion"', True),
    ("Orion*", True),
    ("Orio*", False),  # no prefix query: the star is not an operator
    ("NEAR(launch coast)", True),
    ("launch AND", True),
    ("NOT budget", True),
    ("phase: budget", True),
    ("content:coast", True),  # two words, not a column filter
    ("scope_key:launch", True),
    ("(coast", True),
    ('"unbalanced quote', False),
    ("OR", False),
    ("^launch", True),
    ("-budget +coast", True),
    ("{content tags} : coast", True),
    ("***", False),
    ("x' OR '1'='1", False),
]


@pytest.mark.parametrize(("query", "found"), QUOTING, ids=[q for q, _ in QUOTING])
def test_fts_syntax_in_user_text_is_treated_as_words(memory: Memory, query: str, found: bool) -> None:
    target = memory.remember("alice", "The Orion launch is near the coast: phase two budget approved").entry

    for mode in ("keyword", "hybrid"):
        memory.search("alice", query, mode=mode)  # no syntax error in either
    keyword_hits = [h.entry.id for h in memory.search("alice", query, mode="keyword")]
    assert keyword_hits == ([target.id] if found else [])


def test_fts_query_quotes_every_term_and_keeps_the_scope() -> None:
    expression = fts_query(ALICE, 'say "hi" AND (Orion*) NEAR x:y')

    assert expression.startswith(f'scope_key : "{scope_key(ALICE)}" AND ')
    assert expression.endswith('("say" OR "hi" OR "orion" OR "near" OR "x" OR "y")')
    assert fts_query(ALICE, '*** ( ) ""') is None


def test_another_scopes_token_in_the_query_reaches_nothing(memory: Memory) -> None:
    memory.remember("bob", "My locker code is 4512")

    assert memory.search("alice", scope_key(Scope("bob")), mode="keyword") == []


def test_the_driver_chosen_here_can_load_sqlite_vec() -> None:
    import sqlite3

    assert DRIVER.name == ("sqlite3" if hasattr(sqlite3.Connection, "enable_load_extension") else "sqlean")
    driver, conn = sqlite_driver.connect(":memory:")
    assert driver == DRIVER
    assert conn.execute("SELECT vec_version()").fetchone()[0].startswith("v")


def test_no_usable_driver_is_one_clear_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sqlite3", types.SimpleNamespace(Connection=type("Connection", (), {})))
    monkeypatch.setitem(sys.modules, "sqlean", None)  # import sqlean -> ImportError

    with pytest.raises(ConfigurationError) as chosen:
        sqlite_driver.choose_driver()
    with pytest.raises(ConfigurationError) as opened:
        SQLiteStore(":memory:").count(ALICE)

    assert str(chosen.value) == str(opened.value) == sqlite_driver.NO_DRIVER_MESSAGE
    assert "pip install sqlean.py sqlite-vec" in str(chosen.value)


def test_a_path_in_a_missing_directory_is_unavailable(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "no" / "such" / "dir" / "m.db"))

    for call in (store.open, lambda: store.count(ALICE)):
        with pytest.raises(StoreUnavailableError, match="MEMORY_STORE_URL") as info:
            call()
        assert isinstance(info.value.__cause__, DRIVER.error)


def test_a_file_that_is_not_a_database_is_a_store_error(db: Path) -> None:
    """Library bug: ``sqlite_driver.connect`` probes FTS5 with ``SELECT fts5_source_id()`` on the user's
    file, which reads the header and fails with "file is not a database"; that is reported as a
    ``ConfigurationError`` saying the driver cannot load sqlite-vec or lacks FTS5."""
    db.write_bytes(bytes(range(256)) * 16)
    store = SQLiteStore(str(db))

    for call in (store.open, lambda: store.count(ALICE)):
        with pytest.raises(StoreError) as info:
            call()
        assert isinstance(info.value.__cause__, DRIVER.error)


def test_every_protocol_method_is_checked_below() -> None:
    assert set(CALLS) == PROTOCOL_METHODS - {"open", "close"}


@pytest.mark.parametrize("method", sorted(CALLS))
def test_a_driver_error_escapes_only_as_a_store_error(db: Path, entry, method: str) -> None:
    store = SQLiteStore(str(db))
    stored = store.add(entry())
    raw(db).executescript(
        "DROP TABLE memories; DROP TABLE memories_fts; DROP TABLE memory_events; DROP TABLE turn_records; "
        "DROP TABLE memory_versions; DROP TABLE maintenance_leases;"
    )

    with pytest.raises(StoreError) as info:
        CALLS[method](store, entry() if method.startswith("add") else stored)

    assert isinstance(info.value.__cause__, DRIVER.error)
    store.close()
    store.close()  # closing twice is safe, even broken


def test_a_lease_excludes_every_other_connection_to_the_file_and_one_racer_wins(db: Path) -> None:
    """Each store has its own connection, as another process would: BEGIN IMMEDIATE orders their upserts."""
    stores = [SQLiteStore(str(db)) for _ in range(8)]
    for store in stores:
        store.open()
    won = race_for_lease(stores, Scope("alice"))

    assert len(won) == 1
    assert [s.try_lease(Scope("alice"), f"run-{n}", 60) for n, s in enumerate(stores)] == [
        n == won[0] for n in range(len(stores))
    ]
    for store in stores:
        store.close()
