"""The message rules end to end: a hand-written event log (Chinese text, full-width
characters, timestamps in two UTC offsets, a message arriving late) through
``communitykit rules check`` and ``communitykit simulate``; then the audit trail,
pardons, roles and tags on a SQLite store through the command line."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from communitykit import CommunityApp, MessagePosted, SimulatedClock, load_config
from communitykit.cli import main

HERE = Path(__file__).parent / "scenarios"
CONFIG = HERE / "content.toml"
EVENTS = HERE / "content.jsonl"


def verdicts(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    assert main(["rules", "check", str(CONFIG), str(EVENTS)]) == 0
    captured = capsys.readouterr()
    return [json.loads(line) for line in captured.out.splitlines() if line.strip()]


def test_rules_check_prints_one_verdict_per_offence_and_counts_per_rule(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["rules", "check", str(CONFIG), str(EVENTS)]) == 0
    captured = capsys.readouterr()
    found = [json.loads(line) for line in captured.out.splitlines() if line.strip()]
    assert [(v["event_id"], v["rule"]) for v in found] == [
        ("m2", "keywords"),  # 加微信
        ("m3", "links"),  # a full-width domain, not on the allowlist
        ("m4", "links"),  # an allowed domain, but from a member of three hours
        ("f4", "flood"),  # four messages in four seconds, in two offsets and two groups
        ("d3", "duplicates"),  # the third copy within the hour, across groups
    ]
    assert "verdicts per rule" in captured.err and "15:" in captured.err  # the broken line
    assert "no platform was touched" in captured.err


def test_the_ladder_escalates_across_rules_and_the_explanations_name_the_cause(
    capsys: pytest.CaptureFixture[str],
) -> None:
    found = {(v["event_id"], v["rule"]): v for v in verdicts(capsys)}
    keywords = found[("m2", "keywords")]
    assert '"加微信"' in str(keywords["explanation"])
    assert [a["type"] for a in keywords["actions"]] == ["delete_message", "warn"]  # type: ignore[union-attr]
    links = found[("m3", "links")]
    assert "spamshop.com" in str(links["explanation"])
    # bo's second offence (another rule) takes the second step: a mute of one hour
    mute = links["actions"][1]  # type: ignore[index]
    assert mute["type"] == "mute" and mute["until"] == "2026-03-02T11:02:00+08:00"
    assert "new member" in str(found[("m4", "links")]["explanation"])
    flood = found[("f4", "flood")]
    assert {a["group"] for a in flood["actions"]} == {"g-main", "g-side"}  # type: ignore[union-attr]
    assert "3 times" in str(found[("d3", "duplicates")]["explanation"])


def test_a_late_message_and_an_allowed_link_get_no_verdict(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ids = {v["event_id"] for v in verdicts(capsys)}
    assert not ids & {"m1", "m5", "f1", "f2", "f3", "d1", "d2"}


def test_simulate_writes_the_same_actions_twice_and_counts_warnings(tmp_path: Path) -> None:
    for out in ("a", "b"):
        assert main(["simulate", str(CONFIG), str(EVENTS), "--out", str(tmp_path / out)]) == 0
    first = (tmp_path / "a" / "actions.jsonl").read_text(encoding="utf-8")
    assert first == (tmp_path / "b" / "actions.jsonl").read_text(encoding="utf-8")
    members = {
        row["member"]: row
        for row in map(json.loads, (tmp_path / "a" / "members.jsonl").read_text().splitlines())
    }
    assert members["console:bo"]["warnings"] == 2
    assert members["console:ana"]["warnings"] == 1
    assert members["console:carl"]["warnings"] == 0  # flood mutes without a warning


async def _offend(config_path: Path) -> None:
    config = load_config(config_path)
    # an hour ago: the command line reads the wall clock, and warnings decay after 7 days
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    async with CommunityApp(config, clock=SimulatedClock(start)) as app:
        await app.feed(
            [
                MessagePosted(
                    event_id=f"s{n}",
                    platform="console",
                    group="g-main",
                    user=user,
                    at=start + timedelta(minutes=n),
                    message_id=f"s{n}",
                    text=f"spam number {n}",
                )
                for n, user in enumerate(["bo", "bo", "lin"])
            ]
        )


def test_audit_pardon_role_and_tag_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    text = CONFIG.read_text(encoding="utf-8")
    text += "\n[platforms.console]\n"
    config = tmp_path / "community.toml"
    config.write_text(text, encoding="utf-8")
    asyncio.run(_offend(config))
    capsys.readouterr()

    assert main(["audit", str(config), "--member", "console:bo", "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    verdicts = [r for r in records if r["kind"] == "verdict"]
    assert [(r["rule"], r["event"]) for r in verdicts] == [
        ("keywords", "console:s0"),
        ("keywords", "console:s1"),
    ]
    assert verdicts[1]["actions"][1]["type"] == "mute"
    # the console platform knows no chat g-main: each action fails for good when
    # delivered, and the rule's fallbacks are taken and audited
    fallbacks = [r for r in records if r["kind"] == "fallback"]
    assert sorted(r["actions"][0]["type"] for r in fallbacks) == [
        "send_message",
        "send_message",
        "warn",
    ]
    assert all("chat not found" in r["explanation"] for r in fallbacks)

    assert (
        main(["rules", "pardon", str(config), "console:bo", "--by", "lin", "--note", "会改"]) == 0
    )
    assert "2 active warning(s) cleared" in capsys.readouterr().out
    assert main(["audit", str(config), "--rule", "warning_ladder"]) == 0
    shown = capsys.readouterr().out
    assert "pardon" in shown and "lin" in shown and "会改" in shown

    assert main(["members", "role", str(config), "console:lin", "admin"]) == 0
    assert "console:lin is now admin" in capsys.readouterr().out
    assert main(["members", "tag", str(config), "console:lin", "mentor", "城市:上海"]) == 0
    assert "mentor" in capsys.readouterr().out
    assert main(["members", "show", str(config), "console:lin"]) == 0
    shown = capsys.readouterr().out
    assert "admin" in shown and "城市:上海" in shown

    assert main(["rules", "pardon", str(config), "console:nobody"]) == 1
    assert "no member" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["members", "role", str(config), "console:lin", "emperor"])
    assert usage.value.code == 2 and "invalid choice" in capsys.readouterr().err
