"""The Postgres store's search as a function in the database, ``search_memories`` (revision 0007; 0008 added
the fusion weights), generated from ``postgres.SEARCH_SQL``, beside ``postgres.py`` to keep it small.

Why a function: the search statement is 8,000 characters with CTEs that Postgres parses (~0.25 ms) and plans
(~0.9 ms) again at every call, since the store prepares nothing (``prepare_threshold=None``: a pooler in
transaction mode, RDS Proxy, PgBouncer, Supavisor, cannot keep a prepared statement for the client). A
PL/pgSQL function's statements are prepared inside the server, in the backend the pooler lends, and kept
there for the next call on that backend: each call is one plain SELECT, safe behind any pooler (nothing
for RDS Proxy to pin a connection for). It runs as the caller (SECURITY INVOKER, the default), so row-level
security and the scope the transaction set apply as they do to the statement itself.

A cached plan is generic: it is made once without knowing the arguments. ``SEARCH_SQL`` is written for plans
made with the values: its filters that are vacuous when the value is NULL (``types``, ``tags``,
``session_id``) and its NULL-safe model test disappear from such a plan, and a generic plan keeps them all
(wrapped unchanged, the statement was 3x slower at 10,000 memories). So the function has two paths:

- the usual search (no type, tag or session filter, a model name) runs ``SEARCH_SQL`` with three changes,
  each leaving its result as it was: the three filters are left out (NULL, they let every row pass); the
  model test is the plain ``m.embedding_model = p_embedding_model`` (the same when the name is not NULL), an
  index condition on ``memories_vector_search`` that a generic plan can use; and the query's halfvec is
  computed once into a variable (a generic plan would compute it again for every row it ranks). That plan
  is generic (``plan_cache_mode = force_generic_plan``, so it is never re-planned per call) and costed with
  ``random_page_cost = 1.1``, as the store's search transaction sets it (``postgres.SEARCH_SCOPE_SQL``).
- any other search runs ``SEARCH_SQL`` unchanged as dynamic SQL (``RETURN QUERY EXECUTE ... USING``): a
  one-shot plan, made at every call for its values whatever ``plan_cache_mode`` says, as the store's
  statement was planned before revision 0007.

Measured with bench/pg_search_latency.py (README, Benchmarks, 2026-12-06): the same ids in the same order as
the statement sent by the store (tests/test_search_function.py checks every column, bit for bit); p50 / p95
7.4 / 9.0 ms for a 10,000-memory user and 1.7 / 2.4 ms for 100 memories, against 9.1 / 10.0 and 3.2 / 4.1 ms
for the statement.

The newest migration that creates it holds a frozen copy of ``search_function_sql()`` (0008_fusion_weights.py):
when ``SEARCH_SQL`` changes, tests/test_search_function.py fails until a new migration replaces the function.
"""

from __future__ import annotations

import re
import textwrap
from types import ModuleType

SEARCH_FUNCTION = "search_memories"
# The statement's parameters, as the function's arguments (``p_`` + name), with the types Postgres gives the
# values the store binds (psycopg: str -> text, int -> smallint/integer, float -> double precision, numpy
# array -> vector, datetime -> timestamptz, list of str -> text[]).
SEARCH_ARGUMENTS = (
    ("tenant_id", "text"),
    ("user_id", "text"),
    ("embedding", "vector"),
    ("embedding_model", "text"),
    ("terms", "text[]"),
    ("include_expired", "boolean"),
    ("now", "timestamptz"),
    ("types", "text[]"),
    ("tags", "text[]"),
    ("session_id", "text"),
    ("candidates", "integer"),
    ("min_similarity", "double precision"),
    ("rrf_k", "integer"),
    ("vector_weight", "double precision"),
    ("keyword_weight", "double precision"),
    ("importance_weight", "double precision"),
    ("recency_weight", "double precision"),
    ("seconds_per_day", "double precision"),
    ("half_life_days", "double precision"),
    ("top_k", "integer"),
)
# What the statement returns: the memory's columns (postgres._COLUMNS), then its signals and score.
SEARCH_RESULT = (
    ("id", "text"),
    ("tenant_id", "text"),
    ("user_id", "text"),
    ("content", "text"),
    ("content_hash", "text"),
    ("memory_type", "text"),
    ("importance", "double precision"),
    ("tags", "text[]"),
    ("metadata", "jsonb"),
    ("session_id", "text"),
    ("created_at", "timestamptz"),
    ("updated_at", "timestamptz"),
    ("expires_at", "timestamptz"),
    ("embedding", "vector"),
    ("embedding_model", "text"),
    ("status", "text"),
    ("superseded_by", "text"),
    ("vector_rank", "bigint"),
    ("similarity", "double precision"),
    ("keyword_rank", "bigint"),
    ("recency", "double precision"),
    ("score", "double precision"),
)
SIGNATURE = f"{SEARCH_FUNCTION}({', '.join(kind for _, kind in SEARCH_ARGUMENTS)})"  # for GRANT and DROP
# What the store runs: named arguments from its parameters, the rows in the order the function returned them
# (WITH ORDINALITY numbers them: SQL promises no order without an ORDER BY, even from a function scan).
SEARCH_CALL_SQL = (
    f"SELECT {', '.join(f'hit.{name}' for name, _ in SEARCH_RESULT)} FROM {SEARCH_FUNCTION}("
    + ", ".join(f"p_{name} => %({name})s" for name, _ in SEARCH_ARGUMENTS)
    + ") WITH ORDINALITY AS hit ORDER BY hit.ordinality"
)

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
# The usual search, which the function plans once for every call.
FAST_PATH_TEST = "p_types IS NULL AND p_tags IS NULL AND p_session_id IS NULL AND p_embedding_model IS NOT NULL"
COARSE_QUERY_VARIABLE = "v_coarse_query"


def search_function_sql() -> str:
    """The CREATE FUNCTION statement of ``search_memories``, from the store's ``SEARCH_SQL`` as it is now."""
    from memory.stores import postgres as pg

    names = [name for name, _ in SEARCH_ARGUMENTS]
    used = set(_PLACEHOLDER.findall(pg.SEARCH_SQL))
    if used != set(names):
        raise RuntimeError(f"SEARCH_ARGUMENTS must name exactly the parameters of SEARCH_SQL: {sorted(used)}")
    columns = [name.strip() for name in pg._COLUMNS.split(",")]
    if [name for name, _ in SEARCH_RESULT][: len(columns)] != columns:
        raise RuntimeError("SEARCH_RESULT must start with the columns of postgres._COLUMNS, in their order")
    dynamic = _PLACEHOLDER.sub(lambda match: f"${names.index(match.group(1)) + 1}", pg.SEARCH_SQL)
    arguments = ",\n".join(f"    p_{name} {kind}" for name, kind in SEARCH_ARGUMENTS)
    result = ",\n".join(f"    {name} {kind}" for name, kind in SEARCH_RESULT)
    using = textwrap.fill(
        ", ".join(f"p_{name}" for name in names), 112, initial_indent="    ", subsequent_indent="    "
    )
    return f"""CREATE FUNCTION {SEARCH_FUNCTION}(
{arguments}
)
RETURNS TABLE (
{result}
)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
SET random_page_cost = 1.1
AS $function$
-- Generated by memory.stores.postgres_search.search_function_sql() from memory.stores.postgres.SEARCH_SQL.
#variable_conflict use_column
DECLARE
    {COARSE_QUERY_VARIABLE} halfvec(384);
BEGIN
IF {FAST_PATH_TEST} THEN
-- The usual search: SEARCH_SQL without the filters left empty, for one generic plan kept by this backend.
{COARSE_QUERY_VARIABLE} := {_to_arguments(pg._COARSE_QUERY)};
RETURN QUERY
{_tidy(_to_arguments(_fast_path(pg)))};
ELSE
-- Filtered, or no model name: SEARCH_SQL as it is, planned for this call's values (a one-shot plan).
RETURN QUERY EXECUTE $search$
{_tidy(dynamic)}
$search$ USING
{using};
END IF;
END
$function$"""


def _fast_path(pg: ModuleType) -> str:
    """``SEARCH_SQL`` for the usual search: no type, tag or session filter, a model name (see the docstring)."""
    sql = pg.SEARCH_SQL
    for old, new in (
        (pg._HEAP_FILTERS, "\n"),
        (pg._TYPES_FILTER, ""),
        (pg._SAME_MODEL, "m.embedding_model = %(embedding_model)s"),
        (pg._COARSE_QUERY, COARSE_QUERY_VARIABLE),
    ):
        if old not in sql:
            raise RuntimeError(f"SEARCH_SQL no longer holds {old.strip()!r}: rewrite the function's fast path")
        sql = sql.replace(old, new)
    left = {"types", "tags", "session_id"} & set(_PLACEHOLDER.findall(sql))
    if left:
        raise RuntimeError(f"the fast path still tests {sorted(left)}: rewrite it for the new SEARCH_SQL")
    return sql


def _to_arguments(sql: str) -> str:
    return _PLACEHOLDER.sub(lambda match: f"p_{match.group(1)}", sql)


def _tidy(sql: str) -> str:
    """Without the blank lines and trailing spaces that the removed filters leave."""
    return "\n".join(line.rstrip() for line in sql.strip().splitlines() if line.strip())
