"""Backends, chosen by URL. ``open_store("sqlite:///agent_memory.db")`` returns a ``MemoryStore``."""

from __future__ import annotations

from urllib.parse import urlsplit

from memory.errors import ConfigurationError
from memory.stores.base import MemoryStore, Tracer
from memory.stores.postgres_url import is_postgres_url

SUPPORTED_URLS = (
    "sqlite:///path/to/file.db (a file), sqlite:// (in memory), postgresql://user:password@host:5432/dbname, "
    "qdrant://host:6333 (a Qdrant server; qdrants:// for TLS, the API key in QDRANT_API_KEY), "
    "qdrant+local:///path/to/dir (Qdrant local mode on disk), qdrant+local:// (Qdrant local mode in memory)"
)


def redact_url(url: str) -> str:
    """The URL with any password replaced, fit for error messages and logs."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


def sqlite_path(url: str) -> str:
    """``sqlite:///rel.db`` -> ``rel.db``, ``sqlite:////abs.db`` -> ``/abs.db``, ``sqlite://`` -> memory."""
    rest = url[len("sqlite://") :]
    if rest in ("", "/", "/:memory:"):
        return ":memory:"
    if not rest.startswith("/"):
        raise ConfigurationError(
            f"MEMORY_STORE_URL={url!r}: a SQLite URL has three slashes before a relative path "
            "(sqlite:///agent_memory.db) and four before an absolute one (sqlite:////data/memory.db)"
        )
    return rest[1:]


def open_store(url: str, *, tracer: Tracer | None = None) -> MemoryStore:
    """The store a URL names, not yet connected (it connects on first use).

    Raises ``ConfigurationError`` for an unknown scheme, naming the setting and the accepted URLs.
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme == "sqlite":
        from memory.stores.sqlite import SQLiteStore

        return SQLiteStore(sqlite_path(url), tracer=tracer)
    if is_postgres_url(url):
        from memory.stores.postgres import PostgresStore

        return PostgresStore(url, tracer=tracer)
    if scheme in ("qdrant", "qdrants", "qdrant+local"):
        from memory.stores.qdrant import from_url

        return from_url(url, tracer=tracer)
    raise ConfigurationError(f"MEMORY_STORE_URL={redact_url(url)!r}: unknown store; use one of: {SUPPORTED_URLS}")


__all__ = ["SUPPORTED_URLS", "MemoryStore", "open_store"]
