"""The Anthropic Messages API on a loopback port, so the real ``anthropic`` SDK runs end to end in tests.

It speaks what the SDK sends and what the API documents (read off anthropic 2.14 ``_base_client.py`` and
``types/message.py``):

- ``POST /v1/messages`` with a JSON body. Any other method is 405, any other path 404.
- The key, in ``x-api-key`` or (as anthropic 2.x sends it) ``Authorization: Bearer``, must equal the
  server's: missing or wrong is 401 ``authentication_error`` "invalid x-api-key". A missing
  ``anthropic-version`` header, a body that is not a JSON object, or no ``model``, ``max_tokens`` or
  ``messages`` is 400 ``invalid_request_error``. Requests refused this way do not consume the script.
- A reply is a Message: ``id``, ``type``, ``role``, the request's ``model``, ``content`` blocks,
  ``stop_reason``, ``stop_sequence`` and ``usage`` (input tokens guessed as request bytes / 4, output
  tokens from the reply's text; a reply's ``usage`` overrides either). An error is
  ``{"type": "error", "error": {"type", "message"}, "request_id"}``. Every response carries a
  ``request-id`` header and a Content-Length, so the SDK's pooled keep-alive connections work.

Answers are scripted: ``reply_text``, ``reply_tool_use``, ``reply_error``, ``reply_refusal``, ``reply_slow``
and ``reply_with`` (a callable computing the answer from the request body) queue one answer each, used in
order, each once. With the script empty, ``default`` answers (a short text reply unless set). ``requests``
records every request that arrived, refused or not.

Retries are the SDK's own: it retries 408, 409, 429 and 5xx (529 included), waits ``retry-after-ms`` when
sent (``reply_error(..., retry_after_ms=1)`` keeps tests fast), and obeys ``x-should-retry``.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import anthropic

API_KEY = "test-key"
DEFAULT_TEXT = "OK"


@dataclass(frozen=True)
class Reply:
    """One answer. With status 200, ``payload`` is a partial Message that each request completes (id, model,
    usage...); otherwise it is sent as it is. ``delay`` seconds pass before the answer goes out."""

    status: int = 200
    payload: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


Responder = Callable[[dict[str, Any]], "dict[str, Any] | Reply"]
"""Computes an answer from the request body: a (partial) Message dict, completed like a scripted one, or a
``Reply``. If it raises, the client gets a 500 ``api_error`` naming the exception, marked not to retry."""


def text_reply(text: str, *, usage: dict[str, int] | None = None, stop_reason: str = "end_turn") -> Reply:
    return Reply(
        payload=_drop_none({"content": [{"type": "text", "text": text}], "stop_reason": stop_reason, "usage": usage})
    )


def tool_use_reply(
    name: str, input: dict[str, Any], *, text: str | None = None, usage: dict[str, int] | None = None
) -> Reply:
    """Claude calling tool ``name`` with ``input`` (after ``text``, if given); stop_reason ``tool_use``."""
    call = {"type": "tool_use", "name": name, "input": input}  # each answer gets a fresh id
    content = [{"type": "text", "text": text}, call] if text else [call]
    return Reply(payload=_drop_none({"content": content, "stop_reason": "tool_use", "usage": usage}))


def refusal_reply(text: str = "", *, usage: dict[str, int] | None = None) -> Reply:
    """The safety classifiers stepping in: stop_reason ``refusal``, with whatever text came before."""
    content = [{"type": "text", "text": text}] if text else []
    return Reply(payload=_drop_none({"content": content, "stop_reason": "refusal", "usage": usage}))


def error_reply(
    status: int, error_type: str, message: str, *, retry_after_ms: int | None = None, should_retry: bool | None = None
) -> Reply:
    """An API error: 429 ``rate_limit_error``, 529 ``overloaded_error``, 500 ``api_error``, 400... The SDK waits
    ``retry_after_ms`` before a retry; ``should_retry`` sends ``x-should-retry``, which overrides its policy."""
    headers: dict[str, str] = {}
    if retry_after_ms is not None:
        headers["retry-after-ms"] = str(retry_after_ms)
    if should_retry is not None:
        headers["x-should-retry"] = "true" if should_retry else "false"
    return Reply(status, {"type": "error", "error": {"type": error_type, "message": message}}, headers)


class MessagesAPI(ThreadingHTTPServer):
    """The fake API on a free loopback port; ``with MessagesAPI() as api:`` serves in a thread until the end."""

    daemon_threads = True
    request_queue_size = 64  # the default 5 drops (and 1 s later retries) the 6th of 8 concurrent connects

    def __init__(self, api_key: str = API_KEY, *, default: Reply | Responder | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.api_key = api_key
        self.default: Reply | Responder = default or text_reply(DEFAULT_TEXT)
        self.requests: list[dict[str, Any]] = []
        self._script: deque[Reply | Responder] = deque()
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()  # wakes slow replies, so stop() never waits out a delay
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def pending(self) -> int:
        """Scripted answers not used yet."""
        return len(self._script)

    def start(self) -> Self:
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), name="messages-api", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: slow replies give up, open connections close, the thread is joined. Idempotent."""
        self._stopping.set()
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        with self._lock:
            connections = list(self._connections)
        for connection in connections:  # idle keep-alive connections would hold their handler threads
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)
        self.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- the script ---------------------------------------------------------------------------------------

    def reply(self, answer: Reply | Responder) -> None:
        """Queue one answer: a ``Reply`` (see the ``*_reply`` builders) or a ``Responder``."""
        with self._lock:
            self._script.append(answer)

    def reply_text(self, text: str, *, usage: dict[str, int] | None = None, stop_reason: str = "end_turn") -> None:
        self.reply(text_reply(text, usage=usage, stop_reason=stop_reason))

    def reply_tool_use(
        self, name: str, input: dict[str, Any], *, text: str | None = None, usage: dict[str, int] | None = None
    ) -> None:
        self.reply(tool_use_reply(name, input, text=text, usage=usage))

    def reply_refusal(self, text: str = "", *, usage: dict[str, int] | None = None) -> None:
        self.reply(refusal_reply(text, usage=usage))

    def reply_error(
        self,
        status: int,
        error_type: str,
        message: str,
        *,
        retry_after_ms: int | None = None,
        should_retry: bool | None = None,
    ) -> None:
        self.reply(error_reply(status, error_type, message, retry_after_ms=retry_after_ms, should_retry=should_retry))

    def reply_slow(self, seconds: float, then: Reply | None = None) -> None:
        """Wait ``seconds`` (or until ``stop()``), then answer ``then`` (the default text reply if None)."""
        self.reply(replace(then or text_reply(DEFAULT_TEXT), delay=seconds))

    def reply_with(self, respond: Responder) -> None:
        """Answer the next request with ``respond(body)``."""
        self.reply(respond)

    # --- serving ------------------------------------------------------------------------------------------

    def answer(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple[Reply, str]:
        """The reply to one request, and its request id."""
        request_id = f"req_01{secrets.token_hex(12)}"
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", errors="replace")
        with self._lock:
            self.requests.append({"path": path, "headers": headers, "body": body})
        reply = self._choose(method, path, headers, body, len(raw))
        payload = dict(reply.payload)
        if reply.status != 200:
            payload.setdefault("request_id", request_id)
        return replace(reply, payload=payload), request_id

    def _choose(self, method: str, path: str, headers: dict[str, str], body: Any, size: int) -> Reply:
        if urlsplit(path).path != "/v1/messages":
            return error_reply(404, "not_found_error", f"Not found: {path}")
        if method != "POST":
            return error_reply(405, "invalid_request_error", f"Method {method} not allowed; use POST")
        # anthropic 2.x sends the key as "Authorization: Bearer"; older SDKs and curl examples as x-api-key.
        bearer = headers.get("authorization", "").removeprefix("Bearer ")
        key = headers.get("x-api-key") or bearer
        if not key:
            return error_reply(401, "authentication_error", "x-api-key header is required")
        if key != self.api_key:
            return error_reply(401, "authentication_error", "invalid x-api-key")
        if "anthropic-version" not in headers:
            return error_reply(400, "invalid_request_error", "anthropic-version: header is required")
        if not isinstance(body, dict):
            return error_reply(400, "invalid_request_error", "The request body is not a JSON object")
        for name, kind in (("model", str), ("max_tokens", int), ("messages", list)):
            if name not in body:
                return error_reply(400, "invalid_request_error", f"{name}: Field required")
            if not isinstance(body[name], kind):
                return error_reply(400, "invalid_request_error", f"{name}: Input should be a valid {kind.__name__}")
        with self._lock:
            answer = self._script.popleft() if self._script else self.default
        if not isinstance(answer, Reply):
            try:
                result = answer(body)
            except Exception as exc:
                message = f"the test responder raised {exc!r}"
                return error_reply(500, "api_error", message, should_retry=False)
            answer = result if isinstance(result, Reply) else Reply(payload=result)
        if answer.status != 200:
            return answer
        return replace(answer, payload=_message(answer.payload, body["model"], size))

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (a timeout test) or a stop() closes the socket: expected, not an error."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: MessagesAPI
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes; do not wait 40 ms between them

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest shows failures, not access logs."""

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {name.lower(): value for name, value in self.headers.items()}
        reply, request_id = self.server.answer(self.command, self.path, headers, raw)
        if reply.delay and self.server._stopping.wait(reply.delay):
            self.close_connection = True  # stopped mid-delay: hang up without an answer
            return
        data = json.dumps(reply.payload).encode("utf-8")
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", request_id)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_DELETE = do_PATCH = do_POST


def anthropic_client(server: MessagesAPI, **kwargs: Any) -> anthropic.Anthropic:
    """The real SDK client, pointed at ``server`` with its key; no retries and a 5 s timeout unless given."""
    import anthropic

    kwargs.setdefault("api_key", server.api_key)
    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("timeout", 5.0)
    return anthropic.Anthropic(base_url=server.url, **kwargs)


def _message(partial: dict[str, Any], model: str, request_size: int) -> dict[str, Any]:
    """A full Message from a partial one: the fields the API always sends, and usage estimated."""
    message: dict[str, Any] = {
        "id": f"msg_01{secrets.token_hex(11)}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        **partial,
    }
    message["content"] = [
        {"id": f"toolu_01{secrets.token_hex(11)}", **block} if block.get("type") == "tool_use" else block
        for block in message["content"]
    ]
    produced = sum(len(block.get("text") or json.dumps(block.get("input", ""))) for block in message["content"])
    message["usage"] = {
        "input_tokens": max(1, request_size // 4),
        "output_tokens": max(1, produced // 4),  # never 0, as the API counts some even for an empty reply
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        **(partial.get("usage") or {}),
    }
    return message


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}
