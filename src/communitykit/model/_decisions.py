"""What rules and campaigns see, and what they decide.

A rule or a campaign is a pure function of a :class:`RuleContext` (the event,
the member, their state, what the platform can do, the time) returning a
:class:`Decision`: points to award, actions to take, and a sentence saying why.
The engine applies every decision of one event in one store transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar

import attrs

from communitykit._errors import ModelError
from communitykit.model._actions import Action
from communitykit.model._community import Community
from communitykit.model._events import Event
from communitykit.model._members import Member
from communitykit.model._tiers import Tier
from communitykit.model._time import aware_validator

__all__ = [
    "AwardPoints",
    "Capabilities",
    "Decision",
    "MemberState",
    "RuleContext",
    "TickContext",
    "stable_id",
]

A = TypeVar("A", bound=Action)


def stable_id(*parts: str) -> str:
    """A short id that is the same every time for the same parts (for action ids)."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=12).hexdigest()
    return f"a-{digest}"


def _action_types(value: Any) -> frozenset[str]:
    return frozenset(value)


def _awards(value: Iterable[AwardPoints]) -> tuple[AwardPoints, ...]:
    return tuple(value)


def _actions(value: Iterable[Action]) -> tuple[Action, ...]:
    return tuple(value)


def _tags(value: Iterable[str]) -> frozenset[str]:
    return frozenset(value)


@attrs.frozen(kw_only=True)
class Capabilities:
    """What a platform (through its adapter) allows.

    ``actions`` holds the action type names the adapter can perform
    (``"send_message"``, ``"delete_message"``, ...). ``direct_messages`` says
    whether a bot may message a member privately at all (a platform may still
    refuse one member who never started the bot). ``max_message_length`` is the
    longest text one message may carry (``None``: no limit the SDK knows of).
    """

    actions: frozenset[str] = attrs.field(converter=_action_types)
    direct_messages: bool = False
    max_message_length: int | None = None

    def can(self, action_type: str) -> bool:
        return action_type in self.actions


@attrs.frozen(kw_only=True)
class AwardPoints:
    """Points a decision wants credited.

    ``key`` is the idempotency key (derive it from the event id). ``multiply``
    applies the member's tier multiplier; ``pending`` records a credit that counts
    only once confirmed.
    """

    member: str
    points: int = attrs.field()
    reason: str
    key: str
    expires_at: datetime | None = attrs.field(default=None, validator=aware_validator)
    multiply: bool = True
    pending: bool = False

    @points.validator
    def _check_points(self, _attribute: Any, value: int) -> None:
        if type(value) is not int or value <= 0:
            raise ModelError(f"an award needs a positive whole number of points, got {value!r}")


@attrs.frozen(kw_only=True)
class Decision:
    """What one rule or campaign decided about one event (or one scheduled moment)."""

    source: str
    explanation: str
    awards: tuple[AwardPoints, ...] = attrs.field(default=(), converter=_awards)
    actions: tuple[Action, ...] = attrs.field(default=(), converter=_actions)
    add_tags: frozenset[str] = attrs.field(default=frozenset(), converter=_tags)
    remove_tags: frozenset[str] = attrs.field(default=frozenset(), converter=_tags)

    @property
    def empty(self) -> bool:
        return not (self.awards or self.actions or self.add_tags or self.remove_tags)


@attrs.frozen(kw_only=True)
class MemberState:
    """What the engine tracks about a member besides their record and ledger.

    Built by the engine (and read back from stores) on every event of the member,
    so it carries no validators: the engine only ever puts aware datetimes in it.
    """

    member_id: str
    tier: str
    tier_since: datetime
    below_since: datetime | None = None
    last_active_at: datetime | None = None
    messages: int = 0
    reactions_received: int = 0


@attrs.frozen(kw_only=True)
class RuleContext:
    """Everything a rule or campaign may look at when an event arrives.

    ``cap_remaining(reason)`` is what today's daily cap still allows the member
    (``None``: no cap); ``member_of(platform, user_id)`` finds another member;
    ``already_awarded(key)`` says whether an award with that idempotency key was
    made (a check-in today, a referral reward).
    """

    event: Event
    member: Member
    state: MemberState
    tier: Tier
    balance: int
    community: Community
    capabilities: Capabilities
    now: datetime
    cap_remaining: Callable[[str], int | None] = attrs.field(eq=False, repr=False)
    member_of: Callable[[str, str], Member | None] = attrs.field(eq=False, repr=False)
    already_awarded: Callable[[str], bool] = attrs.field(eq=False, repr=False)

    def action(self, cls: type[A], source: str, reason: str, index: int = 0, **fields: Any) -> A:
        """Build an action about this event with a stable id.

        ``platform``, ``group`` and ``user`` default to the event's; pass them in
        ``fields`` to act elsewhere. The id depends only on the event, the source,
        the action type and ``index``, so a replay yields the same ids.
        """
        event = self.event
        fields.setdefault("platform", event.platform)
        fields.setdefault("group", event.group)
        fields.setdefault("user", event.user)
        action_id = stable_id(event.platform, event.event_id, source, cls.TYPE, str(index))
        return cls(action_id=action_id, source=source, reason=reason, **fields)

    def award_key(self, source: str, suffix: str = "") -> str:
        """An idempotency key for an award about this event."""
        base = f"{self.event.platform}:{self.event.event_id}:{source}"
        return f"{base}:{suffix}" if suffix else base


@attrs.frozen(kw_only=True)
class TickContext:
    """What a campaign sees at a scheduled moment (no event)."""

    now: datetime
    community: Community
    capabilities: Mapping[str, Capabilities]
