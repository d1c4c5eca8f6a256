"""``redis://host:6379/0`` and ``rediss://`` (TLS): redis-py over TCP, for a local Redis or ElastiCache.

One client (and its connection pool) per store, created on first use. Every socket operation has the
store's timeout, and only a dropped connection is retried, once and at once (a Lambda thawed after the
server closed its idle socket reconnects instead of losing the turn's context). A timeout is not retried:
the caller's wait stays near ``timeout_seconds``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from memory.errors import SessionStoreError
from memory.sessions.commands import ClientSessionStore, Command
from memory.stores import redact_url

PIPELINE_ERROR_MARKER = "of pipeline caused error: "


def _reason(exc: BaseException) -> str:
    """The error without what redis-py prefixes to a pipeline's: the failed command and its arguments,
    which would put the turn's text in the logs."""
    text = str(exc)
    return text.split(PIPELINE_ERROR_MARKER, 1)[-1]


class RedisSessionStore(ClientSessionStore):
    backend = "redis"

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(**options)
        self.url = url

    def _new_client(self) -> Any:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        return redis.Redis.from_url(
            self.url,
            decode_responses=True,
            socket_timeout=self.timeout_seconds,
            socket_connect_timeout=self.timeout_seconds,
            retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
        )

    def _run(self, commands: Sequence[Command], *, atomic: bool) -> list[Any]:
        import redis

        try:
            client = self._connect()
            if len(commands) == 1 and not atomic:
                return [client.execute_command(*commands[0])]
            pipeline = client.pipeline(transaction=atomic)
            for command in commands:
                pipeline.execute_command(*command)
            return pipeline.execute()
        except (redis.RedisError, OSError) as exc:
            raise SessionStoreError(
                f"Redis at SESSION_STORE_URL={redact_url(self.url)!r} failed: {type(exc).__name__}: {_reason(exc)}"
            ) from exc
