"""A local AWS endpoint for the tests: moto's server (SQS, Secrets Manager) on a loopback port, in a thread.

The code under test uses real boto3 clients, pointed here by the standard ``AWS_ENDPOINT_URL_SQS`` and
``AWS_ENDPOINT_URL_SECRETS_MANAGER`` variables that botocore honours, with dummy credentials: the requests go
over HTTP to a server speaking the AWS protocols, nothing in boto3 is patched.
"""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest

REGION = "us-east-1"


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalAWS:
    """The running server; ``client(service)`` is a boto3 client for it, for the test's own calls."""

    def __init__(self, url: str) -> None:
        self.url = url

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(service, region_name=REGION, endpoint_url=self.url)

    def create_queue(self, name: str) -> str:
        return self.client("sqs").create_queue(QueueName=name)["QueueUrl"]

    def receive(self, queue_url: str, count: int) -> list[dict[str, Any]]:
        """Up to ``count`` messages, as the SQS event source mapping takes them (they stay in flight)."""
        messages: list[dict[str, Any]] = []
        sqs = self.client("sqs")
        for _ in range(10):
            batch = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, AttributeNames=["All"]
            )
            messages += batch.get("Messages", [])
            if len(messages) >= count:
                break
        return messages

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/moto-api/reset", data=b"", method="POST")
        urllib.request.urlopen(request, timeout=5).close()


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping delivers for received messages (its documented shape)."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
            for message in messages
        ]
    }


def queue_arn(aws: LocalAWS, queue_url: str) -> str:
    attributes = aws.client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    return attributes["Attributes"]["QueueArn"]


def create_secret(aws: LocalAWS, name: str, value: str | dict[str, Any]) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return aws.client("secretsmanager").create_secret(Name=name, SecretString=text)["ARN"]


@pytest.fixture(scope="session")
def aws_server() -> Iterator[LocalAWS]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield LocalAWS(f"http://127.0.0.1:{port}")
    finally:
        server.stop()


@pytest.fixture
def aws(aws_server: LocalAWS, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> LocalAWS:
    """The local endpoint, emptied, with the environment pointing boto3 at it (and nowhere else)."""
    aws_server.reset()
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", aws_server.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", aws_server.url)
    return aws_server
