"""``Memory``: the facade over one store and one embedder.

The write path is: normalise -> exact dedup by content hash (before embedding, so a repeat costs no
model call) -> embed -> near dedup within the user (cosine >= ``MEMORY_DEDUP_THRESHOLD``) -> insert.
A near duplicate that adds no new words is merged into the existing entry; one that says something
different (a changed day, a new name) supersedes it: the old entry is archived with a pointer to the
new one and stays in the history. Nothing is overwritten in place and nothing is silently dropped.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from memory import telemetry, text
from memory.cache import MemoryCache
from memory.config import Settings, get_settings
from memory.embeddings import Embedder, embedder_for
from memory.errors import DuplicateContentError, InvalidInputError, MemoryNotFoundError
from memory.models import (
    DEFAULT_TENANT,
    EventKind,
    MemoryEntry,
    MemoryEvent,
    MemoryFilter,
    MemoryStatus,
    Ranking,
    RememberAction,
    RememberResult,
    Scope,
    SearchHit,
    SearchMode,
    SearchRequest,
    normalize_content,
    validate_metadata,
    validate_text,
)
from memory.stores import MemoryStore, open_store
from memory.stores.cached import CachingStore

# A repeated statement is a signal: each merge raises importance by this much (capped at 1).
REINFORCEMENT = 0.05
MAX_TOP_K = 100


def _expiry(ttl: timedelta | float | None, now: float) -> float | None:
    if ttl is None:
        return None
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else ttl
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
        raise InvalidInputError(f"ttl must be a positive number of seconds or a timedelta, got {ttl!r}")
    return now + float(seconds)


def _merged_expiry(old: float | None, new: float | None) -> float | None:
    """A memory restated without an expiry keeps no expiry; otherwise the later one wins."""
    return None if old is None or new is None else max(old, new)


class Memory:
    """Remember, recall and forget what users said, scoped by tenant and user on every call."""

    def __init__(
        self,
        store: MemoryStore,
        embedder: Embedder,
        settings: Settings | None = None,
        *,
        cache: MemoryCache | None = None,
    ) -> None:
        """``cache``: the core-memory cache; the store is then wrapped so that every write updates it."""
        self.cache = cache
        self.store: MemoryStore = store if cache is None else CachingStore(store, cache)  # type: ignore[assignment]
        self.embedder = embedder
        self.settings = settings or get_settings()

    @classmethod
    def from_settings(cls, settings: Settings | None = None, *, embedder: Embedder | None = None) -> Memory:
        """Build from the environment (``MEMORY_*`` variables), or from an explicit ``Settings``."""
        settings = settings or get_settings()
        embedder = embedder or embedder_for(settings)
        return cls(open_store(settings.store_url), embedder, settings, cache=MemoryCache.from_settings(settings))

    @classmethod
    def from_url(cls, url: str, *, embedder: Embedder | str | None = None, **overrides: Any) -> Memory:
        """Build for the store at ``url``; other settings come from the environment or ``overrides``.

        ``embedder`` is an ``Embedder``, or a ``MEMORY_EMBEDDER`` choice such as ``"onnx"``.
        """
        if isinstance(embedder, str):
            overrides["embedder"], embedder = embedder, None
        return cls.from_settings(get_settings(store_url=url, **overrides), embedder=embedder)

    def close(self) -> None:
        self.store.close()
        if self.cache is not None:
            self.cache.close()

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- writes --------------------------------------------------------------------------------------
    def remember(
        self,
        user_id: str,
        content: str,
        *,
        memory_type: str = "fact",
        importance: float = 0.5,
        tags: Iterable[str] = (),
        metadata: Mapping[str, Any] | None = None,
        session_id: str | None = None,
        ttl: timedelta | float | None = None,
        supersedes: str | None = None,
        memory_id: str | None = None,
        tenant_id: str = DEFAULT_TENANT,
    ) -> RememberResult:
        """Store a memory, or fold it into the one it repeats, or let it replace the one it corrects.

        ``supersedes`` names an entry this one corrects (what an extractor answers with ``update(id)``);
        without it, a near duplicate that brings new words supersedes the closest entry automatically.
        ``memory_id`` fixes the id a new entry gets (write-back derives it from the turn, so a replay can
        tell the memory is already there); a merge keeps the existing entry's id.
        """
        now = time.time()
        ids = {} if memory_id is None else {"id": memory_id}
        entry = MemoryEntry(
            **ids,
            user_id=user_id,
            tenant_id=tenant_id,
            content=self._checked_content(content),
            memory_type=memory_type,
            importance=importance,
            tags=tags,
            metadata=validate_metadata(metadata if metadata is not None else {}),
            session_id=session_id,
            created_at=now,
            expires_at=_expiry(ttl, now),
            embedding_model=self.embedder.model_name,
        )
        scope = entry.scope
        corrected = None if supersedes is None else self.store.get(scope, supersedes)
        if supersedes is not None and corrected is None:
            raise MemoryNotFoundError(f"cannot supersede {supersedes!r}: no such memory for this user")

        existing = self.store.get_by_hash(scope, entry.content_hash)
        if existing is not None:
            if corrected is not None and corrected.id != existing.id:
                # The correction repeats another memory: that one stands, the corrected one goes.
                self._archive(corrected, existing.id, automatic=False)
                merged = self._merge(existing, entry, similarity=1.0).entry
                return RememberResult(RememberAction.SUPERSEDED, merged, previous_id=corrected.id)
            return self._merge(existing, entry, similarity=1.0)

        entry.embedding = self.embedder.embed([entry.content])[0]
        if corrected is not None:
            return self._supersede(corrected, entry, automatic=False)

        nearest = self._nearest(scope, entry)
        if nearest is not None:
            hit, similarity = nearest
            if text.content_words(entry.content) <= text.content_words(hit.content):
                return self._merge(hit, entry, similarity=similarity)
            return self._supersede(hit, entry, automatic=True, similarity=similarity)
        try:
            return RememberResult(RememberAction.ADDED, self.store.add(entry))
        except DuplicateContentError:
            # Another writer stored the same text between our check and insert: merge into theirs.
            winner = self.store.get_by_hash(scope, entry.content_hash)
            if winner is None:
                raise
            return self._merge(winner, entry, similarity=1.0)

    def _checked_content(self, content: str) -> str:
        content = normalize_content(content)
        limit = self.settings.max_content_chars
        if len(content) > limit:
            raise InvalidInputError(
                f"content is {len(content)} characters; the limit is {limit} (MEMORY_MAX_CONTENT_CHARS). "
                "Store one fact per memory."
            )
        return content

    def _nearest(self, scope: Scope, entry: MemoryEntry) -> tuple[MemoryEntry, float] | None:
        request = SearchRequest(
            text="",
            embedding=entry.embedding,
            top_k=1,
            mode=SearchMode.VECTOR,
            # Pure similarity order: importance and recency must not pick which neighbour is "nearest".
            ranking=Ranking(importance_weight=0.0, recency_weight=0.0, candidates=1),
            embedding_model=self.embedder.model_name,
        )
        hits = self.store.search(scope, request)
        if hits and hits[0].similarity is not None and hits[0].similarity >= self.settings.dedup_threshold:
            return hits[0].entry, hits[0].similarity
        return None

    def _merge(self, existing: MemoryEntry, new: MemoryEntry, *, similarity: float) -> RememberResult:
        changes = {
            "importance": min(1.0, max(existing.importance, new.importance) + REINFORCEMENT),
            "tags": tuple(dict.fromkeys(existing.tags + new.tags)),
            "expires_at": _merged_expiry(existing.expires_at, new.expires_at),
        }
        merged = self.store.update(
            existing.scope,
            existing.id,
            changes,
            event=EventKind.MERGED,
            details={"merged_content": new.content, "similarity": round(similarity, 4)},
        )
        return RememberResult(RememberAction.MERGED, merged, previous_id=existing.id)

    def _supersede(
        self, old: MemoryEntry, new: MemoryEntry, *, automatic: bool, similarity: float | None = None
    ) -> RememberResult:
        if automatic:
            new.importance = max(new.importance, old.importance)
            new.tags = tuple(dict.fromkeys(old.tags + new.tags))
        # Add first, archive second: a crash in between leaves both, never neither.
        added = self.store.add(new)
        self._archive(old, added.id, automatic=automatic, similarity=similarity)
        return RememberResult(RememberAction.SUPERSEDED, added, previous_id=old.id)

    def _archive(
        self,
        old: MemoryEntry,
        successor_id: str | None,
        *,
        automatic: bool,
        similarity: float | None = None,
        reason: str | None = None,
    ) -> MemoryEntry:
        details: dict[str, Any] = {"automatic": automatic}
        if similarity is not None:
            details["similarity"] = round(similarity, 4)
        if reason is not None:
            details["reason"] = reason
        return self.store.update(
            old.scope,
            old.id,
            {"status": MemoryStatus.SUPERSEDED, "superseded_by": successor_id},
            event=EventKind.SUPERSEDED,
            related_id=successor_id,
            details=details,
        )

    def update(
        self,
        user_id: str,
        memory_id: str,
        *,
        content: str | None = None,
        memory_type: str | None = None,
        importance: float | None = None,
        tags: Iterable[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        tenant_id: str = DEFAULT_TENANT,
    ) -> MemoryEntry:
        """Change fields of one memory in place (re-embedding new content); the history keeps the old text."""
        changes: dict[str, Any] = {}
        if content is not None:
            changes["content"] = self._checked_content(content)
            changes["embedding"] = self.embedder.embed([changes["content"]])[0]
            changes["embedding_model"] = self.embedder.model_name
        if metadata is not None:
            metadata = validate_metadata(metadata)
        for name, value in (("memory_type", memory_type), ("importance", importance), ("metadata", metadata)):
            if value is not None:
                changes[name] = value
        if tags is not None:
            changes["tags"] = tags
        if not changes:
            raise InvalidInputError("nothing to update: give content, memory_type, importance, tags or metadata")
        return self.store.update(Scope(user_id, tenant_id), memory_id, changes)

    def retire(
        self, user_id: str, memory_id: str, *, reason: str | None = None, tenant_id: str = DEFAULT_TENANT
    ) -> MemoryEntry:
        """Archive a memory that is no longer true, with nothing replacing it (an extractor's ``delete``).

        Unlike ``delete`` this keeps the entry (status ``superseded``, no successor) and its history:
        an inferred "no longer true" must never destroy what the user said. Retiring an archived memory
        changes nothing and returns it as it is.
        """
        entry = self.get(user_id, memory_id, tenant_id=tenant_id)
        if entry.status is not MemoryStatus.ACTIVE:
            return entry
        return self._archive(entry, None, automatic=False, reason=reason)

    def delete(self, user_id: str, memory_id: str, *, tenant_id: str = DEFAULT_TENANT) -> None:
        """Remove one memory for good (an explicit forget); its history keeps that it was deleted."""
        self.store.delete(Scope(user_id, tenant_id), memory_id)

    def forget_user(self, user_id: str, *, tenant_id: str = DEFAULT_TENANT) -> int:
        """Remove everything stored about a user, history included; returns how many memories went."""
        return self.store.forget_user(Scope(user_id, tenant_id))

    def prune(self, user_id: str, keep_top: int, *, tenant_id: str = DEFAULT_TENANT) -> list[str]:
        """Archive all but the ``keep_top`` most important and recent memories; returns the archived ids."""
        return self.store.prune(Scope(user_id, tenant_id), keep_top, ranking=self.settings.ranking, now=time.time())

    # -- reads ---------------------------------------------------------------------------------------
    def search(
        self,
        user_id: str,
        query: str,
        *,
        top_k: int | None = None,
        memory_types: Iterable[str] = (),
        tags: Iterable[str] = (),
        mode: str = "hybrid",
        tenant_id: str = DEFAULT_TENANT,
        embedding: Any = None,
        embed_ms: float = 0.0,
    ) -> list[SearchHit]:
        """The memories that best answer ``query``, best first (hybrid: meaning and keywords fused).

        ``embedding``: the query's embedding when the caller has it already (a turn embeds before it
        starts the store's time budget, so a cold model load never counts against the store), and
        ``embed_ms`` how long that took: the search's telemetry event counts it as its embedding time.
        """
        started = time.perf_counter()
        scope = Scope(user_id, tenant_id)
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError("query must be a non-empty string")
        validate_text("query", query)
        top_k = self.settings.top_k if top_k is None else top_k
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
            raise InvalidInputError(f"top_k must be a whole number from 1 to {MAX_TOP_K}, got {top_k!r}")
        try:
            search_mode = SearchMode(mode)
        except ValueError:
            raise InvalidInputError(f"unknown search mode {mode!r}; use hybrid, vector or keyword") from None
        ahead = 0.0  # the caller's embedding time: in the total too
        if search_mode is SearchMode.KEYWORD:
            embedding, embed_ms = None, 0.0
        elif embedding is None:
            embedded = time.perf_counter()
            embedding = self.embedder.embed([query])[0]
            embed_ms = (time.perf_counter() - embedded) * 1000
        else:
            ahead = embed_ms
        request = SearchRequest(
            text=query,
            embedding=embedding,
            top_k=top_k,
            filters=MemoryFilter(memory_types=memory_types, tags=tags),
            mode=search_mode,
            ranking=self.settings.ranking,
            embedding_model=self.embedder.model_name,
        )
        searched = time.perf_counter()
        hits = self.store.search(scope, request)
        done = time.perf_counter()
        total_ms = ahead + (done - started) * 1000
        telemetry.current().search(scope, embed_ms=embed_ms, store_ms=(done - searched) * 1000, total_ms=total_ms)
        return hits

    def core_memories(self, user_id: str, *, tenant_id: str = DEFAULT_TENANT) -> list[MemoryEntry]:
        """The user's most important active memories (``MEMORY_CACHE_SIZE``), through the cache when there is one.

        Always as of the store's current version: the cache holds a set per version (``memory.cache``).
        """
        scope = Scope(user_id, tenant_id)
        if self.cache is None:
            return self.store.list(scope, limit=self.settings.cache_size, order_by="importance")
        return self.cache.read_through(self.store, scope)

    def get(self, user_id: str, memory_id: str, *, tenant_id: str = DEFAULT_TENANT) -> MemoryEntry:
        entry = self.store.get(Scope(user_id, tenant_id), memory_id)
        if entry is None:
            raise MemoryNotFoundError(f"no memory {memory_id!r} for this user")
        return entry

    def list(
        self,
        user_id: str,
        *,
        memory_types: Iterable[str] = (),
        tags: Iterable[str] = (),
        include_inactive: bool = False,
        limit: int = 50,
        offset: int = 0,
        order_by: str = "newest",
        tenant_id: str = DEFAULT_TENANT,
    ) -> list[MemoryEntry]:
        """The user's memories, newest first (``order_by="importance"``: most important first); superseded
        and pruned ones too with ``include_inactive``."""
        for name, value, low in (("limit", limit, 1), ("offset", offset, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InvalidInputError(f"{name} must be a whole number >= {low}, got {value!r}")
        filters = MemoryFilter(memory_types=memory_types, tags=tags, include_inactive=include_inactive)
        return self.store.list(Scope(user_id, tenant_id), filters, limit=limit, offset=offset, order_by=order_by)

    def history(
        self, user_id: str, memory_id: str | None = None, *, limit: int = 100, tenant_id: str = DEFAULT_TENANT
    ) -> list[MemoryEvent]:
        """Every change to one memory (or to all of the user's), oldest first."""
        return self.store.history(Scope(user_id, tenant_id), memory_id, limit=limit)
