"""Cron schedules: parsing, and the next moment in a time zone across DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from communitykit._errors import ModelError
from communitykit.builtins.campaigns._cron import CronSchedule

NEW_YORK = ZoneInfo("America/New_York")
SHANGHAI = ZoneInfo("Asia/Shanghai")

MINUTES = st.sampled_from(["*", "0", "30", "*/15", "0,30", "5-10", "*/7", "59", "10-50/20"])
HOURS = st.sampled_from(["*", "8", "2", "1", "1-3", "*/6", "1,2,3", "0", "23", "2-4/2"])
DAYS = st.sampled_from(["*", "*", "*", "1", "1-10", "*/2", "8", "1,15"])
MONTHS = st.sampled_from(["*", "*", "3", "3,11", "*/2", "10-12"])
WEEKDAYS = st.sampled_from(["*", "*", "0", "1-5", "0,6", "7"])
CRONS = st.tuples(MINUTES, HOURS, DAYS, MONTHS, WEEKDAYS).map(" ".join)
AROUND = st.sampled_from(
    [
        datetime(2026, 3, 8, 7, tzinfo=UTC),  # New York springs forward
        datetime(2026, 11, 1, 6, tzinfo=UTC),  # New York falls back
        datetime(2026, 6, 15, tzinfo=UTC),
    ]
)
INSTANTS = st.builds(
    lambda base, minutes, seconds: base + timedelta(minutes=minutes, seconds=seconds),
    AROUND,
    st.integers(-3 * 24 * 60, 3 * 24 * 60),
    st.sampled_from([0, 0, 1, 59]),
)
ZONES = st.sampled_from([NEW_YORK, SHANGHAI])


def _first_run_by_minutes(
    cron: CronSchedule, tz: ZoneInfo, after: datetime, limit: datetime
) -> datetime | None:
    """The first run after ``after`` found minute by minute on the UTC clock: a
    matching wall time, not its repeat, or the end of a gap a matching wall time
    fell in."""
    moment = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while moment <= limit:
        wall = moment.astimezone(tz)
        naive = wall.replace(tzinfo=None, fold=0)
        if wall.fold == 0 and cron.matches(naive):
            return moment
        before = (moment - timedelta(minutes=1)).astimezone(tz).replace(tzinfo=None)
        skipped = before + timedelta(minutes=1)
        while skipped < naive:  # wall times jumped over by a spring-forward
            if cron.matches(skipped):
                return moment
            skipped += timedelta(minutes=1)
        moment += timedelta(minutes=1)
    return None


@settings(max_examples=300)
@given(CRONS, INSTANTS, ZONES)
def test_next_run_is_always_strictly_after_and_matches_the_cron(
    text: str, after: datetime, tz: ZoneInfo
) -> None:
    try:
        cron = CronSchedule.parse(text)
    except ModelError:
        return  # a day no month has (31 in a short month): refused at load
    found = cron.next_after(after, tz)
    assert found > after
    assert found.tzinfo is UTC
    assert (found.second, found.microsecond) == (0, 0)
    if found - after <= timedelta(days=2):
        assert _first_run_by_minutes(cron, tz, after.astimezone(UTC), found) == found
    else:
        wall = found.astimezone(tz)
        assert cron.matches(wall.replace(tzinfo=None)) or cron.matches_day(wall.date())
        assert _first_run_by_minutes(cron, tz, after, after + timedelta(days=2)) is None


def test_a_skipped_local_time_runs_at_the_first_valid_minute_after_it() -> None:
    cron = CronSchedule.parse("30 2 * * *")
    first = cron.next_after(datetime(2026, 3, 7, 12, tzinfo=UTC), NEW_YORK)
    assert first.astimezone(NEW_YORK).isoformat() == "2026-03-08T03:00:00-04:00"
    second = cron.next_after(first, NEW_YORK)
    assert second.astimezone(NEW_YORK).isoformat() == "2026-03-09T02:30:00-04:00"


def test_a_repeated_local_time_runs_once() -> None:
    cron = CronSchedule.parse("30 1 * * *")
    first = cron.next_after(datetime(2026, 10, 31, 12, tzinfo=UTC), NEW_YORK)
    assert first.astimezone(NEW_YORK).isoformat() == "2026-11-01T01:30:00-04:00"
    second = cron.next_after(first, NEW_YORK)
    assert second.astimezone(NEW_YORK).isoformat() == "2026-11-02T01:30:00-05:00"


def test_every_quarter_hour_through_the_spring_gap() -> None:
    cron = CronSchedule.parse("*/15 * * * *")
    moment = datetime(2026, 3, 8, 6, 30, tzinfo=UTC)  # 01:30 EST
    walls = []
    for _ in range(4):
        moment = cron.next_after(moment, NEW_YORK)
        walls.append(moment.astimezone(NEW_YORK).strftime("%H:%M%z"))
    assert walls == ["01:45-0500", "03:00-0400", "03:15-0400", "03:30-0400"]


def test_either_restricted_day_field_counts_like_vixie_cron() -> None:
    cron = CronSchedule.parse("0 8 1 * 1")  # the 1st, and every Monday
    moment = datetime(2026, 3, 28, tzinfo=UTC)  # a Saturday
    days = []
    for _ in range(3):
        moment = cron.next_after(moment, SHANGHAI)
        days.append(moment.astimezone(SHANGHAI).date().isoformat())
    assert days == ["2026-03-30", "2026-04-01", "2026-04-06"]


def test_sunday_is_0_and_7_and_shanghai_has_no_dst() -> None:
    for text in ("0 8 * * 0", "0 8 * * 7"):
        moment = CronSchedule.parse(text).next_after(datetime(2026, 3, 2, tzinfo=UTC), SHANGHAI)
        assert moment == datetime(2026, 3, 8, 0, tzinfo=UTC)  # 08:00 CST on Sunday 8 March


def test_latest_at_or_before() -> None:
    cron = CronSchedule.parse("0 8 * * *")
    now = datetime(2026, 3, 10, 20, tzinfo=UTC)
    latest = cron.latest_at_or_before(now, NEW_YORK)
    assert latest == datetime(2026, 3, 10, 12, tzinfo=UTC)
    assert cron.latest_at_or_before(latest, NEW_YORK) == latest


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("0 8 * *", "expected 5 fields"),
        ("60 8 * * *", "minute field has 60"),
        ("0 24 * * *", "hour field has 24"),
        ("0 8 0 * *", "day-of-month field has 0"),
        ("0 8 * 13 *", "month field has 13"),
        ("0 8 * * 8", "day-of-week field has 8"),
        ("0 8 * * 5-1", "running backwards"),
        ("*/0 8 * * *", "minute field has 0"),
        ("0 8 30 2 *", "never run"),
        ("0 八 * * *", "hour field has '八'"),
        ("0 8 * * MON", "day-of-week field has 'MON'"),
    ],
)
def test_bad_cron_fields_are_named(text: str, words: str) -> None:
    with pytest.raises(ModelError, match=words):
        CronSchedule.parse(text)
