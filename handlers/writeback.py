"""SQS batch -> the write-back of each queued turn (``memory.queue.process_batch``), with partial failures.

serverless.yml turns on ``ReportBatchItemFailures``: the handler answers the ids of the records that failed,
SQS deletes the rest and delivers those again, and after the queue's ``maxReceiveCount`` the dead-letter
queue keeps them. A write-back is idempotent per turn id, so a redelivered record applies nothing twice.
"""

from __future__ import annotations

import functools
from typing import Any

from memory import telemetry
from memory.agent import choose_extractor
from memory.claude import make_client
from memory.extraction import Extractor
from memory.queue import process_batch
from memory.secrets import settings_with_secrets
from memory.service import Memory


@functools.cache
def services() -> tuple[Memory, Extractor | None]:
    """The store, embedder and extractor, made on the first batch and kept for the container's life."""
    settings = settings_with_secrets()
    telemetry.configure(settings)
    client = make_client(settings) if settings.anthropic_api_key is not None else None
    return Memory.from_settings(settings), choose_extractor(settings, client)


@telemetry.lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    memory, extractor = services()
    failed = process_batch(memory, extractor, event.get("Records", []))
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}
