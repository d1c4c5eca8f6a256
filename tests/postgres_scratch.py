"""Scratch databases on the test server, for tests that must damage or inspect a schema of their own
(migrations, broken tables, missing schema) without touching the shared database of the session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.postgres_support import PostgresDatabase, alembic, with_user_and_database


@dataclass(frozen=True)
class ScratchDatabase:
    name: str
    owner_url: str  # the session's owner (superuser on the embedded server), in this database
    app_url: str  # the session's application login role, in this database


@contextmanager
def scratch_database(postgres: PostgresDatabase, *, migrated: bool) -> Iterator[ScratchDatabase]:
    """A new, empty database on the session's server (migrated to head if asked), dropped afterwards."""
    import psycopg

    name = f"agent_memory_scratch_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres.owner_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    scratch = ScratchDatabase(
        name=name,
        owner_url=with_user_and_database(postgres.owner_url, database=name),
        app_url=with_user_and_database(postgres.app_url, database=name),
    )
    try:
        if migrated:
            alembic(scratch.owner_url, "upgrade", "head")
        yield scratch
    finally:
        with psycopg.connect(postgres.owner_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
