"""The Postgres schema and the application login (``memory.migrations``): invoked once per deploy, by the deployer.

    npx osls deploy --param ... && npx osls invoke -f migrate
    npx osls invoke -f migrate --data '{"revision": "0005"}'    # the schema rollback before a code rollback

It connects as the schema owner: ``MEMORY_DATABASE_URL_SECRET_ARN``'s secret, else ``DATABASE_URL``, else the
store URL (``memory.secrets.migration_url``). Events:

- ``{}`` (or ``{"revision": "head"}``): upgrade to head, then create the store's login or set its password
  from ``MEMORY_STORE_URL_SECRET_ARN``'s secret (``memory.app_login.app_login_from``), so a rotated secret
  takes effect on the next invocation. Answers ``{"revision", "database", "app_login": user or null}``.
- ``{"revision": "0005"}``: downgrade to that revision, keeping the login (the code rolled back to connects
  with it); with ``"drop_app_login": true`` revision 0006's downgrade drops it too. ``"base"`` and ``"0001"``
  delete every memory and need ``"confirm_data_loss": true``. Answers the same keys and ``"downgraded": true``.

A failure raises, so ``osls invoke`` prints it and exits non-zero.
"""

from __future__ import annotations

from typing import Any

from memory import telemetry
from memory.app_login import app_login_from
from memory.errors import ConfigurationError
from memory.migrations import downgrade, upgrade
from memory.secrets import migration_url, settings_with_secrets
from memory.stores import redact_url


@telemetry.lambda_handler
def handler(event: Any, context: Any) -> dict[str, Any]:
    event = event if isinstance(event, dict) else {}
    settings = settings_with_secrets()
    url = migration_url(settings)
    app_login = app_login_from(settings.store_url, url)
    revision = event.get("revision", "head")
    if not isinstance(revision, str) or not revision.strip():
        raise ConfigurationError(f'"revision" must be a revision id such as "0005", or "head" (got {revision!r})')
    if revision.strip() == "head":
        reached, url = upgrade(url, app_login=app_login)
        return {"revision": reached, "database": redact_url(url), "app_login": app_login and app_login.user}
    dropped = app_login if event.get("drop_app_login") is True else None
    reached, url = downgrade(
        url, revision.strip(), app_login=dropped, confirm_data_loss=event.get("confirm_data_loss") is True
    )
    return {"revision": reached, "database": redact_url(url), "app_login": dropped and dropped.user, "downgraded": True}
