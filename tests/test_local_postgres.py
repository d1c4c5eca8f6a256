"""`make pg`: infra/local_postgres.py starts a migrated Postgres, prints URLs that work, and stops it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from memory import Memory

SCRIPT = Path(__file__).parent.parent / "infra" / "local_postgres.py"


def run(*args: str) -> str:
    done = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_start_prints_working_urls_and_stop_stops(tmp_path: Path, embedder) -> None:
    data = tmp_path / "pgdata"
    try:
        output = run("start", "--data-dir", str(data))
        app_url = re.search(r"export MEMORY_STORE_URL='([^']+)'", output).group(1)
        owner_url = re.search(r"export DATABASE_URL='([^']+)'", output).group(1)
        assert "agent_memory:@" in app_url and "postgres:@" in owner_url
        with Memory.from_url(app_url, embedder=embedder) as mem:
            mem.remember("u1", "I keep bees on the roof")
            assert mem.search("u1", "beekeeping hobby")[0].entry.content == "I keep bees on the roof"
        assert "postgres:@" in run("start", "--data-dir", str(data))  # a second start reuses the server
    finally:
        assert "stopped" in run("stop", "--data-dir", str(data))
    assert not (data / "postmaster.pid").exists()
