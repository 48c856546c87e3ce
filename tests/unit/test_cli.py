from __future__ import annotations

import re
import subprocess
import sys

import pytest

from communitykit._demo import run_model_demo
from communitykit.cli import main


def test_demo_books_balance() -> None:
    result = run_model_demo(members=60, days=10, seed=3)
    assert sum(result.tiers.values()) == 60
    assert result.points_issued > 0
    assert result.points_capped > 0  # active members hit the daily message cap
    # what the top members hold can never exceed what was issued minus what was spent
    assert (
        sum(balance for _, balance, _ in result.top) <= result.points_issued - result.points_spent
    )


def test_demo_is_deterministic_for_a_seed() -> None:
    assert run_model_demo(members=40, days=5, seed=11) == run_model_demo(
        members=40, days=5, seed=11
    )
    assert run_model_demo(members=40, days=5, seed=11) != run_model_demo(
        members=40, days=5, seed=12
    )


def test_demo_command_prints_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--members", "50", "--days", "3"]) == 0
    out = capsys.readouterr().out
    assert "Simulated 50 members over 3 days" in out
    tiers = re.findall(r"^  (\w+)\s+(\d+)$", out, re.M)
    assert sum(int(count) for _, count in tiers) == 50


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
