"""What rules and campaigns see, and what they decide.

A rule or a campaign is a pure function of a :class:`RuleContext` (the event,
the member, their state, what the platform can do, the time) returning a
:class:`Decision`: points to award, actions to take, and a sentence saying why.
The engine applies every decision of one event in one store transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any, Protocol, TypeVar

import attrs

from communitykit._errors import ModelError
from communitykit.model._actions import Action
from communitykit.model._community import Community, Group
from communitykit.model._events import Event
from communitykit.model._ledger import MAX_POINTS
from communitykit.model._members import Member
from communitykit.model._moderation import Recent
from communitykit.model._tiers import Tier
from communitykit.model._time import aware_validator

__all__ = [
    "AwardPoints",
    "CancelPoints",
    "Capabilities",
    "ConfirmPoints",
    "Decision",
    "MemberState",
    "RuleContext",
    "SpendPoints",
    "TickContext",
    "TickSource",
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
        if value > MAX_POINTS:
            raise ModelError(f"an award may be at most {MAX_POINTS:,} points, got {value:,}")


@attrs.frozen(kw_only=True)
class SpendPoints:
    """Points a decision takes from a member (a make-up card, an entry fee).

    ``key`` is the idempotency key. When the member cannot pay, nothing of the
    decision is applied (its ``refused`` explanation is logged instead).
    """

    member: str
    points: int = attrs.field()
    reason: str
    key: str

    @points.validator
    def _check_points(self, _attribute: Any, value: int) -> None:
        if type(value) is not int or value <= 0:
            raise ModelError(f"a spend needs a positive whole number of points, got {value!r}")
        if value > MAX_POINTS:
            raise ModelError(f"a spend may be at most {MAX_POINTS:,} points, got {value:,}")


def _spends(value: Iterable[SpendPoints]) -> tuple[SpendPoints, ...]:
    return value if type(value) is tuple else tuple(value)


@attrs.frozen(kw_only=True)
class ConfirmPoints:
    """Confirm a pending award made earlier (``AwardPoints(pending=True)``).

    ``award`` is the idempotency key of the pending award, ``key`` this
    confirmation's own. The credit keeps the pending award's points and reason
    (daily caps apply on the day it is confirmed); ``reason`` says why it is
    confirmed (the log). ``member`` must be the member the award was for.
    Confirming an award already confirmed or cancelled changes nothing.

    ``instead`` is made when no award was ever made under ``award`` (state kept
    from before a campaign made pending awards, say): the points are then
    credited plainly. Give it the key ``award``, so it is paid once.
    """

    member: str
    award: str
    reason: str
    key: str
    instead: AwardPoints | None = None


@attrs.frozen(kw_only=True)
class CancelPoints:
    """Cancel a pending award made earlier: it will never count.

    ``award`` is the idempotency key of the pending award, ``key`` this
    cancellation's own; ``reason`` is recorded on the cancellation. ``member``
    must be the member the award was for. Cancelling an award already confirmed
    or cancelled changes nothing.
    """

    member: str
    award: str
    reason: str
    key: str


def _confirms(value: Iterable[ConfirmPoints]) -> tuple[ConfirmPoints, ...]:
    return value if type(value) is tuple else tuple(value)


def _cancels(value: Iterable[CancelPoints]) -> tuple[CancelPoints, ...]:
    return value if type(value) is tuple else tuple(value)


def _fallbacks(value: Mapping[str, Iterable[Action]]) -> Mapping[str, tuple[Action, ...]]:
    if not value:
        return _NO_FALLBACKS
    return MappingProxyType({key: tuple(actions) for key, actions in value.items()})


def _state(value: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    return None if value is None else MappingProxyType(dict(value))


_NO_FALLBACKS: Mapping[str, tuple[Action, ...]] = MappingProxyType({})


@attrs.frozen(kw_only=True)
class Decision:
    """What one rule or campaign decided about one event (or one scheduled moment).

    Besides points, actions and tags:

    * ``strike`` counts a warning on the member's warning ladder: the engine adds
      the ladder step it reaches (warn, mute, kick, ban) to the actions.
    * ``fallbacks`` maps an action's id to what to do instead, in order, when the
      platform cannot perform it (the adapter lacks the action, the bot lacks the
      right, the member never started the bot). The audit trail records each
      fallback taken.
    * ``state`` replaces what the rule remembers about the member (read back with
      ``ctx.rule_state(name)``; ``{}`` forgets it; ``None`` leaves it as it is).
    * ``member`` names the member the decision is about when there is no event
      (scheduled work); with an event it defaults to the event's member.
    * ``spends`` takes points (a make-up card): all of them are paid first, and
      when one cannot be, nothing of the decision is applied.
    * ``confirms`` and ``cancels`` settle pending awards made earlier (by their
      award key), after this decision's own awards: a referral reward confirmed
      once the newcomer stayed, cancelled when they left.
    """

    source: str
    explanation: str
    awards: tuple[AwardPoints, ...] = attrs.field(default=(), converter=_awards)
    actions: tuple[Action, ...] = attrs.field(default=(), converter=_actions)
    add_tags: frozenset[str] = attrs.field(default=frozenset(), converter=_tags)
    remove_tags: frozenset[str] = attrs.field(default=frozenset(), converter=_tags)
    strike: bool = False
    fallbacks: Mapping[str, tuple[Action, ...]] = attrs.field(
        default=_NO_FALLBACKS, converter=_fallbacks
    )
    state: Mapping[str, Any] | None = attrs.field(default=None, converter=_state)
    member: str | None = None
    spends: tuple[SpendPoints, ...] = attrs.field(default=(), converter=_spends)
    confirms: tuple[ConfirmPoints, ...] = attrs.field(default=(), converter=_confirms)
    cancels: tuple[CancelPoints, ...] = attrs.field(default=(), converter=_cancels)

    @property
    def empty(self) -> bool:
        return not (
            self.awards
            or self.actions
            or self.add_tags
            or self.remove_tags
            or self.strike
            or self.state is not None
            or self.spends
            or self.confirms
            or self.cancels
        )


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

    For moderation: ``recent`` (the member's recent messages before this one,
    oldest first, as far back as the rules' longest ``window``), ``warnings`` (the
    member's active warnings), ``rule_state(name)`` (what rule ``name``
    remembers about the member), ``group`` (the configured group of the event, if
    any), ``group_size(key)`` (members in a configured group now) and
    ``invite_owner(invite)`` (the member an invite link or code belongs to).

    Build one with every value to test a rule on its own (the moderation values
    default to empty); the engine builds a context that looks each value up only
    when a rule reads it.
    """

    __slots__ = (
        "_already_awarded",
        "_balance",
        "_cap_remaining",
        "_capabilities",
        "_community",
        "_group_size",
        "_invite_owner",
        "_member",
        "_member_of",
        "_now",
        "_recent",
        "_rule_state",
        "_rule_state_of",
        "_state",
        "_tier",
        "_warnings",
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
        recent: Sequence[Recent] = (),
        warnings: int = 0,
        rule_state: Callable[[str], Mapping[str, Any]] | None = None,
        group_size: Callable[[str], int] | None = None,
        invite_owner: Callable[[str], Member | None] | None = None,
        rule_state_of: Callable[[str, str], Mapping[str, Any]] | None = None,
    ) -> None:
        self._rule_state_of = rule_state_of
        self._recent = recent
        self._warnings = warnings
        self._rule_state = rule_state or _no_state
        self._group_size = group_size or _no_size
        self._invite_owner = invite_owner or _no_owner
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

    @property
    def recent(self) -> Sequence[Recent]:
        return self._recent

    @property
    def warnings(self) -> int:
        return self._warnings

    def rule_state(self, name: str, member_id: str | None = None) -> Mapping[str, Any]:
        """What rule or campaign ``name`` remembers about this event's member, or
        about ``member_id`` (a red packet's opener, an inviter)."""
        if member_id is None or member_id == self.member_id:
            return self._rule_state(name)
        found = self._rule_state_of
        return _EMPTY if found is None else found(name, member_id)

    @property
    def group(self) -> Group | None:
        event = self.event
        if event.group is None:
            return None
        return self.community.group(event.platform, event.group)

    def group_size(self, key: str) -> int:
        return self._group_size(key)

    def invite_owner(self, invite: str) -> Member | None:
        return self._invite_owner(invite)

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


_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _no_state(_name: str) -> Mapping[str, Any]:
    return _EMPTY


def _no_size(_key: str) -> int:
    return 0


def _no_owner(_invite: str) -> Member | None:
    return None


class TickContext:
    """What a campaign or a rule sees at a scheduled moment (no event).

    ``now`` (the clock: later than ``moment`` when the run is late, after a
    downtime), ``moment`` (the scheduled moment being run), ``community`` and
    ``capabilities`` (by platform); and to look over
    the community: ``members()`` (every member with their state), ``state(id)``,
    ``rule_states(name)`` (every member rule ``name`` remembers something about,
    with it), ``groups_of(id)`` (keys of the configured groups the member is in),
    ``group_size(key)``, ``warnings(id)`` and ``already_awarded(key)`` (whether a
    ledger operation with that idempotency key was applied: a red packet's shares).
    Built with only the first three, the others are empty.
    """

    __slots__ = ("_source", "capabilities", "community", "moment", "now")

    def __init__(
        self,
        *,
        now: datetime,
        community: Community,
        capabilities: Mapping[str, Capabilities],
        source: TickSource | None = None,
        moment: datetime | None = None,
    ) -> None:
        self.now = now
        self.moment = now if moment is None else moment
        self.community = community
        self.capabilities = capabilities
        self._source = source

    def members(self) -> Iterator[tuple[Member, MemberState]]:
        source = self._source
        return iter(()) if source is None else source.members()

    def member(self, member_id: str) -> Member | None:
        source = self._source
        return None if source is None else source.member(member_id)

    def state(self, member_id: str) -> MemberState | None:
        source = self._source
        return None if source is None else source.state(member_id)

    def rule_states(self, name: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
        source = self._source
        return iter(()) if source is None else source.rule_states(name)

    def groups_of(self, member_id: str) -> frozenset[str]:
        source = self._source
        return frozenset() if source is None else source.groups_of(member_id)

    def group_size(self, key: str) -> int:
        source = self._source
        return 0 if source is None else source.group_size(key)

    def warnings(self, member_id: str) -> int:
        source = self._source
        return 0 if source is None else source.warnings(member_id)

    def already_awarded(self, key: str) -> bool:
        """Whether a ledger operation with idempotency ``key`` was applied (``False``
        when the source does not know: it has no ``already_awarded``)."""
        found = getattr(self._source, "already_awarded", None)
        return bool(found(key)) if callable(found) else False

    def segment(self, name: str) -> frozenset[str] | None:
        """The ids of the members in segment ``name`` (a segment of the community's,
        a built-in one or an expression of them) at this moment; ``None`` when the
        source knows no segments (it has no ``segment``)."""
        found = getattr(self._source, "segment", None)
        if not callable(found):
            return None
        members = found(name, self.moment or self.now)
        return None if members is None else frozenset(members)


class TickSource(Protocol):
    """Where a :class:`TickContext` looks things up (the engine)."""

    def members(self) -> Iterator[tuple[Member, MemberState]]: ...
    def member(self, member_id: str) -> Member | None: ...
    def state(self, member_id: str) -> MemberState | None: ...
    def rule_states(self, name: str) -> Iterator[tuple[str, Mapping[str, Any]]]: ...
    def groups_of(self, member_id: str) -> frozenset[str]: ...
    def group_size(self, key: str) -> int: ...
    def warnings(self, member_id: str) -> int: ...
