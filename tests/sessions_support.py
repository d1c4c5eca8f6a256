"""What the session tests share: the real Redis they use and how each backend's store is built.

Redis is the one on 127.0.0.1:6379 (the machine starts it; .ci/run starts one when it is not running).
Tests use database 13 and a fresh tenant each, and delete that tenant's keys afterwards, so they neither
see nor disturb other data. A Redis that is not running fails the tests that need it: nothing is skipped.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from memory.config import get_settings
from memory.models import Scope
from memory.sessions import SessionStore, open_session_store
from tests.upstash_server import UpstashServer

REDIS_URL = "redis://127.0.0.1:6379/13"
UPSTASH_TOKEN = "test-token-" + uuid.uuid4().hex
BACKENDS = ("memory", "redis", "upstash")
# A port where nothing listens: connections are refused at once.
DEAD_PORT = 1


def real_redis() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True, socket_timeout=5)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(
            f"no Redis at {REDIS_URL}: start one with `redis-server --daemonize yes --bind 127.0.0.1 --port 6379 "
            f'--save "" --appendonly no` (.ci/run does) ({exc})'
        )
    return client


def delete_tenant(tenant_id: str) -> None:
    client = real_redis()
    keys = list(client.scan_iter(match=f"am:{{{tenant_id}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def fresh_scope(user_id: str = "user-1") -> Scope:
    return Scope(user_id=user_id, tenant_id=f"test-{uuid.uuid4().hex}")


def backend_url(backend: str, server: UpstashServer, monkeypatch: pytest.MonkeyPatch) -> str:
    if backend == "memory":
        return "memory://"
    if backend == "redis":
        real_redis().close()
        return REDIS_URL
    monkeypatch.setenv("UPSTASH_REDIS_REST_URL", server.url)
    monkeypatch.setenv("UPSTASH_REDIS_REST_TOKEN", server.token)
    return "upstash://"


def store_factory(
    backend: str, server: UpstashServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., SessionStore]]:
    """Yields ``make(**settings)``: a new store of ``backend`` with those ``session_*`` settings."""
    stores: list[SessionStore] = []

    def make(**settings: Any) -> SessionStore:
        url = backend_url(backend, server, monkeypatch)
        store = open_session_store(url, get_settings(**{f"session_{k}": v for k, v in settings.items()}))
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()
