"""The application login of the row-level security design, made by the migrations with a password from a secret.

The store connects as a *login* role that is a member of ``agent_memory_app`` (NOLOGIN, NOBYPASSRLS; made by
revision 0001), never as the schema owner: the owner is not filtered reliably (a superuser bypasses row-level
security). On AWS the login's credentials are a generated secret (``MEMORY_STORE_URL_SECRET_ARN``) and nobody
types a password, so revision 0006 and ``memory.migrations.upgrade`` create or update the login from it:

- ``app_login_from(store_url, migration_url)`` says which login, if any: the user of a Postgres store URL that
  carries a password, unless it is the migration's own user (the owner must never become the app login).
- ``ensure_app_login`` creates it (``LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE IN ROLE
  agent_memory_app``) or, when it exists, sets its password and grants it ``agent_memory_app``. It refuses an
  existing role that is a superuser or has BYPASSRLS, since row-level security would not apply to it, and
  never removes an attribute from an existing role (the operator may have given it one on purpose).
- ``drop_app_login`` undoes it on downgrade, keeping a role still referred to elsewhere (as 0001 keeps
  ``agent_memory_app``).

The password never travels nor is logged in clear: libpq computes the verifier on the client
(``PQencryptPasswordConn``, with the server's ``password_encryption``), and only the verifier is in the
statement, which a server with ``log_statement = 'all'`` logs. Identifiers and literals are quoted by
``psycopg.sql``. The migration passes its credentials through Alembic's ``config.attributes[ATTRIBUTE]``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from memory.errors import ConfigurationError
from memory.stores.postgres import APP_ROLE
from memory.stores.postgres_url import is_postgres_url, psycopg_url

# Alembic ``config.attributes`` keys: the login to apply, and whether revision 0006 applied it in this run.
ATTRIBUTE = "app_login"
APPLIED = "app_login_applied"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AppLogin:
    """A login role's name and password; the password stays out of ``repr`` (and so out of tracebacks)."""

    user: str
    password: str = field(repr=False)


def app_login_from(store_url: str, migration_url: str) -> AppLogin | None:
    """The login the store connects as, when the migrations should make it: ``store_url`` is Postgres, names a
    user with a password, and that user is not ``migration_url``'s. ``None`` otherwise (SQLite, a local login
    without password, or a store that connects as the owner), and the migrations then leave roles alone."""
    if not is_postgres_url(store_url):
        return None
    store = _conninfo(store_url)
    user, password = store.get("user"), store.get("password")
    if not user or not password:
        return None
    owner = _conninfo(migration_url).get("user") if is_postgres_url(migration_url) else None
    return None if user == owner else AppLogin(user, password)


def _conninfo(url: str) -> dict[str, Any]:
    """libpq's reading of a URL (percent-decoded, ``?user=`` and ``?password=`` too); ``{}`` if unreadable."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        return conninfo_to_dict(psycopg_url(url))
    except Exception:  # psycopg.ProgrammingError; the connection reports a malformed URL better, later
        return {}


def ensure_app_login(conn: Any, login: AppLogin) -> bool:
    """Create ``login`` or update its password, in ``conn``'s transaction (a psycopg connection, as the schema
    owner). Returns ``False`` when ``login`` is the connection's own user, which is left alone.

    Raises ``ConfigurationError`` when an existing role of that name is a superuser or has BYPASSRLS, or the
    connection's user may not manage it.
    """
    import psycopg
    from psycopg import sql

    cursor = _cursor(conn)
    if login.user in cursor.execute("SELECT session_user, current_user").fetchone():
        log.warning("application login %s not applied: it is the migrations' own user", login.user)
        return False
    existing = cursor.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %s", [login.user]).fetchone()
    if existing is not None and any(existing):
        attribute = "a superuser" if existing[0] else "BYPASSRLS"
        raise ConfigurationError(
            f"the application login {login.user!r} (MEMORY_STORE_URL's user) exists and is {attribute}: row-level "
            "security would not apply to it. Name another user in MEMORY_STORE_URL or its secret, or make this "
            f"one NOSUPERUSER NOBYPASSRLS as an administrator"
        )
    # algorithm None: the server's password_encryption (libpq asks it), so the verifier is what it expects.
    verifier = conn.pgconn.encrypt_password(login.password.encode(), login.user.encode(), None).decode()
    role, app_role, secret = sql.Identifier(login.user), sql.Identifier(APP_ROLE), sql.Literal(verifier)
    try:
        if existing is None:
            cursor.execute(
                sql.SQL(
                    "CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE IN ROLE {} PASSWORD {}"
                ).format(role, app_role, secret)
            )
            return True
        cursor.execute(sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(role, secret))
        # USAGE: it has the app role's privileges (a member through an INHERIT grant), as the store needs.
        if not cursor.execute("SELECT pg_has_role(%s, %s, 'USAGE')", [login.user, APP_ROLE]).fetchone()[0]:
            cursor.execute(sql.SQL("GRANT {} TO {}").format(app_role, role))
    except psycopg.errors.InsufficientPrivilege as exc:
        raise ConfigurationError(
            f"the migrations' user may not create or change the application login {login.user!r} ({exc}): it "
            f"needs CREATEROLE and the ADMIN OPTION on {APP_ROLE} and on that role (the RDS master user has them "
            "for roles it created)"
        ) from exc
    return True


def drop_app_login(conn: Any, login: AppLogin) -> bool:
    """Drop ``login`` in ``conn``'s transaction if it exists and nothing else refers to it; never the
    connection's own user. Returns whether it was dropped."""
    import psycopg
    from psycopg import sql

    cursor = _cursor(conn)
    if login.user in cursor.execute("SELECT session_user, current_user").fetchone():
        return False
    if cursor.execute("SELECT FROM pg_roles WHERE rolname = %s", [login.user]).fetchone() is None:
        return False
    try:
        with conn.transaction():  # a savepoint: a refused DROP must not abort the migration's transaction
            cursor.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(login.user)))
    except psycopg.errors.DependentObjectsStillExist:
        # The role is cluster-wide: objects or grants in other databases still refer to it.
        log.warning("role %s kept: objects or privileges elsewhere still refer to it", login.user)
        return False
    return True


def _cursor(conn: Any) -> Any:
    """A cursor with tuple rows, whatever row factory the connection was opened with."""
    from psycopg.rows import tuple_row

    return conn.cursor(row_factory=tuple_row)
