"""Builders for testing the built-in campaign types on their own (no engine)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from communitykit import Event, Member, MemberState, RuleContext, Tier
from tests.rules.membership_helpers import EVERYTHING, community, member

TIER = Tier(name="member", threshold=0)


def context(
    event: Event,
    *,
    who: Member | None = None,
    balance: int = 0,
    rule_state: Mapping[str, Mapping[str, Any]] | None = None,
    paid: Callable[[str], bool] | None = None,
    timezone: str = "UTC",
) -> RuleContext:
    """A campaign context for ``event``; ``paid`` answers ``already_awarded``."""
    who = who or member(user=event.user, platform=event.platform)
    states = rule_state or {}
    return RuleContext(
        event=event,
        member=who,
        state=MemberState(member_id=who.member_id, tier="member", tier_since=event.at),
        tier=TIER,
        balance=balance,
        community=community(timezone=timezone),
        capabilities=EVERYTHING,
        now=event.at,
        cap_remaining=lambda _reason: None,
        member_of=lambda _platform, _user: None,
        already_awarded=paid or (lambda _key: False),
        rule_state=lambda name: states.get(name, {}),
    )
