"""The ``warning_ladder`` rule type: how the community's warnings escalate.

It decides nothing by itself: rules that find an offence ask for a strike
(``Decision(strike=True)``) and the engine takes the step of this ladder that the
member's active warnings reach. Without one configured, the default ladder
applies (warn, mute 1h, mute 1d, kick, ban; warnings decay after 30 days).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import attrs

from communitykit._plugin_types import RuleType
from communitykit.hookspecs import hookimpl
from communitykit.model import Decision, RuleContext, WarningLadder

__all__ = ["LadderRule", "communitykit_rule_types"]


@attrs.frozen
class LadderRule:
    """Holds the configured :class:`~communitykit.WarningLadder`; asks about no event."""

    ladder: WarningLadder
    name: ClassVar[str] = "warning_ladder"
    event_types: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> LadderRule:
        return cls(WarningLadder.from_settings(settings))

    def evaluate(self, ctx: RuleContext) -> Decision | None:
        return None


@hookimpl
def communitykit_rule_types() -> Iterable[RuleType]:
    return [
        RuleType(
            name="warning_ladder",
            factory=LadderRule.from_settings,
            description="how warnings escalate (warn, mute, kick, ban) and when they decay",
        )
    ]
