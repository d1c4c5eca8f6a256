"""Run by tests/test_serverless_config.py as ``python -I -S tests/lambda_smoke.py TASK_DIR``: a bare interpreter
(no virtualenv, no site-packages) with only the unzipped Lambda package on its path, as in Lambda's /var/task.

Invokes the handlers as Lambda would and prints one JSON line of what they answered, with what the package's
ONNX embedder made of ``PARITY`` (the test compares it with sentence-transformers) and a remember + search on
SQLite through the library, as the package has it: torch is not there to import.
"""

import json
import sys

sys.path[:0] = [sys.argv[1]]

import handlers.api  # noqa: E402  (the path first, as Lambda's bootstrap does)
import handlers.migrate  # noqa: E402
import handlers.writeback  # noqa: E402  (imports without torch)
from memory import Memory, get_settings  # noqa: E402
from memory.embeddings import embedder_for  # noqa: E402

PARITY = ["I prefer metric units", "Émilie préfère le thé 🍵", "?!", " ".join(f"word{n}" for n in range(300))]


def call(method: str, path: str, key: str | None = None, body: object = None) -> tuple[int, object]:
    """An API Gateway HTTP API (payload 2.0) request, through Mangum."""
    headers = {"host": "api.example.com", "content-type": "application/json"}
    headers |= {"authorization": f"Bearer {key}"} if key else {}
    http = {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"}
    context = {"http": http, "stage": "$default", "requestId": "r", "routeKey": "$default"}
    event = {"version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "", "headers": headers}
    event |= {"requestContext": context, "body": None if body is None else json.dumps(body), "isBase64Encoded": False}
    response = handlers.api.handler(event, None)
    return response["statusCode"], json.loads(response["body"])


def on_sqlite() -> list[object]:
    """The library on an in-memory SQLite store, with the embedder the settings choose (auto)."""
    memory = Memory.from_url("sqlite://")
    memory.remember(user_id="u1", content="My sister Ana lives in Lisbon")
    [hit] = memory.search(user_id="u1", query="Who could I visit in Portugal?", top_k=1)
    return [type(memory.embedder).__name__, hit.entry.content]


def missing(*names: str) -> list[str]:
    absent = []
    for name in names:
        try:
            __import__(name)
        except ImportError:
            absent.append(name)
    return absent


print(
    json.dumps(
        {
            "healthz": call("GET", "/healthz"),
            "readyz": call("GET", "/readyz")[0],
            "list": call("GET", "/v1/users/u1/memories", sys.argv[2])[0],
            "remember": call("POST", "/v1/users/u1/memories", sys.argv[2], {"content": "I like green tea"}),
            "search": call("POST", "/v1/users/u1/memories/search", sys.argv[2], {"query": "which drink?"}),
            "forget": call("DELETE", "/v1/users/u1", sys.argv[2]),  # leaves the shared test database as it was
            "sqlite": on_sqlite(),
            "embedder": str(embedder_for(get_settings()).model_dir.relative_to(sys.argv[1])),
            "parity": [PARITY, embedder_for(get_settings()).embed(PARITY).tolist()],
            "migrate": handlers.migrate.handler({}, None)["revision"],
            "missing": missing("torch", "sentence_transformers", "transformers", "boto3"),
            "site": [path for path in sys.path if "site-packages" in path],
        }
    )
)
