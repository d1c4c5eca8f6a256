"""The reference formulas in ``memory.ranking`` (every store is held to them by the congruence tests)
and the word helpers in ``memory.text`` that dedup and keyword search share."""

from __future__ import annotations

import pytest

from memory import Ranking
from memory import ranking as r
from memory.text import MAX_QUERY_TERMS, content_words, keyword_terms, words

DAY = r.SECONDS_PER_DAY


@pytest.mark.parametrize("k", [1, 60, 1000])
def test_relevance_is_scaled_to_one_for_first_in_both(k: int) -> None:
    assert r.relevance(1, 1, k) == pytest.approx(1.0)
    assert r.relevance(1, None, k) == r.relevance(None, 1, k) == pytest.approx(0.5)
    assert r.relevance(None, None, k) == 0.0
    assert r.relevance(1, 2, k) > r.relevance(2, 2, k) > r.relevance(2, None, k) > r.relevance(3, None, k) > 0


def test_recency_halves_at_the_half_life_and_ignores_the_future() -> None:
    assert r.recency(1000.0, 1000.0, 30.0) == 1.0
    assert r.recency(0.0, 30 * DAY, 30.0) == pytest.approx(0.5)
    assert r.recency(0.0, 90 * DAY, 30.0) == pytest.approx(0.25)
    assert r.recency(2000.0, 1000.0, 30.0) == 1.0  # clock skew: updated "in the future"


def test_score_adds_weighted_importance_and_recency() -> None:
    ranking = Ranking(rrf_k=60, importance_weight=0.1, recency_weight=0.05, recency_half_life_days=30.0)

    got = r.score(vector_rank=1, keyword_rank=None, importance=0.8, updated_at=0.0, now=30 * DAY, ranking=ranking)

    assert got == pytest.approx(0.5 + 0.1 * 0.8 + 0.05 * 0.5)


def test_importance_and_recency_do_not_outweigh_matching_both_rankings() -> None:
    ranking = Ranking()
    both = r.score(vector_rank=1, keyword_rank=1, importance=0.0, updated_at=0.0, now=1e9, ranking=ranking)
    one = r.score(vector_rank=1, keyword_rank=None, importance=1.0, updated_at=1e9, now=1e9, ranking=ranking)

    assert both > one


def test_retention_weighs_importance_over_recency() -> None:
    assert r.retention(0.9, 0.0) > r.retention(0.3, 1.0)  # important and stale outlives minor and fresh
    assert r.retention(0.5, 1.0) > r.retention(0.5, 0.2)  # equal importance: the fresher stays


def test_words_keep_joined_tokens_whole() -> None:
    assert words("Order ORD-48213 to a.b@c.io, don't/won't") == [
        "order",
        "ord-48213",
        "to",
        "a.b@c.io",
        "don't/won't",
    ]


def test_content_words_drop_stop_words() -> None:
    assert content_words("What is the name of my pet?") == {"name", "pet"}


def test_keyword_terms_are_distinct_ordered_and_capped() -> None:
    assert keyword_terms("tea and TEA or coffee") == ["tea", "coffee"]
    assert keyword_terms("who am I") == ["who", "am", "i"]  # only stop words: keep them all
    assert keyword_terms("*** ()") == []
    assert len(keyword_terms(" ".join(f"w{i}" for i in range(100)))) == MAX_QUERY_TERMS
