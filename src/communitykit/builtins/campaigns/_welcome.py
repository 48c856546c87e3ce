"""The ``welcome`` campaign type: a newcomer's welcome, birthdays and milestones.

On ``member_joined`` in one of its groups the campaign posts ONE message there:
the greeting, then the group rules, an invitation to introduce oneself and the
nickname format, one per line. A member is greeted once per group (each group
meets them); where the platform allows direct messages the admission notice is
sent privately once per community (not again for a second group joined within
``rejoin_quiet_days``). A member who joins the same group again within
``rejoin_quiet_days`` of the last greeting there is not greeted again.

Members share their birthday with ``/birthday MM-DD``. Every day at
``birthday_at`` (community local time) the campaign congratulates those whose
birthday it is, in each of its groups they are in, once a year; and members who
reached one of ``member_days`` days since joining (within the week after); and
members who reached a tier named in ``tier_reached`` (within the week after,
once per member and tier, even if they drop below it and reach it again).

What it remembers about a member: ``{"greeted": {group key: ISO time},
"birthday": "MM-DD", "birthday_year": 2026, "milestones": [100, ...],
"tiers": ["gold", ...]}``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta, tzinfo
from typing import Any, ClassVar

import attrs

from communitykit.builtins.campaigns._cron import CronSchedule
from communitykit.builtins.campaigns._settings import CampaignSettings
from communitykit.builtins.rules._entry import parse_time
from communitykit.model import (
    Action,
    CommandInvoked,
    Decision,
    MemberJoined,
    MemberStatus,
    RuleContext,
    SendDirectMessage,
    SendMessage,
    TickContext,
    stable_id,
)
from communitykit.model._community import Group

__all__ = ["WelcomeCampaign", "parse_birthday"]

_GREETING = "Welcome to {group}, {name}! We are {members} members now."
_NICKNAME = "Please set your group nickname as: {hint}"
_BIRTHDAY = "Happy birthday, {name}! 🎂"
_MILESTONE = "{name} has been with us for {days} days today. Thank you!"
_SAVED = "Thanks, {name}: your birthday {birthday} is noted."
_INVALID = "{name}, please send your birthday as MM-DD, like /{command} 08-15."
_JOIN_FIELDS = ("name", "group", "members")
_TIER_FIELDS = ("name", "tier")
_MMDD = re.compile(r"^(\d{1,2})-(\d{1,2})$")
_MILESTONE_WINDOW = 7  # days after a milestone it is still celebrated (missed runs)


def parse_birthday(text: str) -> str | None:
    """``"MM-DD"`` (normalized to two digits each) when ``text`` is a real day, else None."""
    found = _MMDD.match(unicodedata.normalize("NFKC", text).strip().replace("/", "-"))
    if found is None:
        return None
    month, day = int(found.group(1)), int(found.group(2))
    try:
        date(2024, month, day)  # a leap year: 02-29 is a birthday
    except ValueError:
        return None
    return f"{month:02d}-{day:02d}"


def _birthday_today(birthday: str, today: date) -> bool:
    if birthday == today.strftime("%m-%d"):
        return True
    # a 29 February birthday is celebrated on the 28th in other years
    leap = today.year % 4 == 0 and (today.year % 100 != 0 or today.year % 400 == 0)
    return birthday == "02-29" and not leap and (today.month, today.day) == (2, 28)


def _int_list(value: object) -> list[int]:
    if not isinstance(value, list | tuple):
        return []
    return [v for v in value if type(v) is int]


@attrs.frozen(kw_only=True)
class WelcomeCampaign:
    """Welcomes newcomers, congratulates birthdays and milestones; see
    ``docs/campaigns-rituals.md``."""

    name: str = "welcome"
    groups: tuple[str, ...] = ()
    greeting: str = _GREETING
    rules: str = ""
    introduce: str = ""
    nickname_hint: str = ""
    nickname: str = _NICKNAME
    admission_dm: str = ""
    rejoin_quiet_days: int = 30
    birthday: str = _BIRTHDAY
    birthday_at: str = "09:00"
    birthday_command: str = "birthday"
    birthday_saved: str = _SAVED
    birthday_invalid: str = _INVALID
    member_days: tuple[int, ...] = (100, 365)
    milestone: str = _MILESTONE
    tier_reached: tuple[tuple[str, str], ...] = ()  # (tier name, template), by name
    timezone: str = "UTC"
    tz: tzinfo = attrs.field(eq=False, repr=False)
    daily: CronSchedule = attrs.field(eq=False, repr=False)
    event_types: ClassVar[frozenset[str]] = frozenset({"member_joined", "command_invoked"})

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> WelcomeCampaign:
        reader = CampaignSettings(settings, "welcome")
        timezone, tz = reader.timezone()
        at = reader.text("birthday_at", "09:00")
        found = re.match(r"^([01]?\d|2[0-3]):([0-5]\d)$", at.strip())
        if found is None:
            raise reader.fail("birthday_at", "a local time HH:MM like '09:00'", at)
        daily = CronSchedule.parse(f"{int(found.group(2))} {int(found.group(1))} * * *")
        days = reader.raw("member_days", [100, 365])
        if not isinstance(days, list | tuple) or not all(type(d) is int and d > 0 for d in days):
            raise reader.fail("member_days", "a list of positive whole numbers of days", days)
        tiers = reader.table("tier_reached")
        texts = CampaignSettings({f"tier_reached.{k}": v for k, v in tiers.items()}, "welcome")
        tier_reached = tuple(
            (str(tier), texts.template(f"tier_reached.{tier}", "", _TIER_FIELDS))
            for tier in sorted(tiers)
        )
        command = reader.text("birthday_command", "birthday").strip()
        if not command or command.startswith("/") or any(c.isspace() for c in command):
            raise reader.fail("birthday_command", "a command name without '/' or spaces", command)
        campaign = cls(
            name=reader.name(),
            groups=reader.group_keys(),
            greeting=reader.template("greeting", _GREETING, _JOIN_FIELDS),
            rules=reader.template("rules", "", _JOIN_FIELDS),
            introduce=reader.template("introduce", "", _JOIN_FIELDS),
            nickname_hint=reader.text("nickname_hint", ""),
            nickname=reader.template("nickname", _NICKNAME, ("hint", *_JOIN_FIELDS)),
            admission_dm=reader.template("admission_dm", "", _JOIN_FIELDS),
            rejoin_quiet_days=reader.integer("rejoin_quiet_days", 30),
            birthday=reader.template("birthday", _BIRTHDAY, ("name",)),
            birthday_at=at.strip(),
            birthday_command=command,
            birthday_saved=reader.template(
                "birthday_saved", _SAVED, ("name", "birthday", "command")
            ),
            birthday_invalid=reader.template("birthday_invalid", _INVALID, ("name", "command")),
            member_days=tuple(sorted(set(days))),
            milestone=reader.template("milestone", _MILESTONE, ("name", "days")),
            tier_reached=tier_reached,
            timezone=timezone,
            tz=tz,
            daily=daily,
        )
        reader.done()
        return campaign

    @property
    def source(self) -> str:
        return f"campaign:{self.name}"

    def _covers(self, group: Group | None) -> bool:
        return group is not None and (not self.groups or group.key in self.groups)

    # --------------------------------------------------------------- events

    def on_event(self, ctx: RuleContext) -> Decision | None:
        event = ctx.event
        if isinstance(event, MemberJoined):
            return self._joined(ctx, event)
        if isinstance(event, CommandInvoked):
            return self._command(ctx, event)
        return None

    def _joined(self, ctx: RuleContext, event: MemberJoined) -> Decision | None:
        group = ctx.group
        if group is None or not self._covers(group):
            return None
        state = dict(ctx.rule_state(self.name))
        greeted = state.get("greeted")
        greeted = dict(greeted) if isinstance(greeted, Mapping) else {}
        last = parse_time(greeted.get(group.key))
        if last is not None and event.at - last < timedelta(days=self.rejoin_quiet_days):
            return Decision(
                source=self.source,
                explanation=(
                    f"joined {group.key} again within {self.rejoin_quiet_days} days of the "
                    f"last greeting ({last.isoformat()}); not greeted again"
                ),
            )
        name = (event.display_name or ctx.member.display_name or "").strip() or event.user
        values = {
            "name": name,
            "group": group.title or group.key,
            "members": str(ctx.group_size(group.key)),
        }
        lines = [self.greeting.format(**values)]
        lines += [t.format(**values) for t in (self.rules, self.introduce) if t]
        if self.nickname_hint:
            lines.append(self.nickname.format(hint=self.nickname_hint, **values))
        actions: list[Action] = [
            ctx.action(SendMessage, self.source, "welcome a newcomer", 0, text="\n".join(lines))
        ]
        caps = ctx.capabilities
        quiet = timedelta(days=self.rejoin_quiet_days)
        # the admission notice is about the community: once, not once per group joined
        welcomed = any(
            (at := parse_time(when)) is not None and event.at - at < quiet
            for key, when in greeted.items()
            if key != group.key
        )
        if (
            self.admission_dm
            and not welcomed
            and caps.direct_messages
            and caps.can("send_direct_message")
        ):
            actions.append(
                ctx.action(
                    SendDirectMessage,
                    self.source,
                    "admission notice for a newcomer",
                    1,
                    group=None,
                    text=self.admission_dm.format(**values),
                )
            )
        greeted[group.key] = event.at.isoformat()
        state["greeted"] = greeted
        return Decision(
            source=self.source,
            explanation=f"joined {group.key}; welcomed in the group"
            + (" and by direct message" if len(actions) > 1 else ""),
            actions=tuple(actions),
            state=state,
        )

    def _command(self, ctx: RuleContext, event: CommandInvoked) -> Decision | None:
        if event.command.casefold() != self.birthday_command.casefold():
            return None
        name = ctx.member.display_name.strip() or event.user
        birthday = parse_birthday(" ".join(event.args)) if event.args else None
        state: dict[str, Any] | None = None
        if birthday is None:
            text = self.birthday_invalid.format(name=name, command=self.birthday_command)
            explanation = f"sent /{event.command} without a valid MM-DD date; asked again"
        else:
            text = self.birthday_saved.format(
                name=name, birthday=birthday, command=self.birthday_command
            )
            state = dict(ctx.rule_state(self.name))
            if state.get("birthday") != birthday:
                state.pop("birthday_year", None)  # a corrected date may be celebrated this year
            state["birthday"] = birthday
            explanation = f"shared their birthday ({birthday})"
        reply: Action
        if event.group is None:
            reply = ctx.action(SendDirectMessage, self.source, "birthday command", text=text)
        else:
            reply = ctx.action(SendMessage, self.source, "birthday command", text=text)
        return Decision(source=self.source, explanation=explanation, actions=(reply,), state=state)

    # ------------------------------------------------------------- schedule

    def next_run(self, after: datetime | None) -> datetime | None:
        """The next ``birthday_at`` in the campaign's time zone, in UTC."""
        if after is None:
            return None
        return self.daily.next_after(after, self.tz)

    def on_schedule(self, tick: TickContext) -> Iterable[Decision]:
        today = tick.now.astimezone(self.tz).date()
        remembered = dict(tick.rule_states(self.name))
        decisions: list[Decision] = []
        for member, facts in sorted(tick.members(), key=lambda pair: pair[0].member_id):
            if member.status is not MemberStatus.ACTIVE:
                continue
            member_id = member.member_id
            groups = self._groups_of(tick, member_id)
            if not groups:
                continue
            state = dict(remembered.get(member_id, {}))
            name = member.display_name.strip() or member_id
            actions: list[Action] = []
            said: list[str] = []
            birthday = state.get("birthday")
            if (
                isinstance(birthday, str)
                and _birthday_today(birthday, today)
                and state.get("birthday_year") != today.year
            ):
                text = self.birthday.format(name=name)
                actions += self._post(groups, member_id, "birthday", tick, text)
                state["birthday_year"] = today.year
                said.append(f"birthday greeting ({birthday})")
            if self.member_days and member.joined_at is not None:
                joined = member.joined_at.astimezone(self.tz).date()
                days = (today - joined).days
                done = _int_list(state.get("milestones"))
                reached = [d for d in self.member_days if d <= days and d not in done]
                due = [d for d in reached if days - d < _MILESTONE_WINDOW]
                if due:
                    text = self.milestone.format(name=name, days=due[-1])
                    actions += self._post(groups, member_id, f"milestone-{due[-1]}", tick, text)
                    said.append(f"{due[-1]} days since joining")
                if reached:
                    state["milestones"] = sorted({*done, *reached})
            tier_text = dict(self.tier_reached).get(facts.tier)
            if tier_text is not None:
                known = state.get("tiers")
                tiers = [t for t in known if isinstance(t, str)] if isinstance(known, list) else []
                if facts.tier not in tiers:
                    # reached within the week: congratulated; earlier: remembered only
                    if tick.now - facts.tier_since < timedelta(days=_MILESTONE_WINDOW):
                        text = tier_text.format(name=name, tier=facts.tier)
                        kind = f"tier-{facts.tier}"
                        actions += self._post(groups, member_id, kind, tick, text)
                        said.append(f"reached the tier {facts.tier}")
                    state["tiers"] = sorted({*tiers, facts.tier})
            if actions or state != remembered.get(member_id, {}):
                decisions.append(
                    Decision(
                        source=self.source,
                        explanation="; ".join(said) or "milestones passed while not running",
                        actions=tuple(actions),
                        state=state,
                        member=member_id,
                    )
                )
        return decisions

    # --------------------------------------------------------------- report

    def funnel(
        self, states: Iterable[tuple[str, Mapping[str, Any]]], days: list[date]
    ) -> dict[str, int]:
        """The report's funnel over the members it welcomed, as remembered now
        (``days`` aside: the milestones carry no dates): reached (greeted in one
        of its groups) and, when it celebrates milestones (``member_days`` or
        ``tier_reached``), completed (reached one of them)."""
        reached = completed = 0
        for _member_id, state in states:
            greeted = state.get("greeted")
            if not isinstance(greeted, Mapping) or not greeted:
                continue
            reached += 1
            tiers = state.get("tiers")
            if _int_list(state.get("milestones")) or (
                isinstance(tiers, list) and any(isinstance(t, str) for t in tiers)
            ):
                completed += 1
        if not (self.member_days or self.tier_reached):
            return {"reached": reached}
        return {"reached": reached, "completed": completed}

    def _groups_of(self, tick: TickContext, member_id: str) -> list[Group]:
        found: list[Group] = []
        for key in sorted(tick.groups_of(member_id)):
            if self.groups and key not in self.groups:
                continue
            for group in tick.community.groups:
                if group.key == key:
                    found.append(group)
        return found

    def _post(
        self, groups: list[Group], member_id: str, kind: str, tick: TickContext, text: str
    ) -> list[Action]:
        moment = tick.now.isoformat()
        return [
            SendMessage(
                action_id=stable_id(self.name, member_id, kind, group.key, moment),
                platform=group.platform,
                group=group.group_id,
                source=self.source,
                reason=f"{kind.split('-')[0]} of a member",
                text=text,
            )
            for group in groups
        ]
