"""memory.secrets against a real Secrets Manager protocol server (moto): what each secret shape becomes."""

from __future__ import annotations

import sys

import pytest

from memory.config import get_settings
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
