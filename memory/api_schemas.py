"""The bodies of the HTTP API (``memory.api``): what each route accepts and answers, as pydantic models.

They check shape and type only (a string, a number in range, no unknown fields); the library checks the
rest (content length, ids, tags, metadata) and its ``InvalidInputError`` becomes the same 422. The field
descriptions are the API reference served at ``/docs``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from memory.models import MAX_ID_CHARS

MAX_TEXT_CHARS = 32_000  # the longest query or message (memory.agent.MAX_MESSAGE_CHARS)
MAX_TTL_SECONDS = 100 * 365 * 86_400

ListOrder = Literal["newest", "importance"]  # memory.stores.base.LIST_ORDERS
MemoryTypeName = Literal["preference", "fact", "task", "decision", "summary"]  # MemoryType (a test keeps them equal)


class Body(BaseModel):
    """Request bodies refuse unknown fields: a misspelt field is a 422, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class MemoryIn(Body):
    content: str = Field(min_length=1, max_length=MAX_TEXT_CHARS, description="What to remember.")
    memory_type: MemoryTypeName = "fact"
    importance: float = Field(0.5, ge=0.0, le=1.0, description="0 (trivia) to 1 (never forget).")
    tags: list[str] = Field(default_factory=list, max_length=32)
    metadata: dict[str, Any] = Field(default_factory=dict, description="Your own JSON, returned as given.")
    session_id: str | None = Field(None, min_length=1, max_length=MAX_ID_CHARS)
    ttl_seconds: float | None = Field(None, gt=0, le=MAX_TTL_SECONDS, description="Forget it after this long.")


class MemoryPatch(Body):
    """The fields to change; at least one. New content is embedded again; the history keeps the old text."""

    content: str | None = Field(None, min_length=1, max_length=MAX_TEXT_CHARS)
    memory_type: MemoryTypeName | None = None
    importance: float | None = Field(None, ge=0.0, le=1.0)
    tags: list[str] | None = Field(None, max_length=32)
    metadata: dict[str, Any] | None = None


class SearchIn(Body):
    query: str = Field(min_length=1, max_length=MAX_TEXT_CHARS, description="A question or a few words.")
    top_k: int | None = Field(None, ge=1, le=100, description="How many memories (default MEMORY_TOP_K).")
    memory_types: list[MemoryTypeName] = Field(default_factory=list, max_length=5)
    tags: list[str] = Field(default_factory=list, max_length=32, description="Only memories with any of these.")
    mode: Literal["hybrid", "vector", "keyword"] = "hybrid"


class TurnIn(Body):
    user_id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    message: str = Field(min_length=1, max_length=MAX_TEXT_CHARS, description="What the user said.")
    session_id: str | None = Field(
        None, min_length=1, max_length=MAX_ID_CHARS, description="Recent turns of this session go with it."
    )
    turn_id: str | None = Field(
        None, min_length=1, max_length=MAX_ID_CHARS, description="Your id for the turn; write-back is once per id."
    )
    memory_mode: Literal["inject", "tool", "both"] | None = Field(None, description="Default MEMORY_MEMORY_MODE.")


class MemoryOut(BaseModel):
    id: str
    tenant_id: str
    user_id: str
    content: str
    memory_type: str
    importance: float
    tags: list[str]
    metadata: dict[str, Any]
    session_id: str | None
    created_at: float = Field(description="UNIX seconds, UTC, as every timestamp here.")
    updated_at: float
    expires_at: float | None
    status: str = Field(description="active, superseded (a newer memory replaced it) or pruned.")
    superseded_by: str | None
    embedding_model: str | None


class RememberOut(BaseModel):
    action: Literal["added", "merged", "superseded"] = Field(
        description="added; merged into an existing memory that said the same; or superseded one it corrects."
    )
    memory: MemoryOut
    previous_id: str | None = Field(description="The memory merged into or superseded, if any.")


class MemoryPage(BaseModel):
    items: list[MemoryOut]
    limit: int
    offset: int
    next_offset: int | None = Field(description="Pass as offset for the next page; null on the last page.")


class HitOut(BaseModel):
    memory: MemoryOut
    score: float = Field(description="Higher is better: fused ranks, importance and recency.")
    vector_rank: int | None
    similarity: float | None
    keyword_rank: int | None
    recency: float
    reasons: list[str]


class SearchOut(BaseModel):
    hits: list[HitOut]


class EventOut(BaseModel):
    id: int | None
    memory_id: str
    kind: str
    created_at: float
    content: str | None
    previous_content: str | None
    related_id: str | None
    details: dict[str, Any]


class HistoryOut(BaseModel):
    events: list[EventOut]


class ForgetOut(BaseModel):
    user_id: str
    memories_deleted: int
    sessions_deleted: int


class TurnOut(BaseModel):
    turn_id: str
    reply: str
    memories: list[HitOut] = Field(description="The memories the prompt carried.")
    model: str
    usage: dict[str, Any] = Field(description="Tokens of the Claude call(s): input, output, cache read and write.")
    cost_usd: float | None
    session_id: str | None
    write_back: dict[str, Any] | None = Field(
        description="What became of the turn's new facts: done inline, queued, pending (retried later), or failed."
    )
    memory_mode: str
    tool_calls: list[dict[str, Any]]
    degraded: bool = Field(description="The store was down or slow: answered from the cached core memories.")
    timings_ms: dict[str, float]


class HealthOut(BaseModel):
    status: str


class ErrorDetail(BaseModel):
    type: str
    message: str


class ErrorOut(BaseModel):
    """Every error: a type a program can branch on and a message a person can act on."""

    error: ErrorDetail
