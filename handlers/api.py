"""API Gateway HTTP API (payload 2.0) -> the FastAPI app of ``memory.api``, through Mangum.

The app is built at import, in Lambda's init phase, once per container: ``create_app`` is cheap (the store,
the embedding model and the Claude client load on the first request that needs them), so a cold start that
answers ``/healthz`` pays for FastAPI alone. ``lifespan="off"``: Mangum would otherwise run the app's
startup and shutdown around every invocation, closing the connections each request should reuse.
``telemetry.lambda_handler`` puts the invocation's request id on its EMF and JSON log lines.
"""

from __future__ import annotations

from mangum import Mangum

from memory import telemetry
from memory.api import create_app
from memory.secrets import settings_with_secrets

handler = telemetry.lambda_handler(Mangum(create_app(settings_with_secrets()), lifespan="off"))
