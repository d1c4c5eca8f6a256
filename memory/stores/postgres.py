"""Postgres + pgvector: the production store. psycopg 3, one connection per process, row-level security.

Search is one statement (``SEARCH_SQL``): the exact cosine nearest neighbours among the user's rows (no HNSW
index, see migrations/versions/0001_initial.py for why), ``ts_rank`` over the generated ``tsvector``,
reciprocal rank fusion, importance and recency, as ``memory.ranking`` defines. Both signals are read from
covering btrees that keep a user's entries together (migrations/versions/0003_search_indexes.py): a halfvec
copy of each embedding ranks the rows, and the exact distance on the full vector decides among the best of
them. The store runs it inside the function ``search_memories`` (revision 0008, ``postgres_search``), which
keeps its plan in the server between calls instead of parsing and planning 8,000 characters at each one.

Every call runs in one transaction that first sets ``app.tenant_id`` and ``app.user_id`` with
``set_config(..., true)``: row-level security then shows the transaction nothing else, on top of the
explicit scope filter in every statement. ``prepare_threshold=None`` keeps psycopg from preparing
statements, which poolers in transaction mode (RDS Proxy, PgBouncer, Neon, Supabase) cannot hold.
The connection opens on first use and is replaced when the server has dropped it (a restart, a
failover): the call that finds it broken is retried once on a fresh connection.

Each scope's data version (``MemoryStore.version``) lives in ``memory_versions``, changed by statement-level
triggers on ``memories`` in the transaction of the change (migrations/versions/0004_memory_versions.py).
A transaction that changes several scopes (``add_many``) takes their version rows in one order, so two of
them cannot deadlock; ``forget_user`` takes the scope's row first, so a write of the same scope running at
the same time either commits before the forget (which then deletes its memories too) or waits for it (and
then starts the version again, from a clock past the forgotten one).

The maintenance calls (``scopes``, the leases) keep their SQL in ``postgres_maintenance``; ``scopes`` reads
``memory_versions`` through the SELECT-only policy of migrations/versions/0005_maintenance.py.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from memory import text
from memory.errors import (
    ConfigurationError,
    DuplicateContentError,
    InvalidInputError,
    MemoryNotFoundError,
    StoreError,
    StoreUnavailableError,
)
from memory.models import (
    EventKind,
    MemoryEntry,
    MemoryEvent,
    MemoryFilter,
    Ranking,
    Scope,
    SearchHit,
    SearchMode,
    SearchRequest,
)
from memory.stores.base import (
    PENDING_OR_FAILED,
    Tracer,
    apply_changes,
    check_changes,
    check_keep_top,
    check_lease,
    check_order_by,
    check_owner,
    check_scopes_query,
    check_turn_id,
    check_turn_query,
    ranking_params,
    turn_from_params,
    turn_params,
    wait_past,
)
from memory.stores.postgres_maintenance import (
    FORGET_LEASE_SQL,
    LIST_SCOPES_SETUP_SQL,
    RELEASE_LEASE_SQL,
    SCOPES_SQL,
    TRY_LEASE_SQL,
)
from memory.stores.postgres_search import SEARCH_CALL_SQL
from memory.stores.postgres_url import psycopg_url
from memory.turns import TurnRecord, TurnStatus

# The Alembic revision this code speaks to; a test keeps it equal to the migrations' head.
SCHEMA_REVISION = "0008"
CONNECT_TIMEOUT_SECONDS = 10

# Every store transaction starts here: the scope row-level security reads, and a statement timeout, so a call
# stuck behind a lock or a stalled server ends (StoreUnavailableError) instead of holding the store's one
# connection, and with it every later call (a turn meanwhile answers from the cache: memory/cache.py).
# Transaction-local (set_config(..., true)): nothing leaks to other clients of a pooled server connection.
STATEMENT_TIMEOUT = "10s"
SET_SCOPE_SQL = (
    "SELECT set_config('app.tenant_id', %(tenant_id)s, true), set_config('app.user_id', %(user_id)s, true), "
    f"set_config('statement_timeout', '{STATEMENT_TIMEOUT}', true)"
)
# A search also tells the planner that a random page read costs little more than a sequential one (the default
# 4.0 models spinning disks). Left at 4.0, a user who owns most of the table is read by a sequential scan, which
# fetches every halfvec copy from TOAST (measured: 24 ms against 7.6 for 10,000 memories alone in the table);
# at 1.1, the usual value for SSDs and cached data, the search indexes are read whatever the user's share.
# (search_memories sets it for its own plans too: SET random_page_cost = 1.1 in its definition.)
SEARCH_SCOPE_SQL = SET_SCOPE_SQL + ", set_config('random_page_cost', '1.1', true)"
_IN_SCOPE = "m.tenant_id = %(tenant_id)s AND m.user_id = %(user_id)s"
_FILTERS = """
    AND (%(include_inactive)s OR m.status = 'active')
    AND (%(include_expired)s OR m.expires_at IS NULL OR m.expires_at > %(now)s)
    AND (%(types)s::text[] IS NULL OR m.memory_type = ANY(%(types)s::text[]))
    AND (%(tags)s::text[] IS NULL OR m.tags && %(tags)s::text[])
    AND (%(session_id)s::text IS NULL OR m.session_id = %(session_id)s)
"""
_RECENCY = (
    "1.0 / (1.0 + greatest(0.0, extract(epoch FROM %(now)s - m.updated_at)) / %(seconds_per_day)s / %(half_life_days)s)"
)
# The query's words, each through the english parser, OR-ed: any shared word is a match (as in SQLite).
_TSQUERY = """(SELECT string_agg('(' || plainto_tsquery('english', term)::text || ')', ' | ')::tsquery
               FROM unnest(%(terms)s::text[]) AS term
               WHERE plainto_tsquery('english', term)::text <> '')"""

_COLUMNS = (
    "id, tenant_id, user_id, content, content_hash, memory_type, importance, tags, metadata, session_id, "
    "created_at, updated_at, expires_at, embedding, embedding_model, status, superseded_by"
)
_SELECT_COLUMNS = ", ".join(f"m.{name.strip()}" for name in _COLUMNS.split(","))
# Search reads only active rows. These filters use columns the search indexes hold; the others need the heap.
_TYPES_FILTER = "    AND (%(types)s::text[] IS NULL OR m.memory_type = ANY(%(types)s::text[]))\n"
_INDEXED_FILTERS = (
    """
    AND m.status = 'active'
    AND (%(include_expired)s OR m.expires_at IS NULL OR m.expires_at > %(now)s)
"""
    + _TYPES_FILTER
)
_HEAP_FILTERS = """
    AND (%(tags)s::text[] IS NULL OR m.tags && %(tags)s::text[])
    AND (%(session_id)s::text IS NULL OR m.session_id = %(session_id)s)
"""
_SEARCH_FILTERS = _INDEXED_FILTERS + _HEAP_FILTERS
# IS NOT DISTINCT FROM, spelled so that a model name becomes an index condition on memories_vector_search.
_SAME_MODEL = (
    "(m.embedding_model = %(embedding_model)s OR (%(embedding_model)s::text IS NULL AND m.embedding_model IS NULL))"
)
# halfvec keeps 11 significant bits, so each component of the two unit vectors is off by at most 2^-11 of
# itself: their inner product is within 2 * 2^-11 + 2^-22 (< 0.00098) of the true cosine, and the float32
# sums of both computations add less than 0.0001. COARSE_ERROR bounds that with room to spare.
COARSE_ERROR = 0.0015
COARSE_MARGIN = 50  # candidates ranked beyond the ones asked for, so the exact ones are seldom in doubt
_COARSE_QUERY = "l2_normalize(%(embedding)s::vector)::halfvec(384)"  # the query as the search index holds rows

# A hit's recency, from the updated_at its search index or candidate row carried (no trip to the heap).
_HIT_RECENCY = _RECENCY.replace("m.updated_at", "h.updated_at")
_ORDER_COLUMNS = "m.importance, m.created_at, m.updated_at"  # what ranking needs besides the signals

# The store does not send this statement: it calls search_memories (SEARCH_CALL_SQL), a function made from it
# by postgres_search.search_function_sql(), of which migrations/versions/0008_fusion_weights.py holds a frozen
# copy. Changing SEARCH_SQL (or a fragment above it uses) therefore changes nothing in the database until a new
# migration replaces the function with the new text: tests/test_search_function.py fails until one does.
SEARCH_SQL = f"""
WITH query AS MATERIALIZED (
    SELECT {_TSQUERY} AS query
),
overflow AS MATERIALIZED (
    -- The user's rows whose entry does not fit a search index (none, with ordinary ids and content):
    -- both signals computed from the heap, as for every row before revision 0003.
    SELECT m.id, {_ORDER_COLUMNS},
           CASE WHEN NOT m.in_vector_index AND {_SAME_MODEL}
                THEN cosine_distance(m.embedding, %(embedding)s::vector) END AS distance,
           CASE WHEN NOT m.in_keyword_index AND m.tsv @@ q.query THEN ts_rank(m.tsv, q.query) END AS relevance
    FROM memories AS m, query AS q
    WHERE {_IN_SCOPE} AND (NOT m.in_vector_index OR NOT m.in_keyword_index) {_SEARCH_FILTERS}
),
coarse AS MATERIALIZED (
    -- An index-only scan of memories_vector_search: the user's unit-length halfvec copies, nearest first by
    -- inner product with the unit-length query (cosine distance - 1, within COARSE_ERROR). Here and below the
    -- distances are function calls, not the operators <#> and <=>: no index (an HNSW index, say) can then
    -- take over an ORDER BY ... LIMIT and make the result approximate.
    SELECT m.id,
           halfvec_negative_inner_product(m.search_embedding, {_COARSE_QUERY})
             AS coarse
    FROM memories AS m
    WHERE %(embedding)s::vector IS NOT NULL AND {_IN_SCOPE} AND {_SAME_MODEL} AND m.in_vector_index
      AND m.search_embedding IS NOT NULL {_INDEXED_FILTERS}
    ORDER BY coarse, m.id
    LIMIT %(candidates)s + {COARSE_MARGIN}
),
rescored AS MATERIALIZED (
    -- The exact distance of the candidates that pass the filters the index cannot check.
    SELECT c.id, {_ORDER_COLUMNS}, c.coarse, cosine_distance(m.embedding, %(embedding)s::vector) AS distance,
           row_number() OVER (ORDER BY c.coarse, c.id) AS position
    FROM coarse AS c JOIN memories AS m ON m.id = c.id AND {_IN_SCOPE}
    WHERE true {_HEAP_FILTERS}
),
sure AS (
    -- Whether the candidates hold the exact nearest `candidates`: yes if the scan ran out of rows, or if the
    -- rows it left out rank more than 2 * COARSE_ERROR behind the candidates-th one kept, which with those
    -- before it has a distance (a zero vector has none: NaN sorts after every number). Each of those rows is
    -- then farther, exactly, than the nearest `candidates` kept.
    SELECT (SELECT count(*) FROM coarse) < %(candidates)s + {COARSE_MARGIN}
           OR coalesce((SELECT max(coarse) FROM coarse)
                         > max(coarse) FILTER (WHERE position = %(candidates)s) + {2 * COARSE_ERROR}
                       AND NOT bool_or(distance = 'NaN') FILTER (WHERE position <= %(candidates)s), false)
           AS complete
    FROM rescored
),
exact AS (
    SELECT id, importance, created_at, updated_at, distance FROM rescored WHERE (SELECT complete FROM sure)
    UNION ALL
    -- Otherwise (rarely) the exact distance of every row of the index, from the heap.
    SELECT m.id, {_ORDER_COLUMNS}, cosine_distance(m.embedding, %(embedding)s::vector) FROM memories AS m
    WHERE NOT (SELECT complete FROM sure) AND %(embedding)s::vector IS NOT NULL AND {_IN_SCOPE} AND {_SAME_MODEL}
      AND m.in_vector_index AND m.embedding IS NOT NULL {_SEARCH_FILTERS}
    UNION ALL
    SELECT id, importance, created_at, updated_at, distance FROM overflow WHERE distance IS NOT NULL
),
vector_hits AS (
    SELECT id, importance, created_at, updated_at, similarity, row_number() OVER (ORDER BY distance, id) AS rank
    FROM (SELECT *, 1.0 - distance AS similarity FROM exact
          ORDER BY distance, id LIMIT %(candidates)s) AS nearest
    WHERE similarity >= %(min_similarity)s
),
keyword_hits AS (
    -- An index-only scan of memories_keyword_search. (The GIN index cannot serve the app role: tsvector @@
    -- tsquery is not LEAKPROOF, so row-level security keeps it from running ahead of the policy.)
    SELECT id, importance, created_at, updated_at, row_number() OVER (ORDER BY relevance DESC, id) AS rank
    FROM (SELECT m.id, {_ORDER_COLUMNS}, ts_rank(m.tsv, q.query) AS relevance
          FROM memories AS m, query AS q
          WHERE q.query IS NOT NULL AND m.tsv @@ q.query AND {_IN_SCOPE} AND m.in_keyword_index {_SEARCH_FILTERS}
          UNION ALL
          SELECT id, importance, created_at, updated_at, relevance FROM overflow WHERE relevance IS NOT NULL
          ORDER BY relevance DESC, id LIMIT %(candidates)s) AS matched
),
hits AS (
    SELECT coalesce(v.id, k.id) AS id, v.rank AS vector_rank, v.similarity, k.rank AS keyword_rank,
           coalesce(v.importance, k.importance) AS importance, coalesce(v.created_at, k.created_at) AS created_at,
           coalesce(v.updated_at, k.updated_at) AS updated_at
    FROM vector_hits AS v FULL OUTER JOIN keyword_hits AS k ON v.id = k.id
),
best AS MATERIALIZED (
    -- Ranked with what the hits carry; materialised so that only these top_k rows are read from the heap.
    SELECT h.id, h.vector_rank, h.similarity, h.keyword_rank, h.created_at, r.recency,
           (coalesce(%(vector_weight)s / (%(rrf_k)s + h.vector_rank), 0.0)
            + coalesce(%(keyword_weight)s / (%(rrf_k)s + h.keyword_rank), 0.0))
             * (%(rrf_k)s + 1) / (%(vector_weight)s + %(keyword_weight)s)
             + %(importance_weight)s * h.importance + %(recency_weight)s * r.recency AS score
    FROM hits AS h CROSS JOIN LATERAL (SELECT {_HIT_RECENCY} AS recency) AS r
    ORDER BY score DESC, h.created_at DESC, h.id
    LIMIT %(top_k)s
)
SELECT {_SELECT_COLUMNS}, b.vector_rank, b.similarity, b.keyword_rank, b.recency, b.score
FROM best AS b
JOIN memories AS m ON m.id = b.id AND {_IN_SCOPE}
ORDER BY b.score DESC, b.created_at DESC, b.id
"""

# One statement per order ``list`` knows (memory.stores.base.LIST_ORDERS). Active rows come in order from
# memories_scope (newest) or memories_importance (importance, migrations/versions/0004_memory_versions.py).
LIST_SQL = {
    order: f"""
SELECT {_SELECT_COLUMNS} FROM memories AS m WHERE {_IN_SCOPE} {_FILTERS}
ORDER BY {keys} LIMIT %(limit)s OFFSET %(offset)s
"""
    for order, keys in {
        "newest": "m.created_at DESC, m.id",
        "importance": "m.importance DESC, m.updated_at DESC, m.id",
    }.items()
}
COUNT_SQL = f"SELECT count(*) AS n FROM memories AS m WHERE {_IN_SCOPE} {_FILTERS}"
PRUNE_SQL = f"""
SELECT m.id FROM memories AS m WHERE {_IN_SCOPE} {_FILTERS}
ORDER BY %(importance_share)s * m.importance + (1.0 - %(importance_share)s) * {_RECENCY} DESC,
         m.created_at DESC, m.id
OFFSET %(keep_top)s
"""
MARK_PRUNED_SQL = f"""
UPDATE memories AS m SET status = 'pruned', updated_at = %(now)s WHERE {_IN_SCOPE} AND m.id = ANY(%(ids)s)
"""
GET_SQL = f"SELECT {_SELECT_COLUMNS} FROM memories AS m WHERE {_IN_SCOPE} AND m.id = %(id)s"
GET_FOR_UPDATE_SQL = GET_SQL + " FOR UPDATE"
GET_BY_HASH_SQL = f"""
SELECT {_SELECT_COLUMNS} FROM memories AS m
WHERE {_IN_SCOPE} AND m.content_hash = %(content_hash)s AND m.status = 'active'
"""
INSERT_SQL = f"""
INSERT INTO memories ({_COLUMNS})
VALUES (%(id)s, %(tenant_id)s, %(user_id)s, %(content)s, %(content_hash)s, %(memory_type)s, %(importance)s,
    %(tags)s, %(metadata)s, %(session_id)s, %(created_at)s, %(updated_at)s, %(expires_at)s, %(embedding)s,
    %(embedding_model)s, %(status)s, %(superseded_by)s)
"""
UPDATE_SQL = f"""
UPDATE memories AS m
SET content = %(content)s, content_hash = %(content_hash)s, memory_type = %(memory_type)s,
    importance = %(importance)s, tags = %(tags)s, metadata = %(metadata)s, updated_at = %(updated_at)s,
    expires_at = %(expires_at)s, embedding = %(embedding)s, embedding_model = %(embedding_model)s,
    status = %(status)s, superseded_by = %(superseded_by)s
WHERE {_IN_SCOPE} AND m.id = %(id)s
"""
DELETE_SQL = f"DELETE FROM memories AS m WHERE {_IN_SCOPE} AND m.id = %(id)s"
REDACT_EVENTS_SQL = """
UPDATE memory_events SET content = NULL, previous_content = NULL, details = '{"redacted": true}'
WHERE tenant_id = %(tenant_id)s AND user_id = %(user_id)s AND memory_id = %(id)s
"""
FORGET_SQL = f"DELETE FROM memories AS m WHERE {_IN_SCOPE}"
FORGET_EVENTS_SQL = "DELETE FROM memory_events WHERE tenant_id = %(tenant_id)s AND user_id = %(user_id)s"
FORGET_PROFILE_SQL = "DELETE FROM memory_profiles WHERE tenant_id = %(tenant_id)s AND user_id = %(user_id)s"
# The scope's version, kept by the triggers of revision 0004 (the same clock and formula as theirs).
NOW_US = "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint"
VERSION_SQL = "SELECT version FROM memory_versions WHERE tenant_id = %(tenant_id)s AND user_id = %(user_id)s"
# forget_user takes the scope's version row (making it if need be) before it reads any memory, so a write
# of the scope running at the same time is ordered entirely before or entirely after the forget.
TAKE_VERSION_SQL = f"""
INSERT INTO memory_versions (tenant_id, user_id, version) VALUES (%(tenant_id)s, %(user_id)s, {NOW_US})
ON CONFLICT (tenant_id, user_id) DO UPDATE SET version = greatest(memory_versions.version + 1, excluded.version)
"""
FORGET_VERSION_SQL = f"""
DELETE FROM memory_versions WHERE tenant_id = %(tenant_id)s AND user_id = %(user_id)s
RETURNING version, {NOW_US} AS now_us
"""
CLOCK_SQL = f"SELECT {NOW_US} AS now_us"
INSERT_EVENT_SQL = """
INSERT INTO memory_events (tenant_id, user_id, memory_id, kind, created_at, content, previous_content,
    related_id, details)
VALUES (%(tenant_id)s, %(user_id)s, %(memory_id)s, %(kind)s, %(created_at)s, %(content)s,
    %(previous_content)s, %(related_id)s, %(details)s)
"""
HISTORY_SQL = """
SELECT * FROM memory_events
WHERE tenant_id = %(tenant_id)s AND user_id = %(user_id)s
  AND (%(memory_id)s::text IS NULL OR memory_id = %(memory_id)s)
ORDER BY id LIMIT %(limit)s
"""
# The write-back ledger. An upsert keeps the first save's created_at: the turn happened once. The JSON
# columns are read as text, so every store decodes records alike (``memory.stores.base.turn_from_params``).
_TURN_COLUMNS = (
    "tenant_id, user_id, turn_id, session_id, status, user_message, assistant_reply, operations, result, "
    "attempts, error, created_at, updated_at"
)
_TURN_ROW = (
    "tenant_id, user_id, turn_id, session_id, status, user_message, assistant_reply, "
    "operations::text AS operations, result::text AS result, attempts, error, created_at, updated_at"
)
SAVE_TURN_SQL = f"""
INSERT INTO turn_records ({_TURN_COLUMNS})
VALUES (%(tenant_id)s, %(user_id)s, %(turn_id)s, %(session_id)s, %(status)s, %(user_message)s,
    %(assistant_reply)s, %(operations)s::jsonb, %(result)s::jsonb, %(attempts)s, %(error)s, %(created_at)s,
    %(updated_at)s)
ON CONFLICT (tenant_id, user_id, turn_id) DO UPDATE SET
    session_id = excluded.session_id, status = excluded.status, user_message = excluded.user_message,
    assistant_reply = excluded.assistant_reply, operations = excluded.operations, result = excluded.result,
    attempts = excluded.attempts, error = excluded.error, updated_at = excluded.updated_at
RETURNING {_TURN_ROW}
"""
GET_TURN_SQL = f"""
SELECT {_TURN_ROW} FROM turn_records
WHERE tenant_id = %(tenant_id)s AND user_id = %(user_id)s AND turn_id = %(turn_id)s
"""
LIST_TURNS_SQL = f"""
SELECT {_TURN_ROW} FROM turn_records
WHERE tenant_id = %(tenant_id)s AND user_id = %(user_id)s AND status = ANY(%(statuses)s::text[])
ORDER BY created_at, turn_id LIMIT %(limit)s
"""
FORGET_TURNS_SQL = "DELETE FROM turn_records WHERE tenant_id = %(tenant_id)s AND user_id = %(user_id)s"
REVISION_SQL = "SELECT version_num FROM alembic_version"
APP_ROLE = "agent_memory_app"
# NULL before the first migration (no such role yet); superusers count as members.
MEMBERSHIP_SQL = f"""
SELECT CASE WHEN EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}')
            THEN pg_has_role('{APP_ROLE}', 'MEMBER') END AS member
"""

T = TypeVar("T")


def _timestamp(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, tz=UTC)


def _seconds(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _scope_params(scope: Scope) -> dict[str, Any]:
    return {"tenant_id": scope.tenant_id, "user_id": scope.user_id}


def _filter_params(filters: MemoryFilter | None, now: float) -> dict[str, Any]:
    filters = filters or MemoryFilter()
    return {
        "include_inactive": filters.include_inactive,
        "include_expired": filters.include_expired,
        "now": _timestamp(now),
        "types": [t.value for t in filters.memory_types] or None,
        "tags": list(filters.tags) or None,
        "session_id": filters.session_id,
    }


def _entry_params(entry: MemoryEntry) -> dict[str, Any]:
    from psycopg.types.json import Jsonb

    if entry.embedding is None:
        raise InvalidInputError("a stored memory needs an embedding; Memory.remember computes it")
    return {
        "id": entry.id,
        **_scope_params(entry.scope),
        "content": entry.content,
        "content_hash": entry.content_hash,
        "memory_type": entry.memory_type.value,
        "importance": entry.importance,
        "tags": list(entry.tags),
        "metadata": Jsonb(entry.metadata),
        "session_id": entry.session_id,
        "created_at": _timestamp(entry.created_at),
        "updated_at": _timestamp(entry.updated_at),
        "expires_at": _timestamp(entry.expires_at),
        "embedding": entry.embedding,
        "embedding_model": entry.embedding_model,
        "status": entry.status.value,
        "superseded_by": entry.superseded_by,
    }


def _vector(value: Any) -> Any:
    """pgvector-python returns ``Vector`` objects (0.5+) or numpy arrays (older): take numpy either way."""
    return value.to_numpy() if hasattr(value, "to_numpy") else value


def _turn_params(record: TurnRecord) -> dict[str, Any]:
    return {
        **turn_params(record),
        "created_at": _timestamp(record.created_at),
        "updated_at": _timestamp(record.updated_at),
    }


def _turn_from_row(row: Mapping[str, Any]) -> TurnRecord:
    return turn_from_params(
        {**row, "created_at": _seconds(row["created_at"]), "updated_at": _seconds(row["updated_at"])}
    )


def _entry_from_row(row: Mapping[str, Any]) -> MemoryEntry:
    return MemoryEntry(
        id=row["id"],
        tenant_id=row["tenant_id"],
        user_id=row["user_id"],
        content=row["content"],
        memory_type=row["memory_type"],
        importance=row["importance"],
        tags=tuple(row["tags"]),
        metadata=row["metadata"],
        session_id=row["session_id"],
        created_at=_seconds(row["created_at"]),
        updated_at=_seconds(row["updated_at"]),
        expires_at=_seconds(row["expires_at"]),
        embedding=_vector(row["embedding"]),
        embedding_model=row["embedding_model"],
        status=row["status"],
        superseded_by=row["superseded_by"],
    )


class PostgresStore:
    """A ``MemoryStore`` in Postgres with pgvector, scoped by row-level security."""

    capabilities = frozenset({"persistent", "statement_tracer", "leases"})

    def __init__(self, url: str, *, tracer: Tracer | None = None) -> None:
        self.url = psycopg_url(url)
        self.tracer = tracer
        self._conn: Any = None
        self._lock = threading.RLock()

    # -- connection ----------------------------------------------------------------------------------
    def open(self) -> None:
        with self._lock:
            if self._conn is None or self._conn.closed or self._conn.broken:
                self._conn = self._connect()

    def _connect(self) -> Any:
        try:
            import psycopg
            from pgvector.psycopg import register_vector
            from psycopg.rows import dict_row
        except ImportError as exc:
            raise ConfigurationError(
                "MEMORY_STORE_URL names Postgres but its driver is missing: run `pip install 'agent-memory[postgres]'`"
            ) from exc
        try:
            conn = psycopg.connect(
                self.url,
                prepare_threshold=None,
                row_factory=dict_row,
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                # A server that vanished without closing the socket (failover, a network partition) is
                # noticed within about a minute, not at the operating system's TCP timeout.
                keepalives=1,
                keepalives_idle=30,
                keepalives_interval=10,
                keepalives_count=3,
            )
        except psycopg.Error as exc:
            raise StoreUnavailableError(
                f"cannot connect to Postgres ({exc.__class__.__name__}: {str(exc).strip()}); "
                "check MEMORY_STORE_URL and that the server is up"
            ) from exc
        try:
            with conn.transaction():
                member = conn.execute(MEMBERSHIP_SQL).fetchone()["member"]
                if member is False:
                    role = conn.info.user
                    conn.close()
                    raise ConfigurationError(
                        f"the Postgres role {role!r} is not a member of the application role: run "
                        f"GRANT {APP_ROLE} TO {role} as the schema owner, or fix the user in MEMORY_STORE_URL"
                    )
                register_vector(conn)
                revision = conn.execute(REVISION_SQL).fetchone()["version_num"]
        except (psycopg.errors.UndefinedTable, psycopg.ProgrammingError, TypeError) as exc:
            conn.close()
            raise ConfigurationError(
                "the Postgres database has no agent-memory schema (or no pgvector): "
                "run `agent-memory migrate` with DATABASE_URL set to the schema owner's URL"
            ) from exc
        except psycopg.Error as exc:
            conn.close()
            raise StoreUnavailableError(f"cannot prepare the Postgres connection: {exc}") from exc
        if revision != SCHEMA_REVISION:
            conn.close()
            raise ConfigurationError(
                f"the Postgres schema is at revision {revision}, this agent-memory needs {SCHEMA_REVISION}: "
                "run `agent-memory migrate`"
            )
        return conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> PostgresStore:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _in_scope(self, scope: Scope, work: Callable[[Any], T], scope_sql: str = SET_SCOPE_SQL) -> T:
        """Run ``work(cursor)`` in one transaction scoped to ``scope`` (by ``scope_sql``); retry once on a
        dropped connection."""
        return self._transaction(work, scope_sql, _scope_params(scope))

    def _transaction(self, work: Callable[[Any], T], setup_sql: str, setup_params: Mapping[str, Any]) -> T:
        """Run ``setup_sql`` then ``work(cursor)`` in one transaction; retry once on a dropped connection."""
        import psycopg

        with self._lock:
            for attempt in (1, 2):
                self.open()
                conn = self._conn
                try:
                    with conn.transaction(), conn.cursor() as cursor:
                        self._run(cursor, setup_sql, setup_params)
                        return work(cursor)
                except psycopg.errors.UniqueViolation as exc:
                    if exc.diag.constraint_name == "memories_active_content":
                        raise DuplicateContentError("an active memory of this user has the same content") from exc
                    raise StoreError(f"Postgres integrity error: {exc}") from exc
                except psycopg.OperationalError as exc:
                    if conn.broken and attempt == 1:
                        self.close()  # the server dropped us (restart, failover): one fresh try
                        continue
                    raise StoreUnavailableError(f"Postgres is unavailable: {exc}") from exc
                except psycopg.Error as exc:
                    raise StoreError(f"Postgres error: {exc}") from exc
        raise AssertionError("unreachable")

    def _run(self, cursor: Any, sql: str, params: Mapping[str, Any]) -> Any:
        if self.tracer is not None:
            self.tracer(sql, params)
        # Results in binary: a vector arrives as its 1,536 bytes instead of 384 decimals that Postgres
        # formats and Python parses (about 0.1 ms a row: 2-3 ms for a list of 20 memories).
        return cursor.execute(sql, params, binary=True)

    def _record(self, cursor: Any, scope: Scope, memory_id: str, kind: EventKind, now: float, **fields: Any):
        from psycopg.types.json import Jsonb

        params = {
            **_scope_params(scope),
            "memory_id": memory_id,
            "kind": kind.value,
            "created_at": _timestamp(now),
            "content": fields.get("content"),
            "previous_content": fields.get("previous_content"),
            "related_id": fields.get("related_id"),
            "details": Jsonb(fields.get("details") or {}),
        }
        self._run(cursor, INSERT_EVENT_SQL, params)

    # -- writes --------------------------------------------------------------------------------------
    def add(self, entry: MemoryEntry) -> MemoryEntry:
        return self.add_many([entry])[0]

    def add_many(self, entries: Sequence[MemoryEntry]) -> list[MemoryEntry]:
        by_scope: dict[Scope, list[MemoryEntry]] = {}
        for entry in entries:
            by_scope.setdefault(entry.scope, []).append(entry)
        rows = {entry.id: _entry_params(entry) for entry in entries}

        def insert(cursor: Any) -> None:
            # Scopes in one order: their version rows are locked in it, so concurrent batches cannot deadlock.
            for scope, group in sorted(by_scope.items(), key=lambda item: (item[0].tenant_id, item[0].user_id)):
                self._run(cursor, SET_SCOPE_SQL, _scope_params(scope))
                for entry in group:
                    self._run(cursor, INSERT_SQL, rows[entry.id])
                    self._record(cursor, scope, entry.id, EventKind.ADDED, entry.created_at, content=entry.content)

        if by_scope:
            self._in_scope(next(iter(by_scope)), insert)  # each group sets its own scope
        return list(entries)

    def update(
        self,
        scope: Scope,
        memory_id: str,
        changes: Mapping[str, Any],
        *,
        event: EventKind = EventKind.UPDATED,
        related_id: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> MemoryEntry:
        check_changes(changes)

        def apply(cursor: Any) -> MemoryEntry:
            row = self._run(cursor, GET_FOR_UPDATE_SQL, {**_scope_params(scope), "id": memory_id}).fetchone()
            if row is None:
                raise MemoryNotFoundError(f"no memory {memory_id!r} for this user")
            after, event_fields = apply_changes(_entry_from_row(row), changes, related_id=related_id, details=details)
            self._run(cursor, UPDATE_SQL, _entry_params(after))
            self._record(cursor, scope, memory_id, event, after.updated_at, **event_fields)
            return after

        return self._in_scope(scope, apply)

    def delete(self, scope: Scope, memory_id: str) -> None:
        params = {**_scope_params(scope), "id": memory_id}

        def remove(cursor: Any) -> None:
            if self._run(cursor, DELETE_SQL, params).rowcount == 0:
                raise MemoryNotFoundError(f"no memory {memory_id!r} for this user")
            self._run(cursor, REDACT_EVENTS_SQL, params)
            self._record(cursor, scope, memory_id, EventKind.DELETED, time.time())

        self._in_scope(scope, remove)

    def forget_user(self, scope: Scope) -> int:
        params = _scope_params(scope)

        def forget(cursor: Any) -> int:
            self._run(cursor, TAKE_VERSION_SQL, params)
            removed = self._run(cursor, FORGET_SQL, params).rowcount
            self._run(cursor, FORGET_EVENTS_SQL, params)
            self._run(cursor, FORGET_PROFILE_SQL, params)
            self._run(cursor, FORGET_TURNS_SQL, params)
            self._run(cursor, FORGET_LEASE_SQL, params)
            forgotten = self._run(cursor, FORGET_VERSION_SQL, params).fetchone()
            if forgotten["version"] >= forgotten["now_us"]:  # seldom: the clock has not passed it yet
                wait_past(forgotten["version"], lambda: self._run(cursor, CLOCK_SQL, {}).fetchone()["now_us"])
            return removed

        return self._in_scope(scope, forget)

    def prune(self, scope: Scope, keep_top: int, *, ranking: Ranking, now: float) -> list[str]:
        params = {
            **_scope_params(scope),
            **_filter_params(None, now),
            **ranking_params(ranking),
            "keep_top": check_keep_top(keep_top),
        }

        def archive(cursor: Any) -> list[str]:
            ids = [row["id"] for row in self._run(cursor, PRUNE_SQL, params).fetchall()]
            if ids:
                self._run(cursor, MARK_PRUNED_SQL, {**params, "ids": ids})
            for memory_id in ids:
                self._record(cursor, scope, memory_id, EventKind.PRUNED, now, details={"keep_top": keep_top})
            return ids

        return self._in_scope(scope, archive)

    # -- reads ---------------------------------------------------------------------------------------
    def _fetch_one(self, scope: Scope, sql: str, params: Mapping[str, Any]) -> MemoryEntry | None:
        row = self._in_scope(scope, lambda cursor: self._run(cursor, sql, params).fetchone())
        return _entry_from_row(row) if row else None

    def get(self, scope: Scope, memory_id: str) -> MemoryEntry | None:
        return self._fetch_one(scope, GET_SQL, {**_scope_params(scope), "id": memory_id})

    def get_by_hash(self, scope: Scope, content_hash: str) -> MemoryEntry | None:
        return self._fetch_one(scope, GET_BY_HASH_SQL, {**_scope_params(scope), "content_hash": content_hash})

    def list(
        self,
        scope: Scope,
        filters: MemoryFilter | None = None,
        *,
        limit: int = 50,
        offset: int = 0,
        order_by: str = "newest",
    ) -> list[MemoryEntry]:
        sql = LIST_SQL[check_order_by(order_by)]
        params = {
            **_scope_params(scope),
            **_filter_params(filters, time.time()),
            "limit": limit,
            "offset": offset,
        }
        rows = self._in_scope(scope, lambda cursor: self._run(cursor, sql, params).fetchall())
        return [_entry_from_row(row) for row in rows]

    def count(self, scope: Scope, filters: MemoryFilter | None = None) -> int:
        params = {**_scope_params(scope), **_filter_params(filters, time.time())}
        return self._in_scope(scope, lambda cursor: self._run(cursor, COUNT_SQL, params).fetchone()["n"])

    def search(self, scope: Scope, request: SearchRequest) -> list[SearchHit]:
        use_vector = request.mode is not SearchMode.KEYWORD and request.embedding is not None
        use_keyword = request.mode is not SearchMode.VECTOR
        params = {
            **_scope_params(scope),
            **_filter_params(dataclasses.replace(request.filters, include_inactive=False), request.now),
            "embedding": request.embedding if use_vector else None,
            "embedding_model": request.embedding_model,
            "terms": text.keyword_terms(request.text) if use_keyword else [],
            **ranking_params(request.ranking),
            "top_k": request.top_k,
        }
        rows = self._in_scope(
            scope, lambda cursor: self._run(cursor, SEARCH_CALL_SQL, params).fetchall(), scope_sql=SEARCH_SCOPE_SQL
        )
        return [
            SearchHit(
                entry=_entry_from_row(row),
                score=float(row["score"]),
                vector_rank=row["vector_rank"],
                similarity=None if row["similarity"] is None else float(row["similarity"]),
                keyword_rank=row["keyword_rank"],
                recency=float(row["recency"]),
            )
            for row in rows
        ]

    def history(self, scope: Scope, memory_id: str | None = None, *, limit: int = 100) -> list[MemoryEvent]:
        params = {**_scope_params(scope), "memory_id": memory_id, "limit": limit}
        rows = self._in_scope(scope, lambda cursor: self._run(cursor, HISTORY_SQL, params).fetchall())
        return [
            MemoryEvent(
                id=row["id"],
                memory_id=row["memory_id"],
                kind=EventKind(row["kind"]),
                created_at=_seconds(row["created_at"]),
                content=row["content"],
                previous_content=row["previous_content"],
                related_id=row["related_id"],
                details=row["details"],
            )
            for row in rows
        ]

    def version(self, scope: Scope) -> int | None:
        params = _scope_params(scope)
        row = self._in_scope(scope, lambda cursor: self._run(cursor, VERSION_SQL, params).fetchone())
        return None if row is None else row["version"]

    # -- turn records --------------------------------------------------------------------------------
    def save_turn(self, record: TurnRecord) -> TurnRecord:
        params = _turn_params(record)
        row = self._in_scope(record.scope, lambda cursor: self._run(cursor, SAVE_TURN_SQL, params).fetchone())
        return _turn_from_row(row)

    def get_turn(self, scope: Scope, turn_id: str) -> TurnRecord | None:
        params = {**_scope_params(scope), "turn_id": check_turn_id(turn_id)}
        row = self._in_scope(scope, lambda cursor: self._run(cursor, GET_TURN_SQL, params).fetchone())
        return _turn_from_row(row) if row else None

    def list_turns(
        self, scope: Scope, statuses: Iterable[TurnStatus] = PENDING_OR_FAILED, *, limit: int = 100
    ) -> list[TurnRecord]:
        values, limit = check_turn_query(statuses, limit)
        params = {**_scope_params(scope), "statuses": values, "limit": limit}
        rows = self._in_scope(scope, lambda cursor: self._run(cursor, LIST_TURNS_SQL, params).fetchall())
        return [_turn_from_row(row) for row in rows]

    # -- maintenance ---------------------------------------------------------------------------------
    def scopes(self, *, after: Scope | None = None, limit: int = 100) -> list[Scope]:
        (after_tenant, after_user), limit = check_scopes_query(after, limit)
        params = {"after_tenant": after_tenant, "after_user": after_user, "limit": limit}
        rows = self._transaction(
            lambda cursor: self._run(cursor, SCOPES_SQL, params).fetchall(),
            LIST_SCOPES_SETUP_SQL,
            {"statement_timeout": STATEMENT_TIMEOUT},
        )
        return [Scope(user_id=row["user_id"], tenant_id=row["tenant_id"]) for row in rows]

    def try_lease(self, scope: Scope, owner: str, ttl_seconds: float) -> bool:
        params = {**_scope_params(scope), "owner": owner, "ttl_seconds": check_lease(owner, ttl_seconds)}
        return self._in_scope(scope, lambda cursor: self._run(cursor, TRY_LEASE_SQL, params).fetchone()) is not None

    def release_lease(self, scope: Scope, owner: str) -> None:
        params = {**_scope_params(scope), "owner": check_owner(owner)}
        self._in_scope(scope, lambda cursor: self._run(cursor, RELEASE_LEASE_SQL, params))
