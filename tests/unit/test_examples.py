"""The example apps run, and do what they say."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_checkin_bot_checks_in_once_a_day() -> None:
    transcript: list[str] = asyncio.run(load("checkin_bot").main())
    bot = [line for line in transcript if "🤖" in line]
    assert sum("Lin checked in for" in line for line in bot) == 3
    assert sum("Sam checked in for" in line for line in bot) == 2  # Sam skipped a day
    assert sum("already checked in today" in line for line in bot) == 3
    assert bot[-1].endswith("Lin: 18 points")  # 3 check-ins x 5 + 3 messages x 1


def test_checkin_bot_uses_only_the_public_api() -> None:
    source = (EXAMPLES / "checkin_bot.py").read_text(encoding="utf-8")
    imports = [line for line in source.splitlines() if line.startswith(("from ", "import "))]
    assert any("communitykit" in line for line in imports)
    for line in imports:
        module = line.split()[1]
        if module == "__future__":
            continue
        assert not any(part.startswith("_") for part in module.split(".")), line


def test_checkin_bot_runs_as_a_script() -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "checkin_bot.py")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert "Lin: 18 points" in proc.stdout


def test_sample_event_log_replays_with_the_sample_config(tmp_path: Path) -> None:
    import json

    from communitykit.cli import main

    out = tmp_path / "sim"
    code = main(
        [
            "simulate",
            str(EXAMPLES / "community.toml"),
            str(EXAMPLES / "events.jsonl"),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    lines = (EXAMPLES / "events.jsonl").read_text(encoding="utf-8").splitlines()
    assert summary["events"]["recorded"] == len(lines)
    members = (out / "members.jsonl").read_text(encoding="utf-8").splitlines()
    assert sum(summary["members_by_tier"].values()) == len(members) == summary["members"]
    ledger = [
        json.loads(x) for x in (out / "ledger.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert sum(e["points"] for e in ledger if e["kind"] == "credit") == summary["points"]["issued"]
