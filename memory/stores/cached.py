"""A ``MemoryStore`` whose every write updates the core-memory cache before it returns.

``Memory`` wraps its store in this when a cache is configured, so every path that writes (the facade, the
write-back, the memory tool, the CLI) invalidates the user's cache in the same call, and none can forget
to. The store stays the source of truth: the write happens first and its result is returned even when
Redis fails (``MemoryCache.invalidate`` logs that; normal reads check the store's version anyway).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from memory.cache import MemoryCache
from memory.errors import AgentMemoryError, SessionStoreError
from memory.models import EventKind, MemoryEntry, Ranking, Scope


class CachingStore:
    """Delegates everything to ``inner``; after each write, moves the user's cache to the new version."""

    def __init__(self, inner: Any, cache: MemoryCache) -> None:
        self.inner = inner
        self.cache = cache

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"CachingStore({self.inner!r}, cache={self.cache.backend})"

    def add(self, entry: MemoryEntry) -> MemoryEntry:
        stored = self.inner.add(entry)
        self._changed(entry.scope)
        return stored

    def add_many(self, entries: Sequence[MemoryEntry]) -> list[MemoryEntry]:
        stored = self.inner.add_many(entries)
        for scope in dict.fromkeys(entry.scope for entry in entries):
            self._changed(scope)
        return stored

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
        updated = self.inner.update(scope, memory_id, changes, event=event, related_id=related_id, details=details)
        self._changed(scope)
        return updated

    def delete(self, scope: Scope, memory_id: str) -> None:
        self.inner.delete(scope, memory_id)
        self._changed(scope)

    def prune(self, scope: Scope, keep_top: int, *, ranking: Ranking, now: float) -> list[str]:
        archived = self.inner.prune(scope, keep_top, ranking=ranking, now=now)
        if archived:
            self._changed(scope)
        return archived

    def forget_user(self, scope: Scope) -> int:
        """Forget in the store, then drop the cache (blocking degraded reads) and the spooled turns.

        Raises ``SessionStoreError`` when Redis could not be cleared: a forget must not half-succeed
        silently. Forgetting again is safe.
        """
        removed = self.inner.forget_user(scope)
        if not self.cache.invalidate(scope, None):
            raise SessionStoreError(
                "the user is forgotten in the store, but the memory cache could not be cleared: retry the forget"
            )
        self.cache.forget_spool(scope)
        return removed

    # Maintenance reads and writes no memory, so it passes straight through and leaves the cache alone.
    def scopes(self, *, after: Scope | None = None, limit: int = 100) -> list[Scope]:
        return self.inner.scopes(after=after, limit=limit)

    def try_lease(self, scope: Scope, owner: str, ttl_seconds: float) -> bool:
        return self.inner.try_lease(scope, owner, ttl_seconds)

    def release_lease(self, scope: Scope, owner: str) -> None:
        self.inner.release_lease(scope, owner)

    def _changed(self, scope: Scope) -> None:
        try:
            version = self.inner.version(scope)
        except AgentMemoryError:  # written, but the new version is unknown: drop the sets and block degraded reads
            version = None
        self.cache.invalidate(scope, version)
