"""Run the Alembic migrations that own the Postgres schema (``migrations/`` beside the package).

Used by ``agent-memory migrate`` and the Lambda migrate handler. Alembic and SQLAlchemy are imported
here only, so the request path never loads them.
"""

from __future__ import annotations

from pathlib import Path

from memory.errors import ConfigurationError, StoreUnavailableError
from memory.stores import redact_url
from memory.stores.postgres_url import is_postgres_url, migration_url, sqlalchemy_url

ALEMBIC_INI = Path(__file__).resolve().parent.parent / "migrations" / "alembic.ini"


def upgrade(url: str | None = None) -> tuple[str, str]:
    """Upgrade the database at ``url`` (default: DATABASE_URL, else MEMORY_STORE_URL) to head.

    Returns the revision reached and the URL used. Raises ``ConfigurationError`` when the URL is not
    Postgres or the migrations are not installed, ``StoreUnavailableError`` when the server refuses.
    """
    target = url or migration_url()
    if not is_postgres_url(target):
        raise ConfigurationError(
            f"{redact_url(target)} is not a Postgres URL: migrations are for Postgres "
            "(SQLite creates and upgrades its schema by itself)"
        )
    if not ALEMBIC_INI.is_file():
        raise ConfigurationError(
            f"the migrations are not installed beside the package (looked for {ALEMBIC_INI}); "
            "run from a checkout of agent-memory or a deployment package that includes migrations/"
        )
    try:
        from alembic import command
        from alembic.config import Config
        from alembic.script import ScriptDirectory
        from sqlalchemy.exc import OperationalError
    except ImportError as exc:
        raise ConfigurationError("migrations need the postgres extra: pip install 'agent-memory[postgres]'") from exc
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(target).replace("%", "%%"))
    try:
        command.upgrade(config, "head")
    except OperationalError as exc:
        raise StoreUnavailableError(f"cannot migrate: the database refused the connection ({exc.orig})") from exc
    return ScriptDirectory.from_config(config).get_current_head() or "base", target
