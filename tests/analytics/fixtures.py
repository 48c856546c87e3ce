"""Reports built by hand, with realistic numbers, for the tests of the report page.

``sample_report()`` holds every metric the built-in set computes (by the names the
page lays out), drawn from a small seeded model of a community of a few hundred
members over a month, so every kind of chart has something to draw.
``empty_report()`` holds the same metrics with nothing in the range.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta, timezone

from communitykit.analytics import MetricResult, Report

__all__ = ["STAGES", "TIERS", "empty_report", "sample_report"]

TIERS = ("newcomer", "regular", "core", "star")
STAGES = ("new", "active", "recalled", "silent", "churned", "left")
FUNNEL_STEPS = ("reached", "responded", "signed up", "took part", "completed")
START = date(2026, 3, 1)


def _days(start: date, days: int) -> tuple[str, ...]:
    return tuple((start + timedelta(days=n)).isoformat() for n in range(days))


def _weeks(start: date, days: int) -> tuple[str, ...]:
    weeks = []
    for n in range(0, days, 7):
        year, week, _ = (start + timedelta(days=n)).isocalendar()
        weeks.append(f"{year}-W{week:02d}")
    return tuple(weeks)


def sample_report(
    *,
    days: int = 30,
    seed: int = 7,
    community: str = "Demo community",
    extra: tuple[MetricResult, ...] = (),
) -> Report:
    """A month of a growing community, every built-in metric filled in."""
    rng = random.Random(seed)
    x = _days(START, days)
    joined, left, total, dau, wau, mau, messages, checkins = [], [], [], [], [], [], [], []
    members = 180
    for n in range(days):
        j = rng.randint(3, 12) + (6 if n % 7 in (5, 6) else 0)
        lft = rng.randint(0, 4)
        members += j - lft
        joined.append(float(j))
        left.append(float(lft))
        total.append(float(members))
        d = round(members * rng.uniform(0.22, 0.34))
        dau.append(float(d))
        w = min(members, round(d * rng.uniform(1.9, 2.3)))
        wau.append(float(w))
        mau.append(float(min(members, round(w * rng.uniform(1.35, 1.5)))))
        messages.append(float(d * rng.uniform(3.0, 6.5)))
        checkins.append(float(round(members * rng.uniform(0.08, 0.16))))
    net = [a - b for a, b in zip(joined, left, strict=True)]
    last = int(total[-1])
    stage_counts = [0.12, 0.38, 0.05, 0.25, 0.14, 0.06]
    stages = {s: (round(last * share),) for s, share in zip(STAGES, stage_counts, strict=True)}
    weeks = _weeks(START, days)
    cohorts = _weeks(START - timedelta(days=28), days + 28)
    retention: list[list[float | None]] = []
    for i, _cohort in enumerate(cohorts):
        row: list[float | None] = []
        for k in range(len(cohorts)):
            if k >= len(cohorts) - i:
                row.append(None)
            elif k == 0:
                row.append(1.0)
            else:
                row.append(round(max(0.05, 0.72 * 0.8**k + rng.uniform(-0.05, 0.05)), 3))
        retention.append(row)
    tier_members = (last - 140, 90, 38, 12)
    issued = [round(m * rng.uniform(1.8, 2.6)) for m in messages]
    spent = [float(rng.choice((0, 0, 50, 100, 150, 200))) for _ in x]
    expired = [float(rng.randint(0, 60)) if n > 20 else 0.0 for n in range(days)]
    campaigns = {
        "checkin": (last, round(last * 0.55), round(last * 0.41), round(last * 0.3), 42),
        "giveaway: spring": (last, 160, 120, 95, 3),
        "referral": (last, 64, 30, 18, 9),
    }
    rule_kinds = ("warn", "delete", "mute", "kick")
    rule_actions: dict[str, list[float]] = {k: [] for k in rule_kinds}
    for _ in x:
        rule_actions["warn"].append(float(rng.randint(0, 6)))
        rule_actions["delete"].append(float(rng.randint(0, 9)))
        rule_actions["mute"].append(float(rng.randint(0, 2)))
        rule_actions["kick"].append(float(rng.choice((0, 0, 0, 1))))
    metrics = [
        MetricResult(
            name="headline",
            title="At a glance",
            kind="value",
            figures={
                "members": last,
                "active": round(mau[-1]),
                "joined": int(sum(joined[-7:])),
                "churned": stages["churned"][0],
                "points issued": int(sum(issued)),
            },
        ),
        MetricResult(
            name="members",
            title="Members over time",
            kind="series",
            chart="line",
            unit="members",
            description="Members who joined and left each day, and how many there were.",
            x=x,
            series={"joined": joined, "left": left, "net": net, "total": total},
        ),
        MetricResult(
            name="stages",
            title="Lifecycle stages",
            kind="series",
            chart="stacked",
            unit="members",
            description="Members in each lifecycle stage on the last day.",
            x=(x[-1],),
            series=stages,
        ),
        MetricResult(
            name="active_members",
            title="Active members",
            kind="series",
            chart="line",
            unit="members",
            description="Members active on the day (DAU), in the last 7 days (WAU), 30 (MAU).",
            x=x,
            series={"DAU": dau, "WAU": wau, "MAU": mau},
        ),
        MetricResult(
            name="stickiness",
            title="Stickiness (DAU ÷ MAU)",
            kind="series",
            chart="line",
            unit="share",
            x=x,
            series={"stickiness": [d / m for d, m in zip(dau, mau, strict=True)]},
        ),
        MetricResult(
            name="participation",
            title="Participation rate",
            kind="series",
            chart="line",
            unit="share",
            x=x,
            series={"participation": [d / t for d, t in zip(dau, total, strict=True)]},
        ),
        MetricResult(
            name="messages_per_active",
            title="Messages per active member",
            kind="series",
            chart="bar",
            unit="messages",
            x=x,
            series={
                "messages per active member": [m / d for m, d in zip(messages, dau, strict=True)]
            },
        ),
        MetricResult(
            name="checkin_rate",
            title="Check-in rate",
            kind="series",
            chart="bar",
            unit="share",
            x=x,
            series={"check-in rate": [c / t for c, t in zip(checkins, total, strict=True)]},
        ),
        MetricResult(
            name="retention",
            title="Retention by join week",
            kind="matrix",
            chart="heatmap",
            unit="share",
            description="Share of each join-week cohort active k weeks after joining.",
            labels=cohorts,
            x=tuple(f"week {k}" for k in range(len(cohorts))),
            values=retention,
        ),
        MetricResult(
            name="tiers",
            title="Tier distribution",
            kind="table",
            columns=("tier", "members", "share"),
            rows=[(t, n, round(n / last, 4)) for t, n in zip(TIERS, tier_members, strict=True)],
        ),
        MetricResult(
            name="tier_funnel",
            title="Tier funnel",
            kind="funnel",
            x=TIERS,
            series={"members": [last, 140, 50, 12]},
        ),
        MetricResult(
            name="tier_movements",
            title="Tier movements",
            kind="series",
            chart="stacked",
            unit="members",
            x=weeks,
            series={
                "promotions": [float(rng.randint(5, 25)) for _ in weeks],
                "demotions": [float(rng.randint(0, 8)) for _ in weeks],
            },
        ),
        MetricResult(
            name="points",
            title="Points",
            kind="series",
            chart="stacked",
            unit="points",
            x=x,
            series={"issued": issued, "spent": spent, "expired": expired},
        ),
        MetricResult(
            name="campaign_funnels",
            title="Campaign funnels",
            kind="funnel",
            x=FUNNEL_STEPS,
            series=campaigns,
        ),
        MetricResult(
            name="rule_actions",
            title="Rule actions",
            kind="series",
            chart="stacked",
            unit="actions",
            x=x,
            series=rule_actions,
        ),
        MetricResult(
            name="rule_actions_by_rule",
            title="Rule actions by rule",
            kind="table",
            columns=("rule", "action", "count"),
            rows=[
                ("flood", "mute", int(sum(rule_actions["mute"]))),
                ("links", "delete", int(sum(rule_actions["delete"]))),
                ("warning_ladder", "warn", int(sum(rule_actions["warn"]))),
                ("warning_ladder", "kick", int(sum(rule_actions["kick"]))),
            ],
        ),
        *extra,
    ]
    return Report(
        community=community,
        start=START,
        end=START + timedelta(days=days - 1),
        generated_at=datetime(2026, 3, 31, 9, 30, tzinfo=timezone(timedelta(hours=8))),
        metrics=metrics,
    )


def empty_report() -> Report:
    """The same metrics with nothing in the range."""
    x = _days(START, 7)
    zeros = [0.0] * 7
    nones: list[float | None] = [None] * 7
    metrics = [
        MetricResult(name="headline", title="At a glance", kind="value", figures={}),
        MetricResult(name="members", title="Members over time", kind="series", x=(), series={}),
        MetricResult(
            name="stickiness",
            title="Stickiness",
            kind="series",
            unit="share",
            x=x,
            series={"stickiness": nones},
        ),
        MetricResult(
            name="points",
            title="Points",
            kind="series",
            chart="stacked",
            x=x,
            series={"issued": zeros, "spent": zeros},
        ),
        MetricResult(
            name="retention", title="Retention", kind="matrix", labels=(), x=(), values=()
        ),
        MetricResult(name="tiers", title="Tiers", kind="table", columns=("tier", "members")),
        MetricResult(
            name="campaign_funnels",
            title="Campaign funnels",
            kind="funnel",
            x=FUNNEL_STEPS,
            series={},
        ),
        MetricResult(
            name="tier_funnel",
            title="Tier funnel",
            kind="funnel",
            x=TIERS,
            series={"members": [0, 0, 0, 0]},
        ),
    ]
    return Report(
        community="Quiet community",
        start=START,
        end=START + timedelta(days=6),
        generated_at=datetime(2026, 3, 8, tzinfo=UTC),
        metrics=metrics,
    )
