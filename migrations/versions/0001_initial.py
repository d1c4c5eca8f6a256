"""The initial schema: memories (vector + full text), their history, per-user profiles, and row-level
security for the application role.

Revision ID: 0001
Revises:
Create Date: 2026-11-25

Why these choices (measured in shared/notes/serverless-pgvector.md):
- No HNSW index: per-user exact search through the btree is faster and has recall 1.0 for users with up to
  tens of thousands of memories; a shared HNSW index returned 1.5 of 10 rows for a 10k-memory user.
- ``embedding`` STORAGE PLAIN keeps the vector in the row: out of line (TOAST) it made exact search 5x slower.
- Row-level security on every table, FORCEd so even the owner is filtered; the app role has no BYPASSRLS.
  Every transaction sets ``app.tenant_id`` and ``app.user_id`` with set_config(..., true); unset, no row
  is visible.
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

APP_ROLE = "agent_memory_app"
SCOPE = "tenant_id = current_setting('app.tenant_id', true) AND user_id = current_setting('app.user_id', true)"
TABLES = ("memories", "memory_events", "memory_profiles")


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.execute(
        f"""
        DO $$ BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
                CREATE ROLE {APP_ROLE} NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
            END IF;
        END $$
        """
    )
    op.execute(
        """
        CREATE TABLE memories (
            id text PRIMARY KEY,
            tenant_id text NOT NULL,
            user_id text NOT NULL,
            content text NOT NULL,
            content_hash text NOT NULL,
            memory_type text NOT NULL
                CHECK (memory_type IN ('preference', 'fact', 'task', 'decision', 'summary')),
            importance double precision NOT NULL CHECK (importance BETWEEN 0 AND 1),
            tags text[] NOT NULL DEFAULT '{}',
            metadata jsonb NOT NULL DEFAULT '{}',
            session_id text,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            expires_at timestamptz,
            embedding vector(384),
            embedding_model text,
            status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'superseded', 'pruned')),
            superseded_by text,
            tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED
        )
        """
    )
    op.execute("ALTER TABLE memories ALTER COLUMN embedding SET STORAGE PLAIN")
    op.execute("CREATE INDEX memories_scope ON memories (tenant_id, user_id, status, created_at DESC)")
    op.execute(
        "CREATE UNIQUE INDEX memories_active_content ON memories (tenant_id, user_id, content_hash) "
        "WHERE status = 'active'"
    )
    op.execute("CREATE INDEX memories_tsv ON memories USING gin (tsv)")
    op.execute(
        """
        CREATE TABLE memory_events (
            id bigserial PRIMARY KEY,
            tenant_id text NOT NULL,
            user_id text NOT NULL,
            memory_id text NOT NULL,
            kind text NOT NULL,
            created_at timestamptz NOT NULL,
            content text,
            previous_content text,
            related_id text,
            details jsonb NOT NULL DEFAULT '{}'
        )
        """
    )
    op.execute("CREATE INDEX memory_events_scope ON memory_events (tenant_id, user_id, memory_id, id)")
    op.execute(
        """
        CREATE TABLE memory_profiles (
            tenant_id text NOT NULL,
            user_id text NOT NULL,
            content text NOT NULL,
            source_ids text[] NOT NULL DEFAULT '{}',
            updated_at timestamptz NOT NULL,
            PRIMARY KEY (tenant_id, user_id)
        )
        """
    )
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY {table}_scope ON {table} USING ({SCOPE}) WITH CHECK ({SCOPE})")
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {APP_ROLE}")
    op.execute(f"GRANT USAGE ON SEQUENCE memory_events_id_seq TO {APP_ROLE}")
    # The store checks the schema revision on connect, so the app role may read (only) this.
    op.execute(f"GRANT SELECT ON alembic_version TO {APP_ROLE}")


def downgrade() -> None:
    for table in reversed(TABLES):
        op.execute(f"DROP TABLE {table}")
    op.execute(f"REVOKE ALL ON alembic_version FROM {APP_ROLE}")
    # The role is cluster-wide: drop it only where nothing else still refers to it.
    op.execute(
        f"""
        DO $$ BEGIN
            DROP ROLE IF EXISTS {APP_ROLE};
        EXCEPTION WHEN dependent_objects_still_exist THEN
            RAISE NOTICE 'role {APP_ROLE} kept: other databases still refer to it';
        END $$
        """
    )
    # The vector extension stays: other schemas of this database may use it.
