"""Metric totals agree with a naive recomputation over the raw events.

Random small event logs go through a real engine onto a SQLite store; the
report's numbers are then recomputed from the events the store holds, one
Python loop at a time, and must agree.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from communitykit._clock import SimulatedClock
from communitykit.analytics import Report, ReportError, build_report
from communitykit.app import CommunityApp
from communitykit.config import parse_config
from communitykit.model import (
    CommandInvoked,
    Entry,
    Event,
    MemberJoined,
    MemberLeft,
    MessagePosted,
    ReactionAdded,
)
from communitykit.store import SQLiteStore

CONFIG = """
[community]
name = "metrics"
timezone = "Asia/Shanghai"

[[groups]]
key = "main"
platform = "telegram"
id = "-100"

[[groups]]
key = "side"
platform = "telegram"
id = "-200"

[points]
message = 2
"""

T0 = datetime(2026, 3, 1, tzinfo=UTC)
START, END = date(2026, 3, 10), date(2026, 4, 8)  # 30 days
TZ_HOURS = 8
USERS = [f"u{n}" for n in range(6)]
PLATFORMS = ("telegram", "console")
GROUPS = ("-100", "-200", None)
KINDS = ("join", "leave", "message", "reaction", "command")


@st.composite
def event_logs(draw: st.DrawFn) -> list[Event]:
    count = draw(st.integers(0, 40))
    events: list[Event] = []
    for n in range(count):
        kind = draw(st.sampled_from(KINDS))
        user = draw(st.sampled_from(USERS))
        platform = draw(st.sampled_from(PLATFORMS))
        group = draw(st.sampled_from(GROUPS))
        at = T0 + timedelta(minutes=draw(st.integers(0, 60 * 24 * 45)))
        common = {"event_id": f"e{n}", "platform": platform, "user": user, "at": at}
        if kind == "join":
            events.append(MemberJoined(group=group or "-100", **common))
        elif kind == "leave":
            events.append(MemberLeft(group=group or "-100", reason="left", **common))
        elif kind == "message":
            events.append(MessagePosted(group=group, message_id=f"m{n}", text="hi", **common))
        elif kind == "reaction":
            events.append(
                ReactionAdded(group=group, message_id="m0", emoji="👍", to_user="u0", **common)
            )
        else:
            events.append(CommandInvoked(group=group, command="help", args=(), **common))
    events.sort(key=lambda e: e.at)
    return events


def run(
    events: list[Event], group: str | None = None, platform: str | None = None
) -> tuple[Report, list[Event], list[Entry]] | None:
    """The report, and the events and ledger entries the store holds (in order stored);
    ``None`` when no event is of ``platform`` (the report is refused).

    Along the way, every third event's member gets a check-in credit by hand and
    every fourth spends a point when they have one.
    """

    async def go(app: CommunityApp, clock: SimulatedClock) -> None:
        for n, event in enumerate(events):
            clock.set(event.at)
            await app.feed([event])
            member = f"{event.platform}:{event.user}"
            if member not in app.engine.graph:
                continue
            if n % 3 == 0:
                await app.award(member, 3, reason="checkin", key=f"c{n}")
            if n % 4 == 0 and app.balance(member) >= 1:
                await app.spend(member, 1, reason="shop", key=f"s{n}")

    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "c.db")
        store.open()
        clock = SimulatedClock(T0)
        app = CommunityApp(parse_config(CONFIG), store=store, clock=clock)
        app.open(with_adapters=False)
        try:
            asyncio.run(go(app, clock))
            stored = list(store.iter_events())
            if platform is not None and all(e.platform != platform for e in stored):
                with pytest.raises(ReportError, match=f"unknown platform '{platform}'"):
                    build_report(app, START, END, group=group, platform=platform)
                return None  # nothing of that platform: nothing to compare
            report = build_report(app, START, END, group=group, platform=platform)
            return report, stored, list(store.load_entries())
        finally:
            app.close()


def local_day(at: datetime) -> date:
    return (at + timedelta(hours=TZ_HOURS)).date()


def days() -> list[date]:
    return [START + timedelta(days=n) for n in range((END - START).days + 1)]


def in_scope(event: Event, group: str | None, platform: str | None) -> bool:
    if platform is not None and event.platform != platform:
        return False
    # a group is a platform's group: "-100" on another platform is another group
    group_id = {"main": "-100", "side": "-200"}.get(group or "")
    return group is None or (event.platform == "telegram" and event.group == group_id)


def member_of(event: Event) -> str:
    return f"{event.platform}:{event.user}"


def naive_membership(events: list[Event]) -> tuple[dict[date, int], dict[date, int], list]:
    """joined and left per day, and (member, day, in) moves, by the documented rule."""
    state: dict[str, int] = {}
    joined: dict[date, int] = defaultdict(int)
    left: dict[date, int] = defaultdict(int)
    moves = []
    for e in events:
        m = member_of(e)
        before = state.get(m)
        if e.TYPE == "member_joined":
            after = 1
        elif e.TYPE == "member_left":
            after = 0
        elif before is None:
            after = 0 if e.TYPE == "join_requested" else 1
        else:
            after = before
        state[m] = after
        if (before or 0) != after:
            (joined if after else left)[local_day(e.at)] += 1
            moves.append((m, local_day(e.at), after))
    return joined, left, moves


def naive_active(events: list[Event]) -> dict[date, set[str]]:
    found: dict[date, set[str]] = defaultdict(set)
    for e in events:
        if e.TYPE in ("message_posted", "reaction_added", "command_invoked"):
            found[local_day(e.at)].add(member_of(e))
    return found


def check(
    report: Report, events: list[Event], entries: list[Entry], *, scoped: bool = False
) -> None:
    joined, left, moves = naive_membership(events)
    members = report.metric("members").series
    assert members["joined"] == tuple(joined.get(d, 0) for d in days())
    assert members["left"] == tuple(left.get(d, 0) for d in days())
    assert members["net"] == tuple(joined.get(d, 0) - left.get(d, 0) for d in days())
    total = [sum(1 if inn else -1 for _m, day, inn in moves if day <= d) for d in days()]
    assert members["total"] == tuple(total)

    active = naive_active(events)
    series = report.metric("active_members").series
    for n, d in enumerate(days()):

        def window(width: int, d: date = d) -> int:
            return len(
                set().union(*(active.get(d - timedelta(days=k), set()) for k in range(width)))
            )

        assert series["DAU"][n] == window(1), d
        assert series["WAU"][n] == window(7), d
        assert series["MAU"][n] == window(30), d

    # the ledger (narrowed: of the members with an event in scope up to the report's
    # end, later ones unread; a reaction's author earns points without an event of
    # their own)
    if scoped:
        owners = {member_of(e) for e in events if local_day(e.at) <= END}
        entries = [e for e in entries if e.member in owners]
    points = report.metric("points").series
    for name, kind, sign in (("issued", "credit", 1), ("spent", "debit", -1)):
        per_day: dict[date, int] = defaultdict(int)
        for entry in entries:
            if entry.kind.value == kind:
                per_day[local_day(entry.at)] += sign * entry.points
        assert points[name] == tuple(per_day.get(d, 0) for d in days()), name
    checked: dict[date, set[str]] = defaultdict(set)
    for entry in entries:
        if entry.kind.value == "credit" and entry.reason == "checkin":
            checked[local_day(entry.at)].add(entry.member)
    rate = report.metric("checkin_rate").series["check-in rate"]
    for n, d in enumerate(days()):
        expected = None if total[n] == 0 else len(checked.get(d, set())) / total[n]
        assert rate[n] == (None if expected is None else pytest.approx(expected, abs=1e-6))

    # retention: first move in during the range, share active in complete weeks after
    first_in: dict[str, date] = {}
    for m, day, inn in moves:
        if inn and m not in first_in:
            first_in[m] = day
    cohorts: dict[date, list[tuple[str, date]]] = defaultdict(list)
    for m, day in first_in.items():
        if START <= day <= END:
            cohorts[day - timedelta(days=day.weekday())].append((m, day))
    retention = report.metric("retention")
    expected_labels = sorted(cohorts)
    assert list(retention.labels) == [d.isoformat() for d in expected_labels]
    for row, monday in zip(retention.values, expected_labels, strict=True):
        for k, cell in enumerate(row):
            eligible = [
                (m, day) for m, day in cohorts[monday] if day + timedelta(days=7 * k + 6) <= END
            ]
            if not eligible:
                assert cell is None
                continue
            back = sum(
                1
                for m, day in eligible
                if any(m in active.get(day + timedelta(days=7 * k + i), set()) for i in range(7))
            )
            assert cell is not None and abs(cell - back / len(eligible)) < 1e-6


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_logs())
def test_metric_totals_equal_naive_recomputation(events: list[Event]) -> None:
    found = run(events)
    assert found is not None
    check(*found)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    event_logs(),
    st.sampled_from([("main", None), (None, "console"), ("side", "telegram")]),
)
def test_group_and_platform_filters_equal_recomputation_on_filtered_events(
    events: list[Event], scope: tuple[str | None, str | None]
) -> None:
    group, platform = scope
    found = run(events, group=group, platform=platform)
    if found is None:
        return
    report, stored, entries = found
    check(report, [e for e in stored if in_scope(e, group, platform)], entries, scoped=True)
