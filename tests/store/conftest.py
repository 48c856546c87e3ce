"""Every store runs the same suite: the ``store`` fixture yields each implementation, open."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from communitykit.store import MemoryStore, SQLiteStore, Store


def make_store(kind: str, tmp_path: Path) -> Store:
    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite":
        return SQLiteStore(tmp_path / "community.db")
    raise AssertionError(kind)


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened = make_store(request.param, tmp_path)
    opened.open()
    yield opened
    opened.close()
