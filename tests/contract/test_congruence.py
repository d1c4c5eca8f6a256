"""The store's ranking equals the reference: exact cosine in numpy, and ``memory.ranking.score``.

Each backend computes similarity and the fused score in its own query language; these tests hold every
one of them to the same numbers, so the backends agree with each other as well.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from memory import Ranking, Scope, SearchMode, SearchRequest
from memory import ranking as reference
from memory.stores.base import MemoryStore

ALICE = Scope("alice")
DAY = 86_400.0
TEXTS = [
    "I cycle to work along the river",
    "My bicycle has a broken chain",
    "I take the train when it rains",
    "My favourite food is ramen",
    "I booked a bike repair for Thursday",
    "The river flooded the cycle path last spring",
    "I am training for a marathon",
    "My car is in the garage for repairs",
    "I prefer cycling to driving",
    "Rain makes my commute slow",
    "I keep spare inner tubes in the shed",
    "My neighbour sells second-hand bikes",
]


@pytest.fixture
def entries(store: MemoryStore, make_entry) -> list:
    """Varied importance and age, so the importance and recency terms are not constant."""
    now = time.time()
    batch = [
        make_entry(text, importance=(i % 5) / 4, created_at=now - (i * 7 % 40) * DAY) for i, text in enumerate(TEXTS)
    ]
    return store.add_many(batch)


def exact_cosine(entries: list, query: np.ndarray) -> np.ndarray:
    matrix = np.stack([e.embedding for e in entries]).astype(np.float64)
    q = query.astype(np.float64)
    return matrix @ q / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(q))


@pytest.mark.parametrize("query", ["bike repair", "what do I eat", "weather and commuting"])
def test_vector_order_and_similarity_are_exact_cosine(store: MemoryStore, entries: list, embedder, query: str) -> None:
    embedding = embedder.embed([query])[0]
    request = SearchRequest(
        text=query,
        embedding=embedding,
        top_k=len(entries),
        mode=SearchMode.VECTOR,
        ranking=Ranking(importance_weight=0.0, recency_weight=0.0, min_similarity=-1.0),
        embedding_model=embedder.model_name,
    )

    hits = store.search(ALICE, request)

    cosine = exact_cosine(entries, embedding)
    expected = [entries[i].id for i in np.argsort(-cosine, kind="stable")]
    assert [h.entry.id for h in hits] == expected
    by_id = dict(zip((e.id for e in entries), cosine, strict=True))
    np.testing.assert_allclose([h.similarity for h in hits], [by_id[h.entry.id] for h in hits], atol=1e-5)
    assert [h.vector_rank for h in hits] == list(range(1, len(entries) + 1))


@pytest.mark.parametrize("weights", [(1.0, 2.0), (3.0, 0.5)], ids=["keyword-heavy", "vector-heavy"])
@pytest.mark.parametrize("query", ["bike repair", "commute in the rain", "cycling"])
def test_hybrid_scores_equal_the_reference_formula(
    store: MemoryStore, entries: list, embedder, query: str, weights: tuple[float, float]
) -> None:
    ranking = Ranking(
        rrf_k=10,
        importance_weight=0.3,
        recency_weight=0.2,
        recency_half_life_days=7.0,
        min_similarity=0.2,
        vector_weight=weights[0],
        keyword_weight=weights[1],
    )
    request = SearchRequest(
        text=query,
        embedding=embedder.embed([query])[0],
        top_k=100,
        ranking=ranking,
        embedding_model=embedder.model_name,
        now=time.time() + 3 * DAY,
    )

    hits = store.search(ALICE, request)

    assert any(h.keyword_rank for h in hits) and any(h.vector_rank and not h.keyword_rank for h in hits)
    for hit in hits:
        expected = reference.score(
            vector_rank=hit.vector_rank,
            keyword_rank=hit.keyword_rank,
            importance=hit.entry.importance,
            updated_at=hit.entry.updated_at,
            now=request.now,
            ranking=ranking,
        )
        assert hit.score == pytest.approx(expected, abs=1e-9)
        assert hit.recency == pytest.approx(reference.recency(hit.entry.updated_at, request.now, 7.0), abs=1e-9)
    # Every candidate is returned (top_k exceeds the corpus), so the ranks are complete and the order is
    # the reference order: score, then newer created_at, then id.
    cosine = dict(zip((e.id for e in entries), exact_cosine(entries, request.embedding), strict=True))
    by_meaning = sorted((i for i in cosine if cosine[i] >= 0.2), key=lambda i: -cosine[i])
    assert {h.entry.id: h.vector_rank for h in hits if h.vector_rank} == {i: r for r, i in enumerate(by_meaning, 1)}
    assert sorted(h.keyword_rank for h in hits if h.keyword_rank) == list(
        range(1, sum(1 for h in hits if h.keyword_rank) + 1)
    )
    assert [h.entry.id for h in hits] == [
        h.entry.id for h in sorted(hits, key=lambda h: (-h.score, -h.entry.created_at, h.entry.id))
    ]
