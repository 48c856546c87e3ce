"""``[[auto_tags]]``: tags follow segments, daily, through the engine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from communitykit.testing import memory_app
from tests.segments.helpers import joined, posted

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
DAY = timedelta(days=1)

CONFIG = """
[community]
name = "tags"
store = "memory://"

[segments.photographers]
type = "posted"
messages = 2
media = "photo"
period = "30d"

[[auto_tags]]
tag = "photographer"
segment = "photographers"
remove = true

[[auto_tags]]
tag = "regular"
where = "new or active or recalled"
"""


def stored_tags(app: object, member_id: str) -> frozenset[str]:
    members = {m.member_id: m for m in app.store.load_members()}  # type: ignore[attr-defined]
    return members[member_id].tags


async def test_tags_are_added_on_entering_and_removed_on_leaving_the_segment() -> None:
    app, clock = memory_app(config_text=CONFIG, start=T0)
    app.open(with_adapters=False)
    await app.feed([joined("ana", T0), joined("bo", T0), joined("cy", T0)])
    await app.engine.retag("console:bo", add=frozenset({"photographer"}))  # by hand
    await app.feed(
        [
            posted("ana", T0 + timedelta(hours=1), media="photo"),
            posted("ana", T0 + timedelta(hours=2), media="photo"),
            posted("cy", T0 + timedelta(hours=3), media="photo"),
        ]
    )
    assert "photographer" not in app.get_member("console:ana").tags  # not before the sweep
    await app.engine.advance_to(T0 + DAY, clock.set)  # the midnight between
    assert app.get_member("console:ana").tags == {"photographer", "regular"}
    # bo is not a photographer: the tag given by hand goes (remove = true)
    assert app.get_member("console:bo").tags == {"regular"}
    assert app.get_member("console:cy").tags == {"regular"}  # one photo is not enough
    assert stored_tags(app, "console:ana") == {"photographer", "regular"}
    # a month on: ana's photos are older than 30 days and she is silent
    await app.engine.advance_to(T0 + 40 * DAY, clock.set)
    assert app.get_member("console:ana").tags == {"regular"}  # "regular" is never removed
    assert stored_tags(app, "console:ana") == {"regular"}
    report = app.campaign_report(days=60)
    assert report["auto_tags"]["tagged photographer"] == 0
    assert report["auto_tags"]["tagged regular"] == 3


def test_simulate_runs_the_auto_tags_too(tmp_path: object) -> None:
    import json
    from pathlib import Path

    from communitykit.cli import main

    folder = Path(str(tmp_path))
    config = folder / "community.toml"
    config.write_text(CONFIG, encoding="utf-8")
    rows = [
        {
            "type": "member_joined",
            "event_id": "j",
            "platform": "console",
            "group": "g",
            "user": "ana",
            "at": "2026-03-01T10:00:00+00:00",
        },
        *[
            {
                "type": "message_posted",
                "event_id": f"m{n}",
                "platform": "console",
                "group": "g",
                "user": "ana",
                "at": f"2026-03-0{n + 1}T10:00:00+00:00",
                "message_id": str(n),
                "text": "x",
                "media": "photo",
            }
            for n in range(1, 4)
        ],
    ]
    events = folder / "events.jsonl"
    events.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    assert main(["simulate", str(config), str(events), "--out", str(folder / "out")]) == 0
    (member,) = map(json.loads, (folder / "out" / "members.jsonl").read_text().splitlines())
    assert "photographers" in member["segments"]
    summary = json.loads((folder / "out" / "summary.json").read_text())
    assert summary["campaigns"]["auto_tags"]["tagged photographer"] == 1
