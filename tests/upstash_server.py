"""Upstash's REST API in front of a real Redis, so the real ``upstash-redis`` SDK runs end to end in tests.

It speaks what the SDK sends (read off upstash_redis 1.8 ``http.py`` and ``client.py``) and what Upstash
documents, as its local twin SRH (hiett/serverless-redis-http) does:

- ``POST /`` with a JSON command array; ``POST /pipeline`` and ``POST /multi-exec`` (MULTI/EXEC, here
  ``pipeline(transaction=True)``) with an array of them. Any other method is 405, any other path 404.
- ``Authorization: Bearer <token>``; a missing or wrong token is 401 ``{"error": "Unauthorized"}``.
- A reply is ``{"result": ...}``; an error reply is HTTP 400 ``{"error": "..."}``; a batch answers 200 with
  one ``{"result"}`` or ``{"error"}`` per command; Redis unreachable is 500.
- ``Upstash-Encoding: base64``: every string in a result is base64, except a bare ``OK``; numbers, nulls
  and errors are never encoded.

``delay`` makes every request sleep first, to play a slow network; ``requests`` records what arrived.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import redis


def encode(value: Any, as_base64: bool) -> Any:
    """A raw RESP reply as Upstash puts it in JSON."""
    if isinstance(value, list | tuple | set):
        return [encode(item, as_base64) for item in value]
    if isinstance(value, bytes):
        if as_base64 and value != b"OK":
            return base64.b64encode(value).decode("ascii")
        return value.decode("utf-8", errors="replace")
    return value


class UpstashServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # the default 5 drops (and 1 s later retries) the 6th of 8 concurrent connects

    def __init__(self, redis_url: str, token: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.token = token
        self.delay = 0.0
        self.requests: list[dict[str, Any]] = []
        # RESP2, as Upstash's REST API answers (redis-py 8 speaks RESP3 by default, where ZSCORE is a double,
        # not the string Upstash returns), and raw replies (bytes, ints, lists, None), as Redis sent them:
        # no redis-py conversions to bool or dict.
        self.redis = redis.Redis.from_url(redis_url, protocol=2)
        self.redis.response_callbacks = {}

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (a timeout test) closes its socket; that is expected, not an error."""

    def run(self, path: str, body: Any) -> tuple[int, Any]:
        """(status, JSON reply) for one request, as Upstash answers it."""
        if path == "/":
            return 200, self.redis.execute_command(*self._command(body))
        if path not in ("/pipeline", "/multi-exec") or not isinstance(body, list):
            raise LookupError(path)
        pipeline = self.redis.pipeline(transaction=path == "/multi-exec")
        for command in body:
            pipeline.execute_command(*self._command(command))
        return 200, pipeline.execute(raise_on_error=False)

    @staticmethod
    def _command(value: Any) -> list[Any]:
        if not isinstance(value, list) or not value or not all(isinstance(v, str | int | float) for v in value):
            raise redis.ResponseError("ERR failed to parse command")
        return value


class _Handler(BaseHTTPRequestHandler):
    server: UpstashServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes; do not wait 40 ms between them

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest shows failures, not access logs."""

    def do_GET(self) -> None:
        self._reply(405, {"error": "Method Not Allowed"})

    do_PUT = do_DELETE = do_GET

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        if self.server.delay:
            time.sleep(self.server.delay)
        if self.headers.get("Authorization") != f"Bearer {self.server.token}":
            return self._reply(401, {"error": "Unauthorized"})
        as_base64 = self.headers.get("Upstash-Encoding") == "base64"
        try:
            request = json.loads(body)
        except ValueError:
            return self._reply(400, {"error": "ERR failed to parse the request body as JSON"})
        try:
            status, result = self.server.run(self.path, request)
        except LookupError:
            return self._reply(404, {"error": f"no such endpoint: {self.path}"})
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            return self._reply(500, {"error": f"Redis is unreachable: {exc}"})
        except redis.ResponseError as exc:
            return self._reply(400, {"error": str(exc)})
        if self.path == "/":
            return self._reply(status, {"result": encode(result, as_base64)})
        items = [
            {"error": str(item)} if isinstance(item, Exception) else {"result": encode(item, as_base64)}
            for item in result
        ]
        return self._reply(status, items)

    def _reply(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextmanager
def serve_upstash(redis_url: str, token: str) -> Iterator[UpstashServer]:
    """An ``UpstashServer`` on a free loopback port, serving in a thread until the block ends."""
    server = UpstashServer(redis_url, token)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="upstash-test-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        server.redis.close()
        thread.join(timeout=5)
