"""What every session backend shares: the session logic, written once as Redis commands.

A backend only says how a batch of commands travels (``_run``): over redis-py's TCP connection, over
Upstash's REST API, or into the small in-process interpreter of ``local.py``. So the three cannot drift
apart: trimming, TTLs, the per-user index and the failure policy are this file's, nowhere else.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from memory.errors import InvalidInputError, SessionStoreError
from memory.models import Scope
from memory.sessions.base import (
    SessionStats,
    Turn,
    check_scope,
    check_session_id,
    key_hash,
    session_key,
    sessions_key,
)

logger = logging.getLogger("memory.sessions")

Command = Sequence[str | int]


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"{name} must be a positive integer, got {value!r}")
    return value


class CommandSessionStore:
    """A ``SessionStore`` over any transport that executes Redis commands (see ``memory.sessions.base``)."""

    backend = "abstract"

    def __init__(self, *, max_turns: int = 20, ttl_seconds: int = 3600, timeout_seconds: float = 2.0) -> None:
        self.max_turns = _positive_int("max_turns", max_turns)
        self.ttl_seconds = _positive_int("ttl_seconds", ttl_seconds)
        if isinstance(timeout_seconds, bool) or not isinstance(timeout_seconds, int | float) or timeout_seconds <= 0:
            raise InvalidInputError(f"timeout_seconds must be a positive number, got {timeout_seconds!r}")
        self.timeout_seconds = float(timeout_seconds)
        self.stats = SessionStats()

    def _run(self, commands: Sequence[Command], *, atomic: bool) -> list[Any]:
        """Execute ``commands`` in order (in one MULTI/EXEC when ``atomic``) and return their replies.

        Raises only ``SessionStoreError`` (the driver's error on ``__cause__``), within about
        ``timeout_seconds``.
        """
        raise NotImplementedError

    def execute(self, commands: Sequence[Command], *, atomic: bool = False) -> list[Any]:
        """Run raw commands over this backend's transport: how ``memory.cache`` shares the session backends.

        Raises ``SessionStoreError`` as ``_run`` does; the caller decides what a failure means.
        """
        return self._run(commands, atomic=atomic)

    def close(self) -> None:
        """Release connections; the next call reconnects."""

    def __enter__(self) -> CommandSessionStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def append(self, scope: Scope, session_id: str, turn: Turn) -> bool:
        key = session_key(check_scope(scope), check_session_id(session_id))
        if not isinstance(turn, Turn):
            raise InvalidInputError(f"turn must be a memory.sessions.Turn, got {type(turn).__name__}")
        index = sessions_key(scope)
        commands: list[Command] = [
            ["RPUSH", key, turn.to_json()],
            ["LTRIM", key, -self.max_turns, -1],
            ["EXPIRE", key, self.ttl_seconds],
            ["SADD", index, session_id],
            ["EXPIRE", index, self.ttl_seconds],
        ]
        try:
            self._run(commands, atomic=True)
        except SessionStoreError as exc:
            self._warn("append", key, exc, "the turn is not in the session context")
            self.stats.record("append_failures", exc)
            return False
        self.stats.record("appends")
        return True

    def recent(self, scope: Scope, session_id: str, n: int | None = None) -> list[Turn]:
        key = session_key(check_scope(scope), check_session_id(session_id))
        count = self.max_turns if n is None else min(_positive_int("n", n), self.max_turns)
        try:
            [raw] = self._run([["LRANGE", key, -count, -1]], atomic=False)
        except SessionStoreError as exc:
            self._warn("recent", key, exc, "continuing without session context")
            self.stats.record("read_failures", exc)
            return []
        self.stats.record("reads")
        turns: list[Turn] = []
        seen: set[str] = set()
        for item in raw or []:
            try:
                turn = Turn.from_json(item)
            except InvalidInputError as exc:
                self._warn("recent", key, exc, "skipping an entry that is not a turn")
                continue
            if turn.turn_id not in seen:
                seen.add(turn.turn_id)
                turns.append(turn)
        return turns

    def clear(self, scope: Scope, session_id: str) -> None:
        key = session_key(check_scope(scope), check_session_id(session_id))
        self._delete("clear", key, [["DEL", key], ["SREM", sessions_key(scope), session_id]])

    def forget_user(self, scope: Scope) -> int:
        index = sessions_key(check_scope(scope))
        [members] = self._delete("forget_user", index, [["SMEMBERS", index]], count=False)
        session_ids = sorted(members or ())
        if not session_ids:
            return 0
        # SREM exactly the ids read, not DEL the set: a session another request adds meanwhile stays listed,
        # so it can still be forgotten, instead of living on unindexed until its TTL.
        keys = [session_key(scope, session_id) for session_id in session_ids]
        deleted, _ = self._delete("forget_user", index, [["DEL", *keys], ["SREM", index, *session_ids]])
        return int(deleted)

    def _delete(self, op: str, key: str, commands: list[Command], *, count: bool = True) -> list[Any]:
        try:
            replies = self._run(commands, atomic=len(commands) > 1)
        except SessionStoreError as exc:
            self._warn(op, key, exc, "the deletion may not have happened; the caller sees the error")
            self.stats.record("delete_failures", exc)
            raise
        if count:
            self.stats.record("deletes")
        return replies

    def _warn(self, op: str, key: str, exc: BaseException, consequence: str) -> None:
        digest = key_hash(key)
        logger.warning(
            "session store %s: %s failed for key %s, %s: %s",
            self.backend,
            op,
            digest,
            consequence,
            exc,
            extra={"session_backend": self.backend, "session_op": op, "session_key_hash": digest},
        )


class ClientSessionStore(CommandSessionStore):
    """A ``CommandSessionStore`` over a network client (redis-py, Upstash): built on first use, under a lock,
    and released by ``close`` (the next call builds a new one)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._client: Any = None
        self._lock = threading.Lock()

    def _new_client(self) -> Any:
        """The backend's client, configured with ``timeout_seconds``; no I/O needed."""
        raise NotImplementedError

    def _connect(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._new_client()
            return self._client

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
