"""Alembic environment: the URL comes from the caller (``agent-memory migrate``) or the environment.

Migrations connect as the *owner* of the schema (``DATABASE_URL``, else ``MEMORY_STORE_URL``), never as
the application role, which has no right to create tables.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from memory.stores.postgres_url import migration_url, sqlalchemy_url


def run_migrations() -> None:
    url = context.config.get_main_option("sqlalchemy.url") or migration_url()
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported: run against a database")
run_migrations()
