"""A bounded tool-use loop for turns in which Claude manages its own memory through the memory tool.

Each step is one Messages API call (beta: the memory tool is ``memory_20250818``); every ``tool_use`` block
for the tool is executed against the store and answered with a ``tool_result`` (a ``ToolError`` becomes
``is_error: true`` with its text, so Claude can correct itself). The loop stops when Claude answers
without a tool call, after ``max_steps`` calls, or once the tokens used pass ``token_budget``: a runaway
loop costs a known maximum. Every call logs its usage line (``memory.usage``), step included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from memory.claude import logged_call
from memory.usage import TokenUsage

MEMORY_TOOL_BETA = "context-management-2025-06-27"


@dataclass(slots=True)
class ToolLoopResult:
    reply: str
    usage: TokenUsage
    cost_usd: float | None
    steps: int
    tool_calls: list[dict[str, Any]]
    stopped: str  # "answered", "max_steps" or "token_budget"
    stop_reason: str | None


def _run_tool(tool: Any, block: Any) -> dict[str, Any]:
    from anthropic.lib.tools import ToolError

    try:
        content, is_error = tool.call(block.input), False
    except ToolError as exc:
        content, is_error = exc.content, True
    if not isinstance(content, str):
        content = list(content)
    return {"type": "tool_result", "tool_use_id": block.id, "content": content, "is_error": is_error}


def run_tool_loop(
    client: Any,
    tool: Any,
    *,
    model: str,
    max_tokens: int,
    system: list[dict[str, Any]],
    messages: list[dict[str, Any]],
    max_steps: int,
    token_budget: int,
    turn_id: str,
    extra: dict[str, Any] | None = None,
) -> ToolLoopResult:
    """Call Claude with ``tool`` until it answers, the step cap or the token budget; raises ``ClaudeError``."""
    conversation = list(messages)
    usage, cost, calls = TokenUsage(), 0.0, []
    stopped, call = "max_steps", None
    name = tool.to_dict()["name"]
    for step in range(1, max_steps + 1):
        call = logged_call(
            client,
            purpose="chat",
            turn_id=turn_id,
            extra={**(extra or {}), "step": step},
            log_stop_reason=True,
            beta=True,
            model=model,
            max_tokens=max_tokens,
            system=system,
            messages=conversation,
            tools=[tool.to_dict()],
            betas=[MEMORY_TOOL_BETA],
        )
        usage += call.usage
        cost = None if cost is None or call.cost_usd is None else cost + call.cost_usd
        uses = call.tool_uses(name)
        if call.response.stop_reason != "tool_use" or not uses:
            stopped = "answered"
            break
        results = [_run_tool(tool, block) for block in uses]
        calls += [{"input": block.input, "is_error": r["is_error"]} for block, r in zip(uses, results, strict=True)]
        conversation += [
            {"role": "assistant", "content": [block.to_dict() for block in call.response.content]},
            {"role": "user", "content": results},
        ]
        if usage.input_tokens + usage.output_tokens + usage.cache_read_input_tokens >= token_budget:
            stopped = "token_budget"
            break
    reply = call.text if call is not None else ""
    stop_reason = call.response.stop_reason if call is not None else None
    return ToolLoopResult(reply, usage, cost, step, calls, stopped, stop_reason)
