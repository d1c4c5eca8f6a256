"""bench/cold_start.py: one fresh process per handler times its import and two calls, and checks the calls did
their job (a write-back stored its memory, consolidation wrote its summaries, migrate reached head)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import cold_start  # noqa: E402  (bench/ is no package)


def test_every_handler_is_timed_cold_and_warm_and_its_first_call_does_its_job(tmp_path: Path) -> None:
    from alembic.script import ScriptDirectory

    out = tmp_path / "cold_start.json"
    command = [sys.executable, "bench/cold_start.py", "--runs", "1", "--json", "--out", str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    handlers = result["handlers"]

    assert list(handlers) == ["api", "writeback", "writeback-claude", "consolidate", "migrate"]
    for name, figures in handlers.items():
        rows = cold_start.CASES[name].rows
        calls = [call for _, *pair in rows for call in pair]
        for unit in ("ms", "cpu_ms"):  # wall-clock and CPU time
            for key in [f"import_{unit}", *(f"{call}_{unit}" for call in calls), f"total_{unit}"]:
                assert figures[key]["p50"] > 0 and figures[key]["max"] == figures[key]["p50"], (name, key)  # one run
            firsts = sum(figures[f"{first}_{unit}"]["p50"] for _, first, _ in rows)
            assert figures[f"total_{unit}"]["p50"] == pytest.approx(figures[f"import_{unit}"]["p50"] + firsts, abs=0.2)
        assert figures["heavy"]["import"] == [], name  # no handler loads a heavy module at import
        assert "torch" not in figures["heavy"][calls[-1]] and "boto3" not in figures["heavy"][calls[-1]]

    api = handlers["api"]
    assert api["heavy_before_search"] == [] and api["heavy_after_search"] == ["onnxruntime"]
    assert len(api["did"]["hits"]) == 5 and "metric units" in api["did"]["hits"][0]

    stored = ["I prefer window seats on long flights", "I live in Porto"]
    assert handlers["writeback"]["did"] == {"stored": stored, "memories": 202, "extractor": ["rules"]}
    assert handlers["writeback"]["heavy"]["first_call"] == ["onnxruntime"]  # no Claude SDK for the rules
    assert handlers["writeback-claude"]["did"]["extractor"] == ["claude"]
    assert handlers["writeback-claude"]["did"]["stored"] == stored
    assert handlers["writeback-claude"]["heavy"]["first_call"] == ["anthropic", "onnxruntime"]

    consolidate = handlers["consolidate"]["did"]
    assert consolidate["first"]["model_calls"] == 4 and consolidate["summaries"] == 4  # 3 clusters and a profile
    assert consolidate["active_after"] == 18 - 12 + 4  # 12 sources archived into 3 summaries, and the profile
    assert consolidate["second"]["changed"] == 0 and consolidate["second"]["model_calls"] == 0

    head = ScriptDirectory(str(ROOT / "migrations")).get_current_head()
    assert handlers["migrate"]["did"] == {"revision": head, "app_login": cold_start.LOGIN}
    assert handlers["migrate"]["heavy"]["first_call"] == ["alembic", "psycopg", "sqlalchemy"]


def test_a_first_call_that_did_not_do_its_job_fails_the_benchmark(tmp_path: Path) -> None:
    bench = cold_start.Bench(tmp_path, ROOT, ROOT / "build" / "onnx")
    nothing = {"users": 1, "changed": 0, "skipped": 0, "model_calls": 0, "errors": 0, "complete": True}
    with pytest.raises(SystemExit, match="consolidate, run 1: the first run answered"):
        cold_start.Consolidate(bench).check(0, {"first_call": nothing, "second_call": nothing})
    failed = {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    with pytest.raises(SystemExit, match="writeback, run 2: first_call answered"):
        cold_start.Writeback(bench).check(1, {"first_call": failed, "second_call": {"batchItemFailures": []}})
