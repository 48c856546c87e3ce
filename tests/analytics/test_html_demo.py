"""``communitykit demo`` writes its report next to its database and prints the path."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

import communitykit.analytics as analytics
from communitykit.analytics import Report
from communitykit.cli import main
from tests.analytics.fixtures import sample_report


def test_the_demo_writes_its_report_next_to_its_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asked: list[tuple[date, date]] = []

    def build_report(app: Any, start: date, end: date, *args: Any, **kw: Any) -> Report:
        asked.append((start, end))
        return sample_report(days=3, community=app.config.community.name)

    monkeypatch.setattr(analytics, "build_report", build_report, raising=False)
    code = main(["demo", "--members", "20", "--days", "3", "--folder", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert asked == [(date(2026, 3, 1), date(2026, 3, 3))]  # the simulated days
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert (tmp_path / "demo.db").is_file()
    assert "<h1>Demo community</h1>" in page
    assert "<svg" in page
    assert "Its report (open it in a browser)" in out
    assert "report.html" in out


def test_the_demo_runs_without_a_report_where_there_are_no_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from communitykit._demo import run_demo

    monkeypatch.delattr(analytics, "build_report", raising=False)
    result = run_demo(members=10, days=2, folder=tmp_path)
    assert result.report_path is None
    assert not (tmp_path / "report.html").exists()


def test_the_demo_report_from_the_real_metrics_has_every_section(tmp_path: Path) -> None:
    if not hasattr(analytics, "build_report"):
        pytest.skip("this tree has no metrics to build a report from")
    from communitykit._demo import run_demo

    result = run_demo(members=60, days=10, folder=tmp_path)
    assert result.report_path == tmp_path / "report.html"
    page = result.report_path.read_text(encoding="utf-8")
    for section in ("headline", "growth", "activity", "retention", "tiers", "points", "rules"):
        assert f'<section id="{section}"' in page, section
    assert page.count("<svg") >= 8
