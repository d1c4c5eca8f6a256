"""Settings from the environment: the one place for every knob.

Nothing reads the environment at import time. ``get_settings()`` builds a validated ``Settings`` when
asked, so tests (and Lambda handlers) control exactly when configuration is read. Every field maps to a
``MEMORY_*`` variable documented in the README (``SESSION_STORE_URL`` keeps the name DESIGN.md gives
it); a test keeps the two in step.
"""

from __future__ import annotations

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from memory.errors import ConfigurationError
from memory.models import Ranking

ENV_PREFIX = "MEMORY_"


class Settings(BaseSettings):
    """Validated configuration. Construct through ``get_settings()`` to get errors that name the variable."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True, populate_by_name=True)

    store_url: str = Field(
        "sqlite:///agent_memory.db",
        description="Where memories live: sqlite:///path.db, sqlite:// (in memory), postgresql://...",
    )
    embedding_model: str | None = Field(
        None,
        description="Directory of a sentence-transformers model; default: the bundled all-MiniLM-L6-v2.",
    )
    embedding_batch_size: int = Field(64, ge=1, le=4096, description="Texts encoded per model call.")
    dedup_threshold: float = Field(
        0.92,
        gt=0.0,
        le=1.0,
        description="Cosine similarity at or above which a new memory is a near duplicate.",
    )
    max_content_chars: int = Field(2000, ge=1, le=100_000, description="Longest memory content accepted.")
    top_k: int = Field(5, ge=1, le=100, description="Memories returned by a search when the caller does not say.")
    rrf_k: int = Field(60, ge=1, le=1000, description="The k of reciprocal rank fusion: 1 / (k + rank).")
    search_candidates: int = Field(
        50, ge=1, le=1000, description="Candidates taken from each of the vector and keyword rankings."
    )
    min_similarity: float = Field(
        0.1,
        ge=-1.0,
        le=1.0,
        description="Cosine below which a memory is no vector match (keyword matches still count).",
    )
    importance_weight: float = Field(0.1, ge=0.0, le=10.0, description="Weight of importance in the score.")
    recency_weight: float = Field(0.05, ge=0.0, le=10.0, description="Weight of recency in the score.")
    recency_half_life_days: float = Field(
        30.0, gt=0.0, description="Age in days at which the recency signal has fallen to one half."
    )

    session_store_url: str = Field(
        "memory://",
        validation_alias="SESSION_STORE_URL",
        description="Where recent turns live: redis://host:6379/0, upstash:// or memory:// (in process).",
    )
    session_max_turns: int = Field(20, ge=1, le=1000, description="Turns kept per session (older ones drop).")
    session_ttl_seconds: int = Field(
        3600, ge=1, le=30 * 86_400, description="A session's turns expire this long after its last turn."
    )
    session_timeout_seconds: float = Field(
        2.0, gt=0.0, le=60.0, description="Network timeout of a session store call (Redis or Upstash)."
    )

    @field_validator("store_url")
    @classmethod
    def _url_has_scheme(cls, value: str) -> str:
        if "://" not in value:
            raise ValueError("must be a URL such as sqlite:///agent_memory.db")
        return value

    @property
    def ranking(self) -> Ranking:
        return Ranking(
            rrf_k=self.rrf_k,
            candidates=self.search_candidates,
            importance_weight=self.importance_weight,
            recency_weight=self.recency_weight,
            recency_half_life_days=self.recency_half_life_days,
            min_similarity=self.min_similarity,
        )


def env_name(field_name: str) -> str:
    """The environment variable of a field (or of an alias, as pydantic reports it in errors)."""
    field = Settings.model_fields.get(field_name)
    alias = field.validation_alias if field is not None else None
    if isinstance(alias, str):
        return alias
    if field is None and field_name.isupper():
        return field_name
    return f"{ENV_PREFIX}{field_name.upper()}"


def get_settings(**overrides: object) -> Settings:
    """Read the environment (and any explicit overrides) into a validated ``Settings``.

    Raises ``ConfigurationError`` naming the offending environment variable and what it accepts.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = env_name(str(error["loc"][0])) if error["loc"] else "settings"
            problems.append(f"{name}: {error['msg']} (got {error.get('input')!r})")
        raise ConfigurationError("invalid configuration: " + "; ".join(problems)) from exc
