"""What the scheduled maintenance job needs: listing every scope with memories, and a lease per scope.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26

Why these choices:
- ``MemoryStore.scopes`` reads ``memory_versions``: one row per scope, made by the triggers of 0004 with the
  scope's first memory (and, by 0004's upgrade, for every scope that had memories before it), kept through
  every status change and delete, removed only by ``forget_user`` (and by an operator's TRUNCATE, which
  empties the memories too). So it lists exactly the scopes that have a version, without reading a memory.
- Listing must work as the app role, under the scope policy that shows a transaction only its own scope. A
  second, permissive policy ``memory_versions_list_scopes`` lets a transaction that set
  ``app.list_scopes`` to ``on`` (``set_config(..., true)``: transaction-local; the store does it only in
  ``scopes()``) see every row of ``memory_versions``: tenant, user and version, nothing of any memory.
  Permissive policies are OR-ed per command, so it is ``FOR SELECT`` only: INSERT, UPDATE and DELETE still
  pass only the scope policy (its USING and WITH CHECK), and an UPDATE or DELETE, which must pass both kinds,
  still reaches only the scope's own row. No other table gets such a policy. This widens nothing the app role
  could not already do: it may set ``app.tenant_id``/``app.user_id`` to any scope (row-level security guards
  against a query forgetting its scope, not against the app role itself).
- ``memory_versions_scopes`` on ``(tenant_id COLLATE "C", user_id COLLATE "C")``: ``scopes`` pages in code
  point order (as SQLite's BINARY and Qdrant's sort in Python do) whatever the database's collation, and this
  index serves that order and the keyset ``(tenant_id, user_id) > (after)``. (The columns themselves cannot
  change collation: the scope policy depends on them.) It holds no ``version``, so bumps stay HOT updates.
- ``maintenance_leases``: one row per leased scope, taken or renewed by one atomic upsert whose conflict
  branch updates only an expired lease or the owner's own, timed by the database clock. Not advisory locks:
  session-level ones do not survive transaction-mode poolers (RDS Proxy, PgBouncer, Neon, Supabase), and
  transaction-level ones end with the transaction while consolidating a user spans many. Row-level security
  exactly as on the other tables (ENABLE + FORCE, one scope policy); ``forget_user`` deletes the row.
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

APP_ROLE = "agent_memory_app"
SCOPE = "tenant_id = current_setting('app.tenant_id', true) AND user_id = current_setting('app.user_id', true)"
VERSIONS = "memory_versions"
LEASES = "maintenance_leases"


def upgrade() -> None:
    op.execute(f'CREATE INDEX {VERSIONS}_scopes ON {VERSIONS} (tenant_id COLLATE "C", user_id COLLATE "C")')
    op.execute(
        f"CREATE POLICY {VERSIONS}_list_scopes ON {VERSIONS} FOR SELECT "
        "USING (current_setting('app.list_scopes', true) = 'on')"
    )
    op.execute(
        f"""
        CREATE TABLE {LEASES} (
            tenant_id text NOT NULL,
            user_id text NOT NULL,
            owner text NOT NULL,
            expires_at timestamptz NOT NULL,
            PRIMARY KEY (tenant_id, user_id)
        )
        """
    )
    op.execute(f"ALTER TABLE {LEASES} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {LEASES} FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY {LEASES}_scope ON {LEASES} USING ({SCOPE}) WITH CHECK ({SCOPE})")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {LEASES} TO {APP_ROLE}")


def downgrade() -> None:
    op.execute(f"DROP TABLE {LEASES}")  # its policy and grants go with it
    op.execute(f"DROP POLICY {VERSIONS}_list_scopes ON {VERSIONS}")
    op.execute(f"DROP INDEX {VERSIONS}_scopes")
