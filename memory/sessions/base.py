"""The ``SessionStore`` protocol: the last few turns of a conversation, kept briefly, per user.

Scoping: every call takes a ``Scope`` (tenant and user) as the memory stores do. A session belongs to one
user: the same ``session_id`` under another user or tenant is another session, so no call can read or
delete someone else's turns.

Keys (Redis and Upstash; the in-process store uses the same ones)::

    am:{<tenant>:<user>}:session:<session_id>    LIST of Turn JSON, oldest first, at most max_turns long
    am:{<tenant>:<user>}:sessions                SET of the user's session ids, for forget_user

Each part is percent-encoded (``urllib.parse.quote(part, safe="")``), so an id containing ``:`` or ``{``
cannot collide with another key. The braces are a Redis Cluster hash tag: all of a user's keys share one
slot, so the transactions below also work on a cluster (ElastiCache cluster mode, Upstash).

Writes: ``append`` is one transaction (MULTI/EXEC): RPUSH the turn, LTRIM to the last ``max_turns``,
EXPIRE the list, SADD the session id to the user's set, EXPIRE the set. Concurrent appends therefore never
lose one another's turns and the list never outgrows ``max_turns``. Both keys expire ``ttl_seconds`` after
the *last* append, so the set always outlives every session it names.

Failures: Redis is an optimisation, never a reason to fail a turn. ``recent`` returns ``[]`` and ``append``
returns ``False`` when the backend is down or slower than ``timeout_seconds``; both log a WARNING on the
``memory.sessions`` logger (with a hash of the session key, never the text) and count the failure in
``stats``. ``clear`` and ``forget_user`` raise ``SessionStoreError``: a deletion the user asked for must not
fail silently. Bad arguments raise ``InvalidInputError`` everywhere.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable
from urllib.parse import quote

from memory.errors import InvalidInputError
from memory.models import Scope, _identifier

ROLES = ("user", "assistant")
KEY_PREFIX = "am"


@dataclass(frozen=True, slots=True)
class Turn:
    """One message of a conversation. ``created_at`` is UNIX seconds; ``turn_id`` makes retries idempotent."""

    role: Literal["user", "assistant"]
    content: str
    created_at: float = field(default_factory=time.time)
    turn_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise InvalidInputError(f"role must be 'user' or 'assistant', got {self.role!r}")
        if not isinstance(self.content, str) or not self.content.strip():
            raise InvalidInputError("content of a turn must be a non-empty string")
        created = self.created_at
        if isinstance(created, bool) or not isinstance(created, int | float) or not math.isfinite(created):
            raise InvalidInputError(f"created_at must be UNIX seconds (a finite number), got {created!r}")
        object.__setattr__(self, "created_at", float(created))
        _identifier("turn_id", self.turn_id)

    def to_json(self) -> str:
        data = {"role": self.role, "content": self.content, "created_at": self.created_at, "turn_id": self.turn_id}
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Turn:
        """The turn ``to_json`` wrote. Raises ``InvalidInputError`` for anything else."""
        try:
            data = json.loads(text)
            return cls(data["role"], data["content"], data["created_at"], data["turn_id"])
        except (ValueError, TypeError, KeyError) as exc:
            raise InvalidInputError(f"not a stored turn: {type(exc).__name__}") from exc

    def as_message(self) -> dict[str, str]:
        """The turn as an Anthropic Messages API message."""
        return {"role": self.role, "content": self.content}


def _part(value: str) -> str:
    return quote(value, safe="")


def user_key(scope: Scope) -> str:
    """The hash-tagged prefix of every key of one user."""
    return f"{KEY_PREFIX}:{{{_part(scope.tenant_id)}:{_part(scope.user_id)}}}"


def session_key(scope: Scope, session_id: str) -> str:
    """The LIST holding the session's turns."""
    return f"{user_key(scope)}:session:{_part(session_id)}"


def sessions_key(scope: Scope) -> str:
    """The SET of the user's session ids."""
    return f"{user_key(scope)}:sessions"


def key_hash(key: str) -> str:
    """A short stable reference to a key for logs: it identifies the session without naming the user."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


def check_scope(scope: object) -> Scope:
    if not isinstance(scope, Scope):
        raise InvalidInputError(f"scope must be a memory.Scope(user_id=..., tenant_id=...), got {scope!r}")
    return scope


def check_session_id(session_id: object) -> str:
    return _identifier("session_id", session_id)


@dataclass
class SessionStats:
    """In-process counters of one store, for metrics and tests. Thread-safe; reset by building a new one."""

    appends: int = 0
    append_failures: int = 0
    reads: int = 0
    read_failures: int = 0
    deletes: int = 0
    delete_failures: int = 0
    last_error: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record(self, counter: str, error: BaseException | None = None) -> None:
        with self._lock:
            setattr(self, counter, getattr(self, counter) + 1)
            if error is not None:
                self.last_error = f"{type(error).__name__}: {error}"

    @property
    def failures(self) -> int:
        return self.append_failures + self.read_failures + self.delete_failures

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "appends": self.appends,
                "append_failures": self.append_failures,
                "reads": self.reads,
                "read_failures": self.read_failures,
                "deletes": self.deletes,
                "delete_failures": self.delete_failures,
                "failures": self.failures,
                "last_error": self.last_error,
            }


@runtime_checkable
class SessionStore(Protocol):
    """Recent-turn context: the last ``max_turns`` turns of each session, expiring ``ttl_seconds`` after the
    last one. Construction does no I/O; the first call connects."""

    backend: str
    max_turns: int
    ttl_seconds: int
    timeout_seconds: float
    stats: SessionStats

    def append(self, scope: Scope, session_id: str, turn: Turn) -> bool:
        """Add ``turn`` at the end of the session, drop turns beyond ``max_turns``, restart the TTL.

        Returns ``True`` once stored; ``False`` when the backend failed (logged and counted; never raises
        for that).
        """
        ...

    def recent(self, scope: Scope, session_id: str, n: int | None = None) -> list[Turn]:
        """The last ``n`` turns (default and cap: ``max_turns``), *oldest first*, ready for the Messages
        API. ``[]`` for an unknown or expired session, and when the backend failed (logged and counted).
        A turn stored twice (a retried write) is returned once."""
        ...

    def clear(self, scope: Scope, session_id: str) -> None:
        """Delete the session's turns. Clearing an unknown session is no error. Raises ``SessionStoreError``."""
        ...

    def forget_user(self, scope: Scope) -> int:
        """Delete every session of the user; returns how many still existed. Raises ``SessionStoreError``."""
        ...

    def close(self) -> None:
        """Release connections. Safe to call twice; a later call reconnects."""
        ...
