"""Token usage and cost of Claude calls, and the one structured log line each call writes.

Every Claude call (a chat turn, an extraction) logs one JSON line on the ``memory.usage`` logger::

    {"event": "claude_call", "purpose": "chat", "model": "claude-sonnet-5-5", "turn_id": "...",
     "input_tokens": 812, "output_tokens": 95, "cache_creation_input_tokens": 0,
     "cache_read_input_tokens": 640, "cost_usd": 0.0026, "latency_ms": 1234.5, "request_id": "req_..."}

so cost per turn can be summed from logs (CloudWatch Logs Insights, ``jq``) without a metrics stack. The same
figures go to ``memory.telemetry`` (an EMF line or Prometheus counters), with the purpose but no turn id.

Prices are USD per million tokens from Anthropic's pricing page (platform.claude.com/docs/en/about-claude/
pricing, read 2026-11-25; 5-minute cache writes, prompts up to 100k tokens). A model not in the table
gets ``cost_usd: null`` rather than a guess.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from typing import Any

from memory import telemetry

logger = logging.getLogger("memory.usage")


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float
    cache_write: float
    cache_read: float


PRICES: dict[str, Price] = {
    "claude-opus-5-5": Price(4.00, 20.00, 5.00, 0.20),
    "claude-sonnet-5-5": Price(2.00, 10.00, 2.50, 0.10),
    "claude-haiku-5-5": Price(0.10, 0.50, 0.125, 0.01),
    "claude-opus-5": Price(5.00, 25.00, 6.25, 0.50),
    "claude-sonnet-5": Price(2.00, 10.00, 2.50, 0.20),
    "claude-opus-4-8": Price(5.00, 25.00, 6.25, 0.50),
    "claude-opus-4-7": Price(5.00, 25.00, 6.25, 0.50),
    "claude-opus-4-6": Price(5.00, 25.00, 6.25, 0.50),
    "claude-opus-4-5": Price(5.00, 25.00, 6.25, 0.50),
    "claude-sonnet-4-6": Price(3.00, 15.00, 3.75, 0.30),
    "claude-sonnet-4-5": Price(3.00, 15.00, 3.75, 0.30),
    "claude-haiku-4-5": Price(1.00, 5.00, 1.25, 0.10),
}


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Tokens of one call (or, added up, of several). ``input_tokens`` excludes cached tokens, as the API counts."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    @classmethod
    def from_response(cls, usage: Any) -> TokenUsage:
        """From the SDK's ``Message.usage`` (cache fields may be absent or None)."""
        return cls(
            input_tokens=getattr(usage, "input_tokens", 0) or 0,
            output_tokens=getattr(usage, "output_tokens", 0) or 0,
            cache_creation_input_tokens=getattr(usage, "cache_creation_input_tokens", 0) or 0,
            cache_read_input_tokens=getattr(usage, "cache_read_input_tokens", 0) or 0,
        )

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(*(a + b for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True)))

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (
            self.input_tokens,
            self.output_tokens,
            self.cache_creation_input_tokens,
            self.cache_read_input_tokens,
        )

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def price_of(model: str) -> Price | None:
    """The model's price; dated ids (``claude-haiku-4-5-20251001``) take their family's."""
    if model in PRICES:
        return PRICES[model]
    family = max((name for name in PRICES if model.startswith(name + "-")), key=len, default=None)
    return PRICES[family] if family else None


def estimate_cost(model: str, usage: TokenUsage) -> float | None:
    """USD for ``usage`` on ``model``; ``None`` when the model's price is unknown."""
    price = price_of(model)
    if price is None:
        return None
    total = (
        usage.input_tokens * price.input
        + usage.output_tokens * price.output
        + usage.cache_creation_input_tokens * price.cache_write
        + usage.cache_read_input_tokens * price.cache_read
    )
    return round(total / 1_000_000, 8)


def log_call(
    *,
    purpose: str,
    model: str,
    usage: TokenUsage,
    turn_id: str,
    latency_ms: float,
    request_id: str | None,
    extra: dict[str, Any] | None = None,
) -> float | None:
    """Write the call's one structured line (plus ``extra`` fields) and its telemetry event; returns its
    estimated cost."""
    cost = estimate_cost(model, usage)
    line = {
        "event": "claude_call",
        "purpose": purpose,
        "model": model,
        "turn_id": turn_id,
        **usage.as_dict(),
        "cost_usd": cost,
        "latency_ms": round(latency_ms, 1),
        "request_id": request_id,
        **(extra or {}),
    }
    logger.info(json.dumps(line, separators=(",", ":")))
    telemetry.current().claude_call(purpose=purpose, model=model, usage=usage, cost_usd=cost)
    return cost
