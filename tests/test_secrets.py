"""memory.secrets against a real Secrets Manager protocol server (moto): what each secret shape becomes."""

from __future__ import annotations

import sys

import pytest

from memory.config import env_name, get_settings
from memory.errors import ConfigurationError
from memory.secrets import migration_url, settings_with_secrets
from tests.aws_support import LocalAWS, aws, aws_server, create_secret

__all__ = ["aws", "aws_server"]  # fixtures used by name


def test_without_secret_arns_nothing_is_read_and_boto3_is_not_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # an import of boto3 would now fail
    settings = get_settings(store_url_secret_arn="")
    assert settings_with_secrets(settings) is settings


def test_secrets_replace_the_settings_they_fill(aws: LocalAWS, monkeypatch: pytest.MonkeyPatch) -> None:
    store = create_secret(aws, "store", "postgresql://app:p%40ss@db.example:5432/memories")
    key = create_secret(aws, "claude", {"ANTHROPIC_API_KEY": "sk-ant-secret"})  # a console key/value secret
    monkeypatch.setenv("MEMORY_STORE_URL_SECRET_ARN", store)
    monkeypatch.setenv("MEMORY_ANTHROPIC_API_KEY_SECRET_ARN", key)
    monkeypatch.setenv("MEMORY_TOP_K", "7")
    settings = settings_with_secrets()
    assert settings.store_url == "postgresql://app:p%40ss@db.example:5432/memories"
    assert settings.anthropic_api_key is not None
    assert settings.anthropic_api_key.get_secret_value() == "sk-ant-secret"
    assert settings.top_k == 7  # everything else as the environment says


def test_the_upstash_token_comes_from_its_secret(aws: LocalAWS, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPSTASH_REDIS_REST_TOKEN", "a-token-in-the-functions-configuration")
    monkeypatch.setenv("MEMORY_UPSTASH_TOKEN_SECRET_ARN", create_secret(aws, "upstash", "AX-secret-token"))
    settings = settings_with_secrets()
    assert settings.upstash_redis_rest_token is not None
    assert settings.upstash_redis_rest_token.get_secret_value() == "AX-secret-token"
    assert "AX-secret-token" not in repr(settings)


def test_an_rds_secret_becomes_a_postgres_url(aws: LocalAWS) -> None:
    rds = {"engine": "postgres", "username": "owner", "password": "p@ss/w:rd", "host": "db.example", "port": 5432}
    arn = create_secret(aws, "rds", {**rds, "dbname": "memories"})
    url = migration_url(get_settings(database_url_secret_arn=arn))
    assert url == "postgresql://owner:p%40ss%2Fw%3Ard@db.example:5432/memories?sslmode=require"


def test_migrations_use_the_owner_then_database_url_then_the_store(
    aws: LocalAWS, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = get_settings(store_url="postgresql://app@db/memories")
    assert migration_url(settings) == "postgresql://app@db/memories"
    monkeypatch.setenv("DATABASE_URL", "postgresql://owner@db/memories")
    assert migration_url(settings) == "postgresql://owner@db/memories"
    arn = create_secret(aws, "owner", "postgresql://secret-owner@db/memories")
    assert migration_url(get_settings(database_url_secret_arn=arn)) == "postgresql://secret-owner@db/memories"


def test_a_missing_secret_names_the_setting_and_the_fix(aws: LocalAWS) -> None:
    arn = create_secret(aws, "exists", "x").replace("exists", "missing")
    with pytest.raises(ConfigurationError, match=r"MEMORY_STORE_URL_SECRET_ARN=.*GetSecretValue"):
        settings_with_secrets(get_settings(store_url_secret_arn=arn))


def test_a_secret_of_the_wrong_shape_says_what_to_store(aws: LocalAWS) -> None:
    arn = create_secret(aws, "two-keys", {"a": "1", "b": "2"})
    with pytest.raises(ConfigurationError, match=r"SECRET_ARN: the secret is JSON with keys \['a', 'b'\]"):
        settings_with_secrets(get_settings(store_url_secret_arn=arn))


def test_an_invalid_value_is_reported_without_echoing_it(aws: LocalAWS) -> None:
    arn = create_secret(aws, "not-a-url", "hunter2")
    with pytest.raises(ConfigurationError) as caught:
        settings_with_secrets(get_settings(store_url_secret_arn=arn))
    assert "MEMORY_STORE_URL" in str(caught.value) and "hunter2" not in str(caught.value)


GENERATED = {"username": "agent memory", "password": "p@ss/w:rd"}  # what GenerateSecretString makes: no host


def test_a_generated_secret_is_completed_by_the_database_settings(aws: LocalAWS) -> None:
    arn = create_secret(aws, "generated", GENERATED)
    proxy = "proxy.proxy-abc.us-east-1.rds.amazonaws.com"
    settings = settings_with_secrets(
        get_settings(store_url_secret_arn=arn, database_host=proxy, database_port="6432", database_name="memories")
    )
    assert settings.store_url == f"postgresql://agent%20memory:p%40ss%2Fw%3Ard@{proxy}:6432/memories?sslmode=require"
    assert migration_url(get_settings(database_url_secret_arn=arn, database_host=proxy)) == (
        f"postgresql://agent%20memory:p%40ss%2Fw%3Ard@{proxy}:5432/postgres?sslmode=require"
    )


def test_the_database_host_replaces_an_attached_secret_s_and_port_and_name_only_when_set(aws: LocalAWS) -> None:
    """A secret attached to the cluster names the cluster; the functions must go through the proxy."""
    attached = {**GENERATED, "host": "cluster.cluster-abc.rds.amazonaws.com", "port": 5433, "dbname": "memories"}
    arn = create_secret(aws, "attached", attached)
    url = "postgresql://agent%20memory:p%40ss%2Fw%3Ard@{}/{}?sslmode=require"
    assert migration_url(get_settings(database_url_secret_arn=arn, database_host="proxy")) == url.format(
        "proxy:5433", "memories"
    )
    assert migration_url(
        get_settings(database_url_secret_arn=arn, database_port=5432, database_name="other")
    ) == url.format("cluster.cluster-abc.rds.amazonaws.com:5432", "other")
    assert migration_url(get_settings(database_url_secret_arn=arn, database_host="::1")) == url.format(
        "[::1]:5433", "memories"
    )


def test_a_socket_directory_host_goes_in_the_query_without_tls(aws: LocalAWS) -> None:
    arn = create_secret(aws, "local", GENERATED)
    url = migration_url(get_settings(database_url_secret_arn=arn, database_host="/run/pg sock", database_name="m"))
    assert url == "postgresql://agent%20memory:p%40ss%2Fw%3Ard@/m?host=/run/pg%20sock&port=5432"


def test_the_database_settings_leave_a_url_secret_alone(aws: LocalAWS) -> None:
    arn = create_secret(aws, "url", "postgresql://owner:pw@db.example/memories")
    settings = get_settings(database_url_secret_arn=arn, database_host="proxy", database_name="other")
    assert migration_url(settings) == "postgresql://owner:pw@db.example/memories"


def test_empty_database_settings_are_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """serverless.yml passes '' when the stack has no RDS database."""
    for name in ("MEMORY_DATABASE_HOST", "MEMORY_DATABASE_PORT", "MEMORY_DATABASE_NAME"):
        monkeypatch.setenv(name, " ")
    settings = get_settings()
    assert (settings.database_host, settings.database_port, settings.database_name) == (None, None, None)
    monkeypatch.setenv("MEMORY_DATABASE_PORT", "0")
    with pytest.raises(ConfigurationError, match="MEMORY_DATABASE_PORT"):
        get_settings()


@pytest.mark.parametrize("setting", ["store_url_secret_arn", "database_url_secret_arn"])
def test_a_secret_without_a_host_names_the_host_setting_and_not_the_password(aws: LocalAWS, setting: str) -> None:
    arn = create_secret(aws, "no-host", GENERATED)
    settings = get_settings(**{setting: arn})
    with pytest.raises(ConfigurationError) as caught:
        settings_with_secrets(settings) if setting == "store_url_secret_arn" else migration_url(settings)
    message = str(caught.value)
    assert "MEMORY_DATABASE_HOST" in message and env_name(setting) in message
    assert GENERATED["password"] not in message and "p%40ss" not in message
