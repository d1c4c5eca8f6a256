"""Telemetry: what each turn and job did, as figures; never what anyone said.

One ``Telemetry`` per process (``current()``) records five kinds of event, each with a fixed set of metrics
(``METRICS``: the CloudWatch names and units; the Prometheus names are in ``memory.telemetry_prometheus``):

- ``search``: every ``Memory.search`` (a turn's recall, the API's, CLI's and MCP's searches, write-back's
  context search): ``SearchEmbedMs``, ``SearchStoreMs``, ``SearchTotalMs``.
- ``turn``: every turn that recalls memories (``Agent.prepare``; memory_mode inject or both):
  ``MemoriesInjected``, ``MemoryTokensInjected``, ``RecallEmpty``, ``RecallAgeDays`` (mean age of the
  injected memories by ``updated_at``; absent when none was), ``DegradedTurns``, and ``CacheHits`` /
  ``CacheMisses``: the core-memory cache reads since the previous turn event of the process (in Lambda,
  one request at a time: the turn's own).
- ``claude_call``: every Claude call, beside its usage log line (``memory.usage.log_call``): the tokens
  and ``ClaudeCostUsd`` (absent for a model without a price), with its ``purpose`` and ``model``.
- ``write_back``: every write-back that ran (``memory.writeback.process``): ``ExtractionOk`` (done at the
  first attempt), ``ExtractionRetried`` (done after failed attempts), ``ExtractionFailed``, and what it did
  to memories: ``MemoriesAdded``, ``MemoriesDeduplicated`` (merged into one that said the same),
  ``MemoriesSuperseded`` (archived by a correction, or retired).
- ``consolidation``: every user a consolidation run finished: ``ConsolidationUsers`` (1),
  ``ConsolidationArchived`` (merged, summarised and pruned), ``ConsolidationSummaries`` (cluster summaries
  and a rewritten profile), ``ConsolidationErrors``.

Where they go (``MEMORY_TELEMETRY``): ``emf`` prints one JSON line per event on stdout in CloudWatch's
Embedded Metric Format (namespace ``AgentMemory``, one dimension ``Service``: ``MEMORY_METRICS_SERVICE``),
which Lambda ships to CloudWatch Logs and CloudWatch turns into metrics without an API call; ``prometheus``
feeds counters and histograms that ``GET /metrics`` serves; ``auto`` is ``emf`` in Lambda, else
``prometheus``. With ``MEMORY_TELEMETRY_FILE`` every event is also appended to that file (``agent-memory
stats`` reads it). EMF is written by hand: aws-lambda-powertools' ``Metrics`` would add 8 ms to a cold start
after the app's imports (24 ms alone; this module's first line: 0.4 ms), 5.6 MB to the package, and 20 us
per event against 9, for a documented one-object format (``bench/telemetry_overhead.py``).

Nothing an event carries is text from a user: no content, message, reply, key or URL. The user is ``user``,
the first 16 hex digits of SHA-256(tenant, user): it groups one user's events, it does not hide an id that
can be guessed. Recording never raises into what it measures: a failing sink logs once and is skipped.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from memory.config import Settings
    from memory.models import Scope, SearchHit
    from memory.telemetry_file import EventFile
    from memory.telemetry_prometheus import PrometheusSink
    from memory.usage import TokenUsage

logger = logging.getLogger("memory.telemetry")

NAMESPACE = "AgentMemory"
MODES = ("emf", "prometheus", "off")
LOCAL_FILE = ".agent-memory/telemetry.jsonl"  # the CLI's default MEMORY_TELEMETRY_FILE, in the working directory
MS, COUNT, NONE = "Milliseconds", "Count", "None"
METRICS: dict[str, str] = {
    "SearchEmbedMs": MS,
    "SearchStoreMs": MS,
    "SearchTotalMs": MS,
    "MemoriesInjected": COUNT,
    "MemoryTokensInjected": COUNT,
    "RecallEmpty": COUNT,
    "RecallAgeDays": NONE,
    "DegradedTurns": COUNT,
    "CacheHits": COUNT,
    "CacheMisses": COUNT,
    "ClaudeInputTokens": COUNT,
    "ClaudeOutputTokens": COUNT,
    "ClaudeCacheReadTokens": COUNT,
    "ClaudeCacheWriteTokens": COUNT,
    "ClaudeCostUsd": NONE,
    "ExtractionOk": COUNT,
    "ExtractionRetried": COUNT,
    "ExtractionFailed": COUNT,
    "MemoriesAdded": COUNT,
    "MemoriesDeduplicated": COUNT,
    "MemoriesSuperseded": COUNT,
    "ConsolidationUsers": COUNT,
    "ConsolidationArchived": COUNT,
    "ConsolidationSummaries": COUNT,
    "ConsolidationErrors": COUNT,
}
# A write-back's applied outcomes (memory.writeback._apply) -> the metric that counts them.
APPLIED = {
    "added": "MemoriesAdded",
    "merged": "MemoriesDeduplicated",
    "superseded": "MemoriesSuperseded",
    "retired": "MemoriesSuperseded",
}
OUTCOMES = ("ok", "retried", "failed")

_request_id: str | None = None  # the Lambda invocation's (one at a time per container), set by lambda_handler


def user_hash(scope: Scope) -> str:
    """How events name a user: 16 hex digits of SHA-256 over tenant and user, never the id itself."""
    key = f"{scope.tenant_id}\x1f{scope.user_id}".encode("utf-8", "surrogatepass")
    return hashlib.sha256(key).hexdigest()[:16]


def emf_line(service: str, event: str, metrics: Mapping[str, float], properties: Mapping[str, Any]) -> str:
    """One event as a CloudWatch Embedded Metric Format document: every metric under ``Service``, the rest
    (event, purpose, user hash, request id...) searchable properties that cost nothing."""
    directive = {"Namespace": NAMESPACE, "Dimensions": [["Service"]], "Metrics": [_UNITS[name] for name in metrics]}
    document = {
        "_aws": {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": [directive]},
        "Service": service,
        "event": event,
        **properties,
        **metrics,
    }
    return json.dumps(document, separators=(",", ":"))


_UNITS = {name: {"Name": name, "Unit": unit} for name, unit in METRICS.items()}


class Telemetry:
    """The process's recorder. ``mode``: emf, prometheus or off; ``path``: also append events there."""

    def __init__(
        self,
        mode: str = "off",
        *,
        service: str = "agent-memory",
        path: str | Path | None = None,
        stream: TextIO | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"telemetry mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode, self.service = mode, service
        self.prometheus: PrometheusSink | None = None
        if mode == "prometheus":
            from memory.telemetry_prometheus import prometheus_sink

            self.prometheus = prometheus_sink()
        self.file: EventFile | None = None
        if path is not None:
            from memory.telemetry_file import EventFile

            self.file = EventFile(Path(path))
        self._stream = stream  # None: sys.stdout at each line (what Lambda ships, and what tests capture)
        self._emf = mode == "emf"
        self.active = self._emf or self.prometheus is not None or self.file is not None
        self._lock = threading.Lock()
        self._cache_reads = [0, 0]  # hits, misses since the last turn event
        self._warned = False

    def close(self) -> None:
        if self.file is not None:
            self.file.close()

    # -- events ----------------------------------------------------------------------------------------
    def search(self, scope: Scope, *, embed_ms: float, store_ms: float, total_ms: float) -> None:
        if self.active:
            metrics = {"SearchEmbedMs": round(embed_ms, 3), "SearchStoreMs": round(store_ms, 3)}
            metrics["SearchTotalMs"] = round(total_ms, 3)
            self._record("search", metrics, {"user": user_hash(scope)})

    def turn(self, scope: Scope, *, used: Sequence[SearchHit], tokens: int, degraded: bool) -> None:
        if not self.active:
            return
        now = time.time()
        with self._lock:
            (hits, misses), self._cache_reads = self._cache_reads, [0, 0]
        metrics: dict[str, float] = {
            "MemoriesInjected": len(used),
            "MemoryTokensInjected": tokens,
            "RecallEmpty": int(not used),
            "DegradedTurns": int(degraded),
            "CacheHits": hits,
            "CacheMisses": misses,
        }
        if used:
            ages = [now - (hit.entry.updated_at or hit.entry.created_at) for hit in used]
            metrics["RecallAgeDays"] = round(max(0.0, sum(ages) / len(ages)) / 86_400, 4)
        self._record("turn", metrics, {"user": user_hash(scope)})

    def claude_call(self, *, purpose: str, model: str, usage: TokenUsage, cost_usd: float | None) -> None:
        if not self.active:
            return
        metrics: dict[str, float] = {
            "ClaudeInputTokens": usage.input_tokens,
            "ClaudeOutputTokens": usage.output_tokens,
            "ClaudeCacheReadTokens": usage.cache_read_input_tokens,
            "ClaudeCacheWriteTokens": usage.cache_creation_input_tokens,
        }
        if cost_usd is not None:
            metrics["ClaudeCostUsd"] = cost_usd
        self._record("claude_call", metrics, {"purpose": purpose, "model": model})

    def write_back(
        self,
        scope: Scope,
        *,
        outcome: str,
        applied: Iterable[Mapping[str, Any]] = (),
        extractor: str | None = None,
        error_type: str | None = None,
    ) -> None:
        """``outcome``: ok, retried or failed; ``applied``: the write-back's applied operations (outcomes only)."""
        if outcome not in OUTCOMES:
            raise ValueError(f"write-back outcome must be one of {', '.join(OUTCOMES)}, got {outcome!r}")
        if not self.active:
            return
        metrics = {"ExtractionOk": 0, "ExtractionRetried": 0, "ExtractionFailed": 0}
        metrics[f"Extraction{outcome.capitalize()}"] = 1
        metrics |= {"MemoriesAdded": 0, "MemoriesDeduplicated": 0, "MemoriesSuperseded": 0}
        for item in applied:
            name = APPLIED.get(item.get("outcome", ""))
            if name is not None:
                metrics[name] += 1
        properties = {"user": user_hash(scope), "outcome": outcome, "extractor": extractor}
        if error_type is not None:
            properties["error_type"] = error_type
        self._record("write_back", metrics, properties)

    def cache_read(self, hit: bool) -> None:
        if not self.active:
            return
        with self._lock:
            self._cache_reads[0 if hit else 1] += 1
        if self.prometheus is not None:
            self.prometheus.cache_read(hit)

    def consolidation(self, scope: Scope, *, archived: int, summaries: int, errors: int) -> None:
        if self.active:
            metrics = {"ConsolidationUsers": 1, "ConsolidationArchived": archived}
            metrics |= {"ConsolidationSummaries": summaries, "ConsolidationErrors": errors}
            self._record("consolidation", metrics, {"user": user_hash(scope)})

    # -- sinks -----------------------------------------------------------------------------------------
    def _record(self, event: str, metrics: dict[str, float], properties: dict[str, Any]) -> None:
        if _request_id is not None:
            properties["request_id"] = _request_id
        try:
            if self._emf:
                stream = self._stream or sys.stdout
                stream.write(emf_line(self.service, event, metrics, properties) + "\n")
                stream.flush()
            if self.prometheus is not None:
                self.prometheus.record(event, metrics, properties)
            if self.file is not None:
                self.file.write(event, metrics, properties)
        except Exception:  # telemetry never fails the turn it measures
            if not self._warned:
                self._warned = True
                logger.warning("telemetry: recording a %s event failed; later failures are not logged", event)


# -- the process's telemetry -------------------------------------------------------------------------------
_current: Telemetry | None = None
_current_key: tuple[str, str, str | None] | None = None
_guard = threading.Lock()


def resolve_mode(setting: str) -> str:
    """``MEMORY_TELEMETRY=auto``: emf in Lambda (``AWS_LAMBDA_FUNCTION_NAME`` is set), else prometheus."""
    if setting != "auto":
        return setting
    return "emf" if os.environ.get("AWS_LAMBDA_FUNCTION_NAME") else "prometheus"


def file_of(settings: Settings) -> str | None:
    value = (settings.telemetry_file or "").strip()
    return None if value.lower() in ("", "none") else value


def configure(settings: Settings) -> Telemetry:
    """Make the process's telemetry match ``settings``; the same configuration keeps the same recorder (its
    counters and file), so calling it from every entry point is cheap."""
    global _current, _current_key
    key = (resolve_mode(settings.telemetry), settings.metrics_service, file_of(settings))
    with _guard:
        if _current is not None and _current_key == key:
            return _current
        previous, _current = _current, Telemetry(key[0], service=key[1], path=key[2])
        _current_key = key
    if previous is not None:
        previous.close()
    return _current


def current() -> Telemetry:
    """The process's telemetry; configured from the environment on first use when nothing configured it."""
    telemetry = _current
    if telemetry is not None:
        return telemetry
    from memory.config import get_settings
    from memory.errors import ConfigurationError

    try:
        return configure(get_settings())
    except ConfigurationError as exc:  # the caller meets the same error where it matters; metrics stay off
        logger.warning("telemetry is off: %s", exc)
        return install(Telemetry("off"))


def install(telemetry: Telemetry) -> Telemetry:
    """Make ``telemetry`` the process's (tests and benchmarks); returns it."""
    global _current, _current_key
    with _guard:
        previous, _current, _current_key = _current, telemetry, None
    if previous is not None and previous is not telemetry:
        previous.close()
    return telemetry


def reset() -> None:
    """Forget the process's telemetry: the next event configures it afresh."""
    global _current, _current_key
    with _guard:
        previous, _current, _current_key = _current, None, None
    if previous is not None:
        previous.close()


# -- Lambda: the request id, and JSON log lines ----------------------------------------------------------
def lambda_handler(function: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """Wrap a Lambda handler so its events and log lines carry the invocation's ``aws_request_id``, and log
    lines are JSON (once per container, unless the function's log format is JSON already)."""

    @functools.wraps(function)
    def handler(event: Any, context: Any) -> Any:
        global _request_id
        json_logs()
        _request_id = getattr(context, "aws_request_id", None)
        try:
            return function(event, context)
        finally:
            _request_id = None

    return handler


@functools.cache
def json_logs() -> bool:
    """In Lambda, give the root logger's handlers (the runtime's) ``JsonFormatter``; returns whether it did.
    With the function's log format set to JSON (``AWS_LAMBDA_LOG_FORMAT``) the runtime writes JSON itself."""
    if not os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or os.environ.get("AWS_LAMBDA_LOG_FORMAT") == "JSON":
        return False
    for handler in logging.getLogger().handlers:
        handler.setFormatter(JsonFormatter())
    return True


_RECORD_FIELDS = {*vars(logging.LogRecord("", 0, "", 0, "", None, None)), "message", "asctime", "aws_request_id"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, request_id, and the record's scalar
    ``extra`` fields (``turn_id``, ``cache_key_hash``...). The message is the logger's own text, which in this
    package never holds contents or keys (``tests/test_telemetry.py`` checks a turn's)."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line: dict[str, Any] = {
            "timestamp": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": _request_id or getattr(record, "aws_request_id", None),
        }
        for key, value in vars(record).items():
            if (
                key not in _RECORD_FIELDS
                and key not in line
                and (value is None or isinstance(value, str | int | float))
            ):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)
