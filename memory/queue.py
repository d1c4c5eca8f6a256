"""The write-back queue: SQS between the API, which answers a turn as soon as Claude does, and the writeback
Lambda, which extracts and stores what the turn taught.

A message carries ids only, ``{"tenant_id", "user_id", "turn_id"}``. The turn's text stays in the store's
write-back ledger (``memory.turns``), recorded ``pending`` before the message is sent, so a message that is
lost, delivered twice or dead-lettered never loses or repeats anything: the consumer loads the record and
``memory.writeback.process`` is idempotent per turn id (a ``done`` turn is ``already_done``).

boto3 is imported when a queue is opened, never on import: the API's cold start does not pay for it, and a
deployment without a queue never needs it (the Lambda runtime ships boto3). botocore honours the standard
``AWS_ENDPOINT_URL_SQS``, which is how the tests point it at a local SQS server.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from memory.config import Settings
from memory.errors import AgentMemoryError, ConfigurationError, InvalidInputError, QueueError
from memory.extraction import Extractor
from memory.models import DEFAULT_TENANT, Scope, _identifier
from memory.service import Memory
from memory.writeback import WriteBackResult, process

logger = logging.getLogger("memory.queue")
_REGION_IN_URL = re.compile(r"^https://sqs[.-]([a-z0-9-]+)\.amazonaws\.com")
OK_STATUSES = ("done", "already_done")


@dataclass(frozen=True, slots=True)
class WritebackMessage:
    """One queued write-back: which turn of which user. Built from a ``Scope`` so the ids are valid."""

    tenant_id: str
    user_id: str
    turn_id: str

    @classmethod
    def for_turn(cls, scope: Scope, turn_id: str) -> WritebackMessage:
        return cls(scope.tenant_id, scope.user_id, _identifier("turn_id", turn_id))

    @classmethod
    def from_json(cls, body: str) -> WritebackMessage:
        """Parse a message body; ``InvalidInputError`` says what is wrong with one that is not ours."""
        try:
            data = json.loads(body)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"the message body is not JSON ({exc})") from None
        if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("user_id", "turn_id")):
            raise InvalidInputError('the message body must be {"tenant_id", "user_id", "turn_id"} (strings)')
        tenant_id = data.get("tenant_id", DEFAULT_TENANT)
        if not isinstance(tenant_id, str):
            raise InvalidInputError("tenant_id must be a string")
        return cls.for_turn(Scope(data["user_id"], tenant_id), data["turn_id"])

    @property
    def scope(self) -> Scope:
        return Scope(self.user_id, self.tenant_id)

    def to_json(self) -> str:
        return json.dumps({"tenant_id": self.tenant_id, "user_id": self.user_id, "turn_id": self.turn_id})


class WritebackQueue:
    """Sends write-backs to one SQS queue through a boto3 client made once (per Lambda container)."""

    def __init__(self, queue_url: str, client: Any) -> None:
        self.queue_url = queue_url
        self.client = client

    def enqueue(self, scope: Scope, turn_id: str) -> None:
        """Queue the write-back of a recorded turn. Raises ``QueueError`` when SQS does not take it."""
        body = WritebackMessage.for_turn(scope, turn_id).to_json()
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.send_message(QueueUrl=self.queue_url, MessageBody=body)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise QueueError(
                f"SQS refused the write-back of turn {turn_id} ({error.get('Code')}: {error.get('Message')}); "
                "check MEMORY_WRITEBACK_QUEUE_URL and that the function may sqs:SendMessage to it"
            ) from exc
        except BotoCoreError as exc:
            raise QueueError(f"cannot reach SQS to queue the write-back of turn {turn_id}: {exc}") from exc


def open_writeback_queue(settings: Settings) -> WritebackQueue | None:
    """The queue ``MEMORY_WRITEBACK_QUEUE_URL`` names, or ``None`` when unset (write-back then runs inline)."""
    url = settings.writeback_queue_url
    if url is None:
        return None
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:
        raise ConfigurationError(
            "MEMORY_WRITEBACK_QUEUE_URL is set but boto3 is not installed: pip install 'agent-memory[aws]' "
            "(the Lambda runtime has it), or unset it to write back inline"
        ) from exc
    session = boto3.session.Session()
    match = _REGION_IN_URL.match(url)
    region = session.region_name or (match.group(1) if match else None)
    if region is None:
        raise ConfigurationError(
            f"MEMORY_WRITEBACK_QUEUE_URL={url!r}: no AWS region; set AWS_REGION (Lambda sets it for you)"
        )
    # A send is on the request path of a turn: fail in seconds, not after botocore's 60 s defaults.
    config = Config(connect_timeout=2, read_timeout=5, retries={"total_max_attempts": 3, "mode": "standard"})
    return WritebackQueue(url, session.client("sqs", region_name=region, config=config))


def process_message(memory: Memory, extractor: Extractor | None, body: str) -> WriteBackResult | None:
    """Write back the turn one message names; ``None`` when there is nothing to do (extraction off, or the
    turn is gone because the user was forgotten since). Raises ``InvalidInputError`` for a malformed body and
    ``AgentMemoryError`` when the store fails; a failed extraction is a ``failed`` result, as inline."""
    message = WritebackMessage.from_json(body)
    if extractor is None:
        logger.warning("turn %s: MEMORY_EXTRACTION=off, write-back skipped", message.turn_id)
        return None
    record = memory.store.get_turn(message.scope, message.turn_id)
    if record is None:
        logger.info("turn %s is not in the ledger (its user was forgotten?); nothing to write back", message.turn_id)
        return None
    return process(memory, extractor, record)


def process_batch(memory: Memory, extractor: Extractor | None, records: Iterable[Mapping[str, Any]]) -> list[str]:
    """Write back each SQS record of a Lambda batch; returns the message ids to report as failed.

    A record fails when its body is malformed or its write-back failed (the store, or an extraction error): SQS
    then delivers it again, up to the queue's ``maxReceiveCount``, and the dead-letter queue keeps it after
    that. One record's failure never stops the others.
    """
    failed = []
    for record in records:
        message_id = str(record.get("messageId"))
        try:
            result = process_message(memory, extractor, record.get("body"))
        except InvalidInputError as exc:
            logger.error("SQS message %s is not a write-back (%s); left to the dead-letter queue", message_id, exc)
            failed.append(message_id)
            continue
        except AgentMemoryError as exc:
            logger.warning("SQS message %s: write-back did not run (%s); SQS retries it", message_id, exc)
            failed.append(message_id)
            continue
        except Exception:  # a bug must not drop the rest of the batch, nor this record
            logger.exception("SQS message %s: write-back raised; SQS retries it", message_id)
            failed.append(message_id)
            continue
        if result is not None and result.status not in OK_STATUSES:
            failed.append(message_id)
    return failed
