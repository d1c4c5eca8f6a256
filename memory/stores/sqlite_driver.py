"""Choose the SQLite driver once: the standard ``sqlite3`` when it can load extensions, else ``sqlean``.

sqlite-vec is a loadable extension. Many Python builds (this project's CI machine among them) ship a
``sqlite3`` without ``enable_load_extension``; ``sqlean.py`` is a drop-in replacement that has it and a
recent SQLite with FTS5. Everything else in the SQLite adapter goes through ``connect`` and the
``Error`` class returned with the connection, so the choice lives here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

from memory.errors import ConfigurationError, StoreUnavailableError

NO_DRIVER_MESSAGE = (
    "SQLite store: no sqlite3 module here can load extensions (sqlite-vec needs it). "
    "Run `pip install sqlean.py sqlite-vec` (both are dependencies of agent-memory), "
    "or use a Python built with loadable SQLite extensions, or set MEMORY_STORE_URL to another backend."
)


@dataclass(frozen=True)
class Driver:
    module: ModuleType
    name: str

    @property
    def error(self) -> type[Exception]:
        return self.module.Error

    @property
    def integrity_error(self) -> type[Exception]:
        return self.module.IntegrityError


def _can_load_extensions(module: ModuleType) -> bool:
    return hasattr(module.Connection, "enable_load_extension")


def choose_driver() -> Driver:
    """The first of sqlite3, sqlean that can load extensions; ``ConfigurationError`` when neither can."""
    import sqlite3

    if _can_load_extensions(sqlite3):
        return Driver(sqlite3, "sqlite3")
    try:
        import sqlean
    except ImportError:
        sqlean = None
    if sqlean is not None and _can_load_extensions(sqlean):
        return Driver(sqlean, "sqlean")
    raise ConfigurationError(NO_DRIVER_MESSAGE)


def connect(database: str, driver: Driver | None = None) -> tuple[Driver, Any]:
    """Open ``database`` (a path or ``:memory:``) with sqlite-vec loaded; returns driver and connection."""
    driver = driver or choose_driver()
    try:
        import sqlite_vec
    except ImportError as exc:
        raise ConfigurationError("SQLite store: sqlite-vec is missing; run `pip install sqlite-vec`") from exc
    try:
        conn = driver.module.connect(database, isolation_level=None, check_same_thread=False)
    except driver.error as exc:
        raise StoreUnavailableError(
            f"cannot open the SQLite database {database!r}: {exc}; check MEMORY_STORE_URL and that "
            "the directory exists and is writable"
        ) from exc
    try:
        conn.enable_load_extension(True)
        sqlite_vec.load(conn)
        conn.enable_load_extension(False)
        # Asked of a scratch database, so a damaged file reports itself later, not as a driver problem.
        probe = driver.module.connect(":memory:")
        try:
            probe.execute("CREATE VIRTUAL TABLE probe USING fts5(x)")
        finally:
            probe.close()
    except (driver.error, AttributeError) as exc:
        conn.close()
        raise ConfigurationError(
            f"SQLite store: the {driver.name} driver (SQLite {driver.module.sqlite_version}) cannot load "
            f"sqlite-vec or lacks FTS5 ({exc}); {NO_DRIVER_MESSAGE}"
        ) from exc
    return driver, conn
