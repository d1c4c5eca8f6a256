"""EventBridge schedule -> the consolidation job (``memory.consolidation``), inside Lambda's 15 minutes.

Each invocation walks the users from where the previous one stopped (the job saves its place in the store)
and stops a minute before the function's own deadline, or at ``MEMORY_CONSOLIDATION_BUDGET_SECONDS``; the
next scheduled run goes on from there. A user another run holds is skipped, so overlapping schedules are safe.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from memory import telemetry
from memory.consolidation import Consolidator
from memory.secrets import settings_with_secrets

logger = logging.getLogger(__name__)
MARGIN_SECONDS = 60.0  # left for the last user in progress and the reply


@functools.cache
def consolidator() -> Consolidator:
    """The store, model and Claude client, made on the first run and kept for the container's life."""
    settings = settings_with_secrets()
    telemetry.configure(settings)
    return Consolidator.from_settings(settings)


@telemetry.lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    job = consolidator()
    budget = job.settings.consolidation_budget_seconds
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        budget = min(budget, context.get_remaining_time_in_millis() / 1000 - MARGIN_SECONDS)
    run = job.run_all(budget_seconds=max(budget, 0.0))  # with no time left: one user, then stop
    summary = {
        "users": len(run.users),
        "changed": sum(report.changed for report in run.users),
        "skipped": sum(report.skipped is not None for report in run.users),
        "model_calls": sum(report.model_calls for report in run.users),
        "errors": sum(len(report.errors) for report in run.users),
        "complete": run.complete,
        "seconds": round(run.seconds, 1),
        "notes": run.notes,
    }
    logger.info("consolidation: %s", summary)
    return summary
