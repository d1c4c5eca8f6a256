"""What telemetry costs: its cold start in Lambda against aws-lambda-powertools' Metrics, and its time per turn.

1. **Cold start** (``--runs`` fresh processes each): the import and the first metric line of this package's
   hand-written EMF (``memory.telemetry``) and of powertools' ``Metrics`` (``add_metric`` + ``flush_metrics``),
   in a bare interpreter and after the API handler's own imports (FastAPI, Mangum, the app: what a Lambda
   container has loaded when the first metric is written), with stdout sent to /dev/null.
2. **Per event**, warm: one search event (three metrics and a few properties) as an EMF line, by hand and by
   powertools (a ``Metrics`` flushed per event: the per-event properties need a line each).
3. **Per turn**: the telemetry calls of one local turn with inline write-back and Claude extraction (a search,
   a cache read, the turn, the chat call, the extraction's context search and call, the write-back: 7 calls,
   with 5 injected memories), timed directly over ``--turns`` turns in each mode. A Lambda turn makes 4 of them
   in the api function and 3 in the writeback function.

    .venv/bin/python bench/telemetry_overhead.py [--runs 15] [--turns 5000] [--json]

powertools is not a dependency: ``pip install aws-lambda-powertools`` to compare (else its rows are skipped).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "telemetry_overhead.json"
sys.path.insert(0, str(ROOT))

APP = "import memory.api, mangum\n"
# memory/telemetry.py alone (loaded from its file: ``import memory.telemetry`` would import the package's
# __init__, the whole library, which the app has loaded anyway); it imports only the standard library.
HAND = """
import importlib.util, sys, time
from types import SimpleNamespace
started = time.perf_counter()
spec = importlib.util.spec_from_file_location("telemetry", "memory/telemetry.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
recorder = module.Telemetry("emf", service="agent-memory")
recorder.search(SimpleNamespace(tenant_id="t", user_id="u1"), embed_ms=3.2, store_ms=8.1, total_ms=11.3)
print((time.perf_counter() - started) * 1000, file=sys.stderr)
"""
FIRST_LINE = """
import sys, time
from memory import Scope, telemetry
started = time.perf_counter()
telemetry.Telemetry("emf", service="agent-memory").search(Scope("u1"), embed_ms=3.2, store_ms=8.1, total_ms=11.3)
print((time.perf_counter() - started) * 1000, file=sys.stderr)
"""
POWERTOOLS = """
import sys, time
started = time.perf_counter()
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
metrics = Metrics(namespace="AgentMemory", service="agent-memory")
for name, value in (("SearchEmbedMs", 3.2), ("SearchStoreMs", 8.1), ("SearchTotalMs", 11.3)):
    metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=value)
metrics.add_metadata(key="user", value="9f86d081884c7d65")
metrics.flush_metrics()
print((time.perf_counter() - started) * 1000, file=sys.stderr)
"""


def fresh(code: str, runs: int) -> dict[str, float]:
    """p50 and max milliseconds of ``code``'s own timing (printed on stderr), each run a new interpreter."""
    # Byte code as in the Lambda package (which ships it compiled): written by a first run, then read.
    environment = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
    samples = []
    with open(os.devnull, "w") as null:
        for _ in range(runs + 1):
            done = subprocess.run(
                [sys.executable, "-c", code],
                cwd=ROOT,
                env=environment,
                stdout=null,
                stderr=subprocess.PIPE,
                text=True,
                check=True,
            )
            samples.append(float(done.stderr.strip().splitlines()[-1]))
    samples = samples[1:]
    return {"p50": round(statistics.median(samples), 2), "max": round(max(samples), 2)}


def per_event(count: int) -> dict[str, float]:
    """Microseconds per search event written as an EMF line to /dev/null, by hand and by powertools."""
    from memory.models import Scope
    from memory.telemetry import Telemetry

    result = {}
    with open(os.devnull, "w") as null:
        recorder, scope = Telemetry("emf", stream=null), Scope("u1")
        started = time.perf_counter()
        for _ in range(count):
            recorder.search(scope, embed_ms=3.2, store_ms=8.1, total_ms=11.3)
        result["hand-written EMF"] = (time.perf_counter() - started) / count * 1e6
        if importlib.util.find_spec("aws_lambda_powertools"):
            from contextlib import redirect_stdout

            from aws_lambda_powertools import Metrics
            from aws_lambda_powertools.metrics import MetricUnit

            metrics = Metrics(namespace="AgentMemory", service="agent-memory")
            with redirect_stdout(null):
                started = time.perf_counter()
                for _ in range(count):
                    for name, value in (("SearchEmbedMs", 3.2), ("SearchStoreMs", 8.1), ("SearchTotalMs", 11.3)):
                        metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=value)
                    metrics.add_metadata(key="user", value="9f86d081884c7d65")
                    metrics.flush_metrics()
                result["powertools Metrics"] = (time.perf_counter() - started) / count * 1e6
    return {name: round(value, 1) for name, value in result.items()}


def per_turn(turns: int, folder: Path) -> dict[str, dict[str, float]]:
    """Microseconds of one turn's telemetry calls, per mode: mean, p50, p95."""
    from memory.models import MemoryEntry, Scope, SearchHit
    from memory.telemetry import Telemetry
    from memory.usage import TokenUsage

    scope = Scope("user-42", "acme")
    hits = [SearchHit(MemoryEntry("user-42", f"memory {n}", tenant_id="acme"), score=0.5) for n in range(5)]
    chat, extraction = TokenUsage(900, 12, 128, 640), TokenUsage(300, 40, 256, 0)
    applied = [{"outcome": "added"}, {"outcome": "merged"}, {"outcome": "superseded"}]
    results = {}
    with open(os.devnull, "w") as null:
        modes = {
            "off": lambda: Telemetry("off"),
            "emf (Lambda)": lambda: Telemetry("emf", stream=null),
            "prometheus": lambda: Telemetry("prometheus"),
            "prometheus + file (local CLI runs)": lambda: Telemetry("prometheus", path=folder / "events.jsonl"),
        }
        for label, make in modes.items():
            recorder, samples = make(), []
            for _ in range(turns):
                started = time.perf_counter()
                recorder.search(scope, embed_ms=3.2, store_ms=8.1, total_ms=11.3)
                recorder.cache_read(True)
                recorder.turn(scope, used=hits, tokens=120, degraded=False)
                recorder.claude_call(purpose="chat", model="claude-sonnet-5-5", usage=chat, cost_usd=0.0021)
                recorder.search(scope, embed_ms=3.0, store_ms=7.9, total_ms=10.9)
                recorder.claude_call(purpose="extraction", model="claude-haiku-5-5", usage=extraction, cost_usd=0.0001)
                recorder.write_back(scope, outcome="ok", applied=applied, extractor="claude")
                samples.append((time.perf_counter() - started) * 1e6)
            recorder.close()
            samples.sort()
            results[label] = {
                "mean": round(statistics.fmean(samples), 1),
                "p50": round(samples[len(samples) // 2], 1),
                "p95": round(samples[int(len(samples) * 0.95)], 1),
            }
    return results


def folder_size(module: str) -> float | None:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return None
    root = Path(spec.origin).parent
    return round(sum(path.stat().st_size for path in root.rglob("*") if path.is_file()) / 2**20, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--turns", type=int, default=5000)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    powertools = importlib.util.find_spec("aws_lambda_powertools") is not None
    cold = {"hand-written EMF": fresh(HAND, args.runs), "hand-written EMF, after the app": fresh(APP + HAND, args.runs)}
    # in the handler the app has imported memory.telemetry already: its first line is all that is left
    cold["hand-written EMF, in the app"] = fresh(APP + FIRST_LINE, args.runs)
    if powertools:
        cold["powertools Metrics"] = fresh(POWERTOOLS, args.runs)
        cold["powertools Metrics, after the app"] = fresh(APP + POWERTOOLS, args.runs)
    with tempfile.TemporaryDirectory(prefix="telemetry-bench-") as scratch:
        turn = per_turn(args.turns, Path(scratch))
    result = {
        "cold_start_ms": cold,
        "per_event_us": per_event(20_000),
        "per_turn_us": turn,
        "powertools_mb": folder_size("aws_lambda_powertools"),
        "runs": args.runs,
        "turns": args.turns,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"telemetry overhead (python {result['python']}, {result['machine']})")
    print(f"\ncold start: import + first metric line, {args.runs} fresh processes (ms)")
    for label, figures in cold.items():
        print(f"  {label:36} p50 {figures['p50']:7.2f}   max {figures['max']:7.2f}")
    if not powertools:
        print("  (pip install aws-lambda-powertools to compare with its Metrics)")
    else:
        print(f"  aws_lambda_powertools on disk: {result['powertools_mb']} MB")
    print("\none search event as an EMF line, warm (microseconds)")
    for label, value in result["per_event_us"].items():
        print(f"  {label:36} {value:7.1f}")
    print(f"\nthe 7 telemetry calls of one local turn, {args.turns} turns (microseconds)")
    for label, figures in turn.items():
        print(f"  {label:36} mean {figures['mean']:6.1f}   p50 {figures['p50']:6.1f}   p95 {figures['p95']:6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
