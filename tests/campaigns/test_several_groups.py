"""Members in several groups, through ``communitykit simulate``: one check-in per
community day across groups, a greeting per group but one admission notice, and
one referral per newcomer however many groups they join."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from communitykit.builtins.campaigns.referral import referral_code
from communitykit.cli import main

# Daylight saving time starts in New York on 2026-03-08.
CONFIG = """
[community]
name = "两个群的社区"
timezone = "America/New_York"

[[groups]]
key = "a"
platform = "console"
id = "ga"

[[groups]]
key = "b"
platform = "console"
id = "gb"

[[campaigns]]
type = "checkin"
reward = 5
remind = false

[[campaigns]]
type = "welcome"
admission_dm = "{name} 欢迎加入 新人指南请看群公告"

[[campaigns]]
type = "referral"
condition = "messages"
min_messages = 3
"""


def line(kind: str, n: int, user: str, group: str, at: str, **extra: Any) -> str:
    data = {
        "type": kind,
        "event_id": f"e{n}",
        "platform": "console",
        "group": group,
        "user": user,
        "at": at,
    }
    data.update(extra)
    return json.dumps(data, ensure_ascii=False)


def simulate(tmp_path: Path, lines: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    config = tmp_path / "community.toml"
    config.write_text(CONFIG, encoding="utf-8")
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    assert main(["simulate", str(config), str(events), "--out", str(out)]) == 0
    members = {
        row["member"]: row
        for row in map(json.loads, (out / "members.jsonl").read_text().split("\n")[:-1])
    }
    summary = json.loads((out / "summary.json").read_text())
    summary["actions"] = [json.loads(x) for x in (out / "actions.jsonl").read_text().splitlines()]
    summary["ledger"] = [json.loads(x) for x in (out / "ledger.jsonl").read_text().splitlines()]
    return members, summary


def test_members_in_two_groups(tmp_path: Path) -> None:
    code = referral_code("console:ana")
    joined, left, command, said = (
        "member_joined",
        "member_left",
        "command_invoked",
        "message_posted",
    )
    lines = [
        line(joined, 1, "ana", "ga", "2026-03-06T09:00:00-05:00", display_name="安娜"),
        line(joined, 2, "ana", "gb", "2026-03-06T09:05:00-05:00", display_name="安娜"),
        # one check-in per community day, whichever group it is made in
        line(command, 3, "ana", "ga", "2026-03-07T23:30:00-05:00", command="checkin", args=[]),
        line(command, 4, "ana", "gb", "2026-03-07T23:50:00-05:00", command="checkin", args=[]),
        line(command, 5, "ana", "gb", "2026-03-08T08:00:00-04:00", command="checkin", args=[]),
        line(command, 6, "ana", "ga", "2026-03-08T08:05:00-04:00", command="invite", args=[]),
        # bo joins both groups with ana's code, leaves one, stays and talks in the other
        line(joined, 7, "bo", "ga", "2026-03-08T09:00:00-04:00", invite=code),
        line(joined, 8, "bo", "gb", "2026-03-08T09:10:00-04:00", invite=code),
        line(left, 9, "bo", "ga", "2026-03-08T10:00:00-04:00", reason="left"),
        *[
            line(
                said,
                10 + n,
                "bo",
                "gb",
                f"2026-03-08T1{n}:30:00-04:00",
                message_id=f"m{n}",
                text="你好",
            )
            for n in range(3)
        ],
        # cy joins both with the code and leaves both: the reward is cancelled
        line(joined, 20, "cy", "ga", "2026-03-08T11:00:00-04:00", invite=code),
        line(joined, 21, "cy", "gb", "2026-03-08T11:05:00-04:00", invite=code),
        line(left, 22, "cy", "ga", "2026-03-08T11:10:00-04:00", reason="left"),
        line(left, 23, "cy", "gb", "2026-03-08T11:20:00-04:00", reason="left"),
    ]
    members, summary = simulate(tmp_path, lines)

    # check-in: the 7th (twice, in two groups: once) and the 8th, across the DST change
    assert members["console:ana"]["streak"] == 2
    checkins = [e for e in summary["ledger"] if e["reason"] == "checkin"]
    assert len(checkins) == 2
    assert summary["campaigns"]["checkin"]["checked_in"]["2026-03-07"] == 1

    # welcome: greeted in each group joined, the admission notice once per member
    welcome = [a for a in summary["actions"] if a["source"] == "campaign:welcome"]
    greeted = sorted((a["user"], a["group"]) for a in welcome if a["type"] == "send_message")
    assert greeted == [(u, g) for u in ("ana", "bo", "cy") for g in ("ga", "gb")]
    notices = sorted(a["user"] for a in welcome if a["type"] == "send_direct_message")
    assert notices == ["ana", "bo", "cy"]

    # referral: bo counted once and confirmed though he left one group; cy cancelled
    numbers = summary["campaigns"]["referral"]
    assert (numbers["confirmed"], numbers["cancelled"], numbers["pending"]) == (1, 1, 0)
    referral = [e for e in summary["ledger"] if e["reason"] == "referral"]
    assert sorted(e["kind"] for e in referral) == ["credit", "pending", "pending"]
    assert summary["points"]["pending"] == 0
    assert members["console:ana"]["balance"] == 5 + 5 + 50
    assert not [e for e in referral if e["member"] != "console:ana"]


def test_a_campaign_naming_an_unknown_group_is_refused_at_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "community.toml"
    config.write_text(CONFIG + 'group = "c"\n', encoding="utf-8")  # the referral's link group
    events = tmp_path / "events.jsonl"
    events.write_text("", encoding="utf-8")
    assert main(["simulate", str(config), str(events), "--out", str(tmp_path / "out")]) != 0
    err = capsys.readouterr().err
    assert 'campaigns[2].group: unknown group "c" in campaign "referral" (type referral)' in err
    assert not (tmp_path / "out").exists()
