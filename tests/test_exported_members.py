"""``memory.__all__`` is the public face: complete, importable and nothing else (httpx's test idea)."""

from __future__ import annotations

import types

import memory


def test_all_names_exist_and_are_sorted() -> None:
    for name in memory.__all__:
        assert hasattr(memory, name), name
    assert memory.__all__ == sorted(memory.__all__)


def test_every_public_name_is_exported() -> None:
    public = {
        name
        for name, value in vars(memory).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(memory.__all__)


def test_exports_come_from_the_package() -> None:
    for name in memory.__all__:
        assert getattr(memory, name).__module__.startswith("memory."), name
