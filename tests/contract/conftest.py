"""Fixtures of the contract suite: every registered backend, opened empty, behind one ``store`` fixture.

A new backend joins by adding one line to ``STORE_FACTORIES``; every contract test then runs on it
unchanged, and ``tests/test_contract_guard.py`` fails if one does not. Backends differ only by capability
flags from ``memory.stores.base.CAPABILITIES``, never by name: a test marked
``@pytest.mark.requires("persistent")`` is skipped, citing the registered reason, on a store without it.

Every test that embeds runs with both embedders (``st-`` and ``onnx-`` in its id): sentence-transformers, the
reference, and the ONNX export (``memory/embeddings_onnx.py``) that the Lambda package ships and that
``MEMORY_EMBEDDER=auto`` picks wherever ``make onnx`` has run. ``--contract-embedder onnx`` (or ``st``) runs
one of them, in about half the time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from memory import Memory, get_settings
from memory.embeddings import Embedder
from memory.models import MemoryEntry, MemoryFilter, Scope
from memory.stores.base import CAPABILITIES, MemoryStore
from memory.stores.postgres import PostgresStore
from memory.stores.qdrant import QdrantStore
from memory.stores.sqlite import SQLiteStore
from memory.turns import TurnStatus


def postgres_store(request: pytest.FixtureRequest, tmp_path: Path) -> MemoryStore:
    """Postgres as the application role (row-level security in force), emptied before the test."""
    database = request.getfixturevalue("postgres")
    database.truncate()
    return PostgresStore(database.app_url)


# Each factory gets the test's request (to reach session fixtures such as ``postgres``) and tmp_path.
STORE_FACTORIES: dict[str, Callable[[pytest.FixtureRequest, Path], MemoryStore]] = {
    "sqlite-memory": lambda request, tmp_path: SQLiteStore(":memory:"),
    "sqlite-file": lambda request, tmp_path: SQLiteStore(str(tmp_path / "m.db")),
    "postgres": postgres_store,
    "qdrant-local": lambda request, tmp_path: QdrantStore(":memory:"),
    "qdrant-local-file": lambda request, tmp_path: QdrantStore(str(tmp_path / "qdrant")),
}

# No contract test writes here: the store fixture checks it is empty before and after each test.
PROBE = Scope(user_id="contract-probe", tenant_id="contract-probe")
EVERYTHING = MemoryFilter(include_inactive=True, include_expired=True)


def missing_capability(store: MemoryStore, capability: str) -> str | None:
    """The registered reason to skip when ``store`` lacks ``capability``; fails on an unregistered name."""
    if capability not in CAPABILITIES:
        pytest.fail(
            f"@pytest.mark.requires({capability!r}): no such capability; register it in "
            f"memory.stores.base.CAPABILITIES (known: {', '.join(sorted(CAPABILITIES))})",
            pytrace=False,
        )
    if capability in store.capabilities:
        return None
    return f"store lacks capability {capability!r}: {CAPABILITIES[capability]}"


def state(entry: MemoryEntry) -> dict[str, Any]:
    """Every field of an entry, comparable with ``==`` (the embedding as bytes: arrays do not compare)."""
    fields = {f.name: getattr(entry, f.name) for f in dataclasses.fields(entry)}
    fields["embedding"] = None if entry.embedding is None else entry.embedding.tobytes()
    return fields


def assert_scope_empty(store: MemoryStore, scope: Scope = PROBE) -> None:
    assert store.count(scope, EVERYTHING) == 0
    assert store.list(scope, EVERYTHING) == []
    assert store.history(scope) == []
    assert store.list_turns(scope, TurnStatus) == []


@pytest.fixture(params=list(STORE_FACTORIES), ids=str)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MemoryStore]:
    """An opened, empty store of each registered backend. A store that cannot start fails the test."""
    backend = STORE_FACTORIES[request.param](request, tmp_path)
    try:
        for marker in request.node.iter_markers("requires"):
            reason = missing_capability(backend, *marker.args)
            if reason is not None:
                pytest.skip(reason)
        backend.open()
        assert_scope_empty(backend)
        yield backend
        assert_scope_empty(backend)  # nothing the test did leaked into a scope it never named
    finally:
        backend.close()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "embedder" in metafunc.fixturenames:
        chosen = metafunc.config.getoption("contract_embedder")
        kinds = ["st", "onnx"] if chosen == "both" else [chosen]
        metafunc.parametrize("embedder", kinds, indirect=True, scope="session")


@pytest.fixture(scope="session")
def embedder(request: pytest.FixtureRequest) -> Embedder:
    """sentence-transformers (the session's) or the ONNX embedder, as ``pytest_generate_tests`` asks."""
    return request.getfixturevalue("st_embedder" if request.param == "st" else "onnx_embedder")


@pytest.fixture
def mem(store: MemoryStore, embedder: Embedder) -> Memory:
    """The ``Memory`` facade over the parametrized store, with default settings."""
    return Memory(store, embedder, get_settings())


@pytest.fixture
def make_entry(embedder: Embedder) -> Callable[..., MemoryEntry]:
    """Build a ``MemoryEntry`` embedded by the real model, for tests that write to the store directly."""

    def make(content: str, *, user_id: str = "alice", **fields: Any) -> MemoryEntry:
        fields.setdefault("embedding", embedder.embed([content])[0])
        fields.setdefault("embedding_model", embedder.model_name)
        return MemoryEntry(user_id=user_id, content=content, **fields)

    return make
