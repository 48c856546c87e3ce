"""Campaign funnels and plugin metrics in the report."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from communitykit import MetricType
from communitykit.analytics import MetricContext, MetricResult, build_report
from communitykit.builtins.campaigns._recall import RecallCampaign
from communitykit.builtins.campaigns.checkin import CheckinCampaign
from communitykit.hookspecs import hookimpl
from communitykit.testing import memory_app

DAYS = [date(2026, 3, d) for d in range(1, 8)]


def test_checkin_funnel_counts_members_who_took_part_in_the_days_and_week_long_streaks() -> None:
    campaign = CheckinCampaign.from_settings({"name": "checkin"})
    states = [
        (
            "a",
            {
                "last": "2026-03-07",
                "streak": 7,
                "start": "2026-03-01",
                "days": [f"2026-03-0{d}" for d in range(1, 8)],
            },
        ),
        ("b", {"last": "2026-03-02", "streak": 1, "start": "2026-03-02", "days": ["2026-03-02"]}),
        ("c", {"last": "2026-02-10", "streak": 9, "start": "2026-02-02", "days": ["2026-02-10"]}),
    ]
    assert campaign.funnel(states, DAYS) == {"signed up": 3, "took part": 2, "completed": 1}


def test_recall_funnel_counts_reached_and_responded() -> None:
    campaign = RecallCampaign.from_settings({"name": "recall"})
    states = [
        ("a", {"tries": 2, "returns": 1}),
        ("b", {"tries": 1}),
        ("c", {"opted_out": True}),
    ]
    assert campaign.funnel(states, DAYS) == {"reached": 2, "responded": 1}


class _Funnelled:
    name = "spring"

    def on_event(self, ctx: Any) -> None:
        return None

    def next_run(self, after: datetime | None) -> datetime | None:
        return None

    def on_schedule(self, ctx: Any) -> list[Any]:
        return []

    def funnel(
        self, states: Iterable[tuple[str, Mapping[str, Any]]], days: list[date]
    ) -> dict[str, int]:
        return {"reached": 10, "responded": 4, "completed": len(days)}


def test_campaign_funnels_hold_a_series_per_campaign_with_a_funnel() -> None:
    app, _clock = memory_app(campaigns=[_Funnelled()])
    app.open(with_adapters=False)
    try:
        report = build_report(app, DAYS[0], DAYS[-1])
    finally:
        app.close()
    funnels = report.metric("campaign_funnels")
    assert funnels.x == ("reached", "responded", "signed up", "took part", "completed")
    assert funnels.series == {"spring": (10.0, 4.0, None, None, 7.0)}


class _MessagesMetric:
    @hookimpl
    def communitykit_metric_types(self) -> list[MetricType]:
        def compute(ctx: MetricContext) -> MetricResult:
            return MetricResult(
                name="busiest_hour",
                title="Busiest hour",
                kind="value",
                figures={"events": len(ctx.facts.ev_type), "days": len(ctx.days)},
            )

        return [MetricType(name="busiest_hour", compute=compute)]


def test_a_plugin_metric_comes_after_the_builtin_ones() -> None:
    app, _clock = memory_app(start=datetime(2026, 3, 8, tzinfo=UTC))
    app.register_plugin(_MessagesMetric(), name="busiest")
    app.open(with_adapters=False)
    try:
        report = app.report(DAYS[0], DAYS[-1])
        only = app.report(DAYS[0], DAYS[-1], metrics=["busiest_hour", "members"])
    finally:
        app.close()
    assert report.metrics[-1].name == "busiest_hour"
    assert report.metrics[0].name == "headline"
    assert report.metric("busiest_hour").figures == {"events": 0, "days": 7}
    assert [m.name for m in only.metrics] == ["busiest_hour", "members"]
