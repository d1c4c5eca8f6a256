"""``upstash://``: Upstash Redis over its REST API with the ``upstash-redis`` SDK (HTTPS, no TCP connection
to exhaust: the choice for Lambda). The REST URL and token come from ``UPSTASH_REDIS_REST_URL`` and
``UPSTASH_REDIS_REST_TOKEN``.

The SDK's defaults do not suit a request path, so the client is built with:

- a real timeout: its ``httpx.Client`` is created with ``timeout=None`` (a stalled request would hang the
  turn), so the store sets ``timeout_seconds`` on it;
- ``rest_retries=0``: its retry sleeps 3 s first, longer than a degraded read should ever take;
- ``allow_telemetry=False``: no SDK, runtime or platform headers leave with each command.

Read-your-writes stays on, so ``recent`` after ``append`` sees the turn even on a read replica.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from memory.errors import ConfigurationError, SessionStoreError
from memory.sessions.commands import ClientSessionStore, Command

SYNC_TOKEN_HEADER = "Upstash-Sync-Token"


class UpstashSessionStore(ClientSessionStore):
    backend = "upstash"

    def __init__(self, rest_url: str, token: str, **options: Any) -> None:
        super().__init__(**options)
        self.rest_url = rest_url.rstrip("/")
        self._token = token

    def __repr__(self) -> str:
        return f"UpstashSessionStore({self.rest_url!r})"

    def _new_client(self) -> Any:
        from upstash_redis import Redis

        client = Redis(self.rest_url, self._token, rest_retries=0, allow_telemetry=False)
        http = getattr(getattr(client, "_http", None), "_client", None)
        if http is None or not hasattr(client, "_headers"):
            raise ConfigurationError(
                "SESSION_STORE_URL=upstash://: this upstash-redis release has no httpx client at "
                "Redis._http._client, so no timeout can be set; install upstash-redis>=1.0,<2"
            )
        http.timeout = self.timeout_seconds
        # The SDK adds this header on its first call and rewrites it after each. Adding it now, as
        # it would, keeps the shared headers dict the same size while threads send through it.
        client._headers.setdefault(SYNC_TOKEN_HEADER, "")
        return client

    def _run(self, commands: Sequence[Command], *, atomic: bool) -> list[Any]:
        client = self._connect()
        try:
            if len(commands) == 1 and not atomic:
                return [client.execute(list(commands[0]))]
            pipeline = client.multi() if atomic else client.pipeline()
            for command in commands:
                pipeline.execute(list(command))
            return pipeline.exec()
        # The SDK documents no exceptions and lets many escape: UpstashError for an error reply, httpx
        # errors for the network and timeouts, ValueError for a body that is not JSON, and AttributeError
        # or TypeError when /pipeline answers with one error object instead of a list (a wrong token).
        except Exception as exc:
            raise SessionStoreError(
                f"Upstash at UPSTASH_REDIS_REST_URL={self.rest_url!r} failed: {type(exc).__name__}: {exc}"
            ) from exc
