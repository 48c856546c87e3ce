"""Segments of a running community: built-ins, configured ones, CSV export, the CLI."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from communitykit import ConfigError
from communitykit._clock import SimulatedClock
from communitykit._segments import UnknownSegment
from communitykit.app import CommunityApp
from communitykit.cli import main
from communitykit.testing import memory_app
from tests.segments.helpers import joined, left, posted, reacted

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
DAY = timedelta(days=1)

CONFIG = """
[community]
name = "seg"
store = "memory://"

[[groups]]
key = "main"
platform = "console"
id = "g1"

[[tiers.ladder]]
name = "base"
threshold = 0

[[tiers.ladder]]
name = "gold"
threshold = 5

[segments.photographers]
type = "posted"
messages = 2
media = "photo"
period = "30d"

[segments.engaged_gold]
where = "tier:gold and (active or contributors) and not tag:staff"

[segments.helpful]
type = "contributors"
responses = 2
days = 7
"""


def member_id(app: CommunityApp, user: str) -> str:
    member = app.member("console", user)
    assert member is not None
    return member.member_id


async def populated() -> tuple[CommunityApp, SimulatedClock]:
    app, clock = memory_app(config_text=CONFIG, start=T0)
    app.open(with_adapters=False)
    events = [
        joined("ana", T0, "Ana"),
        joined("bo", T0, "=cmd|' /C calc'!A0"),
        joined("cy", T0, "Cy"),
        joined("dee", T0, "Dee"),
        joined("eve", T0, "Eve"),
    ]
    await app.feed(events)
    at = T0 + 10 * DAY
    clock.set(at)
    # ana posts two photos and draws a reply and a reaction; bo replies
    await app.feed(
        [
            posted("ana", at, "a1", media="photo"),
            posted("ana", at + timedelta(minutes=1), "a2", media="photo"),
            posted("bo", at + timedelta(minutes=2), "b1", reply_to="a1"),
            reacted("cy", "ana", "a2", at + timedelta(minutes=3)),
            reacted("ana", "ana", "a2", at + timedelta(minutes=4)),  # her own: not counted
        ]
    )
    await app.feed([left("dee", at + timedelta(minutes=5))])
    clock.set(at + timedelta(hours=1))
    return app, clock


async def test_built_in_and_configured_segments_pick_the_right_members() -> None:
    app, _ = await populated()
    ana, bo, cy, dee, eve = (member_id(app, u) for u in ("ana", "bo", "cy", "dee", "eve"))
    assert app.segment("all") == {ana, bo, cy, eve}
    assert app.segment("left") == {dee}
    assert app.segment("active") == {ana, bo, cy}
    assert app.segment("silent") == {eve}
    assert app.segment("photographers") == {ana}
    assert app.segment("helpful") == {ana}  # a reply from bo + a reaction from cy
    assert app.segment("contributors") == frozenset()  # needs 3 by default
    assert app.segment("active and not photographers") == {bo, cy}
    assert app.segment("platform:console") == {ana, bo, cy, eve}
    assert app.segment("group:main") == {ana, bo, cy, eve}
    segments = app.segments()
    assert segments["photographers"] == {ana}
    assert set(segments) >= {"all", "active", "new", "recalled", "paying", "admins", "kols"}


async def test_unknown_names_are_refused_with_a_hint() -> None:
    app, _ = await populated()
    with pytest.raises(UnknownSegment, match="did you mean 'photographers'"):
        app.segment("photographer")
    with pytest.raises(UnknownSegment, match="unknown tier 'platinum'"):
        app.segment("tier:platinum")
    with pytest.raises(UnknownSegment, match="cannot read segment"):
        app.segment("active and")


async def test_the_csv_export_has_one_row_per_member_and_no_formulas() -> None:
    app, _ = await populated()
    await app.engine.retag(member_id(app, "ana"), add=frozenset({"+vip"}))
    rows = list(csv.DictReader(io.StringIO(app.export_segment("all"))))
    assert [r["display_name"] for r in rows] == ["Ana", "'=cmd|' /C calc'!A0", "Cy", "Eve"]
    by_name = {r["display_name"]: r for r in rows}
    ana = by_name["Ana"]
    assert ana["platforms"] == "console"
    assert ana["tier"] in ("base", "gold")
    assert ana["stage"] == "active"
    assert ana["tags"] == "'+vip"
    assert int(ana["balance"]) == app.balance(ana["member"])
    assert list(rows[0]) == [
        "member",
        "display_name",
        "platforms",
        "tier",
        "stage",
        "balance",
        "tags",
    ]


async def test_a_segment_type_no_plugin_offers_is_a_config_error_at_open() -> None:
    app, _ = memory_app(config_text=CONFIG + '\n[segments.odd]\ntype = "astrology"\n')
    with pytest.raises(ConfigError, match=r"segments\.odd\.type: unknown segment type 'astrology'"):
        app.open(with_adapters=False)


def test_the_segments_commands_list_show_and_export(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "community.toml"
    config.write_text(CONFIG.replace("memory://", "sqlite:///c.db"), encoding="utf-8")
    import asyncio

    async def fill() -> None:
        app = CommunityApp.from_file(config)
        app.open(with_adapters=False)
        await app.feed([joined("ana", T0, "@ana"), posted("ana", T0 + DAY)])
        app.close()

    asyncio.run(fill())
    capsys.readouterr()
    assert main(["segments", "list", str(config)]) == 0
    listed = capsys.readouterr().out
    assert "photographers" in listed and "engaged_gold" in listed
    assert main(["segments", "show", str(config), "all"]) == 0
    assert "1 member(s)" in capsys.readouterr().out
    out = tmp_path / "all.csv"
    assert main(["segments", "export", str(config), "all", "--out", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert [r["display_name"] for r in rows] == ["'@ana"]
    assert main(["segments", "show", str(config), "nobody"]) == 1
    assert "unknown segment 'nobody'" in capsys.readouterr().err


def test_segments_export_counts_members_not_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "community.toml"
    config.write_text(CONFIG.replace("memory://", "sqlite:///c.db"), encoding="utf-8")
    import asyncio

    async def fill() -> None:
        app = CommunityApp.from_file(config)
        app.open(with_adapters=False)
        await app.feed([joined("ana", T0, "Ana\non two lines"), joined("bo", T0, "Bo\r\nB.")])
        app.close()

    asyncio.run(fill())
    capsys.readouterr()
    out = tmp_path / "all.csv"
    assert main(["segments", "export", str(config), "all", "--out", str(out)]) == 0
    assert "wrote 2 member(s)" in capsys.readouterr().err
    rows = list(csv.DictReader(io.StringIO(out.read_bytes().decode("utf-8"), newline="")))
    assert [r["display_name"] for r in rows] == ["Ana\non two lines", "Bo\r\nB."]
