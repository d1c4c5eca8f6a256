"""The ``MemoryStore`` protocol: what every backend (SQLite, Postgres, Qdrant) promises.

Scoping: every method takes a ``Scope`` (tenant and user) and touches nothing outside it. A memory of
another scope is indistinguishable from one that does not exist: ``get`` returns ``None`` for it,
``update`` and ``delete`` raise ``MemoryNotFoundError``.

History: every method that changes a memory records a ``MemoryEvent`` in the same transaction, so the
history can never disagree with the data. ``forget_user`` is the one exception: it removes the user's
memories *and* their history, because forgetting leaves nothing behind.

Versions: ``version(scope)`` is a number that changes with every change to the scope's memories, in the
same transaction (SQLite, Postgres) or right after it (Qdrant, which has no transactions). A cache of a
user's memories keys its entries by it, so it never serves data older than the last write that returned,
even when it missed an invalidation. History events and turn records do not change it.

Turn records (``memory.turns.TurnRecord``): the write-back ledger, one record per conversation turn, kept
per scope exactly like memories (``save_turn``, ``get_turn``, ``list_turns``; ``forget_user`` removes them).
They have no history: a record is its own log.

Maintenance (``scopes``, ``try_lease``, ``release_lease``): what a scheduled job (``memory.consolidation``) needs
to walk every user in batches, resuming after the last one it finished, and to make sure two runs never work on
the same user at once. They read no memory and change none: they leave every version as it is.

Errors: a store raises only ``memory.errors`` types; driver errors are translated with ``from exc``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from memory.errors import InvalidInputError
from memory.models import (
    EventKind,
    MemoryEntry,
    MemoryEvent,
    MemoryFilter,
    Ranking,
    Scope,
    SearchHit,
    SearchRequest,
    _identifier,
)
from memory.ranking import RETENTION_IMPORTANCE_SHARE, SECONDS_PER_DAY
from memory.turns import TurnRecord, TurnStatus

logger = logging.getLogger("memory.stores")

# What a store can do beyond the protocol's core. Contract tests that need one are marked
# ``@pytest.mark.requires(capability)`` and are skipped, with this registered reason, elsewhere.
CAPABILITIES: dict[str, str] = {
    "persistent": "data survives closing and reopening the store",
    "statement_tracer": "the store reports each statement it runs to a tracer callback",
    "leases": "a lease excludes every other owner, in every process opening the same data, until it expires",
}

# The orders ``list`` knows: the SQL of each (over memories AS m) is in the stores, the meaning here.
LIST_ORDERS: dict[str, str] = {
    "newest": "created_at descending, then id",
    "importance": "importance descending, then updated_at descending, then id",
}

# ``forget_user`` holds its transaction (at most this long) until the clock has passed the version it removed,
# so the scope's next version, which starts again from the clock, is larger (see ``MemoryStore.version``).
MAX_CLOCK_WAIT_SECONDS = 1.0

# What ``list_turns`` returns unless asked otherwise: the turns write-back has yet to finish.
PENDING_OR_FAILED: tuple[TurnStatus, ...] = (TurnStatus.PENDING, TurnStatus.FAILED)

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
        self,
        scope: Scope,
        filters: MemoryFilter | None = None,
        *,
        limit: int = 50,
        offset: int = 0,
        order_by: str = "newest",
    ) -> list[MemoryEntry]:
        """Entries in ``scope``, active and unexpired only unless ``filters`` asks for inactive or expired
        ones too, in the order ``order_by`` names (``LIST_ORDERS``): ``"newest"`` (``created_at``
        descending, ties by id) or ``"importance"`` (importance descending, then the most recently updated,
        then id: a user's core memories first, what a prompt or a cache of them wants).

        Raises ``InvalidInputError`` for any other ``order_by``, naming the accepted ones.
        """
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
        """Remove every entry, history event and turn record of the scope, and its version (see ``version``);
        returns how many entries went."""
        ...

    def prune(self, scope: Scope, keep_top: int, *, ranking: Ranking, now: float) -> list[str]:
        """Archive (status ``pruned``, never delete) all active entries beyond the ``keep_top`` best
        by ``memory.ranking.retention``; returns the archived ids."""
        ...

    def history(self, scope: Scope, memory_id: str | None = None, *, limit: int = 100) -> list[MemoryEvent]:
        """Events of one memory, or of the whole scope, oldest first."""
        ...

    def version(self, scope: Scope) -> int | None:
        """The scope's data version, for caches: they key what they hold by it, so a write that returned is
        never hidden by a cached copy from before it, even when the cache missed its invalidation.

        ``None`` when the store holds no version for the scope: it never had a memory, or ``forget_user``
        removed them all (a store from before versions gives every scope with memories one as it upgrades;
        Qdrant when the version is first asked for). Otherwise an integer that strictly increases with every
        change to the scope's memories: an insert (``add``, ``add_many``), any update (content, importance,
        a status change: archive, supersede, merge, ``prune``), a ``delete``. Reads, ``history`` and turn
        records leave it as it is. Each change sets it to max(previous + 1, the clock in microseconds since
        the epoch; SQLite's clock ticks in milliseconds), computed by the database in the transaction of the
        change (SQLite, Postgres: triggers on the memories table, so a change made outside the store counts
        too). Qdrant has no transactions: there it is set right after the write succeeded, and a crash in
        between leaves the old version.

        ``forget_user`` removes it with the memories, leaving nothing of the user behind, and returns only
        once the clock has passed it: the next write starts the version again from the clock, so it is
        larger than any version the scope had (unless the system clock steps back). Values stay below 2**53
        (until the year 2255), exact as a double, such as a Redis score.
        """
        ...

    def save_turn(self, record: TurnRecord) -> TurnRecord:
        """Upsert the record of ``(record.tenant_id, record.user_id, record.turn_id)``; returns it as stored.

        A new key is inserted. An existing record has every field replaced by ``record``'s, except
        ``created_at``, which stays the first save's (the turn happened once; ``updated_at`` says when it
        last changed). ``operations`` ``None`` and ``[]`` stay distinct; timestamps keep microseconds.
        Raises ``InvalidInputError`` when ``operations`` or ``result`` is not plain JSON.
        """
        ...

    def get_turn(self, scope: Scope, turn_id: str) -> TurnRecord | None:
        """The record of ``turn_id`` in ``scope``; ``None`` when there is none (in another scope included)."""
        ...

    def list_turns(
        self, scope: Scope, statuses: Iterable[TurnStatus] = PENDING_OR_FAILED, *, limit: int = 100
    ) -> list[TurnRecord]:
        """At most ``limit`` records of ``scope`` whose status is one of ``statuses`` (by default the ones
        write-back must still do), oldest ``created_at`` first, ties by ``turn_id`` (code point order).

        Raises ``InvalidInputError`` for an unknown status, a single string, or a ``limit`` that is not a
        whole number >= 1.
        """
        ...

    def scopes(self, *, after: Scope | None = None, limit: int = 100) -> list[Scope]:
        """At most ``limit`` scopes that have a version (see ``version``), in (tenant_id, user_id) code point
        order, strictly after ``after`` (from the first when ``None``): pass the last scope of one page as
        ``after`` to get the next, or to resume a walk over every user where it stopped.

        That is every scope holding a memory of any status (archived, superseded and expired ones count), and
        also a scope whose memories were all deleted one by one (its version stays, so caches keep their
        guarantee) until ``forget_user`` removes it. Ids only: nothing of the memories themselves. On Qdrant a
        scope whose first write crashed before its version was set, or whose memories predate versions, is
        listed once ``version`` has been asked for it.

        Raises ``InvalidInputError`` for a ``limit`` that is not a whole number >= 1 or an ``after`` that is
        not a ``Scope``.
        """
        ...

    def try_lease(self, scope: Scope, owner: str, ttl_seconds: float) -> bool:
        """Take the scope's maintenance lease for ``owner`` for ``ttl_seconds`` when nobody holds it or its
        holder's lease has expired, or renew it (for ``ttl_seconds`` from now) when ``owner`` holds it; ``True``
        when ``owner`` holds it afterwards, ``False`` when another owner's unexpired lease stands.

        So two maintenance runs never work on one user at once, and a run that crashed holds it no longer than
        its ``ttl_seconds``: renew well before it ends. Atomic, and timed by the database's clock (SQLite: the
        clock of the machine holding the file; Qdrant local mode: this process's monotonic clock). A lease is
        not a memory: it changes no version, and scopes without memories can be leased. ``forget_user`` drops
        the scope's lease. Stores without the ``leases`` capability (a Qdrant server: no conditional writes)
        raise ``ConfigurationError`` from both lease methods: take the lease elsewhere (Redis).

        Raises ``InvalidInputError`` when ``owner`` is not a valid id (a non-empty string without control
        characters) or ``ttl_seconds`` is not a finite number > 0.
        """
        ...

    def release_lease(self, scope: Scope, owner: str) -> None:
        """Drop the scope's lease if ``owner`` holds it (expired or not); otherwise do nothing, without error:
        releasing twice, or after the lease passed to another owner, is safe and leaves that owner's lease."""
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


def check_order_by(order_by: object) -> str:
    """``list``'s order: one of ``LIST_ORDERS``, checked before any query so every store refuses alike."""
    if not isinstance(order_by, str) or order_by not in LIST_ORDERS:
        accepted = ", ".join(f"{name!r} ({meaning})" for name, meaning in LIST_ORDERS.items())
        raise InvalidInputError(f"order_by must be one of {accepted}; got {order_by!r}")
    return order_by


def wait_past(version: int, clock: Callable[[], int], *, limit: float = MAX_CLOCK_WAIT_SECONDS) -> bool:
    """Sleep until ``clock()`` (microseconds) has passed ``version``; ``False`` if it did not within ``limit``
    seconds (the clock stepped back, or a burst of changes ran ahead of a coarse clock by that much).

    ``forget_user`` calls it before it commits, so that the scope's next version, which starts again from
    the clock, is larger than the one it removed.
    """
    deadline = time.monotonic() + limit
    while (now := clock()) <= version:
        if time.monotonic() >= deadline:
            logger.warning(
                "the clock (%d us) is still behind the forgotten version %d after %.1f s: the user's next "
                "version may not exceed it (has the system clock stepped back?)",
                now,
                version,
                limit,
            )
            return False
        time.sleep(min((version - now + 1) / 1_000_000, max(0.0, deadline - time.monotonic())))
    return True


def check_scopes_query(after: object, limit: object) -> tuple[tuple[str, str], int]:
    """``scopes``' arguments, validated before any query so every store refuses alike: the (tenant, user) to
    start strictly after (ids are never empty, so ``("", "")`` is before every scope) and the limit."""
    if after is not None and not isinstance(after, Scope):
        raise InvalidInputError(f"after must be a Scope (the last one of the previous page) or None, got {after!r}")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidInputError(f"limit must be a whole number >= 1, got {limit!r}")
    return ("", "") if after is None else (after.tenant_id, after.user_id), limit


def check_owner(owner: object) -> str:
    """A lease owner: an id as ``Scope`` accepts them, so every store compares owners alike."""
    return _identifier("owner", owner)


def check_lease(owner: object, ttl_seconds: object) -> float:
    """``try_lease``'s arguments: a valid owner and a finite ttl > 0; returns the ttl."""
    check_owner(owner)
    if (
        isinstance(ttl_seconds, bool)
        or not isinstance(ttl_seconds, int | float)
        or not math.isfinite(ttl_seconds)
        or ttl_seconds <= 0
    ):
        raise InvalidInputError(f"ttl_seconds must be a finite number of seconds > 0, got {ttl_seconds!r}")
    return float(ttl_seconds)


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
        "vector_weight": ranking.vector_weight,
        "keyword_weight": ranking.keyword_weight,
        "importance_weight": ranking.importance_weight,
        "recency_weight": ranking.recency_weight,
        "half_life_days": ranking.recency_half_life_days,
        "seconds_per_day": SECONDS_PER_DAY,
        "importance_share": RETENTION_IMPORTANCE_SHARE,
    }


def check_turn_query(statuses: Iterable[TurnStatus], limit: object) -> tuple[list[str], int]:
    """``list_turns``' arguments, validated: the status values (possibly none) and the limit."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidInputError(f"limit must be a whole number >= 1, got {limit!r}")
    if isinstance(statuses, str):
        raise InvalidInputError(f"statuses must be a list of statuses, not one string; use [{statuses!r}]")
    if not isinstance(statuses, Iterable):
        raise InvalidInputError(f"statuses must be a list of statuses, got {statuses!r}")
    values: list[str] = []
    for status in statuses:
        try:
            values.append(TurnStatus(status).value)
        except ValueError:
            accepted = ", ".join(s.value for s in TurnStatus)
            raise InvalidInputError(f"unknown turn status {status!r}; use one of: {accepted}") from None
    return values, limit


def check_turn_id(turn_id: object) -> str:
    """A turn id as ``TurnRecord`` accepts it; anything else would match differently per backend."""
    return _identifier("turn_id", turn_id)


def _json(name: str, value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"{name} must hold only JSON values (str, number, bool, None, list, dict): {exc}"
        ) from exc


def turn_params(record: TurnRecord) -> dict[str, Any]:
    """A record as every store writes it: status as its value, ``operations`` and ``result`` as JSON text
    (``operations`` ``None`` stays ``None``, so "not extracted yet" differs from ``[]``)."""
    return {
        **record.as_dict(),
        "operations": None if record.operations is None else _json("operations", record.operations),
        "result": _json("result", record.result),
    }


def turn_from_params(params: Mapping[str, Any]) -> TurnRecord:
    """The inverse of ``turn_params``: a stored row (or payload) back as a ``TurnRecord``."""
    fields = {f.name: params[f.name] for f in dataclasses.fields(TurnRecord)}
    operations = fields["operations"]
    return TurnRecord(
        **{
            **fields,
            "operations": None if operations is None else json.loads(operations),
            "result": json.loads(fields["result"]),
        }
    )
