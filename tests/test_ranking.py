"""The reference formulas in ``memory.ranking`` (every store is held to them by the congruence tests)
and the word helpers in ``memory.text`` that dedup and keyword search share."""

from __future__ import annotations

import pytest

from memory import InvalidInputError, Ranking
from memory import ranking as r
from memory.text import MAX_QUERY_TERMS, content_words, keyword_terms, words

DAY = r.SECONDS_PER_DAY


@pytest.mark.parametrize("k", [1, 60, 1000])
def test_relevance_is_scaled_to_one_for_first_in_both(k: int) -> None:
    equal = Ranking(rrf_k=k, vector_weight=1.0, keyword_weight=1.0)
    assert r.relevance(1, 1, equal) == pytest.approx(1.0)
    assert r.relevance(1, None, equal) == r.relevance(None, 1, equal) == pytest.approx(0.5)
    assert r.relevance(None, None, equal) == 0.0
    assert r.relevance(1, 2, equal) > r.relevance(2, 2, equal) > r.relevance(2, None, equal)
    assert r.relevance(2, None, equal) > r.relevance(3, None, equal) > 0


@pytest.mark.parametrize(("vector_weight", "keyword_weight"), [(1.0, 2.0), (2.0, 1.0), (0.0, 1.0), (3.0, 0.5)])
def test_weights_share_the_relevance_and_first_in_both_stays_one(vector_weight: float, keyword_weight: float) -> None:
    ranking = Ranking(rrf_k=10, vector_weight=vector_weight, keyword_weight=keyword_weight)
    share = keyword_weight / (vector_weight + keyword_weight)

    assert r.relevance(1, 1, ranking) == pytest.approx(1.0)
    assert r.relevance(None, 1, ranking) == pytest.approx(share)
    assert r.relevance(1, None, ranking) == pytest.approx(1.0 - share)
    assert r.relevance(None, 4, ranking) == pytest.approx(share * 11 / 14)


def test_the_default_fusion_puts_a_keyword_top_hit_over_a_vector_one_and_midway_matches() -> None:
    """What LoCoMo measured (README, Benchmarks): at k = 60 with equal weights, a memory ranked 8th by both
    lists beat the keyword ranking's first; the defaults keep the keyword top hit ahead of it and of the
    vector ranking's first, while a memory first in one list and second in the other still wins."""
    old, new = Ranking(rrf_k=60, vector_weight=1.0, keyword_weight=1.0), Ranking()

    assert r.relevance(8, 8, old) > r.relevance(None, 1, old)
    assert r.relevance(None, 1, new) > r.relevance(8, 8, new)
    assert r.relevance(None, 1, new) > r.relevance(1, None, new)
    assert r.relevance(1, 2, new) > r.relevance(None, 1, new)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"vector_weight": -1.0}, "vector_weight must be a number >= 0"),
        ({"keyword_weight": float("nan")}, "keyword_weight must be a number >= 0"),
        ({"keyword_weight": "2"}, "keyword_weight must be a number >= 0"),
        ({"vector_weight": 0.0, "keyword_weight": 0}, "cannot both be 0"),
    ],
)
def test_weights_are_checked(weights: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        Ranking(**weights)


def test_whole_number_weights_become_floats() -> None:
    """SQLite divides integers as integers: 1 / 12 is 0. The weights reach SQL as floats whatever the caller gave."""
    ranking = Ranking(vector_weight=1, keyword_weight=2)
    assert isinstance(ranking.vector_weight, float) and isinstance(ranking.keyword_weight, float)


def test_recency_halves_at_the_half_life_and_ignores_the_future() -> None:
    assert r.recency(1000.0, 1000.0, 30.0) == 1.0
    assert r.recency(0.0, 30 * DAY, 30.0) == pytest.approx(0.5)
    assert r.recency(0.0, 90 * DAY, 30.0) == pytest.approx(0.25)
    assert r.recency(2000.0, 1000.0, 30.0) == 1.0  # clock skew: updated "in the future"


def test_score_adds_weighted_importance_and_recency() -> None:
    ranking = Ranking(
        rrf_k=60, importance_weight=0.1, recency_weight=0.05, recency_half_life_days=30.0, keyword_weight=1.0
    )

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
