"""Each user's core memories in Redis: read in a millisecond, and enough to answer when the store is down.

``MemoryCache`` runs over the session backends' transport (``MEMORY_CACHE_URL``, default
``SESSION_STORE_URL``: redis-py, Upstash REST, or in-process), so it needs no new infrastructure. Per tenant
and user it keeps the ``MEMORY_CACHE_SIZE`` most important active memories as a sorted set scored by
importance, with a TTL, written in one MULTI/EXEC.

Never stale, by construction rather than by invalidation alone: every set is keyed by the store's
``version(scope)``, a number the store changes in the same transaction as any change to the user's
memories. A turn reads the version from the store (one indexed row) and then only the set of that version,
so a write whose invalidation never reached Redis (Redis down, a crash right after the commit) still cannot
be served stale: its version has no set until one is filled from the store. Invalidation (``CachingStore``
runs it after every write, in the same call) only frees memory and moves the *pointer*: the newest version
a writer or filler has seen, which degraded mode follows when the store cannot be asked.

Degraded mode (``latest``) is the one read not checked against the store: it serves the pointer's set.
A forget, or a write whose new version could not be read, blocks degraded reads of the user for a TTL, so a
filler racing with a ``forget_user`` cannot bring forgotten memories back through it.

A turn that answered in degraded mode cannot record its write-back in the store either: ``spool`` keeps it
in a Redis list until the user's next write-back (or ``agent-memory writeback``) moves it to the store.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from memory import telemetry
from memory.config import Settings, get_settings
from memory.errors import AgentMemoryError, ConfigurationError, InvalidInputError, SessionStoreError
from memory.models import MemoryEntry, MemoryStatus, Scope
from memory.sessions.base import check_scope, key_hash, user_key
from memory.sessions.commands import CommandSessionStore

logger = logging.getLogger("memory.cache")

FILLED = "#"  # the member that marks a set as filled (an empty user's set holds only it); score -1
VERSION = "version"  # pointer member: the newest store version seen
BLOCKED_UNTIL = "blocked_until"  # pointer member: until when (UNIX seconds) degraded reads are refused
BLOCK_MARGIN_SECONDS = 60  # a block outlives any set a racing filler could still write


def core_key(scope: Scope, version: int) -> str:
    """The sorted set of the user's core memories as of store version ``version``."""
    return f"{user_key(scope)}:core:{version}"


def pointer_key(scope: Scope) -> str:
    """The sorted set holding the newest version seen and the degraded-read block."""
    return f"{user_key(scope)}:core"


def index_key(scope: Scope) -> str:
    """The set of the user's core-set keys, so invalidation and ``clear`` find every one."""
    return f"{user_key(scope)}:core:keys"


def spool_key(scope: Scope) -> str:
    """The list of turns answered in degraded mode whose write-back waits for the store."""
    return f"{user_key(scope)}:writeback"


def entry_to_json(entry: MemoryEntry) -> str:
    return json.dumps(entry.as_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_from_json(text: str) -> MemoryEntry:
    data = json.loads(text)
    data["tags"] = tuple(data.get("tags") or ())
    return MemoryEntry(**data)


def core_order(entries: Iterable[MemoryEntry]) -> list[MemoryEntry]:
    """Most important first, then most recently updated, then id: the order the stores' ``list`` uses."""
    return sorted(entries, key=lambda entry: (-entry.importance, -(entry.updated_at or 0.0), entry.id))


@dataclass
class CacheStats:
    """In-process counters of one cache, for ``agent-memory cache stats``, metrics and tests. Thread-safe."""

    hits: int = 0
    misses: int = 0
    fills: int = 0
    bypasses: int = 0  # reads of a user the store holds no version for: nothing to cache
    invalidations: int = 0
    degraded_turns: int = 0  # turns that answered without the store (counted by memory.agent)
    degraded_reads: int = 0
    degraded_misses: int = 0
    spooled: int = 0
    drained: int = 0
    failures: int = 0
    last_error: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record(self, counter: str) -> None:
        with self._lock:
            setattr(self, counter, getattr(self, counter) + 1)

    def fail(self, error: BaseException) -> None:
        with self._lock:
            self.failures += 1
            self.last_error = f"{type(error).__name__}: {error}"

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {name: getattr(self, name) for name in self.__dataclass_fields__ if not name.startswith("_")}


class MemoryCache:
    """The core-memory cache of one deployment. Reads and fills never raise for a Redis failure (they log,
    count and miss); ``clear`` does, since someone asked for it."""

    def __init__(self, transport: CommandSessionStore, *, size: int = 20, ttl_seconds: int = 86_400) -> None:
        for name, value in (("size", size), ("ttl_seconds", ttl_seconds)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{name} must be a positive integer, got {value!r}")
        self.transport = transport
        self.size = size
        self.ttl_seconds = ttl_seconds
        self.stats = CacheStats()

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> MemoryCache | None:
        """The cache ``MEMORY_CACHE_URL`` names (default: the session store's URL); ``None`` when it is ``none``."""
        from memory.sessions import open_session_store

        settings = settings or get_settings()
        url = settings.cache_location
        if url is None:
            return None
        transport = open_session_store(url, settings)
        if not isinstance(transport, CommandSessionStore):  # every backend is; a new one must be too
            raise ConfigurationError(f"MEMORY_CACHE_URL: the {transport.backend} backend cannot run cache commands")
        return cls(transport, size=settings.cache_size, ttl_seconds=settings.cache_ttl_seconds)

    @property
    def backend(self) -> str:
        return self.transport.backend

    def close(self) -> None:
        self.transport.close()

    # -- reads ---------------------------------------------------------------------------------------
    def get(self, scope: Scope, version: int) -> list[MemoryEntry] | None:
        """The core memories cached for ``version``, or ``None`` (a miss, or Redis failed); counted as a hit
        or a miss."""
        entries = self._read(scope, version)
        self.stats.record("hits" if entries is not None else "misses")
        telemetry.current().cache_read(entries is not None)
        return entries

    def _read(self, scope: Scope, version: int) -> list[MemoryEntry] | None:
        """``get`` without the count: degraded reads and ``describe`` keep counters of their own."""
        key = core_key(check_scope(scope), version)
        try:
            [members] = self.transport.execute([["ZRANGE", key, 0, -1]])
        except SessionStoreError as exc:
            self._warn("get", key, exc, "reading the core memories from the store")
            return None
        return self._decode(key, members or [])

    def read_through(self, store: Any, scope: Scope) -> list[MemoryEntry]:
        """The user's core memories: from the set of the store's current version, else from the store
        (then cached). Store errors propagate: the caller decides whether to degrade."""
        version = store.version(scope)
        if version is None:  # the user has nothing stored (or was just forgotten): nothing worth a set
            self.stats.record("bypasses")
            return []
        cached = self.get(scope, version)
        if cached is not None:
            return cached
        entries = store.list(scope, limit=self.size, order_by="importance")
        self.fill(scope, version, entries)
        return core_order(entries)

    def latest(self, scope: Scope) -> list[MemoryEntry] | None:
        """Degraded mode: the newest filled set, not checked against the store (which is not answering).

        ``None`` when there is none, when degraded reads are blocked (after a forget) or Redis failed.
        """
        key = pointer_key(check_scope(scope))
        try:
            version, blocked_until = self.transport.execute([["ZSCORE", key, VERSION], ["ZSCORE", key, BLOCKED_UNTIL]])
        except SessionStoreError as exc:
            self._warn("latest", key, exc, "the turn goes on without memories")
            return None
        if blocked_until is not None and float(blocked_until) > time.time():
            self.stats.record("degraded_misses")
            return None
        entries = None if version is None else self._read(scope, int(float(version)))
        self.stats.record("degraded_reads" if entries is not None else "degraded_misses")
        return entries

    def describe(self, scope: Scope) -> dict[str, Any]:
        """What the cache holds for one user (``agent-memory cache stats --user``). Raises ``SessionStoreError``."""
        pointer, index = pointer_key(check_scope(scope)), index_key(scope)
        version, blocked_until, keys, ttl = self.transport.execute(
            [["ZSCORE", pointer, VERSION], ["ZSCORE", pointer, BLOCKED_UNTIL], ["SMEMBERS", index], ["TTL", pointer]]
        )
        current = None if version is None else int(float(version))
        entries = None if current is None else self._read(scope, current)
        blocked = blocked_until is not None and float(blocked_until) > time.time()
        return {
            "backend": self.backend,
            "newest_version": current,
            "cached_memories": None if entries is None else len(entries),
            "sets": len(keys or ()),
            "degraded_reads_blocked": blocked,
            "ttl_seconds": int(ttl) if ttl is not None and int(ttl) >= 0 else None,
        }

    # -- writes --------------------------------------------------------------------------------------
    def fill(self, scope: Scope, version: int, entries: Sequence[MemoryEntry]) -> bool:
        """Cache ``entries`` (at most ``size``, active and of this scope) as the set of ``version``."""
        key, pointer, index = core_key(check_scope(scope), version), pointer_key(scope), index_key(scope)
        members: list[str | int | float] = [-1, FILLED]
        for entry in core_order(e for e in entries if e.status is MemoryStatus.ACTIVE and e.scope == scope)[
            : self.size
        ]:
            members += [entry.importance, entry_to_json(entry)]
        commands: list[list[str | int | float]] = [
            ["DEL", key],
            ["ZADD", key, *members],
            ["EXPIRE", key, self.ttl_seconds],
            ["SADD", index, key],
            ["EXPIRE", index, self.ttl_seconds + BLOCK_MARGIN_SECONDS],
            ["ZADD", pointer, "GT", version, VERSION],
            ["EXPIRE", pointer, self.ttl_seconds + BLOCK_MARGIN_SECONDS],
        ]
        try:
            self.transport.execute(commands, atomic=True)
        except SessionStoreError as exc:
            self._warn("fill", key, exc, "the next turn reads the store again")
            return False
        self.stats.record("fills")
        return True

    def invalidate(self, scope: Scope, version: int | None) -> bool:
        """After a write: drop the sets older than ``version`` and move the pointer to it.

        ``version=None`` (the user was forgotten, or the write's version could not be read) drops every
        set and blocks degraded reads for a TTL. Returns ``False`` when Redis failed (logged as an error:
        normal reads stay correct, degraded reads may serve the set from before this write until its TTL).
        """
        pointer, index = pointer_key(check_scope(scope)), index_key(scope)
        try:
            [keys] = self.transport.execute([["SMEMBERS", index]])
            stale = sorted(key for key in keys or () if version is None or _version_of(key) < version)
            commands: list[list[str | int | float]] = []
            if stale:
                commands += [["DEL", *stale], ["SREM", index, *stale]]
            if version is None:
                until = time.time() + self.ttl_seconds + BLOCK_MARGIN_SECONDS
                commands += [["ZADD", pointer, "GT", until, BLOCKED_UNTIL]]
            else:
                commands += [["ZADD", pointer, "GT", version, VERSION]]
            commands += [["EXPIRE", pointer, self.ttl_seconds + BLOCK_MARGIN_SECONDS]]
            self.transport.execute(commands, atomic=True)
        except SessionStoreError as exc:
            self.stats.fail(exc)
            logger.error(
                "memory cache %s: invalidation failed for key %s; normal reads stay correct (they check the "
                "store's version), degraded reads may serve older memories until the TTL: %s",
                self.backend,
                key_hash(pointer),
                exc,
                extra={"cache_backend": self.backend, "cache_key_hash": key_hash(pointer)},
            )
            return False
        self.stats.record("invalidations")
        return True

    def clear(self, scope: Scope) -> int:
        """Drop everything cached for the user (not the spooled turns); returns the keys deleted."""
        pointer, index = pointer_key(check_scope(scope)), index_key(scope)
        [keys] = self.transport.execute([["SMEMBERS", index]])
        [deleted] = self.transport.execute([["DEL", pointer, index, *sorted(keys or ())]], atomic=False)
        return int(deleted)

    # -- the write-back spool --------------------------------------------------------------------------
    def spool(self, scope: Scope, turn: dict[str, Any]) -> bool:
        """Keep a degraded turn's write-back fields until the store answers again (no TTL: never dropped)."""
        key = spool_key(check_scope(scope))
        try:
            self.transport.execute([["RPUSH", key, json.dumps(turn, sort_keys=True, ensure_ascii=False)]])
        except SessionStoreError as exc:
            self._warn("spool", key, exc, f"turn {turn.get('turn_id')} has no write-back")
            return False
        self.stats.record("spooled")
        return True

    def spooled(self, scope: Scope) -> list[str]:
        """The user's spooled turns (JSON texts, oldest first); ``[]`` when Redis failed."""
        key = spool_key(check_scope(scope))
        try:
            [items] = self.transport.execute([["LRANGE", key, 0, -1]])
        except SessionStoreError as exc:
            self._warn("spooled", key, exc, "spooled turns wait for the next write-back")
            return []
        return list(items or [])

    def unspool(self, scope: Scope, item: str) -> None:
        """Remove one spooled turn, once the store holds it. Raises ``SessionStoreError``."""
        self.transport.execute([["LREM", spool_key(check_scope(scope)), 1, item]])
        self.stats.record("drained")

    def forget_spool(self, scope: Scope) -> None:
        """Delete the user's spooled turns (``forget_user``: they hold what the user said)."""
        self.transport.execute([["DEL", spool_key(check_scope(scope))]])

    # -- helpers -------------------------------------------------------------------------------------
    def _decode(self, key: str, members: Sequence[str]) -> list[MemoryEntry] | None:
        if FILLED not in members:
            return None
        now, entries = time.time(), []
        for member in members:
            if member == FILLED:
                continue
            try:
                entry = entry_from_json(member)
            except (ValueError, TypeError, AgentMemoryError) as exc:
                self._warn("get", key, exc, "skipping an entry that is not a memory")
                continue
            if not entry.is_expired(now):
                entries.append(entry)
        return core_order(entries)

    def _warn(self, op: str, key: str, exc: BaseException, consequence: str) -> None:
        self.stats.fail(exc)
        digest = key_hash(key)
        logger.warning(
            "memory cache %s: %s failed for key %s, %s: %s",
            self.backend,
            op,
            digest,
            consequence,
            exc,
            extra={"cache_backend": self.backend, "cache_op": op, "cache_key_hash": digest},
        )


def _version_of(key: str) -> float:
    """The version a core-set key was filled for (``inf`` for a key that does not end in one)."""
    try:
        return int(key.rsplit(":", 1)[-1])
    except ValueError:
        return math.inf
