"""The hybrid score, written once in Python; each store computes the same figure in its own query.

    relevance = (k + 1) * (wv / (k + vector_rank) + wk / (k + keyword_rank)) / (wv + wk)
    recency   = 1 / (1 + age_days / half_life_days)          age measured from ``updated_at``
    score     = relevance + importance_weight * importance + recency_weight * recency

A ranking a memory is missing from adds nothing. Reciprocal rank fusion needs no score calibration between
cosine and BM25, and it keeps keyword-only hits (an order number the vectors rank low still scores from its
keyword rank). The factor (k + 1) / (wv + wk) scales relevance to (0, 1]: 1.0 means first in both rankings.
The defaults, k = 10 with keyword ranks weighted twice (wk = 2, wv = 1), come from LoCoMo (README,
Benchmarks): with k = 60 and equal weights, rank 1 and rank 5 of one list differed by 0.03, so memories
midway down both lists pushed out the keyword ranking's top hits, which the weaker vector ranking had missed,
and the fused top 5 recalled less than keyword search alone (0.49 against 0.55); k = 10 and wk = 2 recall
0.57. Vector candidates below ``min_similarity`` (cosine) are not matches at all, so a question about
nothing the user said does not fill the top k with noise; keyword matches always count.
Importance and recency are small additive weights: they reorder hits of similar relevance, they do not
lift an irrelevant memory over a relevant one. Ties break on newer ``created_at``, then on id.

Stores use ``SQL``-side arithmetic for speed; ``score`` here is the reference that tests hold them to.
"""

from __future__ import annotations

from memory.models import Ranking

SECONDS_PER_DAY = 86_400.0


def relevance(vector_rank: int | None, keyword_rank: int | None, ranking: Ranking) -> float:
    k, weights = ranking.rrf_k, ((vector_rank, ranking.vector_weight), (keyword_rank, ranking.keyword_weight))
    total = sum(weight / (k + rank) for rank, weight in weights if rank is not None)
    return total * (k + 1) / (ranking.vector_weight + ranking.keyword_weight)


def recency(updated_at: float, now: float, half_life_days: float) -> float:
    age_days = max(0.0, now - updated_at) / SECONDS_PER_DAY
    return 1.0 / (1.0 + age_days / half_life_days)


def score(
    *,
    vector_rank: int | None,
    keyword_rank: int | None,
    importance: float,
    updated_at: float,
    now: float,
    ranking: Ranking,
) -> float:
    return (
        relevance(vector_rank, keyword_rank, ranking)
        + ranking.importance_weight * importance
        + ranking.recency_weight * recency(updated_at, now, ranking.recency_half_life_days)
    )


RETENTION_IMPORTANCE_SHARE = 0.7


def retention(importance: float, recency_value: float) -> float:
    """What ``prune`` keeps: mostly importance, partly recency, so a new minor fact outlives a stale one
    of equal importance but not an important one."""
    return RETENTION_IMPORTANCE_SHARE * importance + (1.0 - RETENTION_IMPORTANCE_SHARE) * recency_value
