"""The Anthropic client, built from settings, and the one place its errors become ``ClaudeError``.

The SDK does the retrying (``max_retries`` from ``MEMORY_CLAUDE_MAX_RETRIES``: 429, 5xx and 529 overloads
and timeouts, with backoff that honours ``retry-after``); ``timeout`` stays under API Gateway's 30 s.
Its defaults (600 s, 2 retries) would let one slow call outlive the Lambda that made it.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from memory.config import Settings
from memory.errors import ClaudeError, ConfigurationError
from memory.usage import TokenUsage, log_call


def make_client(settings: Settings) -> Any:
    """An ``anthropic.Anthropic`` for the settings' key and address. Raises ``ConfigurationError`` without a key."""
    if settings.anthropic_api_key is None:
        raise ConfigurationError("ANTHROPIC_API_KEY is not set: export your Claude API key to talk to Claude")
    try:
        import anthropic
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise ConfigurationError("the anthropic package is missing: pip install anthropic") from exc
    sdk_logger = logging.getLogger("anthropic")
    if sdk_logger.level == logging.NOTSET and not os.environ.get("ANTHROPIC_LOG"):
        # Its DEBUG lines hold whole requests (messages, the memory block): a root logger at DEBUG must not
        # write them. ANTHROPIC_LOG=debug (the SDK's own switch) still does, for someone who asks.
        sdk_logger.setLevel(logging.INFO)
    return anthropic.Anthropic(
        api_key=settings.anthropic_api_key.get_secret_value(),
        base_url=settings.anthropic_base_url,
        timeout=settings.claude_timeout_seconds,
        max_retries=settings.claude_max_retries,
    )


def call_claude(client: Any, *, beta: bool = False, **request: Any) -> Any:
    """``client.messages.create(**request)`` (``client.beta.messages`` with ``beta``), with the SDK's errors
    translated after its retries."""
    import anthropic

    messages = client.beta.messages if beta else client.messages
    try:
        return messages.create(**request)
    except anthropic.APITimeoutError as exc:
        raise ClaudeError(
            "Claude did not answer in time (MEMORY_CLAUDE_TIMEOUT_SECONDS); try again", retryable=True
        ) from exc
    except anthropic.APIConnectionError as exc:
        raise ClaudeError(
            f"cannot reach the Claude API ({exc}); check the network or ANTHROPIC_BASE_URL", retryable=True
        ) from exc
    except anthropic.AuthenticationError as exc:
        raise ClaudeError("the Claude API rejected ANTHROPIC_API_KEY; check the key", retryable=False) from exc
    except anthropic.APIStatusError as exc:
        retryable = exc.status_code in (408, 409, 429) or exc.status_code >= 500
        what = {429: "rate limited", 529: "overloaded"}.get(exc.status_code, f"answered HTTP {exc.status_code}")
        raise ClaudeError(f"the Claude API {what}: {_message(exc)}", retryable=retryable) from exc


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("message", exc))
    return str(exc)


@dataclass(frozen=True, slots=True)
class LoggedCall:
    """One Claude response with its usage and estimated cost, already logged on ``memory.usage``."""

    response: Any
    usage: TokenUsage
    cost_usd: float | None

    @property
    def text(self) -> str:
        """The reply's text blocks, joined."""
        return "".join(block.text for block in self.response.content if getattr(block, "type", None) == "text")

    def tool_uses(self, name: str) -> list[Any]:
        """The reply's ``tool_use`` blocks for the tool ``name``, in order."""
        return [b for b in self.response.content if getattr(b, "type", None) == "tool_use" and b.name == name]


def logged_call(
    client: Any,
    *,
    purpose: str,
    turn_id: str,
    extra: dict[str, Any] | None = None,
    log_stop_reason: bool = False,
    beta: bool = False,
    **request: Any,
) -> LoggedCall:
    """``call_claude`` plus the call's one usage line (``memory.usage.log_call``), timed around the call."""
    started = time.perf_counter()
    response = call_claude(client, beta=beta, **request)
    usage = TokenUsage.from_response(response.usage)
    fields = {**(extra or {}), **({"stop_reason": response.stop_reason} if log_stop_reason else {})}
    cost = log_call(
        purpose=purpose,
        model=request["model"],
        usage=usage,
        turn_id=turn_id,
        latency_ms=(time.perf_counter() - started) * 1000,
        request_id=getattr(response, "_request_id", None),
        extra=fields or None,
    )
    return LoggedCall(response, usage, cost)
