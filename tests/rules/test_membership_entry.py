"""The ``entry`` rule type: questionnaire, paid membership and member invites."""
# ruff: noqa: RUF001  (full-width characters are what these tests are about)

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from communitykit import ApproveJoin, DeclineJoin, JoinRequested, MemberStatus, SendDirectMessage
from communitykit._errors import ModelError
from communitykit.builtins.rules.membership import EntryRule, communitykit_rule_types
from tests.rules.membership_helpers import community, context, member

AT = datetime.fromisoformat("2026-03-08T06:30:00+00:00")
QUESTION = "What do you do?"


def request(
    answers: dict[str, str] | None = None, invite: str | None = None, at: datetime = AT
) -> JoinRequested:
    return JoinRequested(
        event_id="jr-1",
        platform="tg",
        group="-1",
        user="42",
        at=at,
        answers=answers or {},
        invite=invite,
    )


def rule(**settings: Any) -> EntryRule:
    return EntryRule.from_settings(settings)


def questionnaire(**more: Any) -> EntryRule:
    return rule(questions=[{"question": QUESTION, "accept": ["designer", "re:^dev"]}], **more)


def kinds(decision: Any) -> list[str]:
    return [a.TYPE for a in decision.actions]


def test_the_type_is_registered() -> None:
    assert "entry" in {t.name for t in communitykit_rule_types()}


def test_an_accepted_answer_is_approved() -> None:
    decision = questionnaire().evaluate(context(request({QUESTION: "Designer"})))
    assert decision is not None
    assert kinds(decision) == ["approve_join"]
    approve = decision.actions[0]
    assert isinstance(approve, ApproveJoin)
    assert (approve.group, approve.user, approve.source) == ("-1", "42", "rule:entry")
    assert "answered every required question" in decision.explanation


def test_a_pattern_answer_is_approved_case_insensitively() -> None:
    decision = questionnaire().evaluate(context(request({QUESTION: "  DEVELOPER at ACME"})))
    assert decision is not None and kinds(decision) == ["approve_join"]


def test_full_width_answers_are_normalized() -> None:
    decision = questionnaire().evaluate(context(request({QUESTION: "ＤＥＳＩＧＮＥＲ"})))
    assert decision is not None and kinds(decision) == ["approve_join"]


def test_an_unanswered_required_question_declines_and_says_why() -> None:
    decision = questionnaire().evaluate(context(request({})))
    assert decision is not None
    assert kinds(decision) == ["decline_join", "send_direct_message"]
    assert decision.explanation == (
        "join request declined: question 'What do you do?' was not answered"
    )
    message = decision.actions[1]
    assert isinstance(message, SendDirectMessage)
    assert message.group is None and message.user == "42"
    assert "question 'What do you do?' was not answered" in message.text
    assert "Group main" in message.text
    assert decision.actions[0].action_id != message.action_id


def test_a_blank_answer_counts_as_unanswered() -> None:
    decision = questionnaire().evaluate(context(request({QUESTION: "   "})))
    assert decision is not None and "was not answered" in decision.explanation


def test_a_wrong_answer_declines() -> None:
    decision = questionnaire().evaluate(context(request({QUESTION: "astronaut"})))
    assert decision is not None
    assert kinds(decision) == ["decline_join", "send_direct_message"]
    assert "answer to question 'What do you do?' was not accepted" in decision.explanation


def test_plain_answers_must_match_whole() -> None:
    decision = questionnaire().evaluate(context(request({QUESTION: "not a designer"})))
    assert decision is not None and kinds(decision)[0] == "decline_join"


def test_the_first_failing_question_is_named() -> None:
    entry = rule(
        questions=[
            {"question": "Name?"},
            {"question": "City?", "accept": ["beijing"]},
            {"question": "Job?"},
        ]
    )
    decision = entry.evaluate(context(request({"Name?": "Ann", "City?": "Paris"})))
    assert decision is not None
    assert decision.explanation == (
        "join request declined: the answer to question 'City?' was not accepted"
    )


def test_an_open_question_takes_any_non_blank_answer() -> None:
    entry = rule(questions=[{"question": "Why join?"}])
    decision = entry.evaluate(context(request({"Why join?": "因为我喜欢设计"})))
    assert decision is not None and kinds(decision) == ["approve_join"]


def test_chinese_questions_and_answers() -> None:
    entry = rule(questions=[{"question": "你是做什么的？", "accept": ["设计师", "re:开发"]}])
    approved = entry.evaluate(context(request({"你是做什么的？": "后端开发工程师"})))
    assert approved is not None and kinds(approved) == ["approve_join"]
    declined = entry.evaluate(context(request({"你是做什么的？": "学生"})))
    assert declined is not None and kinds(declined)[0] == "decline_join"
    assert "你是做什么的？" in declined.explanation
    # the question matches after normalization (full-width question mark and spaces)
    loose = entry.evaluate(context(request({" 你是做什么的? ": "设计师"})))
    assert loose is not None and kinds(loose) == ["approve_join"]


def test_an_optional_question_never_declines() -> None:
    entry = rule(
        questions=[
            {"question": QUESTION, "accept": ["designer"]},
            {"question": "Twitter?", "required": False, "accept": ["re:^@"]},
        ]
    )
    decision = entry.evaluate(context(request({QUESTION: "designer", "Twitter?": "no"})))
    assert decision is not None and kinds(decision) == ["approve_join"]


def test_a_paid_member_is_enough_whatever_the_answers() -> None:
    payer = member(paid_until=date(2026, 3, 8))
    decision = questionnaire(paid="enough").evaluate(context(request({}), who=payer))
    assert decision is not None and kinds(decision) == ["approve_join"]
    assert "paid member" in decision.explanation


def test_paid_is_judged_on_the_local_day_of_the_request() -> None:
    payer = member(paid_until=date(2026, 3, 8))
    entry = questionnaire(paid="enough")
    # 2026-03-08T17:30Z is already 2026-03-09 in Shanghai: payment expired there
    late = request({}, at=datetime.fromisoformat("2026-03-08T17:30:00+00:00"))
    shanghai = entry.evaluate(context(late, who=payer, where=community("Asia/Shanghai")))
    assert shanghai is not None and kinds(shanghai)[0] == "decline_join"
    new_york = entry.evaluate(context(late, who=payer, where=community("America/New_York")))
    assert new_york is not None and kinds(new_york) == ["approve_join"]


def test_paid_required_declines_an_unpaid_member_even_with_good_answers() -> None:
    decision = questionnaire(paid="required").evaluate(context(request({QUESTION: "designer"})))
    assert decision is not None and kinds(decision)[0] == "decline_join"
    assert "paid membership is required" in decision.explanation


def test_paid_required_still_asks_the_questions() -> None:
    payer = member(paid_until=date(2026, 12, 31))
    entry = questionnaire(paid="required")
    declined = entry.evaluate(context(request({QUESTION: "chef"}), who=payer))
    assert declined is not None and kinds(declined)[0] == "decline_join"
    approved = entry.evaluate(context(request({QUESTION: "designer"}), who=payer))
    assert approved is not None and kinds(approved) == ["approve_join"]
    assert "paid member" in approved.explanation


def test_a_valid_member_invite_is_enough() -> None:
    owner = member("m9", user="9")
    decision = questionnaire(member_invites="enough").evaluate(
        context(request({}, invite="inv-9"), invites={"inv-9": owner})
    )
    assert decision is not None and kinds(decision) == ["approve_join"]
    assert "invited by active member m9" in decision.explanation


@pytest.mark.parametrize("status", [MemberStatus.LEFT, MemberStatus.BANNED, MemberStatus.PENDING])
def test_an_invite_from_an_inactive_member_is_not_valid(status: MemberStatus) -> None:
    owner = member("m9", user="9", status=status)
    entry = rule(member_invites="required")
    decision = entry.evaluate(context(request({}, invite="inv-9"), invites={"inv-9": owner}))
    assert decision is not None and kinds(decision)[0] == "decline_join"
    assert "invite from an active member is required" in decision.explanation


def test_an_unknown_invite_is_not_valid() -> None:
    decision = rule(member_invites="required").evaluate(context(request({}, invite="nope")))
    assert decision is not None and kinds(decision)[0] == "decline_join"


def test_enough_conditions_alone_decline_when_unmet() -> None:
    decision = rule(paid="enough", member_invites="enough").evaluate(context(request({})))
    assert decision is not None and kinds(decision)[0] == "decline_join"
    assert "a paid membership or an invite from an active member" in decision.explanation


def test_the_decline_message_is_a_template() -> None:
    entry = questionnaire(decline_message="抱歉，{group} 未通过：{reason}")
    decision = entry.evaluate(context(request({})))
    assert decision is not None
    message = decision.actions[1]
    assert isinstance(message, SendDirectMessage)
    assert message.text.startswith("抱歉，Group main 未通过：question")


def test_other_events_are_ignored() -> None:
    from communitykit import MemberJoined

    joined = MemberJoined(event_id="j", platform="tg", group="-1", user="42", at=AT)
    assert questionnaire().evaluate(context(joined)) is None


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "at least one of questions, paid or member_invites"),
        ({"paid": "maybe"}, "paid must be 'enough', 'required' or 'ignore', got 'maybe'"),
        ({"member_invites": True}, "member_invites must be 'enough'"),
        ({"questions": "What?"}, "questions must be a list of tables"),
        ({"questions": [{"question": ""}]}, "questions[0].question must be a non-empty text"),
        ({"questions": [{"question": "A", "accept": "x"}]}, "questions[0].accept must be a list"),
        ({"questions": [{"question": "A", "accept": ["re:("]}]}, "is not a valid pattern"),
        ({"questions": [{"question": "A", "accept": [" "]}]}, "blank answer"),
        ({"questions": [{"question": "A", "required": "yes"}]}, "required must be true or false"),
        ({"questions": [{"question": "A", "answer": "x"}]}, "unknown settings: answer"),
        ({"questions": [{"question": "A"}, {"question": " a "}]}, "repeats the question"),
        ({"paid": "enough", "decline_message": "{who}"}, "unknown: who"),
        ({"paid": "enough", "colour": "red"}, "unknown settings: colour"),
    ],
)
def test_bad_settings_fail_clearly(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelError, match="entry rule") as raised:
        EntryRule.from_settings(settings)
    assert message in str(raised.value)


# ----------------------------------------------------------------- properties

MODES = st.sampled_from(["enough", "required", "ignore"])
ANSWERS = st.dictionaries(
    st.sampled_from([QUESTION, "Other?", "你好？"]), st.text(max_size=12), max_size=3
)


@given(
    paid=MODES,
    invites=MODES,
    answers=ANSWERS,
    is_paid=st.booleans(),
    invited=st.sampled_from([None, "good", "bad", "unknown"]),
)
def test_a_request_is_never_both_approved_and_declined(
    paid: str, invites: str, answers: dict[str, str], is_paid: bool, invited: str | None
) -> None:
    entry = questionnaire(paid=paid, member_invites=invites)
    who = member(paid_until=date(2030, 1, 1) if is_paid else None)
    owners = {
        "good": member("o1", user="1"),
        "bad": member("o2", user="2", status=MemberStatus.LEFT),
    }
    decision = entry.evaluate(context(request(answers, invited), who=who, invites=owners))
    assert decision is not None
    types = kinds(decision)
    assert ("approve_join" in types) != ("decline_join" in types)
    if paid == "enough" and is_paid and not (invites == "required" and invited != "good"):
        assert types == ["approve_join"]
    if paid == "required" and not is_paid:
        assert types[0] == "decline_join"
    assert all(
        isinstance(a, ApproveJoin | DeclineJoin | SendDirectMessage) for a in decision.actions
    )


@given(answers=ANSWERS, is_paid=st.booleans())
def test_evaluation_is_deterministic(answers: dict[str, str], is_paid: bool) -> None:
    entry = questionnaire(paid="enough")
    who = member(paid_until=date(2030, 1, 1) if is_paid else None)
    first = entry.evaluate(context(request(answers), who=who))
    second = EntryRule.from_settings(
        {"questions": [{"question": QUESTION, "accept": ["designer", "re:^dev"]}], "paid": "enough"}
    ).evaluate(context(request(dict(reversed(answers.items()))), who=who))
    assert first == second


@given(
    answer=st.sampled_from(["designer", "dev", "developer"]),
    noise=st.sampled_from(["", " ", "\u3000"]),
)
def test_an_accepted_answer_with_any_case_or_spacing_is_approved(answer: str, noise: str) -> None:
    decision = questionnaire().evaluate(
        context(request({QUESTION: noise + answer.upper() + noise}))
    )
    assert decision is not None and kinds(decision) == ["approve_join"]
