"""Settings come from the environment when asked, and a bad value names its variable."""

from __future__ import annotations

import pytest

from memory import ConfigurationError, Memory, Ranking, get_settings
from memory.stores import open_store, redact_url, sqlite_path
from memory.stores.sqlite import SQLiteStore


def test_defaults() -> None:
    settings = get_settings()
    assert settings.store_url == "sqlite:///agent_memory.db"
    assert settings.dedup_threshold == 0.92 and settings.top_k == 5
    assert settings.ranking.rrf_k == 10 and settings.ranking.candidates == 50
    assert settings.ranking.vector_weight == 1.0 and settings.ranking.keyword_weight == 2.0
    assert settings.ranking == Ranking(min_similarity=settings.min_similarity)  # the library's defaults too


def test_environment_is_read_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMORY_TOP_K", "7")
    monkeypatch.setenv("MEMORY_DEDUP_THRESHOLD", "0.95")
    settings = get_settings()
    assert settings.top_k == 7 and settings.dedup_threshold == 0.95
    assert get_settings(top_k=3).top_k == 3  # explicit overrides win


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MEMORY_TOP_K", "0"),
        ("MEMORY_TOP_K", "many"),
        ("MEMORY_DEDUP_THRESHOLD", "1.5"),
        ("MEMORY_STORE_URL", "agent_memory.db"),
        ("MEMORY_RECENCY_HALF_LIFE_DAYS", "0"),
        ("MEMORY_MIN_SIMILARITY", "2"),
        ("MEMORY_KEYWORD_WEIGHT", "-1"),
    ],
)
def test_a_bad_value_names_its_variable(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=variable):
        get_settings()


def test_store_urls() -> None:
    assert sqlite_path("sqlite://") == ":memory:"
    assert sqlite_path("sqlite:///:memory:") == ":memory:"
    assert sqlite_path("sqlite:///data/m.db") == "data/m.db"
    assert sqlite_path("sqlite:////var/m.db") == "/var/m.db"
    assert isinstance(open_store("sqlite://"), SQLiteStore)
    with pytest.raises(ConfigurationError, match="three slashes"):
        sqlite_path("sqlite://relative.db")


def test_unknown_scheme_is_one_clear_error_without_the_password() -> None:
    with pytest.raises(ConfigurationError) as raised:
        open_store("mysql://admin:hunter2@db/memories")
    message = str(raised.value)
    assert "MEMORY_STORE_URL" in message and "sqlite:///" in message
    assert "hunter2" not in message
    assert redact_url("mysql://admin:hunter2@db/x") == "mysql://admin:***@db/x"


def test_memory_from_url_uses_that_store(embedder, tmp_path) -> None:
    with Memory.from_url(f"sqlite:///{tmp_path / 'a.db'}", embedder=embedder) as mem:
        mem.remember("u1", "I like tea")
    assert (tmp_path / "a.db").is_file()


def test_both_fusion_weights_at_zero_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMORY_VECTOR_WEIGHT", "0")
    monkeypatch.setenv("MEMORY_KEYWORD_WEIGHT", "0")
    with pytest.raises(ConfigurationError, match="MEMORY_VECTOR_WEIGHT and MEMORY_KEYWORD_WEIGHT cannot both be 0"):
        get_settings()
    monkeypatch.setenv("MEMORY_VECTOR_WEIGHT", "0.5")
    assert get_settings().ranking.vector_weight == 0.5
