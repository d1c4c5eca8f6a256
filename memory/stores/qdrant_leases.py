"""Maintenance leases (``MemoryStore.try_lease``) for Qdrant local mode: a table in this process.

Qdrant has no conditional write (no compare-and-set, no transaction), so a lease kept in a collection could be
taken by two clients at once. Local mode is different: one process holds the directory (qdrant-client locks
it), so every client of the data is in this process and a process-wide table under one lock excludes them
all. Expiry follows the monotonic clock, which no system clock step moves. A Qdrant server is shared by
processes this table cannot see: there the store lacks the ``leases`` capability and refuses to lease.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

from memory.models import Scope

_lock = threading.Lock()
# (data space, tenant, user) -> (owner, expires at on time.monotonic())
_leases: dict[tuple[str, str, str], tuple[str, float]] = {}


def space(location: str, prefix: str) -> str:
    """Whose data a lease guards: a directory and collection prefix, or (``:memory:``) one store's own data,
    which no other store shares."""
    if location == ":memory:":
        return f":memory:{uuid.uuid4().hex}"
    return f"{os.path.realpath(location)}:{prefix}"


def try_lease(data: str, scope: Scope, owner: str, ttl_seconds: float) -> bool:
    key, now = (data, scope.tenant_id, scope.user_id), time.monotonic()
    with _lock:
        held = _leases.get(key)
        if held is not None and held[0] != owner and held[1] > now:
            return False
        _leases[key] = (owner, now + ttl_seconds)
        return True


def release_lease(data: str, scope: Scope, owner: str | None = None) -> None:
    """Drop the scope's lease if ``owner`` holds it; any holder's when ``owner`` is ``None`` (``forget_user``)."""
    key = (data, scope.tenant_id, scope.user_id)
    with _lock:
        held = _leases.get(key)
        if held is not None and (owner is None or held[0] == owner):
            del _leases[key]
