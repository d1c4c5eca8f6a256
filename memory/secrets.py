"""Settings whose values live in AWS Secrets Manager: read once, at start-up, by every Lambda handler.

serverless.yml passes secret *ARNs*, never values: anything resolved at package or deploy time ends up in
``.serverless/`` state files and the function's configuration. So a handler builds its settings with
``settings_with_secrets()``, which reads each configured secret and puts its value where the plain setting
would be:

- ``MEMORY_STORE_URL_SECRET_ARN`` -> ``MEMORY_STORE_URL`` (the application role's URL);
- ``MEMORY_ANTHROPIC_API_KEY_SECRET_ARN`` -> ``ANTHROPIC_API_KEY``;
- ``MEMORY_DATABASE_URL_SECRET_ARN`` -> the schema owner's URL, which only ``migration_url`` uses.

A database secret may hold the URL as text, or be the JSON that RDS and ``AWS::SecretsManager::
SecretTargetAttachment`` write (``username``, ``password``, ``host``, ``port``, ``dbname``), or a one-entry
JSON object (a console key/value secret). boto3 is imported only when a secret is configured: it is in the
Lambda runtime, and a cold start without secrets does not load it. botocore honours
``AWS_ENDPOINT_URL_SECRETS_MANAGER`` (the tests' local endpoint).
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
SECRET_SETTINGS = {"store_url_secret_arn": "store_url", "anthropic_api_key_secret_arn": "anthropic_api_key"}
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
    return _value(text.strip(), name, url=arn_setting in _URL_SETTINGS)


def _value(text: str, name: str, *, url: bool) -> str:
    """Plain text as it is; RDS-style JSON as a Postgres URL; a one-entry JSON object as its value."""
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if not isinstance(data, dict):
        return text
    if url and {"username", "password", "host"} <= data.keys():
        user, password = quote(str(data["username"]), safe=""), quote(str(data["password"]), safe="")
        port, dbname = data.get("port") or 5432, quote(str(data.get("dbname") or "postgres"), safe="")
        return f"postgresql://{user}:{password}@{data['host']}:{port}/{dbname}?sslmode=require"
    values = [value for value in data.values() if isinstance(value, str)]
    if len(data) == 1 and values:
        return values[0]
    expected = "a URL, RDS JSON (username, password, host, port, dbname) or" if url else "plain text or"
    raise ConfigurationError(f"{name}: the secret is JSON with keys {sorted(data)}; store {expected} one key/value")
