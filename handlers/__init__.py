"""AWS Lambda entry points (serverless.yml): each adapts one kind of event to the library, nothing more.

``api`` (HTTP API -> the FastAPI app), ``writeback`` (SQS batch -> write-back of queued turns) and ``migrate``
(run once per deploy). Each builds its settings with ``memory.secrets.settings_with_secrets`` and its clients
once per container, and imports only what its events need.
"""
