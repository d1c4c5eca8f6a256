"""Retrieval is hybrid for real: meaning finds a paraphrase with no shared word, keywords find a rare
token the vectors rank low, and the fused ranking gets both right.

The corpus was tuned against the real all-MiniLM-L6-v2, with margin. For "ORD-48213" the model ranks
the target 7th by cosine (0.29) behind six other order memories (0.40-0.49), while BM25 matches only
the target. Each paraphrase target is the vector top hit by a cosine margin of at least 0.2.
"""

from __future__ import annotations

import pytest

from memory import Memory, RememberAction
from memory.text import content_words

ORDER = "My sister's wedding gift, two hand-painted ceramic vases, is parcel ORD-48213"
CORPUS = [
    "I am allergic to peanuts",
    "My daughter's birthday is on March 3rd",
    "I prefer metric units in recipes",
    "Order ORD-51907 was refunded last week",
    "Order ORD-33150 is waiting at the pickup point",
    "Order ORD-77402 shipped from the Hamburg warehouse",
    "Order ORD-20968 was cancelled by the seller",
    "Order ORD-61544 needs a signature on delivery",
    "Order ORD-90317 contains the replacement charger",
    ORDER,
    "My package from the online shop arrived damaged",
    "The delivery of my parcel was late again",
    "My dentist is Dr. Okonkwo-Haralds on Elm Street",
    "My flight to Lisbon leaves on Friday",
    "I am learning to play the violin",
    "My landlord raised the rent by ten percent",
    "I keep my passport in the top drawer",
    "I usually wake up at six",
    "My cat is called Biscuit",
    "I don't eat meat",
    "My favourite football team is Arsenal",
    "I work as a nurse on night shifts",
]
PARAPHRASES = [
    ("what nuts should I avoid", "I am allergic to peanuts"),
    ("when does my plane depart", "My flight to Lisbon leaves on Friday"),
    ("what is the name of my pet", "My cat is called Biscuit"),
]


@pytest.fixture
def corpus(mem: Memory) -> Memory:
    for text in CORPUS:
        assert mem.remember("alice", text).action is RememberAction.ADDED, text
    return mem


def ranked(mem: Memory, query: str, mode: str) -> list[str]:
    return [h.entry.content for h in mem.search("alice", query, mode=mode, top_k=len(CORPUS))]


@pytest.mark.parametrize(("query", "target"), PARAPHRASES, ids=[q for q, _ in PARAPHRASES])
def test_paraphrase_without_a_shared_word_is_found_by_meaning(corpus: Memory, query: str, target: str) -> None:
    assert content_words(query) & content_words(target) == set()

    assert target in ranked(corpus, query, "hybrid")[:3]
    assert target in ranked(corpus, query, "vector")[:3]
    assert target not in ranked(corpus, query, "keyword")


def test_rare_token_is_found_by_keyword_where_vectors_rank_it_low(corpus: Memory) -> None:
    by_vector = ranked(corpus, "ORD-48213", "vector")

    assert ORDER not in by_vector[:3]
    assert ranked(corpus, "ORD-48213", "keyword") == [ORDER]  # the other order numbers do not match
    assert ranked(corpus, "ORD-48213", "hybrid")[0] == ORDER
    top = corpus.search("alice", "ORD-48213")[0]
    assert top.keyword_rank == 1
    assert "keywords #1" in top.reasons
