"""The ``communitykit`` command, through its entry function and as a process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from communitykit.cli import main

CONFIG = """
[community]
name = "CLI test"
timezone = "Asia/Shanghai"
store = "sqlite:///cli.db"

[[groups]]
key = "main"
platform = "console"
id = "main"

[points]
message = 2
message_daily_cap = 6

[[tiers.ladder]]
name = "base"
threshold = 0

[[tiers.ladder]]
name = "gold"
threshold = 5
"""


def event(n: int, user: str = "ana", at: str = "2026-03-29T09:00:00+08:00", **extra: object) -> str:
    data = {
        "type": "message_posted",
        "event_id": f"e{n}",
        "platform": "telegram",
        "group": "-100",
        "user": user,
        "at": at,
        "message_id": str(n),
        "text": "hello",
    }
    data.update(extra)
    return json.dumps(data)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "community.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def test_demo_runs_and_summarises(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["demo", "--members", "40", "--days", "3", "--folder", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "Simulated 40 members over 3 days" in out
    assert (tmp_path / "demo.db").is_file()
    for heading in ("Members by tier", "lifecycle stage", "Points", "Actions", "Top members"):
        assert heading in out


def test_demo_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    from communitykit._demo import run_demo

    first = run_demo(members=30, days=4, seed=5, folder=tmp_path / "a")
    second = run_demo(members=30, days=4, seed=5, folder=tmp_path / "b")
    other = run_demo(members=30, days=4, seed=6, folder=tmp_path / "c")
    strip = lambda r: (r.events, r.tiers, r.stages, r.points, r.actions, r.top)  # noqa: E731
    assert strip(first) == strip(second)
    assert strip(first) != strip(other)
    assert first.points["issued"] > 0


def test_simulate_writes_the_four_outputs_and_reports_bad_lines(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "events.jsonl"
    lines = [
        event(1),
        event(2),
        "{not json",
        event(1),  # a duplicate delivery
        json.dumps(
            {
                "type": "member_left",
                "event_id": "x",
                "platform": "telegram",
                "user": "bo",
                "at": "2026-03-29T10:00:00+08:00",
            }
        ),  # missing reason
        event(3, at="2026-03-29T10:00:00+08:00"),
        event(4, at="2026-03-29T11:00:00+08:00"),  # capped: 6 points a day
        "",
        event(5, at="2026-03-30T09:00:00+08:00"),  # next day in Shanghai
    ]
    events.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out_dir = tmp_path / "out"
    assert main(["simulate", str(config), str(events), "--out", str(out_dir)]) == 0
    captured = capsys.readouterr()
    assert f"{events}:3: skipped" in captured.err
    assert f"{events}:5: skipped (field reason)" in captured.err
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["events"] == {"read": 8, "recorded": 5, "duplicates": 1, "skipped": 2}
    assert [s["line"] for s in summary["skipped"]] == [3, 5]
    ledger = [json.loads(line) for line in (out_dir / "ledger.jsonl").read_text().splitlines()]
    assert [e["points"] for e in ledger] == [2, 2, 2, 2]  # e4 was capped to nothing
    (member,) = [json.loads(x) for x in (out_dir / "members.jsonl").read_text().splitlines()]
    assert member["member"] == "telegram:ana"
    assert (member["balance"], member["tier"]) == (8, "gold")
    assert set(member) >= {
        "identities",
        "qualifying_points",
        "stage",
        "segments",
        "warnings",
        "streak",
    }


def test_simulate_twice_gives_identical_output(config: Path, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(
        "\n".join(
            event(n, user=f"u{n % 3}", at=f"2026-03-{1 + n % 9:02d}T09:00:00+08:00")
            for n in range(30)
        )
        + "\n",
        encoding="utf-8",
    )
    outputs = []
    for name in ("one", "two"):
        assert main(["simulate", str(config), str(events), "--out", str(tmp_path / name)]) == 0
        outputs.append(
            {
                f: (tmp_path / name / f).read_bytes()
                for f in ("actions.jsonl", "ledger.jsonl", "members.jsonl", "summary.json")
            }
        )
    assert outputs[0] == outputs[1]


def test_members_import_is_all_or_nothing_and_idempotent(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "platform,user_id,display_name,joined_at,tags\n"
        "telegram,1,Ana,2026-01-05,vip;beijing\n"
        "telegram,,Nobody,,\n"
        "telegram,3,Cy,yesterday,\n"
        "telegram,1,Ana again,,\n",
        encoding="utf-8",
    )
    assert main(["members", "import", str(config), str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:3: platform and user_id are required" in err
    assert f"{bad}:4: joined_at must be an ISO date or time" in err
    assert f"{bad}:5: telegram:1 is already on line 2" in err
    assert "nothing imported" in err
    assert main(["members", "list", str(config)]) == 0
    assert "0 member(s)" in capsys.readouterr().out

    good = tmp_path / "good.csv"
    good.write_text(
        "platform,user_id,display_name,joined_at,tags\n"
        "telegram,1,Ana,2026-01-05,vip;beijing\n"
        "discord,77,Bo,2026-02-01T10:00:00+00:00,\n",
        encoding="utf-8",
    )
    assert main(["members", "import", str(config), str(good)]) == 0
    assert "imported 2 member(s); 0 already known" in capsys.readouterr().out
    assert main(["members", "import", str(config), str(good)]) == 0
    assert "imported 0 member(s); 2 already known" in capsys.readouterr().out
    assert main(["members", "show", str(config), "telegram:1"]) == 0
    shown = capsys.readouterr().out
    assert "Ana" in shown and "beijing, vip" in shown and "(import)" in shown


def test_points_award_and_history(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "m.csv"
    csv.write_text(
        "platform,user_id,display_name,joined_at,tags\ntelegram,1,Ana,,\n", encoding="utf-8"
    )
    assert main(["members", "import", str(config), str(csv)]) == 0
    args = [
        "points",
        "award",
        str(config),
        "telegram:1",
        "15",
        "--reason",
        "event host",
        "--key",
        "k1",
    ]
    assert main(args) == 0
    assert main(args) == 0  # the same key: no second award
    capsys.readouterr()
    assert main(["points", "history", str(config), "telegram:1"]) == 0
    history = capsys.readouterr().out
    assert history.count("event host") == 1
    assert "balance 15" in history
    assert main(["members", "list", str(config), "--tier", "gold"]) == 0
    assert "telegram:1" in capsys.readouterr().out


def test_unknown_member_and_bad_config_are_one_line_errors(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["points", "history", str(config), "telegram:404"]) == 1
    assert "no member 'telegram:404'" in capsys.readouterr().err
    broken = tmp_path / "broken.toml"
    broken.write_text('[community]\nname = "x"\ntimezone = "Mars/Base"\n', encoding="utf-8")
    assert main(["members", "list", str(broken)]) == 1
    err = capsys.readouterr().err
    assert "community.timezone" in err and "Traceback" not in err


def test_plugins_list_names_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "list"]) == 0
    out = capsys.readouterr().out
    assert "builtin_points" in out and "communitykit" in out
    assert "console" in out and "communitykit-console" in out


def test_bad_option_is_a_clear_error_not_a_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "communitykit", "demo", "--members", "zero"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "expected a whole number, got 'zero'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_run_stops_cleanly_on_interrupt(config: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "communitykit", "run", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until the community is running
    assert "running on console" in line
    proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 30
    out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    assert proc.returncode == 0, err
    assert "stopped cleanly" in out
    assert "Traceback" not in err


def test_broadcast_reaches_every_member_once_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "community.toml"
    config.write_text(CONFIG + "\n[platforms.console]\n", encoding="utf-8")
    members = tmp_path / "m.csv"
    members.write_text(
        "platform,user_id,display_name,joined_at,tags\n"
        + "".join(f"console,u{n},Member {n},,{'vip' if n < 2 else ''}\n" for n in range(5)),
        encoding="utf-8",
    )
    assert main(["members", "import", str(config), str(members)]) == 0
    capsys.readouterr()
    args = ["broadcast", str(config), "--segment", "tag:vip", "--text", "VIP night"]
    assert main(args) == 0
    shown = capsys.readouterr().out
    assert "2 member(s) in 'tag:vip', 2 message(s) (2 newly queued" in shown
    # a console user who never started the bot cannot be messaged: unreachable, not failed
    for outcome, count in [("delivered", 0), ("unreachable", 2), ("failed", 0), ("pending", 0)]:
        assert re.search(rf"{outcome}\W+{count}\b", shown), outcome
    assert "2 × the user has not started a conversation with the bot" in shown
    assert main(args) == 0  # the same broadcast again: nothing new to send
    assert "(0 newly queued" in capsys.readouterr().out
    assert main(["broadcast", str(config), "--segment", "everyone", "--text", "x"]) == 1
    assert "unknown segment 'everyone'" in capsys.readouterr().err


def test_broadcast_only_queues_when_the_community_runs_elsewhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "community.toml"
    config.write_text(CONFIG + "\n[platforms.console]\n", encoding="utf-8")
    members = tmp_path / "m.csv"
    members.write_text(
        "platform,user_id,display_name,joined_at,tags\nconsole,u1,Ana,,\n", encoding="utf-8"
    )
    assert main(["members", "import", str(config), str(members)]) == 0
    from communitykit import CommunityApp
    from communitykit.app import RUNNER_META
    from communitykit.store import Batch

    app = CommunityApp.from_file(config)
    app.open(with_adapters=False)
    beat = {"pid": os.getpid() + 1, "host": "elsewhere", "at": time.time()}
    app.store.commit(Batch(meta={RUNNER_META: json.dumps(beat)}))  # `run` beats like this
    app.close()
    capsys.readouterr()
    assert main(["broadcast", str(config), "--text", "hi"]) == 0
    shown = capsys.readouterr().out
    assert "the community is running (pid" in shown and "1 pending" in shown
    app = CommunityApp.from_file(config)
    app.open(with_adapters=False)
    try:
        (item,) = list(app.store.outbox())
        assert item.status.value == "pending"  # queued, left for the running community
    finally:
        app.close()


def test_simulate_skips_an_event_outside_the_engines_years_and_replays_the_rest(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "events.jsonl"
    lines = [
        event(1, at="0001-01-01T00:00:00+14:00"),  # the clock must not follow these
        event(2),
        event(3, at="9999-12-31T23:59:59-12:00"),
        event(4, at="2026-03-29T10:00:00+08:00"),
    ]
    events.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out_dir = tmp_path / "out"
    assert main(["simulate", str(config), str(events), "--out", str(out_dir)]) == 0
    err = capsys.readouterr().err
    assert f"{events}:1: skipped" in err and f"{events}:3: skipped" in err
    assert "outside 1970-2200" in err and "Traceback" not in err
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["events"] == {"read": 4, "recorded": 2, "duplicates": 0, "skipped": 2}
    ledger = [json.loads(line) for line in (out_dir / "ledger.jsonl").read_text().splitlines()]
    assert [e["at"][:10] for e in ledger] == ["2026-03-29", "2026-03-29"]


def test_points_award_beyond_the_limit_is_one_line_and_stores_nothing(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "m.csv"
    csv.write_text("platform,user_id,display_name,joined_at,tags\ntelegram,1,Ana,,\n")
    assert main(["members", "import", str(config), str(csv)]) == 0
    award = ["points", "award", str(config), "telegram:1"]
    assert main([*award, str(2**63)]) == 1
    err = capsys.readouterr().err
    assert "at most 1,000,000,000,000" in err and "Traceback" not in err
    assert main([*award, "1000000000000"]) == 0  # the limit itself is fine
    capsys.readouterr()
    assert main(["points", "history", str(config), "telegram:1"]) == 0
    assert "balance 1000000000000" in capsys.readouterr().out


def test_points_award_says_when_its_key_was_used_before_and_refuses_an_empty_one(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "m.csv"
    csv.write_text("platform,user_id,display_name,joined_at,tags\ntelegram,1,Ana,,\n")
    assert main(["members", "import", str(config), str(csv)]) == 0
    award = ["points", "award", str(config), "telegram:1", "50", "--key", "meetup"]
    assert main(award) == 0
    assert "awarded 50 point(s)" in capsys.readouterr().out
    assert main(award) == 0
    again = capsys.readouterr().out
    assert "nothing new awarded: the key 'meetup' was used before" in again
    assert "balance 50" in again
    assert main(["points", "award", str(config), "telegram:1", "5", "--key", ""]) == 1
    assert "--key must not be empty" in capsys.readouterr().err
    assert main(["points", "history", str(config), "telegram:1"]) == 0
    assert "balance 50" in capsys.readouterr().out


def test_members_import_reads_dates_in_the_communitys_zone_and_checks_platforms(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "platform,user_id,display_name,joined_at,tags\n"
        "Telegram,1,Ana,,\n"
        "console:evil,2,Bo,,\n"
        "telegram,3,Cy,2026-01-05,\n",
        encoding="utf-8",
    )
    assert main(["members", "import", str(config), str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:2: platform must be a lowercase name" in err
    assert f"{bad}:3: platform must be a lowercase name" in err
    assert f"{bad}:4:" not in err
    good = tmp_path / "good.csv"
    good.write_text(
        "platform,user_id,display_name,joined_at,tags\ntelegram,3,Cy,2026-01-05,\n",
        encoding="utf-8",
    )
    assert main(["members", "import", str(config), str(good)]) == 0
    capsys.readouterr()
    assert main(["members", "show", str(config), "telegram:3"]) == 0
    assert "2026-01-05T00:00:00+08:00" in capsys.readouterr().out  # Asia/Shanghai


def test_members_import_of_a_file_not_in_utf8_is_one_line(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes(
        "platform,user_id,display_name,joined_at,tags\nconsole,g1,韩梅梅,,\n".encode("gbk")
    )
    assert main(["members", "import", str(config), str(gbk)]) == 1
    err = capsys.readouterr().err
    assert f"{gbk}: not UTF-8 text" in err and "Traceback" not in err


def test_demo_refuses_a_folder_with_an_earlier_demo_or_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "d"
    assert main(["demo", "--members", "10", "--days", "2", "--folder", str(folder)]) == 0
    stored = (folder / "demo.db").read_bytes()
    capsys.readouterr()
    assert main(["demo", "--members", "10", "--days", "2", "--folder", str(folder)]) == 1
    assert "already holds a demo" in capsys.readouterr().err
    assert (folder / "demo.db").read_bytes() == stored  # untouched
    a_file = tmp_path / "f"
    a_file.write_text("x")
    assert main(["demo", "--members", "10", "--days", "2", "--folder", str(a_file)]) == 1
    assert "is not a folder" in capsys.readouterr().err


def test_a_runner_that_died_on_this_host_does_not_hold_changes_back(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    from communitykit import CommunityApp
    from communitykit.app import RUNNER_META
    from communitykit.store import Batch

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    csv = tmp_path / "m.csv"
    csv.write_text("platform,user_id,display_name,joined_at,tags\ntelegram,1,Ana,,\n")
    for pid, refused in ((dead.pid, False), (os.getppid(), True)):  # gone; alive
        app = CommunityApp.from_file(config)
        app.open(with_adapters=False)
        beat = {"pid": pid, "host": socket.gethostname(), "at": time.time()}
        app.store.commit(Batch(meta={RUNNER_META: json.dumps(beat)}))
        app.close()
        assert main(["members", "import", str(config), str(csv)]) == (1 if refused else 0)
        assert ("the community is running" in capsys.readouterr().err) is refused


def test_members_list_refuses_a_tier_the_ladder_does_not_have(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["members", "list", str(config), "--tier", "platinum"]) == 1
    assert "no tier 'platinum': the tiers are base, gold" in capsys.readouterr().err
    assert main(["members", "list", str(config), "--tier", "gold"]) == 0


def test_a_bad_platform_option_and_a_folder_for_a_log_are_one_line_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "community.toml"
    config.write_text(CONFIG + '\n[platforms.console]\napi_key = "s3cret-value"\n')
    assert main(["run", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"{config}: platforms.console:" in err and "unknown option(s) 'api_key'" in err
    assert "s3cret-value" not in err and "Traceback" not in err
    assert main(["simulate", str(config), str(tmp_path), "--out", str(tmp_path / "o")]) == 1
    assert f"{tmp_path}: a folder, not an event log file" in capsys.readouterr().err


def test_import_refuses_a_future_join_and_tag_refuses_an_empty_tag(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "m.csv"
    csv.write_text(
        "platform,user_id,display_name,joined_at,tags\n"
        "telegram,1,Ana,2026-01-05,\n"
        "telegram,2,Bo,2999-01-01,\n"
    )
    assert main(["members", "import", str(config), str(csv)]) == 1
    assert f"{csv}:3: joined_at is in the future, found '2999-01-01'" in capsys.readouterr().err
    csv.write_text("platform,user_id,display_name,joined_at,tags\ntelegram,1,Ana,2026-01-05,\n")
    assert main(["members", "import", str(config), str(csv)]) == 0
    for bad in ("", " vip"):
        assert main(["members", "tag", str(config), "telegram:1", bad]) == 1
        assert "a tag must be a non-empty string" in capsys.readouterr().err
    assert main(["members", "tag", str(config), "telegram:1", "vip"]) == 0
    assert "telegram:1 tags: vip" in capsys.readouterr().out
