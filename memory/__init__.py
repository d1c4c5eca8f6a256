"""agent-memory: persistent memory for Claude agents.

from memory import Memory
mem = Memory.from_url("sqlite:///agent_memory.db")
mem.remember(user_id="u1", content="I prefer metric units", memory_type="preference", importance=0.8)
for hit in mem.search(user_id="u1", query="which units should I use?"):
    print(hit.entry.content, hit.score, hit.reasons)
"""

from memory.config import Settings, get_settings
from memory.embeddings import Embedder, SentenceTransformerEmbedder, get_embedder
from memory.errors import (
    AgentMemoryError,
    ConfigurationError,
    DuplicateContentError,
    EmbeddingError,
    InvalidInputError,
    MemoryNotFoundError,
    SessionStoreError,
    StoreError,
    StoreUnavailableError,
)
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

__version__ = "0.1.0"

__all__ = [
    "AgentMemoryError",
    "ConfigurationError",
    "DuplicateContentError",
    "Embedder",
    "EmbeddingError",
    "EventKind",
    "InvalidInputError",
    "Memory",
    "MemoryEntry",
    "MemoryEvent",
    "MemoryFilter",
    "MemoryNotFoundError",
    "MemoryStatus",
    "MemoryStore",
    "MemoryType",
    "Ranking",
    "RememberAction",
    "RememberResult",
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
    "get_embedder",
    "get_settings",
    "open_session_store",
    "open_store",
]
