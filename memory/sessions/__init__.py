"""Recent-turn context, chosen by ``SESSION_STORE_URL``: ``open_session_store()`` returns a ``SessionStore``.

from memory import Scope
from memory.sessions import Turn, open_session_store
sessions = open_session_store("redis://localhost:6379/0")
sessions.append(Scope(user_id="u1"), "s1", Turn("user", "Hi, I'm planning a trip to Lisbon"))
context = [turn.as_message() for turn in sessions.recent(Scope(user_id="u1"), "s1")]
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any
from urllib.parse import urlsplit

from memory.config import Settings, get_settings
from memory.errors import ConfigurationError
from memory.sessions.base import SessionStats, SessionStore, Turn
from memory.stores import redact_url

SUPPORTED_SESSION_URLS = (
    "redis://host:6379/0 (rediss:// for TLS), upstash:// (with UPSTASH_REDIS_REST_URL and "
    "UPSTASH_REDIS_REST_TOKEN set), memory:// (in this process)"
)
UPSTASH_VARIABLES = ("UPSTASH_REDIS_REST_URL", "UPSTASH_REDIS_REST_TOKEN")


def _require(module: str, url: str) -> None:
    """Fail now, not at the first turn (where the failure would only degrade), when a driver is missing."""
    if importlib.util.find_spec(module) is None:
        raise ConfigurationError(
            f"SESSION_STORE_URL={redact_url(url)!r} needs the {module} package, which is not installed: "
            "pip install 'agent-memory[redis]'"
        )


def _upstash_credentials(url: str, settings: Settings) -> tuple[str, str]:
    """The REST URL and token: from the environment, the token from ``settings`` first (where a Lambda handler
    put it from ``MEMORY_UPSTASH_TOKEN_SECRET_ARN``'s secret: ``memory.secrets``)."""
    if urlsplit(url).netloc or urlsplit(url).path.strip("/"):
        raise ConfigurationError(
            f"SESSION_STORE_URL={url!r}: write just upstash:// and put the REST URL in UPSTASH_REDIS_REST_URL"
        )
    values = {name: os.environ.get(name, "").strip() for name in UPSTASH_VARIABLES}
    if settings.upstash_redis_rest_token is not None:
        values["UPSTASH_REDIS_REST_TOKEN"] = settings.upstash_redis_rest_token.get_secret_value().strip()
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise ConfigurationError(
            f"SESSION_STORE_URL=upstash:// needs {' and '.join(missing)}: copy the REST URL and token from "
            "the Upstash console (database page, REST API section)"
        )
    rest_url, token = values["UPSTASH_REDIS_REST_URL"], values["UPSTASH_REDIS_REST_TOKEN"]
    if urlsplit(rest_url).scheme not in ("https", "http"):
        raise ConfigurationError(
            f"UPSTASH_REDIS_REST_URL={rest_url!r} must be the https:// REST URL of the database, "
            "not its redis:// address (for that, set SESSION_STORE_URL=rediss://...)"
        )
    return rest_url, token


def open_session_store(url: str | None = None, settings: Settings | None = None) -> SessionStore:
    """The session store ``url`` names (default: ``settings.session_store_url``), not yet connected.

    ``settings`` (default: the environment) gives the turns kept, the TTL and the timeout. Raises
    ``ConfigurationError``, naming the setting, for an unknown scheme, a missing driver or missing Upstash
    credentials.
    """
    settings = settings if settings is not None else get_settings()
    url = settings.session_store_url if url is None else url
    options: dict[str, Any] = {
        "max_turns": settings.session_max_turns,
        "ttl_seconds": settings.session_ttl_seconds,
        "timeout_seconds": settings.session_timeout_seconds,
    }
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is the check
    except (ValueError, AttributeError, TypeError) as exc:
        raise ConfigurationError(f"SESSION_STORE_URL is not a valid URL ({exc}); use {SUPPORTED_SESSION_URLS}") from exc
    scheme = parts.scheme.lower()
    if scheme == "memory":
        from memory.sessions.local import LocalSessionStore

        return LocalSessionStore(**options)
    if scheme in ("redis", "rediss"):
        _require("redis", url)
        from memory.sessions.redis import RedisSessionStore

        return RedisSessionStore(url, **options)
    if scheme == "upstash":
        _require("upstash_redis", url)
        from memory.sessions.upstash import UpstashSessionStore

        return UpstashSessionStore(*_upstash_credentials(url, settings), **options)
    raise ConfigurationError(
        f"SESSION_STORE_URL={redact_url(url)!r}: unknown session store; use one of: {SUPPORTED_SESSION_URLS}"
    )


__all__ = ["SUPPORTED_SESSION_URLS", "SessionStats", "SessionStore", "Turn", "open_session_store"]
