# ruff: noqa: RUF001
"""The ``training_camp`` campaign type (训练营): a cohort, a calendar of lessons.

A camp runs ``len(days)`` community days from ``start`` (day n is ``start + n - 1``)
in one configured ``group``. Members enrol with ``/enroll`` (or, with ``cohort =
"group"``, everyone in the group takes part). Each camp day at ``post_at`` the
day's lesson and task are posted in the group; members check in with ``/done``
and hand in homework with a message containing the day's ``homework_tag`` (or
``/homework``). At ``remind_at`` those who have not done the day's task are
reminded; at ``star_at`` the star of the day (作业之星) is announced. The day
after the last day, at ``post_at``, members who did at least ``complete_rate``
of the days get a certificate and the operator gets a report.

What the campaign remembers about a member (plain JSON)::

    {"enrolled": "2026-03-01T09:00:00+00:00" or None,
     "done": ["2026-03-02", ...],
     "homework": {"2026-03-02": {"id": "pm3", "at": "...", "length": 42}},
     "reacted": ["pm3", ...],
     "platform": "telegram", "user": "42", "group": "-100..." or None}

Homework handed in on a day also counts as that day's task done. ``reacted``
holds the homework messages the member reacted to (for ``most_reactions``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

import attrs

from communitykit._errors import ModelError
from communitykit.builtins.campaigns._settings import CampaignSettings
from communitykit.builtins.rules._entry import mention
from communitykit.model import (
    Action,
    AwardPoints,
    Capabilities,
    CommandInvoked,
    Decision,
    Member,
    MemberStatus,
    MessagePosted,
    ReactionAdded,
    RuleContext,
    SendDirectMessage,
    SendMessage,
    TickContext,
    normalize_text,
    stable_id,
)
from communitykit.model._community import Group

__all__ = ["CampDay", "TrainingCampCampaign", "camp_numbers", "reach", "read_clock"]

STAR_RULES = ("first", "longest", "most_reactions")
MAX_REACTED = 500  # reactions remembered per member

_POST = "📚 训练营第 {day}/{days} 天\n课程：{lesson}\n任务：{task}\n交作业请带上 {tag}"
_ENROLLED = "{name} 报名成功！训练营 {start} 开始，共 {days} 天。"
_CLOSED = "{name}，训练营已经结束，无法报名。"
_NOT_ENROLLED = "{name}，你还没有报名训练营：发送 /{command} 报名。"
_NOT_RUNNING = "{name}，今天没有训练营的任务。"
_DONE = "✅ {name} 完成了第 {day} 天的任务（{count}/{days}）。"
_HOMEWORK = "📝 {name} 交了第 {day} 天的作业。"
_REMIND = "{mention}，今天（第 {day} 天）的任务还没有完成：完成后发送 /{command}。"
_STAR = "⭐ 第 {day} 天的作业之星：{mention}！"
_CERTIFICATE = "🎓 {name}，恭喜完成训练营！你的完成率是 {rate}%。"
_REPORT = (
    "训练营 {camp} 结束：报名 {enrolled} 人，结业 {completed} 人，作业提交率 {homework_rate}%。"
)

_WHO = ("name", "mention")
_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")


def read_clock(reader: CampaignSettings, key: str, default: str) -> time:
    """A local time of day setting like ``"20:00"``."""
    value = reader.text(key, default).strip()
    found = _TIME.match(value)
    if found is None or int(found[1]) > 23 or int(found[2]) > 59:
        raise reader.fail(key, "a local time like '20:00'", value)
    return time(int(found[1]), int(found[2]))


def read_optional_clock(reader: CampaignSettings, key: str, default: str) -> time | None:
    """A local time of day like ``"20:00"``, or ``""`` for none."""
    if not reader.text(key, default).strip():
        return None
    try:
        return read_clock(reader, key, default)
    except ModelError:
        raise reader.fail(key, "a local time like '20:00' or ''", reader.raw(key)) from None


def read_command(reader: CampaignSettings, key: str, default: str) -> str:
    value = reader.text(key, default).strip()
    if not value or value.startswith("/") or any(c.isspace() for c in value):
        raise reader.fail(key, "a command name without '/' or spaces", reader.raw(key))
    return value


def at_local(day: date, moment: time, tz: tzinfo) -> datetime:
    """``moment`` on the local ``day`` of zone ``tz``, in UTC (a skipped wall time
    is read with the offset before the change, as zoneinfo does)."""
    return datetime.combine(day, moment, tzinfo=tz).astimezone(UTC)


def gone(member: Member) -> bool:
    """Whether the member left or was banned (no more messages for them)."""
    return member.left_at is not None or member.status in (MemberStatus.LEFT, MemberStatus.BANNED)


def shown_name(member: Member, state: Mapping[str, Any] | None = None) -> str:
    """How a message names a member: their display name, else a user id."""
    name = member.display_name.strip()
    if name:
        return name
    user = state.get("user") if state is not None else None
    if isinstance(user, str) and user:
        return user
    for identity in member.identities:
        return identity.user_id
    return member.member_id


def reach(
    ctx: TickContext,
    name: str,
    member: Member,
    text: str,
    why: str,
    *parts: str,
    state: Mapping[str, Any] | None = None,
    groups: Sequence[Group] = (),
) -> tuple[tuple[Action, ...], dict[str, tuple[Action, ...]]]:
    """A direct message to ``member`` where the platform allows, with a mention in
    one of ``groups`` (that the member is in) as its fallback; or only the
    mention. ``state`` may name the platform, user and group the member was last
    seen in. Returns ``(actions, fallbacks)`` (both empty: no way to reach them)."""
    source = f"campaign:{name}"
    ids = (name, member.member_id, *parts)
    known = ctx.groups_of(member.member_id)
    candidates: list[tuple[str, str, str | None]] = []
    if state is not None:
        platform, user, group = state.get("platform"), state.get("user"), state.get("group")
        if isinstance(platform, str) and isinstance(user, str):
            chosen = None
            for g in groups:
                if g.platform == platform and g.key in known:
                    chosen = g.group_id
                    break
            if chosen is None and isinstance(group, str):
                found = ctx.community.group(platform, group)
                if found is not None and found.key in known and (not groups or found in groups):
                    chosen = group
            candidates.append((platform, user, chosen))
    for identity in member.identities:
        chosen = None
        for g in groups:
            if g.platform == identity.platform and g.key in known:
                chosen = g.group_id
                break
        candidates.append((identity.platform, identity.user_id, chosen))
    for platform, user, group in candidates:
        caps: Capabilities | None = ctx.capabilities.get(platform)
        if caps is None:
            continue
        post: SendMessage | None = None
        if group is not None and caps.can("send_message"):
            post = SendMessage(
                action_id=stable_id(*ids, "group"),
                platform=platform,
                group=group,
                user=user,
                source=source,
                reason=why,
                text=text,
            )
        if caps.direct_messages and caps.can("send_direct_message"):
            dm = SendDirectMessage(
                action_id=stable_id(*ids, "dm"),
                platform=platform,
                user=user,
                source=source,
                reason=why,
                text=text,
            )
            return (dm,), ({dm.action_id: (post,)} if post is not None else {})
        if post is not None:
            return (post,), {}
    return (), {}


@attrs.frozen
class CampDay:
    """One day of the camp's calendar."""

    lesson: str
    task: str
    homework_tag: str


def _days_of(state: Mapping[str, Any], key: str) -> list[str]:
    found = state.get(key)
    return [d for d in found if isinstance(d, str)] if isinstance(found, list | tuple) else []


def _homework(state: Mapping[str, Any]) -> Mapping[str, Any]:
    found = state.get("homework")
    return found if isinstance(found, Mapping) else {}


def _done_days(state: Mapping[str, Any]) -> set[str]:
    return set(_days_of(state, "done")) | set(_homework(state))


def completion_rate(state: Mapping[str, Any], days: Sequence[date]) -> float:
    """The share of ``days`` on which the member did the task (or handed in homework)."""
    if not days:
        return 0.0
    done = _done_days(state)
    return sum(1 for d in days if d.isoformat() in done) / len(days)


def camp_numbers(
    states: Iterable[tuple[str, Mapping[str, Any]]],
    days: Sequence[date],
    *,
    complete_rate: float = 0.8,
) -> dict[str, Any]:
    """Numbers of a camp over its ``days``, among enrolled members.

    ``enrolled``; ``completed`` (members whose completion rate is at least
    ``complete_rate``); ``done`` and ``done_rate``, ``homework`` and
    ``homework_rate``: per day (ISO text), how many did the task / handed in
    homework and which share of the enrolled; ``homework_overall``: handed-in
    homework over enrolled members times days; ``completion``: each member's
    completion rate (0 to 1).
    """
    keys = [d.isoformat() for d in days]
    done = dict.fromkeys(keys, 0)
    homework = dict.fromkeys(keys, 0)
    completion: dict[str, float] = {}
    for member_id, state in states:
        if not state.get("enrolled"):
            continue
        did = _done_days(state)
        handed = _homework(state)
        for key in keys:
            done[key] += key in did
            homework[key] += key in handed
        completion[member_id] = completion_rate(state, days)
    enrolled = len(completion)
    handed_in = sum(homework.values())
    return {
        "enrolled": enrolled,
        "completed": sum(1 for rate in completion.values() if rate >= complete_rate),
        "done": done,
        "done_rate": {k: (v / enrolled if enrolled else 0.0) for k, v in done.items()},
        "homework": homework,
        "homework_rate": {k: (v / enrolled if enrolled else 0.0) for k, v in homework.items()},
        "homework_overall": handed_in / (enrolled * len(keys)) if enrolled and keys else 0.0,
        "completion": dict(sorted(completion.items())),
    }


def _percent(rate: float) -> str:
    return f"{rate * 100:.0f}"


@attrs.frozen(kw_only=True)
class TrainingCampCampaign:
    """A cohort training camp; see ``docs/campaigns-cohorts.md``."""

    name: str = "training_camp"
    start: date
    group: str
    days: tuple[CampDay, ...]
    cohort: str = "enroll"
    enroll_command: str = "enroll"
    done_command: str = "done"
    homework_command: str = "homework"
    post_at: time = time(8, 0)
    remind_at: time | None = time(20, 0)
    star_at: time | None = time(22, 0)
    star_rule: str = "first"
    star_points: int = 0
    complete_rate: float = 0.8
    operator_group: str = ""
    operator: str = ""
    timezone: str = "UTC"
    tz: tzinfo = attrs.field(default=UTC, eq=False, repr=False)
    post: str = _POST
    enrolled: str = _ENROLLED
    closed: str = _CLOSED
    not_enrolled: str = _NOT_ENROLLED
    not_running: str = _NOT_RUNNING
    done_reply: str = _DONE
    homework_reply: str = _HOMEWORK
    reminder: str = _REMIND
    star: str = _STAR
    certificate: str = _CERTIFICATE
    report: str = _REPORT

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> TrainingCampCampaign:
        reader = CampaignSettings(settings, "training_camp")
        zone, tz = reader.timezone()
        start_text = reader.text("start", "")
        try:
            start = date.fromisoformat(start_text)
        except ValueError:
            raise reader.fail("start", "a local date like '2026-03-02'", start_text) from None
        group = reader.text("group", "").strip()
        if not group:
            raise reader.fail("group", "the key of a configured group", reader.raw("group"))
        days = _read_days(reader)
        cohort = reader.text("cohort", "enroll")
        if cohort not in ("enroll", "group"):
            raise reader.fail("cohort", "'enroll' or 'group'", cohort)
        star_rule = reader.text("star_rule", "first")
        if star_rule not in STAR_RULES:
            raise reader.fail("star_rule", "'first', 'longest' or 'most_reactions'", star_rule)
        rate = reader.raw("complete_rate", 0.8)
        if type(rate) not in (int, float) or not 0 <= rate <= 1:
            raise reader.fail("complete_rate", "a number from 0 to 1", rate)
        fields = ("day", "days")
        campaign = cls(
            name=reader.name(),
            start=start,
            group=group,
            days=days,
            cohort=cohort,
            enroll_command=read_command(reader, "enroll_command", "enroll"),
            done_command=read_command(reader, "done_command", "done"),
            homework_command=read_command(reader, "homework_command", "homework"),
            post_at=read_clock(reader, "post_at", "08:00"),
            remind_at=read_optional_clock(reader, "remind_at", "20:00"),
            star_at=read_optional_clock(reader, "star_at", "22:00"),
            star_rule=star_rule,
            star_points=reader.integer("star_points", 0),
            complete_rate=float(rate),
            operator_group=reader.text("operator_group", "").strip(),
            operator=reader.text("operator", "").strip(),
            timezone=zone,
            tz=tz,
            post=reader.template("post", _POST, (*fields, "lesson", "task", "tag")),
            enrolled=reader.template("enrolled", _ENROLLED, (*_WHO, "start", "days")),
            closed=reader.template("closed", _CLOSED, _WHO),
            not_enrolled=reader.template("not_enrolled", _NOT_ENROLLED, (*_WHO, "command")),
            not_running=reader.template("not_running", _NOT_RUNNING, _WHO),
            done_reply=reader.template("done_reply", _DONE, (*_WHO, *fields, "count")),
            homework_reply=reader.template("homework_reply", _HOMEWORK, (*_WHO, *fields)),
            reminder=reader.template("reminder", _REMIND, (*_WHO, *fields, "command")),
            star=reader.template("star", _STAR, (*_WHO, "day")),
            certificate=reader.template("certificate", _CERTIFICATE, (*_WHO, "rate", "days")),
            report=reader.template(
                "report", _REPORT, ("camp", "enrolled", "completed", "homework_rate")
            ),
        )
        reader.done()
        return campaign

    @property
    def source(self) -> str:
        return f"campaign:{self.name}"

    @property
    def event_types(self) -> frozenset[str]:
        found = {"command_invoked", "message_posted"}
        if self.star_rule == "most_reactions":
            found.add("reaction_added")
        return frozenset(found)

    @property
    def dates(self) -> tuple[date, ...]:
        return tuple(self.start + timedelta(days=n) for n in range(len(self.days)))

    @property
    def end(self) -> date:
        """The day after the last day (certificates and the report)."""
        return self.start + timedelta(days=len(self.days))

    def day_number(self, day: date) -> int | None:
        """1 for the first camp day, ... (``None``: not a camp day)."""
        n = (day - self.start).days + 1
        return n if 1 <= n <= len(self.days) else None

    # --------------------------------------------------------------- events

    def _in_group(self, ctx: RuleContext) -> bool:
        group = ctx.group
        return group is not None and group.key == self.group

    def on_event(self, ctx: RuleContext) -> Decision | None:
        event = ctx.event
        if event.group is not None and not self._in_group(ctx):
            return None
        if isinstance(event, ReactionAdded):
            return None if event.group is None else self._reaction(ctx, event)
        if isinstance(event, MessagePosted):
            if event.group is None:
                return None
            number = self.day_number(self._today(ctx))
            if number is None:
                return None
            tag = normalize_text(self.days[number - 1].homework_tag)
            if tag and tag in normalize_text(event.text):
                return self._hand_in(ctx, number, event.message_id, len(event.text.strip()))
            return None
        if not isinstance(event, CommandInvoked):
            return None
        command = event.command.casefold()
        if command == self.enroll_command.casefold():
            return self._enroll(ctx)
        if command == self.done_command.casefold():
            return self._done(ctx)
        if command == self.homework_command.casefold():
            number = self.day_number(self._today(ctx))
            if number is None:
                return self._reply(ctx, self.not_running.format(**self._names(ctx)), "no camp day")
            body = " ".join(event.args).strip()
            return self._hand_in(ctx, number, f"cmd:{event.event_id}", len(body))
        return None

    def _today(self, ctx: RuleContext) -> date:
        return ctx.event.at.astimezone(self.tz).date()

    def _names(self, ctx: RuleContext) -> dict[str, str]:
        name = ctx.member.display_name.strip() or ctx.event.user
        return {"name": name, "mention": mention(ctx.member.display_name, ctx.event.user)}

    def _reply(self, ctx: RuleContext, text: str, why: str, index: int = 0) -> Decision:
        return Decision(source=self.source, explanation=why, actions=(self._say(ctx, text, why),))

    def _say(self, ctx: RuleContext, text: str, why: str, index: int = 0) -> Action:
        if ctx.event.group is None:
            return ctx.action(SendDirectMessage, self.source, why, index, text=text)
        reply_to = getattr(ctx.event, "message_id", None)
        return ctx.action(SendMessage, self.source, why, index, text=text, reply_to=reply_to)

    def _reach_fields(self, ctx: RuleContext, state: Mapping[str, Any]) -> dict[str, Any]:
        event = ctx.event
        group = event.group if event.group is not None else state.get("group")
        return {"platform": event.platform, "user": event.user, "group": group}

    def _is_enrolled(self, state: Mapping[str, Any]) -> bool:
        return self.cohort == "group" or bool(state.get("enrolled"))

    def _enroll(self, ctx: RuleContext) -> Decision:
        state = ctx.rule_state(self.name)
        names = self._names(ctx)
        today = self._today(ctx)
        if today >= self.end:
            return self._reply(ctx, self.closed.format(**names), "enrolment after the camp")
        text = self.enrolled.format(**names, start=self.start.isoformat(), days=len(self.days))
        if state.get("enrolled"):
            return self._reply(ctx, text, "enrolled already")
        return Decision(
            source=self.source,
            explanation=f"enrolled in the camp on {today}",
            actions=(self._say(ctx, text, "enrolled"),),
            state={
                **state,
                "enrolled": ctx.event.at.astimezone(UTC).isoformat(),
                **self._reach_fields(ctx, state),
            },
        )

    def _done(self, ctx: RuleContext) -> Decision | None:
        state = ctx.rule_state(self.name)
        names = self._names(ctx)
        if not self._is_enrolled(state):
            text = self.not_enrolled.format(**names, command=self.enroll_command)
            return self._reply(ctx, text, "task done but not enrolled")
        today = self._today(ctx)
        number = self.day_number(today)
        if number is None:
            return self._reply(ctx, self.not_running.format(**names), "no camp day")
        done = _days_of(state, "done")
        key = today.isoformat()
        new = key not in done
        if new:
            done = sorted({*done, key})
        count = len(_done_days({**state, "done": done}) & {d.isoformat() for d in self.dates})
        text = self.done_reply.format(**names, day=number, days=len(self.days), count=count)
        return Decision(
            source=self.source,
            explanation=f"did the task of day {number} ({today})" + ("" if new else " again"),
            actions=(self._say(ctx, text, "camp task done"),),
            state={**state, "done": done, **self._reach_fields(ctx, state)} if new else None,
        )

    def _hand_in(self, ctx: RuleContext, number: int, message_id: str, length: int) -> Decision:
        state = ctx.rule_state(self.name)
        names = self._names(ctx)
        if not self._is_enrolled(state):
            text = self.not_enrolled.format(**names, command=self.enroll_command)
            return self._reply(ctx, text, "homework but not enrolled")
        key = self._today(ctx).isoformat()
        homework = dict(_homework(state))
        if key in homework:
            return Decision(
                source=self.source,
                explanation=f"homework of day {number} was handed in already: counted once",
            )
        homework[key] = {
            "id": message_id,
            "at": ctx.event.at.astimezone(UTC).isoformat(),
            "length": length,
        }
        text = self.homework_reply.format(**names, day=number, days=len(self.days))
        new_state = {**state, "homework": homework, **self._reach_fields(ctx, state)}
        if self.cohort == "group" and not state.get("enrolled"):
            new_state["enrolled"] = ctx.event.at.astimezone(UTC).isoformat()
        return Decision(
            source=self.source,
            explanation=f"handed in the homework of day {number} ({key})",
            actions=(self._say(ctx, text, "camp homework"),),
            state=new_state,
        )

    def _reaction(self, ctx: RuleContext, event: ReactionAdded) -> Decision | None:
        if self.day_number(self._today(ctx)) is None:
            return None
        state = ctx.rule_state(self.name)
        reacted = _days_of(state, "reacted")
        if event.message_id in reacted:
            return None
        reacted = [*reacted, event.message_id][-MAX_REACTED:]
        return Decision(
            source=self.source,
            explanation=f"reacted to message {event.message_id}",
            state={**state, "reacted": reacted},
        )

    # ------------------------------------------------------------- schedule

    def moments(self) -> list[tuple[datetime, str, date]]:
        """Every scheduled moment of the camp: ``(utc, kind, local day)``, in order."""
        found: list[tuple[datetime, str, date]] = []
        for day in self.dates:
            found.append((at_local(day, self.post_at, self.tz), "post", day))
            if self.remind_at is not None:
                found.append((at_local(day, self.remind_at, self.tz), "remind", day))
            if self.star_at is not None:
                found.append((at_local(day, self.star_at, self.tz), "star", day))
        found.append((at_local(self.end, self.post_at, self.tz), "end", self.end))
        found.sort(key=lambda row: row[0])
        return found

    def next_run(self, after: datetime | None) -> datetime | None:
        """The next camp moment strictly after ``after`` (the first one when ``None``)."""
        for moment, _kind, _day in self.moments():
            if after is None or moment > after:
                return moment
        return None

    def numbers(
        self, states: Iterable[tuple[str, Mapping[str, Any]]], days: list[date]
    ) -> dict[str, Any]:
        """The camp's numbers over its own calendar (``days`` is not needed)."""
        return camp_numbers(states, self.dates, complete_rate=self.complete_rate)

    def on_schedule(self, ctx: TickContext) -> Iterable[Decision]:
        decisions: list[Decision] = []
        for moment, kind, day in self.moments():
            if moment != ctx.moment:
                continue
            if kind == "post":
                decisions.extend(self._post(ctx, day))
            elif kind == "remind":
                decisions.extend(self._remind(ctx, day))
            elif kind == "star":
                decisions.extend(self._star(ctx, day))
            else:
                decisions.extend(self._end(ctx))
        return decisions

    def _group(self, ctx: TickContext) -> Group | None:
        for group in ctx.community.groups:
            if group.key == self.group:
                return group
        return None

    def _group_post(
        self, ctx: TickContext, text: str, why: str, *parts: str, user: str | None = None
    ) -> SendMessage | None:
        group = self._group(ctx)
        if group is None:
            return None
        caps = ctx.capabilities.get(group.platform)
        if caps is None or not caps.can("send_message"):
            return None
        return SendMessage(
            action_id=stable_id(self.name, *parts),
            platform=group.platform,
            group=group.group_id,
            user=user,
            source=self.source,
            reason=why,
            text=text,
        )

    def _post(self, ctx: TickContext, day: date) -> list[Decision]:
        number = self.day_number(day)
        assert number is not None
        lesson = self.days[number - 1]
        text = self.post.format(
            day=number,
            days=len(self.days),
            lesson=lesson.lesson,
            task=lesson.task,
            tag=lesson.homework_tag,
        )
        post = self._group_post(ctx, text, f"camp day {number}", "post", day.isoformat())
        if post is None:
            return []
        return [
            Decision(
                source=self.source,
                explanation=f"posted the lesson of day {number} ({day})",
                actions=(post,),
            )
        ]

    def participants(self, ctx: TickContext) -> list[tuple[Member, Mapping[str, Any]]]:
        """The camp's members who have not left, with what the camp remembers, by id."""
        states = dict(ctx.rule_states(self.name))
        found: dict[str, tuple[Member, Mapping[str, Any]]] = {}
        if self.cohort == "group":
            for member, _state in ctx.members():
                if self.group in ctx.groups_of(member.member_id):
                    state = states.get(member.member_id, {})
                    found[member.member_id] = (member, {**state, "enrolled": True})
        for member_id, state in states.items():
            if member_id in found or not state.get("enrolled"):
                continue
            known = ctx.member(member_id)
            if known is not None:
                found[member_id] = (known, state)
        return [found[key] for key in sorted(found) if not gone(found[key][0])]

    def _remind(self, ctx: TickContext, day: date) -> list[Decision]:
        number = self.day_number(day)
        assert number is not None
        group = self._group(ctx)
        decisions: list[Decision] = []
        for member, state in self.participants(ctx):
            if day.isoformat() in _done_days(state):
                continue
            shown = shown_name(member, state)
            text = self.reminder.format(
                name=shown,
                mention=mention(member.display_name, shown),
                day=number,
                days=len(self.days),
                command=self.done_command,
            )
            actions, fallbacks = reach(
                ctx,
                self.name,
                member,
                text,
                "camp task reminder",
                "remind",
                day.isoformat(),
                state=state,
                groups=(group,) if group is not None else (),
            )
            if actions:
                decisions.append(
                    Decision(
                        source=self.source,
                        explanation=f"task of day {number} ({day}) not done yet: reminded",
                        actions=actions,
                        fallbacks=fallbacks,
                        member=member.member_id,
                    )
                )
        return decisions

    def choose_star(
        self, entries: Sequence[tuple[str, Mapping[str, Any]]], reactions: Mapping[str, int]
    ) -> str | None:
        """The star among ``(member, homework record)``; ties go to the earliest."""
        best: tuple[Any, ...] | None = None
        chosen: str | None = None
        for member_id, record in entries:
            at = str(record.get("at", ""))
            length = record.get("length")
            length = length if type(length) is int else 0
            if self.star_rule == "first":
                score: tuple[Any, ...] = (0,)
            elif self.star_rule == "longest":
                score = (-length,)
            else:
                score = (-reactions.get(str(record.get("id")), 0),)
            key = (*score, at, member_id)
            if best is None or key < best:
                best, chosen = key, member_id
        return chosen

    def _star(self, ctx: TickContext, day: date) -> list[Decision]:
        number = self.day_number(day)
        assert number is not None
        key = day.isoformat()
        entries: list[tuple[str, Mapping[str, Any]]] = []
        people: dict[str, Member] = {}
        for member, state in self.participants(ctx):
            record = _homework(state).get(key)
            if isinstance(record, Mapping):
                entries.append((member.member_id, record))
                people[member.member_id] = member
        if not entries:
            return []
        ids = {str(record.get("id")): member_id for member_id, record in entries}
        reactions: dict[str, int] = {}
        if self.star_rule == "most_reactions":
            for reactor, state in ctx.rule_states(self.name):
                for message_id in _days_of(state, "reacted"):
                    if message_id in ids and ids[message_id] != reactor:
                        reactions[message_id] = reactions.get(message_id, 0) + 1
        chosen = self.choose_star(entries, reactions)
        assert chosen is not None
        member = people[chosen]
        shown = shown_name(member)
        text = self.star.format(name=shown, mention=mention(member.display_name, shown), day=number)
        post = self._group_post(ctx, text, "star of the day", "star", key)
        awards: tuple[AwardPoints, ...] = ()
        if self.star_points > 0:
            awards = (
                AwardPoints(
                    member=chosen,
                    points=self.star_points,
                    reason="camp_star",
                    key=f"camp:{self.name}:star:{key}",
                ),
            )
        return [
            Decision(
                source=self.source,
                explanation=f"star of day {number} ({key}) by {self.star_rule}: {chosen}",
                actions=(post,) if post is not None else (),
                awards=awards,
                member=chosen,
            )
        ]

    def _end(self, ctx: TickContext) -> list[Decision]:
        people = self.participants(ctx)
        numbers = camp_numbers(
            [(m.member_id, s) for m, s in people],
            self.dates,
            complete_rate=self.complete_rate,
        )
        group = self._group(ctx)
        decisions: list[Decision] = []
        for member, state in people:
            rate = numbers["completion"].get(member.member_id, 0.0)
            if rate < self.complete_rate:
                continue
            shown = shown_name(member, state)
            text = self.certificate.format(
                name=shown,
                mention=mention(member.display_name, shown),
                rate=_percent(rate),
                days=len(self.days),
            )
            actions, fallbacks = reach(
                ctx,
                self.name,
                member,
                text,
                "camp certificate",
                "certificate",
                self.end.isoformat(),
                state=state,
                groups=(group,) if group is not None else (),
            )
            if actions:
                decisions.append(
                    Decision(
                        source=self.source,
                        explanation=f"completed the camp ({_percent(rate)}%): certificate",
                        actions=actions,
                        fallbacks=fallbacks,
                        member=member.member_id,
                    )
                )
        report = self._report(ctx, numbers)
        if report is not None:
            decisions.append(
                Decision(
                    source=self.source,
                    explanation=(
                        f"camp over: {numbers['completed']} of {numbers['enrolled']} completed"
                    ),
                    actions=(report,),
                )
            )
        return decisions

    def report_text(self, numbers: Mapping[str, Any]) -> str:
        lines = [
            self.report.format(
                camp=self.name,
                enrolled=numbers["enrolled"],
                completed=numbers["completed"],
                homework_rate=_percent(numbers["homework_overall"]),
            )
        ]
        for n, day in enumerate(self.dates, start=1):
            key = day.isoformat()
            lines.append(
                f"{n}. {key}: {_percent(numbers['done_rate'][key])}% / "
                f"{_percent(numbers['homework_rate'][key])}%"
            )
        return "\n".join(lines)

    def _report(self, ctx: TickContext, numbers: Mapping[str, Any]) -> Action | None:
        text = self.report_text(numbers)
        why = "camp completion report"
        if self.operator_group:
            for group in ctx.community.groups:
                if group.key != self.operator_group:
                    continue
                caps = ctx.capabilities.get(group.platform)
                if caps is not None and caps.can("send_message"):
                    return SendMessage(
                        action_id=stable_id(self.name, "report", self.end.isoformat()),
                        platform=group.platform,
                        group=group.group_id,
                        source=self.source,
                        reason=why,
                        text=text,
                    )
        if self.operator:
            platform, sep, user = self.operator.partition(":")
            if not sep:
                camp = self._group(ctx)
                platform, user = (camp.platform if camp is not None else ""), self.operator
            caps = ctx.capabilities.get(platform)
            if caps is not None and caps.can("send_direct_message"):
                return SendDirectMessage(
                    action_id=stable_id(self.name, "report", self.end.isoformat(), "dm"),
                    platform=platform,
                    user=user,
                    source=self.source,
                    reason=why,
                    text=text,
                )
        return None

    def funnel(
        self, states: Iterable[tuple[str, Mapping[str, Any]]], days: list[date]
    ) -> dict[str, int]:
        """The report's funnel: members signed up (enrolled), who took part (did a
        day's task or handed in homework at least once) and who completed."""
        rows = list(states)
        found = camp_numbers(rows, self.dates, complete_rate=self.complete_rate)
        took_part = sum(
            1
            for _m, state in rows
            if state.get("enrolled") and (_done_days(state) or _homework(state))
        )
        return {
            "signed up": found["enrolled"],
            "took part": took_part,
            "completed": found["completed"],
        }


def _read_days(reader: CampaignSettings) -> tuple[CampDay, ...]:
    value = reader.raw("days", None)
    expected = "a list of tables like { lesson = '...', task = '...', homework_tag = '#作业1' }"
    if not isinstance(value, list | tuple) or not value:
        raise reader.fail("days", expected, value)
    found: list[CampDay] = []
    for item in value:
        if not isinstance(item, Mapping) or set(item) - {"lesson", "task", "homework_tag"}:
            raise reader.fail("days", expected, item)
        parts = [item.get(k, "") for k in ("lesson", "task", "homework_tag")]
        if not all(isinstance(p, str) for p in parts):
            raise reader.fail("days", expected, item)
        lesson, task, tag = (str(p).strip() for p in parts)
        if not (lesson or task):
            raise reader.fail("days", expected, item)
        found.append(CampDay(lesson, task, tag))
    return tuple(found)
