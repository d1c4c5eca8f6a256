"""How memories and their history look in Qdrant: collections, point ids, payloads, indexes and filters.

``{prefix}_memories`` holds one point per memory: the named dense vector ``embedding`` (cosine) and the
named sparse vector ``keywords`` (``qdrant_keywords``, weighed by ``Modifier.IDF``). Its id is a UUID
derived from tenant, user and memory id, so no scope can address or overwrite another scope's point.
The payload keeps every field of the entry, the memory id among them, and the embedding's float32 bytes:
Qdrant normalises cosine vectors, and ``get`` returns the embedding exactly as it was written.
``{prefix}_events`` holds the history: points without vectors, ordered by ``seq``, a per-process
monotonic microsecond clock that is also the event's id. ``{prefix}_turns`` holds the write-back ledger
(``memory.turns``): points without vectors, one per turn, its id derived from tenant, user and turn id
like a memory's, its payload the record as ``memory.stores.base.turn_params`` writes it for every store.
``{prefix}_versions`` holds each scope's data version (``MemoryStore.version``): one point without vectors
per scope, its id derived from tenant and user, its payload tenant, user and the version (an integer).

``qdrant_client`` is imported on first use (``models()``): it is an optional dependency.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from memory.errors import InvalidInputError
from memory.models import EventKind, MemoryEntry, MemoryEvent, MemoryFilter, MemoryStatus, Scope
from memory.stores import qdrant_keywords as keywords
from memory.stores.base import turn_from_params, turn_params
from memory.turns import TurnRecord

DENSE, SPARSE = "embedding", "keywords"
ACTIVE = MemoryStatus.ACTIVE.value
_NAMESPACE = uuid.UUID("5d0f6a52-27a4-4f55-9a4c-5bb3f1c0e6a9")
# Every payload key a filter names, with its index (made with the collection, on a server only: local
# mode has no payload indexes). Tenant and user are tenant indexes: Qdrant co-locates each user's points.
MEMORY_INDEXES = {"tenant_id": "tenant", "user_id": "tenant", "expires_at": "float"} | dict.fromkeys(
    ("memory_type", "status", "tags", "session_id", "content_hash", "embedding_model"), "keyword"
)
EVENT_INDEXES = {"tenant_id": "tenant", "user_id": "tenant", "memory_id": "keyword", "seq": "integer"}
TURN_INDEXES = {"tenant_id": "tenant", "user_id": "tenant", "status": "keyword"}
VERSION_INDEXES = {"tenant_id": "tenant", "user_id": "tenant"}

_seq_lock = threading.Lock()
_last_seq = 0


def models() -> Any:
    from qdrant_client import models

    return models


def next_seq() -> int:
    """Event ids: microseconds since the epoch, strictly increasing within the process."""
    global _last_seq
    with _seq_lock:
        _last_seq = max(_last_seq + 1, time.time_ns() // 1_000)
        return _last_seq


def point_id(scope: Scope, memory_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{scope.tenant_id}\x1f{scope.user_id}\x1f{memory_id}"))


def now_us() -> int:
    """The clock versions follow: microseconds since the epoch."""
    return time.time_ns() // 1_000


def version_point_id(scope: Scope) -> str:
    """The id of the scope's version point (ids hold no control character, so the join is unambiguous)."""
    return str(uuid.uuid5(_NAMESPACE, f"{scope.tenant_id}\x1f{scope.user_id}"))


def version_point(scope: Scope, version: int) -> Any:
    payload = {"tenant_id": scope.tenant_id, "user_id": scope.user_id, "version": version}
    return models().PointStruct(id=version_point_id(scope), vector={}, payload=payload)


def collection_config(dimensions: int, *, vectors: bool) -> dict[str, Any]:
    if not vectors:  # history events, turn records and versions are payload only
        return {"vectors_config": {}}
    return {
        "vectors_config": {DENSE: models().VectorParams(size=dimensions, distance=models().Distance.COSINE)},
        "sparse_vectors_config": {SPARSE: models().SparseVectorParams(modifier=models().Modifier.IDF)},
    }


def index_schema(kind: str) -> Any:
    if kind == "tenant":
        return models().KeywordIndexParams(type="keyword", is_tenant=True)
    if kind == "integer":  # ``order_by`` needs a range index
        return models().IntegerIndexParams(type="integer", lookup=False, range=True)
    return models().PayloadSchemaType(kind)


# -- filters: every read puts them in the query itself -------------------------------------------------
def match(key: str, value: Any) -> Any:
    m = models()
    condition = m.MatchAny(any=list(value)) if isinstance(value, list | tuple) else m.MatchValue(value=value)
    return m.FieldCondition(key=key, match=condition)


def empty(key: str) -> Any:
    return models().IsEmptyCondition(is_empty=models().PayloadField(key=key))


def has_ids(scope: Scope, memory_ids: Sequence[str]) -> Any:
    return models().HasIdCondition(has_id=[point_id(scope, memory_id) for memory_id in memory_ids])


def scope_filter(scope: Scope, *conditions: Any) -> Any:
    """The scope and ``conditions``. A non-string id is refused here: in Qdrant the integer 42 would
    silently match nothing stored under "42"."""
    for name in ("user_id", "tenant_id"):
        if not isinstance(value := getattr(scope, name), str):
            raise InvalidInputError(f"{name} must be a string, got {type(value).__name__} {value!r}")
    return models().Filter(must=[match("tenant_id", scope.tenant_id), match("user_id", scope.user_id), *conditions])


def memory_filter(scope: Scope, filters: MemoryFilter | None, now: float) -> Any:
    filters, conditions = filters or MemoryFilter(), []
    if not filters.include_inactive:
        conditions.append(match("status", ACTIVE))
    if not filters.include_expired:
        unexpired = models().FieldCondition(key="expires_at", range=models().Range(gt=now))
        conditions.append(models().Filter(should=[empty("expires_at"), unexpired]))
    if filters.memory_types:
        conditions.append(match("memory_type", [t.value for t in filters.memory_types]))
    if filters.tags:
        conditions.append(match("tags", filters.tags))
    if filters.session_id is not None:
        conditions.append(match("session_id", filters.session_id))
    return scope_filter(scope, *conditions)


# -- points and payloads -----------------------------------------------------------------------------
def check_embedding(embedding: np.ndarray | None, dimensions: int) -> None:
    if embedding is None:
        raise InvalidInputError("a stored memory needs an embedding; Memory.remember computes it")
    if embedding.shape[0] != dimensions:
        raise InvalidInputError(f"embedding has {embedding.shape[0]} dimensions; this store holds {dimensions}")


def memory_point(entry: MemoryEntry, dimensions: int) -> Any:
    check_embedding(entry.embedding, dimensions)
    indices, values = keywords.sparse(keywords.document_terms(entry.content), saturate=True)
    embedding = base64.b64encode(entry.embedding.astype(np.float32).tobytes()).decode("ascii")
    metadata = json.dumps(entry.metadata, default=str)  # as SQLite keeps it: any value, as JSON
    payload = {**entry.as_dict(), "content_hash": entry.content_hash, "metadata": metadata, "embedding": embedding}
    vectors = {DENSE: entry.embedding.tolist(), SPARSE: models().SparseVector(indices=indices, values=values)}
    return models().PointStruct(id=point_id(entry.scope, entry.id), vector=vectors, payload=payload)


def to_entry(payload: Mapping[str, Any]) -> MemoryEntry:
    plain = {k: v for k, v in payload.items() if k not in ("content_hash", "metadata", "embedding", "tags")}
    embedding = np.frombuffer(base64.b64decode(payload["embedding"]), dtype=np.float32)
    return MemoryEntry(
        **plain, tags=tuple(payload["tags"]), metadata=json.loads(payload["metadata"]), embedding=embedding
    )


def event_point(scope: Scope, memory_id: str, kind: EventKind, now: float, **fields: Any) -> Any:
    payload = {
        "tenant_id": scope.tenant_id, "user_id": scope.user_id, "memory_id": memory_id, "seq": next_seq(),
        "kind": kind.value, "created_at": now, "content": fields.get("content"),
        "previous_content": fields.get("previous_content"), "related_id": fields.get("related_id"),
        "details": json.dumps(fields.get("details") or {}),
    }  # fmt: skip
    return models().PointStruct(id=str(uuid.uuid4()), vector={}, payload=payload)


def to_event(payload: Mapping[str, Any]) -> MemoryEvent:
    fields = {k: payload.get(k) for k in ("memory_id", "created_at", "content", "previous_content", "related_id")}
    details = json.loads(payload["details"])
    return MemoryEvent(id=payload["seq"], kind=EventKind(payload["kind"]), details=details, **fields)


def turn_point(record: TurnRecord, created_at: float) -> Any:
    """The point of ``record``, kept with ``created_at`` (the first save's, when the turn was saved before)."""
    payload = {**turn_params(record), "created_at": created_at}
    return models().PointStruct(id=point_id(record.scope, record.turn_id), vector={}, payload=payload)


def to_turn(payload: Mapping[str, Any]) -> TurnRecord:
    return turn_from_params(payload)
