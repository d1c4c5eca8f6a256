"""The SQLite schema, versioned with ``PRAGMA user_version``: each step runs once, in order, in a transaction.

To change the schema, append a step; never edit one that has shipped.
"""

from __future__ import annotations

from typing import Any

from memory.errors import ConfigurationError

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
            raise
    return found
