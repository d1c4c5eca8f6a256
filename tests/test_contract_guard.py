"""Guards the contract suite (tests/contract/): no contract test is removed, redefined or disabled, and
every backend registered in ``STORE_FACTORIES`` runs every one of them.

``tests/contract/MANIFEST.txt`` lists the contract tests; change it in the same commit that adds or
(deliberately) removes one.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from memory.stores.base import CAPABILITIES
from memory.stores.sqlite import SQLiteStore
from tests.contract.conftest import STORE_FACTORIES, missing_capability

CONTRACT_DIR = Path(__file__).parent / "contract"
MANIFEST = CONTRACT_DIR / "MANIFEST.txt"
DISABLING = {"skip", "skipif", "xfail", "importorskip"}
SHARED_FIXTURES = {"store", "mem", "make_entry", "embedder"}


def contract_modules() -> dict[str, ast.Module]:
    return {path.name: ast.parse(path.read_text()) for path in sorted(CONTRACT_DIR.glob("test_*.py"))}


def defined_tests() -> list[str]:
    """``module::name`` of every test function, including one defined twice under the same name."""
    return [
        f"{module}::{node.name}"
        for module, tree in contract_modules().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    ]


def manifest() -> set[str]:
    return {line.strip() for line in MANIFEST.read_text().splitlines() if line.strip() and not line.startswith("#")}


def test_manifest_matches_the_contract_tests() -> None:
    found = defined_tests()

    assert [name for name, n in Counter(found).items() if n > 1] == [], "redefined: the later one hides the first"
    assert sorted(manifest() - set(found)) == [], "contract tests were removed; restore them or edit MANIFEST.txt"
    assert sorted(set(found) - manifest()) == [], "new contract tests: add them to tests/contract/MANIFEST.txt"


def test_no_contract_test_is_disabled_or_overridden() -> None:
    """Backends differ by capability (``requires``), never by a skip or xfail written for one of them,
    and no module swaps the shared fixtures for its own."""
    for module, tree in contract_modules().items():
        disabled = [f"line {n.lineno}" for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr in DISABLING]
        assert disabled == [], f"{module} skips or xfails tests: {disabled}"
        shadowed = [n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name in SHARED_FIXTURES]
        assert shadowed == [], f"{module} overrides contract fixtures: {shadowed}"


def test_requires_names_only_registered_capabilities() -> None:
    used = {
        node.args[0].value
        for tree in contract_modules().values()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "requires"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }

    assert used, "no contract test uses @pytest.mark.requires; this guard would check nothing"
    assert used <= set(CAPABILITIES)


def test_a_missing_capability_skips_with_its_registered_reason(tmp_path: Path) -> None:
    assert missing_capability(SQLiteStore(":memory:"), "persistent").endswith(CAPABILITIES["persistent"])
    assert missing_capability(SQLiteStore(str(tmp_path / "m.db")), "persistent") is None
    with pytest.raises(pytest.fail.Exception, match=r"teleport.*CAPABILITIES"):
        missing_capability(SQLiteStore(":memory:"), "teleport")


def test_every_backend_runs_every_contract_test() -> None:
    """Collects tests/contract/ as pytest does and checks each test is parametrized over every backend."""
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", str(CONTRACT_DIR)],
        capture_output=True,
        text=True,
        cwd=CONTRACT_DIR.parent.parent,
        check=False,
    )
    assert collected.returncode == 0, collected.stdout + collected.stderr
    backends: defaultdict[str, set[str]] = defaultdict(set)
    for line in collected.stdout.splitlines():
        if match := re.fullmatch(r"tests/contract/(\S+?\.py::\w+)(?:\[(.*)\])?", line.strip()):
            name, params = match.groups()
            backends[name] |= {b for b in STORE_FACTORIES if params and re.search(rf"(^|-){re.escape(b)}(-|$)", params)}

    assert set(backends) == manifest()
    missing = {
        name: sorted(set(STORE_FACTORIES) - got) for name, got in backends.items() if got != set(STORE_FACTORIES)
    }
    assert missing == {}
