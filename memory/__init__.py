"""agent-memory: persistent memory for Claude agents.

from memory import Memory
mem = Memory.from_url("sqlite:///agent_memory.db")
mem.remember(user_id="u1", content="I prefer metric units", memory_type="preference", importance=0.8)
for hit in mem.search(user_id="u1", query="which units should I use?"):
    print(hit.entry.content, hit.score, hit.reasons)
"""

from memory.agent import Agent, TurnResult, run_turn
from memory.config import Settings, get_settings
from memory.embeddings import Embedder, SentenceTransformerEmbedder, embedder_for, get_embedder
from memory.embeddings_onnx import OnnxEmbedder
from memory.errors import (
    AgentMemoryError,
    ClaudeError,
    ConfigurationError,
    DuplicateContentError,
    EmbeddingError,
    ExtractionError,
    InvalidInputError,
    MemoryNotFoundError,
    QueueError,
    SessionStoreError,
    StoreError,
    StoreUnavailableError,
)
from memory.extraction import ClaudeExtractor, RuleExtractor
from memory.models import (
    EventKind,
    MemoryEntry,
    MemoryEvent,
    MemoryFilter,
    MemoryStatus,
    MemoryType,
    Ranking,
    RememberAction,
    RememberResult,
    Scope,
    SearchHit,
    SearchMode,
    SearchRequest,
)
from memory.service import Memory
from memory.sessions import SessionStore, Turn, open_session_store
from memory.stores import MemoryStore, open_store
from memory.turns import TurnRecord, TurnStatus
from memory.writeback import WriteBackResult, write_back

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "AgentMemoryError",
    "ClaudeError",
    "ClaudeExtractor",
    "ConfigurationError",
    "DuplicateContentError",
    "Embedder",
    "EmbeddingError",
    "EventKind",
    "ExtractionError",
    "InvalidInputError",
    "Memory",
    "MemoryEntry",
    "MemoryEvent",
    "MemoryFilter",
    "MemoryNotFoundError",
    "MemoryStatus",
    "MemoryStore",
    "MemoryType",
    "OnnxEmbedder",
    "QueueError",
    "Ranking",
    "RememberAction",
    "RememberResult",
    "RuleExtractor",
    "Scope",
    "SearchHit",
    "SearchMode",
    "SearchRequest",
    "SentenceTransformerEmbedder",
    "SessionStore",
    "SessionStoreError",
    "Settings",
    "StoreError",
    "StoreUnavailableError",
    "Turn",
    "TurnRecord",
    "TurnResult",
    "TurnStatus",
    "WriteBackResult",
    "embedder_for",
    "get_embedder",
    "get_settings",
    "open_session_store",
    "open_store",
    "run_turn",
    "write_back",
]
