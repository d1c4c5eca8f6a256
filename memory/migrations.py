"""Run the Alembic migrations that own the Postgres schema (``migrations/`` beside the package).

Used by ``agent-memory migrate`` and the Lambda migrate handler. Alembic and SQLAlchemy are imported
here only, so the request path never loads them.

Both directions take the application login (``memory.app_login``): ``upgrade`` creates it or sets its
password, every time, so a rotated secret followed by a migrate takes effect even when the schema is at head;
``downgrade`` drops it only when it is given, so the usual rollback (the schema back to the revision of the
code being rolled back to) keeps the login that code connects as.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memory.app_login import APPLIED, ATTRIBUTE, AppLogin, ensure_app_login
from memory.errors import ConfigurationError, StoreUnavailableError
from memory.stores import redact_url
from memory.stores.postgres_url import is_postgres_url, migration_url, psycopg_url, sqlalchemy_url

ALEMBIC_INI = Path(__file__).resolve().parent.parent / "migrations" / "alembic.ini"
# Downgrading to these drops tables that hold what users said: memories and their history (0001), turns
# not yet written back (0002). ``downgrade`` wants ``confirm_data_loss`` for them.
DATA_LOSS_TARGETS = ("base", "0001")


def upgrade(url: str | None = None, *, app_login: AppLogin | None = None) -> tuple[str, str]:
    """Upgrade the database at ``url`` (default: DATABASE_URL, else MEMORY_STORE_URL) to head, and create or
    update ``app_login`` (``memory.app_login.ensure_app_login``) when given.

    Returns the revision reached and the URL used. Raises ``ConfigurationError`` when the URL is not
    Postgres, the migrations are not installed or the login is refused, ``StoreUnavailableError`` when the
    server refuses.
    """
    target = _postgres(url)
    config, script = _alembic(target, app_login)
    _run("upgrade", config, "head")
    if app_login is not None and not config.attributes.get(APPLIED):
        _ensure_at_head(target, app_login)  # revision 0006 did not run: the schema was at head already
    return script.get_current_head() or "base", target


def downgrade(
    url: str | None, revision: str, *, app_login: AppLogin | None = None, confirm_data_loss: bool = False
) -> tuple[str, str]:
    """Downgrade the database at ``url`` (default as ``upgrade``) to ``revision``: the schema rollback that
    goes with a code rollback, since the store refuses a schema revision other than its own. With
    ``app_login``, revision 0006's downgrade drops that login.

    Returns the revision reached and the URL used. Raises ``ConfigurationError`` for an unknown revision,
    one above the database's, or ``base`` and ``0001`` (they delete memories) without ``confirm_data_loss``.
    """
    target = _postgres(url)
    config, script = _alembic(target, app_login)
    known = [rev.revision for rev in reversed(list(script.walk_revisions()))]
    if revision not in (*known, "base"):
        raise ConfigurationError(
            f"unknown schema revision {revision!r}: the revisions are {', '.join(known)}, and base (no schema)"
        )
    if revision in DATA_LOSS_TARGETS and not confirm_data_loss:
        raise ConfigurationError(
            f"downgrading to {revision} drops the memories, their history and the pending write-backs of every "
            "user; confirm the data loss explicitly (confirm_data_loss) if that is what you want"
        )
    _run("downgrade", config, revision)
    return revision, target


def _postgres(url: str | None) -> str:
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
    return target


def _alembic(url: str, app_login: AppLogin | None) -> tuple[Any, Any]:
    """Alembic's config for ``url`` (with ``app_login`` for revision 0006) and its script directory."""
    try:
        from alembic.config import Config
        from alembic.script import ScriptDirectory
    except ImportError as exc:
        raise ConfigurationError("migrations need the postgres extra: pip install 'agent-memory[postgres]'") from exc
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    config.attributes[ATTRIBUTE] = app_login
    return config, ScriptDirectory.from_config(config)


def _run(action: str, config: Any, revision: str) -> None:
    from alembic import command
    from alembic.util import CommandError
    from sqlalchemy.exc import OperationalError

    try:
        getattr(command, action)(config, revision)
    except OperationalError as exc:
        raise StoreUnavailableError(f"cannot migrate: the database refused the connection ({exc.orig})") from exc
    except CommandError as exc:  # e.g. a downgrade "to" a revision above the database's
        raise ConfigurationError(f"cannot {action} to {revision}: {exc}") from exc


def _ensure_at_head(url: str, app_login: AppLogin) -> None:
    """``ensure_app_login`` in a connection and transaction of its own."""
    import psycopg

    try:
        with psycopg.connect(psycopg_url(url)) as conn:
            ensure_app_login(conn, app_login)
    except psycopg.OperationalError as exc:
        raise StoreUnavailableError(f"cannot apply the application login: the database refused ({exc})") from exc
