"""The SQLite schema, versioned with ``PRAGMA user_version``: each step runs once, in order, in a transaction.

To change the schema, append a step; never edit one that has shipped.
"""

from __future__ import annotations

from typing import Any

from memory.errors import ConfigurationError

# NOW_US and _bump_version are part of step 3: changing them changes a step that has shipped.
# The clock in microseconds since the epoch. SQLite's clock ticks in milliseconds and 'now' is fixed within
# one statement: this is that millisecond, exactly, in microseconds (the plain product of the julian day
# carries ~40 us of float noise). Versions take max(previous + 1, this), so they increase within a tick too.
NOW_US = "(CAST(round((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER) * 1000)"


def _bump_version(tenant: str, user: str, condition: str = "true") -> str:
    """A trigger statement: the scope's version becomes max(previous + 1, now), or now for a new scope.
    (``WHERE`` before ``ON CONFLICT`` also keeps SQLite from reading the upsert as a join.)"""
    return f"""
        INSERT INTO memory_versions (tenant_id, user_id, version)
        SELECT {tenant}, {user}, {NOW_US} WHERE {condition}
        ON CONFLICT (tenant_id, user_id) DO UPDATE SET version = max(memory_versions.version + 1, excluded.version);"""


_SCOPE_CHANGED = "old.tenant_id IS NOT new.tenant_id OR old.user_id IS NOT new.user_id"

STEPS: tuple[str, ...] = (
    # 1: memories, their keyword index (kept in sync by triggers) and their history.
    """
    CREATE TABLE memories (
        rowid INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        tenant_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        scope_key TEXT NOT NULL,
        content TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        memory_type TEXT NOT NULL,
        importance REAL NOT NULL CHECK (importance BETWEEN 0 AND 1),
        tags TEXT NOT NULL DEFAULT '[]',
        metadata TEXT NOT NULL DEFAULT '{}',
        session_id TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        expires_at REAL,
        embedding BLOB,
        embedding_model TEXT,
        status TEXT NOT NULL DEFAULT 'active',
        superseded_by TEXT
    );
    CREATE INDEX memories_scope ON memories (tenant_id, user_id, status, created_at);
    CREATE UNIQUE INDEX memories_active_content ON memories (tenant_id, user_id, content_hash)
        WHERE status = 'active';
    CREATE VIRTUAL TABLE memories_fts USING fts5(
        scope_key, content,
        content = 'memories', content_rowid = 'rowid',
        tokenize = 'porter unicode61 remove_diacritics 2'
    );
    CREATE TRIGGER memories_fts_insert AFTER INSERT ON memories BEGIN
        INSERT INTO memories_fts (rowid, scope_key, content)
        VALUES (new.rowid, new.scope_key, new.content);
    END;
    CREATE TRIGGER memories_fts_delete AFTER DELETE ON memories BEGIN
        INSERT INTO memories_fts (memories_fts, rowid, scope_key, content)
        VALUES ('delete', old.rowid, old.scope_key, old.content);
    END;
    CREATE TRIGGER memories_fts_update AFTER UPDATE OF content ON memories BEGIN
        INSERT INTO memories_fts (memories_fts, rowid, scope_key, content)
        VALUES ('delete', old.rowid, old.scope_key, old.content);
        INSERT INTO memories_fts (rowid, scope_key, content)
        VALUES (new.rowid, new.scope_key, new.content);
    END;
    CREATE TABLE memory_events (
        id INTEGER PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        memory_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        created_at REAL NOT NULL,
        content TEXT,
        previous_content TEXT,
        related_id TEXT,
        details TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX memory_events_scope ON memory_events (tenant_id, user_id, memory_id, id);
    """,
    # 2: the write-back ledger (memory.turns), one record per turn of a scope.
    """
    CREATE TABLE turn_records (
        tenant_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        turn_id TEXT NOT NULL,
        session_id TEXT,
        status TEXT NOT NULL CHECK (status IN ('pending', 'failed', 'done')),
        user_message TEXT,
        assistant_reply TEXT,
        operations TEXT,
        result TEXT NOT NULL DEFAULT '{}',
        attempts INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (tenant_id, user_id, turn_id)
    );
    CREATE INDEX turn_records_status ON turn_records (tenant_id, user_id, status, created_at, turn_id);
    """,
    # 3: the data version of each scope (MemoryStore.version), changed by triggers in the transaction of
    # every change to its memories; a scope that already has memories gets one now. forget_user deletes it.
    f"""
    CREATE TABLE memory_versions (
        tenant_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, user_id)
    );
    INSERT INTO memory_versions (tenant_id, user_id, version)
    SELECT tenant_id, user_id, {NOW_US} FROM (SELECT DISTINCT tenant_id, user_id FROM memories);
    -- list(order_by="importance"), what the core-memory cache fills from: walked in order, stops at the limit.
    CREATE INDEX memories_importance ON memories (tenant_id, user_id, importance DESC, updated_at DESC, id);
    CREATE TRIGGER memories_version_insert AFTER INSERT ON memories FOR EACH ROW BEGIN
        {_bump_version("new.tenant_id", "new.user_id")}
    END;
    CREATE TRIGGER memories_version_update AFTER UPDATE ON memories FOR EACH ROW BEGIN
        {_bump_version("new.tenant_id", "new.user_id")}
        {_bump_version("old.tenant_id", "old.user_id", _SCOPE_CHANGED)}
    END;
    CREATE TRIGGER memories_version_delete AFTER DELETE ON memories FOR EACH ROW BEGIN
        {_bump_version("old.tenant_id", "old.user_id")}
    END;
    """,
    # 4: maintenance leases (MemoryStore.try_lease), one row per leased scope; forget_user deletes it.
    # (MemoryStore.scopes pages through memory_versions' primary key: BINARY is code point order.)
    """
    CREATE TABLE maintenance_leases (
        tenant_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        owner TEXT NOT NULL,
        expires_at REAL NOT NULL,
        PRIMARY KEY (tenant_id, user_id)
    );
    """,
)

SCHEMA_VERSION = len(STEPS)


def configure(conn: Any, *, wal: bool) -> None:
    """Per-connection settings: wait for writers rather than fail, and cache what searches scan."""
    conn.execute("PRAGMA busy_timeout = 5000")
    # A search scans the user's embeddings (1.5 kB each): keep them in memory, not in repeated reads.
    conn.execute("PRAGMA cache_size = -65536")
    if wal:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA mmap_size = 268435456")


def migrate(conn: Any) -> int:
    """Bring the database to ``SCHEMA_VERSION``; returns the version found before. Idempotent."""
    found = conn.execute("PRAGMA user_version").fetchone()[0]
    if found > SCHEMA_VERSION:
        raise ConfigurationError(
            f"the SQLite database has schema version {found}, newer than this agent-memory "
            f"({SCHEMA_VERSION}); upgrade agent-memory or point MEMORY_STORE_URL at another file"
        )
    for version in range(found, SCHEMA_VERSION):
        # One script per step, inside one transaction: a failed step leaves the previous version intact.
        try:
            conn.executescript(f"BEGIN IMMEDIATE;\n{STEPS[version]}\nPRAGMA user_version = {version + 1};\nCOMMIT;")
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            # Two processes (or threads) opening a new file at once: the other took the write lock first and
            # ran this step, so ours failed on what it created. Its step stands; go on from there.
            if conn.execute("PRAGMA user_version").fetchone()[0] > version:
                continue
            raise
    return found
