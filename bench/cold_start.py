"""Cold start of the Lambda API handler: importing ``handlers.api``, its first ``GET /healthz``, its first search.

Each run is a fresh Python process, as a new Lambda container is: it times ``import handlers.api`` (FastAPI,
Mangum and the app, built by ``create_app``: what Lambda's init phase does), then the handler answering an
API Gateway HTTP API (payload 2.0) ``/healthz`` event (the first request through Mangum and FastAPI, which
loads no store, model or Claude client), then a first ``POST /v1/users/u1/memories/search``: the store opens,
the ONNX embedder loads (onnxruntime, the tokenizer, the model) and embeds the query, and the hybrid search
runs over 200 memories in a SQLite file that this script fills once beforehand.

- default: this checkout with this virtualenv, and the ONNX export in build/onnx (`make onnx`);
- ``--zip build/agent-memory.zip`` (`make package` builds it): the Lambda package unzipped, run by a bare
  interpreter (``-I -S``: no virtualenv, no site-packages), as Lambda runs /var/task, with the model it carries.

The page cache is warm after the first run, so the figures leave out Lambda's code download and disk; they
are the CPU cost on this machine (Lambda gives one full vCPU at 1,769 MB).

    .venv/bin/python bench/cold_start.py [--runs 15] [--zip build/agent-memory.zip] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
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
KEY = "bench-key"
MEMORIES = 200

# Run in the fresh process: path first (the zip's folder, when given), then the three timings, as JSON.
PROBE = """
import json, os, sys, time
if len(sys.argv) > 1:
    sys.path[:0] = [sys.argv[1]]
HEAVY = ("torch", "sentence_transformers", "onnxruntime", "anthropic", "psycopg", "boto3")
def event(method, path, body=None):
    http = {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"}
    headers = {"host": "api.example.com", "authorization": "Bearer " + os.environ["COLD_START_KEY"],
               "content-type": "application/json"}
    return {"version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "", "headers": headers,
            "isBase64Encoded": False, "body": None if body is None else json.dumps(body),
            "requestContext": {"http": http, "stage": "$default", "requestId": "r", "routeKey": "$default"}}
started = time.perf_counter()
import handlers.api
imported = time.perf_counter()
response = handlers.api.handler(event("GET", "/healthz"), None)
answered = time.perf_counter()
assert response["statusCode"] == 200, response
heavy = [m for m in HEAVY if m in sys.modules]
search = event("POST", "/v1/users/u1/memories/search", {"query": "which units should I use on the trip?"})
response = handlers.api.handler(search, None)
searched = time.perf_counter()
assert response["statusCode"] == 200 and json.loads(response["body"])["hits"], response
print(json.dumps({"import_ms": (imported - started) * 1000, "first_healthz_ms": (answered - imported) * 1000,
                  "first_search_ms": (searched - answered) * 1000, "heavy_before_search": heavy,
                  "heavy_after_search": [m for m in HEAVY if m in sys.modules]}))
"""


def fill(database: Path, model_dir: Path) -> None:
    """The memories the first search runs over, embedded once here by the same ONNX export."""
    sys.path.insert(0, str(ROOT))
    from memory import Memory

    topics = ("metric units", "a sister in Lisbon", "green tea", "a refund for an order", "piano lessons")
    memory = Memory.from_url(f"sqlite:///{database}", embedder="onnx", onnx_model_dir=str(model_dir))
    for n in range(MEMORIES):
        content = f"Note {n}: something about {topics[n % len(topics)]}, number {n}"
        memory.remember(user_id="u1", content=content, tenant_id="bench")  # the API key's tenant
    memory.close()


def probe(command: list[str], cwd: Path, environment: dict[str, str]) -> dict[str, object]:
    done = subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the probe failed:\n{done.stderr[-3000:]}")
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
        task, database = Path(scratch) / "task", Path(scratch) / "bench.db"
        if args.zip:
            with zipfile.ZipFile(args.zip) as archive:
                archive.extractall(task)
            command, cwd, target = [sys.executable, "-I", "-S", "-c", PROBE, str(task)], task, str(args.zip)
            model_dir = task / "build" / "onnx"
        else:
            command, cwd, target = [sys.executable, "-c", PROBE], ROOT, "checkout + .venv"
            model_dir = ROOT / "build" / "onnx"
        fill(database, model_dir)
        environment = {name: value for name, value in os.environ.items() if not name.startswith("MEMORY_")}
        environment |= {
            "MEMORY_STORE_URL": f"sqlite:///{database}",
            "MEMORY_API_KEYS": f"bench:{hashlib.sha256(KEY.encode()).hexdigest()}",
            "MEMORY_EMBEDDER": "onnx",  # its default folder: build/onnx in the checkout, or in the package
            "SESSION_STORE_URL": "memory://",
            "COLD_START_KEY": KEY,
            # Lambda sets it: telemetry is then EMF lines on stdout (memory/telemetry.py), which import nothing,
            # where outside Lambda create_app would load prometheus-client (about 11 ms) for GET /metrics.
            "AWS_LAMBDA_FUNCTION_NAME": "cold-start-bench",
        }
        runs = [probe(command, cwd, environment) for _ in range(args.runs)]
    timings = ("import_ms", "first_healthz_ms", "first_search_ms")
    result: dict[str, object] = {"target": target, "runs": args.runs, "memories": MEMORIES}
    result |= {name: summary([run[name] for run in runs]) for name in timings}
    result["total_ms"] = summary([sum(run[name] for name in timings) for run in runs])
    for name in ("heavy_before_search", "heavy_after_search"):
        result[name] = sorted({module for run in runs for module in run[name]})
    result |= {"python": platform.python_version(), "machine": f"{platform.machine()}, {os.cpu_count()} cores"}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"cold start of handlers.api ({target}, {args.runs} fresh processes, python {result['python']})")
    for name in (*timings, "total_ms"):
        print(f"  {name:18} p50 {result[name]['p50']:7.1f} ms   max {result[name]['max']:7.1f} ms")
    print(f"  loaded before the search: {', '.join(result['heavy_before_search']) or 'none of the heavy modules'}")
    print(f"  loaded after it: {', '.join(result['heavy_after_search'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
