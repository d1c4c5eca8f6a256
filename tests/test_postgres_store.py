"""Postgres specifics: row-level security proven as the application role, surviving a server restart,
no prepared statements and two statements per search, clear errors for a missing or foreign schema and
an unreachable server, and the translation of every psycopg error into ``memory.errors``."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector
from psycopg import conninfo

from memory import (
    ConfigurationError,
    DuplicateContentError,
    Memory,
    MemoryEntry,
    MemoryFilter,
    Scope,
    SearchRequest,
    StoreError,
    StoreUnavailableError,
    get_settings,
    open_store,
)
from memory.local_postgres import nested_plans
from memory.models import Ranking, SearchMode
from memory.stores import postgres as pg
from memory.stores.postgres import (
    FORGET_SQL,
    FORGET_VERSION_SQL,
    LIST_SQL,
    SCHEMA_REVISION,
    SEARCH_SCOPE_SQL,
    SET_SCOPE_SQL,
    VERSION_SQL,
    PostgresStore,
)
from memory.stores.postgres_maintenance import LIST_SCOPES_SETUP_SQL, SCOPES_SQL
from memory.stores.postgres_search import SEARCH_CALL_SQL
from memory.turns import TurnRecord, TurnStatus
from tests.postgres_scratch import ScratchDatabase, scratch_database
from tests.postgres_support import APP_ROLE, PostgresDatabase, alembic, with_user_and_database
from tests.store_calls import CALLS, PROTOCOL_METHODS, race_for_lease

ALICE = Scope("alice")
BOB = Scope("bob")
ALICE_AT_ACME = Scope("alice", tenant_id="acme")
CAROL_AT_ACME = Scope("carol", tenant_id="acme")
SEEDED = {
    ALICE: ["I own a red bike", "My sister lives in Lisbon"],
    BOB: ["My locker code is 4512", "I am allergic to peanuts"],
    ALICE_AT_ACME: ["The Orion launch is scheduled for March"],
    CAROL_AT_ACME: ["The quarterly budget was approved"],
}
TABLES = ("memories", "memory_events", "memory_profiles", "turn_records", "memory_versions")
EVERYTHING = MemoryFilter(include_inactive=True, include_expired=True)


def set_scope(conn: psycopg.Connection, scope: Scope) -> None:
    """What the store runs first in every transaction: the scope, local to the transaction."""
    conn.execute(SET_SCOPE_SQL, {"tenant_id": scope.tenant_id, "user_id": scope.user_id})


def login_of(url: str) -> str:
    return conninfo.conninfo_to_dict(url)["user"]


@pytest.fixture
def db(postgres: PostgresDatabase) -> PostgresDatabase:
    """The session's database, emptied for this test."""
    postgres.truncate()
    return postgres


@pytest.fixture
def store(db: PostgresDatabase) -> Iterator[PostgresStore]:
    """A store connected as the application role, as in production."""
    backend = PostgresStore(db.app_url)
    yield backend
    backend.close()


@pytest.fixture
def mem(store: PostgresStore, embedder) -> Memory:
    return Memory(store, embedder, get_settings())


@pytest.fixture
def entry(embedder) -> Callable[..., MemoryEntry]:
    def make(content: str = "I own a red bike", scope: Scope = ALICE, **fields: Any) -> MemoryEntry:
        return MemoryEntry(
            user_id=scope.user_id,
            tenant_id=scope.tenant_id,
            content=content,
            embedding=embedder.embed([content])[0],
            embedding_model=embedder.model_name,
            **fields,
        )

    return make


@pytest.fixture
def seeded(db: PostgresDatabase, mem: Memory) -> dict[Scope, set[str]]:
    """Memories (and their events) and a turn record of four scopes, written by the store; a profile for
    each scope written as the app role with its scope set. Returns the memory ids of each scope."""
    ids = {
        scope: {mem.remember(scope.user_id, text, tenant_id=scope.tenant_id).entry.id for text in texts}
        for scope, texts in SEEDED.items()
    }
    with psycopg.connect(db.app_url) as conn:
        for scope in SEEDED:
            set_scope(conn, scope)
            conn.execute(
                "INSERT INTO memory_profiles (tenant_id, user_id, content, updated_at) VALUES (%s, %s, %s, now())",
                [scope.tenant_id, scope.user_id, f"profile of {scope.user_id}@{scope.tenant_id}"],
            )
            conn.commit()
    for scope in SEEDED:
        said = f"said by {scope.user_id}@{scope.tenant_id}"
        mem.store.save_turn(TurnRecord("turn-1", scope.user_id, scope.tenant_id, user_message=said))
    assert {scope: len(found) for scope, found in ids.items()} == {s: len(t) for s, t in SEEDED.items()}
    return ids


def ids(records: list[TurnRecord]) -> list[str]:
    return [record.turn_id for record in records]


def scopes_visible(conn: psycopg.Connection, table: str) -> set[tuple[str, str]]:
    return {tuple(row) for row in conn.execute(f"SELECT tenant_id, user_id FROM {table}").fetchall()}


# -- row-level security, as the application role ---------------------------------------------------------


def test_without_a_scope_the_app_role_sees_no_row(db: PostgresDatabase, seeded) -> None:
    with psycopg.connect(db.owner_url) as owner:
        assert [owner.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES] == [6, 6, 4, 4, 4]

    with psycopg.connect(db.app_url) as conn:
        assert conn.execute("SELECT current_setting('app.user_id', true)").fetchone() == (None,)
        assert [conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES] == [0] * len(TABLES)


@pytest.mark.parametrize("scope", list(SEEDED), ids=lambda s: f"{s.user_id}@{s.tenant_id}")
def test_a_scoped_transaction_sees_only_its_scope_even_without_a_where(
    db: PostgresDatabase, seeded, store: PostgresStore, scope: Scope
) -> None:
    with psycopg.connect(db.app_url) as conn:
        set_scope(conn, scope)
        visible = {table: scopes_visible(conn, table) for table in TABLES}
        ids = {row[0] for row in conn.execute("SELECT id FROM memories").fetchall()}
        events = conn.execute("SELECT count(*) FROM memory_events").fetchone()[0]

    assert visible == {table: {(scope.tenant_id, scope.user_id)} for table in TABLES}
    assert ids == seeded[scope] == {e.id for e in store.list(scope, EVERYTHING)}
    assert events == len(store.history(scope)) == len(SEEDED[scope])


def test_the_scope_is_local_to_its_transaction(db: PostgresDatabase, seeded) -> None:
    with psycopg.connect(db.app_url, autocommit=True) as conn:
        with conn.transaction():
            set_scope(conn, ALICE)
            assert conn.execute("SELECT count(*) FROM memories").fetchone()[0] == 2

        with conn.transaction():
            assert conn.execute("SELECT current_setting('app.user_id', true)").fetchone()[0] in ("", None)
            assert [conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES] == [0] * len(TABLES)


def test_the_store_leaves_no_scope_on_its_connection(seeded, store: PostgresStore) -> None:
    """Behind a transaction-mode pooler the next client gets this server connection: nothing may stick."""
    assert store.count(ALICE) == 2

    conn = store._conn
    try:
        assert conn.execute("SELECT current_setting('app.user_id', true)").fetchone()["current_setting"] in (
            "",
            None,
        )
        assert conn.execute("SELECT count(*) AS n FROM memories").fetchone()["n"] == 0
    finally:
        conn.rollback()


MEMORY_COLUMNS = "(id, tenant_id, user_id, content, content_hash, memory_type, importance, created_at, updated_at)"
FOREIGN_INSERTS = {
    "memories": f"INSERT INTO memories {MEMORY_COLUMNS} "
    "VALUES ('forged', 'default', 'bob', 'x', 'h', 'fact', 0.5, now(), now())",
    "memory_events": "INSERT INTO memory_events (tenant_id, user_id, memory_id, kind, created_at) "
    "VALUES ('default', 'bob', 'forged', 'added', now())",
    "memory_profiles": "INSERT INTO memory_profiles (tenant_id, user_id, content, updated_at) "
    "VALUES ('acme', 'alice', 'forged', now())",  # alice, but of another tenant
    "turn_records": "INSERT INTO turn_records (tenant_id, user_id, turn_id, status, created_at, updated_at) "
    "VALUES ('default', 'bob', 'forged', 'pending', now(), now())",
    "memories moved to bob": "UPDATE memories SET user_id = 'bob'",
    "events moved to another tenant": "UPDATE memory_events SET tenant_id = 'acme'",
    "turns moved to bob": "UPDATE turn_records SET user_id = 'bob'",
    "memory_versions": "INSERT INTO memory_versions (tenant_id, user_id, version) VALUES ('default', 'bob', 1)",
    "version moved to another tenant": "UPDATE memory_versions SET tenant_id = 'acme'",
}


@pytest.mark.parametrize("statement", list(FOREIGN_INSERTS))
def test_writing_a_row_of_another_scope_is_refused(
    db: PostgresDatabase, seeded, store: PostgresStore, statement: str
) -> None:
    with psycopg.connect(db.app_url) as conn:
        set_scope(conn, ALICE)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute(FOREIGN_INSERTS[statement])

    assert {e.id for e in store.list(BOB, EVERYTHING)} == seeded[BOB]
    assert {e.id for e in store.list(ALICE, EVERYTHING)} == seeded[ALICE]
    assert "forged" not in {e.memory_id for scope in SEEDED for e in store.history(scope)}
    assert [ids(store.list_turns(scope, TurnStatus)) for scope in SEEDED] == [["turn-1"]] * len(SEEDED)
    assert all(store.version(scope) > 1 for scope in SEEDED)


def test_updating_or_deleting_another_scopes_rows_touches_nothing(
    db: PostgresDatabase, seeded, store: PostgresStore
) -> None:
    before = {scope: [e.content for e in store.list(scope, EVERYTHING)] for scope in SEEDED}
    versions = {scope: store.version(scope) for scope in SEEDED}
    with psycopg.connect(db.app_url) as conn:
        set_scope(conn, ALICE)
        affected = {
            "update memories": conn.execute("UPDATE memories SET importance = 1 WHERE user_id = 'bob'"),
            "update events": conn.execute("UPDATE memory_events SET content = NULL WHERE user_id = 'bob'"),
            "update profiles": conn.execute("UPDATE memory_profiles SET content = '' WHERE tenant_id = 'acme'"),
            "delete memories": conn.execute("DELETE FROM memories WHERE user_id <> 'alice'"),
            "delete events": conn.execute("DELETE FROM memory_events WHERE tenant_id = 'acme'"),
            "delete profiles": conn.execute("DELETE FROM memory_profiles WHERE user_id = 'bob'"),
            "update turns": conn.execute("UPDATE turn_records SET user_message = NULL WHERE user_id = 'bob'"),
            "delete turns": conn.execute("DELETE FROM turn_records WHERE tenant_id = 'acme'"),
            "update versions": conn.execute("UPDATE memory_versions SET version = 0 WHERE user_id = 'bob'"),
            "delete versions": conn.execute("DELETE FROM memory_versions WHERE tenant_id = 'acme'"),
        }
        conn.commit()

    assert {name: cursor.rowcount for name, cursor in affected.items()} == dict.fromkeys(affected, 0)
    assert {scope: [e.content for e in store.list(scope, EVERYTHING)] for scope in SEEDED} == before
    assert {scope: store.version(scope) for scope in SEEDED} == versions
    assert all(e.content is not None for e in store.history(BOB))
    assert [t.user_message for t in store.list_turns(BOB)] == ["said by bob@default"]
    assert [ids(store.list_turns(scope)) for scope in (ALICE_AT_ACME, CAROL_AT_ACME)] == [["turn-1"], ["turn-1"]]
    with psycopg.connect(db.owner_url) as owner:
        assert owner.execute("SELECT count(*) FROM memory_profiles WHERE content = ''").fetchone()[0] == 0
        assert owner.execute("SELECT count(*) FROM memories WHERE importance = 1").fetchone()[0] == 0


def test_the_store_connects_as_a_role_that_owns_nothing_and_cannot_bypass_rls(
    db: PostgresDatabase, store: PostgresStore
) -> None:
    store.count(ALICE)
    conn = store._conn
    try:
        user = conn.execute("SELECT current_user AS u").fetchone()["u"]
        roles = conn.execute(
            "SELECT rolname, rolsuper, rolbypassrls FROM pg_roles "
            "WHERE pg_has_role(current_user, oid, 'MEMBER') ORDER BY rolname"
        ).fetchall()
        owned = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND pg_has_role(current_user, tableowner, 'MEMBER')"
        ).fetchall()
        truncate = conn.execute("SELECT has_table_privilege('memories', 'TRUNCATE') AS t").fetchone()["t"]
    finally:
        conn.rollback()

    assert user == login_of(db.app_url) != login_of(db.owner_url)
    assert {r["rolname"] for r in roles} == {user, APP_ROLE}
    assert [(r["rolsuper"], r["rolbypassrls"]) for r in roles] == [(False, False), (False, False)]
    assert owned == []
    assert truncate is False


def test_a_superuser_sees_every_row_whatever_the_scope(db: PostgresDatabase, seeded) -> None:
    """Why the application must never connect as the owner here: superusers bypass row-level security."""
    with psycopg.connect(db.owner_url) as owner:
        assert owner.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (True,)
        unscoped = {table: scopes_visible(owner, table) for table in TABLES}
        set_scope(owner, ALICE)
        scoped = {table: scopes_visible(owner, table) for table in TABLES}

    everyone = {(scope.tenant_id, scope.user_id) for scope in SEEDED}
    assert unscoped == scoped == dict.fromkeys(TABLES, everyone)


def test_add_many_across_scopes_passes_each_scopes_check_and_stays_atomic(store: PostgresStore, entry) -> None:
    store.add_many([entry("I own a red bike"), entry("My locker code is 4512", BOB)])
    with pytest.raises(DuplicateContentError):
        store.add_many([entry("I ride to work"), entry("My locker code is 4512", BOB)])

    assert [e.content for e in store.list(ALICE, EVERYTHING)] == ["I own a red bike"]
    assert [e.content for e in store.list(BOB, EVERYTHING)] == ["My locker code is 4512"]
    assert [len(store.history(s)) for s in (ALICE, BOB)] == [1, 1]


# -- reconnecting after a server restart ------------------------------------------------------------------


def test_the_store_reconnects_after_a_restart_and_keeps_everything(
    db: PostgresDatabase, store: PostgresStore, entry
) -> None:
    before = store.add_many([entry("I own a red bike"), entry("My sister lives in Lisbon")])
    dropped = store._conn

    db.restart()
    after = store.add(entry("I ride to work"))  # the first call after the restart is a write

    assert store._conn is not dropped and dropped.closed
    assert {e.id for e in store.list(ALICE)} == {e.id for e in [*before, after]}
    assert [e.kind.value for e in store.history(ALICE)] == ["added"] * 3


def test_memory_recalls_across_a_restart(db: PostgresDatabase, mem: Memory) -> None:
    kept = mem.remember("alice", "My sister lives in Lisbon").entry

    db.restart()
    hits = mem.search("alice", "where does my sister live?")  # the first call after the restart: a read
    added = mem.remember("alice", "I am allergic to peanuts").entry

    assert hits[0].entry.id == kept.id
    assert {e.id for e in mem.list("alice")} == {kept.id, added.id}
    assert mem.search("alice", "food allergy")[0].entry.id == added.id


def test_a_statement_stuck_behind_a_lock_times_out_and_the_store_goes_on(
    db: PostgresDatabase, store: PostgresStore, entry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The statement timeout set with the scope ends a call a lock holds up (here 0.3 s instead of 10 s), so
    the store's one connection is free again; every statement gets it, transaction-local."""
    store.add(entry())
    short = SET_SCOPE_SQL.replace(f"'{pg.STATEMENT_TIMEOUT}'", "'300ms'")
    assert short != SET_SCOPE_SQL
    monkeypatch.setattr(pg, "SEARCH_SCOPE_SQL", SEARCH_SCOPE_SQL.replace(SET_SCOPE_SQL, short))
    with psycopg.connect(db.owner_url) as locker:
        locker.execute("LOCK TABLE memories IN ACCESS EXCLUSIVE MODE")
        started = time.perf_counter()
        with pytest.raises(StoreUnavailableError, match="statement timeout"):
            store.search(ALICE, SearchRequest(text="red bike", embedding=None, top_k=3, mode=SearchMode.KEYWORD))
        assert time.perf_counter() - started < 2.0
        locker.rollback()
    assert [
        hit.entry.content
        for hit in store.search(ALICE, SearchRequest(text="red bike", embedding=None, top_k=3, mode=SearchMode.KEYWORD))
    ] == ["I own a red bike"]
    with psycopg.connect(db.app_url) as conn:  # transaction-local: a later transaction has the default back
        with conn.transaction():
            conn.execute(SET_SCOPE_SQL, {"tenant_id": "default", "user_id": "alice"})
            assert conn.execute("SHOW statement_timeout").fetchone()[0] == pg.STATEMENT_TIMEOUT
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "0"


# -- statements: no prepared ones, two per search ---------------------------------------------------------


def test_nothing_is_prepared_on_the_server(mem: Memory, store: PostgresStore) -> None:
    mem.remember("alice", "I own a red bike")
    for _ in range(8):  # psycopg would prepare a statement from its 5th run with its default threshold
        mem.search("alice", "bike")

    assert store._conn.prepare_threshold is None
    try:
        assert store._conn.execute("SELECT count(*) AS n FROM pg_prepared_statements").fetchone()["n"] == 0
    finally:
        store._conn.rollback()


@pytest.mark.parametrize("mode", ["hybrid", "vector", "keyword"])
def test_a_search_is_the_scope_and_one_statement(db: PostgresDatabase, embedder, mode: str) -> None:
    statements: list[tuple[str, Any]] = []
    store = PostgresStore(db.app_url, tracer=lambda sql, params: statements.append((sql, params)))
    mem = Memory(store, embedder, get_settings())
    for text in ("I own a red bike", "My bike has a flat tyre", "I ride to work"):
        mem.remember("alice", text)
    statements.clear()

    hits = mem.search("alice", "bike", mode=mode)
    store.close()

    assert hits
    assert [sql for sql, _ in statements] == [SEARCH_SCOPE_SQL, SEARCH_CALL_SQL]  # the call of search_memories
    assert [(p["tenant_id"], p["user_id"]) for _, p in statements] == [("default", "alice")] * 2


# -- opening: schema checks and an unreachable server -----------------------------------------------------

NO_SCHEMA = {
    "empty database": [],
    "pgvector but no alembic_version": ["CREATE EXTENSION vector"],
    "pgvector and an empty alembic_version": [
        "CREATE EXTENSION vector",
        "CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)",
        f"GRANT SELECT ON alembic_version TO {APP_ROLE}",
    ],
}


@pytest.mark.parametrize("setup", list(NO_SCHEMA))
def test_a_database_without_the_schema_says_to_migrate(postgres: PostgresDatabase, setup: str) -> None:
    with scratch_database(postgres, migrated=False) as scratch:
        with psycopg.connect(scratch.owner_url, autocommit=True) as owner:
            for sql in NO_SCHEMA[setup]:
                owner.execute(sql)
        store = PostgresStore(scratch.app_url)

        for call in (store.open, lambda: store.count(ALICE)):
            with pytest.raises(ConfigurationError, match="run `agent-memory migrate`"):
                call()
        store.close()


def test_a_downgraded_database_says_to_migrate(postgres: PostgresDatabase) -> None:
    with scratch_database(postgres, migrated=True) as scratch:
        alembic(scratch.owner_url, "downgrade", "base")
        store = PostgresStore(scratch.app_url)

        with pytest.raises(ConfigurationError, match="run `agent-memory migrate`"):
            store.count(ALICE)


def test_a_schema_at_another_revision_is_refused(postgres: PostgresDatabase) -> None:
    with scratch_database(postgres, migrated=True) as scratch:
        with psycopg.connect(scratch.owner_url, autocommit=True) as owner:
            owner.execute("UPDATE alembic_version SET version_num = '9999'")
        store = PostgresStore(scratch.app_url)

        for call in (store.open, lambda: store.list(ALICE)):
            with pytest.raises(ConfigurationError, match=f"revision 9999.*needs {SCHEMA_REVISION}") as info:
                call()
            assert "agent-memory migrate" in str(info.value)
        assert store._conn is None  # the refused connection was not kept


def test_a_login_outside_the_app_role_is_told_to_grant_it_not_to_migrate(db: PostgresDatabase) -> None:
    """A login role that is not a member of ``agent_memory_app`` (the README's ``IN ROLE agent_memory_app``
    forgotten) is told to grant the role, not to migrate: ``migrate`` would find the schema at head and
    change nothing."""
    outsider = f"agent_memory_outsider_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(db.owner_url, autocommit=True) as owner:
        owner.execute(f"CREATE ROLE {outsider} LOGIN NOSUPERUSER NOBYPASSRLS")
    try:
        store = PostgresStore(with_user_and_database(db.app_url, user=outsider))
        with pytest.raises(ConfigurationError) as info:
            store.count(ALICE)
        store.close()
    finally:
        with psycopg.connect(db.owner_url, autocommit=True) as owner:
            owner.execute(f"DROP ROLE {outsider}")

    assert f"GRANT {APP_ROLE} TO {outsider}" in str(info.value)
    assert "no agent-memory schema" not in str(info.value)


UNREACHABLE = "postgresql://nobody@127.0.0.1:1/agent_memory"


def test_an_unreachable_server_is_unavailable_and_names_the_setting(embedder) -> None:
    store = PostgresStore(UNREACHABLE)
    mem = Memory(store, embedder, get_settings())

    for call in (store.open, lambda: store.count(ALICE), lambda: mem.search("alice", "bike")):
        with pytest.raises(StoreUnavailableError, match="MEMORY_STORE_URL") as info:
            call()
        assert isinstance(info.value.__cause__, psycopg.OperationalError)
    store.close()


# -- every psycopg error escapes as a memory.errors type ---------------------------------------------------

# Two ways to break a working schema behind the store's back, each undone afterwards.
_BROKEN_TABLES = "memories, memory_events, turn_records, memory_versions, maintenance_leases"
BREAKAGES = {
    "tables renamed": (
        "ALTER TABLE memories RENAME TO memories_gone; ALTER TABLE memory_events RENAME TO memory_events_gone; "
        "ALTER TABLE turn_records RENAME TO turn_records_gone; "
        "ALTER TABLE memory_versions RENAME TO memory_versions_gone; "
        "ALTER TABLE maintenance_leases RENAME TO maintenance_leases_gone",
        "ALTER TABLE memories_gone RENAME TO memories; ALTER TABLE memory_events_gone RENAME TO memory_events; "
        "ALTER TABLE turn_records_gone RENAME TO turn_records; "
        "ALTER TABLE memory_versions_gone RENAME TO memory_versions; "
        "ALTER TABLE maintenance_leases_gone RENAME TO maintenance_leases",
    ),
    "privileges revoked": (
        f"REVOKE ALL ON {_BROKEN_TABLES} FROM {APP_ROLE}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {_BROKEN_TABLES} TO {APP_ROLE}",
    ),
}


@pytest.fixture(scope="module")
def breakable(postgres: PostgresDatabase) -> Iterator[ScratchDatabase]:
    """A migrated database of this module's own, so breaking its schema leaves the shared one alone."""
    with scratch_database(postgres, migrated=True) as scratch:
        yield scratch


def test_every_protocol_method_is_checked_below() -> None:
    assert set(CALLS) == PROTOCOL_METHODS - {"open", "close"}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
@pytest.mark.parametrize("method", sorted(CALLS))
def test_a_psycopg_error_escapes_only_as_a_store_error(
    breakable: ScratchDatabase, entry, method: str, breakage: str
) -> None:
    store = PostgresStore(breakable.app_url)
    store.forget_user(ALICE)
    stored = store.add(entry())
    break_sql, repair_sql = BREAKAGES[breakage]
    with psycopg.connect(breakable.owner_url, autocommit=True) as owner:
        owner.execute(break_sql)
        try:
            with pytest.raises(StoreError) as info:
                CALLS[method](store, entry() if method.startswith("add") else stored)
        finally:
            owner.execute(repair_sql)

    assert isinstance(info.value.__cause__, psycopg.Error)
    assert store.count(ALICE) >= 1  # repaired, the same store works again
    store.close()
    store.close()  # closing twice is safe


# -- URLs and duplicates -----------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg", "POSTGRESQL"])
def test_open_store_returns_a_postgres_store_for_each_spelling(db: PostgresDatabase, scheme: str) -> None:
    url = scheme + db.app_url[len("postgresql") :]
    store = open_store(url)

    assert isinstance(store, PostgresStore)
    assert store.count(ALICE) == 0
    assert store._conn.info.user == login_of(db.app_url)
    store.close()


def test_memory_from_a_postgres_url_recalls(db: PostgresDatabase, embedder) -> None:
    url = "postgres" + db.app_url[len("postgresql") :]
    with Memory.from_url(url, embedder=embedder) as mem:
        kept = mem.remember("alice", "I own a red bike").entry

        assert isinstance(mem.store.inner, PostgresStore)  # wrapped: its writes update the core-memory cache
        assert [hit.entry.id for hit in mem.search("alice", "bicycle")] == [kept.id]


def test_an_exact_duplicate_of_an_active_memory_is_refused_by_the_index(store: PostgresStore, entry) -> None:
    first = store.add(entry("I own a red bike"))

    with pytest.raises(DuplicateContentError) as info:
        store.add(entry("I own a red bike"))

    assert isinstance(info.value.__cause__, psycopg.errors.UniqueViolation)
    assert [e.id for e in store.list(ALICE, EVERYTHING)] == [first.id]
    assert len(store.history(ALICE)) == 1
    # The index covers active memories of one scope only.
    store.add(entry("I own a red bike", BOB))
    store.update(ALICE, first.id, {"status": "superseded"})
    store.add(entry("I own a red bike"))
    assert store.count(ALICE, EVERYTHING) == 2


# -- search: the exact nearest neighbours, read through the covering search indexes -----------------------

MODEL = "test-model"
EXACT_TOP_10 = Ranking(candidates=10, importance_weight=0.0, recency_weight=0.0, min_similarity=-1.0)


def unit_rows(rng: np.random.Generator, count: int, centre: np.ndarray | None = None, noise: float = 1.0):
    rows = noise * rng.standard_normal((count, 384)) + (0.0 if centre is None else centre)
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def add_vectors(
    store: PostgresStore, vectors: np.ndarray, tags: Callable[[int], tuple[str, ...]] = lambda n: ()
) -> None:
    entries = [
        MemoryEntry(user_id="alice", content=f"memory {n}", embedding=v, embedding_model=MODEL, tags=tags(n))
        for n, v in enumerate(vectors)
    ]
    for start in range(0, len(entries), 200):
        store.add_many(entries[start : start + 200])


def vacuum(db: PostgresDatabase) -> None:
    """What autovacuum does in time: pages all-visible (index-only scans), statistics for the planner."""
    with psycopg.connect(db.owner_url, autocommit=True) as owner:
        owner.execute("VACUUM ANALYZE memories")


def request(vector: np.ndarray, mode: SearchMode = SearchMode.VECTOR, **filters: Any) -> SearchRequest:
    ranking = EXACT_TOP_10 if mode is SearchMode.VECTOR else Ranking()
    return SearchRequest(
        text="memory", embedding=vector, mode=mode, top_k=10, ranking=ranking, embedding_model=MODEL,
        filters=MemoryFilter(**filters),
    )  # fmt: skip


def exact_scan(db: PostgresDatabase, vector: np.ndarray, tags: list[str] | None = None) -> list[str]:
    """The reference: pgvector's exact order over every active row of the scope, as the app role."""
    with psycopg.connect(db.app_url) as conn:
        register_vector(conn)
        set_scope(conn, ALICE)
        rows = conn.execute(
            "SELECT id FROM memories WHERE status = 'active' AND embedding_model = %s "
            "AND (%s::text[] IS NULL OR tags && %s::text[]) ORDER BY embedding <=> %s, id LIMIT 10",
            [MODEL, tags, tags, vector],
        ).fetchall()
    return [row[0] for row in rows]


def search_plan(db: PostgresDatabase, store: PostgresStore, search: SearchRequest) -> dict[str, Any]:
    """EXPLAIN ANALYZE of the search statement that the store's call ran inside search_memories (reported by
    auto_explain), with the parameters the store binds, as the app role."""
    bound: dict[str, Any] = {}
    store.tracer = lambda sql, params: bound.update(params) if sql is SEARCH_CALL_SQL else None
    try:
        store.search(ALICE, search)
    finally:
        store.tracer = None
    calls = [(SEARCH_SCOPE_SQL, SEARCH_CALL_SQL, bound)]
    ((plan,),) = nested_plans(db.owner_url, login_of(db.app_url), calls, "WITH query AS MATERIALIZED")
    return plan["Plan"]


def plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


def fell_back(plan: dict[str, Any]) -> bool:
    """Whether the exact scan of every indexed row ran: it is gated on the candidates being in doubt."""
    (gate,) = [node for node in plan_nodes(plan) if "NOT (InitPlan" in node.get("One-Time Filter", "")]
    (scan,) = [child for child in gate["Plans"] if child["Parent Relationship"] == "Outer"]
    return scan["Actual Loops"] > 0


def vector_ids(store: PostgresStore, search: SearchRequest) -> list[str]:
    return [hit.entry.id for hit in store.search(ALICE, search)]


def test_vector_search_is_the_exact_scan_read_from_the_search_indexes(db: PostgresDatabase, store) -> None:
    rng = np.random.default_rng(1)
    vectors = unit_rows(rng, 1000)
    add_vectors(store, vectors)
    vacuum(db)
    queries = unit_rows(rng, 10, vectors[:10], noise=0.02)

    assert all(vector_ids(store, request(q)) == exact_scan(db, q) for q in queries)
    for mode in (SearchMode.VECTOR, SearchMode.HYBRID):
        plan = search_plan(db, store, request(queries[0], mode))
        index_only = {node["Index Name"] for node in plan_nodes(plan) if node["Node Type"] == "Index Only Scan"}
        assert index_only == {"memories_vector_search", "memories_keyword_search"}
        assert not fell_back(plan)


def test_vector_search_stays_exact_when_the_halfvec_ranking_cannot_tell_rows_apart(db, store) -> None:
    """Vectors this close rank in doubt on their halfvec copies: the statement reads every row exactly."""
    rng = np.random.default_rng(2)
    vectors = unit_rows(rng, 300, unit_rows(rng, 1)[0], noise=0.0002)
    add_vectors(store, vectors)
    query = unit_rows(rng, 1, vectors[0], noise=0.0002)[0]

    assert vector_ids(store, request(query)) == exact_scan(db, query)
    assert fell_back(search_plan(db, store, request(query)))


def test_a_tag_filter_checked_after_the_ranking_keeps_vector_search_exact(db, store) -> None:
    rng = np.random.default_rng(3)
    vectors = unit_rows(rng, 400)
    add_vectors(store, vectors, tags=lambda n: ("rare",) if n % 100 == 7 else ("common",) if n % 3 else ())
    query = unit_rows(rng, 1, vectors[7], noise=0.02)[0]

    for tag, in_doubt in (("common", False), ("rare", True)):  # 4 rare rows: fewer than 10 among candidates
        assert vector_ids(store, request(query, tags=[tag])) == exact_scan(db, query, [tag])
        assert fell_back(search_plan(db, store, request(query, tags=[tag]))) is in_doubt


def test_rows_too_large_for_the_search_indexes_are_searched_from_the_heap(db, store, entry) -> None:
    long_text = "The zebra crossing report. " + " ".join(f"item{n} part{n}-piece{n}" for n in range(300))
    giant = Scope("\U0001f600" * 256, tenant_id="\U0001f9ea" * 256)
    ordinary = [store.add(entry(f"An ordinary note about topic {n}", ALICE)) for n in range(5)]
    large = store.add(entry(long_text[:4000], ALICE))
    far_out = store.add(entry("My zebra is called Stripes", giant, id="\U0001f680" * 256))
    with psycopg.connect(db.owner_url) as owner:
        flags = {row[0]: row[1:] for row in owner.execute("SELECT id, in_vector_index, in_keyword_index FROM memories")}

    assert flags[large.id] == (True, False) and flags[far_out.id] == (False, False)
    assert all(flags[e.id] == (True, True) for e in ordinary)
    for scope, found in ((ALICE, large), (giant, far_out)):
        for mode in (SearchMode.KEYWORD, SearchMode.VECTOR, SearchMode.HYBRID):
            model = found.embedding_model
            search = SearchRequest(text="zebra", embedding=found.embedding, mode=mode, embedding_model=model)
            hits = store.search(scope, search)
            assert hits[0].entry.id == found.id, (scope, mode)


# -- versions: kept by triggers, scoped by row-level security -------------------------------------------------


def version_rows(url: str, scope: Scope | None = None) -> dict[tuple[str, str], int]:
    """Every version row the connection may see: all of them as the owner, the scope's own as the app role."""
    with psycopg.connect(url) as conn:
        if scope is not None:
            set_scope(conn, scope)
        rows = conn.execute("SELECT tenant_id, user_id, version FROM memory_versions").fetchall()
    return {(tenant, user): version for tenant, user, version in rows}


def test_the_app_role_reads_and_writes_only_its_own_version_row(db: PostgresDatabase, seeded) -> None:
    everyone = version_rows(db.owner_url)
    alice = (ALICE.tenant_id, ALICE.user_id)
    with psycopg.connect(db.app_url) as conn:
        set_scope(conn, ALICE)
        visible = {tuple(row) for row in conn.execute("SELECT tenant_id, user_id FROM memory_versions")}
        moved = conn.execute("UPDATE memory_versions SET version = version + 1 WHERE user_id <> 'alice'").rowcount
        gone = conn.execute("DELETE FROM memory_versions WHERE user_id <> 'alice' OR tenant_id <> 'default'").rowcount
        own = conn.execute("UPDATE memory_versions SET version = version + 1").rowcount  # its own row: allowed
        for forged in ("('default', 'bob', 1)", "('acme', 'alice', 1)"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"), conn.transaction():
                conn.execute(f"INSERT INTO memory_versions (tenant_id, user_id, version) VALUES {forged}")
        conn.commit()

    assert set(everyone) == {(scope.tenant_id, scope.user_id) for scope in SEEDED}
    assert visible == {alice}
    assert (moved, gone, own) == (0, 0, 1)
    assert version_rows(db.owner_url) == {**everyone, alice: everyone[alice] + 1}


def test_a_change_made_outside_the_store_moves_the_version_and_a_rolled_back_one_does_not(
    db: PostgresDatabase, seeded, store: PostgresStore
) -> None:
    """The triggers keep the version whoever writes: the store, a script as the app role, the owner."""
    before = version_rows(db.owner_url)
    with psycopg.connect(db.app_url) as conn:
        set_scope(conn, ALICE)
        conn.execute("UPDATE memories SET importance = 0.9")
        conn.rollback()
    assert version_rows(db.owner_url) == before

    with psycopg.connect(db.owner_url) as owner:  # a superuser: one statement over several scopes
        owner.execute("UPDATE memories SET importance = 0.8 WHERE tenant_id = 'default'")
    after = version_rows(db.owner_url)

    assert {key for key in before if after[key] > before[key]} == {("default", "alice"), ("default", "bob")}
    assert {key for key in before if after[key] == before[key]} == {("acme", "alice"), ("acme", "carol")}
    assert store.version(ALICE) == after[("default", "alice")]


def test_a_truncate_by_an_operator_empties_the_versions_and_the_next_write_starts_above(
    db: PostgresDatabase, seeded, store: PostgresStore, entry
) -> None:
    """TRUNCATE fires no row or statement trigger of the writes: its own trigger empties the versions."""
    before = store.version(ALICE)
    with psycopg.connect(db.owner_url) as owner:
        owner.execute("TRUNCATE memories")
    assert version_rows(db.owner_url) == {} and store.version(ALICE) is None
    store.add(entry("after the truncate"))
    assert store.version(ALICE) > before


def test_a_write_during_forget_user_waits_for_it_then_starts_above_the_forgotten_version(
    db: PostgresDatabase, entry
) -> None:
    """forget_user takes the scope's version row first: a write of the scope that comes in meanwhile waits
    for the forget (so its memory is not deleted by it), then starts the version again above the version
    the forget removed, from a clock read once it had the row, not before it waited."""
    reached, release = threading.Event(), threading.Event()
    forgotten: list[int] = []

    def tracer(sql: str, params: Any) -> None:
        if sql is FORGET_SQL:  # the version row is the forget's now; its memories are not deleted yet
            reached.set()
            assert release.wait(10)
        if sql is FORGET_VERSION_SQL:  # in the forget's transaction: the version it is about to delete
            forgotten.append(store._conn.execute(VERSION_SQL, params).fetchone()["version"])

    def write() -> None:
        with psycopg.connect(db.app_url) as conn:
            set_scope(conn, ALICE)
            conn.execute(
                f"INSERT INTO memories {MEMORY_COLUMNS} "
                "VALUES ('during', 'default', 'alice', 'written during the forget', 'h', 'fact', 0.5, now(), now())"
            )

    store = PostgresStore(db.app_url, tracer=tracer)
    store.add(entry("I own a red bike"))
    forget = threading.Thread(target=store.forget_user, args=(ALICE,))
    writer = threading.Thread(target=write)
    forget.start()
    assert reached.wait(10)
    writer.start()
    writer.join(0.5)
    assert writer.is_alive()  # its trigger waits for the version row the forget holds
    release.set()
    forget.join(10)
    writer.join(10)

    assert [e.id for e in store.list(ALICE)] == ["during"]  # the write came after the forget
    assert len(forgotten) == 1
    assert store.version(ALICE) > forgotten[0]
    store.close()


# -- list(order_by="importance") reads memories_importance in order --------------------------------------------


def test_list_by_importance_reads_the_importance_index_and_stops_at_the_limit(
    db: PostgresDatabase, store: PostgresStore
) -> None:
    with psycopg.connect(db.owner_url) as owner:  # as the owner, a superuser here: no scope needed
        owner.execute(
            "INSERT INTO memories (id, tenant_id, user_id, content, content_hash, memory_type, importance, "
            "created_at, updated_at, status) "
            "SELECT 'm' || n, 'default', CASE WHEN n % 3 = 0 THEN 'alice' ELSE 'user-' || n % 40 END, "
            "'memory ' || n, 'h' || n, 'fact', (n * 7919 % 1000) / 1000.0, now() - n * interval '1 minute', "
            "now() - (n * 31 % 997) * interval '1 second', CASE WHEN n % 10 = 0 THEN 'pruned' ELSE 'active' END "
            "FROM generate_series(1, 6000) AS n"
        )
    vacuum(db)
    bound: dict[str, Any] = {}
    store.tracer = lambda sql, params: bound.update(params) if sql is LIST_SQL["importance"] else None
    listed = store.list(ALICE, order_by="importance", limit=20)
    store.tracer = None
    with psycopg.connect(db.app_url) as conn:
        set_scope(conn, ALICE)
        plan = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + LIST_SQL["importance"], bound).fetchone()[0][0]
        expected = conn.execute(
            "SELECT id FROM memories WHERE status = 'active' ORDER BY importance DESC, updated_at DESC, id LIMIT 20"
        ).fetchall()

    nodes = list(plan_nodes(plan["Plan"]))
    assert [e.id for e in listed] == [row[0] for row in expected]
    assert [n["Index Name"] for n in nodes if n["Node Type"] == "Index Scan"] == ["memories_importance"]
    assert not [n for n in nodes if n["Node Type"] == "Sort"]  # read in order, no sort of the user's rows
    assert max(n.get("Actual Rows", 0) for n in nodes) == 20  # and no row past the limit


# -- maintenance: listing scopes and leases, as the application role --------------------------------------


def test_scopes_lists_every_scope_as_the_app_role_and_leaves_no_setting_behind(seeded, store: PostgresStore) -> None:
    listed = store.scopes()

    assert listed == sorted(SEEDED, key=lambda s: (s.tenant_id, s.user_id))
    with store._conn.transaction():
        listing = store._conn.execute("SELECT current_setting('app.list_scopes', true) AS v").fetchone()["v"]
    assert store._conn.info.user == login_of(store.url)  # the app login, under row-level security
    assert listing in ("", None)  # transaction-local: gone with the transaction of scopes()


def test_listing_scopes_shows_only_version_rows_and_widens_no_write(db: PostgresDatabase, seeded) -> None:
    """``app.list_scopes`` opens memory_versions to SELECT only: every other table still shows only the
    transaction's scope, and no write can reach another scope's row."""
    with psycopg.connect(db.app_url) as conn:
        conn.execute("SELECT set_config('app.list_scopes', 'on', true)")
        listed = scopes_visible(conn, "memory_versions")
        unscoped = [conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES if t != "memory_versions"]
        set_scope(conn, ALICE)
        scoped = {t: scopes_visible(conn, t) for t in TABLES if t != "memory_versions"}
        bobs = conn.execute("SELECT count(*) FROM memories WHERE user_id = 'bob'").fetchone()[0]
        updated = conn.execute("UPDATE memory_versions SET version = 0 WHERE user_id = 'bob'").rowcount
        deleted = conn.execute("DELETE FROM memory_versions WHERE user_id = 'bob'").rowcount
        conn.execute("SAVEPOINT insert_other")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute("INSERT INTO memory_versions (tenant_id, user_id, version) VALUES ('default', 'eve', 1)")
        conn.execute("ROLLBACK TO SAVEPOINT insert_other")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute("UPDATE memory_versions SET user_id = 'eve' WHERE user_id = 'alice' AND tenant_id = 'default'")
        conn.rollback()

    assert listed == {(s.tenant_id, s.user_id) for s in SEEDED}
    assert unscoped == [0] * (len(TABLES) - 1)
    assert scoped == {t: {(ALICE.tenant_id, ALICE.user_id)} for t in TABLES if t != "memory_versions"}
    assert (bobs, updated, deleted) == (0, 0, 0)
    with psycopg.connect(db.owner_url) as owner:
        assert owner.execute("SELECT count(*) FROM memory_versions").fetchone()[0] == len(SEEDED)


def test_scopes_pages_through_the_index_in_code_point_order(db: PostgresDatabase, seeded) -> None:
    with psycopg.connect(db.app_url) as conn:
        conn.execute(LIST_SCOPES_SETUP_SQL, {"statement_timeout": pg.STATEMENT_TIMEOUT})
        plan = conn.execute(
            "EXPLAIN (COSTS OFF) " + SCOPES_SQL,
            {"after_tenant": "acme", "after_user": "alice", "limit": 2},
        ).fetchall()

    assert "memory_versions_scopes" in "\n".join(row[0] for row in plan)


def test_a_lease_excludes_every_other_connection_and_one_racer_wins(db: PostgresDatabase) -> None:
    stores = [PostgresStore(db.app_url) for _ in range(8)]
    won = race_for_lease(stores, ALICE)
    try:
        assert len(won) == 1
        assert [s.try_lease(ALICE, f"run-{n}", 60) for n, s in enumerate(stores)] == [
            n == won[0] for n in range(len(stores))
        ]
    finally:
        for store in stores:
            store.close()
