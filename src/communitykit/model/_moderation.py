"""What moderation rules share: durations, scopes and exemptions, the warning
ladder, a member's recent messages, and the audit trail's records.

Everything here is pure: values in, values out. The engine keeps the state
(warnings, recent messages) and asks these functions what it means.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple

import attrs

from communitykit._errors import ModelError
from communitykit.model._actions import Action
from communitykit.model._members import Member, Role

__all__ = [
    "AuditKind",
    "AuditRecord",
    "LadderStep",
    "Recent",
    "RuleScope",
    "WarningLadder",
    "fingerprint",
    "normalize_text",
    "parse_duration",
]

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


#: the longest duration a setting may give (a hundred years)
LONGEST = timedelta(days=36_500)


def parse_duration(value: object, what: str = "duration") -> timedelta:
    """Read ``"90s"``, ``"10m"``, ``"1h"``, ``"3d"``, ``"2w"`` (or a number of seconds),
    up to a hundred years."""
    seconds = 0
    if type(value) is int:
        seconds = value
    elif isinstance(value, str):
        found = _DURATION.match(value)
        if found:
            seconds = int(found.group(1)) * _UNITS[found.group(2)]
    if seconds > LONGEST.total_seconds():
        raise ModelError(f"{what} must be at most 100 years, got {value!r}")
    if seconds > 0:
        return timedelta(seconds=seconds)
    raise ModelError(
        f"{what} must be a positive number of seconds or a text like '90s', '10m', '1h', '3d', "
        f"'2w', got {value!r}"
    )


def format_duration(value: timedelta) -> str:
    """The shortest exact text :func:`parse_duration` reads back (``"1h"``, ``"90s"``)."""
    seconds = int(value.total_seconds())
    for unit in ("w", "d", "h", "m"):
        if seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


_SPACE = re.compile(r"\s+")


@functools.lru_cache(maxsize=256)  # the rules of one message each ask for its text
def normalize_text(text: str) -> str:
    """Text as rules compare it: NFKC (full-width letters and digits become plain),
    case-folded, white space collapsed. Chinese characters are kept as they are."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


@functools.lru_cache(maxsize=256)
def fingerprint(text: str) -> int:
    """A stable 64-bit fingerprint of :func:`normalize_text` (equal texts, equal prints)."""
    digest = hashlib.blake2b(normalize_text(text).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


#: the most recent messages the engine remembers per member (``ctx.recent``)
RECENT_LIMIT = 64


class Recent(NamedTuple):
    """One recent message of a member, as the engine remembers it for rules."""

    at: datetime
    platform: str
    group: str | None
    message_id: str
    fingerprint: int  # of the text (see :func:`fingerprint`)


# ----------------------------------------------------------------------- scope


def _names(value: object, key: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset({value})
    if isinstance(value, Iterable) and all(isinstance(v, str) for v in value):
        return frozenset(value)
    raise ModelError(f"{key} must be a list of names, got {value!r}")


def _roles(value: object) -> frozenset[Role]:
    found = set()
    for name in _names(value, "exempt_roles"):
        try:
            found.add(Role(name))
        except ValueError:
            known = ", ".join(r.value for r in Role)
            raise ModelError(f"exempt_roles: unknown role {name!r} (known: {known})") from None
    return frozenset(found)


#: the settings every rule takes besides its own (read by :meth:`RuleScope.split`)
SCOPE_KEYS = ("groups", "exempt_roles", "exempt_tiers", "exempt_tags", "exempt_paid")


@attrs.frozen(kw_only=True, cache_hash=True)
class RuleScope:
    """Where a rule applies and who it leaves alone.

    ``groups`` holds group keys (empty: every group, and direct messages);
    owners and admins are exempt unless ``exempt_roles`` says otherwise; members
    of ``exempt_tiers``, with a tag in ``exempt_tags``, or paid when
    ``exempt_paid``, are exempt too.
    """

    groups: frozenset[str] = frozenset()
    exempt_roles: frozenset[Role] = frozenset({Role.OWNER, Role.ADMIN})
    exempt_tiers: frozenset[str] = frozenset()
    exempt_tags: frozenset[str] = frozenset()
    exempt_paid: bool = False

    @classmethod
    def split(cls, settings: Mapping[str, Any]) -> tuple[RuleScope, dict[str, Any]]:
        """The scope a rule's settings declare, and the settings left for the rule."""
        rest = {k: v for k, v in settings.items() if k not in SCOPE_KEYS}
        paid = settings.get("exempt_paid", False)
        if type(paid) is not bool:
            raise ModelError(f"exempt_paid must be true or false, got {paid!r}")
        scope = cls(
            groups=_names(settings.get("groups"), "groups"),
            exempt_roles=(
                _roles(settings["exempt_roles"])
                if "exempt_roles" in settings
                else frozenset({Role.OWNER, Role.ADMIN})
            ),
            exempt_tiers=_names(settings.get("exempt_tiers"), "exempt_tiers"),
            exempt_tags=_names(settings.get("exempt_tags"), "exempt_tags"),
            exempt_paid=paid,
        )
        return scope, rest

    def covers(self, group_key: str | None) -> bool:
        """Whether the rule applies in the group with this key (``None``: not a known group)."""
        return not self.groups or (group_key is not None and group_key in self.groups)

    def exemption(self, member: Member, tier: str, today: date | None) -> str | None:
        """Why ``member`` is exempt (a phrase), or ``None`` when the rule applies to them.

        ``today`` (the community's day) is needed only when paid members are exempt.
        """
        if member.role in self.exempt_roles:
            return f"role {member.role.value}"
        if tier in self.exempt_tiers:
            return f"tier {tier}"
        if self.exempt_tags and not self.exempt_tags.isdisjoint(member.tags):
            return f"tag {min(self.exempt_tags & member.tags)}"
        if self.exempt_paid and today is not None and member.is_paid(today):
            return "paid member"
        return None


# ---------------------------------------------------------------------- ladder


class StepKind(StrEnum):
    WARN = "warn"
    MUTE = "mute"
    KICK = "kick"
    BAN = "ban"


@attrs.frozen
class LadderStep:
    """One step of the warning ladder: ``warn``, ``mute`` (for a time), ``kick``,
    ``ban`` (for a time, or for good)."""

    kind: StepKind = attrs.field(converter=StepKind)
    duration: timedelta | None = None

    @classmethod
    def parse(cls, text: object) -> LadderStep:
        """Read ``"warn"``, ``"mute:1h"``, ``"kick"``, ``"ban"`` or ``"ban:7d"``."""
        if not isinstance(text, str):
            raise ModelError(f"a ladder step is a text like 'warn' or 'mute:1h', got {text!r}")
        name, _, length = text.strip().partition(":")
        try:
            kind = StepKind(name)
        except ValueError:
            raise ModelError(
                f"unknown ladder step {text!r} (use warn, mute:<duration>, kick, ban[:<duration>])"
            ) from None
        if kind is StepKind.MUTE and not length:
            raise ModelError(f"a mute step needs a duration, like 'mute:1h', got {text!r}")
        if kind in (StepKind.WARN, StepKind.KICK) and length:
            raise ModelError(f"a {kind.value} step takes no duration, got {text!r}")
        return cls(kind, parse_duration(length, f"step {text!r}") if length else None)

    def __str__(self) -> str:
        if self.duration is None:
            return self.kind.value
        return f"{self.kind.value}:{format_duration(self.duration)}"


def _steps(value: Iterable[LadderStep]) -> tuple[LadderStep, ...]:
    steps = tuple(value)
    if not steps:
        raise ModelError("a warning ladder needs at least one step")
    return steps


@attrs.frozen(kw_only=True)
class WarningLadder:
    """How warnings escalate: the n-th active warning takes step n (the last step
    repeats beyond the end). Each warning decays ``decay`` after it was given:
    a decayed warning never counts again. Only a pardon clears warnings early.

    So between two offences with no decay and no pardon in between, the step
    rises by exactly one (until the last); it never skips one, and it falls only
    as old warnings decay.
    """

    steps: tuple[LadderStep, ...] = attrs.field(
        default=(
            LadderStep(StepKind.WARN),
            LadderStep(StepKind.MUTE, timedelta(hours=1)),
            LadderStep(StepKind.MUTE, timedelta(days=1)),
            LadderStep(StepKind.KICK),
            LadderStep(StepKind.BAN),
        ),
        converter=_steps,
    )
    decay: timedelta = timedelta(days=30)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> WarningLadder:
        unknown = set(settings) - {"steps", "decay"}
        if unknown:
            raise ModelError(f"unknown warning_ladder settings: {', '.join(sorted(unknown))}")
        steps = settings.get("steps")
        decay = settings.get("decay")
        default = cls()
        return cls(
            steps=(
                default.steps
                if steps is None
                else tuple(LadderStep.parse(s) for s in _list(steps, "steps"))
            ),
            decay=default.decay if decay is None else parse_duration(decay, "decay"),
        )

    def active(self, warnings: Sequence[datetime], now: datetime) -> tuple[datetime, ...]:
        """The warnings that have not decayed at ``now``, in the order given."""
        return tuple(w for w in warnings if now < w + self.decay)

    def strike(
        self, warnings: Sequence[datetime], now: datetime
    ) -> tuple[tuple[datetime, ...], int, LadderStep]:
        """A new warning at ``now``: the active warnings after it, and the step
        (its 0-based index and the step) it takes."""
        kept = (*self.active(warnings, now), now)
        index = min(len(kept), len(self.steps)) - 1
        return kept, index, self.steps[index]


def _list(value: object, key: str) -> Sequence[object]:
    if isinstance(value, list | tuple):
        return value
    raise ModelError(f"{key} must be a list, got {value!r}")


# ----------------------------------------------------------------------- audit


class AuditKind(StrEnum):
    VERDICT = "verdict"  # a rule decided actions
    FALLBACK = "fallback"  # an action could not be performed; the next one was taken
    PARDON = "pardon"  # an operator cleared a member's warnings


def _audit_kind(value: AuditKind | str) -> AuditKind:
    return value if type(value) is AuditKind else AuditKind(value)


@attrs.frozen(kw_only=True)
class AuditRecord:
    """One line of the audit trail: who decided what about whom, when, and why.

    ``seq`` orders the trail (``0`` until stored); ``event`` is ``platform:event_id``
    of the event the verdict was about (``None`` for scheduled work and pardons).
    """

    seq: int = 0
    at: datetime
    kind: AuditKind = attrs.field(converter=_audit_kind)
    rule: str
    member_id: str | None
    event: str | None = None
    actions: tuple[Action, ...] = ()
    explanation: str

    def numbered(self, seq: int) -> AuditRecord:
        """This record at position ``seq`` of the trail (what a store keeps)."""
        return AuditRecord(
            seq=seq,
            at=self.at,
            kind=self.kind,
            rule=self.rule,
            member_id=self.member_id,
            event=self.event,
            actions=self.actions,
            explanation=self.explanation,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at.isoformat(),
            "kind": self.kind.value,
            "rule": self.rule,
            "member": self.member_id,
            "event": self.event,
            "actions": [action.to_dict() for action in self.actions],
            "explanation": self.explanation,
        }
