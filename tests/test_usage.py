"""Token usage adds up and prices come from the table; an unknown model has no price, not a guess."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from memory.usage import TokenUsage, estimate_cost, price_of


def test_usage_from_an_sdk_response_tolerates_missing_cache_fields() -> None:
    usage = TokenUsage.from_response(SimpleNamespace(input_tokens=10, output_tokens=2, cache_read_input_tokens=None))
    assert usage == TokenUsage(10, 2, 0, 0)
    assert usage + TokenUsage(1, 1, 5, 7) == TokenUsage(11, 3, 5, 7)


def test_cost_counts_every_kind_of_token_at_its_rate() -> None:
    usage = TokenUsage(input_tokens=1_000_000, output_tokens=1_000_000, cache_creation_input_tokens=1_000_000,
                       cache_read_input_tokens=1_000_000)  # fmt: skip
    assert estimate_cost("claude-haiku-5-5", usage) == pytest.approx(0.10 + 0.50 + 0.125 + 0.01)
    assert estimate_cost("claude-sonnet-5-5", usage) == pytest.approx(2.0 + 10.0 + 2.5 + 0.10)


def test_dated_model_ids_take_their_family_price_and_unknown_ones_none() -> None:
    assert price_of("claude-haiku-4-5-20251001") == price_of("claude-haiku-4-5")
    assert price_of("claude-sonnet-5-5") != price_of("claude-sonnet-5")
    assert estimate_cost("some-other-model", TokenUsage(10, 10)) is None
