"""The MCP server, driven as Claude would drive it: the mcp SDK's own client talking to a real server process.

Each server process loads the real embedding model (about 4 s), so the checks share a few sessions.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import typing
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TextIO

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.stdio import get_default_environment
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult

from memory.mcp_server import MemoryTypeName, main
from memory.models import MemoryType

ROOT = Path(__file__).resolve().parents[1]
TOOLS = {"remember", "search", "list_memories", "forget", "history"}
TYPES = [member.value for member in MemoryType]


def server_args(store: str, user: str, *extra: str) -> list[str]:
    return ["-m", "memory.mcp_server", "--user", user, "--store", store, *extra]


@asynccontextmanager
async def stdio_session(store: str, user: str, errlog: TextIO, *, cli: bool = False) -> AsyncIterator[ClientSession]:
    # The SDK passes the server only an allow-list of the environment (PATH, HOME, USER, ...): no MEMORY_*.
    # cli=True starts it as `agent-memory --store ... mcp --user ...` instead of `python -m memory.mcp_server`.
    command, args = sys.executable, server_args(store, user)
    if cli:
        command, args = str(Path(sys.executable).parent / "agent-memory"), ["--store", store, "mcp", "--user", user]
    params = StdioServerParameters(command=command, args=args, cwd=ROOT)
    async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


async def call(session: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await session.call_tool(tool, arguments)
    assert isinstance(result, CallToolResult)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def error_of(session: ClientSession, tool: str, **arguments: Any) -> str:
    result = await session.call_tool(tool, arguments)
    assert isinstance(result, CallToolResult)
    assert result.is_error
    return " ".join(block.text for block in result.content if block.type == "text")


def found(hits: dict[str, Any], memory_id: str) -> bool:
    return any(hit["id"] == memory_id for hit in hits["hits"])


async def check_tools(session: ClientSession) -> None:
    tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert set(tools) == TOOLS  # and no tool that forgets the whole user
    for tool in tools.values():
        assert tool.description and len(tool.description) > 80, tool.name
        for name, schema in tool.input_schema["properties"].items():
            assert schema.get("description"), (tool.name, name)
    remember = tools["remember"].input_schema["properties"]
    assert remember["memory_type"]["enum"] == TYPES
    assert (remember["importance"]["minimum"], remember["importance"]["maximum"]) == (0, 1)
    assert tools["remember"].input_schema["required"] == ["content"]
    search = tools["search"].input_schema["properties"]
    assert (search["top_k"]["minimum"], search["top_k"]["maximum"]) == (1, 20)
    assert search["memory_types"]["items"]["enum"] == TYPES
    assert "before answering" in tools["search"].description
    assert "one short fact" in tools["remember"].description
    assert "\n    " not in tools["remember"].description  # docstrings are dedented
    assert "Permanently" in tools["forget"].description
    assert tools["forget"].annotations.destructive_hint and tools["search"].annotations.read_only_hint


async def stdio_scenario(store: str, errlog: TextIO) -> None:
    async with stdio_session(store, "u1", errlog) as u1:
        await check_tools(u1)
        added = await call(
            u1, "remember", content="I prefer aisle seats on long flights", memory_type="preference", tags=["travel"]
        )
        assert added["action"] == "added"
        memory_id = added["id"]
        assert added["memory"]["memory_type"] == "preference"

        hits = await call(u1, "search", query="where do I like to sit on planes?")
        assert hits["hits"][0]["id"] == memory_id
        assert hits["hits"][0]["content"] == "I prefer aisle seats on long flights"
        assert hits["hits"][0]["score"] > 0 and any("meaning" in why for why in hits["hits"][0]["why"])
        assert not found(await call(u1, "search", query="aisle seats", memory_types=["task"]), memory_id)

        listed = await call(u1, "list_memories")
        assert [entry["id"] for entry in listed["memories"]] == [memory_id]
        events = (await call(u1, "history", memory_id=memory_id))["events"]
        assert [(event["kind"], event["memory_id"]) for event in events] == [("added", memory_id)]

        # Bad input is an error result for the model to read; the server keeps serving.
        assert "importance" in await error_of(u1, "remember", content="x", importance=5)
        assert "content must not be empty" in await error_of(u1, "remember", content="   ")
        assert "no memory 'nope' for this user" in await error_of(u1, "forget", memory_id="nope")
        assert "no such memory for this user" in await error_of(u1, "remember", content="y", supersedes="nope")
        assert found(await call(u1, "search", query="plane seat preference"), memory_id)

        # Another user's server on the same file sees nothing of u1, and cannot forget u1's memory.
        async with stdio_session(store, "u2", errlog, cli=True) as u2:
            assert not found(await call(u2, "search", query="where do I like to sit on planes?"), memory_id)
            assert (await call(u2, "list_memories", include_archived=True))["memories"] == []
            assert "no memory" in await error_of(u2, "forget", memory_id=memory_id)

        forgotten = await call(u1, "forget", memory_id=memory_id)
        assert forgotten == {"forgotten": memory_id, "content": "I prefer aisle seats on long flights"}
        assert not found(await call(u1, "search", query="where do I like to sit on planes?"), memory_id)
        assert (await call(u1, "list_memories", include_archived=True))["memories"] == []
        kinds = [event["kind"] for event in (await call(u1, "history"))["events"]]
        assert kinds == ["added", "deleted"]


def test_a_model_remembers_searches_and_forgets_over_stdio(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with log.open("w") as errlog:
        try:
            anyio.run(stdio_scenario, f"sqlite:///{tmp_path / 'm.db'}", errlog)
        except BaseException:
            print(log.read_text(), file=sys.stderr)  # the servers' stderr, shown with the failure
            raise
    assert "serving memories of user 'u1'" in log.read_text()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited before listening"
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"the server did not listen on port {port} within {timeout} s")


async def http_scenario(url: str) -> None:
    async with streamable_http_client(url) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        added = await call(session, "remember", content="My daughter is called Ines", memory_type="fact")
        hits = await call(session, "search", query="what is my child's name?", top_k=3)
        assert hits["hits"][0]["id"] == added["id"]


def test_streamable_http_transport(tmp_path: Path) -> None:
    port = free_port()
    args = server_args(f"sqlite:///{tmp_path / 'm.db'}", "u1", "--transport", "http", "--port", str(port))
    env = get_default_environment()  # the same allow-list stdio_client passes: no MEMORY_* from the developer
    with (tmp_path / "server.log").open("w") as errlog:
        process = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=errlog, stderr=errlog)
        try:
            wait_for_port(port, process)
            anyio.run(http_scenario, f"http://127.0.0.1:{port}/mcp")
        except BaseException:
            print((tmp_path / "server.log").read_text(), file=sys.stderr)
            raise
        finally:
            process.terminate()
            process.wait(timeout=10)


def test_memory_type_enum_matches_the_library() -> None:
    assert list(typing.get_args(MemoryTypeName)) == TYPES


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--user", " "], "user_id must be a non-empty string"),
        (["--user", "u1", "--store", "nowhere"], "MEMORY_STORE_URL"),
        (["--user", "u1", "--transport", "sse"], "invalid choice"),
    ],
)
def test_bad_arguments_exit_with_the_reason(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_the_cli_says_which_extra_to_install_without_the_mcp_package(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from click.testing import CliRunner

    from memory.cli import main as cli

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mcp" else real(name, *a))

    result = CliRunner().invoke(cli, ["mcp", "--user", "u1"])

    assert result.exit_code == 2
    assert "pip install 'agent-memory[mcp]'" in result.stderr
