"""Properties of the ``checkin`` campaign over random sequences of check-ins and
make-up cards, in New York across the change to summer time (2026-03-08)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from communitykit import Decision
from communitykit.builtins.campaigns.checkin import effective_streak

from .test_checkin import EVERYTHING, NY, World, _tick, campaign, local

FIRST = date(2026, 3, 4)
USERS = ("ana", "bo", "cy")

#: minutes after local midnight of FIRST, over 9 days (the clocks change on the 5th)
moments = st.lists(
    st.tuples(st.sampled_from(USERS), st.integers(min_value=0, max_value=9 * 24 * 60 - 1)),
    min_size=1,
    max_size=40,
)


def _at(minutes: int) -> datetime:
    """A moment ``minutes`` of elapsed time after local midnight of FIRST, in UTC."""
    return datetime(FIRST.year, FIRST.month, FIRST.day, tzinfo=NY).astimezone(UTC) + timedelta(
        minutes=minutes
    )


@given(moments)
def test_at_most_one_checkin_reward_per_member_per_community_day(
    plan: list[tuple[str, int]],
) -> None:
    world = World(campaign(milestones={}))
    seen: set[tuple[str, date]] = set()
    keys: list[str] = []
    for user, minutes in sorted(plan, key=lambda item: item[1]):
        at = _at(minutes)
        day = at.astimezone(NY).date()
        decision = world.feed(world.command(user, at))
        assert decision is not None
        rewards = [a for a in decision.awards if a.reason == "checkin"]
        if (user, day) in seen:
            assert rewards == [] and decision.state is None and len(decision.actions) == 1
        else:
            assert len(rewards) == 1 and rewards[0].member == f"console:{user}"
            assert day.isoformat() in rewards[0].key
            keys.append(rewards[0].key)
            seen.add((user, day))
    assert len(keys) == len(set(keys)) == len(seen)
    assert sum(world.balance(user) for user in USERS) == 5 * len(seen)


# one member, day by day: what they do that day, in order
DAY_PLANS = st.lists(
    st.sampled_from(["", "c", "m", "cm", "mc", "cc", "mm"]), min_size=1, max_size=40
)


def _run_ending(days: set[date], end: date) -> int:
    count = 0
    while end in days:
        count += 1
        end -= timedelta(days=1)
    return count


@settings(max_examples=150)
@given(DAY_PLANS, st.integers(min_value=0, max_value=23))
def test_the_streak_equals_the_run_of_consecutive_days_ending_today(
    plan: list[str], hour: int
) -> None:
    world = World(campaign(makeup_per_month=31, milestones={}), balance=10_000)
    checked: set[date] = set()
    for offset, steps in enumerate(plan):
        today = FIRST + timedelta(days=offset)
        for step in steps:
            at = local(today, hour)
            if step == "c":
                world.feed(world.command("ana", at))
                checked.add(today)
            else:
                yesterday = today - timedelta(days=1)
                repairs = yesterday not in checked and yesterday - timedelta(days=1) in checked
                decision = world.feed(world.command("ana", at, "makeup"))
                assert decision is not None
                assert bool(decision.spends) == repairs
                if repairs:
                    checked.add(yesterday)
            state = world.state("ana")
            if checked:
                assert state["streak"] == _run_ending(checked, max(checked))
                assert state["total"] == len(checked)
                assert state["best"] == max(_run_ending(checked, d) for d in checked)
            running = _run_ending(checked, today) or _run_ending(checked, today - timedelta(days=1))
            assert effective_streak(state, today) == running


# a member's days over three months: check in or not, and maybe a card
MONTH_PLANS = st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=75)


@settings(max_examples=100)
@given(MONTH_PLANS, st.integers(min_value=0, max_value=3))
def test_makeup_cards_never_exceed_the_monthly_limit(
    plan: list[tuple[bool, bool]], limit: int
) -> None:
    world = World(campaign(makeup_per_month=limit, makeup_cost=1), balance=10_000)
    start = date(2026, 2, 10)
    used: Counter[str] = Counter()
    for offset, (check_in, card) in enumerate(plan):
        today = start + timedelta(days=offset)
        if card:
            decision = world.feed(world.command("ana", local(today, 8), "makeup"))
            assert decision is not None
            if decision.spends:
                used[f"{today:%Y-%m}"] += 1
        if check_in:
            world.feed(world.command("ana", local(today, 20)))
        made = world.state("ana").get("makeups", {})
        assert all(count <= limit for count in made.values())
    assert all(count <= limit for count in used.values())


@given(moments, DAY_PLANS)
def test_evaluation_is_deterministic(plan: list[tuple[str, int]], days: list[str]) -> None:
    def run() -> tuple[list[object], list[object]]:
        world = World(campaign(tag="#打卡", milestones={"2": 3}), balance=50)
        decisions: list[object] = []
        for index, (user, minutes) in enumerate(sorted(plan, key=lambda item: item[1])):
            at = _at(minutes)
            event = (
                world.say(user, at, "今天 #打卡")
                if index % 2
                else world.command(user, at, *(["makeup"] if index % 3 == 0 else []))
            )
            decision = world.feed(event)
            decisions.append(None if decision is None else _frozen(decision))
        checkin = world.campaign
        ticks: list[object] = []
        moment: datetime | None = _at(0)
        for _ in range(len(days)):
            assert moment is not None
            moment = checkin.next_run(moment)
            assert moment is not None
            ticks.append(
                [_frozen(d) for d in checkin.on_schedule(_tick(moment, world.states, EVERYTHING))]
            )
        return decisions, ticks

    assert run() == run()


def _frozen(decision: object) -> object:
    """A decision as comparable plain values (its mappings are read-only views)."""
    assert isinstance(decision, Decision)
    return (
        decision.explanation,
        decision.awards,
        decision.actions,
        decision.spends,
        None if decision.state is None else repr(sorted(decision.state.items())),
        tuple(sorted((k, v) for k, v in decision.fallbacks.items())),
        decision.member,
    )
