# ruff: noqa: RUF001, RUF003 - full-width characters are what these tests are about
"""The membership rules end to end through ``communitykit rules check`` and
``simulate``: entry answers in Chinese and full-width letters, a full group that
overrules an approval, a captcha missed and one answered, and inactivity sweeps
at 10:00 New York time on both sides of the 2026-03-08 change to summer time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from communitykit.cli import main

HERE = Path(__file__).parent / "scenarios"
CONFIG = HERE / "membership.toml"
EVENTS = HERE / "membership.jsonl"


@pytest.fixture(scope="module")
def verdicts() -> list[dict[str, Any]]:
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(["rules", "check", str(CONFIG), str(EVENTS)]) == 0
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]


def by(verdicts: list[dict[str, Any]], rule: str) -> list[dict[str, Any]]:
    return [v for v in verdicts if v["rule"] == rule]


def types(verdict: dict[str, Any]) -> list[str]:
    return [a["type"] for a in verdict["actions"]]


def test_a_full_group_declines_even_an_approved_request(verdicts: list[dict[str, Any]]) -> None:
    dan = [v for v in verdicts if v["event_id"] == "r-dan"]
    entry, size_cap = sorted(dan, key=lambda v: v["rule"])
    assert types(entry) == [] and "overruled" in entry["explanation"]
    assert types(size_cap) == ["decline_join", "send_direct_message"]
    assert "https://t.example/+main2" in size_cap["actions"][1]["text"]
    assert "full (3 of 3)" in size_cap["explanation"]


def test_entry_reads_chinese_and_full_width_answers(verdicts: list[dict[str, Any]]) -> None:
    entry = {v["event_id"]: v for v in by(verdicts, "entry")}
    assert types(entry["r-eve"]) == ["decline_join", "send_direct_message"]
    assert "你在哪个城市？" in entry["r-eve"]["explanation"]
    assert types(entry["r-fay"]) == ["approve_join"]  # "ＮＹＣ" matches re:new york|nyc


def test_a_missed_captcha_removes_and_an_answered_one_welcomes(
    verdicts: list[dict[str, Any]],
) -> None:
    captcha = by(verdicts, "captcha")
    kicks = [v for v in captcha if types(v) == ["kick"]]
    assert [(v["member"], v["at"]) for v in kicks] == [
        ("console:fay", "2026-02-20T12:06:00-05:00")  # exactly at the deadline
    ]
    gus = [v for v in captcha if v["member"] == "console:gus"]
    assert [v["event_id"] for v in gus] == ["j-gus", "c-gus"]
    assert "correctly" in gus[1]["explanation"]


def test_inactivity_sweeps_at_ten_local_time_across_the_change_to_summer_time(
    verdicts: list[dict[str, Any]],
) -> None:
    sweeps = by(verdicts, "inactivity")
    reminders = [(v["member"], v["at"]) for v in sweeps if types(v) == ["send_direct_message"]]
    removals = [(v["member"], v["at"]) for v in sweeps if types(v) == ["kick"]]
    # 10:00 EST is 15:00 UTC; 10:00 EDT (from 2026-03-08) is 14:00 UTC
    assert reminders == [
        ("console:ben", "2026-03-06T15:00:00+00:00"),
        ("console:cat", "2026-03-06T15:00:00+00:00"),
        ("console:gus", "2026-03-07T15:00:00+00:00"),
    ]
    assert removals == [
        ("console:ben", "2026-03-14T14:00:00+00:00"),
        ("console:cat", "2026-03-14T14:00:00+00:00"),
        ("console:gus", "2026-03-15T14:00:00+00:00"),
    ]
    # amy talks every three days; fay was removed by the captcha long before
    assert not {m for m, _ in reminders + removals} & {"console:amy", "console:fay"}


def test_simulate_leaves_the_removed_members_out_of_the_community(tmp_path: Path) -> None:
    assert main(["simulate", str(CONFIG), str(EVENTS), "--out", str(tmp_path)]) == 0
    members = {
        row["member"]: row
        for row in map(json.loads, (tmp_path / "members.jsonl").read_text().splitlines())
    }
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["actions_by_type"]["kick"] == 4
    assert summary["actions_by_type"]["decline_join"] == 2
    assert {m for m, row in members.items() if row["stage"] == "left"} >= {
        "console:ben",
        "console:cat",
        "console:fay",
        "console:gus",
    }
    assert members["console:amy"]["stage"] != "left"
