"""Every store runs the same suite: the ``store`` fixture yields each implementation, open.

``sqlite-writer`` is the SQLite store with every batch, however small, written by
its writer process (as only large batches are in use).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from communitykit.store import MemoryStore, SQLiteStore, Store, _sql


def make_store(kind: str, tmp_path: Path) -> Store:
    if kind == "memory":
        return MemoryStore()
    if kind in ("sqlite", "sqlite-writer"):
        return SQLiteStore(tmp_path / "community.db")
    raise AssertionError(kind)


@pytest.fixture(params=["memory", "sqlite", "sqlite-writer"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Store]:
    if request.param == "sqlite-writer":
        monkeypatch.setattr(_sql, "WRITER_ROWS", 1)
    opened = make_store(request.param, tmp_path)
    opened.open()
    yield opened
    opened.close()
