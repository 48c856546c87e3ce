"""The ``size_cap`` rule type: full groups send newcomers to the next one with room."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from communitykit import (
    DeclineJoin,
    JoinRequested,
    Kick,
    MemberJoined,
    SendDirectMessage,
    SendMessage,
)
from communitykit._errors import ModelError
from communitykit.builtins.rules.membership import SizeCapRule, communitykit_rule_types
from tests.rules.membership_helpers import community, context, member

AT = datetime.fromisoformat("2026-11-01T01:30:00-05:00")  # New York, the second 01:30
CAPS = {"main": 500, "main2": 500, "main3": 200}
WHERE = community("America/New_York", CAPS)
LINK = "https://t.me/+main2"
RULE = SizeCapRule.from_settings({"invites": {"main2": LINK}})


def request(group: str = "-1") -> JoinRequested:
    return JoinRequested(event_id="r-1", platform="tg", group=group, user="42", at=AT)


def joined(group: str = "-1", name: str | None = "小明") -> MemberJoined:
    return MemberJoined(
        event_id="j-1", platform="tg", group=group, user="42", at=AT, display_name=name
    )


def kinds(decision: Any) -> list[str]:
    return [a.TYPE for a in decision.actions]


def test_the_type_is_registered() -> None:
    assert "size_cap" in {t.name for t in communitykit_rule_types()}


def test_a_request_to_a_group_with_room_is_left_to_other_rules() -> None:
    assert RULE.evaluate(context(request(), where=WHERE, sizes={"main": 499})) is None


def test_a_request_to_a_full_group_is_declined_and_pointed_to_the_next_link() -> None:
    decision = RULE.evaluate(context(request(), where=WHERE, sizes={"main": 500, "main2": 10}))
    assert decision is not None
    assert kinds(decision) == ["decline_join", "send_direct_message"]
    decline, tell = decision.actions
    assert isinstance(decline, DeclineJoin) and (decline.group, decline.user) == ("-1", "42")
    assert isinstance(tell, SendDirectMessage) and tell.group is None and tell.user == "42"
    assert tell.text == f"Group main is full. Please join {LINK} instead."
    assert decision.explanation == (
        "group main is full (500 of 500); declined the request; pointed to main2"
    )


def test_a_group_without_a_link_is_named_by_title() -> None:
    sizes = {"main": 500, "main2": 500, "main3": 3}
    decision = RULE.evaluate(context(request(), where=WHERE, sizes=sizes))
    assert decision is not None
    assert "Please join Group main3 instead" in decision.actions[1].text  # type: ignore[attr-defined]
    assert "pointed to main3" in decision.explanation


def test_the_overflow_order_decides_the_next_group() -> None:
    where = community("Asia/Shanghai", {"a": 1, "b": 5, "c": 5})
    swapped = attrs.evolve(
        where,
        groups=[
            attrs.evolve(g, overflow_order={"a": 0, "b": 2, "c": 1}[g.key]) for g in where.groups
        ],
    )
    decision = RULE.evaluate(context(request(), where=swapped, sizes={"a": 1}))
    assert decision is not None and "pointed to c" in decision.explanation


def test_a_join_beyond_the_cap_is_told_and_removed() -> None:
    decision = RULE.evaluate(context(joined(), where=WHERE, sizes={"main": 501, "main2": 3}))
    assert decision is not None
    assert kinds(decision) == ["send_direct_message", "kick"]
    tell, kick = decision.actions
    assert isinstance(kick, Kick) and (kick.group, kick.user) == ("-1", "42")
    (fallback,) = decision.fallbacks[tell.action_id]
    assert isinstance(fallback, SendMessage) and fallback.group == "-1"
    assert fallback.text.startswith("@小明 Group main is full")
    assert len({tell.action_id, kick.action_id, fallback.action_id}) == 3
    assert "removed the newcomer" in decision.explanation


def test_a_join_that_fills_the_group_exactly_is_fine() -> None:
    assert RULE.evaluate(context(joined(), where=WHERE, sizes={"main": 500})) is None


def test_overflow_may_stay_when_asked() -> None:
    rule = SizeCapRule.from_settings({"remove_overflow": False})
    decision = rule.evaluate(context(joined(), where=WHERE, sizes={"main": 501}))
    assert decision is not None and kinds(decision) == ["send_direct_message"]
    assert "told the newcomer" in decision.explanation


def test_when_every_group_is_full_the_operator_is_told() -> None:
    rule = SizeCapRule.from_settings({"operator_group": "main3", "operator": "7"})
    sizes = {"main": 500, "main2": 500, "main3": 200}
    decision = rule.evaluate(context(request(), where=WHERE, sizes=sizes))
    assert decision is not None
    assert kinds(decision) == [
        "decline_join",
        "send_direct_message",
        "send_message",
        "send_direct_message",
    ]
    _, tell, group_note, direct_note = decision.actions
    assert "every other group" in tell.text  # type: ignore[attr-defined]
    assert isinstance(group_note, SendMessage) and group_note.group == "-3"
    assert group_note.user is None
    assert "main 500/500, main2 500/500, main3 200/200" in group_note.text
    assert isinstance(direct_note, SendDirectMessage) and direct_note.user == "7"
    assert "every group on the platform is full" in decision.explanation
    assert "told the operators in main3" in decision.explanation
    assert "told operator 7 directly" in decision.explanation


def test_an_unknown_operator_group_is_said_in_the_explanation() -> None:
    rule = SizeCapRule.from_settings({"operator_group": "staff"})
    sizes = {"main": 501, "main2": 500, "main3": 200}
    decision = rule.evaluate(context(joined(), where=WHERE, sizes=sizes))
    assert decision is not None
    assert kinds(decision) == ["send_direct_message", "kick"]
    assert "operator group staff is not a configured group" in decision.explanation


def test_uncapped_or_unknown_groups_are_ignored() -> None:
    open_groups = community("UTC", {"main": None})
    assert RULE.evaluate(context(request(), where=open_groups, sizes={"main": 10**6})) is None
    assert RULE.evaluate(context(request("-99"), where=WHERE, sizes={"main": 999})) is None


def test_chinese_messages() -> None:
    rule = SizeCapRule.from_settings(
        {"full_message": "{mention}，{group} 已满，请加入 {target}。", "invites": {"main2": LINK}}  # noqa: RUF001
    )
    decision = rule.evaluate(
        context(joined(), where=WHERE, sizes={"main": 501}, who=member(name="小明"))
    )
    assert decision is not None
    assert decision.actions[0].text == f"@小明，Group main 已满，请加入 {LINK}。"  # type: ignore[attr-defined]  # noqa: RUF001


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"invites": "https://x"}, "invites must be a table"),
        ({"invites": {"main2": 5}}, "invites.main2 must be the group's invite link"),
        ({"remove_overflow": "no"}, "remove_overflow must be true or false"),
        ({"operator": 12345}, "operator must be a platform user id"),
        ({"operator_group": ""}, "operator_group must be a group key"),
        ({"full_message": "{link}"}, "unknown: link"),
        ({"operator_message": "{mention}"}, "unknown: mention"),
        ({"cap": 5}, "unknown settings: cap"),
    ],
)
def test_bad_settings_fail_clearly(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelError, match="size_cap rule") as raised:
        SizeCapRule.from_settings(settings)
    assert message in str(raised.value)


# ----------------------------------------------------------------- properties

SIZES = st.fixed_dictionaries(
    {"main": st.integers(0, 600), "main2": st.integers(0, 600), "main3": st.integers(0, 300)}
)


@given(sizes=SIZES, requested=st.booleans())
def test_evaluation_is_deterministic(sizes: dict[str, int], requested: bool) -> None:
    event = request() if requested else joined()
    assert RULE.evaluate(context(event, where=WHERE, sizes=sizes)) == RULE.evaluate(
        context(event, where=WHERE, sizes=dict(sizes))
    )


@given(sizes=SIZES)
def test_a_request_is_declined_exactly_when_the_group_is_full(sizes: dict[str, int]) -> None:
    decision = RULE.evaluate(context(request(), where=WHERE, sizes=sizes))
    assert (decision is not None) == (sizes["main"] >= 500)
    if decision is not None:
        assert "approve_join" not in kinds(decision)
        assert kinds(decision)[:2] == ["decline_join", "send_direct_message"]


@given(sizes=SIZES)
def test_newcomers_are_only_ever_pointed_to_a_group_with_room(sizes: dict[str, int]) -> None:
    decision = RULE.evaluate(context(joined(), where=WHERE, sizes=sizes))
    assert (decision is not None) == (sizes["main"] > 500)
    if decision is None:
        return
    room = [k for k in ("main2", "main3") if sizes[k] < CAPS[k]]
    if room:
        assert decision.explanation.endswith(f"pointed to {room[0]}")
    else:
        assert "every group on the platform is full" in decision.explanation
    assert kinds(decision).count("kick") == 1
