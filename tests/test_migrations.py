"""The Alembic schema on a fresh database of its own: what ``upgrade head`` creates (row-level security
enabled and forced, the policies, the vector column kept in the row, the covering search indexes and which
rows they hold, no HNSW), that
``downgrade base`` leaves the database clean and the round trip gives the same schema again (functions and
who may execute them included), and the application role's rights: NOLOGIN, no superuser, no BYPASSRLS,
owner of nothing. The search function of 0007 has tests of its own: tests/test_search_function.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from memory.models import Scope, SearchMode, SearchRequest
from memory.stores.postgres import SCHEMA_REVISION
from tests.postgres_scratch import ScratchDatabase, scratch_database
from tests.postgres_support import APP_ROLE, MIGRATIONS_INI, PostgresDatabase, alembic, with_user_and_database

TABLES = ("memories", "memory_events", "memory_profiles", "turn_records", "memory_versions", "maintenance_leases")
SCOPE_EXPRESSION = (
    "((tenant_id = current_setting('app.tenant_id'::text, true)) "
    "AND (user_id = current_setting('app.user_id'::text, true)))"
)


def head_revision() -> str:
    return ScriptDirectory.from_config(Config(str(MIGRATIONS_INI))).get_current_head()


def query(url: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def schema(url: str) -> dict[str, Any]:
    """Everything the migration defines in the database, comparable with ``==``."""
    return {
        "relations": query(
            url,
            "SELECT c.relname, c.relkind, c.relrowsecurity, c.relforcerowsecurity FROM pg_class AS c "
            "JOIN pg_namespace AS n ON n.oid = c.relnamespace WHERE n.nspname = 'public' ORDER BY 1",
        ),
        "columns": query(
            url,
            "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attstorage, "
            "a.attgenerated, pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute AS a "
            "JOIN pg_class AS c ON c.oid = a.attrelid "
            "JOIN pg_namespace AS n ON n.oid = c.relnamespace AND n.nspname = 'public' "
            "LEFT JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
            "WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind = 'r' ORDER BY 1, 2",
        ),
        "indexes": query(url, "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"),
        "constraints": query(
            url,
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2",
        ),
        "policies": query(
            url,
            "SELECT tablename, policyname, permissive, roles, cmd, qual, with_check FROM pg_policies ORDER BY 1, 2",
        ),
        "grants": query(
            url,
            "SELECT table_name, privilege_type FROM information_schema.role_table_grants "
            "WHERE grantee = %s ORDER BY 1, 2",
            [APP_ROLE],
        ),
        "triggers": query(
            url,
            "SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal "
            "ORDER BY 1, 2",
        ),
        "functions": query(  # the schema's own functions, not those of the vector extension, and their grants
            url,
            "SELECT p.proname, pg_get_functiondef(p.oid), p.proacl::text FROM pg_proc AS p "
            "WHERE p.pronamespace = 'public'::regnamespace AND NOT EXISTS "
            "(SELECT FROM pg_depend AS d WHERE d.objid = p.oid AND d.deptype = 'e') ORDER BY 1",
        ),
        "revision": query(url, "SELECT version_num FROM alembic_version"),
    }


@pytest.fixture(scope="module")
def fresh(postgres: PostgresDatabase) -> Iterator[ScratchDatabase]:
    """A database of this module, created empty and migrated here by ``upgrade head``."""
    with scratch_database(postgres, migrated=False) as database:
        assert query(database.owner_url, "SELECT relname FROM pg_class WHERE relname = ANY(%s)", [list(TABLES)]) == []
        alembic(database.owner_url, "upgrade", "head")
        yield database


def test_the_store_speaks_the_alembic_head_revision() -> None:
    assert head_revision() == SCHEMA_REVISION


def test_upgrade_records_the_head_revision_and_is_idempotent(fresh: ScratchDatabase) -> None:
    before = schema(fresh.owner_url)
    alembic(fresh.owner_url, "upgrade", "head")  # already at head: nothing runs

    assert before["revision"] == [(head_revision(),)]
    assert schema(fresh.owner_url) == before


def test_upgrade_creates_the_tables_with_row_level_security_enabled_and_forced(
    fresh: ScratchDatabase,
) -> None:
    rows = query(
        fresh.owner_url,
        "SELECT relname, relkind, relrowsecurity, relforcerowsecurity FROM pg_class "
        "WHERE relname = ANY(%s) AND relnamespace = 'public'::regnamespace ORDER BY relname",
        [list(TABLES)],
    )

    assert rows == [(table, "r", True, True) for table in sorted(TABLES)]


def test_every_table_has_one_scope_policy_for_reads_and_writes(fresh: ScratchDatabase) -> None:
    """And one more, SELECT only, on memory_versions: ``scopes`` lists every scope's ids (0005)."""
    rows = query(
        fresh.owner_url,
        "SELECT tablename, policyname, permissive, roles, cmd, qual, with_check FROM pg_policies "
        "WHERE schemaname = 'public' ORDER BY tablename, policyname",
    )
    listing = ("memory_versions", "memory_versions_list_scopes", "PERMISSIVE", ["public"], "SELECT")

    assert [row for row in rows if row[:5] != listing] == [
        (table, f"{table}_scope", "PERMISSIVE", ["public"], "ALL", SCOPE_EXPRESSION, SCOPE_EXPRESSION)
        for table in sorted(TABLES)
    ]
    assert [row for row in rows if row[:5] == listing] == [
        (*listing, "(current_setting('app.list_scopes'::text, true) = 'on'::text)", None)
    ]


def test_the_embedding_is_a_384_dimension_vector_kept_in_the_row(fresh: ScratchDatabase) -> None:
    rows = query(
        fresh.owner_url,
        "SELECT attname, format_type(atttypid, atttypmod), attstorage, attgenerated FROM pg_attribute "
        "WHERE attrelid = 'memories'::regclass AND attname IN ('embedding', 'tsv') ORDER BY attname",
    )
    generated = query(
        fresh.owner_url,
        "SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef "
        "WHERE adrelid = 'memories'::regclass AND adnum = "
        "(SELECT attnum FROM pg_attribute WHERE attrelid = 'memories'::regclass AND attname = 'tsv')",
    )

    assert rows == [("embedding", "vector(384)", "p", ""), ("tsv", "tsvector", "x", "s")]
    assert generated == [("to_tsvector('english'::regconfig, content)",)]


def test_the_indexes_exist_and_none_is_approximate(fresh: ScratchDatabase) -> None:
    indexes = dict(query(fresh.owner_url, "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'memories'"))
    approximate = query(
        fresh.owner_url,
        "SELECT c.relname FROM pg_class AS c JOIN pg_am AS am ON am.oid = c.relam "
        "WHERE c.relkind = 'i' AND am.amname IN ('hnsw', 'ivfflat')",
    )

    assert indexes == {
        "memories_pkey": "CREATE UNIQUE INDEX memories_pkey ON public.memories USING btree (id)",
        "memories_scope": "CREATE INDEX memories_scope ON public.memories "
        "USING btree (tenant_id, user_id, status, created_at DESC)",
        "memories_active_content": "CREATE UNIQUE INDEX memories_active_content ON public.memories "
        "USING btree (tenant_id, user_id, content_hash) WHERE (status = 'active'::text)",
        "memories_tsv": "CREATE INDEX memories_tsv ON public.memories USING gin (tsv)",
        "memories_vector_search": "CREATE INDEX memories_vector_search ON public.memories "
        "USING btree (tenant_id, user_id, embedding_model) INCLUDE (expires_at, memory_type, id, search_embedding) "
        "WHERE ((status = 'active'::text) AND in_vector_index AND (search_embedding IS NOT NULL))",
        "memories_keyword_search": "CREATE INDEX memories_keyword_search ON public.memories "
        "USING btree (tenant_id, user_id) "
        "INCLUDE (expires_at, memory_type, id, importance, created_at, updated_at, tsv) "
        "WHERE ((status = 'active'::text) AND in_keyword_index)",
        "memories_search_overflow": "CREATE INDEX memories_search_overflow ON public.memories "
        "USING btree (tenant_id, user_id) "
        "WHERE ((status = 'active'::text) AND ((NOT in_vector_index) OR (NOT in_keyword_index)))",
        "memories_importance": "CREATE INDEX memories_importance ON public.memories "
        "USING btree (tenant_id, user_id, importance DESC, updated_at DESC, id) WHERE (status = 'active'::text)",
    }
    assert approximate == []


def test_the_search_copy_of_the_embedding_and_the_index_flags_are_generated(fresh: ScratchDatabase) -> None:
    rows = query(
        fresh.owner_url,
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attstorage, a.attgenerated, "
        "pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute AS a "
        "JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
        "WHERE a.attrelid = 'memories'::regclass "
        "AND a.attname IN ('search_embedding', 'in_vector_index', 'in_keyword_index') ORDER BY a.attnum",
    )
    options = query(fresh.owner_url, "SELECT reloptions FROM pg_class WHERE oid = 'memories'::regclass")

    assert rows == [
        # EXTERNAL: the heap keeps the copy in TOAST (its rows stay as narrow as before); the index holds it.
        ("search_embedding", "halfvec(384)", "e", "s", "(l2_normalize(embedding))::halfvec(384)"),
        (
            "in_vector_index",
            "boolean",
            "p",
            "s",
            "((((octet_length(tenant_id) + octet_length(user_id)) + octet_length(id)) "
            "+ COALESCE(octet_length(embedding_model), 0)) <= 1800)",
        ),
        (
            "in_keyword_index",
            "boolean",
            "p",
            "s",
            "((((((octet_length(tenant_id) + octet_length(user_id)) + octet_length(id)) "
            "+ octet_length((to_tsvector('english'::regconfig, content))::text)) "
            "+ (5 * length(to_tsvector('english'::regconfig, content)))) + 8) <= 2400)",
        ),
    ]
    assert options == [(["autovacuum_vacuum_insert_scale_factor=0.02", "autovacuum_vacuum_scale_factor=0.02"],)]


# Each of these must make a btree entry of at most 2,704 bytes, or the insert fails: the flags keep the
# rows that could not from the search indexes. (ids of 256 four-byte characters; a 100,000-character text)
OVERSIZED = {
    "ordinary": ("default", "alice", "m1", "I own a red bike", (True, True)),
    "long ids": ("\U0001f9ea" * 256, "\U0001f600" * 256, "\U0001f680" * 256, "I own a red bike", (False, False)),
    "long content": ("default", "alice", "m1", " ".join(f"word{n} x{n}-y{n}" for n in range(8000)), (True, False)),
}


@pytest.mark.parametrize("case", list(OVERSIZED))
def test_a_row_too_large_for_a_search_index_is_kept_out_of_it_not_refused(fresh: ScratchDatabase, case: str) -> None:
    tenant, user, memory_id, content, expected = OVERSIZED[case]
    embedding = "[" + ",".join(["0.05"] * 384) + "]"
    with psycopg.connect(fresh.owner_url) as conn:  # as the owner, a superuser here: no scope needed
        conn.execute(
            "INSERT INTO memories (id, tenant_id, user_id, content, content_hash, memory_type, importance, "
            "created_at, updated_at, embedding, embedding_model) "
            "VALUES (%s, %s, %s, %s, 'h', 'fact', 0.5, now(), now(), %s, 'model')",
            [memory_id, tenant, user, content, embedding],
        )
        flags = conn.execute("SELECT in_vector_index, in_keyword_index FROM memories").fetchone()
        conn.rollback()

    assert flags == expected


def test_turn_records_are_keyed_by_scope_and_turn_and_listed_through_an_index(fresh: ScratchDatabase) -> None:
    indexes = dict(
        query(fresh.owner_url, "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'turn_records'")
    )
    constraints = dict(
        query(
            fresh.owner_url,
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'turn_records'::regclass",
        )
    )
    turn_id = query(
        fresh.owner_url,
        "SELECT collation_name FROM information_schema.columns WHERE table_name = 'turn_records' "
        "AND column_name = 'turn_id'",
    )

    assert indexes == {
        "turn_records_pkey": "CREATE UNIQUE INDEX turn_records_pkey ON public.turn_records "
        "USING btree (tenant_id, user_id, turn_id)",
        "turn_records_status": "CREATE INDEX turn_records_status ON public.turn_records "
        "USING btree (tenant_id, user_id, status, created_at, turn_id)",
    }
    assert constraints["turn_records_status_check"] == (
        "CHECK ((status = ANY (ARRAY['pending'::text, 'failed'::text, 'done'::text])))"
    )
    assert constraints["turn_records_attempts_check"] == "CHECK ((attempts >= 0))"
    assert turn_id == [("C",)]  # ties in list_turns break in code point order, as in the other stores


def test_versions_are_kept_by_one_statement_level_trigger_per_change(fresh: ScratchDatabase) -> None:
    """Statement-level with transition tables: a bulk statement (a COPY of 110,000 rows) bumps each scope
    it changed once. The function runs as the invoking role, under row-level security (not SECURITY DEFINER)."""
    triggers = query(
        fresh.owner_url,
        "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = 'memories'::regclass "
        "AND NOT tgisinternal ORDER BY tgname",
    )
    function = query(
        fresh.owner_url,
        "SELECT prosecdef, provolatile FROM pg_proc WHERE proname = 'memory_versions_bump' "
        "AND pronamespace = 'public'::regnamespace",
    )
    key = query(
        fresh.owner_url,
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'memory_versions'::regclass "
        "AND contype = 'p'",
    )

    execute = "FOR EACH STATEMENT EXECUTE FUNCTION memory_versions_bump()"
    assert triggers == [
        ("memories_version_delete", "CREATE TRIGGER memories_version_delete AFTER DELETE ON public.memories "
         f"REFERENCING OLD TABLE AS old_rows {execute}"),
        ("memories_version_insert", "CREATE TRIGGER memories_version_insert AFTER INSERT ON public.memories "
         f"REFERENCING NEW TABLE AS new_rows {execute}"),
        ("memories_version_truncate", "CREATE TRIGGER memories_version_truncate AFTER TRUNCATE ON public.memories "
         "FOR EACH STATEMENT EXECUTE FUNCTION memory_versions_reset()"),
        ("memories_version_update", "CREATE TRIGGER memories_version_update AFTER UPDATE ON public.memories "
         f"REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows {execute}"),
    ]  # fmt: skip
    assert function == [(False, "v")]
    assert key == [("PRIMARY KEY (tenant_id, user_id)",)]


def test_the_app_role_cannot_log_in_nor_bypass_row_level_security(fresh: ScratchDatabase) -> None:
    rows = query(
        fresh.owner_url,
        "SELECT rolcanlogin, rolsuper, rolbypassrls, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = %s",
        [APP_ROLE],
    )

    assert rows == [(False, False, False, False, False)]


def test_the_app_role_owns_nothing_and_may_only_read_and_write_rows(fresh: ScratchDatabase) -> None:
    owners = query(
        fresh.owner_url,
        "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
    )
    grants = query(
        fresh.owner_url,
        "SELECT table_name, string_agg(privilege_type, ',' ORDER BY privilege_type) "
        "FROM information_schema.role_table_grants WHERE grantee = %s GROUP BY table_name ORDER BY 1",
        [APP_ROLE],
    )

    assert [table for table, _ in owners] == ["alembic_version", *sorted(TABLES)]
    assert all(owner != APP_ROLE for _, owner in owners)
    # No TRUNCATE (it ignores row-level security) and only reading the schema revision.
    assert grants == [("alembic_version", "SELECT")] + [
        (table, "DELETE,INSERT,SELECT,UPDATE") for table in sorted(TABLES)
    ]


def test_forced_row_level_security_filters_a_table_owner_too(fresh: ScratchDatabase) -> None:
    """A non-superuser owner is filtered because of FORCE; without it, the owner sees every row."""
    probe = f"agent_memory_owner_probe_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(fresh.owner_url) as conn:
        conn.execute(f"CREATE ROLE {probe} NOLOGIN")  # all in one transaction, rolled back
        conn.execute(f"ALTER TABLE memories OWNER TO {probe}")
        conn.execute(
            "INSERT INTO memories (id, tenant_id, user_id, content, content_hash, memory_type, importance, "
            "created_at, updated_at) VALUES ('m1', 'default', 'alice', 'x', 'h', 'fact', 0.5, now(), now())"
        )
        conn.execute(f"SET LOCAL ROLE {probe}")
        forced = conn.execute("SELECT count(*) FROM memories").fetchone()[0]
        conn.execute("SELECT set_config('app.tenant_id', 'default', true), set_config('app.user_id', 'alice', true)")
        scoped = conn.execute("SELECT count(*) FROM memories").fetchone()[0]
        conn.execute("SELECT set_config('app.user_id', '', true)")
        conn.execute("ALTER TABLE memories NO FORCE ROW LEVEL SECURITY")  # as the owner, who may
        unforced = conn.execute("SELECT count(*) FROM memories").fetchone()[0]
        conn.rollback()

    assert (forced, scoped, unforced) == (0, 1, 1)
    assert query(fresh.owner_url, "SELECT count(*) FROM pg_roles WHERE rolname = %s", [probe]) == [(0,)]
    assert query(fresh.owner_url, "SELECT count(*) FROM memories") == [(0,)]
    assert query(fresh.owner_url, "SELECT relforcerowsecurity FROM pg_class WHERE relname = 'memories'") == [(True,)]


def test_downgrade_leaves_the_database_clean_and_upgrade_restores_the_same_schema(
    postgres: PostgresDatabase,
) -> None:
    with scratch_database(postgres, migrated=True) as database:
        upgraded = schema(database.owner_url)

        alembic(database.owner_url, "downgrade", "base")

        relations = query(
            database.owner_url,
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace ORDER BY 1",
        )
        assert relations == [("alembic_version",), ("alembic_version_pkc",)]
        assert query(database.owner_url, "SELECT * FROM alembic_version") == []
        assert query(database.owner_url, "SELECT * FROM pg_policies") == []
        # Nothing in this database refers to the application role any more (no grant, no policy).
        assert (
            query(
                database.owner_url,
                "SELECT classid::regclass::text, objid FROM pg_shdepend "
                "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND refobjid = %s::regrole",
                [APP_ROLE],
            )
            == []
        )
        # The role is cluster-wide and the session's database still uses it: it is kept, with its members.
        assert query(
            database.owner_url,
            "SELECT count(*) FROM pg_auth_members WHERE roleid = %s::regrole AND member = %s::regrole",
            [APP_ROLE, psycopg.conninfo.conninfo_to_dict(postgres.app_url)["user"]],
        ) == [(1,)]

        alembic(database.owner_url, "upgrade", "head")

        assert schema(database.owner_url) == upgraded


def test_0004_downgrades_to_exactly_0003_and_upgrading_again_versions_the_users_with_memories(
    postgres: PostgresDatabase,
) -> None:
    with scratch_database(postgres, migrated=False) as previous:
        alembic(previous.owner_url, "upgrade", "0003")
        at_0003 = schema(previous.owner_url)
    with scratch_database(postgres, migrated=True) as database:
        at_head = schema(database.owner_url)
        insert_memories(database.owner_url, ["alice", "bob", "bob"])

        alembic(database.owner_url, "downgrade", "0003")

        assert schema(database.owner_url) == at_0003  # no table, trigger, function, index or grant of 0004 left
        assert query(database.owner_url, "SELECT count(*) FROM memories") == [(3,)]  # the memories stay

        alembic(database.owner_url, "upgrade", "head")

        assert schema(database.owner_url) == at_head
        assert query(database.owner_url, "SELECT user_id FROM memory_versions ORDER BY 1") == [("alice",), ("bob",)]


def insert_memories(url: str, users: list[str]) -> None:
    with psycopg.connect(url) as conn:  # as the owner, a superuser here: no scope needed
        for n, user in enumerate(users):
            conn.execute(
                "INSERT INTO memories (id, tenant_id, user_id, content, content_hash, memory_type, importance, "
                "created_at, updated_at) VALUES (%s, 'default', %s, 'x', %s, 'fact', 0.5, now(), now())",
                [f"m{n}", user, f"h{n}"],
            )


def test_0004_versions_existing_users_when_the_owner_is_not_a_superuser(postgres: PostgresDatabase) -> None:
    """A managed database's schema owner (RDS, Cloud SQL) is no superuser, so FORCE ROW LEVEL SECURITY hides
    every memory from it: the upgrade lifts FORCE while it versions the users, and restores it."""
    owner = f"agent_memory_owner_{uuid.uuid4().hex[:8]}"
    try:
        with scratch_database(postgres, migrated=False) as database:
            alembic(database.owner_url, "upgrade", "0003")
            insert_memories(database.owner_url, ["alice", "bob"])
            with psycopg.connect(database.owner_url, autocommit=True) as conn:
                conn.execute(f"CREATE ROLE {owner} LOGIN NOSUPERUSER NOBYPASSRLS")
                conn.execute(f"GRANT CREATE ON SCHEMA public TO {owner}")
                for table in ("alembic_version", "memories", "memory_events", "memory_profiles", "turn_records"):
                    conn.execute(f"ALTER TABLE {table} OWNER TO {owner}")
            owner_url = with_user_and_database(database.owner_url, user=owner)
            assert query(owner_url, "SELECT count(*) FROM memories") == [(0,)]  # FORCE filters the owner

            alembic(owner_url, "upgrade", "head")

            assert query(database.owner_url, "SELECT user_id FROM memory_versions ORDER BY 1") == [
                ("alice",),
                ("bob",),
            ]
            forced = "SELECT relname, relforcerowsecurity FROM pg_class WHERE relname = ANY(%s) ORDER BY 1"
            assert query(database.owner_url, forced, [["memories", "memory_versions"]]) == [
                ("memories", True),
                ("memory_versions", True),
            ]
    finally:
        with psycopg.connect(postgres.owner_url, autocommit=True) as conn:
            conn.execute(f"DROP ROLE IF EXISTS {owner}")


def test_0005_downgrades_to_exactly_0004_and_upgrades_a_database_that_holds_memories(
    postgres: PostgresDatabase,
) -> None:
    """Memories written at 0004 (their versions made by its triggers) are listed by ``scopes`` after the
    upgrade, as the application role, and can be leased; downgrading leaves exactly 0004 and the memories."""
    from memory.stores.postgres import PostgresStore

    with scratch_database(postgres, migrated=False) as database:
        alembic(database.owner_url, "upgrade", "0004")
        at_0004 = schema(database.owner_url)
        insert_memories(database.owner_url, ["bob", "alice", "bob"])

        alembic(database.owner_url, "upgrade", "head")

        store = PostgresStore(database.app_url)
        try:
            assert [(s.tenant_id, s.user_id) for s in store.scopes()] == [("default", "alice"), ("default", "bob")]
            assert store.try_lease(store.scopes()[0], "run-1", 60)
        finally:
            store.close()

        alembic(database.owner_url, "downgrade", "0004")

        assert schema(database.owner_url) == at_0004
        assert query(database.owner_url, "SELECT count(*) FROM memories") == [(3,)]


SEARCH_FUNCTIONS = "SELECT pg_get_function_identity_arguments(oid) FROM pg_proc WHERE proname = 'search_memories'"


@pytest.mark.parametrize(
    ("previous", "functions_before"),
    [("0006", []), ("0007", ["unweighted"])],
    ids=["0007 to 0006: no function", "0008 to 0007: the unweighted one"],
)
def test_the_search_function_revisions_downgrade_exactly_and_upgrade_a_database_that_holds_memories(
    postgres: PostgresDatabase, previous: str, functions_before: list[str]
) -> None:
    """0007 created ``search_memories`` and 0008 replaced it with the weighted one. Downgrading below either
    changes the function and its grants, nothing else: 0006 has none, 0007 its unweighted one; upgrading again
    leaves the database with the one weighted function of head, and the store searches through it."""
    from memory.stores.postgres import PostgresStore

    def functions(url: str) -> list[str]:
        kinds = {True: "weighted", False: "unweighted"}
        return [kinds["p_keyword_weight" in arguments] for (arguments,) in query(url, SEARCH_FUNCTIONS)]

    with scratch_database(postgres, migrated=False) as earlier:
        alembic(earlier.owner_url, "upgrade", previous)
        at_previous = schema(earlier.owner_url)
    with scratch_database(postgres, migrated=True) as database:
        at_head = schema(database.owner_url)
        insert_memories(database.owner_url, ["alice", "bob"])
        assert functions(database.owner_url) == ["weighted"]

        alembic(database.owner_url, "downgrade", previous)

        assert schema(database.owner_url) == at_previous
        assert at_previous["functions"] != at_head["functions"]
        assert functions(database.owner_url) == functions_before
        assert query(database.owner_url, "SELECT count(*) FROM memories") == [(2,)]

        alembic(database.owner_url, "upgrade", "head")

        assert schema(database.owner_url) == at_head
        assert functions(database.owner_url) == ["weighted"]
        store = PostgresStore(database.app_url)
        try:
            search = SearchRequest(text="x", embedding=None, mode=SearchMode.KEYWORD)
            for user in ("alice", "bob"):
                assert [hit.entry.user_id for hit in store.search(Scope(user), search)] == [user]
        finally:
            store.close()
