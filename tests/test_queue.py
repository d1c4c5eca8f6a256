"""memory.queue against a real SQS protocol server (moto, tests/aws_support.py): what the API sends, and its errors."""

from __future__ import annotations

import json

import pytest

from memory.config import get_settings
from memory.errors import ConfigurationError, InvalidInputError, QueueError
from memory.models import Scope
from memory.queue import WritebackMessage, open_writeback_queue
from tests.aws_support import LocalAWS, aws, aws_server, free_port

__all__ = ["aws", "aws_server"]  # fixtures used by name


def test_no_queue_url_means_inline_write_back() -> None:
    assert open_writeback_queue(get_settings()) is None
    assert open_writeback_queue(get_settings(writeback_queue_url="  ")) is None


def test_enqueue_sends_the_turn_ids_and_nothing_else(aws: LocalAWS) -> None:
    url = aws.create_queue("writeback")
    queue = open_writeback_queue(get_settings(writeback_queue_url=url))
    assert queue is not None
    queue.enqueue(Scope("u1", "acme"), "turn-1")
    [message] = aws.receive(url, 1)
    assert json.loads(message["Body"]) == {"tenant_id": "acme", "user_id": "u1", "turn_id": "turn-1"}
    assert WritebackMessage.from_json(message["Body"]) == WritebackMessage("acme", "u1", "turn-1")


def test_a_queue_that_does_not_exist_is_a_queue_error(aws: LocalAWS) -> None:
    url = aws.create_queue("exists").replace("exists", "gone")
    queue = open_writeback_queue(get_settings(writeback_queue_url=url))
    assert queue is not None
    with pytest.raises(QueueError, match=r"SQS refused the write-back of turn t1.*MEMORY_WRITEBACK_QUEUE_URL"):
        queue.enqueue(Scope("u1"), "t1")


def test_an_unreachable_sqs_is_a_queue_error(aws: LocalAWS, monkeypatch: pytest.MonkeyPatch) -> None:
    url = aws.create_queue("writeback")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    queue = open_writeback_queue(get_settings(writeback_queue_url=url))
    assert queue is not None
    with pytest.raises(QueueError, match="cannot reach SQS"):
        queue.enqueue(Scope("u1"), "t1")


def test_the_region_comes_from_an_aws_queue_url_or_must_be_set(aws: LocalAWS, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    queue = open_writeback_queue(
        get_settings(writeback_queue_url="https://sqs.eu-west-2.amazonaws.com/123456789012/writeback")
    )
    assert queue is not None and queue.client.meta.region_name == "eu-west-2"
    with pytest.raises(ConfigurationError, match="set AWS_REGION"):
        open_writeback_queue(get_settings(writeback_queue_url="http://127.0.0.1:1/123456789012/writeback"))


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "must be"),
        ('{"user_id": "u1"}', "must be"),
        ('{"user_id": "u1", "turn_id": 7}', "must be"),
        ('{"user_id": "u1", "turn_id": "t1", "tenant_id": 3}', "tenant_id"),
        ('{"user_id": "", "turn_id": "t1"}', "user_id"),
    ],
)
def test_a_body_that_is_not_a_write_back_says_why(body: str, problem: str) -> None:
    with pytest.raises(InvalidInputError, match=problem):
        WritebackMessage.from_json(body)


def test_the_tenant_defaults_as_everywhere_else() -> None:
    assert WritebackMessage.from_json('{"user_id": "u1", "turn_id": "t1"}').scope == Scope("u1")
