"""The scheduled consolidation job: expire, merge, summarise into a profile, prune, purge; losing nothing.

Per user, in this order, each step a few store calls that each commit on their own:

1. **expire**: delete memories past the TTL the user set (the only deletion of something still current).
2. **merge**: near duplicates that slipped in (cosine >= ``MEMORY_DEDUP_THRESHOLD``): the newer one stays,
   as the write path does with a correction, with the higher importance; the older is archived
   (``superseded_by`` the newer).
3. **summarise**: old (``MEMORY_CONSOLIDATION_MIN_AGE_DAYS``), unimportant (below
   ``MEMORY_CONSOLIDATION_MAX_IMPORTANCE``) memories are clustered by embedding, and each cluster of
   ``MEMORY_CONSOLIDATION_MIN_CLUSTER`` or more becomes one ``summary`` memory written by a cheap model
   (``memory.summariser``). The summary is committed *before* its sources are archived
   (``superseded_by`` the summary, never deleted), and its id is derived from its sources' ids, so a run
   that crashed in between finds it and archives the rest instead of writing a second one.
4. **profile**: one ``summary`` memory tagged ``profile`` per user, rewritten from the user's most important
   memories when they changed (their ids and update times are hashed into its metadata).
5. **prune**: beyond ``MEMORY_CONSOLIDATION_MAX_MEMORIES`` active memories, the least important and least
   recent are archived (``pruned``).
6. **purge**: sources archived into a summary more than ``MEMORY_CONSOLIDATION_RETENTION_DAYS`` ago are
   deleted, if the summary that holds their facts is still active.

A crash at any point therefore leaves every fact active, or archived with a link to the active memory that
holds it; the next run finishes the work. A run holds the user's maintenance lease (``MemoryStore.
try_lease``, in the database, so two runs on different machines never work on the same user; a process
lock where a store has none); a user whose lease another run holds is skipped and left for the next run.
A second run right after a first changes nothing. Without a Claude client it does everything but steps 3
and 4 and says so. ``run_all`` walks every user in batches (``MemoryStore.scopes``) and stops within
``MEMORY_CONSOLIDATION_BUDGET_SECONDS``, saving where it stopped, so the next scheduled run resumes there.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from memory import telemetry
from memory.clustering import clusters, pairs_at_least
from memory.config import Settings
from memory.errors import AgentMemoryError
from memory.models import EventKind, MemoryEntry, MemoryFilter, MemoryStatus, MemoryType, Scope
from memory.service import Memory
from memory.summariser import ClaudeSummariser, ConsolidationError, Written
from memory.turns import TurnRecord, TurnStatus

logger = logging.getLogger(__name__)

STEPS = ("expire", "merge", "summarise", "profile", "prune", "purge")
PROFILE_TAG = "profile"
PROFILE_SOURCES = 30  # the most important memories a profile is written from
PROFILE_MAX_CHARS = 600  # about 170 tokens: the profile rides in most turns' prompts (a core memory)
SUMMARY_CALLS = 4  # model calls of one user's summaries in flight at once
PAGE = 1000
LEASE_SECONDS = 900.0  # longer than one user takes; renewed before every step
# Where run_all records the last user it finished: a ledger record in a scope no user has.
CURSOR_SCOPE = Scope(user_id="consolidation", tenant_id="__agent_memory__")
CURSOR_ID = "cursor"


@dataclass
class UserReport:
    """What consolidating one user did (or, with ``dry_run``, would do)."""

    tenant_id: str
    user_id: str
    expired: int = 0
    merged: int = 0
    summaries: int = 0
    summarised: int = 0  # sources archived into a summary
    profile: str = "unchanged"  # written, unchanged, skipped (no model), none (no memories), failed
    pruned: int = 0
    purged: int = 0
    model_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    active_before: int = 0
    active_after: int = 0
    skipped: str | None = None  # why nothing was done: locked (another run holds the user)
    errors: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any((self.expired, self.merged, self.summarised, self.pruned, self.purged, self.profile == "written"))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunReport:
    users: list[UserReport] = field(default_factory=list)
    complete: bool = False  # every user was visited: the next run starts from the first again
    resumed_after: list[str] | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


class Consolidator:
    """Consolidates users of one ``Memory``; ``summariser`` None: everything but summaries and profiles."""

    def __init__(
        self,
        memory: Memory,
        summariser: ClaudeSummariser | None,
        settings: Settings | None = None,
        *,
        owner: str | None = None,
    ) -> None:
        self.memory, self.summariser = memory, summariser
        self.settings = settings or memory.settings
        self.owner = owner or f"consolidate-{uuid.uuid4().hex[:12]}"  # whose lease: this run's

    @classmethod
    def from_settings(cls, settings: Settings, memory: Memory | None = None) -> Consolidator:
        memory = memory or Memory.from_settings(settings)
        summariser = None
        if settings.anthropic_api_key is not None:
            from memory.claude import make_client

            client = make_client(settings)
            summariser = ClaudeSummariser(client, settings.extraction_model, max_chars=settings.max_content_chars)
        return cls(memory, summariser, settings)

    @property
    def note(self) -> str | None:
        if self.summariser is None:
            return "no ANTHROPIC_API_KEY: expired, duplicate and surplus memories handled; no summaries or profiles"
        return None

    # -- one user ------------------------------------------------------------------------------------
    def run_user(self, scope: Scope, *, dry_run: bool = False) -> UserReport:
        report = UserReport(scope.tenant_id, scope.user_id)
        with self._lease(scope) as held:
            if not held:
                report.skipped = "locked"
                return report
            now = time.time()
            report.active_before = self.memory.store.count(scope)
            for step in STEPS:
                if not dry_run:
                    self._renew(scope)
                getattr(self, f"_{step}")(scope, report, now, dry_run)
            report.active_after = report.active_before if dry_run else self.memory.store.count(scope)
        if not dry_run:
            telemetry.current().consolidation(
                scope,
                archived=report.merged + report.summarised + report.pruned,
                summaries=report.summaries + (report.profile == "written"),
                errors=len(report.errors),
            )
        return report

    def _expire(self, scope: Scope, report: UserReport, now: float, dry_run: bool) -> None:
        everything = self._entries(scope, MemoryFilter(include_expired=True))
        for entry in (e for e in everything if e.is_expired(now)):
            report.expired += 1
            if not dry_run:
                self.memory.store.delete(scope, entry.id)

    def _merge(self, scope: Scope, report: UserReport, now: float, dry_run: bool) -> None:
        entries = [e for e in self._entries(scope) if e.embedding is not None and not _is_profile(e)]
        entries.sort(key=lambda e: (-e.created_at, e.id))  # newest first: a newer statement wins
        gone: set[str] = set()
        for keeper, twin in pairs_at_least(entries, self.settings.dedup_threshold):
            if keeper.id in gone or twin.id in gone:
                continue
            gone.add(twin.id)
            report.merged += 1
            if dry_run:
                continue
            if twin.importance > keeper.importance:
                self.memory.store.update(
                    scope,
                    keeper.id,
                    {"importance": twin.importance},
                    event=EventKind.MERGED,
                    related_id=twin.id,
                    details={"consolidation": "near duplicate"},
                )
            self.memory._archive(twin, keeper.id, automatic=True, reason="consolidation: near duplicate")

    def _summarise(self, scope: Scope, report: UserReport, now: float, dry_run: bool) -> None:
        active = self._entries(scope)
        by_id = {entry.id: entry for entry in active}
        for summary in (e for e in active if "consolidated_from" in e.metadata):  # a run stopped halfway through
            for source in (by_id.pop(i) for i in summary.metadata["consolidated_from"] if i in by_id):
                report.summarised += 1
                if not dry_run:
                    self.memory._archive(source, summary.id, automatic=True, reason="consolidation: summarised")
        if self.summariser is None:
            return
        settings = self.settings
        old = now - settings.consolidation_min_age_days * 86_400
        candidates = [
            e
            for e in by_id.values()
            if e.embedding is not None
            and e.memory_type is not MemoryType.SUMMARY
            and e.importance < settings.consolidation_max_importance
            and e.updated_at <= old
        ]
        candidates.sort(key=lambda e: (e.created_at, e.id))
        groups = clusters(candidates, settings.consolidation_cluster_similarity, settings.consolidation_max_cluster)
        chosen = [group for group in groups if len(group) >= settings.consolidation_min_cluster]
        report.summaries += len(chosen)
        report.summarised += sum(len(group) for group in chosen)
        if dry_run or not chosen:
            return
        written = self._write_all(chosen, scope, report)
        texts = [item.text for item in written if item is not None]
        vectors = iter(self.memory.embedder.embed(texts)) if texts else iter(())  # one batch for the user
        for sources, item in zip(chosen, written, strict=True):
            if item is None:
                report.summaries -= 1
                report.summarised -= len(sources)
                continue
            ids = sorted(entry.id for entry in sources)
            summary_id = "summary-" + hashlib.sha256("\n".join(ids).encode()).hexdigest()[:24]
            importance = max(entry.importance for entry in sources)
            summary = self._add(
                scope,
                summary_id,
                item.text,
                next(vectors),
                tags=(),
                importance=importance,
                metadata={"consolidated_from": ids},
            )
            for source in sources:  # only now: the summary is committed
                self.memory._archive(source, summary.id, automatic=True, reason="consolidation: summarised")

    def _write_all(self, groups: list[list[MemoryEntry]], scope: Scope, report: UserReport) -> list[Written | None]:
        """One summary per group, ``SUMMARY_CALLS`` model calls at a time (a real cheap model takes a second or
        two per call: one after the other, a user with 20 clusters would take most of a minute)."""
        assert self.summariser is not None
        summariser, label = self.summariser, f"consolidation:{telemetry.user_hash(scope)}"

        def write(sources: list[MemoryEntry]) -> Written | ConsolidationError:
            try:
                return summariser.write("cluster", sources, label=label)
            except ConsolidationError as exc:
                return exc

        with ThreadPoolExecutor(max_workers=SUMMARY_CALLS, thread_name_prefix="consolidation") as pool:
            answers = list(pool.map(write, groups))
        results: list[Written | None] = []
        for sources, answer in zip(groups, answers, strict=True):
            if isinstance(answer, ConsolidationError):
                report.errors.append(f"cluster of {len(sources)}: {answer}")
                results.append(None)
            else:
                self._count(answer, report)
                results.append(answer)
        return results

    def _profile(self, scope: Scope, report: UserReport, now: float, dry_run: bool) -> None:
        top = [
            e
            for e in self.memory.store.list(scope, limit=PROFILE_SOURCES + 1, order_by="importance")
            if not _is_profile(e)
        ][:PROFILE_SOURCES]
        profile_id = "profile-" + hashlib.sha256(f"{scope.tenant_id}\n{scope.user_id}".encode()).hexdigest()[:24]
        existing = self.memory.store.get(scope, profile_id)
        if not top:
            report.profile = "none"
            return
        inputs = hashlib.sha256("\n".join(f"{e.id}@{e.updated_at}" for e in top).encode()).hexdigest()
        if (
            existing is not None
            and existing.status is MemoryStatus.ACTIVE
            and existing.metadata.get("inputs") == inputs
        ):
            return
        if self.summariser is None:
            report.profile = "skipped"
            return
        report.profile = "written"
        if dry_run:
            return
        try:
            written = self.summariser.write(
                "profile", top, label=f"consolidation:{telemetry.user_hash(scope)}", max_chars=PROFILE_MAX_CHARS
            )
        except ConsolidationError as exc:
            report.profile = "failed"
            report.errors.append(f"profile: {exc}")
            return
        self._count(written, report)
        metadata = {"profile": True, "inputs": inputs, "sources": [e.id for e in top]}
        embedding = self.memory.embedder.embed([written.text])[0]
        if existing is None:
            self._add(
                scope, profile_id, written.text, embedding, tags=(PROFILE_TAG,), importance=0.9, metadata=metadata
            )
        else:
            changes = {
                "content": written.text,
                "embedding": embedding,
                "metadata": metadata,
                "status": MemoryStatus.ACTIVE,
                "superseded_by": None,
            }
            self.memory.store.update(scope, profile_id, changes, details={"consolidation": "profile"})

    def _prune(self, scope: Scope, report: UserReport, now: float, dry_run: bool) -> None:
        surplus = self.memory.store.count(scope) - self.settings.consolidation_max_memories
        if surplus <= 0:
            return
        if dry_run:
            report.pruned = surplus
            return
        keep = self.settings.consolidation_max_memories
        report.pruned = len(self.memory.store.prune(scope, keep, ranking=self.settings.ranking, now=now))

    def _purge(self, scope: Scope, report: UserReport, now: float, dry_run: bool) -> None:
        cutoff = now - self.settings.consolidation_retention_days * 86_400
        archived = self._entries(scope, MemoryFilter(include_inactive=True, include_expired=True))
        summaries = {e.id: e for e in archived if e.status is MemoryStatus.ACTIVE and "consolidated_from" in e.metadata}
        for entry in archived:
            holder = summaries.get(entry.superseded_by or "")
            if (
                entry.status is MemoryStatus.SUPERSEDED
                and holder is not None
                and entry.updated_at <= cutoff
                and entry.id in holder.metadata["consolidated_from"]
            ):
                report.purged += 1
                if not dry_run:
                    self.memory.store.delete(scope, entry.id)

    # -- every user ----------------------------------------------------------------------------------
    def run_all(
        self,
        *,
        dry_run: bool = False,
        budget_seconds: float | None = None,
        on_user: Callable[[UserReport], None] | None = None,
    ) -> RunReport:
        """Every user with memories, from where the last run stopped, until done or the budget is spent."""
        started = time.monotonic()
        budget = self.settings.consolidation_budget_seconds if budget_seconds is None else budget_seconds
        run = RunReport(notes=[self.note] if self.note else [])
        after = None if dry_run else self._load_cursor()
        run.resumed_after = [after.tenant_id, after.user_id] if after else None
        slowest = 0.0
        while True:
            page = self.memory.store.scopes(after=after, limit=100)
            if not page:
                run.complete = True
                after = None
                break
            for scope in page:
                if run.users and time.monotonic() - started + 2 * slowest > budget:  # one user at least
                    run.seconds = time.monotonic() - started
                    if not dry_run:
                        self._save_cursor(after)
                    return run
                begun = time.monotonic()
                report = self.run_user(scope, dry_run=dry_run)
                slowest = max(slowest, time.monotonic() - begun)
                run.users.append(report)
                after = scope
                if on_user is not None:
                    on_user(report)
        if not dry_run:
            self._save_cursor(None)
        run.seconds = time.monotonic() - started
        return run

    def _load_cursor(self) -> Scope | None:
        record = self.memory.store.get_turn(CURSOR_SCOPE, CURSOR_ID)
        after = record.result.get("after") if record is not None else None
        return Scope(after[1], after[0]) if isinstance(after, list) and len(after) == 2 else None

    def _save_cursor(self, after: Scope | None) -> None:
        result = {"after": [after.tenant_id, after.user_id] if after else None, "saved_at": time.time()}
        record = TurnRecord(
            CURSOR_ID,
            CURSOR_SCOPE.user_id,
            CURSOR_SCOPE.tenant_id,
            status=TurnStatus.DONE,
            operations=[],
            result=result,
        )
        self.memory.store.save_turn(record)

    # -- helpers -------------------------------------------------------------------------------------
    def _entries(self, scope: Scope, filters: MemoryFilter | None = None) -> list[MemoryEntry]:
        entries: list[MemoryEntry] = []
        while True:
            page = self.memory.store.list(scope, filters, limit=PAGE, offset=len(entries))
            entries.extend(page)
            if len(page) < PAGE:
                return entries

    @staticmethod
    def _count(written: Written, report: UserReport) -> None:
        report.model_calls += 1
        report.input_tokens += written.usage.input_tokens
        report.output_tokens += written.usage.output_tokens

    def _add(
        self,
        scope: Scope,
        memory_id: str,
        text: str,
        embedding: Any,
        *,
        tags: tuple[str, ...],
        importance: float,
        metadata: dict[str, Any],
    ) -> MemoryEntry:
        """Store a summary as it is: not through ``remember``, whose dedup could fold it into one of its own
        sources (which this run is about to archive)."""
        entry = MemoryEntry(
            id=memory_id,
            user_id=scope.user_id,
            tenant_id=scope.tenant_id,
            content=text,
            memory_type=MemoryType.SUMMARY,
            importance=importance,
            tags=tags,
            metadata=metadata,
            embedding=embedding,
            embedding_model=self.memory.embedder.model_name,
        )
        try:
            return self.memory.store.add(entry)
        except AgentMemoryError as exc:  # the same text is already an active memory: that one holds the facts
            holder = self.memory.store.get_by_hash(scope, entry.content_hash)
            if holder is None:
                raise
            logger.info("summary %s is already memory %s (%s)", memory_id, holder.id, exc)
            return holder

    @contextmanager
    def _lease(self, scope: Scope) -> Iterator[bool]:
        store = self.memory.store
        if "leases" in store.capabilities:
            held = store.try_lease(scope, self.owner, LEASE_SECONDS)
            try:
                yield held
            finally:
                if held:
                    store.release_lease(scope, self.owner)
            return
        lock = _process_lock(scope)
        held = lock.acquire(blocking=False)
        try:
            yield held
        finally:
            if held:
                lock.release()

    def _renew(self, scope: Scope) -> None:
        if "leases" in self.memory.store.capabilities and not self.memory.store.try_lease(
            scope, self.owner, LEASE_SECONDS
        ):
            raise AgentMemoryError(f"lost the consolidation lease of {scope.user_id!r}; stopping this user")


def all_scopes(store: Any) -> Iterator[Scope]:
    """Every scope with memories, in the store's order (ids only: cheap enough to count a run's users)."""
    after = None
    while page := store.scopes(after=after, limit=500):
        yield from page
        after = page[-1]


_locks: dict[Scope, threading.Lock] = {}
_locks_guard = threading.Lock()


def _process_lock(scope: Scope) -> threading.Lock:
    """Where a store has no leases (a Qdrant server): runs in this process at least never overlap."""
    with _locks_guard:
        return _locks.setdefault(scope, threading.Lock())


def _is_profile(entry: MemoryEntry) -> bool:
    return PROFILE_TAG in entry.tags and bool(entry.metadata.get("profile"))
