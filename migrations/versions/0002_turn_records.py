"""The write-back ledger: one record per conversation turn of a scope (``memory.turns.TurnRecord``).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

Why these choices:
- Row-level security exactly as on the tables of 0001 (ENABLE + FORCE, one policy on tenant and user): a
  record holds what the user said until write-back is done, so it is as private as a memory.
- ``turn_id`` is ``COLLATE "C"``: ``list_turns`` breaks ``created_at`` ties by ``turn_id`` in code point
  order, as SQLite (BINARY) and Qdrant (sorted in Python) do, whatever the database's default collation.
- ``turn_records_status`` serves ``list_turns`` (scope, status, then the order it returns), so finding the
  few pending or failed records does not read the ``done`` ones that pile up turn after turn.
- ``operations`` NULL means "not extracted yet", ``[]`` "nothing worth keeping": the column stays nullable.
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

APP_ROLE = "agent_memory_app"
SCOPE = "tenant_id = current_setting('app.tenant_id', true) AND user_id = current_setting('app.user_id', true)"
TABLE = "turn_records"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE {TABLE} (
            tenant_id text NOT NULL,
            user_id text NOT NULL,
            turn_id text COLLATE "C" NOT NULL,
            session_id text,
            status text NOT NULL CHECK (status IN ('pending', 'failed', 'done')),
            user_message text,
            assistant_reply text,
            operations jsonb,
            result jsonb NOT NULL DEFAULT '{{}}',
            attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
            error text,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            PRIMARY KEY (tenant_id, user_id, turn_id)
        )
        """
    )
    op.execute(f"CREATE INDEX {TABLE}_status ON {TABLE} (tenant_id, user_id, status, created_at, turn_id)")
    op.execute(f"ALTER TABLE {TABLE} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {TABLE} FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY {TABLE}_scope ON {TABLE} USING ({SCOPE}) WITH CHECK ({SCOPE})")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {TABLE} TO {APP_ROLE}")


def downgrade() -> None:
    op.execute(f"DROP TABLE {TABLE}")  # its policy, index and grants go with it
