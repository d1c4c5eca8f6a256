"""``agent-memory``: remember, recall, list, forget and inspect memories from the shell.

Each command checks its input, calls the library, and prints a table (or JSON with ``--json``).
Library errors become one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import functools
import json
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from memory.errors import AgentMemoryError, ConfigurationError, InvalidInputError
from memory.models import DEFAULT_TENANT, MemoryType, SearchMode
from memory.stores import redact_url

_TTL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_TTL_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_ttl(value: str | None) -> float | None:
    """``30d``, ``12h``, ``45m``, ``90s`` or plain seconds -> seconds."""
    if value is None:
        return None
    match = _TTL.match(value)
    if not match or float(match.group(1)) <= 0:
        raise click.BadParameter(f"{value!r} is not a duration; use e.g. 90s, 45m, 12h, 30d or 2w")
    return float(match.group(1)) * _TTL_UNITS[match.group(2)]


def age(timestamp: float, now: float | None = None) -> str:
    seconds = max(0.0, (now or time.time()) - timestamp)
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return "just now"


def print_table(rows: Sequence[Sequence[Any]], headers: Sequence[str], *, wrap: int = 60) -> None:
    """A plain aligned table; long cells are cut to ``wrap`` characters with an ellipsis."""
    if not rows:
        click.echo("(nothing)")
        return
    cells = [[str(c) if len(str(c)) <= wrap else str(c)[: wrap - 1] + "…" for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    click.echo("  ".join("-" * w for w in widths))
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def output_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The output flag every command shares."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(command)


def user_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--user", "user_id", required=True, help="Whose memories (a user id).")(command)


def library_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors into one clear line and exit code 2 (bad input or settings) or 1 (failure)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (InvalidInputError, ConfigurationError) as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(2)
        except AgentMemoryError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)

    return wrapper


class Context:
    """What the group options select; the ``Memory`` is built on first use, not at start-up."""

    def __init__(self, store_url: str | None, tenant_id: str) -> None:
        self.store_url = store_url
        self.tenant_id = tenant_id
        self._memory = None

    @property
    def settings(self):  # -> Settings, with --store applied
        from memory import telemetry
        from memory.config import get_settings

        settings = get_settings(**({"store_url": self.store_url} if self.store_url else {}))
        if settings.telemetry_file is None:  # a local run: its events go where `agent-memory stats` reads
            settings = settings.model_copy(update={"telemetry_file": telemetry.LOCAL_FILE})
        telemetry.configure(settings)
        return settings

    @property
    def memory(self):  # -> Memory; imported lazily so `--help` stays instant
        if self._memory is None:
            from memory.service import Memory

            self._memory = Memory.from_settings(self.settings)
        return self._memory


pass_context = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--store", "store_url", envvar="MEMORY_STORE_URL", help="Store URL (default: MEMORY_STORE_URL).")
@click.option("--tenant", "tenant_id", default=DEFAULT_TENANT, show_default=True, help="Tenant id.")
@click.version_option(package_name="agent-memory")
@click.pass_context
def main(ctx: click.Context, store_url: str | None, tenant_id: str) -> None:
    """Persistent memory for Claude agents: remember facts about users and recall them by meaning."""
    ctx.obj = Context(store_url, tenant_id)


@main.command()
@user_option
@click.argument("content")
@click.option("--type", "memory_type", type=click.Choice([t.value for t in MemoryType]), default="fact")
@click.option("--importance", type=float, default=0.5, show_default=True, help="From 0 to 1.")
@click.option("--tag", "tags", multiple=True, help="A tag; repeat for several.")
@click.option("--ttl", help="Forget after this long: 90s, 45m, 12h, 30d, 2w.")
@click.option("--supersedes", help="Id of a memory this one corrects (it is archived, not deleted).")
@output_options
@pass_context
@library_errors
def remember(
    ctx: Context,
    user_id: str,
    content: str,
    memory_type: str,
    importance: float,
    tags: tuple[str, ...],
    ttl: str | None,
    supersedes: str | None,
    as_json: bool,
) -> None:
    """Store CONTENT as a memory of the user (merging duplicates, superseding corrections)."""
    result = ctx.memory.remember(
        user_id,
        content,
        memory_type=memory_type,
        importance=importance,
        tags=tags,
        ttl=parse_ttl(ttl),
        supersedes=supersedes,
        tenant_id=ctx.tenant_id,
    )
    if as_json:
        emit_json(
            {
                "action": result.action.value,
                "previous_id": result.previous_id,
                "memory": result.entry.as_dict(),
            }
        )
        return
    messages = {
        "added": f"added {result.entry.id}",
        "merged": f"merged into {result.entry.id} (a repeat; importance now {result.entry.importance:.2f})",
        "superseded": f"added {result.entry.id}, superseding {result.previous_id} (kept in history)",
    }
    click.echo(messages[result.action.value])


@main.command()
@user_option
@click.argument("query")
@click.option("--top-k", type=int, default=None, help="How many memories (default: MEMORY_TOP_K, 5).")
@click.option("--type", "memory_types", multiple=True, type=click.Choice([t.value for t in MemoryType]))
@click.option("--tag", "tags", multiple=True, help="Only memories with this tag; repeat for any of several.")
@click.option("--mode", type=click.Choice([m.value for m in SearchMode]), default="hybrid", show_default=True)
@output_options
@pass_context
@library_errors
def recall(
    ctx: Context,
    user_id: str,
    query: str,
    top_k: int | None,
    memory_types: tuple[str, ...],
    tags: tuple[str, ...],
    mode: str,
    as_json: bool,
) -> None:
    """Find the user's memories that best answer QUERY, with why each was found."""
    hits = ctx.memory.search(
        user_id, query, top_k=top_k, memory_types=memory_types, tags=tags, mode=mode, tenant_id=ctx.tenant_id
    )
    if as_json:
        emit_json([hit.as_dict() for hit in hits])
        return
    rows = [
        (rank, f"{hit.score:.3f}", hit.entry.memory_type.value, hit.entry.content, "; ".join(hit.reasons))
        for rank, hit in enumerate(hits, start=1)
    ]
    print_table(rows, ("#", "score", "type", "memory", "why"), wrap=70)


@main.command(name="list")
@user_option
@click.option("--type", "memory_types", multiple=True, type=click.Choice([t.value for t in MemoryType]))
@click.option("--tag", "tags", multiple=True, help="Only memories with this tag; repeat for any of several.")
@click.option("--all", "include_inactive", is_flag=True, help="Include superseded and pruned memories.")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--offset", type=int, default=0, show_default=True)
@output_options
@pass_context
@library_errors
def list_memories(
    ctx: Context,
    user_id: str,
    memory_types: tuple[str, ...],
    tags: tuple[str, ...],
    include_inactive: bool,
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """List the user's memories, newest first."""
    entries = ctx.memory.list(
        user_id,
        memory_types=memory_types,
        tags=tags,
        include_inactive=include_inactive,
        limit=limit,
        offset=offset,
        tenant_id=ctx.tenant_id,
    )
    if as_json:
        emit_json([entry.as_dict() for entry in entries])
        return
    now = time.time()
    rows = [
        (
            e.id,
            e.memory_type.value,
            f"{e.importance:.2f}",
            e.status.value,
            age(e.created_at, now),
            ",".join(e.tags),
            e.content,
        )
        for e in entries
    ]
    print_table(rows, ("id", "type", "importance", "status", "created", "tags", "memory"))


@main.command()
@user_option
@click.option("--id", "memory_id", help="Forget this one memory.")
@click.option("--all", "everything", is_flag=True, help="Forget everything about the user, history included.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@output_options
@pass_context
@library_errors
def forget(ctx: Context, user_id: str, memory_id: str | None, everything: bool, yes: bool, as_json: bool) -> None:
    """Forget one memory (--id) or everything about a user (--all)."""
    if bool(memory_id) == everything:
        raise click.UsageError("give exactly one of --id ID or --all")
    if memory_id:
        ctx.memory.delete(user_id, memory_id, tenant_id=ctx.tenant_id)
        result = {"deleted": 1, "memory_id": memory_id}
    else:
        if not yes:
            click.confirm(f"Forget everything about user {user_id!r}? This cannot be undone", abort=True)
        result = {"deleted": ctx.memory.forget_user(user_id, tenant_id=ctx.tenant_id), "user_id": user_id}
    if as_json:
        emit_json(result)
    else:
        click.echo(f"forgot {result['deleted']} memor{'y' if result['deleted'] == 1 else 'ies'}")


@main.command()
@user_option
@click.option("--id", "memory_id", help="Only this memory's history.")
@click.option("--limit", type=int, default=100, show_default=True)
@output_options
@pass_context
@library_errors
def history(ctx: Context, user_id: str, memory_id: str | None, limit: int, as_json: bool) -> None:
    """Show what happened to the user's memories, oldest first."""
    events = ctx.memory.history(user_id, memory_id, limit=limit, tenant_id=ctx.tenant_id)
    if as_json:
        emit_json([event.as_dict() for event in events])
        return
    now = time.time()
    rows = [(age(e.created_at, now), e.kind.value, e.memory_id, e.related_id or "", e.content or "") for e in events]
    print_table(rows, ("when", "event", "memory", "related", "content"))


@main.command()
@click.option("--url", help="Postgres URL of the schema owner (default: DATABASE_URL, else MEMORY_STORE_URL).")
@click.option(
    "--no-app-login",
    is_flag=True,
    help="Leave roles alone: do not create the store URL's user or set its password.",
)
@pass_context
@library_errors
def migrate(ctx: Context, url: str | None, no_app_login: bool) -> None:
    """Bring the Postgres schema to the latest revision (alembic upgrade head). SQLite needs nothing.

    When the store URL (--store, MEMORY_STORE_URL) is Postgres with a user and password and that user is not
    the migration URL's, the user is created as the application login (LOGIN, a member of agent_memory_app,
    no superuser, no BYPASSRLS) or, if it exists, given that password: run it again after changing the password.
    """
    from memory.app_login import APP_ROLE, app_login_from
    from memory.migrations import upgrade
    from memory.stores.postgres_url import migration_url

    target = url or migration_url()
    login = None if no_app_login else app_login_from(ctx.settings.store_url, target)
    revision, target = upgrade(target, app_login=login)
    click.echo(f"{redact_url(target)}: schema at revision {revision}")
    if login is not None:
        click.echo(f"application login {login.user}: created or password set, a member of {APP_ROLE}")


@main.command()
@user_option
@click.option("--session", "session_id", help="Session id: recent turns of it go with each message.")
@click.option("--message", help="Send this one message and exit instead of reading from the terminal.")
@click.option("--show-memories", is_flag=True, help="Print the memories injected into each turn.")
@click.option(
    "--memory-mode",
    type=click.Choice(["inject", "tool", "both"]),
    help="inject (recall into the prompt), tool (Claude's memory tool) or both; default MEMORY_MEMORY_MODE.",
)
@pass_context
@library_errors
def chat(
    ctx: Context,
    user_id: str,
    session_id: str | None,
    message: str | None,
    show_memories: bool,
    memory_mode: str | None,
) -> None:
    """Talk to Claude with the user's memories; offline (no ANTHROPIC_API_KEY) show what memory does."""
    import uuid

    from memory import chat as chat_turns

    settings = ctx.settings
    if memory_mode is not None:
        settings = settings.model_copy(update={"memory_mode": memory_mode})
    agent, offline = chat_turns.open_chat_agent(settings)
    if offline:
        click.echo(chat_turns.OFFLINE_NOTICE, err=True)
    if session_id is None and message is None:
        session_id = f"chat-{uuid.uuid4().hex[:8]}"
        click.echo(f"session {session_id} (resume with --session {session_id}); /quit or Ctrl-D to leave", err=True)
    messages = [message] if message is not None else chat_turns.read_messages()
    failed = chat_turns.converse(agent, offline, user_id, session_id, ctx.tenant_id, messages, show_memories)
    agent.close()
    if failed and message is not None:
        sys.exit(1)


@main.command()
@click.option("--user", "user_id", help="Consolidate this user only.")
@click.option("--all", "everything", is_flag=True, help="Every user with memories, in batches, resuming a stopped run.")
@click.option("--dry-run", is_flag=True, help="Report what would change; change nothing and call no model.")
@output_options
@pass_context
@library_errors
def consolidate(ctx: Context, user_id: str | None, everything: bool, dry_run: bool, as_json: bool) -> None:
    """Expire, merge, summarise into a profile and prune: the scheduled job, on demand."""
    from memory.consolidation import Consolidator, all_scopes
    from memory.models import Scope

    if bool(user_id) == everything:
        raise click.UsageError("give exactly one of --user U or --all")
    consolidator = Consolidator.from_settings(ctx.settings, ctx.memory)
    if consolidator.note and not as_json:
        click.echo(f"Note: {consolidator.note}", err=True)
    if user_id:
        reports = [consolidator.run_user(Scope(user_id, ctx.tenant_id), dry_run=dry_run)]
        complete = True
    else:
        total = sum(1 for _ in all_scopes(ctx.memory.store))
        with click.progressbar(length=total, label="consolidating", file=sys.stderr, show_pos=True) as bar:
            run = consolidator.run_all(dry_run=dry_run, on_user=lambda report: bar.update(1))
        reports, complete = run.users, run.complete
    if as_json:
        emit_json({"dry_run": dry_run, "complete": complete, "users": [report.as_dict() for report in reports]})
        return
    columns = ("expired", "merged", "summaries", "summarised", "profile", "pruned", "purged", "model_calls")
    rows = [(r.user_id, *(getattr(r, c) for c in columns), r.skipped or "; ".join(r.errors)) for r in reports]
    print_table(rows, ("user", *columns, "note"))
    if not complete:
        click.echo("stopped at MEMORY_CONSOLIDATION_BUDGET_SECONDS; run again to go on from there", err=True)


@main.command(name="api-key")
@output_options
@pass_context
def api_key(ctx: Context, as_json: bool) -> None:
    """Make a new key for the HTTP API, bound to --tenant. Prints the key once; configure only its hash."""
    import hashlib
    import secrets

    key = "am_" + secrets.token_urlsafe(32)
    entry = f"{ctx.tenant_id}:{hashlib.sha256(key.encode()).hexdigest()}"
    if as_json:
        emit_json({"tenant_id": ctx.tenant_id, "key": key, "api_keys_entry": entry})
        return
    click.echo(f"key (give it to the client; it is not stored anywhere): {key}")
    click.echo(f"add to MEMORY_API_KEYS (comma-separated): {entry}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", type=int, default=8000, show_default=True)
@pass_context
@library_errors
def serve(ctx: Context, host: str, port: int) -> None:
    """Serve the HTTP API (memory/api.py) with uvicorn; OpenAPI docs at /docs."""
    import uvicorn

    from memory.api import create_app

    settings = ctx.settings
    if not settings.api_keys:
        click.echo("Note: MEMORY_API_KEYS is empty, so /v1 refuses every request; `agent-memory api-key`", err=True)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


@main.command()
@user_option
@click.option("--transport", type=click.Choice(["stdio", "http"]), default="stdio", show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="HTTP transport: the address to listen on.")
@click.option("--port", type=int, default=8765, show_default=True, help="HTTP transport: the port (endpoint /mcp).")
@pass_context
def mcp(ctx: Context, user_id: str, transport: str, host: str, port: int) -> None:
    """Serve the user's memories as MCP tools (remember, search, list, forget, history) for Claude clients."""
    import importlib.util

    if importlib.util.find_spec("mcp") is None:
        click.echo("Error: the MCP server needs the mcp package: pip install 'agent-memory[mcp]'", err=True)
        sys.exit(2)
    from memory.mcp_server import main as serve

    argv = ["--user", user_id, "--tenant", ctx.tenant_id, "--transport", transport, "--host", host]
    argv += ["--port", str(port)] + (["--store", ctx.store_url] if ctx.store_url else [])
    serve(argv)


@main.command()
@user_option
@output_options
@pass_context
@library_errors
def writeback(ctx: Context, user_id: str, as_json: bool) -> None:
    """Retry the user's pending and failed write-backs now (Claude with a key, else the rules)."""
    from memory.agent import choose_extractor
    from memory.claude import make_client
    from memory.models import Scope
    from memory.writeback import retry_pending

    settings = ctx.settings
    client = make_client(settings) if settings.anthropic_api_key is not None else None
    extractor = choose_extractor(settings, client)
    if extractor is None:
        raise ConfigurationError("MEMORY_EXTRACTION=off: there is no extractor to retry with")
    results = retry_pending(ctx.memory, extractor, Scope(user_id, ctx.tenant_id), limit=1000)
    if as_json:
        emit_json([result.as_dict() for result in results])
        return
    rows = [
        (r.turn_id, r.status, ", ".join(f"{a['outcome']} {a['memory_id']}" for a in r.applied), r.error or "")
        for r in results
    ]
    print_table(rows, ("turn", "status", "memories", "error"), wrap=70)


@main.group()
def cache() -> None:
    """Inspect or clear the Redis cache of users' core memories (MEMORY_CACHE_URL)."""


def _cache_of(ctx: Context):  # -> MemoryCache, or a clear error when the cache is off
    memory = ctx.memory
    if memory.cache is None:
        raise ConfigurationError("the memory cache is off (MEMORY_CACHE_URL=none)")
    return memory.cache


@cache.command("stats")
@user_option
@output_options
@pass_context
@library_errors
def cache_stats(ctx: Context, user_id: str, as_json: bool) -> None:
    """What the cache holds for the user, and whether it matches the store's current version."""
    from memory.models import Scope

    memory_cache = _cache_of(ctx)
    scope = Scope(user_id, ctx.tenant_id)
    details = memory_cache.describe(scope)
    store_version = ctx.memory.store.version(scope)
    details = {
        "size": memory_cache.size,
        "ttl": memory_cache.ttl_seconds,
        "store_version": store_version,
        **details,
        # a set filled at the store's version: what the next turn reads
        "current": store_version is not None
        and details["newest_version"] == store_version
        and details["cached_memories"] is not None,
    }
    if memory_cache.backend == "memory":
        details["note"] = "memory:// is this process's own cache; point MEMORY_CACHE_URL at Redis to share one"
    if as_json:
        emit_json(details)
        return
    print_table([(name, "" if value is None else value) for name, value in details.items()], ("", "value"), wrap=90)


@cache.command("clear")
@user_option
@output_options
@pass_context
@library_errors
def cache_clear(ctx: Context, user_id: str, as_json: bool) -> None:
    """Drop the user's cached core memories (the next turn refills them from the store)."""
    from memory.models import Scope

    deleted = _cache_of(ctx).clear(Scope(user_id, ctx.tenant_id))
    if as_json:
        emit_json({"user_id": user_id, "keys_deleted": deleted})
        return
    click.echo(f"cleared {deleted} cache keys of {user_id!r}")


@main.command()
@click.option(
    "--file",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The telemetry file (default: MEMORY_TELEMETRY_FILE, else .agent-memory/telemetry.jsonl).",
)
@click.option("--since", default="1h", show_default=True, help="How far back: 90s, 45m, 12h, 2d...")
@output_options
@pass_context
@library_errors
def stats(ctx: Context, path: Path | None, since: str, as_json: bool) -> None:
    """What local runs recorded in their telemetry file over the last hour: search latency, memories and tokens
    injected, Claude tokens and cost by purpose, write-back outcomes, cache, consolidation."""
    from memory.telemetry import file_of
    from memory.telemetry_file import read_events, summarise

    window = parse_ttl(since)
    assert window is not None
    if path is None:
        location = file_of(ctx.settings)
        if location is None:
            raise ConfigurationError("MEMORY_TELEMETRY_FILE=none: there is no telemetry file; give one with --file")
        path = Path(location)
    rows = summarise(read_events(path, time.time() - window))
    if as_json:
        emit_json({"file": str(path), "since_seconds": window, "metrics": rows})
        return
    click.echo(f"{path}, the last {since}:", err=True)
    columns = ("events", "sum", "mean", "p50", "p95", "max")
    print_table([(row["metric"], *(_figure(row[c]) for c in columns)) for row in rows], ("metric", *columns))


def _figure(value: float | None) -> str:
    if value is None:
        return ""
    if float(value).is_integer():
        return str(int(value))
    if abs(value) >= 10:
        return f"{value:.2f}"
    return f"{value:.4g}" if abs(value) >= 0.001 else f"{value:.6f}"  # costs of cheap calls: no 4.5e-05


@main.command()
@click.option("--user", "user_id", default="demo-user", show_default=True)
@pass_context
@library_errors
def demo(ctx: Context, user_id: str) -> None:
    """Remember a few things about a user, then recall them for questions, showing why each was found.

    Uses a fresh SQLite file in a temporary directory unless --store (or MEMORY_STORE_URL) names a
    store; there, the demo user's earlier memories are forgotten first.
    """
    from memory.demo import show_demo

    with tempfile.TemporaryDirectory(prefix="agent-memory-demo-") as folder:
        given = ctx.store_url is not None
        if not given:
            ctx.store_url = f"sqlite:///{Path(folder) / 'demo.db'}"
        click.echo(f"store: {redact_url(ctx.store_url)}")
        if given:  # a real store: start the demo user afresh so every run shows the same thing
            removed = ctx.memory.forget_user(user_id, tenant_id=ctx.tenant_id)
            click.echo(f"forgot {removed} memories of {user_id!r} left by an earlier demo")
        started = time.perf_counter()
        ctx.memory.embedder.embed(["warm up"])
        click.echo(f"embedding model loaded in {time.perf_counter() - started:.1f} s\n")
        show_demo(ctx.memory, user_id, ctx.tenant_id, click.echo)
        ctx.memory.close()
