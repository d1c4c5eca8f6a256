"""Which Postgres URL to use for what: the app connects with ``MEMORY_STORE_URL``, migrations with the
owner's ``DATABASE_URL`` when it is set. Kept apart from the store so Alembic needs no psycopg import."""

from __future__ import annotations

import os

from memory.errors import ConfigurationError

POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")


def is_postgres_url(url: str) -> bool:
    return url.split("://", 1)[0].lower() in POSTGRES_SCHEMES


def migration_url() -> str:
    """``DATABASE_URL`` if set (the schema owner), else ``MEMORY_STORE_URL``; it must name Postgres."""
    url = os.environ.get("DATABASE_URL") or os.environ.get("MEMORY_STORE_URL") or ""
    if not is_postgres_url(url):
        raise ConfigurationError(
            "migrations need a Postgres URL: set DATABASE_URL (the schema owner) or MEMORY_STORE_URL to "
            "postgresql://user:password@host:5432/dbname (SQLite creates its schema by itself)"
        )
    return url


def sqlalchemy_url(url: str) -> str:
    """The same URL with the psycopg 3 driver named, as SQLAlchemy wants it."""
    scheme, rest = url.split("://", 1)
    return f"postgresql+psycopg://{rest}" if scheme.lower() in POSTGRES_SCHEMES else url


def psycopg_url(url: str) -> str:
    """The same URL in libpq's spelling (psycopg does not know ``postgresql+psycopg://``)."""
    scheme, rest = url.split("://", 1)
    return f"postgresql://{rest}" if scheme.lower() in POSTGRES_SCHEMES else url
