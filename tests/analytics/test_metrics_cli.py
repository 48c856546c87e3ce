"""``communitykit report``: the JSON numbers, and one clear error for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from communitykit.analytics import Report
from communitykit.cli import main

CONFIG = """
[community]
name = "cli report"
timezone = "Asia/Shanghai"
store = "sqlite:///{db}"

[[groups]]
key = "main"
platform = "telegram"
id = "-100"
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "community.toml"
    path.write_text(CONFIG.format(db=tmp_path / "c.db"), encoding="utf-8")
    return path


def test_report_json_lists_every_builtin_metric_for_the_range(config: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    code = main(
        ["report", str(config), "--from", "2026-03-01", "--to", "2026-03-07", "--out", str(out)]
    )
    assert code == 0
    report = Report.from_json(json.loads(out.read_text(encoding="utf-8")))
    assert (str(report.start), str(report.end)) == ("2026-03-01", "2026-03-07")
    names = [m.name for m in report.metrics]
    for name in ("headline", "members", "active_members", "retention", "points", "tiers"):
        assert name in names
    assert len(report.metric("members").x) == 7
    assert report.metric("headline").figures["members"] == 0


def test_report_prints_json_without_out(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(config), "--to", "2026-03-07", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["from"] == "2026-02-06"  # the last 30 days by default
    assert data["community"] == "cli report"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2026-13-01"], "expected a date as YYYY-MM-DD"),
        (["--from", "2026-03-02", "--to", "2026-03-01"], "starts (2026-03-02) after it ends"),
        (["--group", "nope"], "unknown group 'nope' (groups: main)"),
        (["--platform", "nope"], "unknown platform 'nope'"),
        (["--to", "0001-01-05"], "a report covers days from 0001-02-01 to 9999-12-29"),
        (["--from", "9999-12-30", "--to", "9999-12-31"], "a report covers days from"),
        (["--from", "1900-01-01", "--to", "2100-01-01"], "a report covers at most 3660 days"),
    ],
)
def test_bad_input_is_one_clear_error_with_exit_2(
    config: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    try:
        code = main(["report", str(config), *args])
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code  # type: ignore[assignment]
    assert code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize("timezone", ["Pacific/Kiritimati", "Pacific/Pago_Pago", "UTC"])
def test_a_report_at_the_first_and_last_days_it_may_cover_is_built(timezone: str) -> None:
    from datetime import timedelta

    from communitykit.analytics._report import FIRST_DAY, LAST_DAY
    from communitykit.testing import memory_app

    app, _ = memory_app(timezone=timezone)
    app.open(with_adapters=False)
    try:
        for start, end in ((FIRST_DAY, FIRST_DAY + timedelta(days=1)), (LAST_DAY, LAST_DAY)):
            report = app.report(start, end)
            assert report.metric("headline").figures["members"] == 0
    finally:
        app.close()
