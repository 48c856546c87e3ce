"""Built-in campaign types ``giveaway`` (抽奖) and ``red_packet`` (红包).

``giveaway``: a verifiable prize draw. At ``opens`` the campaign posts in its
group the SHA-256 of a secret seed (the commitment); members enter with a
command until ``draws`` (or the draw is over a segment of the active members);
at ``draws`` it picks the winners with :func:`~communitykit.model._draws.draw`
and publishes the seed, so anyone can recompute the result
(:func:`verify`, :func:`verify_draw`), and tells each winner by direct message
(a mention in the group where that cannot be).

``red_packet``: a staff member sends ``/red_packet TOTAL N``; the first ``N``
members to send ``/grab CODE`` each get a random share, the shares summing to
``TOTAL`` (:func:`split`). The points come from the opener unless the packet is
funded by the community. With ``schedule`` (a cron) the campaign opens a packet
funded by the community in ``schedule_group`` at each moment (missed moments:
``missed``, as the ``schedule`` campaign). With ``expires_after`` a packet
closes then: its unclaimed shares go back to the opener who paid for it (a
packet funded by the community records them as unclaimed).

See ``docs/campaigns-giveaways.md``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any, ClassVar, Literal

import attrs

from communitykit._errors import ModelError
from communitykit._plugin_types import CampaignType
from communitykit._secret import Secret
from communitykit.builtins.campaigns._cron import CronSchedule
from communitykit.builtins.campaigns._days import any_in, remember_day, remembered_days
from communitykit.builtins.rules._common import Settings
from communitykit.builtins.rules._entry import mention, parse_time, template
from communitykit.hookspecs import hookimpl
from communitykit.model import (
    Action,
    AwardPoints,
    CommandInvoked,
    Decision,
    Group,
    Member,
    MemberState,
    MemberStatus,
    RuleContext,
    SendDirectMessage,
    SendMessage,
    SpendPoints,
    TickContext,
    stable_id,
)
from communitykit.model._draws import commitment, draw, split, verify, verify_draw
from communitykit.model._time import resolve_timezone

__all__ = [
    "GiveawayCampaign",
    "RedPacketCampaign",
    "commitment",
    "communitykit_campaign_types",
    "draw",
    "split",
    "verify",
    "verify_draw",
]

#: where a giveaway remembers its published result (a pseudo member of its state)
RESULT_KEY = "draw:result"
_MIN_SEED = 16
_COMMAND = re.compile(r"^[^\s/][^\s]*$")


class _Settings(Settings):
    """The settings reader of the rules, speaking of a campaign, and without the
    scope keys only rules take."""

    def __init__(self, settings: Mapping[str, Any], campaign_type: str) -> None:
        super().__init__(settings, campaign_type)
        self._read = {"name"}

    def _fail(self, key: str, expected: str, value: object) -> ModelError:
        return ModelError(f"{self._type} campaign: {key} must be {expected}, got {value!r}")

    def done(self) -> None:
        unknown = sorted(set(self._settings) - self._read)
        if unknown:
            raise ModelError(f"{self._type} campaign: unknown settings: {', '.join(unknown)}")


def _template(reader: Settings, kind: str, key: str, default: str, fields: tuple[str, ...]) -> str:
    try:
        return template(reader, kind, key, default, fields)
    except ModelError as exc:
        raise ModelError(str(exc).replace(f"{kind} rule:", f"{kind} campaign:", 1)) from None


def _command(reader: Settings, kind: str, key: str, default: str) -> str:
    value = reader.text(key, default).strip()
    if not _COMMAND.match(value):
        raise ModelError(
            f"{kind} campaign: {key} must be a command name without '/' or spaces, "
            f"like {default!r}, got {reader.raw(key)!r}"
        )
    return value


def _secret(reader: Settings, kind: str, key: str, *, required: bool) -> Secret | None:
    """A secret setting (a ``Secret`` from the configuration, or a text in code);
    its value is never shown in a message."""
    value = reader.raw(key)
    if value is None:
        if required:
            raise ModelError(f"{kind} campaign: {key} is required (a long random text)")
        return None
    if isinstance(value, str):
        value = Secret(value)
    if not isinstance(value, Secret):
        raise ModelError(f"{kind} campaign: {key} must be a text, got a {type(value).__name__}")
    if len(value.reveal()) < _MIN_SEED:
        raise ModelError(
            f"{kind} campaign: {key} must be at least {_MIN_SEED} characters (a long random "
            f"text nobody can guess), got {len(value.reveal())} characters"
        )
    return value


def _moment(reader: Settings, kind: str, key: str) -> datetime:
    value = reader.raw(key)
    found = value if isinstance(value, datetime) else parse_time(value)
    if found is None or found.tzinfo is None:
        raise ModelError(
            f"{kind} campaign: {key} must be an ISO time with its offset, like "
            f"'2026-03-08T20:00:00-05:00', got {value!r}"
        )
    return found.astimezone(UTC)


def _local(at: datetime, tz: tzinfo) -> str:
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z").strip()


def _reply(ctx: RuleContext, source: str, reason: str, text: str, index: int = 0) -> Action:
    """An answer to the member's command where they sent it."""
    if ctx.event.group is None:
        return ctx.action(SendDirectMessage, source, reason, index, text=text)
    return ctx.action(SendMessage, source, reason, index, text=text)


# ------------------------------------------------------------------ giveaway

_ANNOUNCE_COMMAND = (
    "🎁 Giveaway{prize}: send /{command} before {draws} to enter; {winners} winner(s) "
    "will be drawn. Commitment (SHA-256 of the seed, published after the draw): {commitment}"
)
_ANNOUNCE_SEGMENT = (
    "🎁 Giveaway{prize}: {winners} winner(s) will be drawn at {draws} among the eligible "
    "members. Commitment (SHA-256 of the seed, published after the draw): {commitment}"
)
_RESULT = (
    "🎉 Giveaway{prize}: the winners are {names}. Seed: {seed} (its SHA-256 is the "
    "commitment {commitment}); {count} eligible members, list SHA-256 {eligible_hash}. "
    "Anyone can recompute the draw."
)
_WON = "🎉 {name}, you won the giveaway{prize}! Thank you for taking part."
_WON_IN_GROUP = "🎉 {mention}, you won the giveaway{prize}!"
_WON_FIELDS = ("mention", "name", "prize", "place", "prize_points")
_ENTERED = "{mention}, you are in the giveaway{prize}. Good luck!"
_ALREADY = "{mention}, you have already entered the giveaway{prize}: one entry per member."
_NOT_OPEN = "{mention}, the giveaway{prize} opens at {opens}."
_CLOSED = "{mention}, the giveaway{prize} is closed."
_ANNOUNCE_FIELDS = ("prize", "command", "opens", "draws", "winners", "commitment")
_RESULT_FIELDS = ("prize", "names", "seed", "commitment", "count", "eligible_hash", "winners")
_REPLY_FIELDS = ("mention", "name", "prize", "command", "opens", "draws")

Entry = Literal["command", "segment"]


@attrs.frozen(kw_only=True)
class GiveawayCampaign:
    """A verifiable prize draw; see ``docs/campaigns-giveaways.md``."""

    name: str = "giveaway"
    group: str
    opens: datetime
    draws: datetime
    seed: Secret = attrs.field(repr=False, eq=False)
    winners: int = 3
    entry: Entry = "command"
    command: str = "join_giveaway"
    eligible: str = "all"
    prize: str = ""
    prize_points: int = 0
    notify_winners: bool = True
    won: str = _WON
    won_in_group: str = _WON_IN_GROUP
    announce: str = _ANNOUNCE_COMMAND
    result: str = _RESULT
    entered: str = _ENTERED
    already: str = _ALREADY
    not_open: str = _NOT_OPEN
    closed: str = _CLOSED

    @property
    def event_types(self) -> frozenset[str]:
        return frozenset({"command_invoked"}) if self.entry == "command" else frozenset()

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> GiveawayCampaign:
        kind = "giveaway"
        reader = _Settings(settings, kind)
        opens = _moment(reader, kind, "opens")
        draws = _moment(reader, kind, "draws")
        if draws <= opens:
            raise ModelError(
                f"giveaway campaign: draws must come after opens, got opens={opens.isoformat()} "
                f"and draws={draws.isoformat()}"
            )
        seed = _secret(reader, kind, "seed", required=True)
        assert seed is not None
        group = reader.text("group", "").strip()
        if not group:
            raise ModelError(
                f"giveaway campaign: group must be the key of a configured group, "
                f"got {reader.raw('group')!r}"
            )
        entry = reader.raw("entry", "command")
        if entry not in ("command", "segment"):
            raise ModelError(
                f"giveaway campaign: entry must be 'command' or 'segment', got {entry!r}"
            )
        eligible = reader.text("eligible", "all").strip()
        if entry == "command" and "eligible" in settings:
            raise ModelError(
                "giveaway campaign: eligible applies to entry = 'segment' only "
                "(with entry = 'command' the entrants are eligible)"
            )
        kind_of, _, value = eligible.partition(":")
        if not (eligible == "all" or (kind_of in ("tier", "tag") and value.strip())):
            raise ModelError(
                f"giveaway campaign: eligible must be 'all', 'tier:<name>' or 'tag:<tag>', "
                f"got {eligible!r}"
            )
        default_announce = _ANNOUNCE_COMMAND if entry == "command" else _ANNOUNCE_SEGMENT
        prize = reader.text("prize", "").strip()
        campaign = cls(
            name=reader.name(),
            group=group,
            opens=opens,
            draws=draws,
            seed=seed,
            winners=reader.integer("winners", 3, minimum=1),
            entry="command" if entry == "command" else "segment",
            command=_command(reader, kind, "command", "join_giveaway"),
            eligible=eligible,
            prize=prize,
            prize_points=reader.integer("prize_points", 0, minimum=0),
            notify_winners=reader.flag("notify_winners", True),
            won=_template(reader, kind, "won", _WON, _WON_FIELDS),
            won_in_group=_template(reader, kind, "won_in_group", _WON_IN_GROUP, _WON_FIELDS),
            announce=_template(reader, kind, "announce", default_announce, _ANNOUNCE_FIELDS),
            result=_template(reader, kind, "result", _RESULT, _RESULT_FIELDS),
            entered=_template(reader, kind, "entered", _ENTERED, _REPLY_FIELDS),
            already=_template(reader, kind, "already", _ALREADY, _REPLY_FIELDS),
            not_open=_template(reader, kind, "not_open", _NOT_OPEN, _REPLY_FIELDS),
            closed=_template(reader, kind, "closed", _CLOSED, _REPLY_FIELDS),
        )
        reader.done()
        return campaign

    @property
    def source(self) -> str:
        return f"campaign:{self.name}"

    @property
    def commitment(self) -> str:
        """The SHA-256 hex of the seed, announced when the giveaway opens."""
        return commitment(self.seed.reveal())

    def _prize(self) -> str:
        return f" ({self.prize})" if self.prize else ""

    # ------------------------------------------------------------ entries

    def on_event(self, ctx: RuleContext) -> Decision | None:
        event = ctx.event
        if self.entry != "command" or not isinstance(event, CommandInvoked):
            return None
        if event.command.casefold() != self.command.casefold():
            return None
        tz = ctx.community.tz
        name = ctx.member.display_name
        fields = {
            "mention": mention(name, event.user),
            "name": name.strip() or event.user,
            "prize": self._prize(),
            "command": self.command,
            "opens": _local(self.opens, tz),
            "draws": _local(self.draws, tz),
        }
        if event.at < self.opens:
            text, why = self.not_open, "tried to enter the giveaway before it opened"
        elif event.at >= self.draws:
            text, why = self.closed, "tried to enter the giveaway after it closed"
        elif "entered" in ctx.rule_state(self.name):
            text, why = self.already, "tried to enter the giveaway a second time"
        else:
            reply = _reply(ctx, self.source, "giveaway entry", self.entered.format(**fields))
            return Decision(
                source=self.source,
                explanation="entered the giveaway",
                actions=(reply,),
                state={"entered": event.at.isoformat()},
            )
        reply = _reply(ctx, self.source, why, text.format(**fields))
        return Decision(source=self.source, explanation=why, actions=(reply,))

    # ----------------------------------------------------------- schedule

    def next_run(self, after: datetime | None) -> datetime | None:
        for moment in (self.opens, self.draws):
            if after is None or moment > after:
                return moment
        return None

    def on_schedule(self, tick: TickContext) -> Iterable[Decision]:
        if tick.now >= self.draws:
            return self._draw(tick)
        if tick.now >= self.opens:
            return [self._open(tick)]
        return []

    def _group(self, tick: TickContext) -> Group | None:
        for group in tick.community.groups:
            if group.key == self.group:
                return group
        return None

    def _post(self, tick: TickContext, what: str, text: str) -> tuple[SendMessage, ...]:
        """The post in the giveaway's group (none when no such group is configured)."""
        group = self._group(tick)
        if group is None:
            return ()
        post = SendMessage(
            action_id=stable_id(self.name, what, tick.now.isoformat()),
            platform=group.platform,
            group=group.group_id,
            source=self.source,
            reason=f"giveaway {what}",
            text=text,
        )
        return (post,)

    def _open(self, tick: TickContext) -> Decision:
        tz = tick.community.tz
        text = self.announce.format(
            prize=self._prize(),
            command=self.command,
            opens=_local(self.opens, tz),
            draws=_local(self.draws, tz),
            winners=self.winners,
            commitment=self.commitment,
        )
        return Decision(
            source=self.source,
            explanation=f"the giveaway opened; commitment {self.commitment} announced",
            actions=self._post(tick, "opening", text),
        )

    def _matches(self, member: Member, state: MemberState) -> bool:
        if self.eligible == "all":
            return True
        kind, _, value = self.eligible.partition(":")
        if kind == "tier":
            return state.tier == value.strip()
        return value.strip() in member.tags

    def eligible_members(self, tick: TickContext) -> list[str]:
        """The member ids the draw is over, sorted (active members only)."""
        if self.entry == "segment":
            found = [
                member.member_id
                for member, state in tick.members()
                if member.status is MemberStatus.ACTIVE and self._matches(member, state)
            ]
        else:
            found = []
            for member_id, state in tick.rule_states(self.name):
                if "entered" not in state:
                    continue
                member = tick.member(member_id)
                if member is not None and member.status is MemberStatus.ACTIVE:
                    found.append(member_id)
        return sorted(set(found))

    def _shown(self, tick: TickContext, member_id: str, platform: str) -> str:
        member = tick.member(member_id)
        if member is None:
            return member_id
        identity = member.identity_on(platform)
        return mention(member.display_name, identity.user_id if identity else member_id)

    def _draw(self, tick: TickContext) -> list[Decision]:
        seed = self.seed.reveal()
        eligible = self.eligible_members(tick)
        winners = draw(seed, eligible, self.winners)
        group = self._group(tick)
        platform = group.platform if group is not None else ""
        names = ", ".join(self._shown(tick, w, platform) for w in winners) or "nobody"
        eligible_hash = hashlib.sha256("\n".join(eligible).encode()).hexdigest()
        text = self.result.format(
            prize=self._prize(),
            names=names,
            seed=seed,
            commitment=self.commitment,
            count=len(eligible),
            eligible_hash=eligible_hash,
            winners=len(winners),
        )
        posted = self._post(tick, "draw", text)
        unposted = "" if posted else f" (no group {self.group!r} is configured: not announced)"
        published = Decision(
            source=self.source,
            explanation=(
                f"drew {len(winners)} winner(s) among {len(eligible)} eligible members: "
                f"{', '.join(winners) or 'nobody'}; the seed is published{unposted}"
            ),
            actions=posted,
            member=RESULT_KEY,
            state={
                "drawn": tick.now.isoformat(),
                "seed": seed,
                "commitment": self.commitment,
                "eligible": eligible,
                "winners": winners,
            },
        )
        decisions = [published]
        for place, winner in enumerate(winners, start=1):
            awards: tuple[AwardPoints, ...] = ()
            said = f"won the giveaway (place {place})"
            if self.prize_points:
                award = AwardPoints(
                    member=winner,
                    points=self.prize_points,
                    reason=f"giveaway {self.name}: winner #{place}",
                    key=f"{self.source}:prize:{winner}",
                    multiply=False,
                )
                awards = (award,)
                said += f": {self.prize_points} points"
            actions: tuple[Action, ...] = ()
            fallbacks: dict[str, tuple[Action, ...]] = {}
            if self.notify_winners:
                actions, fallbacks, how = self._tell(tick, winner, place, group)
                said += f"; {how}"
            if awards or actions:
                decisions.append(
                    Decision(
                        source=self.source,
                        explanation=said,
                        awards=awards,
                        actions=actions,
                        fallbacks=fallbacks,
                        member=winner,
                    )
                )
        return decisions

    def _tell(
        self, tick: TickContext, winner: str, place: int, group: Group | None
    ) -> tuple[tuple[Action, ...], dict[str, tuple[Action, ...]], str]:
        """The message telling a winner: a direct message where a platform of theirs
        allows one (the giveaway's group's platform first), with a mention in the
        group as its fallback; else the mention alone. Also says how."""
        member = tick.member(winner)
        if member is None:
            return (), {}, "not told: unknown member"
        fields = {
            "name": member.display_name.strip() or winner,
            "prize": self._prize(),
            "place": place,
            "prize_points": self.prize_points,
        }
        moment = tick.now.isoformat()
        in_group: tuple[Action, ...] = ()
        identity = member.identity_on(group.platform) if group is not None else None
        if group is not None and identity is not None:
            shown = mention(member.display_name, identity.user_id)
            in_group = (
                SendMessage(
                    action_id=stable_id(self.name, "won-group", winner, moment),
                    platform=group.platform,
                    group=group.group_id,
                    user=identity.user_id,
                    source=self.source,
                    reason="giveaway winner (mention)",
                    text=self.won_in_group.format(mention=shown, **fields),
                ),
            )
        platforms = [group.platform] if group is not None else []
        platforms += sorted({i.platform for i in member.identities} - set(platforms))
        for platform in platforms:
            caps = tick.capabilities.get(platform)
            mine = member.identity_on(platform)
            if mine is None or caps is None:
                continue
            if not (caps.direct_messages and caps.can("send_direct_message")):
                continue
            dm = SendDirectMessage(
                action_id=stable_id(self.name, "won", winner, moment),
                platform=platform,
                user=mine.user_id,
                source=self.source,
                reason="giveaway winner",
                text=self.won.format(mention=mention(member.display_name, mine.user_id), **fields),
            )
            fallbacks = {dm.action_id: in_group} if in_group else {}
            return (dm,), fallbacks, "told by direct message"
        if in_group:
            return in_group, {}, "told in the group (no direct messages)"
        return (), {}, "not told: no direct messages and no group"

    # ------------------------------------------------------------- report

    def funnel(
        self, states: Iterable[tuple[str, Mapping[str, Any]]], days: list[date]
    ) -> dict[str, int]:
        """The report's funnel over the whole giveaway (``days`` aside: it is one
        draw). With ``entry = "command"``: signed up (entered) and completed (won);
        with ``entry = "segment"``: reached (the eligible members the draw was
        over, known once drawn) and completed (won)."""
        entered: set[str] = set()
        eligible: set[str] = set()
        winners: set[str] = set()
        for member_id, state in states:
            if member_id == RESULT_KEY:
                eligible = set(_texts(state.get("eligible")))
                winners = set(_texts(state.get("winners")))
            elif "entered" in state:
                entered.add(member_id)
        if self.entry == "segment":
            return {"reached": len(eligible), "completed": len(winners & eligible)}
        return {"signed up": len(entered), "completed": len(winners & entered)}


def _texts(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list | tuple) else []


# ---------------------------------------------------------------- red packet

_OPENED = (
    "🧧 {mention} opened a red packet: {total} points for the first {count}! "
    "Send /{command} {code} to grab a share."
)
_GRABBED = "🧧 {mention} grabbed {amount} points! ({left} of {count} shares left)"
_AGAIN = "{mention}, you already grabbed {amount} points from this red packet."
_GONE = "{mention}, this red packet is empty: all {count} shares are taken."
_UNKNOWN = "{mention}, that is not a red packet code. Send /{command} CODE with the packet's code."
_USAGE = "{mention}, to open a red packet send /{open_command} TOTAL N (N shares, TOTAL points)."
_STAFF = "{mention}, only admins and owners may open red packets."
_POOR = "{mention}, you have {balance} points, not enough for a red packet of {total}."
_EXPIRED = "{mention}, this red packet has expired."
_SCHEDULED = (
    "🧧 A red packet from the community: {total} points for the first {count}! "
    "Send /{command} {code} to grab a share."
)
_SCHEDULED_FIELDS = ("total", "count", "command", "code")
_PACKET_FIELDS = ("mention", "name", "total", "count", "command", "code", "open_command")
_GRAB_FIELDS = ("mention", "name", "amount", "left", "count", "command", "total")
_OPEN_FIELDS = ("mention", "name", "command", "open_command", "balance", "total", "max_total")
_CODE = re.compile(r"^(\d{1,9})x(\d{1,6})-([0-9a-f]{10})([0-9a-f]{8})?$")
_KEEP_CLAIMS = 50  # grabbed packets a member's state remembers (more while some are open)


@attrs.frozen(kw_only=True)
class RedPacketCampaign:
    """Points red packets; see ``docs/campaigns-giveaways.md``."""

    name: str = "red_packet"
    open_command: str = "red_packet"
    command: str = "grab"
    funded_by_community: bool = False
    secret: Secret | None = attrs.field(default=None, repr=False, eq=False)
    max_total: int = 100_000
    max_count: int = 100
    opened: str = _OPENED
    grabbed: str = _GRABBED
    again: str = _AGAIN
    gone: str = _GONE
    unknown: str = _UNKNOWN
    usage: str = _USAGE
    staff_only: str = _STAFF
    too_poor: str = _POOR
    expired: str = _EXPIRED
    expires_after: timedelta | None = None
    schedule: CronSchedule | None = None
    schedule_total: int = 0
    schedule_count: int = 0
    schedule_group: str = ""
    scheduled: str = _SCHEDULED
    missed: Literal["skip", "catch_up"] = "skip"
    grace: timedelta = timedelta(minutes=10)
    timezone: str = "UTC"
    event_types: ClassVar[frozenset[str]] = frozenset({"command_invoked"})

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> RedPacketCampaign:
        kind = "red_packet"
        reader = _Settings(settings, kind)
        funded = reader.flag("funded_by_community", False)
        secret = _secret(reader, kind, "secret", required=funded)
        open_command = _command(reader, kind, "open_command", "red_packet")
        command = _command(reader, kind, "command", "grab")
        if open_command.casefold() == command.casefold():
            raise ModelError(
                f"red_packet campaign: open_command and command must differ, both are {command!r}"
            )
        expires_after = None
        if reader.raw("expires_after") is not None:
            expires_after = reader.duration("expires_after", timedelta(0))
            if expires_after <= timedelta(0):
                raise ModelError(
                    "red_packet campaign: expires_after must be a positive duration like '24h', "
                    f"got {reader.raw('expires_after')!r}"
                )
        timezone = reader.text("timezone", "UTC")
        try:
            resolve_timezone(timezone)
        except ModelError:
            raise ModelError(
                "red_packet campaign: timezone must be an IANA time zone like 'Asia/Shanghai', "
                f"got {timezone!r}"
            ) from None
        schedule = None
        if reader.raw("schedule") is not None:
            try:
                schedule = CronSchedule.parse(reader.raw("schedule"))
            except ModelError as exc:
                raise ModelError(f"red_packet campaign: schedule: {exc}") from None
            if secret is None:
                secret = _secret(reader, kind, "secret", required=True)
        scheduled_keys = ("schedule_total", "schedule_count", "schedule_group")
        if schedule is None:
            given = [k for k in (*scheduled_keys, "missed", "grace", "scheduled") if reader.has(k)]
            if given:
                raise ModelError(
                    f"red_packet campaign: {given[0]} applies with schedule only "
                    "(a cron like '0 20 * * 5')"
                )
        max_total = reader.integer("max_total", 100_000, minimum=1, maximum=10**9 - 1)
        max_count = reader.integer("max_count", 100, minimum=1, maximum=10_000)
        schedule_total = reader.integer("schedule_total", 0, minimum=0, maximum=max_total)
        schedule_count = reader.integer("schedule_count", 0, minimum=0, maximum=max_count)
        schedule_group = reader.text("schedule_group", "").strip()
        if schedule is not None:
            if not 1 <= schedule_count <= schedule_total:
                raise ModelError(
                    "red_packet campaign: schedule_total and schedule_count must be set, with "
                    f"1 <= schedule_count <= schedule_total, got {schedule_total} and "
                    f"{schedule_count}"
                )
            if not schedule_group:
                raise ModelError(
                    "red_packet campaign: schedule_group must be the key of a configured group, "
                    f"got {reader.raw('schedule_group')!r}"
                )
        missed = reader.raw("missed", "skip")
        if missed not in ("skip", "catch_up"):
            raise ModelError(
                f"red_packet campaign: missed must be 'skip' or 'catch_up', got {missed!r}"
            )
        campaign = cls(
            name=reader.name(),
            open_command=open_command,
            command=command,
            funded_by_community=funded,
            secret=secret,
            max_total=max_total,
            max_count=max_count,
            opened=_template(reader, kind, "opened", _OPENED, _PACKET_FIELDS),
            grabbed=_template(reader, kind, "grabbed", _GRABBED, _GRAB_FIELDS),
            again=_template(reader, kind, "again", _AGAIN, _GRAB_FIELDS),
            gone=_template(reader, kind, "gone", _GONE, _GRAB_FIELDS),
            unknown=_template(reader, kind, "unknown", _UNKNOWN, _GRAB_FIELDS),
            usage=_template(reader, kind, "usage", _USAGE, _OPEN_FIELDS),
            staff_only=_template(reader, kind, "staff_only", _STAFF, _OPEN_FIELDS),
            too_poor=_template(reader, kind, "too_poor", _POOR, _OPEN_FIELDS),
            expired=_template(reader, kind, "expired", _EXPIRED, _GRAB_FIELDS),
            expires_after=expires_after,
            schedule=schedule,
            schedule_total=schedule_total,
            schedule_count=schedule_count,
            schedule_group=schedule_group,
            scheduled=_template(reader, kind, "scheduled", _SCHEDULED, _SCHEDULED_FIELDS),
            missed="catch_up" if missed == "catch_up" else "skip",
            grace=reader.duration("grace", timedelta(minutes=10)),
            timezone=timezone,
        )
        reader.done()
        return campaign

    @property
    def source(self) -> str:
        return f"campaign:{self.name}"

    # -------------------------------------------------------------- codes

    def _mac(self, packet: str, total: int, count: int) -> str:
        assert self.secret is not None
        message = f"{self.name}\x1f{packet}\x1f{total}x{count}".encode()
        return hmac.new(self.secret.reveal().encode(), message, hashlib.sha256).hexdigest()[:8]

    def spend_key(self, packet: str, total: int, count: int) -> str:
        """The idempotency key of the opener's payment (its presence proves the packet)."""
        return f"{self.source}:packet:{packet}:{total}x{count}"

    def share_key(self, packet: str, index: int) -> str:
        """The idempotency key of share ``index`` (0-based): each share is paid once."""
        return f"{self.source}:packet:{packet}:share:{index}"

    def code(self, packet: str, total: int, count: int, *, signed: bool | None = None) -> str:
        """What members send to grab: ``TOTALxN-<packet id>`` (plus a signature
        when the community funds the packet)."""
        sign = self.funded_by_community if signed is None else signed
        mac = self._mac(packet, total, count) if sign else ""
        return f"{total}x{count}-{packet}{mac}"

    def _packet(self, ctx: RuleContext, code: str) -> tuple[str, int, int] | None:
        """The packet a code names, if it was really opened: (id, total, count)."""
        found = _CODE.match(code.strip().lower())
        if found is None:
            return None
        total, count, packet, mac = int(found[1]), int(found[2]), found[3], found[4]
        if not 1 <= count <= total:
            return None
        if mac is not None:  # signed: funded by the community (opened, or scheduled)
            if self.secret is None or not hmac.compare_digest(mac, self._mac(packet, total, count)):
                return None
        elif self.funded_by_community or not ctx.already_awarded(
            self.spend_key(packet, total, count)
        ):
            return None
        return packet, total, count

    # ------------------------------------------------------------- events

    @property
    def _tz(self) -> tzinfo:
        return resolve_timezone(self.timezone)

    def _expiry(self, state: Mapping[str, Any]) -> datetime | None:
        """When an open packet expires (``None``: it never does, or is closed)."""
        if self.expires_after is None or "closed" in state:
            return None
        opened = parse_time(state.get("opened"))
        return None if opened is None else opened + self.expires_after

    def _packets(self, tick: TickContext) -> dict[str, Mapping[str, Any]]:
        return {m: s for m, s in tick.rule_states(self.name) if m.startswith("packet:")}

    def next_run(self, after: datetime | None, tick: TickContext | None = None) -> datetime | None:
        """The next scheduled packet, or the next expiry of an open packet."""
        moments: list[datetime] = []
        if self.schedule is not None and after is not None:
            moments.append(self.schedule.next_after(after, self._tz))
        if tick is not None and self.expires_after is not None:
            for state in self._packets(tick).values():
                expiry = self._expiry(state)
                if expiry is not None:
                    soonest = after + timedelta(microseconds=1) if after is not None else expiry
                    moments.append(max(expiry, soonest))
        return min(moments, default=None)

    def due(self, now: datetime) -> datetime | None:
        """The scheduled moment to open a packet for at ``now`` (as the schedule
        campaign: the latest one, unless it is late beyond ``grace`` and missed
        moments are skipped)."""
        if self.schedule is None:
            return None
        moment = self.schedule.latest_at_or_before(now, self._tz)
        if moment is None or (self.missed == "skip" and now - moment > self.grace):
            return None
        return moment

    def on_schedule(self, ctx: TickContext) -> Iterable[Decision]:
        packets = self._packets(ctx)
        decisions: list[Decision] = []
        schedule = self.schedule
        if (
            schedule is not None
            and schedule.latest_at_or_before(ctx.moment, self._tz) == ctx.moment
        ):
            moment = self.due(ctx.now)
            if moment is not None:
                opened = self._scheduled(ctx, moment, packets)
                if opened is not None:
                    decisions.append(opened)
        for member_id in sorted(packets):
            expiry = self._expiry(packets[member_id])
            if expiry is not None and expiry <= ctx.now:
                decisions.append(self._close(ctx, member_id, packets[member_id]))
        return decisions

    def _scheduled(
        self, ctx: TickContext, moment: datetime, packets: Mapping[str, Mapping[str, Any]]
    ) -> Decision | None:
        """The packet of a scheduled moment (once: its id derives from the moment)."""
        stamp = moment.isoformat()
        packet = hashlib.sha256(f"{self.name}\x1fscheduled\x1f{stamp}".encode()).hexdigest()[:10]
        if f"packet:{packet}" in packets:
            return None
        total, count = self.schedule_total, self.schedule_count
        code = self.code(packet, total, count, signed=True)
        group = next((g for g in ctx.community.groups if g.key == self.schedule_group), None)
        posts: tuple[Action, ...] = ()
        if group is not None:
            text = self.scheduled.format(total=total, count=count, command=self.command, code=code)
            posts = (
                SendMessage(
                    action_id=stable_id(self.name, "scheduled", stamp),
                    platform=group.platform,
                    group=group.group_id,
                    source=self.source,
                    reason=f"scheduled red packet {packet}",
                    text=text,
                ),
            )
        where = "" if posts else f" (no group {self.schedule_group!r} is configured: not posted)"
        return Decision(
            source=self.source,
            explanation=(
                f"opened scheduled red packet {packet} for {stamp}: {total} points in {count} "
                f"shares, funded by the community{where}"
            ),
            actions=posts,
            member=f"packet:{packet}",
            state={
                "opener": None,
                "opened": stamp,
                "total": total,
                "count": count,
                "funded_by_community": True,
                "scheduled": True,
            },
        )

    def _close(self, ctx: TickContext, member_id: str, state: Mapping[str, Any]) -> Decision:
        """An expired packet closes: its unclaimed shares go back to the opener who
        paid for it, or are recorded as unclaimed."""
        packet = member_id.removeprefix("packet:")
        total, count = state.get("total"), state.get("count")
        if type(total) is not int or type(count) is not int or not 1 <= count <= total:
            return Decision(
                source=self.source,
                explanation=f"red packet {packet} expired; its record is unreadable: closed",
                member=member_id,
                state={**state, "closed": ctx.now.isoformat()},
            )
        amounts = split(total, count, packet)
        left = [i for i in range(count) if not ctx.already_awarded(self.share_key(packet, i))]
        points = sum(amounts[i] for i in left)
        opener = state.get("opener")
        funder = (
            opener if isinstance(opener, str) and not state.get("funded_by_community") else None
        )
        awards: tuple[AwardPoints, ...] = ()
        if funder is not None and points:
            awards = (
                AwardPoints(
                    member=funder,
                    points=points,
                    reason=f"red packet {packet}: {len(left)} unclaimed share(s) refunded",
                    key=f"{self.source}:packet:{packet}:refund",
                    multiply=False,
                ),
            )
            outcome = f"{points} points of {len(left)} unclaimed share(s) refunded to {funder}"
        elif points:
            outcome = f"{points} points of {len(left)} share(s) left unclaimed"
        else:
            outcome = "every share was claimed"
        return Decision(
            source=self.source,
            explanation=f"red packet {packet} expired: {outcome}",
            awards=awards,
            member=member_id,
            state={
                **state,
                "closed": ctx.now.isoformat(),
                "unclaimed": len(left),
                "unclaimed_points": points,
                "refunded": points if awards else 0,
            },
        )

    def on_event(self, ctx: RuleContext) -> Decision | None:
        event = ctx.event
        if not isinstance(event, CommandInvoked):
            return None
        command = event.command.casefold()
        if command == self.open_command.casefold():
            return self._open(ctx, event)
        if command == self.command.casefold():
            return self._grab(ctx, event)
        return None

    def _refuse(self, ctx: RuleContext, why: str, text: str) -> Decision:
        reply = _reply(ctx, self.source, why, text)
        return Decision(source=self.source, explanation=why, actions=(reply,))

    def _open(self, ctx: RuleContext, event: CommandInvoked) -> Decision:
        name = ctx.member.display_name
        fields: dict[str, Any] = {
            "mention": mention(name, event.user),
            "name": name.strip() or event.user,
            "command": self.command,
            "open_command": self.open_command,
            "balance": ctx.balance,
            "total": "?",
            "max_total": self.max_total,
        }
        if not ctx.member.role.is_staff:
            return self._refuse(
                ctx,
                "tried to open a red packet without being staff",
                self.staff_only.format(**fields),
            )
        args = [a for a in event.args if a.strip()]
        parsed = [int(a) for a in args if a.isdigit() and a.isascii()]
        if event.group is None or len(args) != 2 or len(parsed) != 2:
            return self._refuse(
                ctx,
                "asked for a red packet without TOTAL N in a group",
                self.usage.format(**fields),
            )
        total, count = parsed
        fields["total"] = total
        if not (1 <= count <= self.max_count and count <= total <= self.max_total):
            return self._refuse(
                ctx,
                f"asked for a red packet of {total} points in {count} shares (out of bounds)",
                self.usage.format(**fields),
            )
        if not self.funded_by_community and ctx.balance < total:
            return self._refuse(
                ctx,
                f"cannot open a red packet of {total} points with {ctx.balance}",
                self.too_poor.format(**fields),
            )
        digest = hashlib.sha256(f"{event.platform}\x1f{event.event_id}".encode()).hexdigest()
        packet = digest[:10]
        code = self.code(packet, total, count)
        text = self.opened.format(
            mention=fields["mention"],
            name=fields["name"],
            total=total,
            count=count,
            command=self.command,
            code=code,
            open_command=self.open_command,
        )
        post = ctx.action(SendMessage, self.source, f"red packet {packet} opened", text=text)
        spends: tuple[SpendPoints, ...] = ()
        if not self.funded_by_community:
            spends = (
                SpendPoints(
                    member=ctx.member_id,
                    points=total,
                    reason=f"red packet {packet} ({count} shares)",
                    key=self.spend_key(packet, total, count),
                ),
            )
        return Decision(
            source=self.source,
            explanation=(
                f"opened red packet {packet}: {total} points in {count} shares, funded by "
                + ("the community" if self.funded_by_community else "the opener")
            ),
            actions=(post,),
            spends=spends,
            member=f"packet:{packet}",
            state={
                "opener": ctx.member_id,
                "opened": event.at.isoformat(),
                "total": total,
                "count": count,
                "funded_by_community": self.funded_by_community,
            },
        )

    def _finished(self, ctx: RuleContext, packet: str) -> bool:
        """Whether red packet ``packet`` is closed or has no share left to grab."""
        record = ctx.rule_state(self.name, f"packet:{packet}")
        if "closed" in record:
            return True
        count = record.get("count")
        if type(count) is not int or count < 1:
            return False  # unknown: keep remembering the claim
        return all(ctx.already_awarded(self.share_key(packet, i)) for i in range(count))

    def _grab(self, ctx: RuleContext, event: CommandInvoked) -> Decision:
        name = ctx.member.display_name
        fields: dict[str, Any] = {
            "mention": mention(name, event.user),
            "name": name.strip() or event.user,
            "amount": 0,
            "left": 0,
            "count": 0,
            "command": self.command,
            "total": 0,
        }
        found = self._packet(ctx, event.args[0]) if len(event.args) == 1 else None
        if found is None:
            return self._refuse(
                ctx, "tried to grab a red packet with no valid code", self.unknown.format(**fields)
            )
        packet, total, count = found
        fields.update(total=total, count=count)
        record = ctx.rule_state(self.name, f"packet:{packet}")
        expiry = self._expiry(record)  # None once closed
        if "closed" in record or (expiry is not None and ctx.event.at >= expiry):
            return self._refuse(
                ctx,
                f"tried to grab red packet {packet} after it expired",
                self.expired.format(**fields),
            )
        state = ctx.rule_state(self.name)
        claims = state.get("claims")
        claims = dict(claims) if isinstance(claims, Mapping) else {}
        amounts = split(total, count, packet)
        mine = claims.get(packet)
        if isinstance(mine, int) and 0 <= mine < count:
            fields["amount"] = amounts[mine]
            return self._refuse(
                ctx, f"tried to grab red packet {packet} a second time", self.again.format(**fields)
            )
        free = [i for i in range(count) if not ctx.already_awarded(self.share_key(packet, i))]
        if not free:
            return self._refuse(
                ctx, f"red packet {packet} is empty; nothing to grab", self.gone.format(**fields)
            )
        index = free[0]
        amount = amounts[index]
        fields.update(amount=amount, left=len(free) - 1)
        claims[packet] = index
        while len(claims) > _KEEP_CLAIMS:  # forget only packets nobody can grab from again
            done = next((p for p in claims if p != packet and self._finished(ctx, p)), None)
            if done is None:
                break
            del claims[done]
        award = AwardPoints(
            member=ctx.member_id,
            points=amount,
            reason=f"red packet {packet}: share {index + 1} of {count}",
            key=self.share_key(packet, index),
            multiply=False,
        )
        reply = _reply(
            ctx, self.source, f"red packet {packet} grabbed", self.grabbed.format(**fields)
        )
        return Decision(
            source=self.source,
            explanation=f"grabbed share {index + 1} of {count} of red packet {packet}: {amount}",
            awards=(award,),
            actions=(reply,),
            state={
                **state,
                "claims": claims,
                "days": remember_day(state.get("days"), event.at.astimezone(self._tz).date()),
            },
        )

    # ------------------------------------------------------------- report

    def funnel(
        self, states: Iterable[tuple[str, Mapping[str, Any]]], days: list[date]
    ) -> dict[str, int]:
        """The report's funnel: members signed up (ever grabbed a share) and who
        took part (grabbed one on a day of ``days``). A state kept before grab
        days were recorded counts the days its packets were opened."""
        rows = list(states)
        keys = {d.isoformat() for d in days}
        tz = self._tz
        opened: dict[str, str | None] = {}
        for member_id, state in rows:
            if member_id.startswith("packet:"):
                at = parse_time(state.get("opened"))
                day = None if at is None else at.astimezone(tz).date().isoformat()
                opened[member_id.removeprefix("packet:")] = day
        signed_up = took_part = 0
        for member_id, state in rows:
            if member_id.startswith("packet:"):
                continue
            found = state.get("claims")
            claims = list(found) if isinstance(found, Mapping) else []
            grabbed: list[str | None] = list(remembered_days(state.get("days")))
            if not claims and not grabbed:
                continue
            signed_up += 1
            if "days" not in state:
                grabbed = [opened.get(p) for p in claims]
            if any_in(grabbed, keys):
                took_part += 1
        return {"signed up": signed_up, "took part": took_part}


@hookimpl
def communitykit_campaign_types() -> Iterable[CampaignType]:
    return [
        CampaignType(
            name="giveaway",
            factory=GiveawayCampaign.from_settings,
            description="a verifiable prize draw (抽奖): commit to a seed, take entries, draw",
        ),
        CampaignType(
            name="red_packet",
            factory=RedPacketCampaign.from_settings,
            description="points red packets (红包): staff open one, the first N grab random shares",
            takes_timezone=True,
        ),
    ]
