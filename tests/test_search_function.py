"""``search_memories`` (revision 0007), the function the Postgres store searches through: the migration holds
what the code generates, it returns exactly what the store's statement returns (every mode, filter, top_k,
model), row-level security applies through it, only the application role may call it, and its usual path
runs under one generic plan that reads the search indexes while the other path is planned per call."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from pgvector.psycopg import register_vector
from psycopg import conninfo
from psycopg.rows import dict_row

from memory.local_postgres import nested_plans
from memory.models import MemoryEntry, MemoryFilter, MemoryType, Ranking, Scope, SearchMode, SearchRequest
from memory.stores.postgres import APP_ROLE, SEARCH_SCOPE_SQL, SEARCH_SQL, SET_SCOPE_SQL, PostgresStore
from memory.stores.postgres_search import SEARCH_CALL_SQL, SIGNATURE, search_function_sql
from tests.postgres_support import MIGRATIONS_INI, PostgresDatabase

MODEL = "test-model"
ALICE, BOB, CAROL, DAVE = Scope("alice"), Scope("bob"), Scope("carol", tenant_id="acme"), Scope("dave")
WORDS = [
    "bike", "lisbon", "sister", "peanuts", "budget", "launch", "piano", "coffee", "train", "report", "garden",
    "invoice", "holiday", "laptop", "marathon", "dentist", "kitchen", "spanish", "insurance", "concert",
]  # fmt: skip
NOW = time.time()
SEARCH_STATEMENT_START = "WITH query AS MATERIALIZED"  # of SEARCH_SQL, and of both paths of the function


def function_revision() -> Any:
    """The newest migration that (re)creates the function: the one whose copy must match the code."""
    script = ScriptDirectory.from_config(Config(str(MIGRATIONS_INI)))
    for revision in script.walk_revisions():  # head first
        if hasattr(revision.module, "SEARCH_FUNCTION_SQL"):
            return revision.module
    raise AssertionError("no migration creates search_memories")


def test_the_migration_holds_what_the_code_generates_now() -> None:
    """The migration's SQL is a frozen copy, so a migration creates the same function whenever it runs. A change
    to ``SEARCH_SQL`` (or to the generator) fails this test until a new migration replaces the function with the
    new ``search_function_sql()`` (and bumps ``SCHEMA_REVISION``): without one, the database would go on running
    the old statement."""
    migration = function_revision()

    assert search_function_sql() == migration.SEARCH_FUNCTION_SQL
    assert migration.SIGNATURE == SIGNATURE
    assert migration.APP_ROLE == APP_ROLE


def test_the_migrated_database_runs_the_generated_function(postgres: PostgresDatabase) -> None:
    with psycopg.connect(postgres.owner_url) as owner:
        source = owner.execute("SELECT prosrc FROM pg_proc WHERE oid = %s::regprocedure", [SIGNATURE]).fetchone()[0]

    assert search_function_sql().split("AS $function$", 1)[1].removesuffix("$function$") == source


# -- the same results as the statement ------------------------------------------------------------------------


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def memories(scope: Scope, count: int, rng: np.random.Generator, noise: float = 0.05) -> list[MemoryEntry]:
    """``count`` memories of every kind the filters tell apart: types, tags, sessions, expired or not,
    archived, another model or none; vectors around a few topics, sentences of a small vocabulary."""
    topics = unit(rng.standard_normal((4, 384)))
    vectors = unit(topics[rng.integers(0, 4, count)] + noise * rng.standard_normal((count, 384)))
    types = list(MemoryType)
    entries = []
    for n, vector in enumerate(vectors):
        words = " and the ".join(WORDS[int(i)] for i in rng.integers(0, len(WORDS), 3))
        entries.append(
            MemoryEntry(
                user_id=scope.user_id,
                tenant_id=scope.tenant_id,
                content=f"Note {n}: the {words}",
                memory_type=types[n % len(types)],
                importance=float(rng.random()),
                tags=(("work",), ("home", "work"), (), ("home",))[n % 4],
                session_id=("s1", "s2", None)[n % 3],
                created_at=NOW - 86_400 * float(rng.random()) * 60,
                expires_at=None if n % 7 else (NOW - 60 if n % 2 else NOW + 86_400),
                embedding=vector,
                embedding_model=MODEL if n % 11 else ("other-model" if n % 2 else None),
                status="superseded" if n % 13 == 0 else "active",
            )
        )
    return entries


@pytest.fixture(scope="module")
def searched(postgres: PostgresDatabase) -> Iterator[PostgresStore]:
    """The session's database with a few hundred memories over four users (dave's vectors so close that the
    search falls back to its exact scan), plus one too long for the keyword index; emptied afterwards."""
    postgres.truncate()
    rng = np.random.default_rng(7)
    store = PostgresStore(postgres.app_url)
    entries = [
        *memories(ALICE, 150, rng),
        *memories(BOB, 120, rng),
        *memories(CAROL, 100, rng),
        *memories(DAVE, 120, rng, noise=0.0002),
    ]
    long_text = "The garden report. " + " ".join(f"item{n} part{n}-piece{n}" for n in range(300))
    entries.append(
        MemoryEntry(user_id="alice", content=long_text[:4000], embedding=entries[0].embedding, embedding_model=MODEL)
    )
    for start in range(0, len(entries), 100):
        store.add_many(entries[start : start + 100])
    with psycopg.connect(postgres.owner_url, autocommit=True) as owner:
        owner.execute("VACUUM ANALYZE memories")
        assert owner.execute("SELECT count(*) FROM memories WHERE NOT in_keyword_index").fetchone()[0] == 1
    yield store
    store.close()
    postgres.truncate()


EXACT = Ranking(importance_weight=0.0, recency_weight=0.0, min_similarity=-1.0, candidates=10)
# name: the fields of the request that differ from a default hybrid search with a model name
REQUESTS: dict[str, dict[str, Any]] = {
    "hybrid": {},
    "vector, exact ranking, top 10": {"mode": SearchMode.VECTOR, "top_k": 10, "ranking": EXACT},
    "keyword": {"mode": SearchMode.KEYWORD},
    "top 1": {"top_k": 1},
    "top 100": {"top_k": 100},
    "types": {"filters": MemoryFilter(memory_types=(MemoryType.FACT, MemoryType.PREFERENCE))},
    "tags": {"filters": MemoryFilter(tags=("work",))},
    "session": {"filters": MemoryFilter(session_id="s1")},
    "every filter": {"filters": MemoryFilter(memory_types=(MemoryType.TASK,), tags=("home",), session_id="s2")},
    "include expired": {"filters": MemoryFilter(include_expired=True)},
    "no model name": {"embedding_model": None},
    "another model": {"embedding_model": "other-model"},
    "vector, no model name": {"mode": SearchMode.VECTOR, "embedding_model": None},
    "no embedding": {"embedding": None},
    "no keyword": {"text": "zzz"},
    "whole-number weights": {"ranking": Ranking(importance_weight=0, recency_weight=1, recency_half_life_days=7)},
    "min similarity": {"ranking": Ranking(min_similarity=0.5, candidates=20)},
}


def comparable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every column of every row, vectors as bytes and NaN as a string (neither compares equal with ==)."""
    return [{name: _comparable(value) for name, value in row.items()} for row in rows]


def _comparable(value: Any) -> Any:
    if hasattr(value, "to_numpy"):
        return value.to_numpy().tobytes()
    return "NaN" if isinstance(value, float) and value != value else value


def run(conn: psycopg.Connection, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    with conn.transaction():
        conn.execute(SEARCH_SCOPE_SQL, params)
        return comparable(conn.execute(sql, params, binary=True).fetchall())


def bound_params(store: PostgresStore, scope: Scope, request: SearchRequest) -> dict[str, Any]:
    """What the store binds to its search call (captured through its tracer), and the ids it returned."""
    bound: dict[str, Any] = {}
    store.tracer = lambda sql, params: bound.update(params) if sql is SEARCH_CALL_SQL else None
    try:
        bound["hits"] = [hit.entry.id for hit in store.search(scope, request)]
    finally:
        store.tracer = None
    return bound


def queries(store: PostgresStore, scope: Scope) -> list[SearchRequest]:
    """Three searches of the scope: near one of its memories, with words of its memories, at ``NOW``."""
    rng = np.random.default_rng(len(scope.user_id))
    entries = [e for e in store.list(scope, limit=100) if e.embedding_model == MODEL]
    found = []
    for n in range(3):
        near = entries[int(rng.integers(0, len(entries)))].embedding
        text = f"what about the {WORDS[n]} or the {WORDS[n + 5]}?"
        embedding = unit(near + 0.02 * rng.standard_normal(384))
        found.append(SearchRequest(text=text, embedding=embedding, embedding_model=MODEL, now=NOW))
    return found


@pytest.mark.parametrize("name", list(REQUESTS))
def test_the_function_returns_exactly_what_the_statement_returns(
    postgres: PostgresDatabase, searched: PostgresStore, name: str
) -> None:
    """Ids, order, ranks, similarity, recency, score and every column, bit for bit, for each user; the store
    returns those ids. Both are run on one connection, queries taking turns."""
    compared = rows = 0
    with psycopg.connect(postgres.app_url, prepare_threshold=None, row_factory=dict_row) as conn:
        register_vector(conn)
        for scope in (ALICE, BOB, CAROL, DAVE):
            for request in queries(searched, scope):
                bound = bound_params(searched, scope, dataclasses.replace(request, **REQUESTS[name]))
                expected = run(conn, SEARCH_SQL, bound)
                assert run(conn, SEARCH_CALL_SQL, bound) == expected, (scope, request.text)
                assert bound["hits"] == [row["id"] for row in expected]
                compared, rows = compared + 1, rows + len(expected)
    assert compared == 12
    if name not in ("every filter", "another model", "no keyword", "vector, no model name"):
        assert rows > 0  # the comparison saw results


def test_a_zero_query_vector_gives_the_same_results_too(postgres: PostgresDatabase, searched: PostgresStore) -> None:
    """No direction, so no cosine (NaN): the statement's check on the candidates must fail alike."""
    request = SearchRequest(text="the bike", embedding=np.zeros(384, np.float32), embedding_model=MODEL, now=NOW)
    bound = bound_params(searched, ALICE, request)
    with psycopg.connect(postgres.app_url, prepare_threshold=None, row_factory=dict_row) as conn:
        register_vector(conn)
        assert run(conn, SEARCH_CALL_SQL, bound) == run(conn, SEARCH_SQL, bound)


# -- row-level security and rights ----------------------------------------------------------------------------


def call_as_app(url: str, scope: Scope | None, params: dict[str, Any]) -> list[str]:
    """The function called as the application login, its transaction scoped to ``scope`` (or to nothing)."""
    with psycopg.connect(url, prepare_threshold=None, row_factory=dict_row) as conn:
        register_vector(conn)
        if scope is not None:
            conn.execute(SET_SCOPE_SQL, {"tenant_id": scope.tenant_id, "user_id": scope.user_id})
        return [row["id"] for row in conn.execute(SEARCH_CALL_SQL, params, binary=True).fetchall()]


@pytest.mark.parametrize("filtered", [False, True], ids=["usual path", "filtered path"])
def test_row_level_security_applies_through_the_function(
    postgres: PostgresDatabase, searched: PostgresStore, filtered: bool
) -> None:
    """Asked for bob's memories, a transaction scoped to alice, to bob at another tenant, or to nobody gets
    nothing: the function runs as its caller (SECURITY INVOKER)."""
    request = queries(searched, BOB)[0]
    if filtered:
        request = dataclasses.replace(request, filters=MemoryFilter(tags=("work",)))
    bobs = bound_params(searched, BOB, request)

    assert call_as_app(postgres.app_url, BOB, bobs) == bobs["hits"] != []
    for scope in (ALICE, Scope("bob", tenant_id="acme"), None):
        assert call_as_app(postgres.app_url, scope, bobs) == []


def test_the_function_runs_as_its_caller_and_only_the_app_role_may_call_it(postgres: PostgresDatabase) -> None:
    login = conninfo.conninfo_to_dict(postgres.app_url)["user"]
    with psycopg.connect(postgres.owner_url) as owner:
        definer, volatility, settings, function_owner, table_owner = owner.execute(
            "SELECT p.prosecdef, p.provolatile, p.proconfig, p.proowner::regrole::text, "
            "(SELECT relowner::regrole::text FROM pg_class WHERE oid = 'memories'::regclass) "
            "FROM pg_proc AS p WHERE p.oid = %s::regprocedure",
            [SIGNATURE],
        ).fetchone()
        grantees = owner.execute(
            "SELECT coalesce(nullif(a.grantee, 0)::regrole::text, 'PUBLIC'), a.privilege_type "
            "FROM pg_proc AS p, aclexplode(p.proacl) AS a WHERE p.oid = %s::regprocedure ORDER BY 1",
            [SIGNATURE],
        ).fetchall()
        probe = "agent_memory_search_probe"
        owner.execute(f"CREATE ROLE {probe} NOLOGIN")  # rolled back with the transaction
        may = {
            role: owner.execute("SELECT has_function_privilege(%s, %s, 'EXECUTE')", [role, SIGNATURE]).fetchone()[0]
            for role in (login, APP_ROLE, probe)
        }
        owner.rollback()

    assert definer is False
    assert volatility == "s"
    assert settings == ["plan_cache_mode=force_generic_plan", "random_page_cost=1.1"]
    assert function_owner == table_owner != APP_ROLE
    assert grantees == sorted([(APP_ROLE, "EXECUTE"), (function_owner, "EXECUTE")])  # not PUBLIC
    assert may == {login: True, APP_ROLE: True, probe: False}


# -- plans ----------------------------------------------------------------------------------------------------


def search_plans(postgres: PostgresDatabase, params: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The plan of the search statement inside each call, in one session as the app login (auto_explain)."""
    login = conninfo.conninfo_to_dict(postgres.app_url)["user"]
    calls = [(SEARCH_SCOPE_SQL, SEARCH_CALL_SQL, p) for p in params]
    found = nested_plans(postgres.owner_url, login, calls, SEARCH_STATEMENT_START)
    assert all(len(plans) == 1 for plans in found)
    return [plans[0] for plans in found]


def plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(node for child in plan.get("Plans", []) for node in plan_nodes(child))]


def scanned(plan: dict[str, Any]) -> list[tuple[str, str]]:
    """(node type, index or relation) of every scan of ``memories`` that ran."""
    return [
        (node["Node Type"], node.get("Index Name", "-"))
        for node in plan_nodes(plan["Plan"])
        if node.get("Relation Name") == "memories" and node.get("Actual Loops", 0) > 0
    ]


def test_the_usual_search_runs_one_generic_plan_that_reads_the_search_indexes(
    postgres: PostgresDatabase, searched: PostgresStore
) -> None:
    """Planned without the arguments ($n in its conditions), from the first call on; the user's entries read
    by index-only scans of the two search indexes; no sequential scan of the table."""
    params = [bound_params(searched, scope, r) for scope in (ALICE, BOB) for r in queries(searched, scope)]
    plans = search_plans(postgres, params)

    for plan in plans:
        text = str(plan["Plan"])
        assert "tenant_id = $1" in text and "'alice'" not in text and "'bob'" not in text
        assert ("Index Only Scan", "memories_vector_search") in scanned(plan)
        assert ("Index Only Scan", "memories_keyword_search") in scanned(plan)
        assert not [scan for scan in scanned(plan) if scan[0] == "Seq Scan"]


@pytest.mark.parametrize(
    "change",
    [{"filters": MemoryFilter(tags=("work",))}, {"embedding_model": None}],
    ids=["filtered", "no model name"],
)
def test_any_other_search_is_planned_for_its_values(
    postgres: PostgresDatabase, searched: PostgresStore, change: dict[str, Any]
) -> None:
    request = dataclasses.replace(queries(searched, ALICE)[0], **change)
    plans = search_plans(postgres, [bound_params(searched, ALICE, request)] * 2)

    for plan in plans:
        assert "tenant_id = 'default'::text" in str(plan["Plan"]) and "$1" not in str(plan["Plan"])
