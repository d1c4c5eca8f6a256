"""``memory://``: sessions in this process, for development, tests and a single-process server.

It interprets the same Redis commands the other backends send (only the few that ``commands.py`` and
``memory.cache`` use),
with Redis's index rules and expiry, under one lock: a batch is as atomic as MULTI/EXEC. Nothing is shared
between processes or survives a restart. Expired keys are dropped when touched and swept once a second.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from memory.errors import SessionStoreError
from memory.sessions.commands import Command, CommandSessionStore

SWEEP_INTERVAL_SECONDS = 1.0
WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
COMMANDS = frozenset(
    {"RPUSH", "LRANGE", "LTRIM", "LREM", "EXPIRE", "TTL", "SADD", "SREM", "SMEMBERS", "DEL"}
    | {"ZADD", "ZRANGE", "ZSCORE"}
)


def _bounds(length: int, start: int, stop: int) -> tuple[int, int]:
    """Redis's inclusive [start, stop] (negative from the end) as a Python slice, clamped."""
    start = max(length + start if start < 0 else start, 0)
    stop = min(length + stop if stop < 0 else stop, length - 1)
    return start, stop + 1


class LocalSessionStore(CommandSessionStore):
    backend = "memory"

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, **options: Any) -> None:
        super().__init__(**options)
        self._clock = clock
        self._values: dict[str, list[str] | set[str] | dict[str, float]] = {}
        self._expires: dict[str, float] = {}
        self._lock = threading.Lock()
        self._last_sweep = 0.0
        self._now = 0.0

    def _run(self, commands: Sequence[Command], *, atomic: bool) -> list[Any]:
        with self._lock:
            self._now = now = self._clock()
            if now - self._last_sweep >= SWEEP_INTERVAL_SECONDS:
                for key in [key for key, at in self._expires.items() if at <= now]:
                    self._drop(key)
                self._last_sweep = now
            return [self._execute(str(name).upper(), [str(arg) for arg in args]) for name, *args in commands]

    def close(self) -> None:
        """Nothing to release: the data lives as long as this object."""

    def _execute(self, name: str, args: list[str]) -> Any:
        handler = getattr(self, f"_{name.lower()}", None)
        if name not in COMMANDS or handler is None:
            raise NotImplementedError(f"the in-process session store does not interpret {name}")
        for key in args if name == "DEL" else args[:1]:
            if self._expires.get(key, self._now + 1) <= self._now:
                self._drop(key)
        return handler(*args)

    def _list(self, key: str) -> list[str]:
        values = self._values.setdefault(key, [])
        if not isinstance(values, list):
            raise SessionStoreError(WRONGTYPE)
        return values

    def _set(self, key: str) -> set[str]:
        members = self._values.setdefault(key, set())
        if not isinstance(members, set):
            raise SessionStoreError(WRONGTYPE)
        return members

    def _zset(self, key: str) -> dict[str, float]:
        members = self._values.setdefault(key, {})
        if not isinstance(members, dict):
            raise SessionStoreError(WRONGTYPE)
        return members

    def _rpush(self, key: str, *values: str) -> int:
        stored = self._list(key)
        stored.extend(values)
        return len(stored)

    def _lrange(self, key: str, start: str, stop: str) -> list[str]:
        values = self._list(key)
        self._forget_if_empty(key)
        begin, end = _bounds(len(values), int(start), int(stop))
        return list(values[begin:end])

    def _ltrim(self, key: str, start: str, stop: str) -> str:
        self._values[key] = self._lrange(key, start, stop)
        self._forget_if_empty(key)
        return "OK"

    def _lrem(self, key: str, count: str, value: str) -> int:
        """Remove occurrences of ``value``: the first ``count`` (all when 0; from the end when negative)."""
        values = self._list(key)
        limit = int(count)
        positions = [index for index, item in enumerate(values) if item == value]
        if limit < 0:
            positions.reverse()
        dropped = set(positions[: abs(limit)] if limit else positions)
        self._values[key] = [item for index, item in enumerate(values) if index not in dropped]
        self._forget_if_empty(key)
        return len(dropped)

    def _zadd(self, key: str, *args: str) -> int:
        """ZADD key [GT] score member [score member ...]: with GT an existing member's score only rises."""
        greater_only = bool(args) and args[0].upper() == "GT"
        pairs = args[1:] if greater_only else args
        if not pairs or len(pairs) % 2:
            raise SessionStoreError("ERR syntax error")
        members, added = self._zset(key), 0
        for score_text, member in zip(pairs[::2], pairs[1::2], strict=True):
            score = float(score_text)
            if member not in members:
                added += 1
            elif greater_only and score <= members[member]:
                continue
            members[member] = score
        return added

    def _zrange(self, key: str, start: str, stop: str) -> list[str]:
        """Members by score ascending (ties by member), Redis's inclusive index range."""
        members = self._zset(key)
        self._forget_if_empty(key)
        ordered = sorted(members, key=lambda member: (members[member], member))
        begin, end = _bounds(len(ordered), int(start), int(stop))
        return ordered[begin:end]

    def _zscore(self, key: str, member: str) -> str | None:
        members = self._zset(key)
        self._forget_if_empty(key)
        score = members.get(member)
        return None if score is None else repr(score)

    def _expire(self, key: str, seconds: str) -> int:
        if key not in self._values:
            return 0
        self._expires[key] = self._now + int(seconds)
        return 1

    def _ttl(self, key: str) -> int:
        if key not in self._values:
            return -2
        return round(self._expires[key] - self._now) if key in self._expires else -1

    def _sadd(self, key: str, *members: str) -> int:
        stored = self._set(key)
        added = set(members) - stored
        stored.update(added)
        return len(added)

    def _srem(self, key: str, *members: str) -> int:
        stored = self._set(key)
        removed = stored & set(members)
        stored.difference_update(removed)
        self._forget_if_empty(key)
        return len(removed)

    def _smembers(self, key: str) -> set[str]:
        members = set(self._set(key))
        self._forget_if_empty(key)
        return members

    def _del(self, *keys: str) -> int:
        return sum(self._drop(key) for key in keys)

    def _forget_if_empty(self, key: str) -> None:
        if not self._values.get(key):
            self._drop(key)

    def _drop(self, key: str) -> bool:
        self._expires.pop(key, None)
        return self._values.pop(key, None) is not None
