"""The warning ladder: it never skips a step, never goes back without decay or a
pardon, and a decayed warning never counts."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from communitykit import LadderStep, ModelError, WarningLadder, parse_duration

T0 = datetime(2026, 1, 1, tzinfo=UTC)

steps = st.lists(
    st.sampled_from(["warn", "mute:10m", "mute:1h", "mute:1d", "kick", "ban", "ban:7d"]),
    min_size=1,
    max_size=6,
).map(lambda names: tuple(LadderStep.parse(n) for n in names))
ladders = st.builds(
    WarningLadder,
    steps=steps,
    decay=st.integers(min_value=60, max_value=90 * 86400).map(lambda s: timedelta(seconds=s)),
)
gaps = st.lists(st.integers(min_value=0, max_value=120 * 86400), min_size=1, max_size=30)


def offences(ladder: WarningLadder, seconds: list[int]) -> list[tuple[datetime, int, int]]:
    """Strike at each moment (gaps in seconds): (moment, step index, active before)."""
    warnings: tuple[datetime, ...] = ()
    now = T0
    seen = []
    for gap in seconds:
        now += timedelta(seconds=gap)
        before = len(ladder.active(warnings, now))
        warnings, index, _step = ladder.strike(warnings, now)
        seen.append((now, index, before))
    return seen


@given(ladders, gaps)
def test_the_ladder_never_skips_a_step(ladder: WarningLadder, seconds: list[int]) -> None:
    previous = -1
    for _now, index, _before in offences(ladder, seconds):
        assert index <= previous + 1
        previous = index


@given(ladders, gaps)
def test_the_ladder_goes_back_only_when_warnings_decay(
    ladder: WarningLadder, seconds: list[int]
) -> None:
    seen = offences(ladder, seconds)
    for (_, earlier, before_earlier), (_, later, before_later) in itertools.pairwise(seen):
        if later < earlier:
            # fewer warnings are active than after the earlier offence: some decayed
            assert before_later < before_earlier + 1


@given(ladders, gaps)
def test_decayed_warnings_never_count(ladder: WarningLadder, seconds: list[int]) -> None:
    warnings: tuple[datetime, ...] = ()
    now = T0
    for gap in seconds:
        now += timedelta(seconds=gap)
        warnings, index, _ = ladder.strike(warnings, now)
        assert all(now - w < ladder.decay for w in warnings)
        assert index == min(len(warnings), len(ladder.steps)) - 1


@given(ladders, st.integers(min_value=1, max_value=20))
def test_offences_close_together_climb_one_step_each(ladder: WarningLadder, count: int) -> None:
    seen = offences(ladder, [1] * count)
    assert [index for _, index, _ in seen] == [min(i, len(ladder.steps) - 1) for i in range(count)]


def test_ladder_steps_read_back_as_written_and_bad_ones_are_refused() -> None:
    assert [str(LadderStep.parse(s)) for s in ("warn", "mute:90m", "ban:2w", "kick")] == [
        "warn",
        "mute:90m",
        "ban:2w",
        "kick",
    ]
    assert parse_duration("1h") == timedelta(hours=1)
    for bad in ("mute", "warn:1h", "shout", "mute:soon", 3):
        with pytest.raises(ModelError):
            LadderStep.parse(bad)
    with pytest.raises(ModelError, match="unknown warning_ladder settings: step"):
        WarningLadder.from_settings({"step": ["warn"]})
    with pytest.raises(ModelError, match="at least one step"):
        WarningLadder.from_settings({"steps": []})
