"""What `agent-memory demo` stores and asks: a few memories of one user, then questions recalled by meaning."""

from __future__ import annotations

import time
from collections.abc import Callable

from memory.service import Memory

DEMO_MEMORIES: tuple[tuple[str, str, float], ...] = (
    ("I prefer metric units: kilometres, kilograms, Celsius.", "preference", 0.8),
    ("I'm allergic to peanuts.", "fact", 0.9),
    ("My sister Ana lives in Lisbon.", "fact", 0.5),
    ("Order ORD-48213 arrived damaged; I asked for a refund.", "task", 0.7),
    ("We decided to use Postgres for the billing service.", "decision", 0.6),
    ("I prefer metric units: kilometres, kilograms, Celsius", "preference", 0.8),  # a repeat: merged
)
DEMO_QUESTIONS = (
    "How far is a marathon? Answer in the units I like.",
    "What food should I avoid?",
    "Who could I visit in Portugal?",
    "Any news on ORD-48213?",
)


def show_demo(memory: Memory, user_id: str, tenant_id: str, echo: Callable[[str], object]) -> None:
    """Remember the demo memories, then recall each question, printing why every hit was found."""
    for content, memory_type, importance in DEMO_MEMORIES:
        result = memory.remember(user_id, content, memory_type=memory_type, importance=importance, tenant_id=tenant_id)
        echo(f"remember  [{memory_type}] {content}\n          -> {result.action.value}")
    for question in DEMO_QUESTIONS:
        started = time.perf_counter()
        hits = memory.search(user_id, question, top_k=3, tenant_id=tenant_id)
        elapsed = (time.perf_counter() - started) * 1000
        echo(f"\nrecall    {question}   ({elapsed:.0f} ms)")
        for rank, hit in enumerate(hits, start=1):
            echo(f"  {rank}. {hit.entry.content}\n     score {hit.score:.3f}: {'; '.join(hit.reasons)}")
        if not hits:
            echo("  (nothing relevant)")
