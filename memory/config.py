"""Settings from the environment: the one place for every knob.

Nothing reads the environment at import time. ``get_settings()`` builds a validated ``Settings`` when
asked, so tests (and Lambda handlers) control exactly when configuration is read. Every field maps to a
``MEMORY_*`` variable documented in the README (``SESSION_STORE_URL`` keeps the name DESIGN.md gives
it); a test keeps the two in step.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
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
    embedder: Literal["auto", "onnx", "sentence-transformers"] = Field(
        "auto",
        description="What runs the model: onnx (ONNX Runtime, no torch), sentence-transformers, or auto "
        "(onnx where its files are).",
    )
    onnx_model_dir: str | None = Field(
        None,
        description="Folder of model.onnx and tokenizer.json (`make onnx`); default: build/onnx beside the code.",
    )
    dedup_threshold: float = Field(
        0.92,
        gt=0.0,
        le=1.0,
        description="Cosine similarity at or above which a new memory is a near duplicate.",
    )
    max_content_chars: int = Field(2000, ge=1, le=100_000, description="Longest memory content accepted.")
    top_k: int = Field(5, ge=1, le=100, description="Memories returned by a search when the caller does not say.")
    rrf_k: int = Field(10, ge=1, le=1000, description="The k of reciprocal rank fusion: 1 / (k + rank).")
    vector_weight: float = Field(
        1.0, ge=0.0, le=100.0, description="Weight of a memory's vector (meaning) rank in the hybrid fusion."
    )
    keyword_weight: float = Field(
        2.0, ge=0.0, le=100.0, description="Weight of a memory's keyword (BM25) rank in the hybrid fusion."
    )
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

    cache_url: str | None = Field(
        None,
        description="Where each user's core memories are cached: redis://, upstash://, memory://, or none (off). "
        "Default: SESSION_STORE_URL.",
    )
    cache_size: int = Field(20, ge=1, le=500, description="Core memories (highest importance) cached per user.")
    cache_ttl_seconds: int = Field(
        86_400,
        ge=1,
        le=30 * 86_400,
        description="A user's cached core memories expire this long after they were filled.",
    )
    store_budget_seconds: float = Field(
        1.5,
        gt=0.0,
        le=60.0,
        description="How long a turn waits for the memory store before answering from the cache alone (degraded).",
    )
    prompt_core_memories: int = Field(
        3,
        ge=0,
        le=50,
        description="Core memories (highest importance) added to a turn's prompt besides the recalled ones.",
    )

    anthropic_api_key: SecretStr | None = Field(
        None,
        validation_alias="ANTHROPIC_API_KEY",
        description="Claude API key. Unset: `chat` runs offline and write-back uses the rule-based extractor.",
    )
    anthropic_base_url: str | None = Field(
        None,
        validation_alias="ANTHROPIC_BASE_URL",
        description="Another address for the Messages API (a proxy or gateway); the tests point it at a fake.",
    )
    chat_model: str = Field("claude-sonnet-5-5", min_length=1, description="The model that answers each turn.")
    extraction_model: str = Field(
        "claude-haiku-5-5", min_length=1, description="The cheap model that extracts memories from a turn."
    )
    max_tokens: int = Field(1024, ge=1, le=64_000, description="Longest reply of the chat model, in tokens.")
    claude_timeout_seconds: float = Field(
        20.0,
        gt=0.0,
        lt=30.0,
        description="Per-request timeout of Claude calls; under 30 s, API Gateway's hard limit.",
    )
    claude_max_retries: int = Field(
        1, ge=0, le=5, description="Retries of a Claude call after a 429, 5xx, 529 or timeout (the SDK's backoff)."
    )
    system_prompt: str = Field(
        "You are a helpful assistant with a long-term memory of this user.",
        min_length=1,
        description="The operator's instructions: the first, cached part of every system prompt.",
    )
    prompt_memories: int = Field(5, ge=0, le=50, description="Most memories injected into a turn's prompt.")
    prompt_memory_tokens: int = Field(
        600, ge=50, le=20_000, description="Token budget of the memory block (estimated at 3.5 characters a token)."
    )
    prompt_session_turns: int = Field(
        10, ge=0, le=1000, description="Recent session turns sent with each message (0: none)."
    )
    extraction: Literal["auto", "claude", "rules", "off"] = Field(
        "auto",
        description="Write-back extractor: claude, rules (zero cost), off, or auto (claude with a key, else rules).",
    )
    extraction_context: int = Field(
        8, ge=0, le=50, description="Similar existing memories shown to the extractor, so it can update them."
    )
    memory_mode: Literal["inject", "tool", "both"] = Field(
        "inject",
        description="How a turn uses memory: inject (recalled into the prompt), tool (Claude's memory tool), both.",
    )
    tool_max_steps: int = Field(8, ge=1, le=50, description="Most Claude calls of one turn's memory-tool loop.")
    tool_token_budget: int = Field(
        50_000, ge=1000, le=1_000_000, description="Tokens after which a turn's memory-tool loop stops."
    )
    writeback_max_attempts: int = Field(
        5, ge=1, le=100, description="Automatic tries of a failed write-back; after that only `agent-memory writeback`."
    )
    consolidation_min_age_days: float = Field(
        7.0, ge=0.0, le=3650.0, description="Consolidation summarises only memories unchanged for this many days."
    )
    consolidation_max_importance: float = Field(
        0.5, ge=0.0, le=1.0, description="Consolidation summarises only memories less important than this."
    )
    consolidation_cluster_similarity: float = Field(
        0.55, gt=0.0, le=1.0, description="Cosine to a cluster's first memory at or above which a memory joins it."
    )
    consolidation_min_cluster: int = Field(3, ge=2, le=100, description="Smallest cluster worth one summary.")
    consolidation_max_cluster: int = Field(12, ge=2, le=100, description="Most memories folded into one summary.")
    consolidation_max_memories: int = Field(
        1000, ge=1, le=1_000_000, description="Active memories kept per user; consolidation prunes the rest."
    )
    consolidation_retention_days: float = Field(
        30.0, ge=0.0, le=3650.0, description="Days a summarised memory stays archived before it is purged."
    )
    consolidation_budget_seconds: float = Field(
        780.0, gt=0.0, le=86_400.0, description="How long one `consolidate --all` run works before it stops to resume."
    )
    api_keys: str = Field(
        "",
        description="Keys of the HTTP API, hashed: comma-separated tenant:sha256-hex pairs (`agent-memory api-key`).",
    )
    api_max_body_bytes: int = Field(
        262_144, ge=1024, le=10 * 2**20, description="Largest request body the HTTP API reads; a larger one is a 413."
    )
    telemetry: Literal["auto", "emf", "prometheus", "off"] = Field(
        "auto",
        description="Where metrics go: emf (CloudWatch Embedded Metric Format lines on stdout), prometheus "
        "(in-process counters for GET /metrics), off, or auto (emf in Lambda, else prometheus).",
    )
    metrics_service: str = Field(
        "agent-memory",
        min_length=1,
        max_length=250,
        description="The Service dimension of the EMF metrics (serverless.yml: agent-memory-<stage>).",
    )
    metrics_endpoint: bool = Field(
        True, description="Serve GET /metrics (Prometheus text, no key: aggregates only) when telemetry is prometheus."
    )
    telemetry_file: str | None = Field(
        None,
        description="JSON-lines file that local runs append telemetry events to, for `agent-memory stats`; none: "
        "off. Default: .agent-memory/telemetry.jsonl for the CLI, no file otherwise.",
    )
    writeback_queue_url: str | None = Field(
        None,
        description="SQS queue URL: the API records each turn and queues its write-back there (Lambda). Unset: inline.",
    )
    store_url_secret_arn: str | None = Field(
        None,
        description="Secrets Manager ARN whose value is the store URL; read at start-up, it replaces MEMORY_STORE_URL.",
    )
    database_url_secret_arn: str | None = Field(
        None,
        description="Secrets Manager ARN of the schema owner's Postgres URL, for the Lambda migrate function "
        "(default: the store URL).",
    )
    database_host: str | None = Field(
        None,
        description="Host of the Postgres that JSON database secrets (username and password) connect to: the RDS "
        "Proxy endpoint, or a Unix socket directory. Set, it replaces a JSON secret's own host.",
    )
    database_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Port for JSON database secrets; unset: the secret's port, else 5432.",
    )
    database_name: str | None = Field(
        None,
        description="Database for JSON database secrets; unset: the secret's dbname, else postgres.",
    )
    upstash_redis_rest_token: SecretStr | None = Field(
        None,
        validation_alias="UPSTASH_REDIS_REST_TOKEN",
        description="Token of the Upstash REST API (SESSION_STORE_URL=upstash://), with UPSTASH_REDIS_REST_URL.",
    )
    upstash_token_secret_arn: str | None = Field(
        None,
        description="Secrets Manager ARN whose value is the Upstash REST token; read at start-up, it replaces "
        "UPSTASH_REDIS_REST_TOKEN.",
    )
    anthropic_api_key_secret_arn: str | None = Field(
        None,
        description="Secrets Manager ARN whose value is the Claude API key; read at start-up, it replaces "
        "ANTHROPIC_API_KEY.",
    )

    @field_validator("store_url")
    @classmethod
    def _url_has_scheme(cls, value: str) -> str:
        if "://" not in value:
            raise ValueError("must be a URL such as sqlite:///agent_memory.db")
        return value

    @field_validator(
        "writeback_queue_url",
        "store_url_secret_arn",
        "database_url_secret_arn",
        "anthropic_api_key_secret_arn",
        "upstash_token_secret_arn",
        "database_host",
        "database_port",
        "database_name",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        """serverless.yml sets these from parameters that may be empty: empty means not configured. Before the
        type is checked, so an empty ``MEMORY_DATABASE_PORT`` is unset rather than a bad integer."""
        if isinstance(value, str):
            return value.strip() or None
        return value

    @model_validator(mode="after")
    def _one_ranking_counts(self) -> Settings:
        if self.vector_weight + self.keyword_weight <= 0.0:
            raise ValueError("MEMORY_VECTOR_WEIGHT and MEMORY_KEYWORD_WEIGHT cannot both be 0")
        return self

    @field_validator("api_keys")
    @classmethod
    def _api_keys_are_hashed(cls, value: str) -> str:
        parse_api_keys(value)
        return value

    @property
    def api_key_tenants(self) -> dict[str, str]:
        """The tenant of each configured key, by the key's SHA-256 (hex): how ``memory.api`` authenticates."""
        return parse_api_keys(self.api_keys)

    @property
    def cache_location(self) -> str | None:
        """The cache's URL: ``MEMORY_CACHE_URL``, else the session store's; ``None`` when set to ``none``."""
        url = self.session_store_url if self.cache_url is None else self.cache_url.strip()
        return None if url.lower() == "none" else url

    @property
    def ranking(self) -> Ranking:
        return Ranking(
            rrf_k=self.rrf_k,
            candidates=self.search_candidates,
            importance_weight=self.importance_weight,
            recency_weight=self.recency_weight,
            recency_half_life_days=self.recency_half_life_days,
            min_similarity=self.min_similarity,
            vector_weight=self.vector_weight,
            keyword_weight=self.keyword_weight,
        )


_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def parse_api_keys(value: str) -> dict[str, str]:
    """``tenant:sha256-hex`` pairs, comma-separated, into {hash: tenant}; a ValueError says what is wrong.

    Only hashes are configured, never keys: a leaked environment or log gives no one access.
    """
    tenants: dict[str, str] = {}
    for number, item in enumerate(filter(None, (part.strip() for part in value.split(","))), start=1):
        tenant, _, digest = item.rpartition(":")
        digest = digest.lower()
        if not tenant.strip() or not _SHA256_HEX.fullmatch(digest):
            raise ValueError(
                f"entry {number} is not tenant:sha256-hex (64 hex digits of the key's SHA-256); "
                "`agent-memory api-key --tenant T` prints a key and its entry"
            )
        if digest in tenants and tenants[digest] != tenant:
            raise ValueError(f"entry {number}: the same key is given to two tenants")
        tenants[digest] = tenant
    return tenants


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
