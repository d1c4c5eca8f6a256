"""Grouping memories by embedding for the consolidation job: near-duplicate pairs and leader clusters.

Both take the entries in the caller's order and are deterministic for it, so a run that is repeated (or
resumed after a crash) groups the same memories the same way.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from memory.models import MemoryEntry

BLOCK = 1000  # rows of the similarity matrix computed at a time


def pairs_at_least(entries: list[MemoryEntry], threshold: float) -> Iterator[tuple[MemoryEntry, MemoryEntry]]:
    """(earlier in ``entries``, later) pairs with cosine >= ``threshold``, in order; blockwise, so 10,000
    memories need 10,000 x 1,000 floats at a time, not 10,000 squared."""
    if len(entries) < 2:
        return
    vectors = np.stack([e.embedding for e in entries]).astype(np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    for start in range(0, len(entries), BLOCK):
        block = vectors[start : start + BLOCK] @ vectors.T
        for offset, row in enumerate(block):
            first = start + offset
            for second in np.flatnonzero(row[first + 1 :] >= threshold) + first + 1:
                yield entries[first], entries[int(second)]


def clusters(entries: list[MemoryEntry], threshold: float, max_size: int) -> list[list[MemoryEntry]]:
    """Leader clustering: each memory not yet placed starts a cluster of the next ones within ``threshold``
    of it (cosine), up to ``max_size``. Deterministic for a given order, which the caller fixes."""
    if not entries:
        return []
    vectors = np.stack([e.embedding for e in entries]).astype(np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    placed = np.zeros(len(entries), dtype=bool)
    clusters = []
    for seed in range(len(entries)):
        if placed[seed]:
            continue
        near = np.flatnonzero((vectors @ vectors[seed] >= threshold) & ~placed)[:max_size]
        placed[near] = True
        clusters.append([entries[i] for i in near])
    return clusters
