"""``simulate`` writes each member's recalled-aware stage and configured segments."""

from __future__ import annotations

import json
from pathlib import Path

from communitykit.cli import main

CONFIG = """
[community]
name = "sim"
store = "memory://"

[segments.chatty]
type = "posted"
messages = 2
period = "30d"

[segments.quiet_ones]
where = "silent or churned"
"""


def line(kind: str, n: int, user: str, at: str, **extra: object) -> str:
    data = {
        "type": kind,
        "event_id": f"e{n}",
        "platform": "console",
        "group": "g",
        "user": user,
        "at": at,
        **extra,
    }
    return json.dumps(data)


def test_simulate_writes_recalled_stages_and_segments(tmp_path: Path) -> None:
    config = tmp_path / "community.toml"
    config.write_text(CONFIG, encoding="utf-8")
    events = tmp_path / "events.jsonl"
    rows = [
        line("member_joined", 1, "ana", "2026-03-01T10:00:00+00:00"),
        line("member_joined", 2, "bo", "2026-03-01T10:00:00+00:00"),
        line("message_posted", 3, "ana", "2026-03-02T10:00:00+00:00", message_id="1", text="a"),
        line("message_posted", 4, "ana", "2026-04-01T10:00:00+00:00", message_id="2", text="b"),
        line("message_posted", 5, "ana", "2026-04-01T11:00:00+00:00", message_id="3", text="c"),
    ]
    events.write_text("\n".join(rows) + "\n", encoding="utf-8")
    assert main(["simulate", str(config), str(events), "--out", str(tmp_path / "out")]) == 0
    members = {
        row["member"]: row
        for row in map(json.loads, (tmp_path / "out" / "members.jsonl").read_text().splitlines())
    }
    ana, bo = members["console:ana"], members["console:bo"]
    assert ana["stage"] == "recalled"
    assert {"all", "recalled", "chatty"} <= set(ana["segments"])
    assert "quiet_ones" not in ana["segments"]
    assert bo["stage"] == "silent"
    assert {"all", "silent", "quiet_ones"} <= set(bo["segments"])
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["members_by_stage"] == {"recalled": 1, "silent": 1}
    assert summary["members_by_segment"]["chatty"] == 1
    assert summary["members_by_segment"]["all"] == 2
