"""Bring the Postgres schema to head (``memory.migrations.upgrade``): invoked once per deploy, by the deployer.

    npx osls deploy --param ... && npx osls invoke -f migrate

It connects as the schema owner: ``MEMORY_DATABASE_URL_SECRET_ARN``'s secret, else ``DATABASE_URL``, else the
store URL (``memory.secrets.migration_url``). A failure raises, so ``osls invoke`` prints it and exits non-zero.
"""

from __future__ import annotations

from typing import Any

from memory.migrations import upgrade
from memory.secrets import migration_url, settings_with_secrets
from memory.stores import redact_url


def handler(event: dict[str, Any], context: Any) -> dict[str, str]:
    revision, url = upgrade(migration_url(settings_with_secrets()))
    return {"revision": revision, "database": redact_url(url)}
