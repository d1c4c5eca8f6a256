"""``TurnRecord``: the write-back ledger entry of one conversation turn.

Why a ledger: write-back (extracting facts from a turn and storing them) runs after the reply, may fail
(Claude down, a refusal, a bad answer) and may run twice (a retried job, an SQS redelivery). The record
makes both safe:

- ``pending``: the turn is recorded before extraction, with its text, so a crash or an API error never
  loses what the user said. Once extraction answered, ``operations`` holds its answer, so a retry
  replays the same operations instead of asking the model again (a second answer could differ).
- ``failed``: extraction failed; ``error`` says why and ``attempts`` how often. The next write-back for
  the user (or ``agent-memory writeback --retry``) tries again.
- ``done``: applied. The text and operations are dropped (the memories hold what was kept; the ledger
  must not become a second, unforgettable copy of the conversation); ``result`` lists what was stored.
  A second write-back of the same turn id finds ``done`` and stores nothing.

Stores keep records per scope like memories (``forget_user`` deletes them too); ``save_turn`` upserts by
``(tenant_id, user_id, turn_id)``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from memory.errors import InvalidInputError
from memory.models import DEFAULT_TENANT, Scope, _identifier


class TurnStatus(StrEnum):
    PENDING = "pending"
    FAILED = "failed"
    DONE = "done"


def _timestamp(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInputError(f"{name} must be UNIX seconds (a finite number), got {value!r}")
    return round(float(value), 6)


@dataclass(slots=True)
class TurnRecord:
    """Where one turn's write-back got to. Timestamps are UNIX seconds (UTC), kept to the microsecond."""

    turn_id: str
    user_id: str
    tenant_id: str = DEFAULT_TENANT
    session_id: str | None = None
    status: TurnStatus = TurnStatus.PENDING
    user_message: str | None = None
    assistant_reply: str | None = None
    operations: list[dict[str, Any]] | None = None  # None: not extracted yet; []: nothing worth keeping
    result: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    error: str | None = None
    created_at: float = field(default_factory=time.time)
    updated_at: float | None = None

    def __post_init__(self) -> None:
        _identifier("turn_id", self.turn_id)
        _identifier("user_id", self.user_id)
        _identifier("tenant_id", self.tenant_id)
        if self.session_id is not None:
            _identifier("session_id", self.session_id)
        try:
            self.status = TurnStatus(self.status)
        except ValueError:
            raise InvalidInputError(
                f"status must be one of {[s.value for s in TurnStatus]}, got {self.status!r}"
            ) from None
        for name in ("user_message", "assistant_reply", "error"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise InvalidInputError(f"{name} must be a string or None, got {type(value).__name__}")
        if self.operations is not None and (
            not isinstance(self.operations, list) or not all(isinstance(op, dict) for op in self.operations)
        ):
            raise InvalidInputError("operations must be a list of JSON objects (dicts) or None")
        if not isinstance(self.result, dict):
            raise InvalidInputError("result must be a JSON object (a dict)")
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int) or self.attempts < 0:
            raise InvalidInputError(f"attempts must be a whole number >= 0, got {self.attempts!r}")
        self.created_at = _timestamp("created_at", self.created_at)
        self.updated_at = self.created_at if self.updated_at is None else _timestamp("updated_at", self.updated_at)

    @property
    def scope(self) -> Scope:
        return Scope(user_id=self.user_id, tenant_id=self.tenant_id)

    def as_dict(self) -> dict[str, Any]:
        return {
            "turn_id": self.turn_id,
            "tenant_id": self.tenant_id,
            "user_id": self.user_id,
            "session_id": self.session_id,
            "status": self.status.value,
            "user_message": self.user_message,
            "assistant_reply": self.assistant_reply,
            "operations": self.operations,
            "result": self.result,
            "attempts": self.attempts,
            "error": self.error,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
