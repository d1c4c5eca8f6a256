"""What `agent-memory chat` does per message, online (Claude answers) or offline (no API key).

Offline, nothing is sent anywhere: each message shows the memory block a turn would inject and what
the rule-based write-back stored, so a new user sees the memory layer work before adding a key.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import click

from memory.agent import Agent, PreparedTurn, TurnResult
from memory.config import Settings
from memory.errors import ClaudeError
from memory.extraction import RuleExtractor
from memory.sessions import Turn
from memory.writeback import WriteBackResult, write_back

OFFLINE_NOTICE = (
    "ANTHROPIC_API_KEY is not set: running offline. Claude is not called; each message shows the memories a "
    "turn would inject and what the rule-based write-back remembers. Export ANTHROPIC_API_KEY to chat."
)


def open_chat_agent(settings: Settings) -> tuple[Agent, bool]:
    """The agent for a chat, and whether it runs offline (no key: rule-based write-back, no Claude)."""
    offline = settings.anthropic_api_key is None
    if offline and settings.extraction == "claude":
        settings = settings.model_copy(update={"extraction": "rules"})
    return Agent.from_settings(settings), offline


@dataclass(slots=True)
class OfflineTurn:
    prepared: PreparedTurn
    write_back: WriteBackResult | None


def offline_turn(agent: Agent, user_id: str, message: str, session_id: str | None, tenant_id: str) -> OfflineTurn:
    """Recall and prompt as a turn would, keep the message in the session, write back with the rules."""
    prepared = agent.prepare(user_id, message, session_id, tenant_id=tenant_id)
    if agent.sessions is not None and session_id is not None:
        agent.sessions.append(prepared.scope, session_id, Turn("user", message, turn_id=f"{prepared.turn_id}.user"))
    result = None
    if agent.settings.extraction != "off":
        result = write_back(
            agent.memory,
            RuleExtractor(),
            user_id=user_id,
            tenant_id=tenant_id,
            turn_id=prepared.turn_id,
            message=message,
            session_id=session_id,
        )
    return OfflineTurn(prepared, result)


def describe_write_back(result: WriteBackResult | None) -> Iterator[str]:
    """One line per memory the write-back touched (or why it did not run)."""
    if result is None:
        return
    if result.status == "failed":
        yield f"  (write-back failed and will be retried: {result.error})"
        return
    for applied in result.applied:
        content = applied.get("content")
        text = f": {content}" if content else ""
        yield f"  [{applied['outcome']}] {applied['memory_id']}{text}"


def describe_online(result: TurnResult, show_memories: bool) -> Iterator[str]:
    for call in result.tool_calls:
        command = call["input"].get("command", "?")
        path = call["input"].get("path") or call["input"].get("old_path", "")
        yield f"  memory tool: {command} {path}{' (refused)' if call['is_error'] else ''}"
    if show_memories:
        yield f"  memories used ({len(result.memories)}):"
        for hit in result.memories:
            yield f"    - [{hit.entry.memory_type.value}] {hit.entry.content}"
    cost = "unknown price" if result.cost_usd is None else f"${result.cost_usd:.5f}"
    usage = result.usage
    yield (
        f"  ({usage.input_tokens} in, {usage.output_tokens} out, {usage.cache_read_input_tokens} cached tokens;"
        f" {cost}; {result.timings.get('claude', 0):.0f} ms)"
    )
    yield from describe_write_back(result.write_back)


def converse(
    agent: Agent,
    offline: bool,
    user_id: str,
    session_id: str | None,
    tenant_id: str,
    messages: Iterable[str],
    show_memories: bool,
) -> bool:
    """Run each message as a turn (or offline turn) and print it; returns whether any Claude call failed."""
    failed = False
    for text in messages:
        if offline:
            turn = offline_turn(agent, user_id, text, session_id, tenant_id)
            block = turn.prepared.block
            click.echo(f"would inject ({len(block.used)} memories, ~{block.tokens} tokens):")
            click.echo(block.text)
            lines = list(describe_write_back(turn.write_back))
            click.echo("remembered:" if lines else "remembered: nothing")
            for line in lines:
                click.echo(line)
            continue
        try:
            result = agent.run_turn(user_id, text, session_id, tenant_id=tenant_id)
        except ClaudeError as exc:
            click.echo(f"Error: {exc} (your message is kept and will be remembered later)", err=True)
            failed = True
            continue
        click.echo(f"claude> {result.reply}")
        for line in describe_online(result, show_memories):
            click.echo(line, err=True)
    return failed


def read_messages() -> Iterator[str]:
    """Lines from the terminal (or a pipe) until /quit, /exit, Ctrl-D or Ctrl-C; blank lines are skipped."""
    while True:
        try:
            line = click.prompt("you", prompt_suffix="> ", default="", show_default=False)
        except (EOFError, KeyboardInterrupt, click.exceptions.Abort):
            return
        if line.strip() in ("/quit", "/exit"):
            return
        if line.strip():
            yield line
