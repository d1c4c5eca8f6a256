"""The Prometheus side of ``memory.telemetry``: the same figures as counters and histograms, for ``GET /metrics``.

Each process has its own registry (not prometheus-client's global one), holding only these:

| Prometheus (all prefixed ``agent_memory_``) | from the EMF metrics |
|---|---|
| ``search_seconds{stage="embed"|"store"|"total"}`` histogram | SearchEmbedMs, SearchStoreMs, SearchTotalMs |
| ``turns_total``, ``degraded_turns_total``, ``recall_empty_turns_total`` | one per turn; DegradedTurns; RecallEmpty |
| ``memories_injected_total``, ``memory_tokens_injected_total`` | MemoriesInjected, MemoryTokensInjected |
| ``recall_age_days`` histogram | RecallAgeDays |
| ``cache_reads_total{outcome="hit"|"miss"}`` | CacheHits, CacheMisses |
| ``claude_calls_total{purpose}``, ``claude_tokens_total{purpose, kind}`` | one per call; ClaudeInputTokens... |
| ``claude_cost_usd_total{purpose}`` | ClaudeCostUsd |
| ``extractions_total{outcome="ok"|"retried"|"failed"}`` | ExtractionOk, ExtractionRetried, ExtractionFailed |
| ``writeback_memories_total{outcome="added"|"deduplicated"|"superseded"}`` | MemoriesAdded, ... |
| ``consolidation_users_total``, ``_archived_total``, ``_summaries_total``, ``_errors_total`` | Consolidation* |

``kind`` is input, output, cache_read or cache_write. Labels take only values the code sets (purposes,
outcomes, stages): a user never becomes a label.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger("memory.telemetry")

PREFIX = "agent_memory"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
AGE_BUCKETS = (1 / 24, 1.0, 7.0, 30.0, 90.0, 365.0, 1825.0)
STAGES = {"SearchEmbedMs": "embed", "SearchStoreMs": "store", "SearchTotalMs": "total"}
TOKEN_KINDS = {
    "ClaudeInputTokens": "input",
    "ClaudeOutputTokens": "output",
    "ClaudeCacheReadTokens": "cache_read",
    "ClaudeCacheWriteTokens": "cache_write",
}
MEMORY_OUTCOMES = {"MemoriesAdded": "added", "MemoriesDeduplicated": "deduplicated", "MemoriesSuperseded": "superseded"}
CONSOLIDATION = {
    "ConsolidationUsers": "consolidation_users",
    "ConsolidationArchived": "consolidation_archived",
    "ConsolidationSummaries": "consolidation_summaries",
    "ConsolidationErrors": "consolidation_errors",
}


def prometheus_sink() -> PrometheusSink | None:
    """A sink with a registry of its own; None (and one log line) without prometheus-client."""
    try:
        return PrometheusSink()
    except ImportError:
        logger.info(
            "telemetry: prometheus-client is not installed, so no counters: pip install 'agent-memory[metrics]'"
        )
        return None


class PrometheusSink:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()

        def counter(name: str, documentation: str, labels: tuple[str, ...] = ()) -> Any:
            return Counter(name, documentation, labels, namespace=PREFIX, registry=self.registry)

        self.search = Histogram(
            "search_seconds",
            "Memory searches: embedding the query, the store's search, and both.",
            ["stage"],
            namespace=PREFIX,
            registry=self.registry,
            buckets=LATENCY_BUCKETS,
        )
        self.turns = counter("turns", "Turns that recalled memories.")
        self.degraded = counter("degraded_turns", "Turns answered from cached core memories alone (store down).")
        self.recall_empty = counter("recall_empty_turns", "Turns that injected no memory.")
        self.injected = counter("memories_injected", "Memories injected into turns' prompts.")
        self.injected_tokens = counter("memory_tokens_injected", "Estimated tokens of the injected memory blocks.")
        self.recall_age = Histogram(
            "recall_age_days",
            "Mean age (since last update) of each turn's injected memories, in days.",
            namespace=PREFIX,
            registry=self.registry,
            buckets=AGE_BUCKETS,
        )
        self.cache_reads = counter("cache_reads", "Reads of the core-memory cache.", ("outcome",))
        self.claude_calls = counter("claude_calls", "Claude calls.", ("purpose",))
        self.claude_tokens = counter("claude_tokens", "Tokens of Claude calls.", ("purpose", "kind"))
        self.claude_cost = counter(
            "claude_cost_usd", "Estimated USD of Claude calls (models with a price).", ("purpose",)
        )
        self.extractions = counter("extractions", "Write-backs by outcome: ok, retried, failed.", ("outcome",))
        self.memories = counter("writeback_memories", "What write-backs did to memories.", ("outcome",))
        self.consolidation = {
            name: counter(metric, f"Consolidation: {metric.removeprefix('consolidation_')}.")
            for name, metric in CONSOLIDATION.items()
        }

    def cache_read(self, hit: bool) -> None:
        self.cache_reads.labels("hit" if hit else "miss").inc()

    def record(self, event: str, metrics: Mapping[str, float], properties: Mapping[str, Any]) -> None:
        if event == "search":
            for name, stage in STAGES.items():
                self.search.labels(stage).observe(metrics[name] / 1000)
        elif event == "turn":  # cache reads were counted as they happened (cache_read)
            self.turns.inc()
            self.degraded.inc(metrics["DegradedTurns"])
            self.recall_empty.inc(metrics["RecallEmpty"])
            self.injected.inc(metrics["MemoriesInjected"])
            self.injected_tokens.inc(metrics["MemoryTokensInjected"])
            if "RecallAgeDays" in metrics:
                self.recall_age.observe(metrics["RecallAgeDays"])
        elif event == "claude_call":
            purpose = properties["purpose"]
            self.claude_calls.labels(purpose).inc()
            for name, kind in TOKEN_KINDS.items():
                self.claude_tokens.labels(purpose, kind).inc(metrics[name])
            if "ClaudeCostUsd" in metrics:
                self.claude_cost.labels(purpose).inc(metrics["ClaudeCostUsd"])
        elif event == "write_back":
            self.extractions.labels(properties["outcome"]).inc()
            for name, outcome in MEMORY_OUTCOMES.items():
                self.memories.labels(outcome).inc(metrics[name])
        elif event == "consolidation":
            for name, counter in self.consolidation.items():
                counter.inc(metrics[name])

    def exposition(self) -> tuple[bytes, str]:
        """The registry in the Prometheus text format, and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
