"""The ``MemoryStore`` protocol: what every backend (SQLite, Postgres, Qdrant) promises.

Scoping: every method takes a ``Scope`` (tenant and user) and touches nothing outside it. A memory of
another scope is indistinguishable from one that does not exist: ``get`` returns ``None`` for it,
``update`` and ``delete`` raise ``MemoryNotFoundError``.

History: every method that changes a memory records a ``MemoryEvent`` in the same transaction, so the
history can never disagree with the data. ``forget_user`` is the one exception: it removes the user's
memories *and* their history, because forgetting leaves nothing behind.

Errors: a store raises only ``memory.errors`` types; driver errors are translated with ``from exc``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from memory.models import (
    EventKind,
    MemoryEntry,
    MemoryEvent,
    MemoryFilter,
    Ranking,
    Scope,
    SearchHit,
    SearchRequest,
)
from memory.ranking import RETENTION_IMPORTANCE_SHARE, SECONDS_PER_DAY

# What a store can do beyond the protocol's core. Contract tests that need one are marked
# ``@pytest.mark.requires(capability)`` and are skipped, with this registered reason, elsewhere.
CAPABILITIES: dict[str, str] = {
    "persistent": "data survives closing and reopening the store",
    "statement_tracer": "the store reports each statement it runs to a tracer callback",
}

# A tracer receives each statement and its parameters; tests use it to count round trips.
Tracer = Callable[[str, Mapping[str, Any] | Sequence[Any]], None]

# The fields ``update`` may change. Identity, scope and creation time never change.
UPDATABLE_FIELDS = frozenset(
    {
        "content",
        "embedding",
        "embedding_model",
        "memory_type",
        "importance",
        "tags",
        "metadata",
        "expires_at",
        "status",
        "superseded_by",
        "updated_at",
    }
)


@runtime_checkable
class MemoryStore(Protocol):
    """A durable home for memory entries with scoped hybrid search."""

    capabilities: frozenset[str]

    def open(self) -> None:
        """Connect and create or migrate the schema. Called lazily by the first operation too."""
        ...

    def close(self) -> None:
        """Release connections. Safe to call twice; a later call reopens."""
        ...

    def add(self, entry: MemoryEntry) -> MemoryEntry:
        """Insert ``entry`` (which must carry an embedding) and record ``added``.

        Raises ``DuplicateContentError`` when an active entry in the scope has the same content hash.
        """
        ...

    def add_many(self, entries: Sequence[MemoryEntry]) -> list[MemoryEntry]:
        """Insert all entries in one transaction: all are stored or none is."""
        ...

    def get(self, scope: Scope, memory_id: str) -> MemoryEntry | None:
        """The entry with that id in ``scope``, whatever its status; ``None`` when there is none."""
        ...

    def get_by_hash(self, scope: Scope, content_hash: str) -> MemoryEntry | None:
        """The *active* entry in ``scope`` whose content hashes to ``content_hash``, if any."""
        ...

    def list(
        self, scope: Scope, filters: MemoryFilter | None = None, *, limit: int = 50, offset: int = 0
    ) -> list[MemoryEntry]:
        """Entries in ``scope``, newest ``created_at`` first, ties by id. Active and unexpired only,
        unless ``filters`` asks for inactive or expired ones too."""
        ...

    def count(self, scope: Scope, filters: MemoryFilter | None = None) -> int:
        """How many entries ``list`` would return without a limit."""
        ...

    def search(self, scope: Scope, request: SearchRequest) -> list[SearchHit]:
        """At most ``request.top_k`` active, unexpired entries in ``scope``, best first.

        Scores follow ``memory.ranking.score`` (higher is better); ties break on newer ``created_at``,
        then on id. Vector candidates compare only with entries embedded by ``request.embedding_model``.
        """
        ...

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
        """Apply ``changes`` (keys from ``UPDATABLE_FIELDS``) and record ``event`` with ``details``;
        returns the entry as stored. ``updated_at`` becomes now unless ``changes`` sets it.

        Raises ``MemoryNotFoundError`` when the id is not in ``scope``, ``InvalidInputError`` for an
        unknown field or a value the entry would reject.
        """
        ...

    def delete(self, scope: Scope, memory_id: str) -> None:
        """Remove the entry for good, scrub its text from its earlier events, and record ``deleted``."""
        ...

    def forget_user(self, scope: Scope) -> int:
        """Remove every entry and every history event of the scope; returns how many entries went."""
        ...

    def prune(self, scope: Scope, keep_top: int, *, ranking: Ranking, now: float) -> list[str]:
        """Archive (status ``pruned``, never delete) all active entries beyond the ``keep_top`` best
        by ``memory.ranking.retention``; returns the archived ids."""
        ...

    def history(self, scope: Scope, memory_id: str | None = None, *, limit: int = 100) -> list[MemoryEvent]:
        """Events of one memory, or of the whole scope, oldest first."""
        ...


def check_changes(changes: Mapping[str, Any]) -> None:
    from memory.errors import InvalidInputError

    unknown = set(changes) - UPDATABLE_FIELDS
    if unknown:
        raise InvalidInputError(
            f"cannot update {', '.join(sorted(unknown))}; updatable fields: {', '.join(sorted(UPDATABLE_FIELDS))}"
        )


def apply_changes(
    before: MemoryEntry, changes: Mapping[str, Any], *, related_id: str | None, details: Mapping[str, Any] | None
) -> tuple[MemoryEntry, dict[str, Any]]:
    """What every store's ``update`` does before it writes: the new entry (validated, ``updated_at`` now
    unless given) and the fields of its history event (which fields changed, the text before, the link)."""
    after = dataclasses.replace(before, **{"updated_at": time.time(), **changes})
    compared = set(changes) - {"embedding", "updated_at"}
    changed = sorted(k for k in compared if getattr(before, k) != getattr(after, k))
    event_fields = {
        "content": after.content,
        "previous_content": before.content if before.content != after.content else None,
        "related_id": related_id,
        "details": {"changed": changed, **(details or {})},
    }
    return after, event_fields


def check_keep_top(keep_top: object) -> int:
    """``prune``'s bound: a whole number of memories to keep, zero or more."""
    if isinstance(keep_top, bool) or not isinstance(keep_top, int) or keep_top < 0:
        from memory.errors import InvalidInputError

        raise InvalidInputError(f"keep_top must be a whole number >= 0, got {keep_top!r}")
    return keep_top


def ranking_params(ranking: Ranking) -> dict[str, Any]:
    """The named parameters through which the SQL stores compute ``memory.ranking`` (search and prune)."""
    return {
        "candidates": ranking.candidates,
        "min_similarity": ranking.min_similarity,
        "rrf_k": ranking.rrf_k,
        "importance_weight": ranking.importance_weight,
        "recency_weight": ranking.recency_weight,
        "half_life_days": ranking.recency_half_life_days,
        "seconds_per_day": SECONDS_PER_DAY,
        "importance_share": RETENTION_IMPORTANCE_SHARE,
    }
