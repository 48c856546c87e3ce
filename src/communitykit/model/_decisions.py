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
    return value if type(value) is tuple else tuple(value)


def _actions(value: Iterable[Action]) -> tuple[Action, ...]:
    return value if type(value) is tuple else tuple(value)


def _tags(value: Iterable[str]) -> frozenset[str]:
    return value if type(value) is frozenset else frozenset(value)


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


class RuleContext:
    """Everything a rule or campaign may look at when an event arrives.

    ``event``, ``member`` (and ``member_id``), ``state`` (the member's
    :class:`MemberState` after this event), ``tier``, ``balance``, ``community``,
    ``capabilities`` (of the event's platform) and ``now``.
    ``cap_remaining(reason)`` is what today's daily cap still allows the member
    (``None``: no cap); ``member_of(platform, user_id)`` finds another member;
    ``already_awarded(key)`` says whether an award with that idempotency key was
    made (a check-in today, a referral reward).

    Build one with every value to test a rule on its own; the engine builds a
    context that looks each value up only when a rule reads it.
    """

    __slots__ = (
        "_already_awarded",
        "_balance",
        "_cap_remaining",
        "_capabilities",
        "_community",
        "_member",
        "_member_of",
        "_now",
        "_state",
        "_tier",
        "event",
    )

    event: Event
    _member: Member | None

    def __init__(
        self,
        *,
        event: Event,
        member: Member,
        state: MemberState,
        tier: Tier,
        balance: int,
        community: Community,
        capabilities: Capabilities,
        now: datetime,
        cap_remaining: Callable[[str], int | None],
        member_of: Callable[[str, str], Member | None],
        already_awarded: Callable[[str], bool],
    ) -> None:
        self.event = event
        self._member = member
        self._state = state
        self._tier = tier
        self._balance = balance
        self._community = community
        self._capabilities = capabilities
        self._now = now
        self._cap_remaining = cap_remaining
        self._member_of = member_of
        self._already_awarded = already_awarded

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.event.TYPE} {self.event.event_id!r}>"

    @property
    def member(self) -> Member:
        member = self._member
        assert member is not None  # always set by __init__
        return member

    @property
    def member_id(self) -> str:
        return self.member.member_id

    @property
    def state(self) -> MemberState:
        return self._state

    @property
    def tier(self) -> Tier:
        return self._tier

    @property
    def balance(self) -> int:
        return self._balance

    @property
    def community(self) -> Community:
        return self._community

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    @property
    def now(self) -> datetime:
        return self._now

    def cap_remaining(self, reason: str) -> int | None:
        return self._cap_remaining(reason)

    def member_of(self, platform: str, user_id: str) -> Member | None:
        return self._member_of(platform, user_id)

    def already_awarded(self, key: str) -> bool:
        return self._already_awarded(key)

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
        event = self.event
        if suffix:
            return f"{event.platform}:{event.event_id}:{source}:{suffix}"
        return f"{event.platform}:{event.event_id}:{source}"


@attrs.frozen(kw_only=True)
class TickContext:
    """What a campaign sees at a scheduled moment (no event)."""

    now: datetime
    community: Community
    capabilities: Mapping[str, Capabilities]
