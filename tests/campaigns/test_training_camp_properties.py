"""Properties of the ``training_camp`` campaign type, over generated histories."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from communitykit.builtins.campaigns.cohorts import camp_numbers
from tests.campaigns.test_training_camp import D1, World, camp, local

USERS = ("ana", "bo", "cy")

# (user, day offset from the camp's first day, hour, what): what is
# 0 enrol, 1 /done, 2 the day's homework tag, 3 /homework, 4 a plain message
step = st.tuples(
    st.sampled_from(USERS),
    st.integers(min_value=-1, max_value=4),
    st.integers(min_value=0, max_value=23),
    st.integers(min_value=0, max_value=4),
)
history = st.lists(step, max_size=40)


def play(steps: list[tuple[str, int, int, int]], **settings: Any) -> World:
    world = World(camp(**settings))
    for user, offset, hour, what in steps:
        day = D1 + timedelta(days=offset)
        at = local(day, hour)
        if what == 0:
            world.feed(world.command(user, at, "enroll"))
        elif what == 1:
            world.feed(world.command(user, at, "done"))
        elif what == 2:
            world.feed(world.say(user, at, f"作业来了 #作业{offset + 1}"))
        elif what == 3:
            world.feed(world.command(user, at, "homework", "我的", "作业"))
        else:
            world.feed(world.say(user, at, "大家好"))
    return world


@settings(max_examples=60, deadline=None)
@given(history)
def test_homework_counts_once_per_member_per_day(steps: list[tuple[str, int, int, int]]) -> None:
    world = play(steps)
    enrolled: set[str] = set()
    first: dict[tuple[str, str], str] = {}  # (user, day) -> the moment of the first homework
    for user, offset, hour, what in steps:
        if what == 0 and offset < 3:
            enrolled.add(user)
        if what in (2, 3) and 0 <= offset < 3 and user in enrolled:
            day = (D1 + timedelta(days=offset)).isoformat()
            first.setdefault((user, day), local(D1 + timedelta(days=offset), hour).isoformat())
    kept = {
        (user, day): record["at"]
        for user in USERS
        for day, record in world.states.get(f"console:{user}", {}).get("homework", {}).items()
    }
    assert kept == first
    numbers = camp_numbers(world.states.items(), [D1 + timedelta(days=n) for n in range(3)])
    assert sum(numbers["homework"].values()) == len(first)


day_text = st.dates(min_value=date(2026, 3, 1), max_value=date(2026, 3, 20)).map(date.isoformat)
camp_state: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {
        "enrolled": st.sampled_from(["2026-03-01T00:00:00+00:00", None, True]),
        "done": st.lists(day_text, max_size=10),
        "homework": st.dictionaries(day_text, st.just({}), max_size=10),
    }
)


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), camp_state),
    st.lists(st.dates(min_value=date(2026, 3, 1), max_value=date(2026, 3, 20)), max_size=14),
    st.floats(min_value=0, max_value=1),
)
def test_completion_rate_is_between_0_and_1(
    states: Mapping[str, Mapping[str, Any]], days: list[date], rate: float
) -> None:
    numbers = camp_numbers(states.items(), sorted(set(days)), complete_rate=rate)
    assert all(0.0 <= r <= 1.0 for r in numbers["completion"].values())
    assert all(0.0 <= r <= 1.0 for r in numbers["done_rate"].values())
    assert all(0.0 <= r <= 1.0 for r in numbers["homework_rate"].values())
    assert 0.0 <= numbers["homework_overall"] <= 1.0
    assert 0 <= numbers["completed"] <= numbers["enrolled"] <= len(states)


@settings(max_examples=40, deadline=None)
@given(history, st.sampled_from(["first", "longest", "most_reactions"]))
def test_evaluation_is_deterministic(steps: list[tuple[str, int, int, int]], rule: str) -> None:
    def run() -> tuple[Any, ...]:
        world = play(steps, star_rule=rule, star_points=5)
        world.run_until(local(D1 + timedelta(days=3), 9))
        return (
            world.states,
            [(d.explanation, d.actions, d.awards, d.member) for d in world.decisions],
        )

    assert run() == run()
