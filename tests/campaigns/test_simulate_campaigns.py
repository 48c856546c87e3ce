"""Campaigns through ``communitykit simulate``: streaks in members.jsonl and the
check-in numbers in summary.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from communitykit.cli import main

CONFIG = """
[community]
name = "早起俱乐部"
timezone = "Asia/Shanghai"

[[groups]]
key = "main"
platform = "console"
id = "g1"

[[campaigns]]
type = "checkin"
reward = 5
remind = false
"""


def checkin(n: int, user: str, at: str) -> str:
    return json.dumps(
        {
            "type": "command_invoked",
            "event_id": f"c{n}",
            "platform": "console",
            "group": "g1",
            "user": user,
            "at": at,
            "command": "checkin",
            "args": [],
        }
    )


def test_simulate_writes_streaks_and_checkin_numbers(tmp_path: Path) -> None:
    config = tmp_path / "community.toml"
    config.write_text(CONFIG + '\n[[campaigns]]\ntype = "recall"\n', encoding="utf-8")
    lines = [
        # ana: three community days in a row (the first just before midnight in Shanghai)
        checkin(1, "ana", "2026-03-01T23:50:00+08:00"),
        checkin(2, "ana", "2026-03-01T16:10:00+00:00"),  # 00:10 on the 2nd in Shanghai
        checkin(3, "ana", "2026-03-03T07:00:00+08:00"),
        checkin(4, "ana", "2026-03-03T08:00:00+08:00"),  # the same day again: nothing
        # bo: the 1st and the 3rd, a day missed
        checkin(5, "bo", "2026-03-01T09:00:00+08:00"),
        checkin(6, "bo", "2026-03-03T09:00:00+08:00"),
    ]
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    assert main(["simulate", str(config), str(events), "--out", str(out)]) == 0
    members = {
        row["member"]: row
        for row in map(json.loads, (out / "members.jsonl").read_text().splitlines())
    }
    assert members["console:ana"]["streak"] == 3
    assert members["console:bo"]["streak"] == 1
    assert members["console:ana"]["balance"] == 15  # three days, three rewards
    campaigns = json.loads((out / "summary.json").read_text())["campaigns"]
    assert campaigns["recall"]["contacted"] == 0  # nobody silent long enough yet
    numbers = campaigns["checkin"]
    assert numbers["members"] == 2
    assert numbers["checked_in"] == {"2026-03-01": 2, "2026-03-02": 1, "2026-03-03": 2}


def test_campaigns_report_shows_the_checkin_numbers_of_a_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio
    from datetime import UTC, datetime, timedelta

    from communitykit import CommandInvoked, CommunityApp

    config = tmp_path / "community.toml"
    config.write_text(CONFIG + "\n[platforms.console]\n", encoding="utf-8")

    async def check_in() -> None:
        # yesterday and today (the command line reads the wall clock)
        now = datetime.now(UTC).replace(microsecond=0)
        async with CommunityApp.from_file(config) as app:
            for n, at in enumerate((now - timedelta(days=1), now)):
                await app.feed(
                    [
                        CommandInvoked(
                            event_id=f"c{n}",
                            platform="console",
                            group="g1",
                            user="ana",
                            at=at,
                            command="checkin",
                            args=(),
                        )
                    ]
                )

    asyncio.run(check_in())
    capsys.readouterr()
    assert main(["campaigns", "report", str(config), "--days", "7", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    numbers = report["checkin"]
    assert numbers["members remembered"] == 1 and numbers["members"] == 1
    assert sum(numbers["checked_in"].values()) == 2 and len(numbers["checked_in"]) == 7
    assert main(["campaigns", "report", str(config)]) == 0
    assert "campaign checkin" in capsys.readouterr().out
