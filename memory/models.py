"""The memory entry and the small value types that travel with it.

These are plain dataclasses that validate themselves on construction, so an invalid entry cannot exist:
a store never has to re-check what it is handed, and a bad argument fails where the caller made it,
with an ``InvalidInputError`` that names the field.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
import unicodedata
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

import numpy as np

from memory.errors import InvalidInputError

DEFAULT_TENANT = "default"
EMBEDDING_DIMENSIONS = 384
MAX_ID_CHARS = 256
MAX_TAGS = 32
MAX_TAG_CHARS = 64


class MemoryType(StrEnum):
    """What kind of thing a memory records; used to filter recall and by consolidation."""

    PREFERENCE = "preference"
    FACT = "fact"
    TASK = "task"
    DECISION = "decision"
    SUMMARY = "summary"


class MemoryStatus(StrEnum):
    """Only ``active`` memories are recalled; the others are kept so nothing is silently lost."""

    ACTIVE = "active"
    SUPERSEDED = "superseded"  # replaced by a correction; ``superseded_by`` points at the new entry
    PRUNED = "pruned"  # archived by ``prune`` to keep the user under a cap


class SearchMode(StrEnum):
    """Which signals a search uses. ``hybrid`` fuses both; the others exist to measure and debug."""

    HYBRID = "hybrid"
    VECTOR = "vector"
    KEYWORD = "keyword"


class EventKind(StrEnum):
    """What happened to a memory, as recorded in its history."""

    ADDED = "added"
    MERGED = "merged"  # an exact or near duplicate was folded into this entry
    UPDATED = "updated"
    SUPERSEDED = "superseded"
    PRUNED = "pruned"
    DELETED = "deleted"


class RememberAction(StrEnum):
    ADDED = "added"
    MERGED = "merged"
    SUPERSEDED = "superseded"


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# What no store can keep: NUL (Postgres text and jsonb reject it) and lone UTF-16 surrogates (which a JSON
# body can carry as "\ud800" but no UTF-8 encoder accepts). Checked wherever text enters the library.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
MAX_METADATA_DEPTH = 16
MAX_METADATA_BYTES = 2**20  # a bound, not a budget: the memory tool keeps a whole file's text here


def validate_text(name: str, value: str) -> str:
    """``value`` unchanged if every store can keep it, else an ``InvalidInputError`` that names ``name``."""
    found = _UNSTORABLE.search(value)
    if found is not None:
        what = "a NUL character" if found.group() == "\x00" else "a lone surrogate (not valid Unicode)"
        raise InvalidInputError(f"{name} contains {what} at position {found.start()}; remove it")
    return value


def validate_metadata(metadata: object) -> dict[str, Any]:
    """A JSON object of bounded depth and size whose keys and strings every store can keep.

    Checked where metadata is written (``Memory.remember`` and ``update``), not where an entry is built, so
    a row stored before these limits still reads back."""
    if not isinstance(metadata, Mapping):
        raise InvalidInputError("metadata must be a JSON object (a dict)")

    def check(value: object, depth: int) -> None:
        if depth > MAX_METADATA_DEPTH:
            raise InvalidInputError(f"metadata nests deeper than {MAX_METADATA_DEPTH} levels")
        if isinstance(value, str):
            validate_text("metadata", value)
        elif isinstance(value, Mapping):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise InvalidInputError(f"metadata keys must be strings, got {key!r}")
                validate_text("metadata key", key)
                check(item, depth + 1)
        elif isinstance(value, list | tuple):
            for item in value:
                check(item, depth + 1)
        elif isinstance(value, float) and not math.isfinite(value):
            raise InvalidInputError("metadata numbers must be finite (JSON has no NaN or Infinity)")
        elif value is not None and not isinstance(value, bool | int | float):
            raise InvalidInputError(f"metadata values must be JSON (text, number, bool, null, list, object): {value!r}")

    check(metadata, 0)
    try:
        size = len(json.dumps(metadata, ensure_ascii=False).encode())
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"metadata must be JSON: {exc}") from None
    if size > MAX_METADATA_BYTES:
        raise InvalidInputError(f"metadata is {size} bytes as JSON; the limit is {MAX_METADATA_BYTES}")
    return dict(metadata)


def _identifier(name: str, value: object) -> str:
    """Validate a tenant, user or session id: a non-empty string without control characters."""
    if not isinstance(value, str):
        raise InvalidInputError(
            f"{name} must be a string, got {type(value).__name__} {value!r}; "
            f"pass str({value!r}) if that is the id you mean"
        )
    if not value.strip():
        raise InvalidInputError(f"{name} must be a non-empty string")
    if len(value) > MAX_ID_CHARS:
        raise InvalidInputError(f"{name} is {len(value)} characters long; the limit is {MAX_ID_CHARS}")
    if _CONTROL.search(value):
        raise InvalidInputError(f"{name} must not contain control characters")
    return validate_text(name, value)


def validate_importance(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInputError(f"importance must be a number between 0 and 1, got {value!r}")
    if not 0.0 <= float(value) <= 1.0:
        raise InvalidInputError(f"importance must be between 0 and 1, got {value}")
    return float(value)


_E = TypeVar("_E", bound=StrEnum)


def _choice(kind: type[_E], label: str, value: object) -> _E:
    try:
        return kind(value)
    except ValueError:
        accepted = ", ".join(member.value for member in kind)
        raise InvalidInputError(f"unknown {label} {value!r}; use one of: {accepted}") from None


def validate_memory_type(value: object) -> MemoryType:
    return _choice(MemoryType, "memory type", value)


def validate_status(value: object) -> MemoryStatus:
    return _choice(MemoryStatus, "status", value)


def validate_memory_types(values: Iterable[str]) -> tuple[MemoryType, ...]:
    if isinstance(values, str):
        raise InvalidInputError("memory_types must be a list of types, not one string")
    return tuple(validate_memory_type(value) for value in values)


def validate_tags(tags: Iterable[str] | None) -> tuple[str, ...]:
    if tags is None:
        return ()
    if isinstance(tags, str):
        raise InvalidInputError("tags must be a list of strings, not one string")
    cleaned: list[str] = []
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip():
            raise InvalidInputError(f"each tag must be a non-empty string, got {tag!r}")
        tag = tag.strip().lower()
        if len(tag) > MAX_TAG_CHARS or _CONTROL.search(tag):
            raise InvalidInputError(f"tag {tag[:20]!r}... must be at most {MAX_TAG_CHARS} printable characters")
        validate_text("tag", tag)
        if tag not in cleaned:
            cleaned.append(tag)
    if len(cleaned) > MAX_TAGS:
        raise InvalidInputError(f"at most {MAX_TAGS} tags per memory, got {len(cleaned)}")
    return tuple(cleaned)


def normalize_content(content: object) -> str:
    """Collapse whitespace and apply NFC so the same text always hashes the same."""
    if not isinstance(content, str):
        raise InvalidInputError(f"content must be a string, got {type(content).__name__}")
    text = " ".join(unicodedata.normalize("NFC", validate_text("content", content)).split())
    if not text:
        raise InvalidInputError("content must not be empty")
    return text


def content_hash(content: str) -> str:
    """The exact-duplicate key: case and trailing punctuation do not make a new memory."""
    key = content.casefold().rstrip(" .!?;,")
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def as_embedding(vector: Sequence[float] | np.ndarray | None) -> np.ndarray | None:
    if vector is None:
        return None
    array = np.asarray(vector, dtype=np.float32)
    if array.ndim != 1 or array.shape[0] == 0 or not np.all(np.isfinite(array)):
        raise InvalidInputError(f"embedding must be a flat list of finite floats, got shape {array.shape}")
    return array


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose memories a call may touch. Every store call takes one; nothing crosses it."""

    user_id: str
    tenant_id: str = DEFAULT_TENANT

    def __post_init__(self) -> None:
        _identifier("user_id", self.user_id)
        _identifier("tenant_id", self.tenant_id)


@dataclass(slots=True)
class MemoryEntry:
    """One remembered thing about one user. Timestamps are UNIX seconds (UTC)."""

    user_id: str
    content: str
    memory_type: MemoryType = MemoryType.FACT
    importance: float = 0.5
    tenant_id: str = DEFAULT_TENANT
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    session_id: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: float = field(default_factory=time.time)
    updated_at: float | None = None
    expires_at: float | None = None
    embedding: np.ndarray | None = field(default=None, compare=False, repr=False)
    embedding_model: str | None = None
    status: MemoryStatus = MemoryStatus.ACTIVE
    superseded_by: str | None = None

    def __post_init__(self) -> None:
        _identifier("user_id", self.user_id)
        _identifier("tenant_id", self.tenant_id)
        _identifier("id", self.id)
        if self.session_id is not None:
            _identifier("session_id", self.session_id)
        self.content = normalize_content(self.content)
        self.memory_type = validate_memory_type(self.memory_type)
        self.importance = validate_importance(self.importance)
        self.tags = validate_tags(self.tags)
        if not isinstance(self.metadata, Mapping):  # depth and size are checked on writes: validate_metadata
            raise InvalidInputError("metadata must be a JSON object (a dict)")
        self.metadata = dict(self.metadata)
        self.status = validate_status(self.status)
        self.embedding = as_embedding(self.embedding)
        if self.updated_at is None:
            self.updated_at = self.created_at
        # Microseconds: the finest time Postgres keeps, so an entry reads back exactly as it was written.
        self.created_at = round(self.created_at, 6)
        self.updated_at = round(self.updated_at, 6)
        if self.expires_at is not None:
            self.expires_at = round(self.expires_at, 6)
        if self.expires_at is not None and self.expires_at <= self.created_at:
            raise InvalidInputError("expires_at must be later than created_at")

    @property
    def scope(self) -> Scope:
        return Scope(user_id=self.user_id, tenant_id=self.tenant_id)

    @property
    def content_hash(self) -> str:
        return content_hash(self.content)

    def is_expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view (no embedding: it is large and useless outside the store)."""
        return {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "user_id": self.user_id,
            "content": self.content,
            "memory_type": self.memory_type.value,
            "importance": self.importance,
            "tags": list(self.tags),
            "metadata": self.metadata,
            "session_id": self.session_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "expires_at": self.expires_at,
            "status": self.status.value,
            "superseded_by": self.superseded_by,
            "embedding_model": self.embedding_model,
        }


@dataclass(frozen=True, slots=True)
class MemoryFilter:
    """Narrows list and search. ``tags`` matches entries having any of the given tags."""

    memory_types: tuple[MemoryType, ...] = ()
    tags: tuple[str, ...] = ()
    session_id: str | None = None
    include_inactive: bool = False  # list only: superseded and pruned entries too
    include_expired: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "memory_types", validate_memory_types(self.memory_types))
        object.__setattr__(self, "tags", validate_tags(self.tags))
        if self.session_id is not None:
            _identifier("session_id", self.session_id)


@dataclass(frozen=True, slots=True)
class Ranking:
    """How a hybrid search turns ranks into one score (see ``memory.ranking`` for the formula).

    The defaults (``rrf_k`` 10, keyword ranks weighted twice the vector ranks) are what measured best on LoCoMo
    (README, Benchmarks): at ``rrf_k`` 60 with equal weights the fused top 5 was worse than keyword search alone.
    """

    rrf_k: int = 10
    candidates: int = 50
    importance_weight: float = 0.1
    recency_weight: float = 0.05
    recency_half_life_days: float = 30.0
    min_similarity: float = -1.0  # vector candidates below this cosine do not count as matches
    vector_weight: float = 1.0  # of a vector rank's 1 / (k + rank) in the fusion
    keyword_weight: float = 2.0  # of a keyword rank's

    def __post_init__(self) -> None:
        # Floats, so that SQL never divides integers (SQLite's 1 / 12 is 0).
        for name in ("vector_weight", "keyword_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < math.inf:
                raise InvalidInputError(f"{name} must be a number >= 0, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.vector_weight + self.keyword_weight <= 0.0:
            raise InvalidInputError("vector_weight and keyword_weight cannot both be 0")


@dataclass(frozen=True, slots=True)
class SearchRequest:
    """One search as the store sees it: the service has already embedded and validated the query."""

    text: str
    embedding: np.ndarray | None
    top_k: int = 5
    filters: MemoryFilter = field(default_factory=MemoryFilter)
    mode: SearchMode = SearchMode.HYBRID
    ranking: Ranking = field(default_factory=Ranking)
    embedding_model: str | None = None
    now: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A recalled memory with its score (higher is better) and the signals that produced it."""

    entry: MemoryEntry
    score: float
    vector_rank: int | None = None
    similarity: float | None = None
    keyword_rank: int | None = None
    recency: float = 0.0

    @property
    def reasons(self) -> tuple[str, ...]:
        """Why this memory was recalled, in words a person reads in the CLI and the demo."""
        why: list[str] = []
        if self.vector_rank is not None:
            why.append(f"meaning #{self.vector_rank} (cosine {self.similarity:.2f})")
        if self.keyword_rank is not None:
            why.append(f"keywords #{self.keyword_rank}")
        why.append(f"importance {self.entry.importance:.2f}")
        why.append(f"recency {self.recency:.2f}")
        return tuple(why)

    def as_dict(self) -> dict[str, Any]:
        return {
            "memory": self.entry.as_dict(),
            "score": self.score,
            "vector_rank": self.vector_rank,
            "similarity": self.similarity,
            "keyword_rank": self.keyword_rank,
            "recency": self.recency,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True, slots=True)
class MemoryEvent:
    """One line of a memory's history. ``content`` is the text after the change, when there is one."""

    memory_id: str
    kind: EventKind
    created_at: float
    content: str | None = None
    previous_content: str | None = None
    related_id: str | None = None  # the entry merged into, superseding or superseded
    details: dict[str, Any] = field(default_factory=dict)
    id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "memory_id": self.memory_id,
            "kind": self.kind.value,
            "created_at": self.created_at,
            "content": self.content,
            "previous_content": self.previous_content,
            "related_id": self.related_id,
            "details": self.details,
        }


@dataclass(frozen=True, slots=True)
class RememberResult:
    """What ``Memory.remember`` did: added a new entry, merged into one, or superseded one."""

    action: RememberAction
    entry: MemoryEntry
    previous_id: str | None = None
