# ruff: noqa: RUF001
"""The ``recall`` campaign type: bring back members who went silent.

Every day at ``at`` (local time), members who have not left and whose last
activity (else the moment they joined) is at least ``silent_days`` old get
``message`` by direct message where the platform allows, else a mention in a
group they are in; a member is contacted at most once every ``every_days`` days
and at most ``max_tries`` times in all. ``/stop_recall`` stops it for good. A
member active again within ``return_days`` of a recall counts as returned.

What the campaign remembers about a member (plain JSON)::

    {"tries": 2, "last": "2026-03-08T23:00:00+00:00", "contacts": ["...", "..."],
     "returned": "2026-03-09T10:00:00+00:00" or None, "returns": 1,
     "opted_out": false, "gave_up": false}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

import attrs

from communitykit.builtins.campaigns._camp import (
    at_local,
    gone,
    reach,
    read_clock,
    read_command,
    shown_name,
)
from communitykit.builtins.campaigns._settings import CampaignSettings
from communitykit.builtins.rules._entry import mention, parse_time
from communitykit.model import (
    Action,
    CommandInvoked,
    Decision,
    RuleContext,
    SendDirectMessage,
    SendMessage,
    TickContext,
)

__all__ = ["RecallCampaign", "recall_numbers"]

_MESSAGE = "{name}，好久不见！你已经 {days} 天没来群里了，大家都很想你 😊"
_STOPPED = "{name}，好的，以后不会再打扰你了。"
_ACTIVITY = frozenset({"message_posted", "command_invoked", "reaction_added"})


def _segment(value: object, reader: CampaignSettings) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise reader.fail("segment", "a segment name or expression", value)
    return value.strip()


def _count(value: object) -> int:
    return value if type(value) is int and value >= 0 else 0


def recall_numbers(states: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """``contacted`` (members contacted at least once), ``returned`` (of them, active
    again within the return window of a recall), ``return_rate``, ``opted_out``,
    ``gave_up`` (contacted the most times and not returned) and ``messages`` (recalls
    sent in all)."""
    contacted = returned = opted_out = gave_up = messages = 0
    for _member_id, state in states:
        tries = _count(state.get("tries"))
        messages += tries
        contacted += tries > 0
        returned += tries > 0 and _count(state.get("returns")) > 0
        opted_out += state.get("opted_out") is True
        gave_up += state.get("gave_up") is True
    return {
        "contacted": contacted,
        "returned": returned,
        "return_rate": returned / contacted if contacted else 0.0,
        "opted_out": opted_out,
        "gave_up": gave_up,
        "messages": messages,
    }


@attrs.frozen(kw_only=True)
class RecallCampaign:
    """Recall silent members; see ``docs/campaigns-cohorts.md``."""

    name: str = "recall"
    silent_days: int = 14
    every_days: int = 7
    max_tries: int = 3
    return_days: int = 7
    at: time = time(19, 0)
    stop_command: str = "stop_recall"
    groups: frozenset[str] = frozenset()
    timezone: str = "UTC"
    tz: tzinfo = attrs.field(default=UTC, eq=False, repr=False)
    message: str = _MESSAGE
    stopped: str = _STOPPED
    #: recall the members of this segment (``"silent or churned"``, say) instead
    #: of those silent for ``silent_days``
    segment: str | None = None

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> RecallCampaign:
        reader = CampaignSettings(settings, "recall")
        zone, tz = reader.timezone()
        campaign = cls(
            name=reader.name(),
            silent_days=reader.integer("silent_days", 14, minimum=1),
            every_days=reader.integer("every_days", 7, minimum=1),
            max_tries=reader.integer("max_tries", 3, minimum=1),
            return_days=reader.integer("return_days", 7, minimum=1),
            at=read_clock(reader, "at", "19:00"),
            stop_command=read_command(reader, "stop_command", "stop_recall"),
            groups=frozenset(reader.group_keys()),
            timezone=zone,
            tz=tz,
            message=reader.template("message", _MESSAGE, ("name", "mention", "days")),
            stopped=reader.template("stopped", _STOPPED, ("name", "mention")),
            segment=_segment(reader.raw("segment"), reader),
        )
        reader.done()
        return campaign

    @property
    def source(self) -> str:
        return f"campaign:{self.name}"

    @property
    def event_types(self) -> frozenset[str]:
        return _ACTIVITY

    # --------------------------------------------------------------- events

    def on_event(self, ctx: RuleContext) -> Decision | None:
        event = ctx.event
        state = ctx.rule_state(self.name)
        if isinstance(event, CommandInvoked) and (
            event.command.casefold() == self.stop_command.casefold()
        ):
            name = ctx.member.display_name.strip() or event.user
            text = self.stopped.format(name=name, mention=mention(ctx.member.display_name, name))
            if event.group is None:
                reply: Action = ctx.action(
                    SendDirectMessage, self.source, "recall stopped", 0, text=text
                )
            else:
                reply = ctx.action(SendMessage, self.source, "recall stopped", 0, text=text)
            return Decision(
                source=self.source,
                explanation="asked never to be recalled again",
                actions=(reply,),
                state={**state, "opted_out": True},
            )
        last = parse_time(state.get("last"))
        if last is None or state.get("returned_for") == state.get("last"):
            return None
        if not last < event.at <= last + timedelta(days=self.return_days):
            return None
        return Decision(
            source=self.source,
            explanation=f"active again {event.at.isoformat()} after the recall of {last}",
            state={
                **state,
                "returned": event.at.astimezone(UTC).isoformat(),
                "returned_for": state.get("last"),
                "returns": _count(state.get("returns")) + 1,
                "gave_up": False,
            },
        )

    # ------------------------------------------------------------- schedule

    def next_run(self, after: datetime | None) -> datetime | None:
        """The next daily ``at`` moment strictly after ``after`` (in UTC)."""
        if after is None:
            return None
        local = after.astimezone(self.tz).date()
        moments = [at_local(local + timedelta(days=n), self.at, self.tz) for n in (-1, 0, 1, 2)]
        return min(m for m in moments if m > after)

    def due(
        self,
        state: Mapping[str, Any],
        last_active: datetime | None,
        now: datetime,
        *,
        in_segment: bool = False,
    ) -> int | None:
        """Days of silence when the member is to be recalled at ``now``, else ``None``
        (``in_segment``: the member is in the campaign's segment, which then stands
        for ``silent_days``)."""
        if state.get("opted_out") is True or last_active is None:
            return None
        if _count(state.get("tries")) >= self.max_tries:
            return None
        silent = (now - last_active).days
        if not in_segment and silent < self.silent_days:
            return None
        last = parse_time(state.get("last"))
        if last is not None and now - last < timedelta(days=self.every_days) - timedelta(hours=2):
            return None  # an hour either way for clock changes
        return silent

    def numbers(
        self, states: Iterable[tuple[str, Mapping[str, Any]]], days: list[date]
    ) -> dict[str, Any]:
        """Contacted, returned, the return rate, opted out, gave up."""
        return recall_numbers(states)

    def on_schedule(self, ctx: TickContext) -> Iterable[Decision]:
        states = dict(ctx.rule_states(self.name))
        groups = [g for g in ctx.community.groups if not self.groups or g.key in self.groups]
        decisions: list[Decision] = []
        now = ctx.moment
        inside = None if self.segment is None else ctx.segment(self.segment)
        if self.segment is not None and inside is None:
            return decisions  # no segments known here: nobody to recall
        for member, live in sorted(ctx.members(), key=lambda row: row[0].member_id):
            if gone(member):
                continue
            if inside is not None and member.member_id not in inside:
                continue
            if self.groups and not (ctx.groups_of(member.member_id) & self.groups):
                continue
            state = states.get(member.member_id, {})
            last_active = live.last_active_at or member.joined_at
            silent = self.due(state, last_active, now, in_segment=inside is not None)
            if silent is None:
                continue
            shown = shown_name(member)
            text = self.message.format(
                name=shown, mention=mention(member.display_name, shown), days=silent
            )
            actions, fallbacks = reach(
                ctx,
                self.name,
                member,
                text,
                "recall a silent member",
                "recall",
                now.isoformat(),
                groups=groups,
            )
            if not actions:
                continue
            tries = _count(state.get("tries")) + 1
            contacts = [c for c in state.get("contacts", ()) if isinstance(c, str)]
            moment = now.astimezone(UTC).isoformat()
            decisions.append(
                Decision(
                    source=self.source,
                    explanation=f"silent for {silent} days: recall {tries} of {self.max_tries}",
                    actions=actions,
                    fallbacks=fallbacks,
                    member=member.member_id,
                    state={
                        **state,
                        "tries": tries,
                        "last": moment,
                        "contacts": [*contacts, moment],
                        "gave_up": tries >= self.max_tries,
                    },
                )
            )
        return decisions

    def funnel(
        self, states: Iterable[tuple[str, Mapping[str, Any]]], days: list[date]
    ) -> dict[str, int]:
        """The report's funnel: members reached (contacted) and who responded
        (active again within the return window)."""
        found = recall_numbers(states)
        return {"reached": found["contacted"], "responded": found["returned"]}
