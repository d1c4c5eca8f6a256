"""`agent-memory chat` and `agent-memory writeback`, in-process, offline and against the fake Messages API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from memory import Memory
from memory.cli import main
from memory.writeback import record_turn
from tests.messages_api import API_KEY, MessagesAPI, error_reply


@pytest.fixture
def store_url(tmp_path: Path, embedder) -> str:  # the embedder fixture loads the shared model once
    return f"sqlite:///{tmp_path / 'chat.db'}"


def run(store_url: str, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, ["--store", store_url, *args], input=input, env=env, catch_exceptions=False)


def online(server: MessagesAPI) -> dict[str, str]:
    return {"ANTHROPIC_API_KEY": API_KEY, "ANTHROPIC_BASE_URL": server.url, "MEMORY_CLAUDE_MAX_RETRIES": "0"}


def test_offline_chat_says_so_once_and_shows_memory_at_work(store_url: str) -> None:
    first = run(store_url, "chat", "--user", "ana", "--message", "Hi! My name is Ana and I prefer window seats.")
    assert first.exit_code == 0
    assert first.stderr.count("ANTHROPIC_API_KEY is not set") == 1
    assert "(no notes about this user yet)" in first.stdout
    assert "[added]" in first.stdout and "My name is Ana" in first.stdout and "I prefer window seats" in first.stdout

    second = run(store_url, "chat", "--user", "ana", "--message", "Which seat should I pick?")
    assert '<memory type="preference" age="just now">I prefer window seats</memory>' in second.stdout
    assert "remembered: nothing" in second.stdout


def test_offline_interactive_chat_keeps_the_session_and_stops_on_quit(store_url: str) -> None:
    result = run(
        store_url, "chat", "--user", "ana", input="I'm allergic to peanuts.\n\nWhat can I eat?\n/quit\nnever\n"
    )
    assert result.exit_code == 0
    assert result.stderr.count("ANTHROPIC_API_KEY is not set") == 1
    assert "session chat-" in result.stderr and "--session chat-" in result.stderr
    assert result.stdout.count("would inject") == 2  # the blank line is skipped, nothing after /quit runs
    assert '<memory type="fact" age="just now">I\'m allergic to peanuts</memory>' in result.stdout


def test_online_chat_prints_the_reply_usage_and_memories(store_url: str, messages_api: MessagesAPI) -> None:
    messages_api.reply_text("Noted, Ana.", usage={"input_tokens": 400, "output_tokens": 6})
    messages_api.reply_tool_use("save_memories", {"operations": [{"action": "add", "content": "My name is Ana"}]})
    messages_api.reply_text("You're Ana.")
    messages_api.reply_tool_use("save_memories", {"operations": []})

    first = run(store_url, "chat", "--user", "ana", "--message", "My name is Ana.", env=online(messages_api))
    second = run(
        store_url, "chat", "--user", "ana", "--message", "Who am I?", "--show-memories", env=online(messages_api)
    )

    assert first.exit_code == 0 and "claude> Noted, Ana." in first.stdout
    assert "ANTHROPIC_API_KEY is not set" not in first.stderr
    assert "(400 in, 6 out, 0 cached tokens; $0.00086" in first.stderr and "[added]" in first.stderr
    assert "claude> You're Ana." in second.stdout
    assert "memories used (1):" in second.stderr and "- [fact] My name is Ana" in second.stderr


def test_online_chat_reports_a_claude_failure_without_a_traceback(store_url: str, messages_api: MessagesAPI) -> None:
    messages_api.reply(error_reply(529, "overloaded_error", "Overloaded"))
    result = run(store_url, "chat", "--user", "ana", "--message", "My name is Ana.", env=online(messages_api))
    assert result.exit_code == 1
    assert "Error: the Claude API overloaded: Overloaded (your message is kept" in result.stderr
    assert "Traceback" not in result.output


def test_writeback_retries_what_is_pending(store_url: str, embedder) -> None:
    with Memory.from_url(store_url, embedder=embedder) as memory:
        record_turn(memory, user_id="ana", turn_id="t-1", message="My name is Ana.")

    result = run(store_url, "writeback", "--user", "ana", "--json")

    [done] = json.loads(result.stdout)
    assert done["turn_id"] == "t-1" and done["status"] == "done" and done["extractor"] == "rules"
    listed = json.loads(run(store_url, "list", "--user", "ana", "--json").stdout)
    assert [m["content"] for m in listed] == ["My name is Ana"]
    assert "(nothing)" in run(store_url, "writeback", "--user", "ana").stdout


def test_online_chat_in_tool_mode_lists_the_memory_tool_calls(store_url: str, messages_api: MessagesAPI) -> None:
    messages_api.reply_tool_use("memory", {"command": "create", "path": "/memories/seat.md", "file_text": "Aisle"})
    messages_api.reply_tool_use("memory", {"command": "view", "path": "/memories/../etc"})
    messages_api.reply_text("Saved.")

    result = run(
        store_url, "chat", "--user", "ana", "--message", "Aisle seats, please.", "--memory-mode", "tool",
        env=online(messages_api),
    )  # fmt: skip

    assert result.exit_code == 0 and "claude> Saved." in result.stdout
    assert "memory tool: create /memories/seat.md\n" in result.stderr
    assert "memory tool: view /memories/../etc (refused)" in result.stderr
    listed = json.loads(run(store_url, "list", "--user", "ana", "--json").stdout)
    assert [(m["content"], m["metadata"]["path"]) for m in listed] == [("Aisle", "/memories/seat.md")]
