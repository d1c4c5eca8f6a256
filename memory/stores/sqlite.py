"""SQLite: the zero-infrastructure default. FTS5 for keywords, sqlite-vec for vectors, one file.

Search is one statement: an exact cosine scan over the user's rows (a btree on tenant and user keeps
it to those rows; 10,000 rows take about 9 ms here, with recall 1.0 where an ANN index would trade it
away), BM25 over an FTS5 index whose every row carries a scope token so keyword matching never leaves
the user, then reciprocal rank fusion, importance and recency, exactly as ``memory.ranking`` defines.

Each scope's data version (``MemoryStore.version``) lives in ``memory_versions``, kept by triggers on
``memories`` (schema step 3), so it changes in the transaction of the change itself, whoever makes it.
``scopes`` pages through that table; maintenance leases are rows of ``maintenance_leases`` (step 4).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from memory import text
from memory.errors import (
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
from memory.stores import sqlite_schema as schema
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
from memory.stores.sqlite_driver import Driver, connect
from memory.turns import TurnRecord, TurnStatus

# The filter every read applies after the scope; named parameters keep it one constant.
_FILTERS = """
    AND (:include_inactive OR m.status = 'active')
    AND (:include_expired OR m.expires_at IS NULL OR m.expires_at > :now)
    AND (:types IS NULL OR m.memory_type IN (SELECT value FROM json_each(:types)))
    AND (:tags IS NULL OR EXISTS (SELECT 1 FROM json_each(m.tags) AS t
                                  WHERE t.value IN (SELECT value FROM json_each(:tags))))
    AND (:session_id IS NULL OR m.session_id = :session_id)
"""
_IN_SCOPE = "m.tenant_id = :tenant_id AND m.user_id = :user_id"
_RECENCY = "1.0 / (1.0 + max(0.0, :now - m.updated_at) / :seconds_per_day / :half_life_days)"

SEARCH_SQL = f"""
WITH vector_hits AS (
    -- Top candidates first (a cheap top-N sort), then rank those few; the floor only trims the tail.
    SELECT rid, similarity, row_number() OVER (ORDER BY similarity DESC, rid) AS rank
    FROM (SELECT m.rowid AS rid, 1.0 - vec_distance_cosine(m.embedding, :embedding) AS similarity
          FROM memories AS m
          WHERE :embedding IS NOT NULL AND {_IN_SCOPE} AND m.embedding_model IS :embedding_model {_FILTERS}
          ORDER BY similarity DESC, rid LIMIT :candidates)
    WHERE similarity >= :min_similarity
),
keyword_hits AS (
    SELECT rid, row_number() OVER (ORDER BY bm25, rid) AS rank
    FROM (SELECT memories_fts.rowid AS rid, bm25(memories_fts, 0.0, 1.0) AS bm25
          FROM memories_fts JOIN memories AS m ON m.rowid = memories_fts.rowid
          WHERE :match IS NOT NULL AND memories_fts MATCH :match AND {_IN_SCOPE} {_FILTERS}
          ORDER BY bm25, rid LIMIT :candidates)
),
fused AS (
    SELECT rid, max(vector_rank) AS vector_rank, max(similarity) AS similarity,
           max(keyword_rank) AS keyword_rank
    FROM (SELECT rid, rank AS vector_rank, similarity, NULL AS keyword_rank FROM vector_hits
          UNION ALL
          SELECT rid, NULL, NULL, rank FROM keyword_hits)
    GROUP BY rid
),
scored AS (
    SELECT m.*, f.vector_rank, f.similarity, f.keyword_rank, {_RECENCY} AS recency
    FROM fused AS f JOIN memories AS m ON m.rowid = f.rid
)
SELECT *,
       (coalesce(:vector_weight / (:rrf_k + vector_rank), 0.0)
        + coalesce(:keyword_weight / (:rrf_k + keyword_rank), 0.0)) * (:rrf_k + 1) / (:vector_weight + :keyword_weight)
         + :importance_weight * importance + :recency_weight * recency AS score
FROM scored
ORDER BY score DESC, created_at DESC, id
LIMIT :top_k
"""

# One statement per order ``list`` knows (memory.stores.base.LIST_ORDERS).
LIST_SQL = {
    order: f"""
SELECT m.* FROM memories AS m WHERE {_IN_SCOPE} {_FILTERS}
ORDER BY {keys} LIMIT :limit OFFSET :offset
"""
    for order, keys in {
        "newest": "m.created_at DESC, m.id",
        "importance": "m.importance DESC, m.updated_at DESC, m.id",
    }.items()
}
COUNT_SQL = f"SELECT count(*) FROM memories AS m WHERE {_IN_SCOPE} {_FILTERS}"
PRUNE_SQL = f"""
SELECT m.id FROM memories AS m WHERE {_IN_SCOPE} {_FILTERS}
ORDER BY :importance_share * m.importance + (1.0 - :importance_share) * {_RECENCY} DESC,
         m.created_at DESC, m.id
LIMIT -1 OFFSET :keep_top
"""
GET_SQL = f"SELECT m.* FROM memories AS m WHERE {_IN_SCOPE} AND m.id = :id"
GET_BY_HASH_SQL = f"""
SELECT m.* FROM memories AS m WHERE {_IN_SCOPE} AND m.content_hash = :content_hash AND m.status = 'active'
"""
INSERT_SQL = """
INSERT INTO memories (id, tenant_id, user_id, scope_key, content, content_hash, memory_type, importance,
    tags, metadata, session_id, created_at, updated_at, expires_at, embedding, embedding_model, status,
    superseded_by)
VALUES (:id, :tenant_id, :user_id, :scope_key, :content, :content_hash, :memory_type, :importance, :tags,
    :metadata, :session_id, :created_at, :updated_at, :expires_at, :embedding, :embedding_model, :status,
    :superseded_by)
"""
UPDATE_SQL = f"""
UPDATE memories AS m SET content = :content, content_hash = :content_hash, memory_type = :memory_type,
    importance = :importance, tags = :tags, metadata = :metadata, updated_at = :updated_at,
    expires_at = :expires_at, embedding = :embedding, embedding_model = :embedding_model, status = :status,
    superseded_by = :superseded_by
WHERE {_IN_SCOPE} AND m.id = :id
"""
MARK_PRUNED_SQL = f"""
UPDATE memories AS m SET status = 'pruned', updated_at = :now WHERE {_IN_SCOPE} AND m.id = :id
"""
DELETE_SQL = f"DELETE FROM memories AS m WHERE {_IN_SCOPE} AND m.id = :id"
# An explicit delete also scrubs the text from the memory's earlier events: "deleted" means gone.
REDACT_EVENTS_SQL = """
UPDATE memory_events SET content = NULL, previous_content = NULL, details = '{"redacted": true}'
WHERE tenant_id = :tenant_id AND user_id = :user_id AND memory_id = :id
"""
FORGET_SQL = f"DELETE FROM memories AS m WHERE {_IN_SCOPE}"
FORGET_EVENTS_SQL = "DELETE FROM memory_events WHERE tenant_id = :tenant_id AND user_id = :user_id"
# The scope's version, kept by the triggers of schema step 3; forget_user deletes it after the memories.
VERSION_SQL = "SELECT version FROM memory_versions WHERE tenant_id = :tenant_id AND user_id = :user_id"
FORGET_VERSION_SQL = "DELETE FROM memory_versions WHERE tenant_id = :tenant_id AND user_id = :user_id RETURNING version"
CLOCK_SQL = f"SELECT {schema.NOW_US}"
INSERT_EVENT_SQL = """
INSERT INTO memory_events (tenant_id, user_id, memory_id, kind, created_at, content, previous_content,
    related_id, details)
VALUES (:tenant_id, :user_id, :memory_id, :kind, :created_at, :content, :previous_content, :related_id,
    :details)
"""
HISTORY_SQL = """
SELECT * FROM memory_events
WHERE tenant_id = :tenant_id AND user_id = :user_id AND (:memory_id IS NULL OR memory_id = :memory_id)
ORDER BY id LIMIT :limit
"""

# The write-back ledger. An upsert keeps the first save's created_at: the turn happened once.
_TURN_COLUMNS = (
    "tenant_id, user_id, turn_id, session_id, status, user_message, assistant_reply, operations, result, "
    "attempts, error, created_at, updated_at"
)
SAVE_TURN_SQL = f"""
INSERT INTO turn_records ({_TURN_COLUMNS})
VALUES (:tenant_id, :user_id, :turn_id, :session_id, :status, :user_message, :assistant_reply, :operations,
    :result, :attempts, :error, :created_at, :updated_at)
ON CONFLICT (tenant_id, user_id, turn_id) DO UPDATE SET
    session_id = excluded.session_id, status = excluded.status, user_message = excluded.user_message,
    assistant_reply = excluded.assistant_reply, operations = excluded.operations, result = excluded.result,
    attempts = excluded.attempts, error = excluded.error, updated_at = excluded.updated_at
RETURNING {_TURN_COLUMNS}
"""
GET_TURN_SQL = f"""
SELECT {_TURN_COLUMNS} FROM turn_records
WHERE tenant_id = :tenant_id AND user_id = :user_id AND turn_id = :turn_id
"""
LIST_TURNS_SQL = f"""
SELECT {_TURN_COLUMNS} FROM turn_records
WHERE tenant_id = :tenant_id AND user_id = :user_id AND status IN (SELECT value FROM json_each(:statuses))
ORDER BY created_at, turn_id LIMIT :limit
"""
FORGET_TURNS_SQL = "DELETE FROM turn_records WHERE tenant_id = :tenant_id AND user_id = :user_id"
# Maintenance (schema step 4). ``scopes`` walks memory_versions' primary key (BINARY: code point order), from
# ("", "") when there is no ``after`` (memory.stores.base.check_scopes_query).
SCOPES_SQL = """
SELECT tenant_id, user_id FROM memory_versions
WHERE (tenant_id, user_id) > (:after_tenant, :after_user)
ORDER BY tenant_id, user_id LIMIT :limit
"""
# One atomic upsert under BEGIN IMMEDIATE (every process opening the file queues on it): a new lease is
# inserted; an existing one is taken over only when expired or the owner's own, else no row is returned.
# The clock is SQLite's (this machine's), in seconds with millisecond ticks.
_NOW_SECONDS = "((julianday('now') - 2440587.5) * 86400.0)"
TRY_LEASE_SQL = f"""
INSERT INTO maintenance_leases (tenant_id, user_id, owner, expires_at)
VALUES (:tenant_id, :user_id, :owner, {_NOW_SECONDS} + :ttl_seconds)
ON CONFLICT (tenant_id, user_id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
WHERE maintenance_leases.expires_at <= {_NOW_SECONDS} OR maintenance_leases.owner = excluded.owner
RETURNING owner
"""
RELEASE_LEASE_SQL = """
DELETE FROM maintenance_leases WHERE tenant_id = :tenant_id AND user_id = :user_id AND owner = :owner
"""
FORGET_LEASE_SQL = "DELETE FROM maintenance_leases WHERE tenant_id = :tenant_id AND user_id = :user_id"


def scope_key(scope: Scope) -> str:
    """The FTS token that tags every row of a scope; a hash, so no user id text reaches the index."""
    digest = hashlib.sha256(f"{scope.tenant_id}\x1f{scope.user_id}".encode()).hexdigest()
    return f"s{digest[:40]}"


def fts_query(scope: Scope, query: str) -> str | None:
    """A safe FTS5 expression: the scope token AND any of the query's words, each quoted as a phrase."""
    terms = text.keyword_terms(query)
    if not terms:
        return None
    quoted = " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)
    return f'scope_key : "{scope_key(scope)}" AND content : ({quoted})'


def _scope_params(scope: Scope) -> dict[str, Any]:
    return {"tenant_id": scope.tenant_id, "user_id": scope.user_id}


def _filter_params(filters: MemoryFilter | None, now: float) -> dict[str, Any]:
    filters = filters or MemoryFilter()
    return {
        "include_inactive": filters.include_inactive,
        "include_expired": filters.include_expired,
        "now": now,
        "types": json.dumps([t.value for t in filters.memory_types]) if filters.memory_types else None,
        "tags": json.dumps(list(filters.tags)) if filters.tags else None,
        "session_id": filters.session_id,
    }


def _entry_params(entry: MemoryEntry) -> dict[str, Any]:
    if entry.embedding is None:
        raise InvalidInputError("a stored memory needs an embedding; Memory.remember computes it")
    return {
        "id": entry.id,
        **_scope_params(entry.scope),
        "scope_key": scope_key(entry.scope),
        "content": entry.content,
        "content_hash": entry.content_hash,
        "memory_type": entry.memory_type.value,
        "importance": entry.importance,
        "tags": json.dumps(list(entry.tags)),
        "metadata": json.dumps(entry.metadata, default=str),
        "session_id": entry.session_id,
        "created_at": entry.created_at,
        "updated_at": entry.updated_at,
        "expires_at": entry.expires_at,
        "embedding": entry.embedding.astype(np.float32).tobytes(),
        "embedding_model": entry.embedding_model,
        "status": entry.status.value,
        "superseded_by": entry.superseded_by,
    }


def _entry_from_row(row: Mapping[str, Any]) -> MemoryEntry:
    return MemoryEntry(
        id=row["id"],
        tenant_id=row["tenant_id"],
        user_id=row["user_id"],
        content=row["content"],
        memory_type=row["memory_type"],
        importance=row["importance"],
        tags=tuple(json.loads(row["tags"])),
        metadata=json.loads(row["metadata"]),
        session_id=row["session_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        expires_at=row["expires_at"],
        embedding=np.frombuffer(row["embedding"], dtype=np.float32) if row["embedding"] else None,
        embedding_model=row["embedding_model"],
        status=row["status"],
        superseded_by=row["superseded_by"],
    )


class SQLiteStore:
    """A ``MemoryStore`` in one SQLite file (or in memory with ``:memory:``)."""

    capabilities = frozenset({"persistent", "statement_tracer", "leases"})

    def __init__(self, path: str = ":memory:", *, tracer: Tracer | None = None, driver: Driver | None = None):
        self.path = path
        self.tracer = tracer
        self._driver = driver
        self._conn: Any = None
        self._lock = threading.RLock()
        if path == ":memory:":
            self.capabilities = frozenset({"statement_tracer", "leases"})

    # -- connection ----------------------------------------------------------------------------------
    def open(self) -> None:
        with self._lock:
            if self._conn is not None:
                return
            driver, conn = connect(self.path, self._driver)
            self._driver = driver
            conn.row_factory = driver.module.Row
            try:
                schema.configure(conn, wal=self.path != ":memory:")
                schema.migrate(conn)
            except BaseException as exc:
                conn.close()
                if not isinstance(exc, driver.error):
                    raise
                raise StoreUnavailableError(f"cannot prepare the SQLite database {self.path!r}: {exc}") from exc
            self._conn = conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> SQLiteStore:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _session(self, *, write: bool = False) -> Iterator[Any]:
        """Serialise access, translate driver errors, and wrap writes in one IMMEDIATE transaction."""
        with self._lock:
            if self._conn is None:
                self.open()
            driver, conn = self._driver, self._conn
            try:
                if write:
                    conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    if write:
                        conn.rollback()
                    raise
                if write:
                    conn.execute("COMMIT")
            except driver.integrity_error as exc:
                if "content_hash" in str(exc):
                    raise DuplicateContentError("an active memory of this user has the same content") from exc
                raise StoreError(f"SQLite integrity error: {exc}") from exc
            except driver.error as exc:
                raise StoreError(f"SQLite error: {exc}") from exc

    def _run(self, conn: Any, sql: str, params: Mapping[str, Any]) -> Any:
        if self.tracer is not None:
            self.tracer(sql, params)
        return conn.execute(sql, params)

    def _record(self, conn: Any, scope: Scope, memory_id: str, kind: EventKind, now: float, **fields: Any):
        params = {
            **_scope_params(scope),
            "memory_id": memory_id,
            "kind": kind.value,
            "created_at": now,
            "content": fields.get("content"),
            "previous_content": fields.get("previous_content"),
            "related_id": fields.get("related_id"),
            "details": json.dumps(fields.get("details") or {}),
        }
        self._run(conn, INSERT_EVENT_SQL, params)

    # -- writes --------------------------------------------------------------------------------------
    def add(self, entry: MemoryEntry) -> MemoryEntry:
        return self.add_many([entry])[0]

    def add_many(self, entries: Sequence[MemoryEntry]) -> list[MemoryEntry]:
        rows = [_entry_params(entry) for entry in entries]
        with self._session(write=True) as conn:
            for entry, row in zip(entries, rows, strict=True):
                self._run(conn, INSERT_SQL, row)
                self._record(conn, entry.scope, entry.id, EventKind.ADDED, entry.created_at, content=entry.content)
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
        with self._session(write=True) as conn:
            row = self._run(conn, GET_SQL, {**_scope_params(scope), "id": memory_id}).fetchone()
            if row is None:
                raise MemoryNotFoundError(f"no memory {memory_id!r} for this user")
            after, event_fields = apply_changes(_entry_from_row(row), changes, related_id=related_id, details=details)
            self._run(conn, UPDATE_SQL, _entry_params(after))
            self._record(conn, scope, memory_id, event, after.updated_at, **event_fields)
        return after

    def delete(self, scope: Scope, memory_id: str) -> None:
        with self._session(write=True) as conn:
            cursor = self._run(conn, DELETE_SQL, {**_scope_params(scope), "id": memory_id})
            if cursor.rowcount == 0:
                raise MemoryNotFoundError(f"no memory {memory_id!r} for this user")
            self._run(conn, REDACT_EVENTS_SQL, {**_scope_params(scope), "id": memory_id})
            self._record(conn, scope, memory_id, EventKind.DELETED, time.time())

    def forget_user(self, scope: Scope) -> int:
        with self._session(write=True) as conn:
            removed = self._run(conn, FORGET_SQL, _scope_params(scope)).rowcount
            self._run(conn, FORGET_EVENTS_SQL, _scope_params(scope))
            self._run(conn, FORGET_TURNS_SQL, _scope_params(scope))
            self._run(conn, FORGET_LEASE_SQL, _scope_params(scope))
            forgotten = self._run(conn, FORGET_VERSION_SQL, _scope_params(scope)).fetchall()
            if forgotten:
                # Still holding the write lock: no write of any connection can start the version again
                # before the (millisecond) clock has passed the one removed.
                wait_past(forgotten[0]["version"], lambda: self._run(conn, CLOCK_SQL, {}).fetchone()[0])
        return removed

    def prune(self, scope: Scope, keep_top: int, *, ranking: Ranking, now: float) -> list[str]:
        params = {
            **_scope_params(scope),
            **_filter_params(None, now),
            **ranking_params(ranking),
            "keep_top": check_keep_top(keep_top),
        }
        with self._session(write=True) as conn:
            ids = [row["id"] for row in self._run(conn, PRUNE_SQL, params)]
            for memory_id in ids:
                self._run(conn, MARK_PRUNED_SQL, {**_scope_params(scope), "id": memory_id, "now": now})
                self._record(conn, scope, memory_id, EventKind.PRUNED, now, details={"keep_top": keep_top})
        return ids

    # -- reads ---------------------------------------------------------------------------------------
    def get(self, scope: Scope, memory_id: str) -> MemoryEntry | None:
        with self._session() as conn:
            row = self._run(conn, GET_SQL, {**_scope_params(scope), "id": memory_id}).fetchone()
        return _entry_from_row(row) if row else None

    def get_by_hash(self, scope: Scope, content_hash: str) -> MemoryEntry | None:
        with self._session() as conn:
            row = self._run(conn, GET_BY_HASH_SQL, {**_scope_params(scope), "content_hash": content_hash})
            row = row.fetchone()
        return _entry_from_row(row) if row else None

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
        with self._session() as conn:
            rows = self._run(conn, sql, params).fetchall()
        return [_entry_from_row(row) for row in rows]

    def count(self, scope: Scope, filters: MemoryFilter | None = None) -> int:
        params = {**_scope_params(scope), **_filter_params(filters, time.time())}
        with self._session() as conn:
            return self._run(conn, COUNT_SQL, params).fetchone()[0]

    def search(self, scope: Scope, request: SearchRequest) -> list[SearchHit]:
        use_vector = request.mode is not SearchMode.KEYWORD and request.embedding is not None
        use_keyword = request.mode is not SearchMode.VECTOR
        params = {
            **_scope_params(scope),
            **_filter_params(dataclasses.replace(request.filters, include_inactive=False), request.now),
            "embedding": request.embedding.astype(np.float32).tobytes() if use_vector else None,
            "embedding_model": request.embedding_model,
            "match": fts_query(scope, request.text) if use_keyword else None,
            **ranking_params(request.ranking),
            "top_k": request.top_k,
        }
        with self._session() as conn:
            rows = self._run(conn, SEARCH_SQL, params).fetchall()
        return [
            SearchHit(
                entry=_entry_from_row(row),
                score=row["score"],
                vector_rank=row["vector_rank"],
                similarity=row["similarity"],
                keyword_rank=row["keyword_rank"],
                recency=row["recency"],
            )
            for row in rows
        ]

    def history(self, scope: Scope, memory_id: str | None = None, *, limit: int = 100) -> list[MemoryEvent]:
        params = {**_scope_params(scope), "memory_id": memory_id, "limit": limit}
        with self._session() as conn:
            rows = self._run(conn, HISTORY_SQL, params).fetchall()
        return [
            MemoryEvent(
                id=row["id"],
                memory_id=row["memory_id"],
                kind=EventKind(row["kind"]),
                created_at=row["created_at"],
                content=row["content"],
                previous_content=row["previous_content"],
                related_id=row["related_id"],
                details=json.loads(row["details"]),
            )
            for row in rows
        ]

    def version(self, scope: Scope) -> int | None:
        with self._session() as conn:
            row = self._run(conn, VERSION_SQL, _scope_params(scope)).fetchone()
        return None if row is None else row["version"]

    # -- turn records --------------------------------------------------------------------------------
    def save_turn(self, record: TurnRecord) -> TurnRecord:
        params = turn_params(record)
        with self._session(write=True) as conn:
            row = self._run(conn, SAVE_TURN_SQL, params).fetchall()[0]  # read to the end before COMMIT
        return turn_from_params(row)

    def get_turn(self, scope: Scope, turn_id: str) -> TurnRecord | None:
        params = {**_scope_params(scope), "turn_id": check_turn_id(turn_id)}
        with self._session() as conn:
            row = self._run(conn, GET_TURN_SQL, params).fetchone()
        return turn_from_params(row) if row else None

    def list_turns(
        self, scope: Scope, statuses: Iterable[TurnStatus] = PENDING_OR_FAILED, *, limit: int = 100
    ) -> list[TurnRecord]:
        values, limit = check_turn_query(statuses, limit)
        params = {**_scope_params(scope), "statuses": json.dumps(values), "limit": limit}
        with self._session() as conn:
            rows = self._run(conn, LIST_TURNS_SQL, params).fetchall()
        return [turn_from_params(row) for row in rows]

    # -- maintenance ---------------------------------------------------------------------------------
    def scopes(self, *, after: Scope | None = None, limit: int = 100) -> list[Scope]:
        (after_tenant, after_user), limit = check_scopes_query(after, limit)
        params = {"after_tenant": after_tenant, "after_user": after_user, "limit": limit}
        with self._session() as conn:
            rows = self._run(conn, SCOPES_SQL, params).fetchall()
        return [Scope(user_id=row["user_id"], tenant_id=row["tenant_id"]) for row in rows]

    def try_lease(self, scope: Scope, owner: str, ttl_seconds: float) -> bool:
        params = {**_scope_params(scope), "owner": owner, "ttl_seconds": check_lease(owner, ttl_seconds)}
        with self._session(write=True) as conn:
            taken = self._run(conn, TRY_LEASE_SQL, params).fetchall()  # read to the end before COMMIT
        return bool(taken)

    def release_lease(self, scope: Scope, owner: str) -> None:
        params = {**_scope_params(scope), "owner": check_owner(owner)}
        with self._session(write=True) as conn:
            self._run(conn, RELEASE_LEASE_SQL, params)
