"""The ``referral`` campaign type (裂变): members invite newcomers and earn points.

``/invite`` gives a member a personal invite: an invite link the platform
creates for them (a :class:`CreateInviteLink` named with their code; the engine
records the link as theirs) and their code (``R`` and a short text derived from
their member id). On platforms without invite links the code is the invite: a
newcomer joins with it, or tells it with ``/joined_by CODE`` within
``claim_hours`` of joining.

A newcomer is attributed to one inviter (the first valid attribution wins). The
inviter's reward is credited as pending points at once (and the second-level
reward to the inviter's own inviter, if any); it counts only once the newcomer
meets the stay condition (still a member ``stay_days`` after joining and/or
``min_messages`` messages posted): then it is confirmed (once per newcomer,
ever), or cancelled when the newcomer leaves first or when the inviter reached
the daily cap of confirmed rewards. Conditions are checked on the newcomer's
messages and at a daily run (``check_at``, local time).

What the campaign remembers about a member (plain JSON). As a newcomer::

    {"joined": ISO, "fresh": true, "inviter": "telegram:1", "at": ISO,
     "status": "pending" | "confirmed" | "cancelled" | "unrewarded",
     "why": "..." (unrewarded), "via": "link" | "code" | "claim" | "added",
     "second": "telegram:0" (the inviter's inviter, when a second-level reward is pending)}

As an inviter (written by the daily run and when a reward is paid)::

    {"refs": {"telegram:2": {"status": "confirmed", "day": "2026-03-08"}, ...}}

The newcomer's status moves on at the daily run; a reward paid on a message is
first recorded in the inviter's ``refs`` (a status there that is final wins).
A code is found again through an index entry kept under the member id
``"#code:" + code``.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

import attrs

from communitykit._plugin_types import CampaignType
from communitykit.builtins.campaigns._settings import CampaignSettings
from communitykit.builtins.rules._entry import mention
from communitykit.hookspecs import hookimpl
from communitykit.model import (
    Action,
    AwardPoints,
    CancelPoints,
    CommandInvoked,
    ConfirmPoints,
    CreateInviteLink,
    Decision,
    MemberJoined,
    MemberLeft,
    MemberStatus,
    MessagePosted,
    RuleContext,
    SendDirectMessage,
    SendMessage,
    TickContext,
)
from communitykit.model._time import resolve_timezone

__all__ = [
    "CODE_KEY",
    "ReferralCampaign",
    "communitykit_campaign_types",
    "effective_status",
    "leaderboard",
    "referral_code",
    "referral_numbers",
]

CODE_KEY = "#code:"  # the member id under which a code's owner is remembered
STATUSES = ("pending", "confirmed", "cancelled", "unrewarded")
FINAL = frozenset({"confirmed", "cancelled", "unrewarded"})
CHAIN_LIMIT = 50  # how far up the inviters a cycle is looked for

_REPLY = "{name}, your invite code is {code}. Newcomers who join with it earn you {reward} points."
_STATS = "{name}: {pending} pending, {confirmed} confirmed, {cancelled} cancelled referrals."
_CLAIMED = "{name}, you joined through {inviter}'s invite: thank you both!"
_REFUSED = "{name}, that invite cannot be counted: {why}."

_WHO = ("name", "mention")
_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")
_CONDITIONS = ("both", "days", "messages")


def referral_code(member_id: str, prefix: str = "R") -> str:
    """The member's invite code: ``prefix`` and 7 letters/digits from their id."""
    digest = hashlib.blake2b(member_id.encode(), digest_size=5).digest()
    return prefix + base64.b32encode(digest).decode()[:7]


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _time_of(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        found = datetime.fromisoformat(value)
    except ValueError:
        return None
    return found if found.tzinfo is not None else None


def _refs(state: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    found = state.get("refs")
    if not isinstance(found, Mapping):
        return {}
    return {
        str(k): dict(v)
        for k, v in found.items()
        if isinstance(v, Mapping) and v.get("status") in STATUSES
    }


def effective_status(
    newcomer: Mapping[str, Any], inviter: Mapping[str, Any] | None, newcomer_id: str
) -> str | None:
    """The referral status of a newcomer: a final status in the inviter's
    ``refs`` wins over the newcomer's own (``None``: not attributed)."""
    if _text(newcomer.get("inviter")) is None:
        return None
    own = newcomer.get("status")
    if inviter is not None:
        ref = _refs(inviter).get(newcomer_id)
        if ref is not None and ref["status"] in FINAL:
            return str(ref["status"])
    return str(own) if own in STATUSES else "pending"


def referral_numbers(states: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """Totals of referrals by status, and per inviter.

    ``{"pending": n, "confirmed": n, "cancelled": n, "unrewarded": n,
    "inviters": {inviter: {"pending": n, ...}}}``.
    """
    by_id = {m: s for m, s in states if not m.startswith(CODE_KEY)}
    totals = dict.fromkeys(STATUSES, 0)
    inviters: dict[str, dict[str, int]] = {}
    for member_id in sorted(by_id):
        state = by_id[member_id]
        inviter = _text(state.get("inviter"))
        status = effective_status(state, by_id.get(inviter or ""), member_id)
        if inviter is None or status is None:
            continue
        totals[status] += 1
        inviters.setdefault(inviter, dict.fromkeys(STATUSES, 0))[status] += 1
    return {**totals, "inviters": inviters}


def leaderboard(
    states: Iterable[tuple[str, Mapping[str, Any]]], n: int
) -> list[tuple[str, int, int]]:
    """The ``n`` best inviters as ``(member, confirmed, pending)``: most confirmed
    first, then most pending, then by member id."""
    rows = [
        (inviter, counts["confirmed"], counts["pending"])
        for inviter, counts in referral_numbers(states)["inviters"].items()
        if counts["confirmed"] or counts["pending"]
    ]
    rows.sort(key=lambda row: (-row[1], -row[2], row[0]))
    return rows[: max(n, 0)]


def _at(day: date, moment: time, tz: tzinfo) -> datetime:
    return datetime.combine(day, moment, tzinfo=tz).astimezone(UTC)


@attrs.frozen(kw_only=True)
class ReferralCampaign:
    """Personal invites with rewards once newcomers stay; see ``docs/campaigns-referral.md``."""

    name: str = "referral"
    command: str = "invite"
    joined_command: str = "joined_by"
    leaderboard_word: str = "top"
    code_prefix: str = "R"
    claim_hours: int = 24
    reward: int = 50
    stay_days: int = 7
    min_messages: int = 3
    condition: str = "both"
    check_at: time = time(12, 0)
    timezone: str = "UTC"
    daily_cap: int = 10
    second_level: int = 0
    group: str = ""
    reply: str = _REPLY
    stats: str = _STATS
    claimed: str = _CLAIMED
    refused: str = _REFUSED

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> ReferralCampaign:
        reader = CampaignSettings(settings, "referral")

        def command(key: str, default: str) -> str:
            value = reader.text(key, default).strip()
            if not value or value.startswith("/") or any(c.isspace() for c in value):
                raise reader.fail(key, "a command name without '/' or spaces", value)
            return value

        prefix = reader.text("code_prefix", "R").strip()
        if not re.fullmatch(r"[A-Za-z0-9]{1,8}", prefix):
            raise reader.fail("code_prefix", "1 to 8 letters or digits", prefix)
        condition = reader.text("condition", "both")
        if condition not in _CONDITIONS:
            raise reader.fail("condition", "'both', 'days' or 'messages'", condition)
        clock = reader.text("check_at", "12:00").strip()
        found = _TIME.match(clock)
        if found is None or int(found[1]) > 23 or int(found[2]) > 59:
            raise reader.fail("check_at", "a local time like '12:00'", clock)
        zone, _tz = reader.timezone()
        campaign = cls(
            name=reader.name(),
            command=command("command", "invite"),
            joined_command=command("joined_command", "joined_by"),
            leaderboard_word=command("leaderboard_word", "top"),
            code_prefix=prefix,
            claim_hours=reader.integer("claim_hours", 24, maximum=24 * 30),
            reward=reader.integer("reward", 50, minimum=1),
            stay_days=reader.integer("stay_days", 7, maximum=365),
            min_messages=reader.integer("min_messages", 3, maximum=10_000),
            condition=condition,
            check_at=time(int(found[1]), int(found[2])),
            timezone=zone,
            daily_cap=reader.integer("daily_cap", 10),
            second_level=reader.integer("second_level", 0),
            group=reader.text("group", "").strip(),
            reply=reader.template("reply", _REPLY, (*_WHO, "code", "reward")),
            stats=reader.template("stats", _STATS, (*_WHO, *STATUSES)),
            claimed=reader.template("claimed", _CLAIMED, (*_WHO, "inviter")),
            refused=reader.template("refused", _REFUSED, (*_WHO, "why")),
        )
        reader.done()
        return campaign

    @property
    def source(self) -> str:
        return f"campaign:{self.name}"

    @property
    def event_types(self) -> frozenset[str]:
        return frozenset({"command_invoked", "member_joined", "member_left", "message_posted"})

    @property
    def _tz(self) -> tzinfo:
        return resolve_timezone(self.timezone)

    def code_of(self, member_id: str) -> str:
        return referral_code(member_id, self.code_prefix)

    # --------------------------------------------------------------- events

    def on_event(self, ctx: RuleContext) -> Decision | None:
        event = ctx.event
        if isinstance(event, MemberJoined):
            return self._joined(ctx, event)
        if isinstance(event, MemberLeft):
            return self._left(ctx)
        if isinstance(event, MessagePosted):
            return self._posted(ctx)
        if not isinstance(event, CommandInvoked):
            return None
        command = event.command.casefold()
        word = event.args[0] if event.args else ""
        if command == self.command.casefold():
            if word.casefold() == self.leaderboard_word.casefold():
                return self._stats(ctx)
            return self._invite(ctx)
        if command == self.joined_command.casefold():
            return self._claim(ctx, word)
        return None

    def _names(self, ctx: RuleContext) -> dict[str, str]:
        name = ctx.member.display_name.strip() or ctx.event.user
        return {"name": name, "mention": mention(ctx.member.display_name, ctx.event.user)}

    def _say(self, ctx: RuleContext, text: str, why: str, index: int = 0) -> Action:
        if ctx.event.group is None:
            return ctx.action(SendDirectMessage, self.source, why, index, text=text)
        return ctx.action(SendMessage, self.source, why, index, text=text)

    def _link_group(self, ctx: RuleContext) -> str | None:
        event = ctx.event
        groups = [g for g in ctx.community.groups if g.platform == event.platform]
        if self.group:
            chosen = [g for g in groups if g.key == self.group]
            return chosen[0].group_id if chosen else None
        if event.group is not None:
            return event.group
        return groups[0].group_id if groups else None

    def _invite(self, ctx: RuleContext) -> Decision:
        member_id = ctx.member_id
        code = self.code_of(member_id)
        actions: list[Action] = []
        group = self._link_group(ctx)
        if group is not None and ctx.capabilities.can("create_invite_link"):
            actions.append(
                ctx.action(
                    CreateInviteLink,
                    self.source,
                    f"personal invite link of {member_id}",
                    1,
                    group=group,
                    name=code,
                )
            )
        text = self.reply.format(**self._names(ctx), code=code, reward=self.reward)
        actions.insert(0, self._say(ctx, text, "personal invite code"))
        return Decision(
            source=self.source,
            explanation=f"gave {member_id} the invite code {code}",
            actions=tuple(actions),
            state={"owner": member_id},
            member=CODE_KEY + code.upper(),
        )

    def _stats(self, ctx: RuleContext) -> Decision:
        counts = dict.fromkeys(STATUSES, 0)
        for ref in _refs(ctx.rule_state(self.name)).values():
            counts[str(ref["status"])] += 1
        text = self.stats.format(**self._names(ctx), **counts)
        return Decision(
            source=self.source,
            explanation=f"asked for their referral numbers ({counts['confirmed']} confirmed)",
            actions=(self._say(ctx, text, "referral numbers"),),
        )

    def _owner(self, ctx: RuleContext, invite: str) -> str | None:
        """The member an invite link or code belongs to."""
        owner = ctx.invite_owner(invite)
        if owner is not None:
            return owner.member_id
        code = invite.strip().upper()
        if not code.startswith(self.code_prefix.upper()):
            return None
        found = _text(ctx.rule_state(self.name, CODE_KEY + code).get("owner"))
        if found is None or self.code_of(found).upper() != code:
            return None
        return found

    def _cycle(self, ctx: RuleContext, inviter: str, newcomer: str) -> bool:
        """Whether ``newcomer`` is up the chain of ``inviter``'s inviters."""
        seen = {inviter}
        current = inviter
        for _ in range(CHAIN_LIMIT):
            above = _text(ctx.rule_state(self.name, current).get("inviter"))
            if above is None or above in seen:
                return above == newcomer
            if above == newcomer:
                return True
            seen.add(above)
            current = above
        return False

    def _attribute(
        self, ctx: RuleContext, state: Mapping[str, Any], inviter: str, via: str
    ) -> tuple[dict[str, Any] | None, str]:
        """The newcomer's state once attributed to ``inviter`` (None: refused), and why."""
        newcomer = ctx.member_id
        if _text(state.get("inviter")) is not None:
            return None, "already attributed to an inviter"
        if inviter == newcomer:
            return None, "a member cannot invite themself"
        new = {**state, "inviter": inviter, "at": ctx.event.at.isoformat(), "via": via}
        if self._cycle(ctx, inviter, newcomer):
            return {**new, "status": "unrewarded", "why": "a referral cycle"}, "a referral cycle"
        if state.get("fresh") is False:
            why = "was a member before"
            return {**new, "status": "unrewarded", "why": why}, why
        return {**new, "status": "pending"}, "pending"

    def award_key(self, newcomer: str, second: bool = False) -> str:
        """The ledger key of the (pending) reward for ``newcomer``: the inviter's, or
        the second-level one of the inviter's inviter."""
        key = f"referral:{self.name}:{newcomer}"
        return f"{key}:second" if second else key

    def _pending_rewards(
        self, ctx: RuleContext, state: dict[str, Any]
    ) -> tuple[dict[str, Any], tuple[AwardPoints, ...]]:
        """The pending rewards of a newcomer just attributed (none unless pending),
        and their state recording who holds a second-level one."""
        inviter = _text(state.get("inviter"))
        if inviter is None or state.get("status") != "pending":
            return state, ()
        newcomer = ctx.member_id
        awards = [
            AwardPoints(
                member=inviter,
                points=self.reward,
                reason="referral",
                key=self.award_key(newcomer),
                pending=True,
            )
        ]
        if self.second_level:
            inviter_state = ctx.rule_state(self.name, inviter)
            grand_state = ctx.rule_state(self.name, _grand_id(inviter_state))
            grand = _grand(inviter, inviter_state, grand_state)
            if grand is not None and grand not in (inviter, newcomer):
                state = {**state, "second": grand}
                awards.append(
                    AwardPoints(
                        member=grand,
                        points=self.second_level,
                        reason="referral_second_level",
                        key=self.award_key(newcomer, second=True),
                        pending=True,
                    )
                )
        return state, tuple(awards)

    def _settle(
        self,
        newcomer: str,
        newcomer_state: Mapping[str, Any],
        inviter: str,
        confirm: bool,
        why: str,
        grand_ok: bool = False,
    ) -> tuple[tuple[ConfirmPoints, ...], tuple[CancelPoints, ...]]:
        """Confirm or cancel the pending rewards for ``newcomer``; the second-level
        one is confirmed only when ``grand_ok`` too."""
        confirms: list[ConfirmPoints] = []
        cancels: list[CancelPoints] = []
        rewards = [(inviter, self.award_key(newcomer), confirm)]
        grand = _text(newcomer_state.get("second"))
        if grand is not None:
            rewards.append((grand, self.award_key(newcomer, second=True), confirm and grand_ok))
        for member, award, confirmed in rewards:
            if confirmed:
                second = award.endswith(":second")
                instead = AwardPoints(  # a referral attributed before rewards were pending
                    member=member,
                    points=self.second_level if second else self.reward,
                    reason="referral_second_level" if second else "referral",
                    key=award,
                )
                confirms.append(
                    ConfirmPoints(
                        member=member,
                        award=award,
                        reason=why,
                        key=f"{award}:confirm",
                        instead=instead,
                    )
                )
            else:
                cancels.append(
                    CancelPoints(member=member, award=award, reason=why, key=f"{award}:cancel")
                )
        return tuple(confirms), tuple(cancels)

    def _joined(self, ctx: RuleContext, event: MemberJoined) -> Decision | None:
        state = dict(ctx.rule_state(self.name))
        if "joined" in state or _text(state.get("inviter")) is not None:
            return None  # joined another group, or joined before: not a newcomer
        member = ctx.member
        fresh = (
            member.joined_at is None or member.joined_at >= event.at
        ) and ctx.state.messages == 0
        state.update({"joined": event.at.isoformat(), "fresh": fresh})
        why = "no invite"
        if event.invite:
            inviter = self._owner(ctx, event.invite)
            if inviter is not None:
                via = "link" if ctx.invite_owner(event.invite) is not None else "code"
                attributed, why = self._attribute(ctx, state, inviter, via)
                if attributed is not None:
                    state = attributed
                    why = f"attributed to {inviter} ({why})"
            else:
                why = "an invite of nobody known"
        elif event.added_by:
            adder = ctx.member_of(event.platform, event.added_by)
            if adder is not None:
                attributed, why = self._attribute(ctx, state, adder.member_id, "added")
                if attributed is not None:
                    state = attributed
                    why = f"added by {adder.member_id} ({why})"
        state, awards = self._pending_rewards(ctx, state)
        return Decision(
            source=self.source,
            explanation=f"{ctx.member_id} joined: {why}",
            state=state,
            awards=awards,
        )

    def _claim(self, ctx: RuleContext, code: str) -> Decision:
        state = dict(ctx.rule_state(self.name))
        names = self._names(ctx)
        joined = _time_of(state.get("joined"))

        def refuse(why: str) -> Decision:
            return Decision(
                source=self.source,
                explanation=f"claim of invite {code!r} refused: {why}",
                actions=(self._say(ctx, self.refused.format(**names, why=why), "claim refused"),),
            )

        if joined is None:
            return refuse("no join of yours is known")
        if ctx.event.at > joined + timedelta(hours=self.claim_hours):
            return refuse(f"claims are taken within {self.claim_hours} hours of joining")
        inviter = self._owner(ctx, code) if code else None
        if inviter is None:
            return refuse("unknown invite code")
        attributed, why = self._attribute(ctx, state, inviter, "claim")
        if attributed is None:
            return refuse(why)
        shown = ctx.member_of(*_split(inviter))
        inviter_name = (shown.display_name.strip() if shown is not None else "") or inviter
        attributed, awards = self._pending_rewards(ctx, attributed)
        return Decision(
            source=self.source,
            explanation=f"{ctx.member_id} claimed {inviter}'s invite: {why}",
            actions=(
                self._say(ctx, self.claimed.format(**names, inviter=inviter_name), "claimed"),
            ),
            state=attributed,
            awards=awards,
        )

    def _left(self, ctx: RuleContext) -> Decision | None:
        if ctx.member.status is MemberStatus.ACTIVE:
            return None  # left one group, still in another: still a member
        state = ctx.rule_state(self.name)
        inviter = _text(state.get("inviter"))
        if inviter is None:
            if "joined" not in state or state.get("fresh") is False:
                return None
            return Decision(
                source=self.source,
                explanation=f"{ctx.member_id} left: a later claim is a rejoin",
                state={**state, "fresh": False},
            )
        status = effective_status(state, ctx.rule_state(self.name, inviter), ctx.member_id)
        if status != "pending":
            return None
        why = f"{ctx.member_id} left before staying: {inviter}'s reward cancelled"
        _, cancels = self._settle(ctx.member_id, state, inviter, False, "the newcomer left")
        return Decision(
            source=self.source,
            explanation=why,
            state={**state, "status": "cancelled"},
            cancels=cancels,
        )

    def _met(self, joined: datetime, now: datetime, messages: int) -> bool:
        stayed = now >= joined + timedelta(days=self.stay_days)
        talked = messages >= self.min_messages
        if self.condition == "days":
            return stayed
        if self.condition == "messages":
            return talked
        return stayed and talked

    def _posted(self, ctx: RuleContext) -> Decision | None:
        state = ctx.rule_state(self.name)
        inviter = _text(state.get("inviter"))
        joined = _time_of(state.get("at"))
        if inviter is None or joined is None:
            return None
        inviter_state = ctx.rule_state(self.name, inviter)
        if effective_status(state, inviter_state, ctx.member_id) != "pending":
            return None
        if not self._met(joined, ctx.event.at, ctx.state.messages):
            return None
        grand = _grand(inviter, inviter_state, ctx.rule_state(self.name, _grand_id(inviter_state)))
        new_inviter, confirms, cancels, why = self._confirm(
            ctx.member_id, state, inviter, inviter_state, grand, ctx.event.at
        )
        return Decision(
            source=self.source,
            explanation=why,
            confirms=confirms,
            cancels=cancels,
            state=new_inviter,
            member=inviter,
        )

    def _confirm(
        self,
        newcomer: str,
        newcomer_state: Mapping[str, Any],
        inviter: str,
        inviter_state: Mapping[str, Any],
        grand: str | None,
        now: datetime,
    ) -> tuple[dict[str, Any], tuple[ConfirmPoints, ...], tuple[CancelPoints, ...], str]:
        """The inviter's state once ``newcomer`` stayed, the pending rewards to
        confirm and to cancel (the daily cap), and why."""
        today = now.astimezone(self._tz).date().isoformat()
        refs = _refs(inviter_state)
        today_count = sum(
            1 for r in refs.values() if r["status"] == "confirmed" and r.get("day") == today
        )
        if self.daily_cap and today_count >= self.daily_cap:
            refs[newcomer] = {"status": "unrewarded", "day": today, "why": "daily cap"}
            why = (
                f"{newcomer} stayed, but {inviter} reached the daily cap of "
                f"{self.daily_cap} rewards on {today}: attributed, not rewarded"
            )
            confirms, cancels = self._settle(
                newcomer, newcomer_state, inviter, False, "the daily cap of referral rewards"
            )
            return {**inviter_state, "refs": refs}, confirms, cancels, why
        refs[newcomer] = {"status": "confirmed", "day": today}
        second = _text(newcomer_state.get("second"))
        confirms, cancels = self._settle(
            newcomer,
            newcomer_state,
            inviter,
            True,
            f"{newcomer} stayed",
            grand_ok=grand is not None and grand == second,
        )
        why = f"{newcomer} stayed: {inviter} earns {self.reward} points for the referral"
        return {**inviter_state, "refs": refs}, confirms, cancels, why

    # ------------------------------------------------------------- schedule

    def next_run(self, after: datetime | None) -> datetime | None:
        """The next daily check (``check_at`` local time) strictly after ``after``."""
        if after is None:
            return None
        tz = self._tz
        local = after.astimezone(tz).date()
        moments = [_at(local + timedelta(days=d), self.check_at, tz) for d in (-1, 0, 1, 2)]
        return min(m for m in moments if m > after)

    def numbers(
        self, states: Iterable[tuple[str, Mapping[str, Any]]], days: list[date]
    ) -> dict[str, Any]:
        """Referrals pending, confirmed and cancelled, in all and per inviter."""
        return referral_numbers(states)

    def on_schedule(self, ctx: TickContext) -> Iterable[Decision]:
        states = {m: dict(s) for m, s in ctx.rule_states(self.name) if not m.startswith(CODE_KEY)}
        before = {m: dict(s) for m, s in states.items()}
        confirms: dict[str, list[ConfirmPoints]] = {}
        cancels: dict[str, list[CancelPoints]] = {}
        notes: dict[str, list[str]] = {}
        newcomers = sorted(
            (m for m, s in states.items() if _text(s.get("inviter")) is not None),
            key=lambda m: (str(states[m].get("at", "")), m),
        )
        for newcomer in newcomers:
            state = states[newcomer]
            inviter = str(state["inviter"])
            inviter_state = states.setdefault(inviter, {})
            status = effective_status(state, inviter_state, newcomer)
            if status == "pending":
                member = ctx.member(newcomer)
                joined = _time_of(state.get("at"))
                mstate = ctx.state(newcomer)
                if member is None or member.left_at is not None or joined is None:
                    status = "cancelled"
                    notes.setdefault(newcomer, []).append(f"{newcomer} left: cancelled")
                    _, dropped = self._settle(newcomer, state, inviter, False, "the newcomer left")
                    cancels.setdefault(newcomer, []).extend(dropped)
                elif self._met(joined, ctx.now, mstate.messages if mstate else 0):
                    grand = _grand(inviter, inviter_state, states.get(_grand_id(inviter_state), {}))
                    new_inviter, paid, dropped, why = self._confirm(
                        newcomer, state, inviter, inviter_state, grand, ctx.now
                    )
                    states[inviter] = inviter_state = new_inviter
                    confirms.setdefault(inviter, []).extend(paid)
                    cancels.setdefault(inviter, []).extend(dropped)
                    notes.setdefault(inviter, []).append(why)
                    status = str(_refs(inviter_state)[newcomer]["status"])
            if status is None:
                continue
            refs = _refs(inviter_state)
            ref = refs.get(newcomer)
            if ref is None or ref["status"] != status:
                refs[newcomer] = {**(ref or {}), "status": status}
                states[inviter] = inviter_state = {**inviter_state, "refs": refs}
            if state.get("status") != status:
                states[newcomer] = {**states[newcomer], "status": status}
        decisions = []
        for member_id in sorted(states):
            settles = member_id in confirms or member_id in cancels
            if states[member_id] == before.get(member_id, {}) and not settles:
                continue
            why = "; ".join(notes.get(member_id, ())) or "referral numbers brought up to date"
            decisions.append(
                Decision(
                    source=self.source,
                    explanation=why,
                    confirms=tuple(confirms.get(member_id, ())),
                    cancels=tuple(cancels.get(member_id, ())),
                    state=states[member_id],
                    member=member_id,
                )
            )
        return decisions

    def funnel(
        self, states: Iterable[tuple[str, Mapping[str, Any]]], days: list[date]
    ) -> dict[str, int]:
        """The report's funnel over referred newcomers: signed up (joined through
        an invite), took part (not cancelled) and completed (confirmed)."""
        found = referral_numbers(states)
        pending, confirmed = found.get("pending", 0), found.get("confirmed", 0)
        return {
            "signed up": pending + confirmed + found.get("cancelled", 0),
            "took part": pending + confirmed,
            "completed": confirmed,
        }


def _grand_id(inviter_state: Mapping[str, Any]) -> str:
    return _text(inviter_state.get("inviter")) or ""


def _grand(
    inviter: str, inviter_state: Mapping[str, Any], grand_state: Mapping[str, Any]
) -> str | None:
    """The inviter's own inviter, when that referral is pending or confirmed."""
    grand = _text(inviter_state.get("inviter"))
    if grand is None:
        return None
    if effective_status(inviter_state, grand_state, inviter) not in ("pending", "confirmed"):
        return None
    return grand


def _split(member_id: str) -> tuple[str, str]:
    platform, _, user = member_id.partition(":")
    return platform, user


@hookimpl
def communitykit_campaign_types() -> Iterable[CampaignType]:
    return [
        CampaignType(
            name="referral",
            factory=ReferralCampaign.from_settings,
            description="personal invites (裂变) rewarded once newcomers stay",
            takes_timezone=True,
        )
    ]
