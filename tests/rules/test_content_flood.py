"""The ``flood`` rule type: too many messages too quickly mutes directly."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from communitykit._errors import ModelError
from communitykit.builtins.rules.content import FloodRule
from communitykit.model import Mute, Recent, SendMessage

from .content_helpers import (
    CHAT,
    MAIN,
    T0,
    WX,
    ZONES,
    context,
    edited,
    posted,
    recent,
)


def flood(**settings: Any) -> FloodRule:
    return FloodRule.from_settings(settings)


def burst(n: int, *, end: datetime = T0, step: float = 1.0, group: str = MAIN) -> list[Recent]:
    """``n`` earlier messages in ``group``, the last one ``step`` seconds before ``end``."""
    return [recent(end - timedelta(seconds=step * (n - i)), group=group) for i in range(n)]


def test_more_than_five_messages_in_ten_seconds_mutes_for_ten_minutes() -> None:
    ctx = context(posted("again", message_id="m6"), history=burst(5))
    decision = flood().evaluate(ctx)
    assert decision is not None
    assert decision.strike is False
    [mute] = decision.actions
    assert isinstance(mute, Mute)
    assert (mute.platform, mute.group, mute.user) == ("telegram", MAIN, "42")
    assert mute.until == T0 + timedelta(minutes=10)
    [ask] = decision.fallbacks[mute.action_id]
    assert isinstance(ask, SendMessage)
    assert ask.group == MAIN and ask.reply_to == "m6" and "slow down" in ask.text
    assert decision.explanation == (
        "posted 6 messages within 10 seconds in 1 group (limit 5); muted for 10m"
    )
    assert decision.state == {"muted_until": (T0 + timedelta(minutes=10)).isoformat()}


def test_five_messages_in_ten_seconds_are_fine() -> None:
    assert flood().evaluate(context(posted("ok"), history=burst(4))) is None


def test_the_window_includes_its_start_and_nothing_before() -> None:
    at_start = [recent(T0 - timedelta(seconds=10)), *burst(4)]
    assert flood().evaluate(context(posted("x"), history=at_start)) is not None
    before = [recent(T0 - timedelta(seconds=10, microseconds=1)), *burst(4)]
    assert flood().evaluate(context(posted("x"), history=before)) is None


def test_messages_in_several_groups_count_together_and_mute_everywhere() -> None:
    history = [
        *burst(2, group=MAIN),
        *burst(2, group=CHAT, step=1.5),
        recent(T0 - timedelta(seconds=2), platform="wechat", group=WX),
    ]
    decision = flood().evaluate(context(posted("x", message_id="m6"), history=history))
    assert decision is not None
    mutes = [a for a in decision.actions if isinstance(a, Mute)]
    assert [(m.platform, m.group, m.user) for m in mutes] == [
        ("telegram", MAIN, "42"),
        ("telegram", CHAT, "42"),
        ("wechat", WX, "wx42"),
    ]
    assert "in 3 groups" in decision.explanation
    asks = [decision.fallbacks[m.action_id][0] for m in mutes]
    assert [getattr(a, "reply_to", None) for a in asks] == ["m6", None, None]
    assert len({a.action_id for a in [*mutes, *asks]}) == 6


def test_per_group_counts_only_the_group_of_the_message() -> None:
    history = [*burst(3, group=MAIN), *burst(3, group=CHAT)]
    assert flood(per_group=True).evaluate(context(posted("x"), history=history)) is None
    assert flood().evaluate(context(posted("x"), history=history)) is not None
    decision = flood(per_group=True).evaluate(context(posted("x"), history=burst(5, group=MAIN)))
    assert decision is not None


def test_no_second_mute_while_the_first_lasts() -> None:
    until = T0 + timedelta(minutes=5)
    states = {"flood": {"muted_until": until.isoformat()}}
    assert flood().evaluate(context(posted("x"), history=burst(9), states=states)) is None
    later = context(posted("x", at=until), history=burst(9, end=until), states=states)
    decision = flood().evaluate(later)
    assert decision is not None
    assert decision.state == {"muted_until": (until + timedelta(minutes=10)).isoformat()}


@pytest.mark.parametrize("stored", ["not a time", "2026-03-29T02:00:00", 17, None])
def test_a_muted_until_it_cannot_read_is_no_mute(stored: object) -> None:
    states = {"flood": {"muted_until": stored}}
    assert flood().evaluate(context(posted("x"), history=burst(5), states=states)) is not None


def test_the_state_is_kept_under_the_rules_name() -> None:
    states = {"flood": {"muted_until": (T0 + timedelta(hours=1)).isoformat()}}
    renamed = flood(name="fast")
    assert renamed.evaluate(context(posted("x"), history=burst(5), states=states)) is not None


def test_messages_out_of_order_are_neither_a_crash_nor_counted_twice() -> None:
    # the event arrives late: three of the "recent" messages are newer than it
    newer = [recent(T0 + timedelta(seconds=s)) for s in (1, 2, 3)]
    history = [*burst(4), *newer]
    assert flood().evaluate(context(posted("late"), history=history)) is None
    # the same message listed twice, and the event itself listed, count once
    twice = burst(4)
    itself = recent(T0, message_id="m6")
    history = [*twice, *twice, itself]
    assert flood().evaluate(context(posted("x", message_id="m6"), history=history)) is None


def test_direct_messages_do_not_count_and_are_not_judged() -> None:
    dms = [recent(T0 - timedelta(seconds=s), group=None) for s in (1, 2, 3, 4, 5)]
    assert flood().evaluate(context(posted("x"), history=dms)) is None
    assert flood().evaluate(context(posted("x", group=None), history=burst(9))) is None


def test_edits_are_not_new_messages() -> None:
    rule = flood()
    assert rule.event_types == {"message_posted"}
    assert rule.evaluate(context(edited("x"), history=burst(9))) is None


def test_strike_and_a_longer_mute_can_be_set() -> None:
    rule = flood(messages=3, seconds=60, mute="1h", strike=True)
    assert rule.window == timedelta(seconds=60)
    decision = rule.evaluate(context(posted("x"), history=burst(3, step=15)))
    assert decision is not None and decision.strike
    assert isinstance(decision.actions[0], Mute)
    assert decision.actions[0].until == T0 + timedelta(hours=1)
    assert decision.explanation == (
        "posted 4 messages within 60 seconds in 1 group (limit 3); muted for 1h"
    )


@pytest.mark.parametrize("zone", ZONES)
def test_time_zones_of_the_event_and_the_history_may_differ(zone: Any) -> None:
    at = T0.astimezone(zone)
    decision = flood().evaluate(context(posted("x", at=at), history=burst(5)))
    assert decision is not None
    assert isinstance(decision.actions[0], Mute)
    assert decision.actions[0].until == T0 + timedelta(minutes=10)
    muted = decision.state
    assert muted is not None
    again = context(
        posted("y", at=at + timedelta(seconds=1)), history=burst(6), states={"flood": muted}
    )
    assert flood().evaluate(again) is None


@pytest.mark.parametrize(
    ("settings", "message_part"),
    [
        ({"messages": 0}, "messages must be a whole number >= 1"),
        ({"seconds": "10"}, "seconds must be a whole number >= 1"),
        ({"mute": "forever"}, "mute must be a positive number of seconds"),
        ({"strike": "yes"}, "strike must be true or false"),
        ({"per_group": 1}, "per_group must be true or false"),
        ({"mesages": 3}, "unknown settings: mesages"),
    ],
)
def test_bad_settings_are_refused_with_the_key_named(
    settings: dict[str, Any], message_part: str
) -> None:
    with pytest.raises(ModelError, match="flood rule") as caught:
        flood(**settings)
    assert message_part in str(caught.value)


# --------------------------------------------------------------- properties

_OFFSETS = st.floats(min_value=-120, max_value=120, allow_nan=False)
_GROUPS = st.sampled_from([MAIN, CHAT])


@st.composite
def histories(draw: st.DrawFn, inside: int) -> list[Recent]:
    """At most ``inside`` messages in the last 10 seconds (and any number outside)."""
    within = draw(st.lists(st.floats(0, 10), max_size=inside))
    outside = draw(st.lists(st.one_of(st.floats(10.001, 600), st.floats(-600, -0.001))))
    return [
        recent(T0 - timedelta(seconds=s), group=draw(_GROUPS), message_id=f"r{i}")
        for i, s in enumerate([*within, *outside])
    ]


@given(history=histories(inside=4))
def test_member_below_the_flood_threshold_gets_no_action(history: list[Recent]) -> None:
    assert flood().evaluate(context(posted("x"), history=history)) is None


@given(history=histories(inside=12), zone=st.sampled_from(ZONES), seed=st.randoms())
def test_evaluation_is_deterministic(history: list[Recent], zone: Any, seed: Any) -> None:
    at = T0.astimezone(zone)
    first = flood().evaluate(context(posted("x", at=at), history=history))
    assert first == flood().evaluate(context(posted("x", at=at), history=list(history)))
    shuffled = list(history)
    seed.shuffle(shuffled)
    assert first == flood().evaluate(context(posted("x", at=at), history=shuffled))


@given(
    gaps=st.lists(st.floats(0.05, 4), min_size=1, max_size=60),
    mute=st.integers(60, 3600),
)
def test_a_run_of_messages_is_muted_at_most_once_per_mute(gaps: list[float], mute: int) -> None:
    """Feeding a member's messages one by one, carrying the rule's state as the
    engine does: a mute comes only after more than 5 messages in 10 seconds, and
    never while an earlier one lasts."""
    rule = flood(mute=mute)
    state: dict[str, Any] = {}
    history: list[Recent] = []
    at = T0
    muted_until: datetime | None = None
    for index, gap in enumerate(gaps):
        at += timedelta(seconds=gap)
        event = posted(f"message {index}", at=at, message_id=f"m{index}")
        decision = rule.evaluate(context(event, history=history, states={"flood": state}))
        in_window = [r for r in history if at - timedelta(seconds=10) <= r.at <= at]
        if decision is not None:
            assert len(in_window) + 1 > 5
            assert muted_until is None or at >= muted_until
            assert decision.state is not None
            state = dict(decision.state)
            muted_until = at + timedelta(seconds=mute)
        else:
            assert len(in_window) + 1 <= 5 or (muted_until is not None and at < muted_until)
        history.append(recent(at, message_id=f"m{index}"))
