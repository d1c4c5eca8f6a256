"""The one error tree of agent-memory.

Every error the library raises on purpose is an ``AgentMemoryError``. Adapters translate driver errors
(sqlite3, psycopg, qdrant-client, ...) at their boundary with ``raise ... from exc``, so a caller never
has to know which backend is configured to handle a failure, and the original stays on ``__cause__``::

    AgentMemoryError
    ├── InvalidInputError        (a ValueError) bad user id, empty content, importance outside [0, 1], ...
    ├── MemoryNotFoundError      (also a LookupError) no memory with that id in the caller's scope
    ├── ConfigurationError       a setting is wrong: unknown URL scheme, missing driver, bad model path
    ├── EmbeddingError           the embedding model cannot be loaded or fails to encode
    ├── SessionStoreError        the session store (Redis, Upstash) failed: down, slow, or refused the call
    ├── ClaudeError              the Claude API gave no reply: timeout, overload, rate limit, rejected request
    ├── ExtractionError          write-back extraction failed (API error, refusal, an answer off the schema)
    ├── QueueError               the write-back queue (SQS) refused or could not be reached
    └── StoreError               the backend failed while serving a call
        ├── StoreUnavailableError    the backend cannot be opened or reached at all
        └── DuplicateContentError    an active memory of the user already has this exact content

Messages say what to fix: the setting or argument, the accepted values, the next step.
"""

from __future__ import annotations


class AgentMemoryError(Exception):
    """Base class of every error raised by agent-memory."""


class InvalidInputError(AgentMemoryError, ValueError):
    """Raised when an argument is out of its documented domain; the message names it and the fix.

    It subclasses ``ValueError`` so code written against plain Python conventions still catches it.
    The HTTP API maps it to 422.
    """


class MemoryNotFoundError(AgentMemoryError, LookupError):
    """Raised by update and delete when no memory with that id exists *in the caller's scope*.

    A memory of another user or tenant is reported exactly like one that never existed, so the error
    cannot be used to probe other scopes.
    """


class ConfigurationError(AgentMemoryError):
    """Raised when a setting cannot work: the message names the environment variable to change."""


class EmbeddingError(AgentMemoryError):
    """Raised when the embedding model cannot be loaded, or returns vectors of the wrong shape."""


class SessionStoreError(AgentMemoryError):
    """Raised when the session store (Redis, Upstash) fails: unreachable, slower than its timeout, or an error reply.

    Session context is an optimisation, so ``recent`` and ``append`` never let it escape: ``recent`` degrades
    to no context and ``append`` returns ``False``; both log a warning and count the failure. ``clear`` and
    ``forget_user`` raise it, because a deletion the user asked for must not fail silently.
    """


class ClaudeError(AgentMemoryError):
    """Raised by a turn when Claude gives no reply: timed out, overloaded, rate limited, or unreachable.

    Raised after the SDK's own retries (``MEMORY_CLAUDE_MAX_RETRIES``). The user's message is not lost:
    it is already in the session and in the write-back ledger. ``retryable`` tells a caller whether trying
    again later can help (overload, rate limit, timeout) or not (bad key, bad request); an HTTP layer maps
    the first to 503 and the second to 502.
    """

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class ExtractionError(AgentMemoryError):
    """Raised by an extractor when it cannot produce operations: API error, refusal, or an answer off the schema.

    Write-back catches it: the turn is recorded as ``failed`` (with this message) and retried later; it
    never fails the turn that produced it.
    """


class QueueError(AgentMemoryError):
    """Raised by ``memory.queue`` when SQS does not take a write-back: unreachable, throttled, access denied.

    The turn is already recorded ``pending`` in the store, so nothing is lost: the HTTP API answers the turn
    and reports the write-back as not queued, and the user's next write-back or ``agent-memory writeback``
    runs it.
    """


class StoreError(AgentMemoryError):
    """Raised when the backend fails while serving a call (a driver error, translated)."""


class StoreUnavailableError(StoreError):
    """Raised when the backend cannot be opened or reached: wrong path, no permission, server down."""


class DuplicateContentError(StoreError):
    """Raised by a store when an active memory in the scope already has the same content hash.

    ``Memory.remember`` checks first and merges; this only surfaces when two writers race, and the
    service then merges instead. ``existing_id`` is the entry that won, when the store knows it.
    """

    def __init__(self, message: str, existing_id: str | None = None) -> None:
        super().__init__(message)
        self.existing_id = existing_id
