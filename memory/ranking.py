"""The hybrid score, written once in Python; each store computes the same figure in its own query.

    relevance = (k + 1) / 2 * sum over the vector and keyword rankings of 1 / (k + rank)
    recency   = 1 / (1 + age_days / half_life_days)          age measured from ``updated_at``
    score     = relevance + importance_weight * importance + recency_weight * recency

Reciprocal rank fusion needs no score calibration between cosine and BM25, and it keeps keyword-only
hits (an order number the vectors rank low still scores 1/(k+1) from its keyword rank). The factor
(k + 1) / 2 scales relevance to (0, 1]: 1.0 means first in both rankings, 0.5 first in one only.
Vector candidates below ``min_similarity`` (cosine) are not matches at all, so a question about
nothing the user said does not fill the top k with noise; keyword matches always count.
Importance and recency are small additive weights: they reorder hits of similar relevance, they do not
lift an irrelevant memory over a relevant one. Ties break on newer ``created_at``, then on id.

Stores use ``SQL``-side arithmetic for speed; ``score`` here is the reference that tests hold them to.
"""

from __future__ import annotations

from memory.models import Ranking

SECONDS_PER_DAY = 86_400.0


def relevance(vector_rank: int | None, keyword_rank: int | None, rrf_k: int) -> float:
    total = sum(1.0 / (rrf_k + rank) for rank in (vector_rank, keyword_rank) if rank is not None)
    return total * (rrf_k + 1) / 2.0


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
        relevance(vector_rank, keyword_rank, ranking.rrf_k)
        + ranking.importance_weight * importance
        + ranking.recency_weight * recency(updated_at, now, ranking.recency_half_life_days)
    )


RETENTION_IMPORTANCE_SHARE = 0.7


def retention(importance: float, recency_value: float) -> float:
    """What ``prune`` keeps: mostly importance, partly recency, so a new minor fact outlives a stale one
    of equal importance but not an important one."""
    return RETENTION_IMPORTANCE_SHARE * importance + (1.0 - RETENTION_IMPORTANCE_SHARE) * recency_value
