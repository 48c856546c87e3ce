"""Lifecycle stage invariants, property-tested against the written definition."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from communitykit import (
    LifecycleSettings,
    MemberStatus,
    ModelError,
    Stage,
    last_return,
    next_return,
    stage_of,
)

START = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)

settings_st = st.builds(
    lambda new, active, extra, recalled: LifecycleSettings(
        new_days=new, active_days=active, churned_days=active + extra, recalled_days=recalled
    ),
    st.integers(0, 10),
    st.integers(1, 20),
    st.integers(0, 40),
    st.integers(0, 20),
)

hours = st.integers(0, 24 * 200)


@st.composite
def histories(draw: st.DrawFn) -> tuple[datetime | None, list[datetime], datetime, MemberStatus]:
    joined = draw(st.none() | hours.map(lambda h: START + timedelta(hours=h)))
    offsets = sorted(draw(st.lists(hours, max_size=12)))
    activity = [START + timedelta(hours=h) for h in offsets]
    # "now" is at or after every known moment
    latest = max([START, *activity, *([joined] if joined else [])])
    now = latest + timedelta(hours=draw(st.integers(0, 24 * 100)))
    status = draw(st.sampled_from(list(MemberStatus)))
    return joined, activity, now, status


def brute_force_return(
    joined: datetime | None, activity: list[datetime], settings: LifecycleSettings
) -> datetime | None:
    """Every gap examined, newest first: the first activity after a long gap."""
    gap = timedelta(days=settings.active_days)
    for index in range(len(activity) - 1, -1, -1):
        before = activity[index - 1] if index > 0 else joined
        if before is not None and activity[index] - before > gap:
            return activity[index]
    return None


def definitions(
    joined: datetime | None,
    activity: list[datetime],
    now: datetime,
    status: MemberStatus,
    s: LifecycleSettings,
) -> list[tuple[Stage, Callable[[], bool]]]:
    """The stage rules in the order they are written, each checked on its own."""
    last = activity[-1] if activity else None
    returned = brute_force_return(joined, activity, s)
    active = last is not None and now - last <= timedelta(days=s.active_days)
    reference = last if last is not None else joined
    return [
        (Stage.LEFT, lambda: status in (MemberStatus.LEFT, MemberStatus.BANNED)),
        (Stage.NEW, lambda: joined is not None and now - joined < timedelta(days=s.new_days)),
        (
            Stage.RECALLED,
            lambda: (
                active and returned is not None and now - returned < timedelta(days=s.recalled_days)
            ),
        ),
        (Stage.ACTIVE, lambda: active),
        (
            Stage.CHURNED,
            lambda: reference is not None and now - reference > timedelta(days=s.churned_days),
        ),
        (Stage.SILENT, lambda: True),
    ]


@given(histories(), settings_st)
def test_every_member_is_in_exactly_one_stage(
    history: tuple[datetime | None, list[datetime], datetime, MemberStatus],
    s: LifecycleSettings,
) -> None:
    joined, activity, now, status = history
    stage = stage_of(
        now=now,
        joined_at=joined,
        status=status,
        last_active_at=activity[-1] if activity else None,
        returned_at=last_return(joined, activity, s),
        settings=s,
    )
    # exactly one stage is "its rule holds and no earlier rule does"
    rules = definitions(joined, activity, now, status, s)
    members_of: list[Stage] = []
    earlier = False
    for candidate, holds in rules:
        if holds() and not earlier:
            members_of.append(candidate)
        earlier = earlier or holds()
    assert members_of == [stage]


@given(histories(), settings_st)
def test_folding_activity_one_at_a_time_finds_the_same_return_as_the_whole_history(
    history: tuple[datetime | None, list[datetime], datetime, MemberStatus],
    s: LifecycleSettings,
) -> None:
    joined, activity, _, _ = history
    assert last_return(joined, activity, s) == brute_force_return(joined, activity, s)
    last: datetime | None = None
    returned: datetime | None = None
    for at in activity:
        returned = next_return(
            joined_at=joined, last_active_at=last, returned_at=returned, activity_at=at, settings=s
        )
        last = at
    assert returned == brute_force_return(joined, activity, s)


@given(histories(), settings_st)
def test_recalled_members_are_active_and_without_a_return_nobody_is_recalled(
    history: tuple[datetime | None, list[datetime], datetime, MemberStatus],
    s: LifecycleSettings,
) -> None:
    joined, activity, now, status = history
    last = activity[-1] if activity else None
    with_return = stage_of(
        now=now,
        joined_at=joined,
        status=status,
        last_active_at=last,
        returned_at=last_return(joined, activity, s),
        settings=s,
    )
    without = stage_of(now=now, joined_at=joined, status=status, last_active_at=last, settings=s)
    assert without is not Stage.RECALLED
    if with_return is Stage.RECALLED:
        assert without is Stage.ACTIVE
    else:
        assert with_return is without


def test_a_member_back_after_a_long_gap_is_recalled_until_recalled_days_pass() -> None:
    s = LifecycleSettings(new_days=7, active_days=14, churned_days=45, recalled_days=14)
    joined = START
    activity = [START + DAY, START + 40 * DAY, START + 41 * DAY]
    returned = last_return(joined, activity, s)
    assert returned == START + 40 * DAY

    def at(now: datetime) -> Stage:
        return stage_of(
            now=now,
            joined_at=joined,
            status=MemberStatus.ACTIVE,
            last_active_at=activity[-1],
            returned_at=returned,
            settings=s,
        )

    assert at(START + 42 * DAY) is Stage.RECALLED
    assert at(START + 54 * DAY - timedelta(seconds=1)) is Stage.RECALLED
    assert at(START + 54 * DAY) is Stage.ACTIVE
    assert at(START + 56 * DAY) is Stage.SILENT


def test_a_first_activity_long_after_joining_is_a_return() -> None:
    s = LifecycleSettings()
    assert last_return(START, [START + 20 * DAY], s) == START + 20 * DAY
    assert last_return(START, [START + 10 * DAY], s) is None
    assert last_return(None, [START + 20 * DAY], s) is None


def test_recalled_days_must_not_be_negative() -> None:
    with pytest.raises(ModelError, match="recalled_days"):
        LifecycleSettings(recalled_days=-1)
