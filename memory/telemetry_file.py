"""The local telemetry file (``MEMORY_TELEMETRY_FILE``): events as JSON lines, and the figures of a window.

Local runs of the CLI (``serve``, ``chat``, ``demo``, ``consolidate``, ``recall``...) append one line per
event, the same fields as the EMF line without its ``_aws`` block, plus ``ts`` (UNIX seconds)::

    {"ts":1795600000.123,"event":"search","user":"9f86d081884c7d65","SearchEmbedMs":4.1,...}

Each line is one ``write`` to a file opened ``O_APPEND``, so processes appending at once (a server and a
chat) do not interleave. Bounded: past ``FILE_MAX_BYTES`` the file becomes ``<name>.1`` (replacing the
one before), so the two never hold more than twice that; ``agent-memory stats`` reads both.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from memory.telemetry import METRICS

FILE_MAX_BYTES = 4 * 2**20  # about 3,000 turns of events; the previous 4 MiB stay in <name>.1


def rotated(path: Path) -> Path:
    return path.with_name(path.name + ".1")


class EventFile:
    """Appends events to ``path`` (its folder is made on the first event), rotating at ``max_bytes``."""

    def __init__(self, path: Path, *, max_bytes: int = FILE_MAX_BYTES) -> None:
        self.path, self.max_bytes = path, max_bytes
        self._fd: int | None = None
        self._lock = threading.Lock()

    def write(self, event: str, metrics: Mapping[str, float], properties: Mapping[str, Any]) -> None:
        line = {"ts": round(time.time(), 3), "event": event, **properties, **metrics}
        data = (json.dumps(line, separators=(",", ":")) + "\n").encode()
        with self._lock:
            if self._fd is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            os.write(self._fd, data)
            if os.fstat(self._fd).st_size >= self.max_bytes:
                self._rotate(self._fd)

    def _rotate(self, fd: int) -> None:
        """Move the full file aside, unless another process did already (then ours is ``.1`` by now)."""
        try:
            if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                os.replace(self.path, rotated(self.path))
        except FileNotFoundError:
            pass
        os.close(fd)
        self._fd = None

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def read_events(path: Path, since: float) -> Iterator[dict[str, Any]]:
    """The events at or after ``since`` (UNIX seconds) in ``path`` and its rotated file; bad lines are skipped."""
    for name in (rotated(path), path):
        try:
            lines = name.read_bytes().splitlines()
        except FileNotFoundError:
            continue
        for raw in lines:
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            if isinstance(event, dict) and isinstance(event.get("ts"), int | float) and event["ts"] >= since:
                yield event


def summarise(events: Iterator[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per metric (Claude's per purpose, as ``ClaudeInputTokens[chat]``), in ``METRICS`` order: how
    many events gave it, their sum (not for milliseconds and ages), mean, p50, p95 and max."""
    values: dict[str, list[float]] = {}
    for event in events:
        purpose = event.get("purpose") if event.get("event") == "claude_call" else None
        for name in METRICS:
            value = event.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                values.setdefault(f"{name}[{purpose}]" if purpose else name, []).append(float(value))
    rows = []
    for key in sorted(values, key=lambda key: (list(METRICS).index(key.split("[")[0]), key)):
        numbers = sorted(values[key])
        additive = METRICS[key.split("[")[0]] != "Milliseconds" and not key.startswith("RecallAgeDays")
        rows.append(
            {
                "metric": key,
                "events": len(numbers),
                "sum": round(sum(numbers), 6) if additive else None,
                "mean": round(sum(numbers) / len(numbers), 6),
                "p50": _quantile(numbers, 0.5),
                "p95": _quantile(numbers, 0.95),
                "max": numbers[-1],
            }
        )
    return rows


def _quantile(ordered: list[float], q: float) -> float:
    """The nearest-rank quantile of sorted values."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]
