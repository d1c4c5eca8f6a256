"""The application login that revision 0006 and ``memory.migrations`` make from the store's credentials, on a
server that checks passwords and logs every statement (tests/postgres_auth.py): it logs in with its password
and no other, row-level security filters it, a rerun rotates the password, no password reaches the log, a
superuser or BYPASSRLS role is refused, and the downgrades drop it (only when asked) and leave a clean schema."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from memory.app_login import APP_ROLE, AppLogin, app_login_from, ensure_app_login
from memory.errors import ConfigurationError
from memory.migrations import downgrade, upgrade
from memory.stores.postgres import SCHEMA_REVISION, PostgresStore
from tests.postgres_auth import PasswordServer


@pytest.fixture
def database(password_postgres: PasswordServer) -> Iterator[str]:
    """An empty database of this test on the password server."""
    with password_postgres.database() as name:
        yield name


@pytest.fixture
def login(password_postgres: PasswordServer) -> Iterator[AppLogin]:
    """A login name of this test (roles are cluster-wide) with a password that quoting must survive."""
    user = f"app_{uuid.uuid4().hex[:8]}"
    yield AppLogin(user, f"p@ss w:rd/'{uuid.uuid4().hex}")
    with psycopg.connect(password_postgres.superuser_url(), autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {user}")


def query(url: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    """The rows of one statement, in a connection of its own (none for a statement without rows)."""
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(sql, params)
        return cursor.fetchall() if cursor.description is not None else []


def connects(server: PasswordServer, user: str, password: str, database: str) -> bool:
    try:
        with psycopg.connect(server.url(user, password, database)) as conn:
            return conn.execute("SELECT current_user").fetchone() == (user,)
    except psycopg.OperationalError as exc:
        assert "password authentication failed" in str(exc)
        return False


def role(server: PasswordServer, user: str) -> list[tuple[Any, ...]]:
    return query(
        server.superuser_url(),
        "SELECT rolcanlogin, rolsuper, rolbypassrls, rolcreatedb, rolcreaterole, pg_has_role(rolname, %s, 'USAGE') "
        "FROM pg_roles WHERE rolname = %s",
        [APP_ROLE, user],
    )


def insert_memories(url: str, users: list[str]) -> None:
    with psycopg.connect(url) as conn:  # as the owner, a superuser: no scope needed
        for n, user in enumerate(users):
            conn.execute(
                "INSERT INTO memories (id, tenant_id, user_id, content, content_hash, memory_type, importance, "
                "created_at, updated_at) VALUES (%s, 'default', %s, 'x', %s, 'fact', 0.5, now(), now())",
                [f"m{n}", user, f"h{n}"],
            )


def test_migrate_makes_a_login_that_connects_with_its_password_alone_under_row_level_security(
    password_postgres: PasswordServer, database: str, login: AppLogin
) -> None:
    owner = password_postgres.superuser_url(database)

    assert upgrade(owner, app_login=login) == (SCHEMA_REVISION, owner)

    assert connects(password_postgres, login.user, login.password, database)
    assert not connects(password_postgres, login.user, "not-the-password", database)
    # LOGIN, no superuser, no BYPASSRLS, no CREATEDB, no CREATEROLE; has the app role's privileges
    assert role(password_postgres, login.user) == [(True, False, False, False, False, True)]
    insert_memories(owner, ["alice", "bob", "bob"])
    app_url = password_postgres.url(login.user, login.password, database)
    with psycopg.connect(app_url) as conn:
        assert conn.execute("SELECT count(*) FROM memories").fetchone() == (0,)  # no scope set: no row
        conn.execute("SELECT set_config('app.tenant_id', 'default', true), set_config('app.user_id', 'bob', true)")
        assert conn.execute("SELECT DISTINCT user_id FROM memories").fetchall() == [("bob",)]
    store = PostgresStore(app_url)  # the store's own checks on connect pass: a member, the schema at its revision
    try:
        assert [scope.user_id for scope in store.scopes()] == ["alice", "bob"]
    finally:
        store.close()


def test_a_rerun_at_head_rotates_the_password_and_no_password_reaches_the_server_log(
    password_postgres: PasswordServer, database: str, login: AppLogin
) -> None:
    owner = password_postgres.superuser_url(database)
    upgrade(owner, app_login=login)
    rotated = AppLogin(login.user, f"rotated-{uuid.uuid4().hex}")

    assert upgrade(owner, app_login=rotated) == (SCHEMA_REVISION, owner)  # at head: no migration ran
    upgrade(owner, app_login=rotated)  # idempotent

    assert connects(password_postgres, login.user, rotated.password, database)
    assert not connects(password_postgres, login.user, login.password, database)
    assert role(password_postgres, login.user) == [(True, False, False, False, False, True)]
    log = password_postgres.log_text()
    assert f'CREATE ROLE "{login.user}" LOGIN' in log and f'ALTER ROLE "{login.user}" WITH LOGIN PASSWORD' in log
    assert "SCRAM-SHA-256$" in log  # the verifiers are logged, and nothing else
    for secret in (login.password, rotated.password, password_postgres.superuser_password):
        assert secret not in log


def test_an_existing_role_of_that_name_keeps_its_attributes_and_gets_the_app_role(
    password_postgres: PasswordServer, database: str, login: AppLogin
) -> None:
    owner = password_postgres.superuser_url(database)
    upgrade(owner)
    query(owner, f"CREATE ROLE {login.user} NOLOGIN CREATEDB")

    upgrade(owner, app_login=login)

    assert role(password_postgres, login.user) == [(True, False, False, True, False, True)]  # CREATEDB stays
    assert connects(password_postgres, login.user, login.password, database)


@pytest.mark.parametrize("attribute", ["SUPERUSER", "BYPASSRLS"])
@pytest.mark.parametrize("when", ["in revision 0006", "at head"])
def test_a_superuser_or_bypassrls_role_is_refused_and_left_as_it_was(
    password_postgres: PasswordServer, database: str, login: AppLogin, attribute: str, when: str
) -> None:
    owner = password_postgres.superuser_url(database)
    if when == "at head":
        upgrade(owner)
    query(owner, f"CREATE ROLE {login.user} LOGIN {attribute}")
    before = role(password_postgres, login.user)

    with pytest.raises(ConfigurationError, match=f"{login.user}.*row-level security would not apply") as raised:
        upgrade(owner, app_login=login)

    assert login.password not in str(raised.value)
    assert role(password_postgres, login.user) == before
    assert not connects(password_postgres, login.user, login.password, database)
    expected = "0005" if when == "in revision 0006" else SCHEMA_REVISION  # 0006 rolled back, 0001-0005 kept
    assert query(owner, "SELECT version_num FROM alembic_version") == [(expected,)]


def test_the_migrations_own_user_is_never_made_the_app_login(password_postgres: PasswordServer, database: str) -> None:
    owner = password_postgres.superuser_url(database)
    assert app_login_from(owner, owner) is None
    upgrade(owner)
    with psycopg.connect(owner) as conn:
        assert ensure_app_login(conn, AppLogin("postgres", "something-else")) is False
    assert connects(password_postgres, "postgres", password_postgres.superuser_password, database)


@pytest.mark.parametrize(
    ("store_url", "migration_url", "expected"),
    [
        ("postgresql://app:p%40ss@db/m", "postgresql://owner:x@db/m", AppLogin("app", "p@ss")),
        ("postgresql+psycopg://db/m?user=app&password=pw", "postgresql://owner@db/m", AppLogin("app", "pw")),
        ("postgresql://app:pw@db/m", "postgresql://db/m", AppLogin("app", "pw")),  # the server checks the user
        ("postgresql://app@db/m", "postgresql://owner:x@db/m", None),  # no password: a login made by hand
        ("postgresql://owner:x@db/m", "postgresql://owner:y@db/m", None),  # the owner itself
        ("sqlite:///memories.db", "postgresql://owner:x@db/m", None),
    ],
)
def test_which_login_the_store_url_names(store_url: str, migration_url: str, expected: AppLogin | None) -> None:
    assert app_login_from(store_url, migration_url) == expected


def test_the_password_stays_out_of_the_repr() -> None:
    assert "hunter2" not in repr(AppLogin("app", "hunter2"))


def test_downgrades_drop_the_login_only_when_given_and_base_needs_a_confirmation(
    password_postgres: PasswordServer, database: str, login: AppLogin
) -> None:
    owner = password_postgres.superuser_url(database)
    upgrade(owner, app_login=login)
    relations = "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace ORDER BY 1"
    at_head = query(owner, relations)

    assert downgrade(owner, "0005") == ("0005", owner)  # a code rollback: the login stays
    assert connects(password_postgres, login.user, login.password, database)
    upgrade(owner, app_login=login)
    assert downgrade(owner, "0005", app_login=login) == ("0005", owner)
    assert role(password_postgres, login.user) == []

    upgrade(owner, app_login=login)
    with pytest.raises(ConfigurationError, match="confirm"):
        downgrade(owner, "base", app_login=login)
    with pytest.raises(ConfigurationError, match=r"unknown schema revision 'nope'.*0001.*0006"):
        downgrade(owner, "nope")
    assert query(owner, "SELECT version_num FROM alembic_version") == [(SCHEMA_REVISION,)]

    assert downgrade(owner, "base", app_login=login, confirm_data_loss=True) == ("base", owner)

    assert query(owner, relations) == [("alembic_version",), ("alembic_version_pkc",)]
    assert role(password_postgres, login.user) == []
    with pytest.raises(ConfigurationError, match="cannot downgrade to 0005"):
        downgrade(owner, "0005")  # above the database's revision
    upgrade(owner, app_login=login)
    assert query(owner, relations) == at_head
    assert connects(password_postgres, login.user, login.password, database)


def test_a_login_still_referred_to_elsewhere_is_kept_by_the_downgrade(
    password_postgres: PasswordServer, database: str, login: AppLogin
) -> None:
    owner = password_postgres.superuser_url(database)
    upgrade(owner, app_login=login)
    query(owner, f"GRANT CONNECT ON DATABASE postgres TO {login.user}")  # a privilege in another database
    try:
        assert downgrade(owner, "0005", app_login=login) == ("0005", owner)
        assert connects(password_postgres, login.user, login.password, database)
    finally:
        query(owner, f"REVOKE CONNECT ON DATABASE postgres FROM {login.user}")


def test_the_cli_makes_the_login_of_the_store_url_unless_told_not_to(
    password_postgres: PasswordServer, database: str, login: AppLogin
) -> None:
    from click.testing import CliRunner

    from memory.cli import main

    owner = password_postgres.superuser_url(database)
    store = password_postgres.url(login.user, login.password, database)

    skipped = CliRunner().invoke(main, ["--store", store, "migrate", "--url", owner, "--no-app-login"])
    assert skipped.exit_code == 0, skipped.output
    assert role(password_postgres, login.user) == []

    made = CliRunner().invoke(main, ["--store", store, "migrate", "--url", owner])
    assert made.exit_code == 0, made.output
    assert f"application login {login.user}: created or password set" in made.output
    assert login.password not in made.output
    assert connects(password_postgres, login.user, login.password, database)
