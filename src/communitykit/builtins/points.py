"""Built-in points rules: points per message and per reaction received.

Registered as rule types ``points.message`` and ``points.reaction``; the engine
configures them from the ``[points]`` table. Daily caps are enforced by the
ledger (reasons ``message`` and ``reaction_received``) and tier multipliers by the
engine, so these rules only say what was earned and why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from communitykit._errors import ModelError
from communitykit._plugin_types import RuleType
from communitykit.hookspecs import hookimpl
from communitykit.model import AwardPoints, Decision, MessagePosted, ReactionAdded, RuleContext

__all__ = ["MessagePoints", "ReactionPoints", "communitykit_rule_types"]

MESSAGE_REASON = "message"
REACTION_REASON = "reaction_received"


def _points(settings: Mapping[str, Any], default: int) -> int:
    value = settings.get("points", default)
    if type(value) is not int or value < 0:
        raise ModelError(f"points must be a whole number >= 0, got {value!r}")
    return value


@attrs.frozen
class MessagePoints:
    """``points`` for every message a member posts (capped per day by the ledger)."""

    points: int
    name: str = "points.message"
    event_types: frozenset[str] = frozenset({"message_posted"})
    _source: str = attrs.field(init=False, repr=False, eq=False)
    _explanation: str = attrs.field(init=False, repr=False, eq=False)

    @_source.default
    def _default_source(self) -> str:
        return f"rule:{self.name}"

    @_explanation.default
    def _default_explanation(self) -> str:
        return f"{self.points} points for a message"

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> MessagePoints:
        return cls(points=_points(settings, 1))

    def evaluate(self, ctx: RuleContext) -> Decision | None:
        event = ctx.event
        if not isinstance(event, MessagePosted) or self.points == 0:
            return None
        return Decision(
            source=self._source,
            explanation=self._explanation,
            awards=(
                AwardPoints(
                    member=ctx.member_id,
                    points=self.points,
                    reason=MESSAGE_REASON,
                    key=f"{event.platform}:{event.event_id}:{self.name}",  # ctx.award_key
                ),
            ),
        )


@attrs.frozen
class ReactionPoints:
    """``points`` to the author of a message for each reaction from someone else.

    One member reacting to one message pays once, however often they toggle it.
    """

    points: int
    name: str = "points.reaction"
    event_types: frozenset[str] = frozenset({"reaction_added"})
    _source: str = attrs.field(init=False, repr=False, eq=False)
    _explanation: str = attrs.field(init=False, repr=False, eq=False)

    @_source.default
    def _default_source(self) -> str:
        return f"rule:{self.name}"

    @_explanation.default
    def _default_explanation(self) -> str:
        return f"{self.points} points to the author for a reaction received"

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> ReactionPoints:
        return cls(points=_points(settings, 1))

    def evaluate(self, ctx: RuleContext) -> Decision | None:
        event = ctx.event
        if not isinstance(event, ReactionAdded) or self.points == 0:
            return None
        if event.to_user is None or event.to_user == event.user:
            return None
        author = ctx.member_of(event.platform, event.to_user)
        if author is None or author.member_id == ctx.member_id:
            return None
        key = f"{event.platform}:reaction:{event.group}:{event.message_id}:{event.user}"
        return Decision(
            source=self._source,
            explanation=self._explanation,
            awards=(
                AwardPoints(
                    member=author.member_id, points=self.points, reason=REACTION_REASON, key=key
                ),
            ),
        )


@hookimpl
def communitykit_rule_types() -> Iterable[RuleType]:
    return [
        RuleType(
            name="points.message",
            factory=MessagePoints.from_settings,
            description="points for every message, capped per day",
        ),
        RuleType(
            name="points.reaction",
            factory=ReactionPoints.from_settings,
            description="points to a message's author for each reaction received",
        ),
    ]
