"""Segments: named sets of members, and how they compose.

A :class:`Segment` is a predicate over a :class:`MemberView` — a member with
what is known about them at one moment: their record, state, lifecycle stage,
tier, groups, platforms, and activity counts over a period. ``a & b``,
``a | b`` and ``~a`` (or :class:`And`, :class:`Or`, :class:`Not`) compose
segments; :func:`evaluate` turns one into the frozenset of the member ids in
it.

:func:`parse_expression` reads the small language of ``where = "..."`` in
``community.toml``: names, ``and``, ``or``, ``not`` and parentheses, ``not``
binding tightest and ``or`` loosest (``tier:gold and (active or contributors)
and not tag:staff``). It returns an :class:`Expr` tree; :func:`build` turns it
into a segment given a function resolving names.

Built-in segments by name (see :func:`builtin_segment`): ``all``, the six
lifecycle stages, ``paying``, ``admins``, ``kols``, ``contributors`` and the
prefixed ``tier:<name>``, ``tag:<tag>``, ``group:<key>``, ``platform:<name>``.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

import attrs

from communitykit._errors import ModelError
from communitykit.model._decisions import MemberState
from communitykit.model._events import Media
from communitykit.model._lifecycle import Stage
from communitykit.model._members import Member, MemberStatus, Role

__all__ = [
    "BUILTIN_SEGMENTS",
    "BUILTIN_TYPES",
    "NO_ACTIVITY",
    "Activity",
    "And",
    "Contributors",
    "Expr",
    "MemberView",
    "Named",
    "Not",
    "Or",
    "Period",
    "Posted",
    "Predicate",
    "Segment",
    "SegmentError",
    "build",
    "builtin_segment",
    "contributors_segment",
    "evaluate",
    "parse_expression",
    "parse_period",
    "posted_segment",
]


class SegmentError(ModelError):
    """A segment expression or definition that cannot be."""


# --------------------------------------------------------------------------- periods


@attrs.frozen
class Period:
    """A stretch of time ending now: the last ``days`` days, or this calendar ``unit``.

    ``unit`` is ``"day"``, ``"week"`` (from Monday) or ``"month"``, in the
    community's time zone.
    """

    days: int | None = None
    unit: str | None = None

    def __attrs_post_init__(self) -> None:
        if (self.days is None) == (self.unit is None):
            raise SegmentError("a period is either a number of days or a calendar unit")
        if self.days is not None and self.days < 1:
            raise SegmentError(f"a period needs at least 1 day, got {self.days}")
        if self.unit is not None and self.unit not in ("day", "week", "month"):
            raise SegmentError(f"unknown period unit {self.unit!r}")

    def start(self, now: datetime, tz: tzinfo) -> datetime:
        """The first moment of the period that ends at ``now``."""
        if self.days is not None:
            return now - timedelta(days=self.days)
        local = now.astimezone(tz)
        day = local.date()
        if self.unit == "week":
            day -= timedelta(days=day.weekday())
        elif self.unit == "month":
            day = day.replace(day=1)
        return datetime(day.year, day.month, day.day, tzinfo=tz)

    @property
    def text(self) -> str:
        return f"{self.days}d" if self.days is not None else str(self.unit)


_PERIOD = re.compile(r"([1-9][0-9]{0,4})d")
MAX_PERIOD_DAYS = 99_999
"""The longest period a segment counts activity over, in days."""


def parse_period(text: str) -> Period:
    """``"month"``, ``"week"``, ``"day"`` or ``"<N>d"`` (the last N days)."""
    if text in ("day", "week", "month"):
        return Period(unit=text)
    match = _PERIOD.fullmatch(text)
    if match is None:
        raise SegmentError(
            f"expected a period: 'day', 'week', 'month' or a number of days like '30d', "
            f"got {text!r}"
        )
    return Period(days=int(match.group(1)))


@attrs.frozen(kw_only=True)
class Activity:
    """What a member did (and drew) over a period.

    ``messages`` posted, of them ``media`` by kind (``{"photo": 3}``),
    ``replies`` and ``reactions`` received from other members on their messages.
    """

    messages: int = 0
    media: Mapping[str, int] = attrs.field(factory=dict)
    replies: int = 0
    reactions: int = 0


NO_ACTIVITY = Activity()


# --------------------------------------------------------------------------- members


@attrs.frozen(kw_only=True)
class MemberView:
    """A member as segments see them at one moment (``today``: the community's day)."""

    member: Member
    state: MemberState | None
    stage: Stage
    tier: str
    today: date
    groups: frozenset[str] = frozenset()
    activity: Mapping[Period, Activity] = attrs.field(factory=dict)

    @property
    def member_id(self) -> str:
        return self.member.member_id

    @property
    def platforms(self) -> frozenset[str]:
        return frozenset(identity.platform for identity in self.member.identities)

    def activity_in(self, period: Period) -> Activity:
        return self.activity.get(period, NO_ACTIVITY)


# --------------------------------------------------------------------------- segments


class Segment(abc.ABC):
    """A set of members, given as a predicate over :class:`MemberView`."""

    @property
    @abc.abstractmethod
    def text(self) -> str:
        """The segment written as an expression."""

    @abc.abstractmethod
    def contains(self, view: MemberView) -> bool: ...

    def periods(self) -> frozenset[Period]:
        """The periods whose activity the predicate reads."""
        return frozenset()

    def __and__(self, other: Segment) -> Segment:
        return And((self, other))

    def __or__(self, other: Segment) -> Segment:
        return Or((self, other))

    def __invert__(self) -> Segment:
        return Not(self)

    def __repr__(self) -> str:
        return f"<Segment {self.text}>"


@attrs.frozen(repr=False, eq=False)
class Predicate(Segment):
    """A leaf: ``name`` and the test it stands for."""

    name: str
    test: Callable[[MemberView], bool]

    @property
    def text(self) -> str:
        return self.name

    def contains(self, view: MemberView) -> bool:
        return self.test(view)


@attrs.frozen(repr=False, eq=False)
class And(Segment):
    parts: tuple[Segment, ...]

    @property
    def text(self) -> str:
        return " and ".join(f"({p.text})" if isinstance(p, Or) else p.text for p in self.parts)

    def contains(self, view: MemberView) -> bool:
        return all(part.contains(view) for part in self.parts)

    def periods(self) -> frozenset[Period]:
        return frozenset().union(*(part.periods() for part in self.parts))


@attrs.frozen(repr=False, eq=False)
class Or(Segment):
    parts: tuple[Segment, ...]

    @property
    def text(self) -> str:
        return " or ".join(f"({p.text})" if isinstance(p, And) else p.text for p in self.parts)

    def contains(self, view: MemberView) -> bool:
        return any(part.contains(view) for part in self.parts)

    def periods(self) -> frozenset[Period]:
        return frozenset().union(*(part.periods() for part in self.parts))


@attrs.frozen(repr=False, eq=False)
class Not(Segment):
    part: Segment

    @property
    def text(self) -> str:
        return (
            f"not ({self.part.text})"
            if isinstance(self.part, And | Or)
            else f"not {self.part.text}"
        )

    def contains(self, view: MemberView) -> bool:
        return not self.part.contains(view)

    def periods(self) -> frozenset[Period]:
        return self.part.periods()


@attrs.frozen(repr=False, eq=False)
class Named(Segment):
    """A segment defined under a name: shown by its name, tested by its definition."""

    name: str
    definition: Segment

    @property
    def text(self) -> str:
        return self.name

    def contains(self, view: MemberView) -> bool:
        return self.definition.contains(view)

    def periods(self) -> frozenset[Period]:
        return self.definition.periods()


@attrs.frozen(repr=False, eq=False, kw_only=True)
class Contributors(Segment):
    """Current members whose messages drew at least ``responses`` replies and
    reactions from others in ``period``."""

    responses: int = 3
    period: Period = Period(days=30)
    label: str = ""

    def __attrs_post_init__(self) -> None:
        if self.responses < 1:
            raise SegmentError(f"contributors need responses >= 1, got {self.responses}")

    @property
    def text(self) -> str:
        return self.label or f"contributors({self.responses} in {self.period.text})"

    def contains(self, view: MemberView) -> bool:
        if not _current(view):
            return False
        done = view.activity_in(self.period)
        return done.replies + done.reactions >= self.responses

    def periods(self) -> frozenset[Period]:
        return frozenset({self.period})


@attrs.frozen(repr=False, eq=False, kw_only=True)
class Posted(Segment):
    """Current members who posted at least ``messages`` messages in ``period``
    (only those with ``media`` of that kind, when it is set)."""

    messages: int = 1
    media: str | None = None
    period: Period = Period(unit="month")
    label: str = ""

    def __attrs_post_init__(self) -> None:
        if self.messages < 1:
            raise SegmentError(f"posted needs messages >= 1, got {self.messages}")

    @property
    def text(self) -> str:
        what = (
            f"{self.messages} {self.media} message(s)"
            if self.media
            else f"{self.messages} message(s)"
        )
        return self.label or f"posted({what} in {self.period.text})"

    def contains(self, view: MemberView) -> bool:
        if not _current(view):
            return False
        done = view.activity_in(self.period)
        count = done.media.get(self.media, 0) if self.media else done.messages
        return count >= self.messages

    def periods(self) -> frozenset[Period]:
        return frozenset({self.period})


def evaluate(segment: Segment, views: Iterable[MemberView]) -> frozenset[str]:
    """The ids of the members of ``views`` in ``segment``."""
    return frozenset(view.member_id for view in views if segment.contains(view))


# --------------------------------------------------------------------------- built-ins


def _current(view: MemberView) -> bool:
    return view.member.status not in (MemberStatus.LEFT, MemberStatus.BANNED)


def _stage(stage: Stage) -> Predicate:
    return Predicate(stage.value, lambda view: view.stage is stage)


BUILTIN_SEGMENTS: Mapping[str, Segment] = {
    "all": Predicate("all", _current),
    **{stage.value: _stage(stage) for stage in Stage},
    "paying": Predicate("paying", lambda v: _current(v) and v.member.is_paid(v.today)),
    "admins": Predicate(
        "admins", lambda v: _current(v) and v.member.role in (Role.ADMIN, Role.OWNER)
    ),
    "kols": Predicate("kols", lambda v: _current(v) and v.member.role is Role.KOL),
    "contributors": Contributors(label="contributors"),
}
"""The segments every community has, by name (``contributors`` with its defaults)."""

_PREFIXES = ("tier", "tag", "group", "platform")


def builtin_segment(name: str) -> Segment | None:
    """The built-in segment ``name`` (including the prefixed ones), or ``None``.

    Every built-in but the stage ones holds only current members (not left, not
    banned); ``left`` is the stage segment of those who are gone.
    """
    found = BUILTIN_SEGMENTS.get(name)
    if found is not None:
        return found
    kind, colon, value = name.partition(":")
    if not colon or not value or kind not in _PREFIXES:
        return None
    if kind == "tier":
        return Predicate(name, lambda v: _current(v) and v.tier == value)
    if kind == "tag":
        return Predicate(name, lambda v: _current(v) and value in v.member.tags)
    if kind == "group":
        return Predicate(name, lambda v: _current(v) and value in v.groups)
    return Predicate(name, lambda v: _current(v) and value in v.platforms)


# --------------------------------------------------------------------------- expressions


@attrs.frozen
class Expr:
    """A parsed expression: ``op`` is ``"name"`` (with ``name``), ``"and"``,
    ``"or"`` or ``"not"`` (with ``args``)."""

    op: str
    name: str = ""
    args: tuple[Expr, ...] = ()

    def names(self) -> frozenset[str]:
        """Every segment name the expression refers to."""
        if self.op == "name":
            return frozenset({self.name})
        return frozenset().union(*(arg.names() for arg in self.args))


# a name is any run of characters but blanks, parentheses and & | ! (so tag:早鸟 is one)
_TOKEN = re.compile(r"\s*(?:(\()|(\))|([^\s()&|!]+)|(\S))")
_KEYWORDS = ("and", "or", "not")


def _tokens(text: str) -> list[tuple[str, int]]:
    tokens: list[tuple[str, int]] = []
    position = 0
    while True:
        match = _TOKEN.match(text, position)
        if match is None:  # only blanks are left
            break
        position = match.end()
        token = match.group(match.lastindex or 0)
        if match.group(4) is not None:
            raise SegmentError(
                f"unexpected {token!r} at character {match.start(4) + 1} of {text!r} "
                "(combine segments with and, or, not)"
            )
        tokens.append((token, match.start(match.lastindex or 0) + 1))
    return tokens


MAX_NESTING = 100
"""How deeply parentheses and ``not`` may nest in a segment expression."""


def parse_expression(text: str) -> Expr:
    """Parse a segment expression (see the module documentation).

    Raises :class:`SegmentError` naming what is wrong and where.
    """
    if not isinstance(text, str):
        raise SegmentError(f"a segment expression is a string, got {text!r}")
    tokens = _tokens(text)
    if not tokens:
        raise SegmentError("the expression is empty")
    index = 0
    depth = 0  # parentheses and ``not`` open around the token being read

    def peek() -> str | None:
        return tokens[index][0] if index < len(tokens) else None

    def deeper() -> None:
        nonlocal depth
        depth += 1
        if depth > MAX_NESTING:
            raise SegmentError(
                f"the expression is nested too deeply (more than {MAX_NESTING} levels of "
                f"parentheses and 'not') at {where()}"
            )

    def take() -> str:
        nonlocal index
        token = tokens[index][0]
        index += 1
        return token

    def where() -> str:
        return f"character {tokens[index][1]}" if index < len(tokens) else "the end"

    def disjunction() -> Expr:
        parts = [conjunction()]
        while peek() == "or":
            take()
            parts.append(conjunction())
        return parts[0] if len(parts) == 1 else Expr("or", args=tuple(parts))

    def conjunction() -> Expr:
        parts = [negation()]
        while peek() == "and":
            take()
            parts.append(negation())
        return parts[0] if len(parts) == 1 else Expr("and", args=tuple(parts))

    def negation() -> Expr:
        nonlocal depth
        if peek() == "not":
            take()
            deeper()
            inner = negation()
            depth -= 1
            return Expr("not", args=(inner,))
        return atom()

    def atom() -> Expr:
        token = peek()
        if token is None:
            raise SegmentError(f"the expression {text!r} ends where a segment name was expected")
        if token == "(":
            nonlocal depth
            take()
            deeper()
            inner = disjunction()
            if peek() != ")":
                raise SegmentError(f"expected ')' at {where()} of {text!r}")
            take()
            depth -= 1
            return inner
        if token == ")" or token in _KEYWORDS:
            raise SegmentError(f"expected a segment name at {where()} of {text!r}, found {token!r}")
        take()
        return Expr("name", name=token)

    tree = disjunction()
    if index < len(tokens):
        raise SegmentError(f"unexpected {tokens[index][0]!r} at {where()} of {text!r}")
    return tree


def build(expr: Expr, resolve: Callable[[str], Segment]) -> Segment:
    """The segment ``expr`` describes; ``resolve`` turns a name into a segment."""
    if expr.op == "name":
        return resolve(expr.name)
    parts = tuple(build(arg, resolve) for arg in expr.args)
    if expr.op == "not":
        return Not(parts[0])
    return And(parts) if expr.op == "and" else Or(parts)


# --------------------------------------------------------------------------- parameterised types


def _settings_int(
    settings: Mapping[str, Any],
    key: str,
    default: int,
    minimum: int = 1,
    maximum: int | None = None,
) -> int:
    value = settings.get(key, default)
    if type(value) is not int or value < minimum or (maximum is not None and value > maximum):
        wanted = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise SegmentError(f"{key}: expected a whole number {wanted}, found {value!r}")
    return value


def _only(settings: Mapping[str, Any], allowed: tuple[str, ...], what: str) -> None:
    for key in settings:
        if key not in allowed:
            raise SegmentError(
                f"{key}: unknown setting of a {what} segment (expected {', '.join(allowed)})"
            )


def posted_segment(settings: Mapping[str, Any]) -> Posted:
    """``type = "posted"``: ``messages`` (N, default 1) posted in ``period``
    (default ``"month"``), only those with ``media`` of a kind when it is set."""
    _only(settings, ("messages", "media", "period"), "posted")
    media = settings.get("media")
    kinds = [kind.value for kind in Media]
    if media is not None and media not in kinds:
        raise SegmentError(f"media: expected one of {', '.join(kinds)}, found {media!r}")
    period = settings.get("period", "month")
    if not isinstance(period, str):
        raise SegmentError(f"period: expected a string like 'month' or '30d', found {period!r}")
    try:
        parsed = parse_period(period)
    except SegmentError as exc:
        raise SegmentError(f"period: {exc}") from None
    return Posted(messages=_settings_int(settings, "messages", 1), media=media, period=parsed)


def contributors_segment(settings: Mapping[str, Any]) -> Contributors:
    """``type = "contributors"``: at least ``responses`` replies and reactions
    (default 3) drawn from others in the last ``days`` days (default 30)."""
    _only(settings, ("responses", "days"), "contributors")
    return Contributors(
        responses=_settings_int(settings, "responses", 3),
        period=Period(days=_settings_int(settings, "days", 30, maximum=MAX_PERIOD_DAYS)),
    )


BUILTIN_TYPES: Mapping[str, Callable[[Mapping[str, Any]], Segment]] = {
    "posted": posted_segment,
    "contributors": contributors_segment,
}
"""The parameterised segment types every community has, by ``type`` name."""
