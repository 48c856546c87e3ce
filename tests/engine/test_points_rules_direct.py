"""The built-in points rules' awards, which the engine asks for without a decision:
the decisions still reach the result and the hook, equal to what ``evaluate`` says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import ClassVar

import attrs
import pytest

from communitykit import AwardPoints, Decision, MessagePosted, ReactionAdded, RuleContext
from communitykit.builtins.points import MessagePoints, ReactionPoints
from communitykit.engine import ProcessResult
from communitykit.testing import HookRecorder, memory_app

from .doubles import ScriptedAdapter
from .test_engine import LADDER, msg

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def reaction(n: int, user: str, to_user: str, message_id: str = "1") -> ReactionAdded:
    return ReactionAdded(
        event_id=f"r{n}",
        platform="console",
        group="main",
        user=user,
        at=T0 + timedelta(minutes=n),
        message_id=message_id,
        emoji="+1",
        to_user=to_user,
    )


def message_decision(event: MessagePosted, points: int = 2) -> Decision:
    award = AwardPoints(
        member=f"console:{event.user}",
        points=points,
        reason="message",
        key=f"console:{event.event_id}:points.message",
    )
    return Decision(
        source="rule:points.message", explanation=f"{points} points for a message", awards=(award,)
    )


async def test_the_result_holds_the_points_rules_decisions() -> None:
    app, _ = memory_app(config_text=LADDER, adapters={"console": ScriptedAdapter()})
    await app.feed([msg(1, user="bo")])
    result = await app.feed([msg(2), reaction(3, "ana", "bo"), reaction(4, "ana", "ana")])
    reacted = AwardPoints(
        member="console:bo",
        points=1,
        reason="reaction_received",
        key="console:reaction:main:1:ana",
    )
    assert result.decisions == (
        message_decision(msg(2)),
        Decision(
            source="rule:points.reaction",
            explanation="1 points to the author for a reaction received",
            awards=(reacted,),
        ),
    )
    assert result.decisions is result.decisions  # built once
    assert result.entries == 2
    assert app.balance("console:bo") == 3


async def test_the_hook_receives_the_decisions_the_result_holds() -> None:
    app, _ = memory_app(config_text=LADDER, adapters={"console": ScriptedAdapter()})
    recorder = HookRecorder()
    app.register_plugin(recorder, name="recorder")
    result = await app.feed([msg(1), msg(2)])
    calls = recorder.calls("communitykit_event_processed")
    assert [c["decisions"] for c in calls] == [
        (message_decision(msg(1)),),
        (message_decision(msg(2)),),
    ]
    assert result.decisions == (calls[0]["decisions"][0], calls[1]["decisions"][0])


async def test_evaluate_decides_what_the_engine_applies() -> None:
    rule = MessagePoints(points=3)
    event = msg(1)
    app, _ = memory_app(config_text=LADDER, adapters={"console": ScriptedAdapter()})
    await app.feed([event])
    member = app.member("console", "ana")
    assert member is not None
    ctx = RuleContext(
        event=event,
        member=member,
        state=app.engine.states[member.member_id],
        tier=app.engine.ladder.base,
        balance=0,
        community=app.engine.community,
        capabilities=app.engine.capabilities["console"],
        now=T0,
        cap_remaining=lambda _reason: None,
        member_of=lambda _platform, _user: None,
        already_awarded=lambda _key: False,
    )
    assert rule.evaluate(ctx) == message_decision(event, points=3)
    assert ReactionPoints(points=1).evaluate(ctx) is None


@attrs.frozen
class DoublePoints(MessagePoints):
    """A subclass that changes what evaluate decides: the engine must ask it."""

    name: ClassVar[str] = "double"

    def evaluate(self, ctx: RuleContext) -> Decision | None:
        decision = super().evaluate(ctx)
        if decision is None:
            return None
        (award,) = decision.awards
        return attrs.evolve(decision, awards=(attrs.evolve(award, points=award.points * 2),))


async def test_a_subclass_of_a_points_rule_is_asked_through_evaluate() -> None:
    app, _ = memory_app(adapters={"console": ScriptedAdapter()}, rules=[DoublePoints(points=5)])
    result = await app.feed([msg(1)])
    assert app.balance("console:ana") == 1 + 10  # the default point per message, and these
    assert [d.awards[0].points for d in result.decisions if d.source == "rule:double"] == [10]


def test_a_result_built_by_hand_keeps_its_decisions() -> None:
    decision = message_decision(msg(1))
    result = ProcessResult(recorded=1, duplicates=0, decisions=(decision,), actions=0, entries=1)
    assert result.decisions == (decision,)
    assert result == ProcessResult(
        recorded=1, duplicates=0, decisions=[decision], actions=0, entries=1
    )
    assert "points.message" in repr(result)
