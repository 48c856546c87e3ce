"""The ``entry`` rule type: who may join a group that asks for approval.

A join request is approved or declined by a questionnaire, by paid membership,
or by an invite from an active member. Also home to the small helpers the
membership rule types share (message templates, mentions, modes).
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar, Literal

import attrs

from communitykit._errors import ModelError
from communitykit.builtins.rules._common import Settings, compile_pattern
from communitykit.model import (
    ApproveJoin,
    Decision,
    DeclineJoin,
    JoinRequested,
    Member,
    MemberStatus,
    RuleContext,
    SendDirectMessage,
    normalize_text,
)

__all__ = ["EntryRule", "Question", "mention", "mode", "parse_time", "template"]

Mode = Literal["enough", "required", "ignore"]
_MODES: tuple[Mode, ...] = ("enough", "required", "ignore")


# --------------------------------------------------------------- shared helpers


def template(
    settings: Settings, rule_type: str, key: str, default: str, fields: Sequence[str]
) -> str:
    """A message template setting: a text whose ``{placeholders}`` are all in ``fields``."""
    text = settings.text(key, default)
    try:
        parts = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(text)]
    except ValueError as exc:
        raise ModelError(f"{rule_type} rule: {key} is not a valid template ({exc})") from None
    if any(name is not None and (spec or conv) for name, spec, conv in parts):
        raise ModelError(
            f"{rule_type} rule: {key} may only use plain placeholders like {{name}} "
            f"(no conversions or formats), got {text!r}"
        )
    names = {name for name, _, _ in parts if name is not None}
    unknown = sorted(n for n in names if n not in fields)
    if unknown:
        raise ModelError(
            f"{rule_type} rule: {key} may use the placeholders "
            f"{', '.join('{' + f + '}' for f in fields)}, got {text!r} "
            f"(unknown: {', '.join(unknown)})"
        )
    return text


def mode(settings: Settings, rule_type: str, key: str) -> Mode:
    """One of ``"enough"``, ``"required"``, ``"ignore"`` (default ``"ignore"``)."""
    value = settings.raw(key, "ignore")
    for known in _MODES:
        if value == known:
            return known
    raise ModelError(
        f"{rule_type} rule: {key} must be 'enough', 'required' or 'ignore', got {value!r}"
    )


def mention(name: str | None, user: str) -> str:
    """How a message names a member in text: ``@name`` (or ``@user id``)."""
    shown = (name or "").strip()
    return f"@{shown}" if shown else f"@{user}"


def parse_time(value: object) -> datetime | None:
    """A datetime a rule stored as ISO text (``None`` when absent or unreadable)."""
    if not isinstance(value, str):
        return None
    try:
        found = datetime.fromisoformat(value)
    except ValueError:
        return None
    return found if found.tzinfo is not None else None


# ---------------------------------------------------------------- questionnaire


@attrs.frozen
class Question:
    """One entry question: ``accept`` holds plain answers (compared after
    :func:`normalize_text`) and ``re:`` patterns; empty accepts any non-blank answer."""

    question: str
    required: bool = True
    plain: frozenset[str] = frozenset()
    patterns: tuple[re.Pattern[str], ...] = ()

    @property
    def open(self) -> bool:
        return not self.plain and not self.patterns

    def accepts(self, answer: str) -> bool:
        if self.open:
            return True
        if answer in self.plain:
            return True
        return any(p.search(answer) for p in self.patterns)


def _questions(value: object) -> tuple[Question, ...]:
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise ModelError(f"entry rule: questions must be a list of tables, got {value!r}")
    found: list[Question] = []
    seen: set[str] = set()
    for index, item in enumerate(value):
        where = f"questions[{index}]"
        if not isinstance(item, Mapping):
            raise ModelError(f"entry rule: {where} must be a table, got {item!r}")
        text = item.get("question")
        if not isinstance(text, str) or not text.strip():
            raise ModelError(f"entry rule: {where}.question must be a non-empty text, got {text!r}")
        key = normalize_text(text)
        if key in seen:
            raise ModelError(f"entry rule: {where}.question repeats the question {text!r}")
        seen.add(key)
        required = item.get("required", True)
        if type(required) is not bool:
            raise ModelError(
                f"entry rule: {where}.required must be true or false, got {required!r}"
            )
        accept = item.get("accept", [])
        if not isinstance(accept, list | tuple) or not all(isinstance(a, str) for a in accept):
            raise ModelError(f"entry rule: {where}.accept must be a list of texts, got {accept!r}")
        plain: set[str] = set()
        patterns: list[re.Pattern[str]] = []
        for answer in accept:
            if answer.startswith("re:"):
                patterns.append(compile_pattern(answer[3:], f"entry rule: {where}.accept"))
            elif not normalize_text(answer):
                raise ModelError(f"entry rule: {where}.accept holds a blank answer")
            else:
                plain.add(normalize_text(answer))
        unknown = sorted(set(item) - {"question", "required", "accept"})
        if unknown:
            raise ModelError(f"entry rule: {where} has unknown settings: {', '.join(unknown)}")
        found.append(Question(text.strip(), required, frozenset(plain), tuple(patterns)))
    return tuple(found)


# ------------------------------------------------------------------------- rule

_DECLINE = "Your request to join {group} was declined: {reason}."
_ALLOWED = "group", "reason"


@attrs.frozen(kw_only=True)
class EntryRule:
    """Approves or declines ``join_requested`` events; see ``docs/rules-membership.md``."""

    name: str = "entry"
    questions: tuple[Question, ...] = ()
    paid: Mode = "ignore"
    member_invites: Mode = "ignore"
    decline_message: str = _DECLINE
    event_types: ClassVar[frozenset[str]] = frozenset({"join_requested"})

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> EntryRule:
        reader = Settings(settings, "entry")
        rule = cls(
            name=reader.name(),
            questions=_questions(reader.raw("questions")),
            paid=mode(reader, "entry", "paid"),
            member_invites=mode(reader, "entry", "member_invites"),
            decline_message=template(reader, "entry", "decline_message", _DECLINE, _ALLOWED),
        )
        reader.done()
        if not rule.questions and rule.paid == "ignore" and rule.member_invites == "ignore":
            raise ModelError(
                "entry rule: set at least one of questions, paid or member_invites "
                "(without them every request would pass)"
            )
        return rule

    @property
    def source(self) -> str:
        return f"rule:{self.name}"

    def evaluate(self, ctx: RuleContext) -> Decision | None:
        event = ctx.event
        if not isinstance(event, JoinRequested):
            return None
        paid = ctx.member.is_paid(event.at.astimezone(ctx.community.tz).date())
        owner = _valid_owner(ctx, event.invite)
        if self.paid == "required" and not paid:
            return self._decline(ctx, "a paid membership is required")
        if self.member_invites == "required" and owner is None:
            return self._decline(ctx, "an invite from an active member is required")
        if self.paid == "enough" and paid:
            return self._approve(ctx, "is a paid member")
        if self.member_invites == "enough" and owner is not None:
            return self._approve(ctx, f"was invited by active member {owner.member_id}")
        if not self.questions:
            wanted = [
                *(["a paid membership"] if self.paid == "enough" else []),
                *(["an invite from an active member"] if self.member_invites == "enough" else []),
            ]
            return self._decline(ctx, f"{' or '.join(wanted)} is needed to join")
        failure = self._questionnaire(event.answers)
        if failure is not None:
            return self._decline(ctx, failure)
        why = (
            "answered every required question acceptably"
            if any(q.required for q in self.questions)
            else "answered the questionnaire"
        )
        if self.paid == "required":
            why = f"is a paid member and {why}"
        if self.member_invites == "required" and owner is not None:
            why = f"was invited by active member {owner.member_id} and {why}"
        return self._approve(ctx, why)

    def _questionnaire(self, answers: Mapping[str, str]) -> str | None:
        given = {normalize_text(q): normalize_text(a) for q, a in answers.items()}
        for question in self.questions:
            answer = given.get(normalize_text(question.question), "")
            if not question.required:
                continue
            if not answer:
                return f"question {question.question!r} was not answered"
            if not question.accepts(answer):
                return f"the answer to question {question.question!r} was not accepted"
        return None

    def _approve(self, ctx: RuleContext, why: str) -> Decision:
        action = ctx.action(ApproveJoin, self.source, f"approved: {why}")
        return Decision(
            source=self.source,
            explanation=f"join request approved: the requester {why}",
            actions=(action,),
        )

    def _decline(self, ctx: RuleContext, reason: str) -> Decision:
        group = ctx.group
        title = (group.title or group.key) if group is not None else "the group"
        text = self.decline_message.format(group=title, reason=reason)
        decline = ctx.action(DeclineJoin, self.source, f"declined: {reason}")
        tell = ctx.action(SendDirectMessage, self.source, reason, 1, group=None, text=text)
        return Decision(
            source=self.source,
            explanation=f"join request declined: {reason}",
            actions=(decline, tell),
        )


def _valid_owner(ctx: RuleContext, invite: str | None) -> Member | None:
    if not invite:
        return None
    owner = ctx.invite_owner(invite)
    if owner is None or owner.status is not MemberStatus.ACTIVE:
        return None
    if owner.member_id == ctx.member_id:
        return None
    return owner
