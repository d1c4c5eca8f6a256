"""An MCP server that gives a model one user's long-term memories.

    python -m memory.mcp_server --user u1 --store sqlite:///agent_memory.db      # stdio (Claude Desktop, Code)
    python -m memory.mcp_server --user u1 --transport http --port 8765          # streamable HTTP at /mcp

The server is bound to one user (and tenant) when it starts: no tool takes a user id, so a model can neither
read nor erase another user's memories, and there is deliberately no tool that forgets the whole user (that
stays with the operator: ``agent-memory forget --all``). Library errors reach the model as tool errors
carrying the library's message, which says what to fix; the server keeps serving.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import inspect
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from memory.config import get_settings
from memory.errors import AgentMemoryError
from memory.models import MemoryEntry, Scope
from memory.service import Memory

logger = logging.getLogger(__name__)

# The values of ``memory.models.MemoryType``, spelled out so the input schema carries an inline enum
# (a test keeps the two in step).
MemoryTypeName = Literal["preference", "fact", "task", "decision", "summary"]
MemoryId = Annotated[str, Field(min_length=1, description="The id of a memory, as remember, search or list return it.")]

INSTRUCTIONS = (
    "Long-term memory of the current user, kept across conversations. Before answering anything that may "
    "depend on the user's preferences, plans, people or past decisions, call `search`. When the user states "
    "something durable about themselves (a preference, a fact, a task, a decision), call `remember` with one "
    "short fact in their own words. Call `forget` only when the user asks to forget a specific thing."
)

_T = TypeVar("_T", bound=Callable[..., Any])


def _library_errors_as_tool_errors(fn: _T) -> _T:
    """A library error becomes a tool error with the library's message (the SDK hides other exceptions' text)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AgentMemoryError as exc:
            raise ToolError(str(exc)) from exc

    return wrapper  # type: ignore[return-value]


def _when(timestamp: float | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def _view(entry: MemoryEntry) -> dict[str, Any]:
    """What a model needs of an entry: no embedding, no scope (it is always this user's)."""
    view = {
        "id": entry.id,
        "content": entry.content,
        "memory_type": entry.memory_type.value,
        "importance": round(entry.importance, 3),
        "tags": list(entry.tags),
        "status": entry.status.value,
        "created_at": _when(entry.created_at),
    }
    if entry.superseded_by is not None:
        view["superseded_by"] = entry.superseded_by
    return view


def build_server(memory: Memory, *, user_id: str, tenant_id: str = "default") -> MCPServer:
    """An ``MCPServer`` whose tools read and write the memories of ``user_id`` in ``tenant_id`` only."""
    Scope(user_id, tenant_id)  # fail now, not on the first call, if the ids are invalid
    scope = {"tenant_id": tenant_id}
    server: MCPServer = MCPServer("agent-memory", instructions=INSTRUCTIONS, version="0.1.0")

    def tool(*, read_only: bool, destructive: bool = False) -> Callable[[_T], _T]:
        hints = ToolAnnotations(read_only_hint=read_only, destructive_hint=destructive, open_world_hint=False)
        # The SDK would send ``__doc__`` as it is, indentation included.
        return lambda fn: server.tool(description=inspect.cleandoc(fn.__doc__), annotations=hints)(
            _library_errors_as_tool_errors(fn)
        )

    @tool(read_only=False)
    def remember(
        content: Annotated[
            str,
            Field(description="One short fact in the user's own words, e.g. 'I prefer aisle seats on long flights'."),
        ],
        memory_type: Annotated[MemoryTypeName, Field(description="What kind of thing this is.")] = "fact",
        importance: Annotated[
            float, Field(ge=0.0, le=1.0, description="0 trivial, 0.5 ordinary, 1 must never be missed.")
        ] = 0.5,
        tags: Annotated[tuple[str, ...], Field(description="A few lowercase topic words, e.g. ['travel'].")] = (),
        supersedes: Annotated[
            str | None, Field(description="Id of an existing memory this one corrects; it is archived.")
        ] = None,
    ) -> dict[str, Any]:
        """Save one durable thing the user said about themselves: a preference, fact, task or decision.

        Call it when the user states something worth knowing in a later conversation; not for small talk or
        for what only matters in this conversation. Store one short fact per call, in the user's own words;
        split a sentence that says two things. Repeats are merged and near-duplicates that change something
        replace the older memory automatically, so there is no need to search first. Returns what happened:
        `added`, `merged` (into an existing memory) or `superseded` (`previous_id` was archived), and the id.
        """
        result = memory.remember(
            user_id,
            content,
            memory_type=memory_type,
            importance=importance,
            tags=tags,
            supersedes=supersedes,
            **scope,
        )
        entry = result.entry
        return {
            "action": result.action.value,
            "id": entry.id,
            "previous_id": result.previous_id,
            "memory": _view(entry),
        }

    @tool(read_only=True)
    def search(
        query: Annotated[str, Field(description="A question or topic in plain words; matched by meaning.")],
        top_k: Annotated[int, Field(ge=1, le=20, description="How many memories to return, best first.")] = 5,
        memory_types: Annotated[
            tuple[MemoryTypeName, ...], Field(description="Only these kinds; empty means all.")
        ] = (),
    ) -> dict[str, Any]:
        """Recall what you know about the user that bears on a question, best match first.

        Call it before answering anything about the user's preferences, habits, plans, people or past
        decisions, and whenever the user refers to something said in an earlier conversation. Matching is
        by meaning as well as words, so phrase the query naturally ("where do I like to sit on planes?").
        Each hit has the memory's content, type, a score (higher is better) and why it matched. An empty
        list means nothing relevant is remembered: say so rather than guess.
        """
        hits = memory.search(user_id, query, top_k=top_k, memory_types=memory_types, **scope)
        return {"hits": [_view(hit.entry) | {"score": round(hit.score, 4), "why": list(hit.reasons)} for hit in hits]}

    @tool(read_only=True)
    def list_memories(
        limit: Annotated[int, Field(ge=1, le=100, description="Most memories to return.")] = 20,
        offset: Annotated[int, Field(ge=0, description="How many of the newest to skip (for paging).")] = 0,
        include_archived: Annotated[
            bool, Field(description="Also show superseded and pruned memories, kept for history.")
        ] = False,
    ) -> dict[str, Any]:
        """List the user's memories, newest first, to review them or to find an id.

        Use `search` to answer a question; use this when the user asks what you remember about them, or
        to page through everything (`offset` += `limit`).
        """
        entries = memory.list(user_id, limit=limit, offset=offset, include_inactive=include_archived, **scope)
        return {"memories": [_view(entry) for entry in entries], "offset": offset}

    @tool(read_only=False, destructive=True)
    def forget(memory_id: MemoryId) -> dict[str, Any]:
        """Permanently delete one memory. It cannot be undone or recovered.

        Call it only when the user asks you to forget a specific thing (find its id with `search` or
        `list_memories` first). To correct a memory, call `remember` with the new fact and `supersedes`
        instead: that keeps the history. There is no way to forget everything through these tools.
        """
        entry = memory.get(user_id, memory_id, **scope)
        memory.delete(user_id, memory_id, **scope)
        return {"forgotten": memory_id, "content": entry.content}

    @tool(read_only=True)
    def history(
        memory_id: Annotated[str | None, Field(description="One memory's id; omit for all of the user's.")] = None,
        limit: Annotated[int, Field(ge=1, le=200, description="Most events to return.")] = 50,
    ) -> dict[str, Any]:
        """Show how memories changed over time, oldest first: added, merged, updated, superseded, deleted.

        Use it when the user asks when or how you learned something, or what a memory said before a
        correction. A deleted memory's content is not kept, only that it was deleted.
        """
        events = memory.history(user_id, memory_id, limit=limit, **scope)
        return {"events": [event.as_dict() | {"created_at": _when(event.created_at)} for event in events]}

    return server


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m memory.mcp_server", description="Serve one user's memories over MCP (tools for a model)."
    )
    parser.add_argument("--user", required=True, help="The user whose memories the tools read and write.")
    parser.add_argument("--tenant", default="default", help="The user's tenant (default: %(default)s).")
    parser.add_argument("--store", help="Store URL, e.g. sqlite:///agent_memory.db (default: MEMORY_STORE_URL).")
    parser.add_argument("--transport", choices=("stdio", "http"), default="stdio", help="Default: %(default)s.")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP only (default: %(default)s).")
    parser.add_argument(
        "--port", type=int, default=8765, help="HTTP only; the endpoint is /mcp (default: %(default)s)."
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    # stdout is the protocol channel under stdio: every log line goes to stderr.
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        Scope(args.user, args.tenant)
        memory = Memory.from_settings(get_settings(**({} if args.store is None else {"store_url": args.store})))
    except AgentMemoryError as exc:
        parser.error(str(exc))
    with memory:
        with contextlib.redirect_stdout(sys.stderr):
            memory.embedder.embed(["warm up"])  # load the model now, not inside the first call
        server = build_server(memory, user_id=args.user, tenant_id=args.tenant)
        logger.info("serving memories of user %r (tenant %r) over %s", args.user, args.tenant, args.transport)
        if args.transport == "stdio":
            server.run("stdio")
        else:
            server.run("streamable-http", host=args.host, port=args.port)


if __name__ == "__main__":
    main()
