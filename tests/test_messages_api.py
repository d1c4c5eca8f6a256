"""The fake Messages API, driven by the real ``anthropic`` SDK: what it answers, records and refuses."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest
from anthropic.types import TextBlock, ToolUseBlock

from tests.messages_api import MessagesAPI, anthropic_client, text_reply

MODEL = "claude-opus-4-7"
HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture
def api() -> Iterator[MessagesAPI]:
    with MessagesAPI() as server:
        yield server


@pytest.fixture
def client(api: MessagesAPI) -> Iterator[anthropic.Anthropic]:
    with anthropic_client(api) as sdk:
        yield sdk


def create(client: anthropic.Anthropic, **params: Any) -> anthropic.types.Message:
    return client.messages.create(**{"model": MODEL, "max_tokens": 256, "messages": HELLO, **params})


def test_a_text_reply_arrives_as_a_message_with_usage(api: MessagesAPI, client: anthropic.Anthropic) -> None:
    api.reply_text("Paris.", usage={"input_tokens": 42, "cache_read_input_tokens": 7})
    message = create(client)
    assert message.id.startswith("msg_") and message.role == "assistant" and message.model == MODEL
    assert message.content == [TextBlock(type="text", text="Paris.")]
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.usage.input_tokens == 42 and message.usage.cache_read_input_tokens == 7
    assert message.usage.output_tokens >= 1 and message.usage.cache_creation_input_tokens == 0
    assert message._request_id and message._request_id.startswith("req_")


def test_with_the_script_empty_the_default_answers(api: MessagesAPI, client: anthropic.Anthropic) -> None:
    first, second = create(client), create(client)  # two requests on one keep-alive connection
    assert first.content[0].type == "text" and first.id != second.id
    assert first.usage.input_tokens >= 1
    api.default = text_reply("always this")
    assert create(client).content == [TextBlock(type="text", text="always this")]


def test_a_tool_use_reply_parses_into_a_tool_use_block(api: MessagesAPI, client: anthropic.Anthropic) -> None:
    api.reply_tool_use("recall", {"query": "coffee", "limit": 3}, text="Let me check.")
    message = create(client)
    assert message.stop_reason == "tool_use"
    intro, call = message.content
    assert intro == TextBlock(type="text", text="Let me check.")
    assert isinstance(call, ToolUseBlock) and call.id.startswith("toolu_")
    assert (call.name, call.input) == ("recall", {"query": "coffee", "limit": 3})


def test_the_request_is_recorded_intact(api: MessagesAPI, client: anthropic.Anthropic) -> None:
    system = [{"type": "text", "text": "Memories: likes tea", "cache_control": {"type": "ephemeral"}}]
    tools = [{"name": "recall", "description": "Search memory", "input_schema": {"type": "object"}}]
    create(client, system=system, tools=tools, tool_choice={"type": "tool", "name": "recall"})
    (request,) = api.requests
    assert request["path"] == "/v1/messages"
    assert request["headers"]["authorization"] == "Bearer test-key"  # anthropic 2.x: not x-api-key
    assert "anthropic-version" in request["headers"]
    body = request["body"]
    assert (body["model"], body["max_tokens"], body["messages"]) == (MODEL, 256, HELLO)
    assert body["system"] == system and body["tools"] == tools
    assert body["tool_choice"] == {"type": "tool", "name": "recall"}


def test_a_responder_answers_from_the_request(api: MessagesAPI, client: anthropic.Anthropic) -> None:
    api.reply_with(lambda body: {"content": [{"type": "text", "text": body["messages"][0]["content"].upper()}]})
    api.reply_with(lambda body: 1 / 0)
    assert create(client).content == [TextBlock(type="text", text="HELLO")]
    with pytest.raises(anthropic.InternalServerError, match="ZeroDivisionError"):
        create(client)
    assert api.pending == 0


def test_overloaded_then_success_is_retried_by_the_sdk(api: MessagesAPI) -> None:
    api.reply_error(529, "overloaded_error", "Overloaded", retry_after_ms=1)
    api.reply_text("made it")
    with anthropic_client(api, max_retries=1) as sdk:
        assert create(sdk).content == [TextBlock(type="text", text="made it")]
    assert len(api.requests) == 2
    assert [r["headers"]["x-stainless-retry-count"] for r in api.requests] == ["0", "1"]


@pytest.mark.parametrize(
    ("status", "error_type", "raised"),
    [
        (429, "rate_limit_error", anthropic.RateLimitError),
        (500, "api_error", anthropic.InternalServerError),
        (529, "overloaded_error", anthropic.OverloadedError),
        (400, "invalid_request_error", anthropic.BadRequestError),
    ],
)
def test_an_error_reply_raises_the_sdk_class(
    api: MessagesAPI, client: anthropic.Anthropic, status: int, error_type: str, raised: type[Exception]
) -> None:
    api.reply_error(status, error_type, "scripted failure", retry_after_ms=1)
    with pytest.raises(raised) as caught:
        create(client)
    error = caught.value
    assert isinstance(error, anthropic.APIStatusError) and error.status_code == status
    assert error.body["error"] == {"type": error_type, "message": "scripted failure"}  # type: ignore[index]
    assert error.request_id and error.request_id == error.body["request_id"]  # type: ignore[index]
    assert len(api.requests) == 1  # max_retries=0


def test_overloaded_is_an_internal_server_error() -> None:
    assert issubclass(anthropic.OverloadedError, anthropic.InternalServerError)


def test_a_wrong_key_is_refused_without_using_the_script(api: MessagesAPI) -> None:
    api.reply_text("kept")
    with anthropic_client(api, api_key="wrong") as sdk, pytest.raises(anthropic.AuthenticationError) as caught:
        create(sdk)
    assert caught.value.body["error"]["message"] == "invalid x-api-key"  # type: ignore[index]
    assert api.pending == 1


def test_missing_fields_and_paths_are_refused(api: MessagesAPI) -> None:
    headers = {"x-api-key": "test-key", "anthropic-version": "2023-06-01"}
    with httpx.Client(base_url=api.url, headers=headers) as http:
        missing = http.post("/v1/messages", json={"model": MODEL, "messages": HELLO})
        assert missing.status_code == 400
        assert missing.json()["error"] == {"type": "invalid_request_error", "message": "max_tokens: Field required"}
        assert missing.headers["request-id"].startswith("req_")
        assert http.post("/v1/complete", json={}).status_code == 404
        assert http.get("/v1/messages").status_code == 405
    assert api.pending == 0 and len(api.requests) == 3


def test_a_refusal_stops_with_reason_refusal(api: MessagesAPI, client: anthropic.Anthropic) -> None:
    api.reply_refusal()
    message = create(client)
    assert message.stop_reason == "refusal" and message.content == []


def test_a_slow_reply_times_the_client_out_and_does_not_hold_up_stop() -> None:
    api = MessagesAPI().start()
    api.reply_slow(30)
    started = time.monotonic()
    with anthropic_client(api, timeout=0.3) as sdk, pytest.raises(anthropic.APITimeoutError):
        create(sdk)
    assert time.monotonic() - started < 1.5
    api.reply_slow(30)
    sdk = anthropic_client(api, timeout=30)
    outcome: list[BaseException] = []

    def wait_for_reply() -> None:
        try:
            create(sdk)
        except anthropic.APIError as exc:
            outcome.append(exc)

    waiting = threading.Thread(target=wait_for_reply)
    waiting.start()
    while len(api.requests) < 2:
        time.sleep(0.01)
    started = time.monotonic()
    api.stop()
    assert time.monotonic() - started < 1.0
    waiting.join(timeout=2)
    assert not waiting.is_alive()  # stop() hung up on the client that was still waiting
    assert [type(exc) for exc in outcome] == [anthropic.APIConnectionError]
    sdk.close()
