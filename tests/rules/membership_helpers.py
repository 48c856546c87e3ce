"""Builders for testing the membership rule types on their own (no engine)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date, datetime
from typing import Any

from communitykit import (
    Capabilities,
    Community,
    Event,
    Group,
    Member,
    MemberState,
    MemberStatus,
    PlatformIdentity,
    Role,
    RuleContext,
    TickContext,
    Tier,
)
from communitykit.model import ACTION_TYPES

EVERYTHING = Capabilities(actions=frozenset(ACTION_TYPES), direct_messages=True)
TIER = Tier(name="member", threshold=0)


def community(
    timezone: str = "UTC",
    caps: Mapping[str, int | None] | None = None,
    platform: str = "tg",
) -> Community:
    """A community with groups ``main`` (-1), ``main2`` (-2) and ``main3`` (-3) on
    ``platform``; ``caps`` sets their size caps (the dict order is the overflow order)."""
    caps = caps if caps is not None else {"main": None, "main2": None, "main3": None}
    groups = [
        Group(
            key=key,
            platform=platform,
            group_id=f"-{index + 1}",
            title=f"Group {key}",
            size_cap=cap,
            overflow_order=index,
        )
        for index, (key, cap) in enumerate(caps.items())
    ]
    return Community(name="test", timezone=timezone, groups=groups)


def member(
    member_id: str = "m1",
    *,
    user: str = "42",
    platform: str = "tg",
    role: Role = Role.MEMBER,
    status: MemberStatus = MemberStatus.ACTIVE,
    paid_until: date | None = None,
    joined_at: datetime | None = None,
    name: str = "",
) -> Member:
    return Member(
        member_id=member_id,
        identities=[PlatformIdentity(platform, user)],
        display_name=name,
        role=role,
        status=status,
        paid_until=paid_until,
        joined_at=joined_at,
    )


def context(
    event: Event,
    *,
    who: Member | None = None,
    where: Community | None = None,
    rule_state: Mapping[str, Mapping[str, Any]] | None = None,
    sizes: Mapping[str, int] | None = None,
    invites: Mapping[str, Member] | None = None,
) -> RuleContext:
    """A rule context for ``event`` with every lookup answered from the arguments."""
    who = who or member(user=event.user, platform=event.platform)
    states = rule_state or {}
    group_sizes = sizes or {}
    owners = invites or {}
    return RuleContext(
        event=event,
        member=who,
        state=MemberState(member_id=who.member_id, tier="member", tier_since=event.at),
        tier=TIER,
        balance=0,
        community=where or community(),
        capabilities=EVERYTHING,
        now=event.at,
        cap_remaining=lambda _reason: None,
        member_of=lambda _platform, _user: None,
        already_awarded=lambda _key: False,
        rule_state=lambda name: states.get(name, {}),
        group_size=lambda key: group_sizes.get(key, 0),
        invite_owner=owners.get,
    )


class FakeSource:
    """A :class:`~communitykit.TickSource` over plain dictionaries."""

    def __init__(
        self,
        members: Mapping[str, tuple[Member, MemberState]] | None = None,
        rule_states: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
        groups: Mapping[str, frozenset[str]] | None = None,
        sizes: Mapping[str, int] | None = None,
        paid: set[str] | None = None,
    ) -> None:
        self.paid = paid if paid is not None else set()  # idempotency keys already applied
        self._members = dict(members or {})
        self._rule_states = {k: dict(v) for k, v in (rule_states or {}).items()}
        self._groups = dict(groups or {})
        self._sizes = dict(sizes or {})

    def members(self) -> Iterator[tuple[Member, MemberState]]:
        return iter(self._members.values())

    def member(self, member_id: str) -> Member | None:
        found = self._members.get(member_id)
        return None if found is None else found[0]

    def state(self, member_id: str) -> MemberState | None:
        found = self._members.get(member_id)
        return None if found is None else found[1]

    def rule_states(self, name: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
        return iter(self._rule_states.get(name, {}).items())

    def groups_of(self, member_id: str) -> frozenset[str]:
        return self._groups.get(member_id, frozenset())

    def group_size(self, key: str) -> int:
        return self._sizes.get(key, 0)

    def warnings(self, member_id: str) -> int:
        return 0

    def already_awarded(self, key: str) -> bool:
        return key in self.paid


def tick(
    now: datetime, where: Community | None = None, source: FakeSource | None = None
) -> TickContext:
    return TickContext(
        now=now,
        community=where or community(),
        capabilities={"tg": EVERYTHING},
        source=source or FakeSource(),
    )


def state_of(m: Member, *, last_active_at: datetime | None = None) -> MemberState:
    since = m.joined_at or datetime.fromisoformat("2026-01-01T00:00:00+00:00")
    return MemberState(
        member_id=m.member_id, tier="member", tier_since=since, last_active_at=last_active_at
    )
