"""A group that gets a new platform id stays the same group, across restarts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from communitykit import CommunityApp, SimulatedClock, parse_config

pytestmark = pytest.mark.anyio

CONFIG = """
[community]
name = "moves"
timezone = "UTC"
store = "sqlite:///{db}"

[[groups]]
key = "beijing-1"
platform = "telegram"
id = "-123"
"""


def app_at(path: Path) -> CommunityApp:
    config = parse_config(CONFIG.format(db=path))
    app = CommunityApp(config, clock=SimulatedClock(datetime(2026, 3, 1, tzinfo=UTC)))
    app.open(with_adapters=False)
    return app


async def test_a_moved_group_keeps_its_key_and_both_ids_after_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    app = app_at(db)
    await app.group_moved("telegram", "-123", "-1000000000123")
    await app.group_moved("telegram", "-123", "-1000000000123")  # told twice: no change
    group = app.engine.community.group("telegram", "-1000000000123")
    assert group is not None and group.key == "beijing-1"
    app.close()

    again = app_at(db)
    try:
        community = again.engine.community
        new = community.group("telegram", "-1000000000123")
        old = community.group("telegram", "-123")
        assert new is not None and old is not None
        assert new.key == old.key == "beijing-1"
        assert new.group_id == "-1000000000123"  # actions go to the new id
        assert [g.group_id for g in community.groups_on("telegram")] == ["-1000000000123"]
    finally:
        again.close()


async def test_a_group_not_configured_is_remembered_without_error(tmp_path: Path) -> None:
    app = app_at(tmp_path / "c.db")
    try:
        await app.group_moved("telegram", "-999", "-1000000000999")
        assert app.engine.community.group("telegram", "-1000000000999") is None
    finally:
        app.close()
