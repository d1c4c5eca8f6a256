"""The application login of the row-level security design, created by a migration, with its password from
Secrets Manager.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

Why these choices:
- On AWS the store's credentials are a generated secret that no one reads, so no one can run the
  ``CREATE ROLE ... PASSWORD`` that a self-managed server gets by hand. The caller (``memory.migrations``:
  ``agent-memory migrate`` and the Lambda migrate function) puts the store's login, when it is not the
  owner, in ``config.attributes["app_login"]``; without one this revision changes nothing, so local
  development and the tests keep making their own logins.
- All of it is ``memory.app_login.ensure_app_login`` (create, or set the password of, a login in
  ``agent_memory_app``; refuse a superuser or BYPASSRLS role), which ``memory.migrations.upgrade`` also calls
  when the schema is already at head: a rotated secret takes effect on the next migrate.
- Only the password's verifier, computed by libpq on the client, is in the statement the server may log.
- Downgrade drops the configured login if nothing else refers to it. ``memory.migrations.downgrade`` passes
  the login only when asked: a schema rolled back for a code rollback keeps the login the old code connects
  as.
"""

from alembic import context, op

from memory.app_login import APPLIED, ATTRIBUTE, drop_app_login, ensure_app_login

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    login = context.config.attributes.get(ATTRIBUTE)
    if login is not None:
        ensure_app_login(op.get_bind().connection.driver_connection, login)
        context.config.attributes[APPLIED] = True


def downgrade() -> None:
    login = context.config.attributes.get(ATTRIBUTE)
    if login is not None:
        drop_app_login(op.get_bind().connection.driver_connection, login)
