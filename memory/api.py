"""The HTTP API: ``create_app()`` builds the FastAPI app that `make serve` runs locally and Lambda runs behind
Mangum (handlers/api.py).

Every route but the health checks and ``GET /metrics`` takes ``Authorization: Bearer <key>``. Keys are
configured only as SHA-256 hashes, each bound to a tenant (``MEMORY_API_KEYS``), and a request acts in its
key's tenant alone: the tenant never comes from the request, so no body or path can reach another tenant's
memories.

Nothing heavy happens at import or in ``create_app``: the store, the embedding model and the Claude client
are built on the first request that needs them and kept for the life of the process (a Lambda container),
so a cold start that answers ``/healthz`` pays for none of them. ``create_app`` configures the process's
telemetry (``memory.telemetry``); ``GET /metrics`` serves it in the Prometheus text format where it is
Prometheus (not in Lambda, which prints EMF lines instead) and ``MEMORY_METRICS_ENDPOINT`` is true.

Errors are JSON, ``{"error": {"type", "message"}}``: 401 without a valid key, 404 for a memory not in the
caller's scope (exactly as for one that never existed), 409 for an exact duplicate, 413 for a body over
``MEMORY_API_MAX_BODY_BYTES``, 422 for bad input (the message names the field), 502 when Claude gave no
reply, 503 when a dependency (store, Redis, queue) failed. Details of a 5xx go to the log, not the caller.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from memory import api_schemas as schemas
from memory import telemetry
from memory.config import Settings, get_settings
from memory.errors import (
    AgentMemoryError,
    ClaudeError,
    DuplicateContentError,
    InvalidInputError,
    MemoryNotFoundError,
)
from memory.models import Scope

if TYPE_CHECKING:
    from memory.agent import Agent
    from memory.queue import WritebackQueue
    from memory.service import Memory

logger = logging.getLogger(__name__)


class _NotConfigured(AgentMemoryError):
    """A route the server is not configured for (503): the message names the setting."""


# A library error becomes (status, type, what the caller is told). 4xx messages are the library's own, written
# for the caller; a 5xx says what failed and that it is worth a retry, and the details go to the log (a setting
# the server lacks is the one 5xx that names itself: it is the operator's to fix, and no secret).
_ERRORS: list[tuple[type[AgentMemoryError], int, str, str | None]] = [
    (MemoryNotFoundError, 404, "not_found", None),
    (DuplicateContentError, 409, "conflict", None),
    (InvalidInputError, 422, "invalid_input", None),
    (_NotConfigured, 503, "not_configured", None),
    (ClaudeError, 502, "claude_unavailable", "Claude gave no reply; retry the turn"),
    (AgentMemoryError, 503, "unavailable", "a dependency of the memory service failed; retry later"),
]


class Unauthorized(Exception):
    """No key, or not one of the configured keys: a 401 that never says which."""


class Services:
    """What the routes use, built on first need and kept for the process: one store connection, one model."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.key_tenants = settings.api_key_tenants  # parsed once, not on every request
        self._lock = threading.Lock()
        self._memory: Memory | None = None
        self._agent: Agent | None = None
        self._queue: WritebackQueue | None = None
        self._queue_opened = False

    @property
    def memory(self) -> Memory:
        with self._lock:
            if self._memory is None:
                from memory.service import Memory

                self._memory = Memory.from_settings(self.settings)
            return self._memory

    @property
    def agent(self) -> Agent:
        memory = self.memory
        with self._lock:
            if self._agent is None:
                from memory.agent import Agent

                self._agent = Agent.from_settings(self.settings, memory=memory)
            return self._agent

    @property
    def queue(self) -> WritebackQueue | None:
        """The write-back queue (``MEMORY_WRITEBACK_QUEUE_URL``); None: turns write back inline."""
        with self._lock:
            if not self._queue_opened:
                if getattr(self.settings, "writeback_queue_url", None):
                    from memory.queue import open_writeback_queue

                    self._queue = open_writeback_queue(self.settings)
                self._queue_opened = True
            return self._queue

    def close(self) -> None:
        with self._lock:
            if self._agent is not None:
                self._agent.close()  # closes the memory too
            elif self._memory is not None:
                self._memory.close()
            self._agent = self._memory = None


_bearer = HTTPBearer(auto_error=False, description="An API key; `agent-memory api-key` makes one.")


def authenticate(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> str:
    """The tenant of the request's key. Compares SHA-256 digests in constant time against every configured one."""
    if credentials is None or not credentials.credentials:
        raise Unauthorized
    digest = hashlib.sha256(credentials.credentials.encode("utf-8", "surrogatepass")).hexdigest()
    tenant = None
    for known, owner in request.app.state.services.key_tenants.items():
        if hmac.compare_digest(digest, known):
            tenant = owner
    if tenant is None:
        raise Unauthorized
    return tenant


def services(request: Request) -> Services:
    return request.app.state.services


Tenant = Annotated[str, Depends(authenticate)]
Deps = Annotated[Services, Depends(services)]
Limit = Annotated[int, Query(ge=1, le=500, description="Items per page.")]
Offset = Annotated[int, Query(ge=0, le=1_000_000, description="Items to skip.")]

router = APIRouter(
    prefix="/v1",
    responses={
        401: {"model": schemas.ErrorOut, "description": "No valid API key."},
        413: {"model": schemas.ErrorOut, "description": "The body is over MEMORY_API_MAX_BODY_BYTES."},
        422: {"model": schemas.ErrorOut, "description": "Bad input; the message names the field."},
        503: {"model": schemas.ErrorOut, "description": "A dependency failed; retry later."},
    },
)
_NOT_FOUND = {404: {"model": schemas.ErrorOut, "description": "No such memory for this user."}}


@router.post("/users/{user_id}/memories", status_code=201, response_model=schemas.RememberOut)
def create_memory(user_id: str, body: schemas.MemoryIn, tenant: Tenant, deps: Deps) -> dict[str, Any]:
    """Remember something about a user. A repeat is merged into the memory it repeats; a correction
    supersedes the one it corrects (kept, archived)."""
    result = deps.memory.remember(
        user_id,
        body.content,
        memory_type=body.memory_type,
        importance=body.importance,
        tags=body.tags,
        metadata=body.metadata,
        session_id=body.session_id,
        ttl=body.ttl_seconds,
        tenant_id=tenant,
    )
    return {"action": result.action.value, "memory": result.entry.as_dict(), "previous_id": result.previous_id}


@router.get("/users/{user_id}/memories", response_model=schemas.MemoryPage)
def list_memories(
    user_id: str,
    tenant: Tenant,
    deps: Deps,
    limit: Limit = 50,
    offset: Offset = 0,
    memory_type: Annotated[list[schemas.MemoryTypeName], Query(max_length=5)] = [],  # noqa: B006 (FastAPI copies)
    tag: Annotated[list[str], Query(max_length=32, description="Only memories with any of these.")] = [],  # noqa: B006
    include_inactive: bool = False,
    order_by: schemas.ListOrder = "newest",
) -> dict[str, Any]:
    """The user's memories, newest (or most important) first, a page at a time."""
    entries = deps.memory.list(
        user_id,
        memory_types=memory_type,
        tags=tag,
        include_inactive=include_inactive,
        limit=limit + 1,  # one more tells whether there is a next page
        offset=offset,
        order_by=order_by,
        tenant_id=tenant,
    )
    return {
        "items": [entry.as_dict() for entry in entries[:limit]],
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if len(entries) > limit else None,
    }


@router.post("/users/{user_id}/memories/search", response_model=schemas.SearchOut)
def search_memories(user_id: str, body: schemas.SearchIn, tenant: Tenant, deps: Deps) -> dict[str, Any]:
    """The memories that best answer a query, best first: meaning and keywords fused, then importance and
    recency."""
    hits = deps.memory.search(
        user_id,
        body.query,
        top_k=body.top_k,
        memory_types=body.memory_types,
        tags=body.tags,
        mode=body.mode,
        tenant_id=tenant,
    )
    return {"hits": [hit.as_dict() for hit in hits]}


@router.get("/users/{user_id}/memories/{memory_id}", response_model=schemas.MemoryOut, responses=_NOT_FOUND)
def get_memory(user_id: str, memory_id: str, tenant: Tenant, deps: Deps) -> dict[str, Any]:
    """One memory."""
    return deps.memory.get(user_id, memory_id, tenant_id=tenant).as_dict()


@router.patch("/users/{user_id}/memories/{memory_id}", response_model=schemas.MemoryOut, responses=_NOT_FOUND)
def update_memory(
    user_id: str, memory_id: str, body: schemas.MemoryPatch, tenant: Tenant, deps: Deps
) -> dict[str, Any]:
    """Change a memory in place; its history keeps the text before."""
    entry = deps.memory.update(
        user_id,
        memory_id,
        content=body.content,
        memory_type=body.memory_type,
        importance=body.importance,
        tags=body.tags,
        metadata=body.metadata,
        tenant_id=tenant,
    )
    return entry.as_dict()


@router.delete("/users/{user_id}/memories/{memory_id}", status_code=204, responses=_NOT_FOUND)
def delete_memory(user_id: str, memory_id: str, tenant: Tenant, deps: Deps) -> Response:
    """Forget one memory for good; its history records the deletion, without the text."""
    deps.memory.delete(user_id, memory_id, tenant_id=tenant)
    return Response(status_code=204)


@router.get("/users/{user_id}/memories/{memory_id}/history", response_model=schemas.HistoryOut)
def memory_history(user_id: str, memory_id: str, tenant: Tenant, deps: Deps, limit: Limit = 100) -> dict[str, Any]:
    """Every change to one memory, oldest first (empty for an id the user never had)."""
    events = deps.memory.history(user_id, memory_id, limit=limit, tenant_id=tenant)
    return {"events": [event.as_dict() for event in events]}


@router.get("/users/{user_id}/history", response_model=schemas.HistoryOut)
def user_history(user_id: str, tenant: Tenant, deps: Deps, limit: Limit = 100) -> dict[str, Any]:
    """Every change to the user's memories, oldest first."""
    events = deps.memory.history(user_id, None, limit=limit, tenant_id=tenant)
    return {"events": [event.as_dict() for event in events]}


@router.delete("/users/{user_id}", response_model=schemas.ForgetOut)
def forget_user(user_id: str, tenant: Tenant, deps: Deps) -> dict[str, Any]:
    """Forget everything about a user: memories, their history, recorded turns, cached and session turns.

    Sessions go first: if the store then fails, the 503 leaves nothing half-forgotten that a retry would
    not finish."""
    scope = Scope(user_id, tenant)
    sessions = deps.agent.sessions
    sessions_deleted = sessions.forget_user(scope) if sessions is not None else 0
    memories_deleted = deps.memory.forget_user(user_id, tenant_id=tenant)
    return {"user_id": user_id, "memories_deleted": memories_deleted, "sessions_deleted": sessions_deleted}


@router.post(
    "/turns",
    response_model=schemas.TurnOut,
    responses={502: {"model": schemas.ErrorOut, "description": "Claude gave no reply."}},
)
def create_turn(body: schemas.TurnIn, tenant: Tenant, deps: Deps) -> dict[str, Any]:
    """One agent turn: recall the user's memories, ask Claude, answer, and write back what was learnt.

    With ``MEMORY_WRITEBACK_QUEUE_URL`` set (Lambda) the turn is recorded and queued, and the reply returns
    as soon as Claude answers; otherwise the write-back runs before the response.
    """
    agent, queue = deps.agent, deps.queue
    if agent.client is None:
        raise _NotConfigured("turns need a Claude API key: set ANTHROPIC_API_KEY on the server")
    result = agent.run_turn(
        body.user_id,
        body.message,
        body.session_id,
        tenant_id=tenant,
        turn_id=body.turn_id,
        write_back=queue is None,
        memory_mode=body.memory_mode,
    )
    answer = result.as_dict()
    if queue is not None and result.write_back is None and result.memory_mode != "tool":
        answer["write_back"] = _enqueue(queue, Scope(body.user_id, tenant), result.turn_id)
    return answer


def _enqueue(queue: WritebackQueue, scope: Scope, turn_id: str) -> dict[str, Any]:
    """Queue a recorded turn's write-back. A queue failure does not fail the turn: Claude has answered and the
    turn is recorded ``pending``, so `agent-memory writeback` or the user's next write-back runs it."""
    try:
        queue.enqueue(scope, turn_id)
    except AgentMemoryError as exc:
        logger.error("turn %s: the write-back queue refused it (%s); it stays pending", turn_id, exc)
        return {"turn_id": turn_id, "status": "pending", "error": "not queued; it is retried by a later write-back"}
    return {"turn_id": turn_id, "status": "queued"}


health = APIRouter(tags=["health"])


@health.get("/healthz", response_model=schemas.HealthOut)
def healthz() -> dict[str, str]:
    """The process answers. Touches no dependency: a load balancer's liveness probe."""
    return {"status": "ok"}


@health.get("/readyz", response_model=schemas.HealthOut, responses={503: {"model": schemas.ErrorOut}})
def readyz(deps: Deps) -> dict[str, str]:
    """The memory store answers a query (a readiness probe)."""
    deps.memory.store.version(Scope("readyz", "readyz"))
    return {"status": "ready"}


observability = APIRouter()


@observability.get("/metrics", response_class=Response, include_in_schema=False)
def metrics() -> Response:
    """This process's telemetry in the Prometheus text format (``memory.telemetry_prometheus``): counts,
    tokens, costs and latencies, no user, memory or message. No key needed; ``MEMORY_METRICS_ENDPOINT=false``
    removes it. A scrape target, not part of the JSON API: left out of the OpenAPI document."""
    sink = telemetry.current().prometheus
    if sink is None:
        raise _NotConfigured("no Prometheus counters in this process: pip install 'agent-memory[metrics]'")
    body, content_type = sink.exposition()
    return Response(body, media_type=content_type)


def _error(status_code: int, kind: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status_code, headers=headers)


async def _library_error(request: Request, exc: Exception) -> JSONResponse:
    for kind, status_code, name, public in _ERRORS:
        if isinstance(exc, kind):
            if status_code >= 500:
                logger.error("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
            return _error(status_code, name, public or str(exc))
    raise exc  # unreachable: AgentMemoryError is the last row


async def _unauthorized(request: Request, exc: Exception) -> JSONResponse:
    return _error(401, "unauthorized", "a valid API key is required", {"WWW-Authenticate": "Bearer"})


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """422 naming each bad field, without echoing the input (it may be huge, or not text at all)."""
    assert isinstance(exc, RequestValidationError)
    problems = []
    for error in exc.errors()[:10]:
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
        problems.append(f"{where}: {error.get('msg', 'invalid')}")
    return _error(422, "invalid_input", "; ".join(problems) or "invalid request")


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    kinds = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
    message = exc.detail if isinstance(exc.detail, str) else "request refused"
    return _error(exc.status_code, kinds.get(exc.status_code, "http_error"), message, exc.headers)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("%s %s: unexpected error", request.method, request.url.path)
    return _error(500, "internal", "internal error; it has been logged")


class BodyLimit:
    """Reads the whole body before the app does and answers 413 past ``limit`` bytes, with or without a
    Content-Length (chunked uploads are counted as they arrive, so none is held in memory past the limit)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await self._too_large(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                await self._too_large(scope, receive, send)
                return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        message = f"the body is over {self.limit} bytes (MEMORY_API_MAX_BODY_BYTES)"
        await _error(413, "payload_too_large", message)(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app, for ``settings`` (default: the environment). Cheap: nothing connects until a request needs it."""
    settings = settings or get_settings()
    mode = telemetry.configure(settings).mode
    if not settings.api_keys:
        logger.warning("MEMORY_API_KEYS is empty: every /v1 request will be refused (`agent-memory api-key`)")
    services = Services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        services.close()  # uvicorn's shutdown; Lambda (lifespan off) freezes the container instead

    app = FastAPI(
        lifespan=lifespan,
        title="agent-memory",
        version=_version(),
        description="Persistent memory for Claude agents: remember, search and forget per user, and agent turns.",
    )
    app.state.services = services
    app.include_router(health)
    if settings.metrics_endpoint and mode == "prometheus":
        app.include_router(observability)
    app.include_router(router)
    app.add_exception_handler(AgentMemoryError, _library_error)
    app.add_exception_handler(Unauthorized, _unauthorized)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)
    app.add_middleware(BodyLimit, limit=settings.api_max_body_bytes)
    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("agent-memory")
    except PackageNotFoundError:
        return "0"


__all__ = ["BodyLimit", "Services", "create_app"]
