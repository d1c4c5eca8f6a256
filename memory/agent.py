"""One agent turn: recent session turns + recalled memories -> Claude -> reply -> write-back.

    from memory.agent import run_turn
    result = run_turn("u1", "Which seat should I book?", session_id="s1")
    print(result.reply, [hit.entry.content for hit in result.memories], result.usage, result.cost_usd)

``Agent.prepare`` does everything before the Claude call (session read, embed, search, prompt) and is
what the offline chat and the overhead benchmark use; ``Agent.run_turn`` adds the call, the session
write and write-back. A Claude failure raises ``ClaudeError`` after the user's message is safe (in the
session and the write-back ledger); a write-back failure never fails the turn.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from memory import telemetry
from memory.claude import logged_call, make_client
from memory.config import Settings, get_settings
from memory.errors import AgentMemoryError, ConfigurationError, InvalidInputError, StoreError
from memory.extraction import ClaudeExtractor, Extractor, RuleExtractor
from memory.models import DEFAULT_TENANT, MemoryEntry, Scope, SearchHit, _identifier, validate_text
from memory.prompting import MemoryBlock, render_memories, system_prompt
from memory.service import Memory
from memory.sessions import SessionStore, Turn, open_session_store
from memory.usage import TokenUsage
from memory.writeback import WriteBackResult, record_turn, retry_pending, write_back

logger = logging.getLogger("memory.agent")
MAX_MESSAGE_CHARS = 32_000
MEMORY_MODES = ("inject", "tool", "both")
# A turn retries the user's earlier write-backs; a pending one younger than this is probably still running.
PENDING_GRACE_SECONDS = 60.0


def choose_extractor(settings: Settings, client: Any) -> Extractor | None:
    """``MEMORY_EXTRACTION``: claude, rules, off, or auto (claude when there is a client, else rules)."""
    if settings.extraction == "off":
        return None
    if settings.extraction == "rules" or (settings.extraction == "auto" and client is None):
        return RuleExtractor()
    if client is None:
        raise ConfigurationError("MEMORY_EXTRACTION=claude needs ANTHROPIC_API_KEY; or set MEMORY_EXTRACTION=rules")
    return ClaudeExtractor(client, settings.extraction_model)


def conversation(history: Sequence[Turn], message: str) -> list[dict[str, str]]:
    """Messages API ``messages``: history then the new message, roles alternating, starting with the user.

    A turn whose reply was lost (Claude was down) leaves two user turns in a row: they are joined.
    """
    messages: list[dict[str, str]] = []
    for turn in [*history, Turn("user", message)]:
        if messages and messages[-1]["role"] == turn.role:
            messages[-1]["content"] += "\n\n" + turn.content
        elif messages or turn.role == "user":
            messages.append(turn.as_message())
    return messages


@dataclass(slots=True)
class PreparedTurn:
    """Everything a turn sends to Claude, and how long each step took (milliseconds)."""

    turn_id: str
    scope: Scope
    session_id: str | None
    message: str
    history: list[Turn]
    hits: list[SearchHit]
    block: MemoryBlock
    system: list[dict[str, Any]]
    messages: list[dict[str, str]]
    timings: dict[str, float] = field(default_factory=dict)
    core: list[MemoryEntry] = field(default_factory=list)  # the user's most important memories, in the block too
    degraded: bool = False  # the store did not answer within MEMORY_STORE_BUDGET_SECONDS: cached memories only


@dataclass(slots=True)
class TurnResult:
    turn_id: str
    reply: str
    memories: list[SearchHit]
    model: str
    usage: TokenUsage
    cost_usd: float | None
    session_id: str | None = None
    write_back: WriteBackResult | None = None
    timings: dict[str, float] = field(default_factory=dict)
    memory_mode: str = "inject"
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # memory-tool commands run, in order
    degraded: bool = False  # answered from the cached core memories alone (the store was down or slow)

    def as_dict(self) -> dict[str, Any]:
        return {
            "turn_id": self.turn_id,
            "reply": self.reply,
            "memories": [hit.as_dict() for hit in self.memories],
            "model": self.model,
            "usage": self.usage.as_dict(),
            "cost_usd": self.cost_usd,
            "session_id": self.session_id,
            "write_back": self.write_back.as_dict() if self.write_back else None,
            "memory_mode": self.memory_mode,
            "tool_calls": self.tool_calls,
            "degraded": self.degraded,
            "timings_ms": {name: round(ms, 2) for name, ms in self.timings.items()},
        }


class Agent:
    """A Claude agent with memory: one ``Memory``, an optional session store, client and extractor."""

    def __init__(
        self,
        memory: Memory,
        *,
        sessions: SessionStore | None = None,
        client: Any = None,
        extractor: Extractor | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.memory = memory
        self.sessions = sessions
        self.client = client
        self.extractor = extractor
        self.settings = settings or memory.settings
        # Store calls of a turn run here, so a turn can stop waiting after MEMORY_STORE_BUDGET_SECONDS.
        self._recall_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="memory-recall")

    @classmethod
    def from_settings(cls, settings: Settings | None = None, *, memory: Memory | None = None) -> Agent:
        """From the environment: store, session store, Claude client (when ANTHROPIC_API_KEY is set), extractor."""
        settings = settings or get_settings()
        sessions = None
        if memory is None:
            memory = Memory.from_settings(settings)
            if memory.cache is not None and settings.cache_location == settings.session_store_url:
                sessions = memory.cache.transport  # the same backend: one client, one connection pool
        client = make_client(settings) if settings.anthropic_api_key is not None else None
        return cls(
            memory,
            sessions=sessions if sessions is not None else open_session_store(settings=settings),
            client=client,
            extractor=choose_extractor(settings, client),
            settings=settings,
        )

    def close(self) -> None:
        self._recall_pool.shutdown(wait=False, cancel_futures=True)
        self.memory.close()
        if self.sessions is not None:
            self.sessions.close()

    def prepare(
        self,
        user_id: str,
        message: str,
        session_id: str | None = None,
        *,
        tenant_id: str = DEFAULT_TENANT,
        turn_id: str | None = None,
        inject: bool = True,
    ) -> PreparedTurn:
        """Session read, recall and prompt for one message: the request a turn would send, not sent.

        ``inject=False`` (memory-tool turns) skips recall: the system prompt is the instructions alone.
        """
        scope = Scope(user_id, tenant_id)
        if not isinstance(message, str) or not message.strip():
            raise InvalidInputError("message must be a non-empty string")
        if len(message) > MAX_MESSAGE_CHARS:
            raise InvalidInputError(f"message is {len(message)} characters; the limit is {MAX_MESSAGE_CHARS}")
        validate_text("message", message)
        if session_id is not None:
            _identifier("session_id", session_id)
        turn_id = _identifier("turn_id", turn_id) if turn_id is not None else uuid.uuid4().hex
        settings = self.settings
        timings: dict[str, float] = {}
        started = time.perf_counter()
        history: list[Turn] = []
        if self.sessions is not None and session_id is not None and settings.prompt_session_turns:
            history = self.sessions.recent(scope, session_id, settings.prompt_session_turns)
        timings["session_read"] = _since(started)
        started = time.perf_counter()
        hits, core, degraded = self._recall(scope, message, turn_id) if inject else ([], [], False)
        timings["recall"] = _since(started)
        started = time.perf_counter()
        relevant = {hit.entry.id for hit in hits}
        extra = [SearchHit(entry, score=0.0) for entry in core if entry.id not in relevant]
        core_budget = settings.prompt_core_memories + (settings.prompt_memories if degraded else 0)
        candidates = hits + extra[:core_budget]  # already capped: the recalled ones, then the core ones
        block = render_memories(candidates, max_memories=len(candidates), max_tokens=settings.prompt_memory_tokens)
        system = system_prompt(settings.system_prompt, block if inject else None)
        messages = conversation(history, message)
        timings["prompt"] = _since(started)
        prepared = PreparedTurn(turn_id, scope, session_id, message, history, hits, block, system, messages, timings)
        prepared.core, prepared.degraded = core, degraded
        if inject:
            telemetry.current().turn(scope, used=block.used, tokens=block.tokens, degraded=degraded)
        return prepared

    def _recall(self, scope: Scope, message: str, turn_id: str) -> tuple[list[SearchHit], list[MemoryEntry], bool]:
        """The memories relevant to ``message`` and the user's core memories; degraded when the store fails.

        Without a cache, a store failure raises as before. With one, the store gets
        ``MEMORY_STORE_BUDGET_SECONDS``: when it fails or is slower, the turn goes on with the cached core
        memories alone (``MemoryCache.latest``), logged with the turn id and counted.
        """
        settings, memory = self.settings, self.memory
        if not settings.prompt_memories and not settings.prompt_core_memories:
            return [], [], False
        # Embedded before the budget starts: a cold model load is not the store being slow.
        started = time.perf_counter()
        embedding = memory.embedder.embed([message])[0] if settings.prompt_memories else None
        embed_ms = _since(started)

        user_id, tenant_id = scope.user_id, scope.tenant_id

        def from_store() -> tuple[list[SearchHit], list[MemoryEntry]]:
            hits, core = [], []
            if settings.prompt_memories:
                top_k = settings.prompt_memories
                hits = memory.search(
                    user_id, message, top_k=top_k, tenant_id=tenant_id, embedding=embedding, embed_ms=embed_ms
                )
            if settings.prompt_core_memories:
                core = memory.core_memories(user_id, tenant_id=tenant_id)
            return hits, core

        if memory.cache is None:
            return *from_store(), False
        future = self._recall_pool.submit(from_store)
        try:
            hits, core = future.result(timeout=settings.store_budget_seconds)
            return hits, core, False
        except (FutureTimeout, StoreError) as exc:
            reason = (
                f"did not answer within {settings.store_budget_seconds:g} s"
                if isinstance(exc, FutureTimeout)
                else f"failed ({type(exc).__name__}: {exc})"
            )
        cached = memory.cache.latest(scope) or []
        memory.cache.stats.record("degraded_turns")
        logger.warning(
            "turn %s: the memory store %s; answering from %d cached core memories (degraded)",
            turn_id,
            reason,
            len(cached),
            extra={"turn_id": turn_id, "degraded": True},
        )
        return [], cached, True

    def run_turn(
        self,
        user_id: str,
        message: str,
        session_id: str | None = None,
        *,
        tenant_id: str = DEFAULT_TENANT,
        turn_id: str | None = None,
        write_back: bool = True,
        memory_mode: str | None = None,
    ) -> TurnResult:
        """Answer ``message`` with the user's memories, then remember what it taught us.

        ``memory_mode`` (default ``MEMORY_MEMORY_MODE``): ``inject`` recalls memories into the prompt;
        ``tool`` lets Claude manage its own memory through the memory tool (``memory.memory_tool``) in a
        bounded loop, with no recall and no write-back (Claude writes what it wants kept); ``both`` does
        both. ``write_back=False`` records the turn for a later write-back (what the Lambda API does: a
        queue runs it) instead of extracting inline. Raises ``ClaudeError`` when Claude gives no reply.
        """
        if self.client is None:
            raise ConfigurationError(
                "ANTHROPIC_API_KEY is not set: set it to talk to Claude (`agent-memory chat` runs offline without it)"
            )
        mode = self.settings.memory_mode if memory_mode is None else memory_mode
        if mode not in MEMORY_MODES:
            raise InvalidInputError(f"memory_mode must be one of {', '.join(MEMORY_MODES)}, got {mode!r}")
        turn = self.prepare(user_id, message, session_id, tenant_id=tenant_id, turn_id=turn_id, inject=mode != "tool")
        model = self.settings.chat_model
        started = time.perf_counter()
        try:
            reply, usage, cost, tool_calls = self._ask(turn, mode)
        except AgentMemoryError as exc:
            self._keep_unanswered(turn, exc)
            raise
        turn.timings["claude"] = _since(started)
        started = time.perf_counter()
        self._append(turn, Turn("user", message, turn_id=f"{turn.turn_id}.user"))
        if reply.strip():
            self._append(turn, Turn("assistant", reply, turn_id=f"{turn.turn_id}.assistant"))
        turn.timings["session_write"] = _since(started)
        result = TurnResult(
            turn.turn_id, reply, list(turn.block.used), model, usage, cost, session_id, timings=turn.timings
        )
        result.memory_mode, result.tool_calls = mode, tool_calls
        result.degraded = turn.degraded
        started = time.perf_counter()
        if mode != "tool":
            if turn.degraded:
                result.write_back = self._spool(turn, reply)
            elif write_back:
                result.write_back = self.write_back(turn, reply)
            else:
                record_turn(self.memory, **self._turn_fields(turn, reply))
        turn.timings["write_back"] = _since(started)
        return result

    def _ask(self, turn: PreparedTurn, mode: str) -> tuple[str, TokenUsage, float | None, list[dict[str, Any]]]:
        """The Claude call(s) of a turn: one call, or the memory-tool loop."""
        settings, model = self.settings, self.settings.chat_model
        extra = {"memory_ids": [hit.entry.id for hit in turn.block.used], "memory_mode": mode}
        if mode != "inject":
            from memory.memory_tool import StoreMemoryTool
            from memory.tool_loop import run_tool_loop

            tool = StoreMemoryTool(self.memory, turn.scope.user_id, tenant_id=turn.scope.tenant_id)
            loop = run_tool_loop(
                self.client,
                tool,
                model=model,
                max_tokens=settings.max_tokens,
                system=turn.system,
                messages=turn.messages,
                max_steps=settings.tool_max_steps,
                token_budget=settings.tool_token_budget,
                turn_id=turn.turn_id,
                extra=extra,
            )
            if loop.stopped != "answered":
                logger.warning("turn %s: memory-tool loop stopped at its %s", turn.turn_id, loop.stopped)
            return loop.reply, loop.usage, loop.cost_usd, loop.tool_calls
        call = logged_call(
            self.client,
            purpose="chat",
            turn_id=turn.turn_id,
            extra=extra,
            log_stop_reason=True,
            model=model,
            max_tokens=settings.max_tokens,
            system=turn.system,
            messages=turn.messages,
        )
        return call.text, call.usage, call.cost_usd, []

    def write_back(self, turn: PreparedTurn, reply: str | None) -> WriteBackResult | None:
        """Inline write-back of ``turn``, then retries of the user's earlier failed ones; never raises."""
        if self.extractor is None:
            return None
        try:
            result = write_back(self.memory, self.extractor, **self._turn_fields(turn, reply))
            retry_pending(
                self.memory,
                self.extractor,
                turn.scope,
                max_attempts=self.settings.writeback_max_attempts,
                pending_older_than=PENDING_GRACE_SECONDS,
                limit=3,
            )
            return result
        except AgentMemoryError as exc:  # the store itself failed: the turn still stands
            logger.warning("write-back of turn %s did not run: %s", turn.turn_id, exc)
            return WriteBackResult(turn.turn_id, "failed", error=f"{type(exc).__name__}: {exc}")

    def _spool(self, turn: PreparedTurn, reply: str | None) -> WriteBackResult:
        """A degraded turn's write-back: kept in the cache's spool until the store answers, never dropped.

        When Redis refuses it too, the store is tried once more (it may be back); only when both fail is the
        turn's write-back lost, logged as an error with the turn id.
        """
        fields = self._turn_fields(turn, reply)
        if self.memory.cache is not None and self.memory.cache.spool(turn.scope, fields):
            return WriteBackResult(turn.turn_id, "queued")
        try:
            record_turn(self.memory, **fields)
            return WriteBackResult(turn.turn_id, "queued")
        except AgentMemoryError as exc:
            logger.error("turn %s: write-back lost, neither the cache nor the store took it: %s", turn.turn_id, exc)
            return WriteBackResult(turn.turn_id, "failed", error=f"{type(exc).__name__}: {exc}")

    def _keep_unanswered(self, turn: PreparedTurn, exc: Exception) -> None:
        """Claude gave no reply: keep the user's message in the session and the ledger for a later write-back."""
        self._append(turn, Turn("user", turn.message, turn_id=f"{turn.turn_id}.user"))
        if turn.degraded:
            self._spool(turn, None)
            return
        try:
            record_turn(self.memory, **self._turn_fields(turn, None), error=f"no reply from Claude: {exc}")
        except AgentMemoryError:
            logger.exception("could not record unanswered turn %s", turn.turn_id)

    def _append(self, turn: PreparedTurn, entry: Turn) -> None:
        if self.sessions is not None and turn.session_id is not None:
            self.sessions.append(turn.scope, turn.session_id, entry)

    @staticmethod
    def _turn_fields(turn: PreparedTurn, reply: str | None) -> dict[str, Any]:
        return {
            "user_id": turn.scope.user_id,
            "tenant_id": turn.scope.tenant_id,
            "turn_id": turn.turn_id,
            "message": turn.message,
            "reply": reply,
            "session_id": turn.session_id,
        }


def _since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


@functools.lru_cache(maxsize=1)
def default_agent() -> Agent:
    """The process's agent, built from the environment on first use (a Lambda container reuses it)."""
    return Agent.from_settings()


def run_turn(user_id: str, message: str, session_id: str | None = None, **options: Any) -> TurnResult:
    """``default_agent().run_turn(...)``: one turn with everything configured from the environment."""
    return default_agent().run_turn(user_id, message, session_id, **options)
