"""The SQL of the Postgres store's maintenance calls (``scopes``, ``try_lease``, ``release_lease``), beside
``postgres.py`` to keep it small. The schema is migrations/versions/0005_maintenance.py."""

from __future__ import annotations

# ``scopes`` runs in a transaction of its own that sets no scope, only ``app.list_scopes``: the SELECT-only
# policy of 0005 then shows it every row of memory_versions (and nothing of any other table).
LIST_SCOPES_SETUP_SQL = (
    "SELECT set_config('app.list_scopes', 'on', true), set_config('statement_timeout', %(statement_timeout)s, true)"
)
# The keyset walks memory_versions_scopes (COLLATE "C": code point order, as the other stores), from ("", "")
# when there is no ``after`` (memory.stores.base.check_scopes_query).
SCOPES_SQL = """
SELECT tenant_id, user_id FROM memory_versions
WHERE (tenant_id COLLATE "C", user_id COLLATE "C") > (%(after_tenant)s, %(after_user)s)
ORDER BY tenant_id COLLATE "C", user_id COLLATE "C" LIMIT %(limit)s
"""
# One atomic statement: a new lease is inserted; an existing one is taken over only when it has expired or is
# the owner's own (renewed), else the upsert changes nothing and returns no row. Two callers racing for one
# scope queue on its row and the second sees the first's lease. The clock is the server's, read as it runs.
TRY_LEASE_SQL = """
INSERT INTO maintenance_leases AS l (tenant_id, user_id, owner, expires_at)
VALUES (%(tenant_id)s, %(user_id)s, %(owner)s, clock_timestamp() + make_interval(secs => %(ttl_seconds)s))
ON CONFLICT (tenant_id, user_id) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
WHERE l.expires_at <= clock_timestamp() OR l.owner = excluded.owner
RETURNING owner
"""
RELEASE_LEASE_SQL = """
DELETE FROM maintenance_leases WHERE tenant_id = %(tenant_id)s AND user_id = %(user_id)s AND owner = %(owner)s
"""
FORGET_LEASE_SQL = "DELETE FROM maintenance_leases WHERE tenant_id = %(tenant_id)s AND user_id = %(user_id)s"
