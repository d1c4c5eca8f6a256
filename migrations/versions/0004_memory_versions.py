"""Per-user data versions (``MemoryStore.version``) kept by triggers, and an index for ``list`` by importance.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25

Why these choices:
- A cache of each user's core memories keys its entries by the user's version, so it can never serve data
  older than the last write that returned, even when it missed an invalidation. The version must therefore
  change in the same transaction as the memories: triggers on ``memories`` change it, whoever writes
  (the store, a script as the owner, a bulk COPY).
- STATEMENT-level triggers with transition tables, one per event (Postgres allows transition tables on
  single-event triggers only): a statement bumps each scope it touched once, so bench/pg_search_latency.py's
  COPY of 110,000 rows does one upsert per user, not one per row.
- The function runs as the invoking role: the app role, under row-level security, with the scope its
  transaction set. ``memory_versions`` has the same scope policy as every other table (ENABLE + FORCE), so
  the trigger may write the scope's own row and no transaction can read or touch another scope's row.
- New value = greatest(previous + 1, the clock in microseconds). Existing rows are updated first and only
  then are missing ones inserted, so the clock is read once the row lock is held: a write that waited for
  ``forget_user`` (which deletes the row, and commits only once the clock has passed it) starts the row
  again from a clock past the deleted version, never from a value read before the wait.
- Users who already have memories get a version here, so ``None`` keeps meaning "nothing stored". A table
  owner who is not a superuser is filtered by FORCE ROW LEVEL SECURITY, so it is lifted on ``memories`` for
  the copy of their scopes (inside this migration's transaction).
- ``memories_importance`` serves ``list(order_by="importance")`` (importance, then the most recently
  updated, then id) over the active rows, which is what a cache of core memories reads: an ordered index scan
  that stops at the limit. Measured as the app role on bench/pg_search_latency.py's data (110,000 memories,
  one user with 10,000, a fifth of them archived), ``limit=20``: 0.03 ms and 23 buffers, against 11 ms and
  7,222 buffers without it (the user's 8,000 active rows read and sorted). Partial, like the search indexes:
  the archived rows that pile up stay out of it; a list that includes them sorts the user's rows (13 ms).
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

APP_ROLE = "agent_memory_app"
SCOPE = "tenant_id = current_setting('app.tenant_id', true) AND user_id = current_setting('app.user_id', true)"
TABLE = "memory_versions"
NOW_US = "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint"
# trigger name: (event, the transition tables it keeps)
TRIGGERS = {
    "memories_version_insert": ("INSERT", "NEW TABLE AS new_rows"),
    "memories_version_update": ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
    "memories_version_delete": ("DELETE", "OLD TABLE AS old_rows"),
}
# Each scope the statement changed, once, in one order (so concurrent statements lock version rows alike).
_AGGREGATE = "array_agg(tenant_id ORDER BY tenant_id, user_id), array_agg(user_id ORDER BY tenant_id, user_id)"

BUMP_FUNCTION = f"""
CREATE FUNCTION memory_versions_bump() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    tenants text[];
    users text[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT {_AGGREGATE} INTO tenants, users FROM (SELECT DISTINCT tenant_id, user_id FROM new_rows) AS s;
    ELSIF TG_OP = 'UPDATE' THEN
        SELECT {_AGGREGATE} INTO tenants, users
        FROM (SELECT tenant_id, user_id FROM old_rows UNION SELECT tenant_id, user_id FROM new_rows) AS s;
    ELSE
        SELECT {_AGGREGATE} INTO tenants, users FROM (SELECT DISTINCT tenant_id, user_id FROM old_rows) AS s;
    END IF;
    IF tenants IS NULL THEN
        RETURN NULL;  -- the statement changed no row
    END IF;
    -- Existing rows first: the clock is read once their lock is held.
    UPDATE {TABLE} AS v SET version = greatest(v.version + 1, {NOW_US})
    FROM unnest(tenants, users) AS s(tenant_id, user_id)
    WHERE v.tenant_id = s.tenant_id AND v.user_id = s.user_id;
    -- Then the scopes without one (new, or forgotten); a concurrent first write may have made it meanwhile.
    INSERT INTO {TABLE} (tenant_id, user_id, version)
    SELECT s.tenant_id, s.user_id, {NOW_US} FROM unnest(tenants, users) AS s(tenant_id, user_id)
    WHERE NOT EXISTS (SELECT FROM {TABLE} AS v WHERE v.tenant_id = s.tenant_id AND v.user_id = s.user_id)
    ON CONFLICT (tenant_id, user_id) DO UPDATE SET version = greatest({TABLE}.version + 1, excluded.version);
    RETURN NULL;
END
$$
"""
# A TRUNCATE (an operator's, the app role may not) fires no row or statement trigger above: it empties the
# versions too, so the next write of every user starts again from the clock, past every version before.
RESET_FUNCTION = f"""
CREATE FUNCTION memory_versions_reset() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE {TABLE};
    RETURN NULL;
EXCEPTION WHEN object_in_use THEN
    RETURN NULL;  -- the same TRUNCATE names memory_versions too: it is being emptied already
END
$$
"""


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE {TABLE} (
            tenant_id text NOT NULL,
            user_id text NOT NULL,
            version bigint NOT NULL,
            PRIMARY KEY (tenant_id, user_id)
        )
        """
    )
    op.execute("ALTER TABLE memories NO FORCE ROW LEVEL SECURITY")
    op.execute(
        f"INSERT INTO {TABLE} (tenant_id, user_id, version) "
        f"SELECT tenant_id, user_id, {NOW_US} FROM (SELECT DISTINCT tenant_id, user_id FROM memories) AS s"
    )
    op.execute("ALTER TABLE memories FORCE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {TABLE} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {TABLE} FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY {TABLE}_scope ON {TABLE} USING ({SCOPE}) WITH CHECK ({SCOPE})")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {TABLE} TO {APP_ROLE}")
    op.execute(BUMP_FUNCTION)
    for name, (event, transition) in TRIGGERS.items():
        op.execute(
            f"CREATE TRIGGER {name} AFTER {event} ON memories REFERENCING {transition} "
            "FOR EACH STATEMENT EXECUTE FUNCTION memory_versions_bump()"
        )
    op.execute(RESET_FUNCTION)
    op.execute(
        "CREATE TRIGGER memories_version_truncate AFTER TRUNCATE ON memories "
        "FOR EACH STATEMENT EXECUTE FUNCTION memory_versions_reset()"
    )
    op.execute(
        "CREATE INDEX memories_importance ON memories (tenant_id, user_id, importance DESC, updated_at DESC, id) "
        "WHERE status = 'active'"
    )


def downgrade() -> None:
    op.execute("DROP INDEX memories_importance")
    op.execute("DROP TRIGGER memories_version_truncate ON memories")
    op.execute("DROP FUNCTION memory_versions_reset()")
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON memories")
    op.execute("DROP FUNCTION memory_versions_bump()")
    op.execute(f"DROP TABLE {TABLE}")  # its policy and grants go with it
