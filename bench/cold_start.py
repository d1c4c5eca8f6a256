"""Cold start of the Lambda API handler: importing ``handlers.api``, then its first invocation (``GET /healthz``).

Each run is a fresh Python process, as a new Lambda container is: it times ``import handlers.api`` (FastAPI,
Mangum and the app, built by ``create_app``: what Lambda's init phase does) and then the handler answering an
API Gateway HTTP API (payload 2.0) ``/healthz`` event (the first request through Mangum and FastAPI). The
store, the model and Claude's client are not loaded by either: they wait for a request that needs them.

- default: this checkout with this virtualenv;
- ``--zip build/agent-memory.zip`` (`make package` builds it): the Lambda package unzipped, run by a bare
  interpreter (``-I -S``: no virtualenv, no site-packages), as Lambda runs /var/task.

The page cache is warm after the first run, so the figures leave out Lambda's code download and disk; they
are the CPU cost of the import on this machine (Lambda gives one full vCPU at 1,769 MB).

    .venv/bin/python bench/cold_start.py [--runs 15] [--zip build/agent-memory.zip] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "cold_start.json"

# Run in the fresh process: path first (the zip's folder, when given), then the two timings, as JSON.
PROBE = """
import json, sys, time
if len(sys.argv) > 1:
    sys.path[:0] = [sys.argv[1]]
started = time.perf_counter()
import handlers.api
imported = time.perf_counter()
event = {"version": "2.0", "routeKey": "$default", "rawPath": "/healthz", "rawQueryString": "",
         "headers": {"host": "api.example.com"}, "isBase64Encoded": False,
         "requestContext": {"http": {"method": "GET", "path": "/healthz", "protocol": "HTTP/1.1",
                                     "sourceIp": "127.0.0.1"}, "stage": "$default", "requestId": "r",
                            "routeKey": "$default"}}
response = handlers.api.handler(event, None)
answered = time.perf_counter()
assert response["statusCode"] == 200, response
heavy = [m for m in ("torch", "sentence_transformers", "anthropic", "psycopg", "boto3") if m in sys.modules]
print(json.dumps({"import_ms": (imported - started) * 1000, "first_healthz_ms": (answered - imported) * 1000,
                  "heavy_modules": heavy}))
"""


def probe(command: list[str], cwd: Path) -> dict[str, float]:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def summary(samples: list[float]) -> dict[str, float]:
    return {"p50": round(statistics.median(samples), 1), "max": round(max(samples), 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--zip", type=Path, help="time the built Lambda package instead of this checkout")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cold-start-") as scratch:
        if args.zip:
            with zipfile.ZipFile(args.zip) as archive:
                archive.extractall(scratch)
            command, cwd, target = [sys.executable, "-I", "-S", "-c", PROBE, scratch], Path(scratch), str(args.zip)
        else:
            command, cwd, target = [sys.executable, "-c", PROBE], ROOT, "checkout + .venv"
        runs = [probe(command, cwd) for _ in range(args.runs)]
    result = {
        "target": target,
        "runs": args.runs,
        "import_handlers_api_ms": summary([run["import_ms"] for run in runs]),
        "first_healthz_ms": summary([run["first_healthz_ms"] for run in runs]),
        "total_ms": summary([run["import_ms"] + run["first_healthz_ms"] for run in runs]),
        "heavy_modules_loaded": sorted({name for run in runs for name in run["heavy_modules"]}),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"cold start of handlers.api ({target}, {args.runs} fresh processes, python {result['python']})")
    for name in ("import_handlers_api_ms", "first_healthz_ms", "total_ms"):
        print(f"  {name:24} p50 {result[name]['p50']:7.1f} ms   max {result[name]['max']:7.1f} ms")
    print(f"  heavy modules loaded: {', '.join(result['heavy_modules_loaded']) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
