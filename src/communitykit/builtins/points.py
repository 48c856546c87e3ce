"""Built-in points rules: points per message and per reaction received.

Registered as rule types ``points.message`` and ``points.reaction``; the engine
configures them from the ``[points]`` table. Daily caps are enforced by the
ledger (reasons ``message`` and ``reaction_received``) and tier multipliers by the
engine, so these rules only say what was earned and why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Self

import attrs

from communitykit._errors import ModelError
from communitykit._plugin_types import RuleType
from communitykit.hookspecs import hookimpl
from communitykit.model import (
    AwardPoints,
    Decision,
    Event,
    MessagePosted,
    ReactionAdded,
    RuleContext,
)

__all__ = ["NATIVE_RULES", "MessagePoints", "ReactionPoints", "communitykit_rule_types"]

MESSAGE_REASON = "message"
REACTION_REASON = "reaction_received"


def _points(settings: Mapping[str, Any], default: int) -> int:
    value = settings.get("points", default)
    if type(value) is not int or value < 0:
        raise ModelError(f"points must be a whole number >= 0, got {value!r}")
    return value


@attrs.frozen
class _PointsRule:
    """What both points rules share: a fixed number of points, and a decision that
    carries them (its source and explanation made once, not per event)."""

    points: int
    _source: str = attrs.field(init=False, repr=False, eq=False)
    _explanation: str = attrs.field(init=False, repr=False, eq=False)

    #: the rule's name, and what the points are for (in the explanation)
    name: ClassVar[str]
    FOR: ClassVar[str]

    def __attrs_post_init__(self) -> None:  # every field is set by now, a subclass's too
        object.__setattr__(self, "_source", f"rule:{self.name}")
        object.__setattr__(self, "_explanation", f"{self.points} points {self.FOR}")

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Self:
        return cls(points=_points(settings, 1))

    def decision(self, member: str, reason: str, key: str) -> Decision:
        """The decision :meth:`evaluate` returns for an award of :meth:`award_of`."""
        award = AwardPoints(member=member, points=self.points, reason=reason, key=key)
        return Decision(source=self._source, explanation=self._explanation, awards=(award,))

    def evaluate(self, ctx: RuleContext) -> Decision | None:
        found = self.award_of(ctx.event, ctx.member_id, _member_id_of(ctx))
        return None if found is None else self.decision(*found)

    def award_of(
        self, event: Event, member_id: str, member_id_of: Callable[[str, str], str | None]
    ) -> tuple[str, str, str] | None:
        """What :meth:`evaluate` decides, as ``(member, reason, key)`` of the one award
        (``self.points`` points, multiplied by the tier), or ``None``. The engine
        calls it directly for these rules, building no decision unless one is asked
        for. ``member_id_of(platform, user)`` finds another member's id."""
        raise NotImplementedError


def _member_id_of(ctx: RuleContext) -> Callable[[str, str], str | None]:
    def member_id_of(platform: str, user: str) -> str | None:
        member = ctx.member_of(platform, user)
        return None if member is None else member.member_id

    return member_id_of


@attrs.frozen
class MessagePoints(_PointsRule):
    """``points`` for every message a member posts (capped per day by the ledger)."""

    name: ClassVar[str] = "points.message"
    FOR: ClassVar[str] = "for a message"
    event_types: ClassVar[frozenset[str]] = frozenset({"message_posted"})

    def award_of(
        self, event: Event, member_id: str, member_id_of: Callable[[str, str], str | None]
    ) -> tuple[str, str, str] | None:
        if not isinstance(event, MessagePosted) or self.points == 0:
            return None
        # ctx.award_key(self.name), without the call
        return member_id, MESSAGE_REASON, f"{event.platform}:{event.event_id}:{self.name}"


@attrs.frozen
class ReactionPoints(_PointsRule):
    """``points`` to the author of a message for each reaction from someone else.

    One member reacting to one message pays once, however often they toggle it.
    """

    name: ClassVar[str] = "points.reaction"
    FOR: ClassVar[str] = "to the author for a reaction received"
    event_types: ClassVar[frozenset[str]] = frozenset({"reaction_added"})

    def award_of(
        self, event: Event, member_id: str, member_id_of: Callable[[str, str], str | None]
    ) -> tuple[str, str, str] | None:
        if not isinstance(event, ReactionAdded) or self.points == 0:
            return None
        if event.to_user is None or event.to_user == event.user:
            return None
        author = member_id_of(event.platform, event.to_user)
        if author is None or author == member_id:
            return None
        key = f"{event.platform}:reaction:{event.group}:{event.message_id}:{event.user}"
        return author, REACTION_REASON, key


#: The rule classes whose :meth:`~_PointsRule.award_of` the engine may call instead
#: of ``evaluate`` (exactly these classes: a subclass may change ``evaluate``).
NATIVE_RULES: tuple[type[_PointsRule], ...] = (MessagePoints, ReactionPoints)


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
