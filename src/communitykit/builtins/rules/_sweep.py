"""The ``inactivity`` rule type: a daily sweep that reminds, then removes, silent members.

Once a day at ``at`` (community local time) the rule looks at every active
member once. Silent for ``remind_after``: a reminder (a direct message; where
that fails, a mention in one of their groups). Silent for ``remove_after``, and
reminded at least ``remove_after - remind_after`` ago: removed from every
configured group they are in. A member who speaks again after the reminder
starts over.

What the rule remembers about a member: ``{"reminded_at": ISO}`` once reminded,
plus ``"removed_at"`` once removed; ``{}`` again when they are active.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, time, timedelta
from typing import Any, ClassVar

import attrs

from communitykit._errors import ModelError
from communitykit.builtins.rules._common import Settings
from communitykit.builtins.rules._entry import mention, parse_time, template
from communitykit.model import (
    Action,
    Decision,
    Group,
    Kick,
    Member,
    MemberStatus,
    Role,
    RuleContext,
    SendDirectMessage,
    SendMessage,
    TickContext,
    stable_id,
)

__all__ = ["InactivityRule"]

_REMINDER = (
    "Hi {name}, we have not heard from you in {days} days. Say hello in the group: "
    "members who stay silent for {remove_days} days are removed."
)
_FIELDS = ("name", "days", "remove_days")
_CLOCK = re.compile(r"^\s*([01]?\d|2[0-3]):([0-5]\d)\s*$")
_STAFF = frozenset({Role.OWNER, Role.ADMIN})


def _clock(reader: Settings) -> time:
    value = reader.raw("at", "10:00")
    found = _CLOCK.match(value) if isinstance(value, str) else None
    if found is None:
        raise ModelError(
            f"inactivity rule: at must be a local time of day like '10:00' or '21:30', "
            f"got {value!r}"
        )
    return time(int(found.group(1)), int(found.group(2)))


def _days(value: timedelta) -> int:
    return value // timedelta(days=1)


@attrs.frozen(kw_only=True)
class InactivityRule:
    """Reminds, then removes, members silent for too long; see ``docs/rules-membership.md``."""

    name: str = "inactivity"
    at: time = time(10, 0)
    remind_after: timedelta = timedelta(days=14)
    remove_after: timedelta = timedelta(days=30)
    reminder: str = _REMINDER
    event_types: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> InactivityRule:
        reader = Settings(settings, "inactivity")
        rule = cls(
            name=reader.name(),
            at=_clock(reader),
            remind_after=reader.duration("remind_after", timedelta(days=14)),
            remove_after=reader.duration("remove_after", timedelta(days=30)),
            reminder=template(reader, "inactivity", "reminder", _REMINDER, _FIELDS),
        )
        reader.done()
        if rule.remove_after <= rule.remind_after:
            raise ModelError(
                f"inactivity rule: remove_after must be longer than remind_after "
                f"(members are reminded before they are removed), got remind_after "
                f"{reader.raw('remind_after', '14d')!r} and remove_after "
                f"{reader.raw('remove_after', '30d')!r}"
            )
        return rule

    @property
    def source(self) -> str:
        return f"rule:{self.name}"

    def evaluate(self, ctx: RuleContext) -> Decision | None:
        return None

    # ------------------------------------------------------------- schedule

    def next_run(self, after: datetime | None, tick: TickContext) -> datetime | None:
        """The first ``at`` o'clock, community local time, strictly after ``after``
        (or after ``tick.now`` when it never ran), as a UTC datetime (exact to
        compare and subtract whatever zone the other side is in). On a day when
        that local time does not exist (clocks spring forward over it) it is an
        hour later on the wall clock; when it exists twice, the first one."""
        base = tick.now if after is None else after
        tz = tick.community.tz
        day = base.astimezone(tz).date()
        for offset in range(3):
            wall = datetime.combine(day + timedelta(days=offset), self.at, tzinfo=tz)
            moment = wall.astimezone(UTC)
            if moment > base:
                return moment
        raise AssertionError("unreachable: a later day always comes")  # pragma: no cover

    def on_schedule(self, tick: TickContext) -> Iterable[Decision]:
        """One pass over the members: constant work for each, and a decision only
        for those the rule acts on."""
        sweep = _Sweep(self, tick)
        now = sweep.now
        remind_before = now - self.remind_after
        remove_before = now - self.remove_after
        grace = self.remove_after - self.remind_after
        remembered = dict(tick.rule_states(self.name))
        active = MemberStatus.ACTIVE
        decisions: list[Decision] = []
        for member, state in tick.members():
            if member.status is not active or member.role in _STAFF:
                continue
            last = state.last_active_at or member.joined_at
            if last is None:
                continue
            memory = remembered.get(member.member_id)
            if last > remind_before:
                if memory:
                    decisions.append(sweep.cleared(member, last))
                continue
            reminded = parse_time(memory.get("reminded_at")) if memory else None
            if reminded is not None and reminded < last:
                reminded = None  # active after the reminder: a new silence
            if reminded is None:
                decisions.append(sweep.remind(member, last))
                continue
            if memory and parse_time(memory.get("removed_at")) is not None:
                continue  # already removed for this silence
            if last <= remove_before and now - reminded >= grace:
                decision = sweep.remove(member, last, reminded)
                if decision is not None:
                    decisions.append(decision)
        return decisions


class _Sweep:
    """What one run of the rule works out once and uses for every member."""

    __slots__ = ("_by_key", "_groups", "_tick", "moment", "now", "remove_days", "rule", "source")

    def __init__(self, rule: InactivityRule, tick: TickContext) -> None:
        self.rule = rule
        self.source = rule.source
        self.now = tick.now
        self.moment = tick.now.isoformat()
        self.remove_days = _days(rule.remove_after)
        self._tick = tick
        self._by_key = {group.key: group for group in tick.community.groups}
        self._groups: dict[frozenset[str], tuple[Group, ...]] = {}

    def groups_of(self, member_id: str) -> tuple[Group, ...]:
        """The configured groups the member is in, by key (worked out once per set)."""
        keys = self._tick.groups_of(member_id)
        found = self._groups.get(keys)
        if found is None:
            by_key = self._by_key
            found = tuple(by_key[key] for key in sorted(keys) if key in by_key)
            self._groups[keys] = found
        return found

    def _id(self, member_id: str, *parts: str) -> str:
        return stable_id(self.rule.name, member_id, self.moment, *parts)

    def cleared(self, member: Member, last: datetime) -> Decision:
        return Decision(
            source=self.source,
            explanation=f"active again (last active {last.isoformat()}); the reminder is forgotten",
            state={},
            member=member.member_id,
        )

    def remind(self, member: Member, last: datetime) -> Decision:
        member_id = member.member_id
        days = _days(self.now - last)
        first = member.identities[0]
        text = self.rule.reminder.format(
            name=member.display_name.strip() or first.user_id,
            days=days,
            remove_days=self.remove_days,
        )
        where = self.groups_of(member_id)
        identity = (member.identity_on(where[0].platform) if where else None) or first
        reason = f"silent for {days} days"
        direct = SendDirectMessage(
            action_id=self._id(member_id, SendDirectMessage.TYPE),
            platform=identity.platform,
            user=identity.user_id,
            source=self.source,
            reason=reason,
            text=text,
        )
        instead: list[Action] = []
        for group in where:
            there = member.identity_on(group.platform)
            if there is not None:
                instead.append(
                    SendMessage(
                        action_id=self._id(member_id, SendMessage.TYPE, group.key),
                        platform=group.platform,
                        group=group.group_id,
                        user=there.user_id,
                        source=self.source,
                        reason=reason,
                        text=f"{mention(member.display_name, there.user_id)} {text}",
                    )
                )
        return Decision(
            source=self.source,
            explanation=(
                f"silent for {days} days (last active {last.isoformat()}); reminded, and removed "
                f"if still silent after {self.remove_days} days"
            ),
            actions=(direct,),
            fallbacks={direct.action_id: tuple(instead)} if instead else {},
            state={"reminded_at": self.moment},
            member=member_id,
        )

    def remove(self, member: Member, last: datetime, reminded: datetime) -> Decision | None:
        member_id = member.member_id
        reason = f"silent for {_days(self.now - last)} days"
        kicks: list[Action] = []
        for group in self.groups_of(member_id):
            identity = member.identity_on(group.platform)
            if identity is not None:
                kicks.append(
                    Kick(
                        action_id=self._id(member_id, Kick.TYPE, group.key),
                        platform=group.platform,
                        group=group.group_id,
                        user=identity.user_id,
                        source=self.source,
                        reason=reason,
                    )
                )
        if not kicks:
            return None
        names = ", ".join(group.key for group in self.groups_of(member_id))
        return Decision(
            source=self.source,
            explanation=(
                f"{reason} (last active {last.isoformat()}), reminded {reminded.isoformat()}; "
                f"removed from {names}"
            ),
            actions=tuple(kicks),
            state={"reminded_at": reminded.isoformat(), "removed_at": self.moment},
            member=member_id,
        )
