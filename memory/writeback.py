"""Write-back: turn what a user said into stored memories, once per turn id, never losing the turn.

``write_back`` runs after the reply (inline locally, from a queue in Lambda) and goes through the
turn's ``TurnRecord`` (``memory.turns``):

1. A ``done`` record means this turn was applied already: nothing is stored twice.
2. The turn is recorded (``pending``, with its text) before any model call, so a failure loses nothing.
3. Extraction runs (unless a previous attempt already saved its operations, which are then replayed
   as they were). A failure marks the record ``failed`` with the error, logs it with the turn id, and
   returns; it never raises into the turn. The user's next write-back retries it (up to
   ``MEMORY_WRITEBACK_MAX_ATTEMPTS`` times), and ``agent-memory writeback`` retries on demand.
4. Operations apply through ``Memory``: an add or update gets an id derived from (scope, turn, index),
   so a replay after a crash finds it and skips it; a delete archives (``Memory.retire``).
5. The record becomes ``done`` and drops the text (the memories keep what was worth keeping).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from memory import telemetry
from memory.errors import AgentMemoryError, ExtractionError, MemoryNotFoundError
from memory.extraction import Action, Extractor, Operation
from memory.models import DEFAULT_TENANT, MemoryStatus, Scope
from memory.service import Memory
from memory.turns import TurnRecord, TurnStatus
from memory.usage import TokenUsage

logger = logging.getLogger("memory.writeback")
_OPERATION_IDS = uuid.UUID("6f1c2a52-3b0e-4d5e-9a43-7d1f0b6c8e21")


def operation_id(scope: Scope, turn_id: str, index: int) -> str:
    """The id the ``index``-th operation of a turn gives the memory it writes: the same on every replay."""
    return uuid.uuid5(_OPERATION_IDS, f"{scope.tenant_id}\x1f{scope.user_id}\x1f{turn_id}\x1f{index}").hex


@dataclass(slots=True)
class WriteBackResult:
    """What one write-back did. ``status``: done, already_done, queued (spooled while the store was down: a
    later write-back runs it), or failed (then ``error`` says why)."""

    turn_id: str
    status: str
    extractor: str | None = None
    applied: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    usage: TokenUsage | None = None
    cost_usd: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "turn_id": self.turn_id,
            "status": self.status,
            "extractor": self.extractor,
            "applied": self.applied,
            "error": self.error,
            "usage": self.usage.as_dict() if self.usage else None,
            "cost_usd": self.cost_usd,
        }


def write_back(
    memory: Memory,
    extractor: Extractor,
    *,
    user_id: str,
    turn_id: str,
    message: str,
    reply: str | None = None,
    session_id: str | None = None,
    tenant_id: str = DEFAULT_TENANT,
) -> WriteBackResult:
    """Extract and store what is worth remembering from one turn; idempotent per ``turn_id``."""
    record = record_turn(
        memory,
        user_id=user_id,
        turn_id=turn_id,
        message=message,
        reply=reply,
        session_id=session_id,
        tenant_id=tenant_id,
    )
    return process(memory, extractor, record)


def record_turn(
    memory: Memory,
    *,
    user_id: str,
    turn_id: str,
    message: str,
    reply: str | None = None,
    session_id: str | None = None,
    tenant_id: str = DEFAULT_TENANT,
    error: str | None = None,
) -> TurnRecord:
    """Record a turn ``pending`` (or return its existing record): what write-back starts from, and all that a
    deferred write-back (the queue) does now. With ``error`` (Claude gave no reply) it is recorded ``failed``
    with that reason, so the user's next turn retries it at once."""
    scope = Scope(user_id, tenant_id)
    existing = memory.store.get_turn(scope, turn_id)
    if existing is not None:
        return existing
    status = TurnStatus.PENDING if error is None else TurnStatus.FAILED
    record = TurnRecord(
        turn_id, user_id, tenant_id, session_id, status, user_message=message, assistant_reply=reply, error=error
    )
    return memory.store.save_turn(record)


def process(memory: Memory, extractor: Extractor, record: TurnRecord) -> WriteBackResult:
    """Bring one recorded turn to ``done`` (or ``failed``); see the module docstring for the steps."""
    if record.status is TurnStatus.DONE:
        return WriteBackResult(record.turn_id, "already_done", applied=record.result.get("applied", []))
    usage = cost = None
    extractor_name = record.result.get("extractor")
    if record.operations is None:
        try:
            extraction = _extract(memory, extractor, record)
        except (ExtractionError, AgentMemoryError) as exc:
            return _failed(memory, record, exc, extractor.name)
        record.operations = [op.as_dict() for op in extraction.operations]
        record.result = {"extractor": extraction.extractor}
        record.updated_at = time.time()
        memory.store.save_turn(record)  # a crash from here on replays these, not a new extraction
        usage, cost, extractor_name = extraction.usage, extraction.cost_usd, extraction.extractor
    try:
        applied = [
            _apply(memory, record, index, Operation.from_dict(data)) for index, data in enumerate(record.operations)
        ]
    except AgentMemoryError as exc:
        return _failed(memory, record, exc, extractor_name)
    record.status = TurnStatus.DONE
    record.user_message = record.assistant_reply = None
    record.operations = []
    # The ledger keeps ids and outcomes only: contents live in the memories (and go when they are forgotten).
    record.result = {"extractor": extractor_name, "applied": [_without_content(a) for a in applied]}
    record.error = None
    record.updated_at = time.time()
    memory.store.save_turn(record)
    outcome = "retried" if record.attempts else "ok"
    telemetry.current().write_back(record.scope, outcome=outcome, applied=applied, extractor=extractor_name)
    return WriteBackResult(record.turn_id, "done", extractor_name, applied, usage=usage, cost_usd=cost)


def _without_content(applied: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in applied.items() if key != "content"}


def retry_pending(
    memory: Memory,
    extractor: Extractor,
    scope: Scope,
    *,
    max_attempts: int | None = None,
    pending_older_than: float | None = None,
    limit: int = 20,
) -> list[WriteBackResult]:
    """Process the scope's pending and failed turns, oldest first.

    ``max_attempts`` skips turns tried as often; ``pending_older_than`` (seconds) skips ``pending`` turns
    touched more recently than that, which are most likely still being written back by another request.
    """
    results = drain_spool(memory, extractor, scope)
    now = time.time()
    for record in memory.store.list_turns(scope, (TurnStatus.PENDING, TurnStatus.FAILED), limit=limit):
        if max_attempts is not None and record.attempts >= max_attempts:
            continue
        recent = pending_older_than is not None and now - record.updated_at < pending_older_than
        if record.status is TurnStatus.PENDING and recent:
            continue
        results.append(process(memory, extractor, record))
    return results


def drain_spool(memory: Memory, extractor: Extractor, scope: Scope) -> list[WriteBackResult]:
    """Write back the turns spooled in the cache while the store was down (``memory.cache``), oldest first.

    Each leaves the spool only after ``write_back`` returned, so the ledger holds it (done or failed); a
    store failure stops the drain with the rest still spooled. A turn drained twice is applied once.
    """
    if memory.cache is None:
        return []
    results = []
    for item in memory.cache.spooled(scope):
        try:
            fields = json.loads(item)
        except ValueError:
            # The user as telemetry names users (a hash): logs carry no user id in clear.
            logger.error("spooled write-back of user %s is not JSON; left in the spool", telemetry.user_hash(scope))
            continue
        try:
            results.append(write_back(memory, extractor, **fields))
        except AgentMemoryError as exc:
            logger.warning("spooled turn %s stays spooled: %s", fields.get("turn_id"), exc)
            break
        try:
            memory.cache.unspool(scope, item)
        except AgentMemoryError as exc:  # it stays spooled; the next drain finds it done and skips it
            logger.warning("spooled turn %s is written back but still spooled: %s", fields.get("turn_id"), exc)
    return results


def _extract(memory: Memory, extractor: Extractor, record: TurnRecord):
    if not record.user_message:
        raise ExtractionError("the turn's text is gone; it cannot be extracted again")
    context = memory.settings.extraction_context
    existing = (
        memory.search(record.user_id, record.user_message, top_k=context, tenant_id=record.tenant_id) if context else []
    )
    return extractor.extract(record.user_message, record.assistant_reply, existing, turn_id=record.turn_id)


def _failed(memory: Memory, record: TurnRecord, exc: Exception, extractor: str | None) -> WriteBackResult:
    record.status = TurnStatus.FAILED
    record.attempts += 1
    record.error = f"{type(exc).__name__}: {exc}"
    record.updated_at = time.time()
    logger.warning("write-back failed for turn %s (attempt %d): %s", record.turn_id, record.attempts, record.error)
    try:
        memory.store.save_turn(record)
    except AgentMemoryError:
        logger.exception("could not record the failed write-back of turn %s", record.turn_id)
    telemetry.current().write_back(record.scope, outcome="failed", extractor=extractor, error_type=type(exc).__name__)
    return WriteBackResult(record.turn_id, "failed", error=record.error)


def _apply(memory: Memory, record: TurnRecord, index: int, op: Operation) -> dict[str, Any]:
    scope = record.scope
    new_id = operation_id(scope, record.turn_id, index)
    outcome: dict[str, Any] = {"action": op.action.value, "memory_id": None, "outcome": "skipped"}
    if op.action is Action.DELETE:
        try:
            retired = memory.retire(record.user_id, op.target_id, reason=op.reason, tenant_id=record.tenant_id)
        except MemoryNotFoundError:
            return {**outcome, "memory_id": op.target_id, "outcome": "already_gone"}
        return {**outcome, "memory_id": retired.id, "outcome": "retired"}
    if memory.store.get(scope, new_id) is not None:
        return {**outcome, "memory_id": new_id, "outcome": "already_applied"}
    supersedes = None
    if op.action is Action.UPDATE:
        target = memory.store.get(scope, op.target_id)
        supersedes = target.id if target is not None and target.status is MemoryStatus.ACTIVE else None
    result = memory.remember(
        record.user_id,
        op.content,
        memory_type=op.memory_type.value,
        importance=op.importance,
        session_id=record.session_id,
        supersedes=supersedes,
        memory_id=new_id,
        metadata={"source": "write-back", "turn_id": record.turn_id},
        tenant_id=record.tenant_id,
    )
    return {
        "action": op.action.value,
        "memory_id": result.entry.id,
        "outcome": result.action.value,
        "previous_id": result.previous_id,
        "content": result.entry.content,
    }
