"""End to end over HTTP: serverless-offline serves serverless.yml (stage ``offline``) with the real handlers.

serverless-offline emulates API Gateway and runs ``handlers/api.py`` in a Python child process, as Lambda
would: this checkout's code with this virtualenv's interpreter (``VIRTUAL_ENV`` puts it first on PATH), the
embedded Postgres as the store and the fake Messages API as Claude. The offline stage has no queue, so a
turn writes back inline. node_modules comes from ``npm ci`` (`make test` runs it).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.aws_support import free_port
from tests.messages_api import MessagesAPI, text_reply, tool_use_reply
from tests.postgres_support import PostgresDatabase

ROOT = Path(__file__).resolve().parent.parent
OSLS = ROOT / "node_modules" / ".bin" / "osls"
API_KEY = "am_offline_key"
STARTUP_SECONDS = 60


def claude(body: dict[str, Any]) -> Any:
    """The fake Messages API: an extraction request (it offers tools) stores what the user said; a chat gets text."""
    if body.get("tools"):
        said = json.dumps(body["messages"])
        content = "Is vegetarian" if "vegetarian" in said else "Said something"
        return tool_use_reply("save_memories", {"operations": [{"action": "add", "content": content}]})
    return text_reply("Booked: an aisle seat and a vegetarian meal.")


@pytest.fixture
def offline(postgres: PostgresDatabase, messages_api: MessagesAPI, tmp_path: Path) -> Iterator[httpx.Client]:
    """serverless-offline on free loopback ports, stopped (with its Python child) at the end."""
    if not OSLS.exists():
        pytest.fail(
            "node_modules/.bin/osls is missing: run `npm ci` (`make test` does it) for osls and serverless-offline"
        )
    messages_api.default = claude
    http_port, lambda_port = free_port(), free_port()
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("MEMORY_", "ANTHROPIC_", "UPSTASH_", "AWS_")) and name != "SESSION_STORE_URL"
    }
    environment |= {
        "VIRTUAL_ENV": sys.prefix,  # serverless-offline puts its bin/ first on PATH for the `python3` it runs
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "MEMORY_STORE_URL": postgres.app_url,
        "ANTHROPIC_API_KEY": messages_api.api_key,
        "ANTHROPIC_BASE_URL": messages_api.url,
        "MEMORY_EXTRACTION": "claude",
        "SLS_TELEMETRY_DISABLED": "1",
    }
    command = [str(OSLS), "offline", "--stage", "offline", "--host", "127.0.0.1"]
    command += ["--httpPort", str(http_port), "--lambdaPort", str(lambda_port), "--noSponsor"]
    command += ["--param", f"apiKeys=acme:{hashlib.sha256(API_KEY.encode()).hexdigest()}"]
    log = tmp_path / "serverless-offline.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=ROOT, env=environment, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    client = httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=30)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            assert process.poll() is None, f"serverless-offline exited:\n{log.read_text()[-4000:]}"
            assert time.monotonic() < deadline, f"serverless-offline did not answer:\n{log.read_text()[-4000:]}"
            try:
                if client.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.25)
        yield client
    finally:
        client.close()
        os.killpg(process.pid, signal.SIGTERM)  # its own session: osls and the Python handler processes
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_remember_search_turn_and_forget_over_http(offline: httpx.Client, messages_api: MessagesAPI) -> None:
    auth = {"Authorization": f"Bearer {API_KEY}"}
    assert offline.get("/healthz").json() == {"status": "ok"}
    refused = offline.get("/v1/users/ana/memories")
    assert refused.status_code == 401 and refused.json()["error"]["type"] == "unauthorized"
    assert offline.get("/v1/users/ana/memories", headers={"Authorization": "Bearer wrong"}).status_code == 401

    created = offline.post(
        "/v1/users/ana/memories",
        json={"content": "I prefer aisle seats", "memory_type": "preference", "importance": 0.8},
        headers=auth,
    )
    assert created.status_code == 201, created.text
    assert created.json()["action"] == "added"
    memory_id = created.json()["memory"]["id"]

    found = offline.post("/v1/users/ana/memories/search", json={"query": "which seat do I like?"}, headers=auth)
    assert found.status_code == 200, found.text
    assert found.json()["hits"][0]["memory"]["id"] == memory_id

    turn = offline.post(
        "/v1/turns", json={"user_id": "ana", "message": "Book my flight; I am vegetarian"}, headers=auth
    )
    assert turn.status_code == 200, turn.text
    assert turn.json()["reply"] == "Booked: an aisle seat and a vegetarian meal."
    assert memory_id in [hit["memory"]["id"] for hit in turn.json()["memories"]]  # recalled into the prompt
    assert turn.json()["write_back"]["status"] == "done"  # inline: the offline stage has no queue
    chat = next(request["body"] for request in messages_api.requests if not request["body"].get("tools"))
    assert "I prefer aisle seats" in json.dumps(chat["system"])

    listed = offline.get("/v1/users/ana/memories", headers=auth).json()["items"]
    assert sorted(item["content"] for item in listed) == ["I prefer aisle seats", "Is vegetarian"]
    forgotten = offline.delete("/v1/users/ana", headers=auth)
    assert forgotten.status_code == 200 and forgotten.json()["memories_deleted"] == 2
    assert offline.get("/v1/users/ana/memories", headers=auth).json()["items"] == []
