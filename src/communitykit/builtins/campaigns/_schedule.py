"""The ``schedule`` campaign type: content sent at cron moments (a daily SOP).

At each moment of ``when`` (a five-field cron in the campaign's time zone) it
posts ``text`` in each of ``groups`` and/or sends it by direct message to each
active member of ``segment`` (where the platform allows direct messages).

After downtime the engine runs the moments it missed. A moment later than
``grace`` is handled by ``missed``: ``"skip"`` sends nothing for it (the
schedule moves on), ``"catch_up"`` sends only the latest moment missed, once.
Action ids derive from the campaign, the group or member and the moment, so a
moment is never sent twice.

What it remembers about a member it sent the content to by direct message:
``{"sent": ["2026-03-08", ...]}``, the local days of the last 62 days before the
latest (the report's funnel counts them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta, tzinfo
from typing import Any, ClassVar, Literal

import attrs

from communitykit._errors import ModelError
from communitykit.builtins.campaigns._cron import CronSchedule
from communitykit.builtins.campaigns._days import any_in, remember_day, remembered_days
from communitykit.builtins.campaigns._settings import CampaignSettings
from communitykit.model import (
    Decision,
    MemberStatus,
    RuleContext,
    SendDirectMessage,
    SendMessage,
    TickContext,
    stable_id,
)

__all__ = ["ScheduleCampaign"]

_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
Missed = Literal["skip", "catch_up"]


@attrs.frozen(kw_only=True)
class ScheduleCampaign:
    """Sends content at cron moments; see ``docs/campaigns-rituals.md``."""

    name: str = "schedule"
    when: CronSchedule
    text: str
    groups: tuple[str, ...] = ()
    segment: str | None = None
    missed: Missed = "skip"
    grace: timedelta = timedelta(minutes=10)
    weekday_names: tuple[str, ...] = _WEEKDAYS
    timezone: str = "UTC"
    tz: tzinfo = attrs.field(eq=False, repr=False)
    event_types: ClassVar[frozenset[str]] = frozenset()  # no events: moments only

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> ScheduleCampaign:
        reader = CampaignSettings(settings, "schedule")
        if not reader.has("when"):
            raise reader.fail("when", "a cron expression like '0 8 * * *'", None)
        try:
            when = CronSchedule.parse(reader.raw("when"))
        except ModelError as exc:
            raise ModelError(f"schedule campaign: when: {exc}") from None
        if not reader.has("text"):
            raise reader.fail("text", "the text to send", None)
        text = reader.template("text", "", ("date", "weekday"))
        if not text.strip():
            raise reader.fail("text", "a text that is not empty", text)
        groups = reader.group_keys()
        segment = reader.raw("segment")
        if segment is not None and (not isinstance(segment, str) or not segment.strip()):
            raise reader.fail("segment", "a segment name or expression", segment)
        if not groups and segment is None:
            raise reader.fail("groups", "set (or segment), so the text goes somewhere", None)
        missed = reader.raw("missed", "skip")
        if missed not in ("skip", "catch_up"):
            raise reader.fail("missed", "'skip' or 'catch_up'", missed)
        names = reader.texts("weekday_names", _WEEKDAYS)
        if len(names) != 7:
            raise reader.fail("weekday_names", "7 names, Monday first", list(names))
        timezone, tz = reader.timezone()
        campaign = cls(
            name=reader.name(),
            when=when,
            text=text,
            groups=groups,
            segment=segment,
            missed="catch_up" if missed == "catch_up" else "skip",
            grace=reader.duration("grace", timedelta(minutes=10)),
            weekday_names=names,
            timezone=timezone,
            tz=tz,
        )
        reader.done()
        return campaign

    @property
    def source(self) -> str:
        return f"campaign:{self.name}"

    def on_event(self, ctx: RuleContext) -> Decision | None:
        """Nothing happens on events: the campaign only runs at its moments."""
        return None

    def next_run(self, after: datetime | None) -> datetime | None:
        """The first moment of ``when`` strictly after ``after``, in UTC."""
        if after is None:
            return None
        return self.when.next_after(after, self.tz)

    def due(self, now: datetime) -> datetime | None:
        """The moment to send at ``now``: the latest one at or before it, unless it
        is later than ``grace`` and missed moments are skipped."""
        moment = self.when.latest_at_or_before(now, self.tz)
        if moment is None:
            return None
        if self.missed == "skip" and now - moment > self.grace:
            return None
        return moment

    def on_schedule(self, tick: TickContext) -> Iterable[Decision]:
        moment = self.due(tick.now)
        if moment is None:
            return []
        local = moment.astimezone(self.tz)
        text = self.text.format(
            date=local.date().isoformat(), weekday=self.weekday_names[local.weekday()]
        )
        stamp = moment.isoformat()
        decisions: list[Decision] = []
        posts = []
        for key in self.groups:
            group = next((g for g in tick.community.groups if g.key == key), None)
            if group is None:
                continue
            posts.append(
                SendMessage(
                    action_id=stable_id(self.name, f"group:{key}", stamp),
                    platform=group.platform,
                    group=group.group_id,
                    source=self.source,
                    reason=f"scheduled content ({self.when.text})",
                    text=text,
                )
            )
        if posts:
            decisions.append(
                Decision(
                    source=self.source,
                    explanation=f"scheduled moment {stamp}: posted in {len(posts)} group(s)",
                    actions=tuple(posts),
                )
            )
        if self.segment is not None:
            decisions += self._direct(tick, text, stamp, local.date())
        return decisions

    def _direct(self, tick: TickContext, text: str, stamp: str, day: date) -> list[Decision]:
        segment = self.segment or "all"
        kind, _, value = segment.partition(":")
        inside = None if segment == "all" else tick.segment(segment)
        if inside is None and segment != "all" and kind not in ("tier", "tag"):
            return []  # no segments known here (a bare tick source): nobody to reach
        remembered = dict(tick.rule_states(self.name))
        decisions: list[Decision] = []
        for member, state in sorted(tick.members(), key=lambda pair: pair[0].member_id):
            if member.status is not MemberStatus.ACTIVE:
                continue
            if inside is not None:
                wanted = member.member_id in inside
            else:  # the segments a bare tick source can still tell
                wanted = (kind != "tier" or state.tier == value) and (
                    kind != "tag" or value in member.tags
                )
            if not wanted:
                continue
            for platform, user in sorted(member.identities):
                caps = tick.capabilities.get(platform)
                if caps is None or not caps.direct_messages:
                    continue
                if not caps.can("send_direct_message"):
                    continue
                before = remembered.get(member.member_id, {})
                decisions.append(
                    Decision(
                        source=self.source,
                        explanation=f"scheduled moment {stamp}: sent to segment {segment}",
                        actions=(
                            SendDirectMessage(
                                action_id=stable_id(self.name, member.member_id, stamp),
                                platform=platform,
                                user=user,
                                source=self.source,
                                reason=f"scheduled content for {segment} ({self.when.text})",
                                text=text,
                            ),
                        ),
                        member=member.member_id,
                        state={**before, "sent": remember_day(before.get("sent"), day)},
                    )
                )
                break
        return decisions

    def funnel(
        self, states: Iterable[tuple[str, Mapping[str, Any]]], days: list[date]
    ) -> dict[str, int]:
        """The report's funnel, for a campaign with a ``segment``: reached (sent the
        content by direct message on a day of ``days``). Posts in groups reach
        members nobody counts: a campaign with ``groups`` only counts no step."""
        if self.segment is None:
            return {}
        keys = {d.isoformat() for d in days}
        reached = sum(1 for _m, state in states if any_in(remembered_days(state.get("sent")), keys))
        return {"reached": reached}
