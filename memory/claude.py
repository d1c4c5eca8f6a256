"""The Anthropic client, built from settings, and the one place its errors become ``ClaudeError``.

The SDK does the retrying (``max_retries`` from ``MEMORY_CLAUDE_MAX_RETRIES``: 429, 5xx and 529 overloads
and timeouts, with backoff that honours ``retry-after``); ``timeout`` stays under API Gateway's 30 s.
Its defaults (600 s, 2 retries) would let one slow call outlive the Lambda that made it.
"""

from __future__ import annotations

from typing import Any

from memory.config import Settings
from memory.errors import ClaudeError, ConfigurationError


def make_client(settings: Settings) -> Any:
    """An ``anthropic.Anthropic`` for the settings' key and address. Raises ``ConfigurationError`` without a key."""
    if settings.anthropic_api_key is None:
        raise ConfigurationError("ANTHROPIC_API_KEY is not set: export your Claude API key to talk to Claude")
    try:
        import anthropic
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise ConfigurationError("the anthropic package is missing: pip install anthropic") from exc
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
