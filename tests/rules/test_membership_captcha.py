"""The ``captcha`` rule type: challenge, answer, and removal at the deadline."""
# ruff: noqa: RUF001  (full-width digits are part of what these tests are about)

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from communitykit import (
    Ban,
    CommandInvoked,
    DeleteMessage,
    Kick,
    MemberJoined,
    MessagePosted,
    SendDirectMessage,
    SendMessage,
)
from communitykit._errors import ModelError
from communitykit.builtins.rules.membership import (
    CaptchaRule,
    captcha_code,
    communitykit_rule_types,
)
from tests.rules.membership_helpers import FakeSource, community, context, tick

AT = datetime.fromisoformat("2026-03-08T01:58:00-05:00")  # New York, just before DST starts
RULE = CaptchaRule.from_settings({})


def joined(event_id: str = "j-1", at: datetime = AT, name: str | None = "Ann") -> MemberJoined:
    return MemberJoined(
        event_id=event_id, platform="tg", group="-1", user="42", at=at, display_name=name
    )


def verify(args: tuple[str, ...], at: datetime, group: str | None = "-1") -> CommandInvoked:
    return CommandInvoked(
        event_id=f"c-{at.isoformat()}-{'-'.join(args)}",
        platform="tg",
        group=group,
        user="42",
        at=at,
        command="verify",
        args=args,
    )


def pending_state(rule: CaptchaRule = RULE, at: datetime = AT) -> Mapping[str, Any]:
    decision = rule.evaluate(context(joined(at=at)))
    assert decision is not None and decision.state is not None
    return decision.state


def test_the_type_is_registered() -> None:
    assert "captcha" in {t.name for t in communitykit_rule_types()}


def test_a_newcomer_gets_a_challenge_and_a_deadline() -> None:
    decision = RULE.evaluate(context(joined()))
    assert decision is not None
    (post,) = decision.actions
    assert isinstance(post, SendMessage)
    code = captcha_code("tg", "j-1")
    assert (post.group, post.source) == ("-1", "rule:captcha")
    assert "@Ann" in post.text and f"/verify {code}" in post.text and "5m" in post.text
    assert decision.state == {
        "platform": "tg",
        "group": "-1",
        "user": "42",
        "deadline": "2026-03-08T02:03:00-05:00",
        "code": code,
        "failures": 0,
    }
    assert "within 5m" in decision.explanation


def test_a_newcomer_without_a_name_is_mentioned_by_id() -> None:
    decision = RULE.evaluate(context(joined(name=None)))
    assert decision is not None
    assert "@42" in decision.actions[0].text  # type: ignore[attr-defined]


def test_failures_are_kept_across_joins() -> None:
    decision = RULE.evaluate(context(joined(), rule_state={"captcha": {"failures": 2}}))
    assert decision is not None and decision.state is not None
    assert decision.state["failures"] == 2


def test_the_right_code_before_the_deadline_verifies() -> None:
    state = pending_state()
    event = verify((state["code"],), AT + timedelta(minutes=4))
    decision = RULE.evaluate(context(event, rule_state={"captcha": state}))
    assert decision is not None
    assert decision.state == {}
    (welcome,) = decision.actions
    assert isinstance(welcome, SendMessage) and welcome.group == "-1"
    assert "verified" in welcome.text
    assert "correctly" in decision.explanation


def test_full_width_digits_are_accepted() -> None:
    state = {**pending_state(), "code": "1234"}
    event = verify(("１２３４",), AT + timedelta(minutes=1))
    decision = RULE.evaluate(context(event, rule_state={"captcha": state}))
    assert decision is not None and decision.state == {}


def test_the_answer_may_come_in_a_direct_message() -> None:
    state = pending_state()
    event = verify((state["code"],), AT + timedelta(minutes=1), group=None)
    decision = RULE.evaluate(context(event, rule_state={"captcha": state}))
    assert decision is not None and decision.state == {}
    assert decision.actions[0].group == "-1"  # the welcome goes to the group


def test_a_wrong_code_is_told_and_changes_nothing() -> None:
    state = {**pending_state(), "code": "1234"}
    decision = RULE.evaluate(context(verify(("4321",), AT), rule_state={"captcha": state}))
    assert decision is not None
    assert decision.state is None
    (reply,) = decision.actions
    assert isinstance(reply, SendMessage) and "not right" in reply.text
    assert "wrong code" in decision.explanation
    dm = RULE.evaluate(context(verify((), AT, group=None), rule_state={"captcha": state}))
    assert dm is not None and isinstance(dm.actions[0], SendDirectMessage)


def test_a_code_after_the_deadline_does_nothing() -> None:
    state = pending_state()
    late = verify((state["code"],), AT + timedelta(minutes=5, seconds=1))
    assert RULE.evaluate(context(late, rule_state={"captcha": state})) is None


def test_a_verify_without_a_pending_challenge_does_nothing() -> None:
    assert RULE.evaluate(context(verify(("1234",), AT))) is None
    done = {"captcha": {"failures": 0}}
    assert RULE.evaluate(context(verify(("1234",), AT), rule_state=done)) is None


def test_the_command_is_configurable() -> None:
    rule = CaptchaRule.from_settings({"command": "human", "name": "gate"})
    decision = rule.evaluate(context(joined()))
    assert decision is not None
    assert "/human " in decision.actions[0].text  # type: ignore[attr-defined]
    state = decision.state
    assert state is not None
    human = CommandInvoked(
        event_id="c",
        platform="tg",
        group="-1",
        user="42",
        at=AT,
        command="human",
        args=(state["code"],),
    )
    answered = rule.evaluate(context(human, rule_state={"gate": state}))
    assert answered is not None and answered.state == {}
    assert answered.source == "rule:gate"
    other = verify((state["code"],), AT)
    assert rule.evaluate(context(other, rule_state={"gate": state})) is None


def test_messages_of_an_unverified_member_are_deleted_when_asked() -> None:
    rule = CaptchaRule.from_settings({"delete_unverified": True})
    state = pending_state(rule)
    post = MessagePosted(
        event_id="p", platform="tg", group="-1", user="42", at=AT, message_id="77", text="spam"
    )
    decision = rule.evaluate(context(post, rule_state={"captcha": state}))
    assert decision is not None
    (delete,) = decision.actions
    assert isinstance(delete, DeleteMessage) and delete.message_id == "77"
    # not by default, not in another group, not after the deadline, not once verified
    assert RULE.evaluate(context(post, rule_state={"captcha": state})) is None
    elsewhere = MessagePosted(
        event_id="p2", platform="tg", group="-2", user="42", at=AT, message_id="78", text="hi"
    )
    assert rule.evaluate(context(elsewhere, rule_state={"captcha": state})) is None
    late = MessagePosted(
        event_id="p3",
        platform="tg",
        group="-1",
        user="42",
        at=AT + timedelta(hours=1),
        message_id="79",
        text="hi",
    )
    assert rule.evaluate(context(late, rule_state={"captcha": state})) is None
    assert rule.evaluate(context(post, rule_state={"captcha": {"failures": 0}})) is None


# ------------------------------------------------------------------- schedule


def source_with(
    states: Mapping[str, Mapping[str, Any]], groups: Mapping[str, frozenset[str]]
) -> FakeSource:
    return FakeSource(rule_states={"captcha": states}, groups=groups)


def test_next_run_is_the_earliest_pending_deadline() -> None:
    early = pending_state(at=AT)
    late = pending_state(at=AT + timedelta(hours=1))
    source = source_with({"a": late, "b": early, "c": {"failures": 1}}, {})
    when = RULE.next_run(None, tick(AT, source=source))
    assert when == AT + timedelta(minutes=5)
    # a deadline already past is still returned, so the engine runs it now
    assert (
        RULE.next_run(AT + timedelta(days=1), tick(AT + timedelta(days=1), source=source)) == when
    )


def test_next_run_is_none_without_pending_challenges() -> None:
    source = source_with({"a": {"failures": 2}}, {})
    assert RULE.next_run(None, tick(AT, source=source)) is None


def test_a_missed_deadline_kicks_and_counts_a_failure() -> None:
    state = pending_state()
    source = source_with({"m1": state}, {"m1": frozenset({"main"})})
    # the deadline 02:03 EST is 07:03 UTC; an hour later clocks read 04:03 EDT
    now = datetime.fromisoformat("2026-03-08T04:03:00-04:00")
    (decision,) = list(RULE.on_schedule(tick(now, community("America/New_York"), source)))
    (kick,) = decision.actions
    assert isinstance(kick, Kick)
    assert (kick.platform, kick.group, kick.user) == ("tg", "-1", "42")
    assert decision.member == "m1"
    assert decision.state == {"failures": 1}
    assert "removed from main" in decision.explanation
    assert "1 of 3" in decision.explanation


def test_a_deadline_not_yet_reached_is_left_alone() -> None:
    state = pending_state()
    source = source_with({"m1": state}, {"m1": frozenset({"main"})})
    assert list(RULE.on_schedule(tick(AT + timedelta(minutes=4), source=source))) == []


def test_the_third_missed_deadline_bans() -> None:
    state = {**pending_state(), "failures": 2}
    source = source_with({"m1": state}, {"m1": frozenset({"main"})})
    (decision,) = list(RULE.on_schedule(tick(AT + timedelta(minutes=6), source=source)))
    (ban,) = decision.actions
    assert isinstance(ban, Ban) and ban.until is None
    assert decision.state == {"failures": 3}
    assert "banned" in decision.explanation


def test_ban_after_is_configurable() -> None:
    rule = CaptchaRule.from_settings({"ban_after": 1, "timeout": "1h"})
    state = pending_state(rule)
    source = source_with({"m1": state}, {"m1": frozenset({"main"})})
    (decision,) = list(rule.on_schedule(tick(AT + timedelta(hours=2), source=source)))
    assert isinstance(decision.actions[0], Ban)


def test_a_member_who_left_is_not_kicked() -> None:
    state = pending_state()
    source = source_with({"m1": state}, {"m1": frozenset({"main2"})})
    (decision,) = list(RULE.on_schedule(tick(AT + timedelta(minutes=6), source=source)))
    assert decision.actions == ()
    assert decision.state == {"failures": 0}
    assert "left group main" in decision.explanation


def test_a_member_in_an_unknown_group_is_kicked_anyway() -> None:
    state = {**pending_state(), "group": "-999"}
    source = source_with({"m1": state}, {})
    (decision,) = list(RULE.on_schedule(tick(AT + timedelta(minutes=6), source=source)))
    assert isinstance(decision.actions[0], Kick) and decision.actions[0].group == "-999"


def test_scheduled_action_ids_are_stable_and_distinct_per_member() -> None:
    a = pending_state()
    b = {**pending_state(), "user": "43"}
    source = source_with({"m1": a, "m2": b}, {"m1": frozenset({"main"}), "m2": frozenset({"main"})})
    now = AT + timedelta(minutes=6)
    first = list(RULE.on_schedule(tick(now, source=source)))
    again = list(RULE.on_schedule(tick(now + timedelta(minutes=1), source=source)))
    assert first == again
    assert len({d.actions[0].action_id for d in first}) == 2


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"timeout": "soon"}, "timeout must be a positive number of seconds"),
        ({"timeout": 0}, "timeout must be a positive"),
        ({"ban_after": 0}, "ban_after must be a whole number >= 1, got 0"),
        ({"command": "/verify"}, "command must be a command name"),
        ({"command": "ver ify"}, "command must be a command name"),
        ({"delete_unverified": "yes"}, "delete_unverified must be true or false"),
        ({"challenge": "send {cod}"}, "unknown: cod"),
        ({"welcome": "{"}, "welcome is not a valid template"),
        ({"timeuot": "5m"}, "unknown settings: timeuot"),
    ],
)
def test_bad_settings_fail_clearly(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelError, match="captcha rule") as raised:
        CaptchaRule.from_settings(settings)
    assert message in str(raised.value)


# ----------------------------------------------------------------- properties


@given(event_id=st.text(min_size=1, max_size=40))
def test_captcha_code_is_stable_for_an_event(event_id: str) -> None:
    code = captcha_code("tg", event_id)
    assert code == captcha_code("tg", event_id)
    assert len(code) == 4 and code.isascii() and code.isdigit()
    event = MemberJoined(event_id=event_id, platform="tg", group="-1", user="42", at=AT)
    first = RULE.evaluate(context(event))
    second = RULE.evaluate(context(event))
    assert first == second
    assert first is not None and first.state is not None and first.state["code"] == code


def test_codes_differ_between_events() -> None:
    codes = {captcha_code("tg", f"join-{n}") for n in range(200)}
    assert len(codes) > 150


@given(
    answer=st.text(alphabet="0123456789", min_size=0, max_size=6),
    minutes=st.integers(min_value=0, max_value=10),
)
def test_evaluation_is_deterministic(answer: str, minutes: int) -> None:
    state = pending_state()
    event = verify((answer,), AT + timedelta(minutes=minutes))
    first = RULE.evaluate(context(event, rule_state={"captcha": state}))
    assert first == RULE.evaluate(context(event, rule_state={"captcha": dict(state)}))
    if minutes > 5:
        assert first is None
    else:
        assert first is not None
        assert (first.state == {}) == (answer == state["code"])


@given(
    failures=st.integers(min_value=0, max_value=10),
    ban_after=st.integers(min_value=1, max_value=5),
)
def test_a_missed_deadline_kicks_or_bans_never_both(failures: int, ban_after: int) -> None:
    rule = CaptchaRule.from_settings({"ban_after": ban_after})
    state = {**pending_state(rule), "failures": failures}
    source = source_with({"m1": state}, {"m1": frozenset({"main"})})
    (decision,) = list(rule.on_schedule(tick(AT + timedelta(hours=1), source=source)))
    (action,) = decision.actions
    assert isinstance(action, Ban) == (failures + 1 >= ban_after)
    assert isinstance(action, Kick) == (failures + 1 < ban_after)
    assert decision.state == {"failures": failures + 1}


@given(offsets=st.lists(st.integers(min_value=-600, max_value=600), min_size=1, max_size=8))
def test_next_run_is_never_later_than_any_pending_deadline(offsets: list[int]) -> None:
    states = {
        f"m{i}": {**pending_state(), "deadline": (AT + timedelta(minutes=o)).isoformat()}
        for i, o in enumerate(offsets)
    }
    when = RULE.next_run(AT, tick(AT, source=source_with(states, {})))
    assert when == AT + timedelta(minutes=min(offsets))


@given(
    minutes=st.integers(min_value=0, max_value=5), later=st.integers(min_value=0, max_value=10**6)
)
def test_a_verified_member_is_never_removed(minutes: int, later: int) -> None:
    state = pending_state()
    event = verify((state["code"],), AT + timedelta(minutes=minutes))
    answered = RULE.evaluate(context(event, rule_state={"captcha": state}))
    assert answered is not None and answered.state is not None
    source = source_with({"m1": answered.state}, {"m1": frozenset({"main"})})
    now = AT + timedelta(minutes=minutes, seconds=later)
    assert RULE.next_run(None, tick(now, source=source)) is None
    assert list(RULE.on_schedule(tick(now, source=source))) == []
