"""Choosing a session backend, what each sends, and how each fails: down, slow, refused, or an error reply.

Failures are real ones: a port where nothing listens, a socket that accepts and never answers, the test
Upstash server made slower than the timeout or given a wrong token, a key of the wrong type in Redis.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from memory.config import get_settings
from memory.errors import ConfigurationError, SessionStoreError
from memory.models import Scope
from memory.sessions import SessionStore, Turn, open_session_store
from memory.sessions.base import session_key
from memory.sessions.local import LocalSessionStore
from memory.sessions.redis import RedisSessionStore
from memory.sessions.upstash import UpstashSessionStore
from tests.sessions_support import DEAD_PORT, REDIS_URL, UPSTASH_TOKEN, delete_tenant, fresh_scope, real_redis
from tests.upstash_server import UpstashServer, serve_upstash

SECRET = "my card number is 4111 1111 1111 1111"


@pytest.fixture(scope="module")
def upstash() -> Iterator[UpstashServer]:
    with serve_upstash(REDIS_URL, UPSTASH_TOKEN) as server:
        yield server


@pytest.fixture
def scope() -> Iterator[Scope]:
    scope = fresh_scope()
    yield scope
    delete_tenant(scope.tenant_id)


def upstash_store(
    monkeypatch: pytest.MonkeyPatch, url: str, token: str = UPSTASH_TOKEN, **settings: object
) -> SessionStore:
    monkeypatch.setenv("UPSTASH_REDIS_REST_URL", url)
    monkeypatch.setenv("UPSTASH_REDIS_REST_TOKEN", token)
    return open_session_store("upstash://", get_settings(**settings))


def assert_degrades(store: SessionStore, scope: Scope, caplog: pytest.LogCaptureFixture, within: float) -> None:
    """recent -> [] and append -> False, each logged and counted, fast; clear and forget_user raise."""
    caplog.set_level(logging.WARNING, logger="memory.sessions")
    started = time.monotonic()
    assert store.recent(scope, "s1") == []
    assert time.monotonic() - started < within
    assert store.append(scope, "s1", Turn("user", SECRET)) is False
    with pytest.raises(SessionStoreError) as raised:
        store.clear(scope, "s1")
    assert raised.value.__cause__ is not None
    with pytest.raises(SessionStoreError):
        store.forget_user(scope)
    assert (store.stats.read_failures, store.stats.append_failures, store.stats.delete_failures) == (1, 1, 2)
    assert store.stats.last_error and store.stats.last_error.startswith("SessionStoreError")
    warnings = [record for record in caplog.records if record.name == "memory.sessions"]
    assert [record.levelno for record in warnings] == [logging.WARNING] * 4
    assert "continuing without session context" in warnings[0].getMessage()
    assert warnings[0].session_key_hash in warnings[0].getMessage()  # type: ignore[attr-defined]
    assert SECRET not in caplog.text and scope.user_id not in caplog.text


# --- choosing a backend -------------------------------------------------------------------------------


def test_the_default_is_the_in_process_store() -> None:
    assert isinstance(open_session_store(), LocalSessionStore)


def test_session_store_url_and_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSION_STORE_URL", "rediss://:pw@cache.example.com:6380/2")
    monkeypatch.setenv("MEMORY_SESSION_MAX_TURNS", "7")
    monkeypatch.setenv("MEMORY_SESSION_TTL_SECONDS", "120")
    monkeypatch.setenv("MEMORY_SESSION_TIMEOUT_SECONDS", "0.5")
    store = open_session_store()  # no I/O: that host does not exist
    assert isinstance(store, RedisSessionStore)
    assert (store.max_turns, store.ttl_seconds, store.timeout_seconds) == (7, 120, 0.5)


def test_upstash_reads_its_url_and_token(monkeypatch: pytest.MonkeyPatch, upstash: UpstashServer) -> None:
    store = upstash_store(monkeypatch, upstash.url + "/")
    assert isinstance(store, UpstashSessionStore)
    assert store.rest_url == upstash.url
    assert UPSTASH_TOKEN not in repr(store)


def test_upstash_takes_the_token_its_secret_put_in_the_settings(
    monkeypatch: pytest.MonkeyPatch, upstash: UpstashServer, scope: Scope
) -> None:
    """On Lambda the token comes from MEMORY_UPSTASH_TOKEN_SECRET_ARN (memory.secrets puts it in the settings):
    it wins over the environment's, and the store works with it."""
    monkeypatch.setenv("UPSTASH_REDIS_REST_URL", upstash.url)
    monkeypatch.setenv("UPSTASH_REDIS_REST_TOKEN", "not-the-token")
    store = open_session_store("upstash://", get_settings(upstash_redis_rest_token=UPSTASH_TOKEN))
    assert store.append(scope, "s1", Turn("user", "hello")) is True
    assert [turn.content for turn in store.recent(scope, "s1")] == ["hello"]


@pytest.mark.parametrize(
    ("environ", "missing"),
    [
        ({}, "UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN"),
        ({"UPSTASH_REDIS_REST_URL": "https://x.upstash.io"}, "needs UPSTASH_REDIS_REST_TOKEN:"),
        ({"UPSTASH_REDIS_REST_TOKEN": "t", "UPSTASH_REDIS_REST_URL": " "}, "needs UPSTASH_REDIS_REST_URL:"),
    ],
)
def test_missing_upstash_credentials_are_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], missing: str
) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match="SESSION_STORE_URL=upstash:// needs") as raised:
        open_session_store("upstash://")
    assert missing in str(raised.value)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mongodb://admin:hunter2@db:27017", "SESSION_STORE_URL='mongodb://admin:***@db:27017': unknown session"),
        ("localhost:6379", "unknown session store; use one of: redis://host:6379/0"),
        ("redis://localhost:notaport/0", "SESSION_STORE_URL is not a valid URL"),
        ("upstash://my-db.upstash.io", "write just upstash://"),
    ],
)
def test_a_bad_url_is_one_clear_error(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        open_session_store(url)
    assert message in str(raised.value)
    assert "hunter2" not in str(raised.value)


def test_an_upstash_redis_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="must be the https:// REST URL"):
        upstash_store(monkeypatch, "rediss://default:x@my-db.upstash.io:6379")


@pytest.mark.parametrize(("url", "module"), [("redis://localhost:6379/0", "redis"), ("upstash://", "upstash_redis")])
def test_a_missing_driver_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, url: str, module: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # what find_spec reports for an uninstalled package
    with pytest.raises(
        ConfigurationError, match=rf"SESSION_STORE_URL=.* needs the {module} package.*agent-memory\[redis\]"
    ):
        open_session_store(url)


# --- degrading --------------------------------------------------------------------------------------


def test_a_redis_that_is_down_degrades(scope: Scope, caplog: pytest.LogCaptureFixture) -> None:
    store = open_session_store(f"redis://127.0.0.1:{DEAD_PORT}/0")
    assert_degrades(store, scope, caplog, within=1.0)
    assert "Connection refused" in (store.stats.last_error or "")


def test_a_redis_that_never_answers_degrades_within_the_timeout(scope: Scope, caplog: pytest.LogCaptureFixture) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts connections, never replies
        port = silent.getsockname()[1]
        store = open_session_store(f"redis://127.0.0.1:{port}/0", get_settings(session_timeout_seconds=0.3))
        assert_degrades(store, scope, caplog, within=0.55)  # one attempt: a timeout is not retried
        assert "Timeout" in (store.stats.last_error or "")
        store.close()


def test_a_slow_upstash_degrades_within_the_timeout(
    monkeypatch: pytest.MonkeyPatch, upstash: UpstashServer, scope: Scope, caplog: pytest.LogCaptureFixture
) -> None:
    store = upstash_store(monkeypatch, upstash.url, session_timeout_seconds=0.25)
    monkeypatch.setattr(upstash, "delay", 0.8)
    assert_degrades(store, scope, caplog, within=0.6)  # one attempt: no retry after the SDK's 3 s pause
    assert "ReadTimeout" in (store.stats.last_error or "")
    store.close()
    time.sleep(0.8)  # the server still runs the calls it was sent; let them land before the cleanup


def test_an_upstash_that_is_down_degrades(
    monkeypatch: pytest.MonkeyPatch, scope: Scope, caplog: pytest.LogCaptureFixture
) -> None:
    store = upstash_store(monkeypatch, f"http://127.0.0.1:{DEAD_PORT}")
    assert_degrades(store, scope, caplog, within=1.0)
    assert "ConnectError" in (store.stats.last_error or "")


def test_a_wrong_upstash_token_degrades(
    monkeypatch: pytest.MonkeyPatch, upstash: UpstashServer, scope: Scope, caplog: pytest.LogCaptureFixture
) -> None:
    store = upstash_store(monkeypatch, upstash.url, token="wrong")
    assert_degrades(store, scope, caplog, within=1.0)
    reply = httpx.post(upstash.url, json=["PING"], headers={"Authorization": "Bearer wrong"})
    assert (reply.status_code, reply.json()) == (401, {"error": "Unauthorized"})


@pytest.mark.parametrize("backend", ["redis", "upstash"])
def test_an_error_reply_is_a_failure_too(
    monkeypatch: pytest.MonkeyPatch,
    upstash: UpstashServer,
    scope: Scope,
    caplog: pytest.LogCaptureFixture,
    backend: str,
) -> None:
    real_redis().set(session_key(scope, "s1"), "a string, not a list")
    store = open_session_store(REDIS_URL) if backend == "redis" else upstash_store(monkeypatch, upstash.url)
    caplog.set_level(logging.WARNING, logger="memory.sessions")
    assert store.append(scope, "s1", Turn("user", SECRET)) is False
    assert store.recent(scope, "s1") == []
    assert "WRONGTYPE" in (store.stats.last_error or "")
    assert store.stats.failures == 2
    assert "WRONGTYPE" in caplog.text and SECRET not in caplog.text and SECRET[:10] not in store.stats.last_error
    store.close()


# --- what goes over the wire ------------------------------------------------------------------------


def test_redis_keeps_a_list_per_session_and_a_set_per_user(scope: Scope) -> None:
    store = open_session_store(REDIS_URL)
    turn = Turn("user", "hello")
    store.append(scope, "s1", turn)
    client = real_redis()
    key = session_key(scope, "s1")
    assert key == f"am:{{{scope.tenant_id}:user-1}}:session:s1"
    assert client.type(key) == "list" and client.lrange(key, 0, -1) == [turn.to_json()]
    index = f"am:{{{scope.tenant_id}:user-1}}:sessions"
    assert client.smembers(index) == {"s1"}
    assert 3590 <= client.ttl(key) <= 3600 and 3590 <= client.ttl(index) <= 3600
    store.close()
    store.close()


def test_upstash_sends_what_upstash_expects(
    monkeypatch: pytest.MonkeyPatch, upstash: UpstashServer, scope: Scope
) -> None:
    store = upstash_store(monkeypatch, upstash.url, session_timeout_seconds=1.5)
    upstash.requests.clear()
    store.append(scope, "s1", Turn("user", "hello"))
    store.recent(scope, "s1")
    assert [request["path"] for request in upstash.requests] == ["/multi-exec", "/"]
    transaction = json.loads(upstash.requests[0]["body"])
    assert [command[0] for command in transaction] == ["RPUSH", "LTRIM", "EXPIRE", "SADD", "EXPIRE"]
    for request in upstash.requests:
        headers = request["headers"]
        assert headers["Authorization"] == f"Bearer {UPSTASH_TOKEN}"
        assert headers["Upstash-Encoding"] == "base64"
        assert not [name for name in headers if name.lower().startswith("upstash-telemetry")]
    assert store._client._http._client.timeout == httpx.Timeout(1.5)  # type: ignore[attr-defined]
    store.close()


def test_the_test_server_encodes_as_upstash_does(upstash: UpstashServer, scope: Scope) -> None:
    key = session_key(scope, "raw")
    auth = {"Authorization": f"Bearer {UPSTASH_TOKEN}", "Upstash-Encoding": "base64"}
    assert httpx.post(upstash.url, json=["SET", key, "v"], headers=auth).json() == {"result": "OK"}
    assert httpx.post(upstash.url, json=["GET", key], headers=auth).json() == {"result": "dg=="}
    pipeline = httpx.post(upstash.url + "/pipeline", json=[["INCR", key], ["DEL", key]], headers=auth)
    assert pipeline.status_code == 200
    assert pipeline.json() == [{"error": "value is not an integer or out of range"}, {"result": 1}]
    error = httpx.post(upstash.url, json=["LPUSH"], headers=auth)
    assert error.status_code == 400 and "wrong number of arguments" in error.json()["error"]
    assert httpx.get(upstash.url, headers=auth).status_code == 405


def test_a_closed_store_reconnects(scope: Scope) -> None:
    store = open_session_store(REDIS_URL)
    store.append(scope, "s1", Turn("user", "before"))
    store.close()
    assert [turn.content for turn in store.recent(scope, "s1")] == ["before"]
    store.close()


def test_drivers_load_on_first_use_not_on_import_or_open() -> None:
    code = (
        "import os, sys\n"
        "from memory.sessions import open_session_store\n"
        "os.environ.update(UPSTASH_REDIS_REST_URL='https://x.upstash.io', UPSTASH_REDIS_REST_TOKEN='t')\n"
        "open_session_store('redis://127.0.0.1:1/0'); open_session_store('upstash://')\n"
        "print(sorted(m for m in ('redis', 'upstash_redis', 'httpx') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == "[]"
