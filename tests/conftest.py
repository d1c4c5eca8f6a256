"""Fixtures shared by every test: a clean environment, the real embedding model, and fresh services.

The embedder is the real all-MiniLM-L6-v2, loaded once per test session (about 4 s); nothing is mocked.
``onnx_embedder`` runs the same model from the ONNX export that ``make onnx`` writes (``make test`` makes it
first): a test that needs it fails, naming the command, when the export is missing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from memory import Memory, get_settings, telemetry
from memory.embeddings import SentenceTransformerEmbedder, get_embedder
from memory.embeddings_onnx import OnnxEmbedder, default_onnx_model_dir, get_onnx_embedder, onnx_available
from memory.stores.sqlite import SQLiteStore
from tests.messages_api import MessagesAPI
from tests.postgres_auth import PasswordServer, password_server
from tests.postgres_support import PostgresDatabase, postgres_database


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--contract-embedder",
        choices=("both", "onnx", "st"),
        default="both",
        help="the embedders of tests/contract: both (default), onnx, or st (sentence-transformers)",
    )


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts without MEMORY_* settings from the developer's shell (encode/httpx style), and with
    telemetry afresh; the CLI's local telemetry file is off, so no test writes one in the working directory."""
    for name in list(os.environ):
        if name.startswith(("MEMORY_", "UPSTASH_", "ANTHROPIC_")) or name == "SESSION_STORE_URL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("MEMORY_TELEMETRY_FILE", "none")
    yield
    telemetry.reset()


@pytest.fixture(scope="session")
def st_embedder() -> SentenceTransformerEmbedder:
    model = get_embedder()
    model.warm_up()
    return model


@pytest.fixture(scope="session")
def embedder(st_embedder: SentenceTransformerEmbedder) -> SentenceTransformerEmbedder:
    """sentence-transformers, the reference (tests/contract/ swaps in the ONNX embedder)."""
    return st_embedder


@pytest.fixture(scope="session")
def onnx_embedder() -> OnnxEmbedder:
    folder = default_onnx_model_dir()
    if not onnx_available(folder):
        pytest.fail(f"no ONNX export in {folder} (or no onnxruntime): run `make onnx` (`make test` does it)")
    model = get_onnx_embedder(str(folder))
    model.warm_up()
    return model


@pytest.fixture
def memory(embedder: SentenceTransformerEmbedder) -> Iterator[Memory]:
    """A ``Memory`` over a fresh in-memory SQLite store with default settings."""
    mem = Memory(SQLiteStore(":memory:"), embedder, get_settings())
    yield mem
    mem.close()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresDatabase]:
    """A migrated Postgres database (embedded, or on the server DATABASE_URL names) for the session.

    A server that cannot start fails the tests that need it; nothing is skipped.
    """
    with postgres_database(tmp_path_factory.mktemp("postgres")) as database:
        yield database


@pytest.fixture(scope="session")
def password_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PasswordServer]:
    """A Postgres server of its own that wants a password from everyone and logs every statement
    (tests/postgres_auth.py): where the application login's password is checked, and looked for in the log."""
    with password_server(tmp_path_factory.mktemp("postgres-auth")) as server:
        yield server


@pytest.fixture
def messages_api() -> Iterator[MessagesAPI]:
    """A fake Anthropic Messages API on a loopback port (tests/messages_api.py); the real SDK talks to it."""
    with MessagesAPI() as server:
        yield server
