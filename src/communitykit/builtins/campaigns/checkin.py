"""The ``checkin`` campaign type (打卡): members check in once a community day.

A member checks in with ``/checkin`` (a button sends the same command) or, when
``tag`` is set, with a message containing it (``#打卡``). The day is the
member's community day in the community's time zone. Each check-in earns
``reward`` points (at most once per member and day) and extends the member's
streak; ``milestones`` pay extra when a streak reaches a length. A make-up card
(补签, ``/checkin makeup`` or ``/makeup``) fills yesterday when it was missed,
for ``makeup_cost`` points, at most ``makeup_per_month`` times a month. A daily
reminder goes to recent members who have not checked in yet, and a leaderboard
of streaks can be posted to the groups every day.

What the campaign remembers about a member (plain JSON)::

    {"last": "2026-03-08", "streak": 3, "start": "2026-03-06", "best": 5,
     "total": 12, "days": ["2026-03-06", ...], "makeups": {"2026-03": 1},
     "prev": {"last": ..., "streak": ..., "start": ...} or None,
     "platform": "telegram", "user": "42", "group": "-100..." or None}

``days`` holds the check-in days of the last 62 days before the latest one
(for reports); ``prev`` is the streak as it was before the latest check-in (a
make-up card may join it again).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

import attrs

from communitykit._errors import ModelError
from communitykit._plugin_types import CampaignType
from communitykit.builtins.rules._common import Settings
from communitykit.builtins.rules._entry import mention, template
from communitykit.hookspecs import hookimpl
from communitykit.model import (
    Action,
    AwardPoints,
    CommandInvoked,
    Decision,
    MessagePosted,
    RuleContext,
    SendDirectMessage,
    SendMessage,
    SpendPoints,
    TickContext,
    apply_multiplier,
    normalize_text,
    stable_id,
)
from communitykit.model._time import resolve_timezone

__all__ = [
    "CheckinCampaign",
    "checkin_numbers",
    "communitykit_campaign_types",
    "effective_streak",
    "leaderboard",
]

HISTORY_DAYS = 62  # how far back before the latest check-in ``days`` reaches

_REPLY = "✅ {name} checked in: {streak}-day streak, +{points} points."
_ALREADY = "{name}, you have already checked in today ({streak}-day streak). See you tomorrow!"
_MILESTONE = "🎉 {name} reached a {streak}-day streak: +{points} bonus points!"
_MAKEUP_DONE = "{name}, yesterday ({day}) is filled for {cost} points: {streak}-day streak."
_MAKEUP_NOTHING = "{name}, there is no missed day yesterday that a make-up card could repair."
_MAKEUP_LIMIT = "{name}, you have used all {limit} make-up cards of this month."
_MAKEUP_POOR = (
    "{name}, a make-up card costs {cost} points and you have {balance}: not enough points."
)
_STATUS = "{name}: {streak}-day streak, best {best}, {total} check-ins in all."
_REMIND = "{mention}, you have not checked in today yet: send /{command} to keep your streak."
_TITLE = "🏆 Check-in streaks, top {n}:"

_WHO = ("name", "mention")
_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")


# ------------------------------------------------------------------ settings


class _Reader(Settings):
    """The settings reader of the rules, speaking of a campaign."""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings, "checkin")
        self._read = {"name"}

    def _fail(self, key: str, expected: str, value: object) -> ModelError:
        return ModelError(f"checkin campaign: {key} must be {expected}, got {value!r}")

    def done(self) -> None:
        unknown = sorted(set(self._settings) - self._read)
        if unknown:
            raise ModelError(f"checkin campaign: unknown settings: {', '.join(unknown)}")

    def template(self, key: str, default: str, fields: Iterable[str]) -> str:
        try:
            return template(self, "checkin", key, default, tuple(fields))
        except ModelError as exc:
            raise ModelError(str(exc).replace("checkin rule:", "checkin campaign:", 1)) from None

    def command(self, key: str, default: str) -> str:
        value = self.text(key, default).strip()
        if not value or value.startswith("/") or any(c.isspace() for c in value):
            raise self._fail(key, "a command name without '/' or spaces", self.raw(key))
        return value

    def clock(self, key: str, default: str, *, optional: bool = False) -> time | None:
        value = self.text(key, default).strip()
        if optional and not value:
            return None
        found = _TIME.match(value)
        if found is None or int(found[1]) > 23 or int(found[2]) > 59:
            raise self._fail(key, "a local time like '20:00'" + (" or ''" * optional), value)
        return time(int(found[1]), int(found[2]))

    def milestones(self, key: str, default: Mapping[int, int]) -> Mapping[int, int]:
        if not self.has(key):
            return dict(default)
        found: dict[int, int] = {}
        for length, points in self.table(key).items():
            text = str(length)
            if (
                not (text.isascii() and text.isdigit())
                or int(text) < 1
                or type(points) is not int
                or points < 0
            ):
                raise self._fail(
                    key,
                    "a table of streak length = points, like { 7 = 20, 30 = 100 }",
                    {length: points},
                )
            found[int(text)] = points
        return found

    def zone(self, key: str) -> str:
        value = self.text(key, "UTC").strip() or "UTC"
        try:
            resolve_timezone(value)
        except ModelError as exc:
            raise ModelError(f"checkin campaign: {key}: {exc}") from None
        return value

    def group_keys(self) -> frozenset[str]:
        return frozenset(self.texts("groups"))


# ------------------------------------------------------------------- streaks


@attrs.frozen
class _Chain:
    """A streak: its last day, how many days it counts, its first day."""

    last: date
    streak: int
    start: date

    def json(self) -> dict[str, Any]:
        return {
            "last": self.last.isoformat(),
            "streak": self.streak,
            "start": self.start.isoformat(),
        }


def _day(value: object) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _count(value: object) -> int:
    return value if type(value) is int and value >= 0 else 0


def _chain(state: Mapping[str, Any] | None) -> _Chain | None:
    if not isinstance(state, Mapping):
        return None
    last, start, streak = _day(state.get("last")), _day(state.get("start")), state.get("streak")
    if last is None or start is None or type(streak) is not int or streak < 1:
        return None
    return _Chain(last, streak, start)


def _extend(chain: _Chain | None, day: date, grace_days: int) -> _Chain:
    """The streak after a check-in on ``day`` (later than the chain's last day)."""
    if chain is None or (day - chain.last).days - 1 > grace_days:
        return _Chain(day, 1, day)
    return _Chain(day, chain.streak + 1, chain.start)


def effective_streak(state: Mapping[str, Any], today: date | None, grace_days: int = 0) -> int:
    """The member's streak as of ``today``: 0 once more than ``grace_days`` days
    were missed since the last check-in (``today=None``: as last recorded)."""
    chain = _chain(state)
    if chain is None:
        return 0
    if today is not None and (today - chain.last).days - 1 > grace_days:
        return 0
    return chain.streak


def leaderboard(
    states: Iterable[tuple[str, Mapping[str, Any]]],
    n: int,
    *,
    today: date | None = None,
    grace_days: int = 0,
) -> list[tuple[str, int, int]]:
    """The ``n`` longest streaks as ``(member, streak, best)``, longest first.

    Ties go to the better best streak, then to the member id. Members without a
    running streak (as of ``today`` when given) are left out.
    """
    rows = []
    for member_id, state in states:
        streak = effective_streak(state, today, grace_days)
        if streak > 0:
            rows.append((member_id, streak, max(streak, _count(state.get("best")))))
    rows.sort(key=lambda row: (-row[1], -row[2], row[0]))
    return rows[: max(n, 0)]


def checkin_numbers(
    states: Iterable[tuple[str, Mapping[str, Any]]],
    days: Iterable[date],
    *,
    grace_days: int = 0,
) -> dict[str, Any]:
    """Numbers for a report over ``days``.

    ``members``: members who ever checked in; ``checked_in`` and ``rate``: per
    day (ISO text), how many of them checked in, and which share; ``streaks``:
    how many members have each streak length as of the last of ``days`` (0: no
    running streak). A member's days are known as far as 62 days before their
    latest check-in.
    """
    wanted = sorted(set(days))
    counts: Counter[str] = Counter()
    streaks: Counter[int] = Counter()
    members = 0
    as_of = wanted[-1] if wanted else None
    keys = {day.isoformat() for day in wanted}
    for _member_id, state in states:
        members += 1
        seen = state.get("days")
        if isinstance(seen, list | tuple):
            counts.update({d for d in seen if isinstance(d, str) and d in keys})
        streaks[effective_streak(state, as_of, grace_days)] += 1
    checked = {day.isoformat(): counts[day.isoformat()] for day in wanted}
    return {
        "members": members,
        "checked_in": checked,
        "rate": {day: (count / members if members else 0.0) for day, count in checked.items()},
        "streaks": dict(sorted(streaks.items())),
    }


# ------------------------------------------------------------------ campaign


def _month(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def _at(day: date, moment: time, tz: tzinfo) -> datetime:
    """``moment`` on the local ``day`` of zone ``tz``, in UTC."""
    return datetime.combine(day, moment, tzinfo=tz).astimezone(UTC)


@attrs.frozen(kw_only=True)
class CheckinCampaign:
    """Daily check-ins with streaks; see ``docs/campaigns-checkin.md``."""

    name: str = "checkin"
    command: str = "checkin"
    makeup_command: str = "makeup"
    leaderboard_command: str = "top"
    tag: str = ""
    reward: int = 5
    milestones: Mapping[int, int] = attrs.field(factory=lambda: {7: 20, 30: 100}, hash=False)
    grace_days: int = 0
    makeup_per_month: int = 2
    makeup_cost: int = 20
    remind: bool = True
    remind_at: time = time(20, 0)
    remind_window_days: int = 7
    leaderboard_at: time | None = None
    leaderboard_size: int = 10
    groups: frozenset[str] = frozenset()
    timezone: str = "UTC"
    reply: str = _REPLY
    already: str = _ALREADY
    milestone: str = _MILESTONE
    makeup_done: str = _MAKEUP_DONE
    makeup_nothing: str = _MAKEUP_NOTHING
    makeup_limit: str = _MAKEUP_LIMIT
    makeup_poor: str = _MAKEUP_POOR
    status: str = _STATUS
    reminder: str = _REMIND
    leaderboard_title: str = _TITLE

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> CheckinCampaign:
        reader = _Reader(settings)
        campaign = cls(
            name=reader.name(),
            command=reader.command("command", "checkin"),
            makeup_command=reader.command("makeup_command", "makeup"),
            leaderboard_command=reader.command("leaderboard_command", "top"),
            tag=reader.text("tag", "").strip(),
            reward=reader.integer("reward", 5),
            milestones=reader.milestones("milestones", {7: 20, 30: 100}),
            grace_days=reader.integer("grace_days", 0, maximum=30),
            makeup_per_month=reader.integer("makeup_per_month", 2, maximum=31),
            makeup_cost=reader.integer("makeup_cost", 20),
            remind=reader.flag("remind", True),
            remind_at=reader.clock("remind_at", "20:00") or time(20, 0),
            remind_window_days=reader.integer("remind_window_days", 7, minimum=1),
            leaderboard_at=reader.clock("leaderboard_at", "", optional=True),
            leaderboard_size=reader.integer("leaderboard_size", 10, minimum=1, maximum=50),
            groups=reader.group_keys(),
            timezone=reader.zone("timezone"),
            reply=reader.template("reply", _REPLY, (*_WHO, "streak", "best", "total", "points")),
            already=reader.template("already", _ALREADY, (*_WHO, "streak", "best", "total")),
            milestone=reader.template("milestone", _MILESTONE, (*_WHO, "streak", "points")),
            makeup_done=reader.template(
                "makeup_done", _MAKEUP_DONE, (*_WHO, "streak", "day", "cost")
            ),
            makeup_nothing=reader.template("makeup_nothing", _MAKEUP_NOTHING, _WHO),
            makeup_limit=reader.template("makeup_limit", _MAKEUP_LIMIT, (*_WHO, "limit")),
            makeup_poor=reader.template("makeup_poor", _MAKEUP_POOR, (*_WHO, "cost", "balance")),
            status=reader.template("status", _STATUS, (*_WHO, "streak", "best", "total")),
            reminder=reader.template("reminder", _REMIND, (*_WHO, "streak", "command")),
            leaderboard_title=reader.template("leaderboard_title", _TITLE, ("n",)),
        )
        reader.done()
        if campaign.tag and not normalize_text(campaign.tag):
            raise ModelError(f"checkin campaign: tag must be a visible text, got {campaign.tag!r}")
        return campaign

    @property
    def source(self) -> str:
        return f"campaign:{self.name}"

    @property
    def event_types(self) -> frozenset[str]:
        if self.tag:
            return frozenset({"command_invoked", "message_posted"})
        return frozenset({"command_invoked"})

    # --------------------------------------------------------------- events

    def on_event(self, ctx: RuleContext) -> Decision | None:
        event = ctx.event
        if event.group is not None and self.groups:
            group = ctx.group
            if group is None or group.key not in self.groups:
                return None
        if isinstance(event, MessagePosted):
            if self.tag and normalize_text(self.tag) in normalize_text(event.text):
                return self._checkin(ctx, event.message_id)
            return None
        if not isinstance(event, CommandInvoked):
            return None
        command = event.command.casefold()
        word = event.args[0].casefold() if event.args else ""
        if command == self.command.casefold():
            if word == self.makeup_command.casefold():
                return self._makeup(ctx)
            if word == self.leaderboard_command.casefold():
                return self._status(ctx)
            return self._checkin(ctx, None)
        if command == self.makeup_command.casefold():
            return self._makeup(ctx)
        if command == self.leaderboard_command.casefold():
            return self._status(ctx)
        return None

    def _today(self, ctx: RuleContext) -> date:
        return ctx.event.at.astimezone(ctx.community.tz).date()

    def _say(
        self, ctx: RuleContext, text: str, why: str, index: int = 0, reply_to: str | None = None
    ) -> Action:
        if ctx.event.group is None:
            return ctx.action(SendDirectMessage, self.source, why, index, text=text)
        return ctx.action(SendMessage, self.source, why, index, text=text, reply_to=reply_to)

    def _names(self, ctx: RuleContext) -> dict[str, str]:
        name = ctx.member.display_name.strip() or ctx.event.user
        return {"name": name, "mention": mention(ctx.member.display_name, ctx.event.user)}

    def _reach(self, ctx: RuleContext) -> dict[str, Any]:
        event = ctx.event
        return {"platform": event.platform, "user": event.user, "group": event.group}

    def _milestones(
        self, member_id: str, chain: _Chain, before: int
    ) -> list[tuple[int, AwardPoints | None]]:
        found: list[tuple[int, AwardPoints | None]] = []
        for length, points in sorted(self.milestones.items()):
            if before < length <= chain.streak:
                award = None
                if points > 0:
                    award = AwardPoints(
                        member=member_id,
                        points=points,
                        reason="checkin_milestone",
                        key=f"checkin:{self.name}:{member_id}:milestone:{length}:{chain.start}",
                    )
                found.append((length, award))
        return found

    def _checkin(self, ctx: RuleContext, reply_to: str | None) -> Decision | None:
        state = ctx.rule_state(self.name)
        today = self._today(ctx)
        member_id = ctx.member_id
        current = _chain(state)
        names = self._names(ctx)
        days = [d for d in state.get("days", ()) if isinstance(d, str)]
        key = f"checkin:{self.name}:{member_id}:{today.isoformat()}"
        if current is not None and current.last > today:
            return None  # a delayed event from before the latest check-in
        if (current is not None and current.last == today) or ctx.already_awarded(key):
            streak = current.streak if current is not None else 0
            text = self.already.format(
                **names,
                streak=streak,
                best=_count(state.get("best")),
                total=_count(state.get("total")),
            )
            return Decision(
                source=self.source,
                explanation=f"checked in again on {today}: nothing more to award",
                actions=(self._say(ctx, text, "second check-in of the day", reply_to=reply_to),),
            )
        chain = _extend(current, today, self.grace_days)
        before = current.streak if current is not None and chain.start == current.start else 0
        best = max(_count(state.get("best")), chain.streak)
        total = _count(state.get("total")) + 1
        awards: list[AwardPoints] = []
        if self.reward > 0:
            awards.append(
                AwardPoints(member=member_id, points=self.reward, reason="checkin", key=key)
            )
        earned = apply_multiplier(self.reward, ctx.tier.multiplier)
        text = self.reply.format(
            **names, streak=chain.streak, best=best, total=total, points=earned
        )
        actions = [self._say(ctx, text, "check-in", reply_to=reply_to)]
        reached = self._milestones(member_id, chain, before)
        for index, (length, award) in enumerate(reached, start=1):
            if award is not None:
                awards.append(award)
            points = 0 if award is None else apply_multiplier(award.points, ctx.tier.multiplier)
            congrats = self.milestone.format(**names, streak=length, points=points)
            actions.append(self._say(ctx, congrats, f"{length}-day check-in streak", index))
        new_state = {
            **chain.json(),
            "best": best,
            "total": total,
            "days": _history([*days, today.isoformat()], today),
            "makeups": _makeups(state, today),
            "prev": None if current is None else current.json(),
            **self._reach(ctx),
        }
        milestone_text = "".join(f"; reached a {length}-day streak" for length, _ in reached)
        return Decision(
            source=self.source,
            explanation=f"checked in on {today}: {chain.streak}-day streak{milestone_text}",
            awards=tuple(awards),
            actions=tuple(actions),
            state=new_state,
        )

    def _makeup(self, ctx: RuleContext) -> Decision | None:
        state = ctx.rule_state(self.name)
        today = self._today(ctx)
        yesterday = today - timedelta(days=1)
        member_id = ctx.member_id
        names = self._names(ctx)
        current = _chain(state)
        days = [d for d in state.get("days", ()) if isinstance(d, str)]
        used = _makeups(state, today).get(_month(today), 0)

        def refuse(text: str, why: str) -> Decision:
            return Decision(
                source=self.source,
                explanation=f"make-up card for {yesterday} refused: {why}",
                actions=(self._say(ctx, text, "make-up card refused"),),
            )

        nothing = refuse(self.makeup_nothing.format(**names), "no missed day it could repair")
        if current is None or current.last > today or yesterday.isoformat() in days:
            return nothing
        base = current if current.last < yesterday else _chain(state.get("prev"))
        if base is None or base.last >= yesterday:
            return nothing
        filled = _extend(base, yesterday, self.grace_days)
        if filled.start != base.start:
            return nothing  # the streak ended too long ago to be repaired
        chain = _extend(filled, today, self.grace_days) if current.last == today else filled
        if used >= self.makeup_per_month:
            text = self.makeup_limit.format(**names, limit=self.makeup_per_month)
            return refuse(text, f"{used} of {self.makeup_per_month} cards used this month")
        if ctx.balance < self.makeup_cost:
            text = self.makeup_poor.format(**names, cost=self.makeup_cost, balance=ctx.balance)
            return refuse(text, f"not enough points ({ctx.balance} of {self.makeup_cost})")
        spends: tuple[SpendPoints, ...] = ()
        if self.makeup_cost > 0:
            spends = (
                SpendPoints(
                    member=member_id,
                    points=self.makeup_cost,
                    reason="checkin_makeup",
                    key=f"checkin:{self.name}:{member_id}:makeup:{yesterday.isoformat()}",
                ),
            )
        best = max(_count(state.get("best")), chain.streak)
        total = _count(state.get("total")) + 1
        text = self.makeup_done.format(
            **names, day=yesterday.isoformat(), cost=self.makeup_cost, streak=chain.streak
        )
        actions = [self._say(ctx, text, "make-up card")]
        awards: list[AwardPoints] = []
        reached = self._milestones(member_id, chain, base.streak)
        for index, (length, award) in enumerate(reached, start=1):
            if award is not None:
                awards.append(award)
            points = 0 if award is None else apply_multiplier(award.points, ctx.tier.multiplier)
            congrats = self.milestone.format(**names, streak=length, points=points)
            actions.append(self._say(ctx, congrats, f"{length}-day check-in streak", index))
        makeups = _makeups(state, today)
        makeups[_month(today)] = used + 1
        new_state = {
            **chain.json(),
            "best": best,
            "total": total,
            "days": _history([*days, yesterday.isoformat()], chain.last),
            "makeups": makeups,
            "prev": filled.json() if current.last == today else base.json(),
            **self._reach(ctx),
        }
        return Decision(
            source=self.source,
            explanation=(
                f"make-up card for {yesterday} ({used + 1} of {self.makeup_per_month} this "
                f"month, {self.makeup_cost} points): {chain.streak}-day streak"
            ),
            awards=tuple(awards),
            actions=tuple(actions),
            state=new_state,
            spends=spends,
        )

    def _status(self, ctx: RuleContext) -> Decision:
        state = ctx.rule_state(self.name)
        streak = effective_streak(state, self._today(ctx), self.grace_days)
        best = max(_count(state.get("best")), streak)
        text = self.status.format(
            **self._names(ctx), streak=streak, best=best, total=_count(state.get("total"))
        )
        return Decision(
            source=self.source,
            explanation=f"asked for their check-in streak ({streak}, best {best})",
            actions=(self._say(ctx, text, "check-in streak"),),
        )

    # ------------------------------------------------------------- schedule

    def _times(self) -> list[time]:
        found = [self.remind_at] if self.remind else []
        if self.leaderboard_at is not None:
            found.append(self.leaderboard_at)
        return found

    def next_run(self, after: datetime | None) -> datetime | None:
        """The next reminder or leaderboard moment strictly after ``after`` (in UTC)."""
        if after is None:
            return None
        times = self._times()
        if not times:
            return None
        tz = self._tz
        local = after.astimezone(tz).date()
        moments = [
            _at(local + timedelta(days=offset), moment, tz)
            for offset in (-1, 0, 1, 2)
            for moment in times
        ]
        return min(m for m in moments if m > after)

    @property
    def _tz(self) -> tzinfo:
        return resolve_timezone(self.timezone)

    def numbers(
        self, states: Iterable[tuple[str, Mapping[str, Any]]], days: list[date]
    ) -> dict[str, Any]:
        """The campaign's numbers over ``days`` (community days), for reports."""
        return checkin_numbers(states, days, grace_days=self.grace_days)

    def on_schedule(self, ctx: TickContext) -> Iterable[Decision]:
        tz = self._tz
        today = ctx.now.astimezone(ctx.community.tz).date()
        decisions: list[Decision] = []
        if self.remind and ctx.now == _at(today, self.remind_at, tz):
            decisions.extend(self._reminders(ctx, today))
        if self.leaderboard_at is not None and ctx.now == _at(today, self.leaderboard_at, tz):
            decisions.extend(self._leaderboard(ctx, today))
        return decisions

    def _reminders(self, ctx: TickContext, today: date) -> list[Decision]:
        decisions: list[Decision] = []
        for member_id, state in sorted(ctx.rule_states(self.name), key=lambda row: row[0]):
            last = _day(state.get("last"))
            if last is None or last >= today or (today - last).days > self.remind_window_days:
                continue
            member = ctx.member(member_id)
            if member is None or member.left_at is not None:
                continue
            platform, user, group = state.get("platform"), state.get("user"), state.get("group")
            if not (isinstance(platform, str) and isinstance(user, str)):
                continue
            caps = ctx.capabilities.get(platform)
            if caps is None:
                continue
            streak = effective_streak(state, today, self.grace_days)
            text = self.reminder.format(
                name=member.display_name.strip() or user,
                mention=mention(member.display_name, user),
                streak=streak,
                command=self.command,
            )
            moment = ctx.now.isoformat()
            why = "daily check-in reminder"
            post: SendMessage | None = None
            known = None if not isinstance(group, str) else ctx.community.group(platform, group)
            if (
                isinstance(group, str)
                and caps.can("send_message")
                and (known is None or known.key in ctx.groups_of(member_id))
            ):
                post = SendMessage(
                    action_id=stable_id(self.name, member_id, moment, "remind", "group"),
                    platform=platform,
                    group=group,
                    user=user,
                    source=self.source,
                    reason=why,
                    text=text,
                )
            if caps.direct_messages and caps.can("send_direct_message"):
                dm = SendDirectMessage(
                    action_id=stable_id(self.name, member_id, moment, "remind"),
                    platform=platform,
                    user=user,
                    source=self.source,
                    reason=why,
                    text=text,
                )
                decisions.append(
                    Decision(
                        source=self.source,
                        explanation=f"not checked in on {today} yet (last {last}): reminded",
                        actions=(dm,),
                        fallbacks={dm.action_id: (post,)} if post is not None else {},
                        member=member_id,
                    )
                )
            elif post is not None:
                decisions.append(
                    Decision(
                        source=self.source,
                        explanation=(
                            f"not checked in on {today} yet (last {last}): reminded in the group"
                        ),
                        actions=(post,),
                        member=member_id,
                    )
                )
        return decisions

    def _leaderboard(self, ctx: TickContext, today: date) -> list[Decision]:
        rows = leaderboard(
            ctx.rule_states(self.name),
            self.leaderboard_size,
            today=today,
            grace_days=self.grace_days,
        )
        if not rows:
            return []
        lines = [self.leaderboard_title.format(n=len(rows))]
        for rank, (member_id, streak, best) in enumerate(rows, start=1):
            member = ctx.member(member_id)
            shown = (member.display_name.strip() if member is not None else "") or member_id
            lines.append(f"{rank}. {shown}: {streak} (best {best})")
        text = "\n".join(lines)
        actions: list[Action] = []
        for group in ctx.community.groups:
            if self.groups and group.key not in self.groups:
                continue
            caps = ctx.capabilities.get(group.platform)
            if caps is None or not caps.can("send_message"):
                continue
            actions.append(
                SendMessage(
                    action_id=stable_id(self.name, "leaderboard", group.key, ctx.now.isoformat()),
                    platform=group.platform,
                    group=group.group_id,
                    source=self.source,
                    reason="daily check-in leaderboard",
                    text=text,
                )
            )
        if not actions:
            return []
        return [
            Decision(
                source=self.source,
                explanation=f"posted the check-in leaderboard of {today} ({len(rows)} streaks)",
                actions=tuple(actions),
            )
        ]

    def funnel(
        self, states: Iterable[tuple[str, Mapping[str, Any]]], days: list[date]
    ) -> dict[str, int]:
        """The report's funnel: members signed up (ever checked in), who took part
        (checked in on a day of ``days``) and who completed a week (a streak of 7
        or more at the last of ``days``)."""
        rows = list(states)
        keys = {d.isoformat() for d in days}
        as_of = max(days) if days else None
        took_part = completed = 0
        for _member_id, state in rows:
            seen = state.get("days")
            if isinstance(seen, list | tuple) and any(d in keys for d in seen):
                took_part += 1
            if effective_streak(state, as_of, self.grace_days) >= 7:
                completed += 1
        return {"signed up": len(rows), "took part": took_part, "completed": completed}


def _history(days: Iterable[str], latest: date) -> list[str]:
    """The check-in days (ISO text) of the ``HISTORY_DAYS`` before ``latest``, sorted."""
    first = (latest - timedelta(days=HISTORY_DAYS)).isoformat()
    return sorted({d for d in days if d >= first})


def _makeups(state: Mapping[str, Any], today: date) -> dict[str, int]:
    """Make-up cards used this month (earlier months are forgotten)."""
    month = _month(today)
    found = state.get("makeups")
    used = found.get(month) if isinstance(found, Mapping) else None
    return {month: used} if type(used) is int and used > 0 else {}


@hookimpl
def communitykit_campaign_types() -> Iterable[CampaignType]:
    return [
        CampaignType(
            name="checkin",
            factory=CheckinCampaign.from_settings,
            description="daily check-ins (打卡) with streaks, make-up cards, reminders",
            takes_timezone=True,
        )
    ]
