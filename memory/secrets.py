"""Settings whose values live in AWS Secrets Manager: read once, at start-up, by every Lambda handler.

serverless.yml passes secret *ARNs*, never values: anything resolved at package or deploy time ends up in
``.serverless/`` state files and the function's configuration. So a handler builds its settings with
``settings_with_secrets()``, which reads each configured secret and puts its value where the plain setting
would be:

- ``MEMORY_STORE_URL_SECRET_ARN`` -> ``MEMORY_STORE_URL`` (the application role's URL);
- ``MEMORY_ANTHROPIC_API_KEY_SECRET_ARN`` -> ``ANTHROPIC_API_KEY``;
- ``MEMORY_UPSTASH_TOKEN_SECRET_ARN`` -> ``UPSTASH_REDIS_REST_TOKEN`` (the session store's, ``upstash://``);
- ``MEMORY_DATABASE_URL_SECRET_ARN`` -> the schema owner's URL, which only ``migration_url`` uses.

A database secret may hold the URL as text (used as it is), or a one-entry JSON object (a console key/value
secret), or be JSON with ``username`` and ``password``: what ``GenerateSecretString`` and RDS-managed master
secrets hold, with ``host``, ``port`` and ``dbname`` only once ``AWS::SecretsManager::SecretTargetAttachment``
has added them. Such a secret becomes ``postgresql://user:password@host:port/dbname?sslmode=require`` (user and
password URL-quoted), completed by plain settings:

- ``MEMORY_DATABASE_HOST``, when set, is the host *even if the secret names one*: a secret attached to the
  cluster names the cluster's endpoint, and the functions must connect through RDS Proxy, whose endpoint is
  not in any secret. Unset, the secret's ``host``; neither is a ``ConfigurationError`` naming both settings.
  A host that is a directory (``/...``) is a Unix socket, passed as libpq's ``host`` parameter, without TLS.
- ``MEMORY_DATABASE_PORT`` and ``MEMORY_DATABASE_NAME`` likewise win when set; unset, the secret's ``port``
  and ``dbname``, else 5432 and ``postgres``. Their defaults are "unset" rather than 5432 and ``postgres`` so
  that a complete secret is used as it is unless the deployer says otherwise.

boto3 is imported only when a secret is configured: it is in the Lambda runtime, and a cold start without
secrets does not load it. botocore honours ``AWS_ENDPOINT_URL_SECRETS_MANAGER`` (the tests' local endpoint).
Nothing here puts a secret's value in an error message.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import quote

from pydantic import ValidationError

from memory.config import Settings, env_name, get_settings
from memory.errors import ConfigurationError

# The setting holding an ARN -> the setting its secret fills.
SECRET_SETTINGS = {
    "store_url_secret_arn": "store_url",
    "anthropic_api_key_secret_arn": "anthropic_api_key",
    "upstash_token_secret_arn": "upstash_redis_rest_token",
}
_URL_SETTINGS = {"store_url_secret_arn", "database_url_secret_arn"}


def settings_with_secrets(settings: Settings | None = None, *, client: Any = None) -> Settings:
    """``settings`` (default: the environment) with every configured secret read into its setting.

    Returns ``settings`` itself when no secret ARN is set. Raises ``ConfigurationError`` naming the ARN's
    setting when a secret cannot be read or does not hold what it should.
    """
    settings = settings or get_settings()
    overrides = {}
    for arn_setting, target in SECRET_SETTINGS.items():
        if getattr(settings, arn_setting) is not None:
            client = client or secrets_client()
            overrides[target] = read_secret(settings, arn_setting, client)
    if not overrides:
        return settings
    try:
        return Settings(**{**dict(settings), **overrides})
    except ValidationError as exc:  # the message must not echo the secret
        names = ", ".join(env_name(str(e["loc"][0])) for e in exc.errors() if e["loc"])
        raise ConfigurationError(f"a value read from Secrets Manager is not valid for {names}") from None


def migration_url(settings: Settings, *, client: Any = None) -> str:
    """The URL migrations run with: ``MEMORY_DATABASE_URL_SECRET_ARN``'s secret, else ``DATABASE_URL``, else
    the store URL (which ``settings_with_secrets`` may have read from its own secret)."""
    if settings.database_url_secret_arn is not None:
        return read_secret(settings, "database_url_secret_arn", client or secrets_client())
    return os.environ.get("DATABASE_URL") or settings.store_url


def secrets_client() -> Any:
    """A Secrets Manager client for the function's region (``AWS_REGION``, which Lambda sets)."""
    try:
        import boto3
    except ImportError as exc:
        raise ConfigurationError(
            "a *_SECRET_ARN setting is set but boto3 is not installed: pip install 'agent-memory[aws]' "
            "(the Lambda runtime has it)"
        ) from exc
    return boto3.client("secretsmanager")


def read_secret(settings: Settings, arn_setting: str, client: Any) -> str:
    """The value of the secret whose ARN is in ``arn_setting``, as the setting it fills wants it."""
    from botocore.exceptions import BotoCoreError, ClientError

    name, arn = env_name(arn_setting), getattr(settings, arn_setting)
    try:
        response = client.get_secret_value(SecretId=arn)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise ConfigurationError(
            f"{name}={arn}: Secrets Manager refused ({error.get('Code')}: {error.get('Message')}); check the ARN "
            "and that the function's role may secretsmanager:GetSecretValue on it"
        ) from exc
    except BotoCoreError as exc:
        raise ConfigurationError(
            f"{name}={arn}: cannot reach Secrets Manager ({exc}); a function in a VPC needs a Secrets Manager "
            "VPC endpoint or a NAT gateway"
        ) from exc
    text = response.get("SecretString")
    if not isinstance(text, str) or not text.strip():
        raise ConfigurationError(f"{name}={arn}: the secret has no text value (SecretString)")
    return _value(text.strip(), name, settings if arn_setting in _URL_SETTINGS else None)


def _value(text: str, name: str, database: Settings | None) -> str:
    """Plain text as it is; a one-entry JSON object as its value; with ``database`` (the settings, for a URL
    secret), JSON with a username and password as a Postgres URL completed by ``MEMORY_DATABASE_*``."""
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if not isinstance(data, dict):
        return text
    if database is not None and {"username", "password"} <= data.keys():
        return _database_url(data, name, database)
    values = [value for value in data.values() if isinstance(value, str)]
    if len(data) == 1 and values:
        return values[0]
    expected = "a URL, JSON with username and password (and host, port, dbname) or" if database else "plain text or"
    raise ConfigurationError(f"{name}: the secret is JSON with keys {sorted(data)}; store {expected} one key/value")


def _database_url(data: dict[str, Any], name: str, settings: Settings) -> str:
    """The URL of a username/password secret, the ``MEMORY_DATABASE_*`` settings first (module docstring)."""
    host = settings.database_host or str(data.get("host") or "").strip()
    if not host:
        raise ConfigurationError(
            f"{name}: the secret has a username and password but no host; set {env_name('database_host')} to "
            "the database's endpoint (the RDS Proxy endpoint on AWS)"
        )
    port = settings.database_port or data.get("port") or 5432
    dbname = settings.database_name or str(data.get("dbname") or "postgres")
    credentials = f"{quote(str(data['username']), safe='')}:{quote(str(data['password']), safe='')}"
    database = quote(dbname, safe="")
    if host.startswith("/"):  # a Unix socket directory: a URL's host cannot hold a path, libpq's parameter can
        return f"postgresql://{credentials}@/{database}?host={quote(host, safe='/')}&port={port}"
    if ":" in host and not host.startswith("["):  # an IPv6 address
        host = f"[{host}]"
    return f"postgresql://{credentials}@{host}:{port}/{database}?sslmode=require"
