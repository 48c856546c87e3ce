"""Segments of a running community: the configured ones, evaluated against the engine.

:class:`SegmentBook` holds every segment a community knows by name — the
built-ins and its ``[segments.<name>]`` tables (built with the segment types
plugins offer) — and evaluates a name or an inline expression against the
engine's members at a moment (:meth:`SegmentBook.members`). Activity over a
period (``contributors``, ``posted``) is counted from the stored events of that
period only (:func:`count_activity`), one scan for all the periods asked.
"""

from __future__ import annotations

import csv
import difflib
import io
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from communitykit._errors import CommunityKitError
from communitykit._plugin_types import SegmentType
from communitykit.config import AutoTagConfig, CommunityConfig, ConfigError, _KnownNames
from communitykit.model import (
    Decision,
    IdentityGraph,
    LifecycleSettings,
    MemberStatus,
    MessagePosted,
    ReactionAdded,
    RuleContext,
    Stage,
    TickContext,
)
from communitykit.model._lifecycle import lifecycle_stage
from communitykit.model._segments import (
    BUILTIN_SEGMENTS,
    Activity,
    MemberView,
    Named,
    Period,
    Segment,
    SegmentError,
    build,
    builtin_segment,
    evaluate,
    parse_expression,
)
from communitykit.store import Store

if TYPE_CHECKING:
    from communitykit.engine import Engine

__all__ = [
    "AutoTags",
    "SegmentBook",
    "UnknownSegment",
    "count_activity",
    "export_csv",
    "member_stage",
]


class UnknownSegment(CommunityKitError):
    """A segment name (or expression) that names no segment."""


class SegmentBook:
    """Every segment a community knows by name. See the module documentation."""

    def __init__(self, config: CommunityConfig, types: Mapping[str, SegmentType]) -> None:
        self.config = config
        self.lifecycle = config.lifecycle
        self._types = dict(types)
        self._known = _KnownNames(
            tiers=frozenset(tier.name for tier in config.ladder.tiers),
            groups=frozenset(group.key for group in config.community.groups),
            segments=frozenset(config.segments),
        )
        self._built: dict[str, Segment] = {}
        for name in config.segments:
            self._build(name)

    # ---------------------------------------------------------------- names

    def names(self) -> list[str]:
        """The built-in segment names, then the configured ones in file order."""
        configured = list(self.config.segments)
        return [n for n in BUILTIN_SEGMENTS if n not in configured] + configured

    def definition(self, name: str) -> str:
        """How segment ``name`` is defined, in words."""
        entry = self.config.segments.get(name)
        if entry is not None:
            return entry.definition
        lifecycle = self.lifecycle
        described = {
            "all": "everyone who has not left or been banned",
            "new": f"joined less than {lifecycle.new_days} days ago",
            "active": f"active in the last {lifecycle.active_days} days (and not recalled)",
            "recalled": f"back after more than {lifecycle.active_days} days without activity, "
            f"less than {lifecycle.recalled_days} days ago",
            "silent": "quiet, but neither new nor churned",
            "churned": f"nothing for more than {lifecycle.churned_days} days",
            "left": "left the community or banned",
            "paying": "a paid membership valid today",
            "admins": "owners and admins",
            "kols": "members with the kol role",
            "contributors": "messages drew at least 3 replies and reactions from others "
            "in the last 30 days",
        }
        return described.get(name, "built-in")

    def get(self, name: str) -> Segment:
        """The segment ``name``, or an expression of names (``"active and not tag:x"``)."""
        if name in self._built:
            return self._built[name]
        try:
            expr = parse_expression(name)
        except SegmentError as exc:
            raise UnknownSegment(f"cannot read segment {name!r}: {exc}") from None
        for part in sorted(expr.names()):
            problem = self._known.problem(part)
            if problem is not None:
                raise UnknownSegment(problem)
        return build(expr, self._resolve)

    def _resolve(self, name: str) -> Segment:
        if name in self.config.segments:
            return self._build(name)
        found = builtin_segment(name)
        if found is None:  # checked before, kept for a clear message
            close = difflib.get_close_matches(name, self.names(), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise UnknownSegment(f"unknown segment {name!r}{hint}")
        return found

    def _build(self, name: str) -> Segment:
        built = self._built.get(name)
        if built is not None:
            return built
        entry = self.config.segments[name]
        path = str(self.config.path) if self.config.path is not None else "community.toml"
        if entry.where is not None:
            definition = build(parse_expression(entry.where), self._resolve)
        else:
            segment_type = self._types.get(str(entry.type))
            if segment_type is None:
                known = ", ".join(sorted(self._types)) or "none"
                raise ConfigError(
                    path,
                    f"{entry.key}.type",
                    detail=f"unknown segment type {entry.type!r} (known: {known})",
                )
            try:
                definition = segment_type.factory(entry.settings)
            except (CommunityKitError, ValueError, TypeError, KeyError) as exc:
                raise ConfigError(path, entry.key, detail=str(exc)) from None
            if not isinstance(definition, Segment):
                raise ConfigError(
                    path,
                    entry.key,
                    detail=f"segment type {entry.type!r} made {definition!r}, not a Segment",
                )
        segment = Named(name, definition)
        self._built[name] = segment
        return segment

    # ---------------------------------------------------------------- evaluation

    def views(
        self, engine: Engine, now: datetime, periods: Iterable[Period] = ()
    ) -> list[MemberView]:
        """Every member as segments see them at ``now`` (with activity in ``periods``)."""
        wanted = frozenset(periods)
        activity = count_activity(engine.store, engine.graph, wanted, now, engine.community.tz)
        today = now.astimezone(engine.community.tz).date()
        states = engine.states
        groups_of = engine.moderation.member_groups
        base = engine.ladder.base.name
        settings = self.lifecycle
        views: list[MemberView] = []
        for member in engine.graph:
            member_id = member.member_id
            state = states.get(member_id)
            _, returned_at = engine.stage_record(member_id)
            views.append(
                MemberView(
                    member=member,
                    state=state,
                    stage=lifecycle_stage(member, state, now, settings, returned_at),
                    tier=state.tier if state is not None else base,
                    today=today,
                    groups=groups_of(member_id),
                    activity=(
                        {p: found[member_id] for p, found in activity.items() if member_id in found}
                        if activity
                        else {}
                    ),
                )
            )
        return views

    def members(self, engine: Engine, name: str, now: datetime) -> frozenset[str]:
        """The ids of the members in segment ``name`` (or an expression) at ``now``."""
        segment = self.get(name)
        return evaluate(segment, self.views(engine, now, segment.periods()))

    def all_members(self, engine: Engine, now: datetime) -> dict[str, frozenset[str]]:
        """Every named segment's members at ``now`` (one scan of the events)."""
        segments = {name: self.get(name) for name in self.names()}
        periods = frozenset().union(*(s.periods() for s in segments.values()))
        views = self.views(engine, now, periods)
        return {name: evaluate(segment, views) for name, segment in segments.items()}


def member_stage(
    engine: Engine, member_id: str, now: datetime, settings: LifecycleSettings
) -> Stage:
    """The member's stage at ``now`` from the engine's record, state and last return."""
    member = engine.graph.get(member_id)
    state = engine.states.get(member_id)
    _, returned_at = engine.stage_record(member_id)
    return lifecycle_stage(member, state, now, settings, returned_at)


def count_activity(
    store: Store,
    graph: IdentityGraph,
    periods: Iterable[Period],
    now: datetime,
    tz: tzinfo,
) -> dict[Period, dict[str, Activity]]:
    """Each member's activity in each period ending at ``now``, from the stored events.

    Only events since the earliest period's start are read. A reply counts for
    the author of the message it answers when that message is in what was read;
    a reaction counts for its ``to_user`` (else the author of the message, when
    read). Nobody's responses to themselves count.
    """
    starts = {period: period.start(now, tz) for period in periods}
    if not starts:
        return {}
    earliest = min(starts.values())
    counts: dict[Period, dict[str, dict[str, Any]]] = {
        period: defaultdict(
            lambda: {"messages": 0, "media": defaultdict(int), "replies": 0, "reactions": 0}
        )
        for period in starts
    }
    authors: dict[tuple[str, str], str] = {}  # (platform, message id) -> member
    member_id_of = graph.member_id_of
    for event in store.iter_events_since(earliest):
        if event.at > now:
            continue
        if isinstance(event, MessagePosted):
            author = member_id_of(event.platform, event.user)
            if author is None:
                continue
            authors[(event.platform, event.message_id)] = author
            answered = authors.get((event.platform, event.reply_to)) if event.reply_to else None
            for period, start in starts.items():
                if event.at < start:
                    continue
                mine = counts[period][author]
                mine["messages"] += 1
                if event.media is not None:
                    mine["media"][event.media.value] += 1
                if answered is not None and answered != author:
                    counts[period][answered]["replies"] += 1
        elif isinstance(event, ReactionAdded):
            reactor = member_id_of(event.platform, event.user)
            if event.to_user:
                target = member_id_of(event.platform, event.to_user)
            else:
                target = authors.get((event.platform, event.message_id))
            if target is None or target == reactor:
                continue
            for period, start in starts.items():
                if event.at >= start:
                    counts[period][target]["reactions"] += 1
    return {
        period: {
            member_id: Activity(
                messages=c["messages"],
                media=dict(c["media"]),
                replies=c["replies"],
                reactions=c["reactions"],
            )
            for member_id, c in by_member.items()
        }
        for period, by_member in counts.items()
    }


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: str) -> str:
    """A CSV cell a spreadsheet will not run as a formula."""
    return "'" + value if value.startswith(_FORMULA_START) else value


EXPORT_COLUMNS = ("member", "display_name", "platforms", "tier", "stage", "balance", "tags")


def export_csv(
    engine: Engine, member_ids: Iterable[str], now: datetime, settings: LifecycleSettings
) -> str:
    """The members as CSV: one row each (by member id), the columns of
    :data:`EXPORT_COLUMNS`; cells that would start a formula get a ``'`` first."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for member_id in sorted(member_ids):
        member = engine.graph.get(member_id)
        row = (
            member_id,
            member.display_name,
            " ".join(sorted({i.platform for i in member.identities})),
            engine.tier(member_id),
            member_stage(engine, member_id, now, settings).value,
            str(engine.balance(member_id)),
            " ".join(sorted(member.tags)),
        )
        writer.writerow([_cell(value) for value in row])
    return out.getvalue()


class AutoTags:
    """The ``[[auto_tags]]`` of a community, run as a campaign named ``auto_tags``.

    Every day at midnight in the community's time zone (and so in ``simulate``
    too), each entry's segment is evaluated; its tag is added to the current
    members in it who lack it and, with ``remove = true``, taken from those who
    have it and are no longer in it. The changes are decisions like any
    campaign's: stored with the member and in the audit of what happened.
    """

    name = "auto_tags"
    event_types: frozenset[str] = frozenset()

    def __init__(self, book: SegmentBook, entries: Iterable[AutoTagConfig], tz: tzinfo) -> None:
        self.book = book
        self.entries = tuple(entries)
        self.tz = tz
        self.engine: Engine | None = None
        self._segments = [(entry, book.get(entry.expression)) for entry in self.entries]

    @property
    def source(self) -> str:
        return f"campaign:{self.name}"

    def on_event(self, ctx: RuleContext) -> Decision | None:
        return None

    def next_run(self, after: datetime | None) -> datetime | None:
        if after is None:
            return None
        day = after.astimezone(self.tz).date() + timedelta(days=1)
        return datetime(day.year, day.month, day.day, tzinfo=self.tz)

    def changes(self, engine: Engine, now: datetime) -> dict[str, tuple[set[str], set[str]]]:
        """Per member: the tags to add and to remove at ``now``."""
        periods = frozenset().union(*(segment.periods() for _, segment in self._segments))
        views = [
            view
            for view in self.book.views(engine, now, periods)
            if view.member.status not in (MemberStatus.LEFT, MemberStatus.BANNED)
        ]
        found: dict[str, tuple[set[str], set[str]]] = {}
        for entry, segment in self._segments:
            inside = evaluate(segment, views)
            for view in views:
                has = entry.tag in view.member.tags
                member_id = view.member_id
                if member_id in inside and not has:
                    found.setdefault(member_id, (set(), set()))[0].add(entry.tag)
                elif entry.remove and has and member_id not in inside:
                    found.setdefault(member_id, (set(), set()))[1].add(entry.tag)
        return found

    def on_schedule(self, ctx: TickContext) -> Iterable[Decision]:
        engine = self.engine
        if engine is None:
            return []
        now = ctx.moment or ctx.now
        decisions = []
        for member_id, (add, remove) in sorted(self.changes(engine, now).items()):
            remove -= add  # two entries disagree: adding wins
            parts = [f"+{tag}" for tag in sorted(add)] + [f"-{tag}" for tag in sorted(remove)]
            decisions.append(
                Decision(
                    source=self.source,
                    explanation="automatic tags: " + " ".join(parts),
                    member=member_id,
                    add_tags=frozenset(add),
                    remove_tags=frozenset(remove),
                )
            )
        return decisions

    def numbers(self, states: Iterable[Any], days: list[Any]) -> dict[str, Any]:
        """How many current members carry each automatic tag."""
        engine = self.engine
        if engine is None:
            return {}
        return {
            f"tagged {entry.tag}": sum(
                1
                for member in engine.graph
                if entry.tag in member.tags
                and member.status not in (MemberStatus.LEFT, MemberStatus.BANNED)
            )
            for entry in self.entries
        }
