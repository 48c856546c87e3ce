"""Properties of the ``recall`` campaign type, over generated months of activity."""

from __future__ import annotations

from datetime import date, timedelta
from itertools import pairwise
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from communitykit.builtins.campaigns.cohorts import recall_numbers
from tests.campaigns.test_recall import JOINED, evening, recall
from tests.campaigns.test_training_camp import World, local

FIRST = date(2026, 3, 1)  # the clocks change on 2026-03-08 in New York
DAYS = 60
USERS = ("ana", "bo")

knobs = st.fixed_dictionaries(
    {
        "silent_days": st.integers(min_value=1, max_value=20),
        "every_days": st.integers(min_value=1, max_value=10),
        "max_tries": st.integers(min_value=1, max_value=4),
        "return_days": st.integers(min_value=1, max_value=10),
    }
)
# (user, day, what): 0 a message, 1 /stop_recall
activity = st.lists(
    st.tuples(
        st.sampled_from(USERS),
        st.integers(min_value=0, max_value=DAYS - 1),
        st.integers(min_value=0, max_value=1),
    ),
    max_size=20,
)


def play(knobs: dict[str, Any], steps: list[tuple[str, int, int]]) -> tuple[World, list[Any]]:
    """Each day: the day's activity at 09:00, then the 19:00 recall."""
    world = World(recall(**knobs))
    for user in USERS:
        world.join(user, at=JOINED)
    sent: list[tuple[int, str]] = []
    for n in range(DAYS):
        day = FIRST + timedelta(days=n)
        for user, when, what in steps:
            if when != n:
                continue
            if what == 0:
                world.feed(world.say(user, local(day, 9), "你好"))
            else:
                world.feed(world.command(user, local(day, 9), "stop_recall"))
        for decision in world.tick(evening(day)):
            assert decision.member is not None
            sent.append((n, decision.member))
    return world, sent


@settings(max_examples=80, deadline=None)
@given(knobs, activity)
def test_a_member_is_contacted_at_most_max_tries_times(
    knobs: dict[str, Any], steps: list[tuple[str, int, int]]
) -> None:
    world, sent = play(knobs, steps)
    for user in USERS:
        days = [n for n, member in sent if member == f"console:{user}"]
        assert len(days) <= knobs["max_tries"]
        assert all(b - a >= knobs["every_days"] for a, b in pairwise(days))
        for n in days:  # silent for long enough at each contact
            active = [d for u, d, _ in steps if u == user and d <= n]
            last = FIRST + timedelta(days=max(active)) if active else JOINED.date()
            assert (FIRST + timedelta(days=n) - last).days >= knobs["silent_days"]
    numbers = recall_numbers(world.states.items())
    assert numbers["messages"] == len(sent)
    assert 0.0 <= numbers["return_rate"] <= 1.0


@settings(max_examples=80, deadline=None)
@given(knobs, activity, st.integers(min_value=0, max_value=DAYS - 1))
def test_an_opted_out_member_is_never_contacted(
    knobs: dict[str, Any], steps: list[tuple[str, int, int]], stop: int
) -> None:
    _world, sent = play(knobs, [*steps, ("ana", stop, 1)])
    assert not [n for n, member in sent if member == "console:ana" and n >= stop]


@settings(max_examples=40, deadline=None)
@given(knobs, activity)
def test_evaluation_is_deterministic(
    knobs: dict[str, Any], steps: list[tuple[str, int, int]]
) -> None:
    def run() -> tuple[Any, ...]:
        world, sent = play(knobs, steps)
        actions = [(d.explanation, d.actions, d.fallbacks, d.member) for d in world.decisions]
        return world.states, sent, actions

    assert run() == run()
