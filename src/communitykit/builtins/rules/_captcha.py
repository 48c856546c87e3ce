"""The ``captcha`` rule type: a newcomer answers a challenge or is removed.

On ``member_joined`` the rule posts a challenge in the group: send
``/verify CODE`` (a button on platforms that have them sends the same command)
before the deadline. The code is four digits derived from the event id, so a
replay asks the same question. A scheduled run kicks (or, after repeated
failures, bans) whoever let the deadline pass.

What the rule remembers about a member: ``{"platform", "group", "user",
"deadline", "code", "failures"}`` while a challenge is pending, and only
``{"failures": n}`` once it is answered (``failures`` counts deadlines missed
in a row, and survives leaving and joining again).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar

import attrs

from communitykit._errors import ModelError
from communitykit.builtins.rules._common import Settings
from communitykit.builtins.rules._entry import mention, parse_time, template
from communitykit.model import (
    Action,
    Ban,
    CommandInvoked,
    Decision,
    DeleteMessage,
    Kick,
    MemberJoined,
    MessagePosted,
    RuleContext,
    SendDirectMessage,
    SendMessage,
    TickContext,
    normalize_text,
    stable_id,
)
from communitykit.model._moderation import format_duration

__all__ = ["CaptchaRule", "captcha_code"]

_CHALLENGE = (
    "Welcome, {mention}! To show you are human, send /{command} {code} "
    "(or press the button) within {timeout}, or you will be removed."
)
_WELCOME = "Thanks, {mention}, you are verified. Welcome!"
_WRONG = "{mention}, that code is not right. Please try again: /{command} <code>."
_FIELDS = ("mention", "name", "command", "code", "timeout")


def captcha_code(platform: str, event_id: str) -> str:
    """The four digits a join event's challenge asks for (the same every time)."""
    digest = hashlib.blake2b(f"{platform}\x1f{event_id}".encode(), digest_size=8).digest()
    return f"{int.from_bytes(digest, 'big') % 10000:04d}"


def _failures(state: Mapping[str, Any]) -> int:
    value = state.get("failures", 0)
    return value if type(value) is int and value >= 0 else 0


@attrs.frozen(kw_only=True)
class CaptchaRule:
    """Challenges newcomers; see ``docs/rules-membership.md``."""

    name: str = "captcha"
    timeout: timedelta = timedelta(minutes=5)
    command: str = "verify"
    ban_after: int = 3
    delete_unverified: bool = False
    challenge: str = _CHALLENGE
    welcome: str = _WELCOME
    wrong: str = _WRONG
    event_types: ClassVar[frozenset[str]] = frozenset(
        {"member_joined", "command_invoked", "message_posted"}
    )

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> CaptchaRule:
        reader = Settings(settings, "captcha")
        command = reader.text("command", "verify").strip()
        if not command or command.startswith("/") or any(c.isspace() for c in command):
            raise ModelError(
                f"captcha rule: command must be a command name without '/' or spaces, "
                f"like 'verify', got {reader.raw('command')!r}"
            )
        rule = cls(
            name=reader.name(),
            timeout=reader.duration("timeout", timedelta(minutes=5)),
            command=command,
            ban_after=reader.integer("ban_after", 3, minimum=1),
            delete_unverified=reader.flag("delete_unverified", False),
            challenge=template(reader, "captcha", "challenge", _CHALLENGE, _FIELDS),
            welcome=template(reader, "captcha", "welcome", _WELCOME, _FIELDS),
            wrong=template(reader, "captcha", "wrong", _WRONG, _FIELDS),
        )
        reader.done()
        return rule

    @property
    def source(self) -> str:
        return f"rule:{self.name}"

    def _text(self, text: str, name: str | None, user: str, code: str = "") -> str:
        return text.format(
            mention=mention(name, user),
            name=(name or "").strip() or user,
            command=self.command,
            code=code,
            timeout=format_duration(self.timeout),
        )

    # --------------------------------------------------------------- events

    def evaluate(self, ctx: RuleContext) -> Decision | None:
        event = ctx.event
        if isinstance(event, MessagePosted):  # the most frequent event by far
            return self._message(ctx, event)
        if isinstance(event, MemberJoined):
            return self._joined(ctx, event)
        if isinstance(event, CommandInvoked):
            return self._command(ctx, event)
        return None

    def _joined(self, ctx: RuleContext, event: MemberJoined) -> Decision | None:
        if event.group is None:
            return None
        code = captcha_code(event.platform, event.event_id)
        deadline = event.at + self.timeout
        name = event.display_name or ctx.member.display_name
        text = self._text(self.challenge, name, event.user, code)
        post = ctx.action(SendMessage, self.source, "captcha challenge for a newcomer", text=text)
        state = {
            "platform": event.platform,
            "group": event.group,
            "user": event.user,
            "deadline": deadline.isoformat(),
            "code": code,
            "failures": _failures(ctx.rule_state(self.name)),
        }
        return Decision(
            source=self.source,
            explanation=(
                f"joined; must answer the captcha within {format_duration(self.timeout)} "
                f"(by {deadline.isoformat()})"
            ),
            actions=(post,),
            state=state,
        )

    def _pending(self, ctx: RuleContext) -> tuple[Mapping[str, Any], datetime] | None:
        state = ctx.rule_state(self.name)
        deadline = parse_time(state.get("deadline"))
        if deadline is None or ctx.event.at > deadline:
            return None
        return state, deadline

    def _command(self, ctx: RuleContext, event: CommandInvoked) -> Decision | None:
        if event.command.casefold() != self.command.casefold():
            return None
        pending = self._pending(ctx)
        if pending is None:
            return None
        state, _deadline = pending
        name = ctx.member.display_name
        answer = normalize_text(" ".join(event.args)).replace(" ", "")
        if answer == state.get("code"):
            group = state.get("group")
            text = self._text(self.welcome, name, event.user)
            welcome = ctx.action(
                SendMessage,
                self.source,
                "captcha answered",
                group=group if isinstance(group, str) else event.group,
                text=text,
            )
            return Decision(
                source=self.source,
                explanation="answered the captcha correctly before the deadline",
                actions=(welcome,) if welcome.group is not None else (),
                state={},  # verified: nothing left to remember (no failures in a row)
            )
        text = self._text(self.wrong, name, event.user)
        reply: Action
        if event.group is None:
            reply = ctx.action(SendDirectMessage, self.source, "wrong captcha code", text=text)
        else:
            reply = ctx.action(SendMessage, self.source, "wrong captcha code", text=text)
        return Decision(
            source=self.source,
            explanation="answered the captcha with a wrong code; may try again until the deadline",
            actions=(reply,),
        )

    def _message(self, ctx: RuleContext, event: MessagePosted) -> Decision | None:
        if not self.delete_unverified or event.group is None:
            return None
        pending = self._pending(ctx)
        if pending is None or pending[0].get("group") != event.group:
            return None
        delete = ctx.action(
            DeleteMessage,
            self.source,
            "message from a member who has not answered the captcha",
            message_id=event.message_id,
        )
        return Decision(
            source=self.source,
            explanation="posted before answering the captcha; the message is deleted",
            actions=(delete,),
        )

    # ------------------------------------------------------------- schedule

    def next_run(self, after: datetime | None, tick: TickContext) -> datetime | None:
        """The earliest pending deadline (even one already past: it is due now)."""
        earliest: datetime | None = None
        for _member_id, state in tick.rule_states(self.name):
            deadline = parse_time(state.get("deadline"))
            if deadline is not None and (earliest is None or deadline < earliest):
                earliest = deadline
        return earliest

    def on_schedule(self, tick: TickContext) -> Iterable[Decision]:
        decisions: list[Decision] = []
        for member_id, state in sorted(tick.rule_states(self.name)):
            deadline = parse_time(state.get("deadline"))
            if deadline is None or deadline > tick.now:
                continue
            decisions.append(self._expired(tick, member_id, state, deadline))
        return decisions

    def _expired(
        self, tick: TickContext, member_id: str, state: Mapping[str, Any], deadline: datetime
    ) -> Decision:
        failures = _failures(state)
        platform, group, user = state.get("platform"), state.get("group"), state.get("user")
        if not (isinstance(platform, str) and isinstance(group, str) and isinstance(user, str)):
            return Decision(
                source=self.source,
                explanation="a captcha deadline passed, but the challenge was incomplete; dropped",
                state={"failures": failures},
                member=member_id,
            )
        known = tick.community.group(platform, group)
        if known is not None and known.key not in tick.groups_of(member_id):
            return Decision(
                source=self.source,
                explanation=(f"left group {known.key} before the captcha deadline; nothing to do"),
                state={"failures": failures},
                member=member_id,
            )
        failures += 1
        moment = deadline.isoformat()
        where = known.key if known is not None else group
        reason = f"did not answer the captcha by {moment}"
        banned = failures >= self.ban_after
        kind: type[Kick | Ban] = Ban if banned else Kick
        action = kind(
            action_id=stable_id(self.name, member_id, moment, kind.TYPE),
            platform=platform,
            group=group,
            user=user,
            source=self.source,
            reason=reason,
        )
        if banned:
            outcome = f"banned from {where} (missed captcha {failures} in a row)"
        else:
            outcome = (
                f"removed from {where} (missed captcha {failures} of {self.ban_after} before a ban)"
            )
        return Decision(
            source=self.source,
            explanation=(
                f"did not answer the captcha within {format_duration(self.timeout)}; {outcome}"
            ),
            actions=(action,),
            state={"failures": failures},
            member=member_id,
        )
