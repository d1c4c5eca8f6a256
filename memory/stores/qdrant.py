"""Qdrant: local mode (a directory, or in memory) for local runs, a server for real ones. qdrant-client 1.13+.

Layout in ``qdrant_schema``: a memory is a point with a dense vector and a sparse vector of its stemmed,
hashed words (``qdrant_keywords``), which Qdrant weighs by ``Modifier.IDF`` (BM25-like, no model to
download); history is a second collection, the write-back ledger (turn records) a third, each scope's data
version (``MemoryStore.version``) a fourth. Every read filters by tenant, user, status, expiry, type, tags
and session inside the Qdrant query, never after it; a server indexes those payload keys.

Search is one round trip: ``query_batch_points`` runs the vector and the keyword query, each filtered and
limited to ``candidates``. Qdrant's fusion cannot apply our weights, so the two rankings are fused here by
``memory.ranking.score``, the reference the SQL stores reproduce: the ``min_similarity`` floor trims the
vector tail, ties go to newer ``created_at``, then id.

Qdrant has no transactions. A write stores the memory, then its event; ``add_many`` deletes what it wrote
if its events fail; ``delete`` scrubs the history before it removes the point. "One active entry per
content hash" is checked before writing, so two writers racing with the same text can both succeed (the
SQL stores refuse the second with a unique index). A write bumps the scope's version right after it
succeeded, not in a transaction with it: a crash (or an unreachable server) in between leaves the old
version, so a cache keyed by it can serve the data from before that write until the scope's next one.
``list`` and ``prune`` sort by two or three keys, which Qdrant cannot (its ``order_by`` takes one): they
read the keys of the matching points (filtered in Qdrant), sort here and fetch the page.
Local mode on disk admits one client per directory; share data through a server.
``scopes`` reads the versions collection (one point per scope). Maintenance leases need a conditional write,
which Qdrant lacks: local mode keeps them in a process-wide table (``qdrant_leases``; one process holds the
data), a server store lacks the ``leases`` capability and refuses to lease.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from memory import ranking as reference
from memory.errors import (
    AgentMemoryError,
    ConfigurationError,
    DuplicateContentError,
    MemoryNotFoundError,
    StoreError,
    StoreUnavailableError,
)
from memory.models import (
    EventKind,
    MemoryEntry,
    MemoryEvent,
    MemoryFilter,
    MemoryStatus,
    Ranking,
    Scope,
    SearchHit,
    SearchMode,
    SearchRequest,
)
from memory.stores import qdrant_keywords as keywords
from memory.stores import qdrant_leases as leases
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
    wait_past,
)
from memory.stores.qdrant_schema import (
    ACTIVE,
    DENSE,
    EVENT_INDEXES,
    MEMORY_INDEXES,
    SPARSE,
    TURN_INDEXES,
    VERSION_INDEXES,
    check_embedding,
    collection_config,
    empty,
    event_point,
    has_ids,
    index_schema,
    match,
    memory_filter,
    memory_point,
    models,
    now_us,
    scope_filter,
    to_entry,
    to_event,
    to_turn,
    turn_point,
    version_point,
    version_point_id,
)
from memory.turns import TurnRecord, TurnStatus

DEFAULT_PREFIX = "agent_memory"
DEFAULT_PORT = 6333
DIMENSIONS = 384
TIMEOUT_SECONDS = 10
PAGE = 1_000
_SCOPE_KEYS = ("tenant_id", "user_id")
# ``list``'s orders (memory.stores.base.LIST_ORDERS): the payload keys each sorts by, and its sort key.
LIST_ORDER_KEYS: dict[str, tuple[tuple[str, ...], Any]] = {
    "newest": (("id", "created_at"), lambda p: (-p["created_at"], p["id"])),
    "importance": (("id", "importance", "updated_at"), lambda p: (-p["importance"], -p["updated_at"], p["id"])),
}


def _translate(exc: Exception, where: str) -> AgentMemoryError:
    """A driver error as the matching ``memory.errors`` type; the caller raises it ``from exc``."""
    from qdrant_client.common.client_exceptions import QdrantException
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    status = getattr(exc, "status_code", None)
    if isinstance(exc, UnexpectedResponse) and status in (401, 403):
        return StoreUnavailableError(f"Qdrant at {where} refused the API key ({status}): check QDRANT_API_KEY")
    if isinstance(exc, UnexpectedResponse) and status not in (502, 503, 504):
        return StoreError(f"Qdrant error: {exc}")
    if isinstance(exc, ResponseHandlingException | UnexpectedResponse | QdrantException):
        cause = getattr(exc, "source", exc)
        return StoreUnavailableError(
            f"cannot reach Qdrant at {where} ({cause.__class__.__name__}: {cause}); "
            "check MEMORY_STORE_URL and that the server is up"
        )
    if isinstance(exc, RuntimeError | OSError):  # local mode: the client is closed, or the directory locked
        return StoreUnavailableError(
            f"cannot use the Qdrant local storage {where!r} ({exc}); check MEMORY_STORE_URL. Local mode lets "
            "one client at a time use a directory: to share one, run a Qdrant server (qdrant://host:6333)"
        )
    return StoreError(f"Qdrant rejected the request: {exc}")


class QdrantStore:
    """A ``MemoryStore`` in Qdrant. ``location`` is ``:memory:``, a directory, or an http(s) server URL."""

    capabilities = frozenset({"persistent", "statement_tracer"})

    def __init__(
        self,
        location: str = ":memory:",
        *,
        api_key: str | None = None,
        prefix: str = DEFAULT_PREFIX,
        dimensions: int = DIMENSIONS,
        tracer: Tracer | None = None,
    ) -> None:
        self.location = location
        self.api_key = api_key
        self.memories, self.events, self.turns = f"{prefix}_memories", f"{prefix}_events", f"{prefix}_turns"
        self.versions = f"{prefix}_versions"
        self.dimensions = dimensions
        self.tracer = tracer
        self.is_server = location.startswith(("http://", "https://"))
        self._client: Any = None
        self._lock = threading.RLock()
        self._lease_space = None if self.is_server else leases.space(location, prefix)
        if location == ":memory:":
            self.capabilities = frozenset({"statement_tracer", "leases"})
        elif not self.is_server:
            self.capabilities = frozenset({"persistent", "statement_tracer", "leases"})

    # -- connection ----------------------------------------------------------------------------------
    def open(self) -> None:
        with self._lock:
            if self._client is not None:
                return
            try:
                from qdrant_client import QdrantClient
            except ImportError as exc:
                raise ConfigurationError(
                    "MEMORY_STORE_URL names Qdrant but its driver is missing: run `pip install 'agent-memory[qdrant]'`"
                ) from exc
            try:
                if self.is_server:  # no I/O here: the collection checks below are the first requests
                    client = QdrantClient(
                        url=self.location, api_key=self.api_key, timeout=TIMEOUT_SECONDS, check_compatibility=False
                    )
                elif self.location == ":memory:":
                    client = QdrantClient(location=":memory:")
                else:  # calls are serialised by the lock, so any thread may use the local SQLite file
                    client = QdrantClient(path=self.location, force_disable_check_same_thread=True)
            except (RuntimeError, OSError, ValueError) as exc:
                raise _translate(exc, self.location) from exc
            self._client = client
            try:
                self._create(self.memories, MEMORY_INDEXES, vectors=True)
                self._create(self.events, EVENT_INDEXES, vectors=False)
                self._create(self.turns, TURN_INDEXES, vectors=False)
                self._create(self.versions, VERSION_INDEXES, vectors=False)
            except BaseException:
                self.close()
                raise

    def _create(self, name: str, indexes: Mapping[str, str], *, vectors: bool) -> None:
        if self._call("collection_exists", collection_name=name):
            return
        self._call("create_collection", collection_name=name, **collection_config(self.dimensions, vectors=vectors))
        for field, kind in indexes.items() if self.is_server else ():
            self._call("create_payload_index", collection_name=name, field_name=field, field_schema=index_schema(kind))

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                client, self._client = self._client, None
                client.close()

    def __enter__(self) -> QdrantStore:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(self, operation: str, **params: Any) -> Any:
        """One request to Qdrant: serialised, reported to the tracer, its errors translated."""
        from qdrant_client.common.client_exceptions import QdrantException
        from qdrant_client.http.exceptions import ApiException

        with self._lock:
            self.open()
            if self.tracer is not None:
                self.tracer(operation, params)
            try:
                return getattr(self._client, operation)(**params)
            except (ApiException, QdrantException, RuntimeError, OSError, ValueError) as exc:
                raise _translate(exc, self.location) from exc

    def _scroll(self, name: str, query_filter: Any, fields: Sequence[str] | bool = True, limit: int = 0) -> list:
        """The points matching ``query_filter``: at most ``limit``, or all of them page by page."""
        points: list[Any] = []
        offset = None
        while True:
            page, offset = self._call(
                "scroll", collection_name=name, scroll_filter=query_filter, limit=limit or PAGE, offset=offset,
                with_payload=fields if isinstance(fields, bool) else list(fields),
            )  # fmt: skip
            points += page
            if offset is None or limit:
                return points

    def _find(self, query_filter: Any, limit: int = 1) -> list[MemoryEntry]:
        return [to_entry(point.payload) for point in self._scroll(self.memories, query_filter, limit=limit)]

    def _record(self, events: Sequence[Any]) -> None:
        self._call("upsert", collection_name=self.events, points=list(events), wait=True)

    def _check_unique(self, scope: Scope, entries: Sequence[MemoryEntry], *, updating: str | None = None) -> None:
        """Raise unless ``entries`` may be written to ``scope``: new ids, no active content twice."""
        hashes = [e.content_hash for e in entries if e.status is MemoryStatus.ACTIVE]
        new_ids = [e.id for e in entries if e.id != updating]
        if len(set(hashes)) < len(hashes):
            raise DuplicateContentError("two memories of this batch have the same content")
        if len(set(new_ids)) < len(new_ids):
            raise StoreError("two memories of this batch have the same id")
        clashes = [has_ids(scope, new_ids)] if new_ids else []
        if hashes:
            clashes.append(models().Filter(must=[match("content_hash", hashes), match("status", ACTIVE)]))
        if not clashes:  # an empty ``should`` would match every point
            return
        for point in self._scroll(self.memories, scope_filter(scope, models().Filter(should=clashes)), ["id"]):
            if point.payload["id"] in new_ids:
                raise StoreError(f"a memory with id {point.payload['id']!r} already exists for this user")
            if point.payload["id"] != updating:
                raise DuplicateContentError("an active memory of this user has the same content", point.payload["id"])

    # -- writes --------------------------------------------------------------------------------------
    def add(self, entry: MemoryEntry) -> MemoryEntry:
        return self.add_many([entry])[0]

    def add_many(self, entries: Sequence[MemoryEntry]) -> list[MemoryEntry]:
        points = [memory_point(entry, self.dimensions) for entry in entries]
        by_scope: dict[Scope, list[MemoryEntry]] = {}
        for entry in entries:
            by_scope.setdefault(entry.scope, []).append(entry)
        with self._lock:
            for scope, group in by_scope.items():
                self._check_unique(scope, group)
            if not points:
                return []
            self._call("upsert", collection_name=self.memories, points=points, wait=True)
            try:
                self._record(
                    [event_point(e.scope, e.id, EventKind.ADDED, e.created_at, content=e.content) for e in entries]
                )
            except StoreError:  # no transaction to roll back: take the memories out again
                self._call("delete", collection_name=self.memories, points_selector=[p.id for p in points], wait=True)
                raise
            self._bump(by_scope)
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
        with self._lock:
            before = self.get(scope, memory_id)
            if before is None:
                raise MemoryNotFoundError(f"no memory {memory_id!r} for this user")
            after, event_fields = apply_changes(before, changes, related_id=related_id, details=details)
            point = memory_point(after, self.dimensions)
            if (after.content_hash, after.status) != (before.content_hash, before.status):
                self._check_unique(scope, [after], updating=memory_id)
            self._call("upsert", collection_name=self.memories, points=[point], wait=True)
            self._record([event_point(scope, memory_id, event, after.updated_at, **event_fields)])
            self._bump([scope])
        return after

    def delete(self, scope: Scope, memory_id: str) -> None:
        with self._lock:
            if self.get(scope, memory_id) is None:
                raise MemoryNotFoundError(f"no memory {memory_id!r} for this user")
            # Scrub the history first: a failure past this point never leaves the text readable there.
            redacted = {"content": None, "previous_content": None, "details": json.dumps({"redacted": True})}
            events = scope_filter(scope, match("memory_id", memory_id))
            self._call("set_payload", collection_name=self.events, payload=redacted, points=events, wait=True)
            selector = models().FilterSelector(filter=scope_filter(scope, has_ids(scope, [memory_id])))
            self._call("delete", collection_name=self.memories, points_selector=selector, wait=True)
            self._record([event_point(scope, memory_id, EventKind.DELETED, time.time())])
            self._bump([scope])

    def forget_user(self, scope: Scope) -> int:
        with self._lock:
            removed = self.count(scope, MemoryFilter(include_inactive=True, include_expired=True))
            forgotten = self._read_version(scope)
            for name in (self.memories, self.events, self.turns, self.versions):  # the version last
                selector = models().FilterSelector(filter=scope_filter(scope))
                self._call("delete", collection_name=name, points_selector=selector, wait=True)
            if self._lease_space is not None:
                leases.release_lease(self._lease_space, scope)
            if forgotten is not None:  # the next write starts the version again from the clock: past this
                wait_past(forgotten, now_us)
        return removed

    def prune(self, scope: Scope, keep_top: int, *, ranking: Ranking, now: float) -> list[str]:
        check_keep_top(keep_top)

        def retention(p: Mapping[str, Any]) -> float:
            recency = reference.recency(p["updated_at"], now, ranking.recency_half_life_days)
            return reference.retention(p["importance"], recency)

        with self._lock:
            fields = ["id", "importance", "updated_at", "created_at"]
            keys = [p.payload for p in self._scroll(self.memories, memory_filter(scope, None, now), fields)]
            keys.sort(key=lambda p: (-retention(p), -p["created_at"], p["id"]))
            ids = [p["id"] for p in keys[keep_top:]]
            if ids:
                pruned, points = {"status": "pruned", "updated_at": now}, scope_filter(scope, has_ids(scope, ids))
                self._call("set_payload", collection_name=self.memories, payload=pruned, points=points, wait=True)
                self._record(
                    [event_point(scope, i, EventKind.PRUNED, now, details={"keep_top": keep_top}) for i in ids]
                )
                self._bump([scope])
        return ids

    # -- reads ---------------------------------------------------------------------------------------
    def get(self, scope: Scope, memory_id: str) -> MemoryEntry | None:
        found = self._find(scope_filter(scope, has_ids(scope, [memory_id])))
        return found[0] if found else None

    def get_by_hash(self, scope: Scope, content_hash: str) -> MemoryEntry | None:
        found = self._find(scope_filter(scope, match("content_hash", content_hash), match("status", ACTIVE)))
        return found[0] if found else None

    def list(
        self,
        scope: Scope,
        filters: MemoryFilter | None = None,
        *,
        limit: int = 50,
        offset: int = 0,
        order_by: str = "newest",
    ) -> list[MemoryEntry]:
        fields, sort_key = LIST_ORDER_KEYS[check_order_by(order_by)]
        keys = [p.payload for p in self._scroll(self.memories, memory_filter(scope, filters, time.time()), fields)]
        keys.sort(key=sort_key)
        page = [p["id"] for p in keys[offset : offset + limit]]
        if not page:
            return []
        by_id = {e.id: e for e in self._find(scope_filter(scope, has_ids(scope, page)), limit=len(page))}
        return [by_id[memory_id] for memory_id in page if memory_id in by_id]

    def count(self, scope: Scope, filters: MemoryFilter | None = None) -> int:
        query_filter = memory_filter(scope, filters, time.time())
        return self._call("count", collection_name=self.memories, count_filter=query_filter, exact=True).count

    def search(self, scope: Scope, request: SearchRequest) -> list[SearchHit]:
        ranking, now = request.ranking, request.now
        query_filter = memory_filter(scope, dataclasses.replace(request.filters, include_inactive=False), now)
        queries = []  # (vector name, query, filter)
        if request.mode is not SearchMode.KEYWORD and request.embedding is not None:
            check_embedding(request.embedding, self.dimensions)
            model = request.embedding_model
            same_model = empty("embedding_model") if model is None else match("embedding_model", model)
            queries.append((DENSE, request.embedding.tolist(), models().Filter(must=[query_filter, same_model])))
        if request.mode is not SearchMode.VECTOR and (terms := keywords.query_terms(request.text)):
            indices, values = keywords.sparse(terms, saturate=False)
            queries.append((SPARSE, models().SparseVector(indices=indices, values=values), query_filter))
        if not queries:
            return []
        requests = [
            models().QueryRequest(using=using, query=query, filter=flt, limit=ranking.candidates, with_payload=True)
            for using, query, flt in queries
        ]
        responses = self._call("query_batch_points", collection_name=self.memories, requests=requests)
        signals: dict[str, dict[str, Any]] = {}
        for (using, _, _), response in zip(queries, responses, strict=True):
            ordered = sorted(response.points, key=lambda p: (-p.score, p.payload["id"]))
            for rank, point in enumerate(ordered, 1):
                if using == DENSE and point.score < ranking.min_similarity:
                    break  # the floor trims the tail of the vector candidates; the ranks above it stand
                hit = signals.setdefault(point.payload["id"], {"payload": point.payload})
                hit |= {"vector_rank": rank, "similarity": point.score} if using == DENSE else {"keyword_rank": rank}
        hits = []
        for hit in signals.values():
            entry = to_entry(hit.pop("payload"))
            hits.append(
                SearchHit(
                    entry=entry,
                    score=reference.score(
                        vector_rank=hit.get("vector_rank"), keyword_rank=hit.get("keyword_rank"),
                        importance=entry.importance, updated_at=entry.updated_at, now=now, ranking=ranking,
                    ),
                    recency=reference.recency(entry.updated_at, now, ranking.recency_half_life_days),
                    **hit,
                )
            )  # fmt: skip
        hits.sort(key=lambda h: (-h.score, -h.entry.created_at, h.entry.id))
        return hits[: request.top_k]

    def history(self, scope: Scope, memory_id: str | None = None, *, limit: int = 100) -> list[MemoryEvent]:
        query_filter = scope_filter(scope, *([] if memory_id is None else [match("memory_id", memory_id)]))
        points, _ = self._call(
            "scroll", collection_name=self.events, scroll_filter=query_filter, limit=limit,
            order_by=models().OrderBy(key="seq", direction=models().Direction.ASC),
        )  # fmt: skip
        return [to_event(point.payload) for point in points]

    # -- versions ------------------------------------------------------------------------------------
    def version(self, scope: Scope) -> int | None:
        with self._lock:
            found = self._read_version(scope)
            if found is None and self._scroll(self.memories, scope_filter(scope), ["id"], limit=1):
                return self._bump([scope])[scope]  # memories stored before versions were: one starts now
            return found

    def _read_version(self, scope: Scope) -> int | None:
        """The scope's version as stored, ``None`` when there is none."""
        only = models().HasIdCondition(has_id=[version_point_id(scope)])
        found = self._scroll(self.versions, scope_filter(scope, only), ["version"], limit=1)
        return found[0].payload["version"] if found else None

    def _bump(self, scopes: Iterable[Scope]) -> dict[Scope, int]:
        """Set each scope's version to max(previous + 1, now in microseconds); returns the new versions.

        Called right after a write succeeded: Qdrant has no transaction to share with it (module docstring).
        Under the store's lock, so the bumps of this process never interleave.
        """
        with self._lock:
            versions = {}
            for scope in dict.fromkeys(scopes):
                previous = self._read_version(scope)
                versions[scope] = now_us() if previous is None else max(previous + 1, now_us())
            if versions:
                points = [version_point(scope, version) for scope, version in versions.items()]
                self._call("upsert", collection_name=self.versions, points=points, wait=True)
            return versions

    # -- maintenance ---------------------------------------------------------------------------------
    def scopes(self, *, after: Scope | None = None, limit: int = 100) -> list[Scope]:
        # Qdrant orders by one numeric key, and ids are text: read every scope's version point (one per scope,
        # tenant and user only), sort here, and keep the page after ``after``.
        start, limit = check_scopes_query(after, limit)
        found = {(p.payload["tenant_id"], p.payload["user_id"]) for p in self._scroll(self.versions, None, _SCOPE_KEYS)}
        page = sorted(key for key in found if key > start)[:limit]
        return [Scope(user_id=user_id, tenant_id=tenant_id) for tenant_id, user_id in page]

    def try_lease(self, scope: Scope, owner: str, ttl_seconds: float) -> bool:
        ttl_seconds = check_lease(owner, ttl_seconds)
        return leases.try_lease(self._leasing(), scope, owner, ttl_seconds)

    def release_lease(self, scope: Scope, owner: str) -> None:
        leases.release_lease(self._leasing(), scope, check_owner(owner))

    def _leasing(self) -> str:
        """The lease table's key for this store's data; a server cannot lease (``qdrant_leases``)."""
        if self._lease_space is None:
            raise ConfigurationError(
                "a Qdrant server store cannot take maintenance leases (Qdrant has no conditional writes, so two "
                "processes could both take one): check `'leases' in store.capabilities` and lease elsewhere "
                "(Redis), or use Qdrant local mode (qdrant+local://) or another MEMORY_STORE_URL"
            )
        return self._lease_space

    # -- turn records --------------------------------------------------------------------------------
    def _turns(self, scope: Scope, turn_ids: Sequence[str], fields: Sequence[str] | bool = True) -> list[Any]:
        return self._scroll(self.turns, scope_filter(scope, has_ids(scope, turn_ids)), fields, limit=len(turn_ids))

    def save_turn(self, record: TurnRecord) -> TurnRecord:
        with self._lock:  # no upsert that keeps a field in Qdrant: read the first save's created_at, then write
            before = self._turns(record.scope, [record.turn_id], ["created_at"])
            point = turn_point(record, before[0].payload["created_at"] if before else record.created_at)
            self._call("upsert", collection_name=self.turns, points=[point], wait=True)
        return to_turn(point.payload)

    def get_turn(self, scope: Scope, turn_id: str) -> TurnRecord | None:
        found = self._turns(scope, [check_turn_id(turn_id)])
        return to_turn(found[0].payload) if found else None

    def list_turns(
        self, scope: Scope, statuses: Iterable[TurnStatus] = PENDING_OR_FAILED, *, limit: int = 100
    ) -> list[TurnRecord]:
        values, limit = check_turn_query(statuses, limit)
        if not values:  # no status asked for: nothing matches (and no MatchAny([]) is sent)
            return []
        # Two sort keys, as in ``list``: read the keys of the matching records, sort here, fetch the page.
        keys = self._scroll(self.turns, scope_filter(scope, match("status", values)), ["turn_id", "created_at"])
        keys.sort(key=lambda p: (p.payload["created_at"], p.payload["turn_id"]))
        page = [p.payload["turn_id"] for p in keys[:limit]]
        if not page:
            return []
        by_id = {t.turn_id: t for t in (to_turn(p.payload) for p in self._turns(scope, page))}
        return [by_id[turn_id] for turn_id in page if turn_id in by_id]


def from_url(url: str, *, tracer: Tracer | None = None) -> QdrantStore:
    """The store of ``qdrant://host:6333`` (``qdrants://`` for TLS, API key from ``QDRANT_API_KEY``) or of
    local mode: ``qdrant+local:///relative/dir``, ``qdrant+local:////absolute/dir``, ``qdrant+local://``
    (in memory). ``?prefix=NAME`` names the collections ``NAME_memories``, ``NAME_events``, ``NAME_turns`` and
    ``NAME_versions``."""
    import os
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(url)
    options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    if set(options) - {"prefix"}:
        raise ConfigurationError(f"MEMORY_STORE_URL={url!r}: the only option of a Qdrant URL is ?prefix=NAME")
    prefix = options.get("prefix", DEFAULT_PREFIX)
    if parts.scheme.lower() == "qdrant+local":
        path = url.split("://", 1)[1].split("?", 1)[0]
        if path in ("", "/", "/:memory:"):
            return QdrantStore(":memory:", prefix=prefix, tracer=tracer)
        if not path.startswith("/"):
            raise ConfigurationError(
                f"MEMORY_STORE_URL={url!r}: a local Qdrant URL has three slashes before a relative directory "
                "(qdrant+local:///qdrant_data) and four before an absolute one (qdrant+local:////data/qdrant)"
            )
        return QdrantStore(path[1:], prefix=prefix, tracer=tracer)
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise ConfigurationError(f"MEMORY_STORE_URL: the port of a Qdrant URL must be a number ({exc})") from exc
    if not parts.hostname or parts.username or parts.password:
        raise ConfigurationError(
            "MEMORY_STORE_URL: name the Qdrant server as in qdrant://localhost:6333 "
            "(its API key goes in QDRANT_API_KEY, never in the URL)"
        )
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    scheme = "https" if parts.scheme.lower() == "qdrants" else "http"
    location = f"{scheme}://{host}:{port}{parts.path.rstrip('/')}"
    return QdrantStore(location, api_key=os.environ.get("QDRANT_API_KEY") or None, prefix=prefix, tracer=tracer)
