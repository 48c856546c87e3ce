"""Built-in content rules: ``links``, ``keywords``, ``flood`` and ``duplicates``.

Each looks at messages posted in groups (a direct message to the bot harms no
one and is left alone). ``links``, ``keywords`` and ``duplicates`` delete the
message (falling back to a reply asking the author to remove it) and ask for a
strike on the warning ladder; ``flood`` mutes directly. See
``docs/rules-content.md``.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

import attrs

from communitykit._errors import ModelError
from communitykit._plugin_types import RuleType
from communitykit.builtins.rules import _links
from communitykit.builtins.rules._common import Settings, compile_pattern
from communitykit.hookspecs import hookimpl
from communitykit.model import (
    Action,
    Decision,
    DeleteMessage,
    MessageEdited,
    MessagePosted,
    Mute,
    Recent,
    RuleContext,
    SendMessage,
    fingerprint,
    normalize_text,
)
from communitykit.model._moderation import RECENT_LIMIT, format_duration

__all__ = [
    "DuplicatesRule",
    "FloodRule",
    "KeywordsRule",
    "LinksRule",
    "communitykit_rule_types",
]

_MESSAGES = frozenset({"message_posted", "message_edited"})
_POSTED = frozenset({"message_posted"})
_MESSAGE_TYPES = (MessagePosted, MessageEdited)
_AT = operator.itemgetter(0)  # Recent.at
_FINGERPRINT = operator.itemgetter(4)  # Recent.fingerprint


def _delete(
    ctx: RuleContext,
    message: MessagePosted | MessageEdited,
    source: str,
    reason: str,
    notice: str,
) -> tuple[tuple[Action, ...], dict[str, tuple[Action, ...]]]:
    """Delete the message; when that cannot be done, reply asking its author to."""
    delete = ctx.action(DeleteMessage, source, reason, 0, message_id=message.message_id)
    ask = ctx.action(SendMessage, source, reason, 1, text=notice, reply_to=message.message_id)
    return (delete,), {delete.action_id: (ask,)}


def _quote(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ----------------------------------------------------------------------- links


def _allowed_domain(entry: str) -> str:
    domain = normalize_text(entry).removeprefix("*.").strip(".")
    links = list(_links.find_links(domain, extra_tlds=(domain.rsplit(".", 1)[-1],)))
    if len(links) != 1 or links[0].host != domain or links[0].path:
        raise ModelError(
            f"links rule: allow entries must be domain names like 'example.com', got {entry!r}"
        )
    return _links.ascii_domain(domain)


LINKS_NOTICE = "Please remove this message: links to other sites are not allowed here."


@attrs.frozen
class LinksRule:
    """Deletes and strikes links to domains not on ``allow``, invite links to other
    chats, and any link from a member who joined less than ``new_member_hours`` ago."""

    name: str = "links"
    allow: tuple[str, ...] = ()
    allow_invites: bool = False
    invite_patterns: tuple[re.Pattern[str], ...] = ()
    new_member_hours: int = 24
    extra_tlds: frozenset[str] = frozenset()
    notice: str = LINKS_NOTICE
    event_types: ClassVar[frozenset[str]] = _MESSAGES

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> LinksRule:
        read = Settings(settings, "links")
        allow = tuple(_allowed_domain(entry) for entry in read.texts("allow"))
        patterns = tuple(
            compile_pattern(p, "links rule: invite_patterns") for p in read.texts("invite_patterns")
        )
        tlds = frozenset(normalize_text(t).strip(".") for t in read.texts("extra_tlds"))
        rule = cls(
            name=read.name(),
            allow=allow,
            allow_invites=read.flag("allow_invites", False),
            invite_patterns=patterns,
            new_member_hours=read.integer("new_member_hours", 24),
            extra_tlds=tlds | {d.rsplit(".", 1)[-1] for d in allow},
            notice=read.text("notice", LINKS_NOTICE),
        )
        read.done()
        return rule

    def _offence(self, ctx: RuleContext, text: str) -> str | None:
        """Why the text breaks the rule (a phrase naming the link), or ``None``."""
        prepared = _links.prepare(text)
        # every link's domain has a dot: a text without one has none
        links = list(_links.find_links(prepared, self.extra_tlds)) if "." in prepared else []
        if not self.allow_invites:
            for link in links:
                kind = _links.invite_kind(link)
                if kind is not None:
                    return f"posted an invite link to another {kind} chat ({_quote(link.text)})"
            if "tg://join?invite=" in prepared and _links.TG_JOIN.search(prepared):
                return "posted an invite link to another Telegram chat (tg://join)"
            for pattern in self.invite_patterns:
                found = pattern.search(prepared)
                if found:
                    return (
                        f"posted an invite link ({_quote(found.group(0))}) matching the "
                        f'invite pattern "{pattern.pattern}"'
                    )
        if not links:
            return None
        joined = ctx.member.joined_at
        if self.new_member_hours and joined is not None:
            age = ctx.event.at - joined
            if age < timedelta(hours=self.new_member_hours):
                hours = max(0, int(age.total_seconds() // 3600))
                return (
                    f"posted a link to {links[0].host} as a new member (joined {hours} hours "
                    f"before; links need {self.new_member_hours} hours of membership)"
                )
        outside = [
            link
            for link in links
            if not _links.domain_allowed(_links.ascii_domain(link.host), self.allow)
        ]
        if not outside:
            return None
        hosts = list(dict.fromkeys(link.host for link in outside))
        more = f" (and {len(hosts) - 1} more)" if len(hosts) > 1 else ""
        verb = "is" if len(hosts) == 1 else "are"
        return f"posted a link to {hosts[0]}{more}, which {verb} not on the allowlist"

    def evaluate(self, ctx: RuleContext) -> Decision | None:
        message = ctx.event
        if not isinstance(message, _MESSAGE_TYPES) or message.group is None:
            return None
        text = normalize_text(message.text)
        if (
            "." not in text
            and "\u3002" not in text
            and "\uff61" not in text
            and (self.allow_invites or not (self.invite_patterns or "tg://join?invite=" in text))
        ):
            # no dot of any width: no link, nor an invite link (see _offence)
            return None
        why = self._offence(ctx, message.text)
        if why is None:
            return None
        source = f"rule:{self.name}"
        actions, fallbacks = _delete(ctx, message, source, why, self.notice)
        return Decision(
            source=source, explanation=why, actions=actions, fallbacks=fallbacks, strike=True
        )


# -------------------------------------------------------------------- keywords

_CJK = re.compile(f"[{_links.CJK}]")
_WORD = r"(?![" + _links.CJK + r"])[^\W_]"
# a whole word: no letter or digit of a spaced script right before or after
# (a Chinese character next to it is a boundary: Chinese has no spaces)
_BEFORE = rf"(?:(?<=[{_links.CJK}])|(?<!{_WORD}))"
_AFTER = rf"(?:(?=[{_links.CJK}])|(?!{_WORD}))"


def _keyword_and_core(pattern: str) -> tuple[re.Pattern[str], str]:
    """A block entry compiled, and the part of it every match must match: the
    word itself without its word boundaries (the whole pattern for ``re:``)."""
    if pattern.startswith("re:"):
        core = pattern[3:]
        compiled = compile_pattern(core, "keywords rule: block")
    else:
        text = normalize_text(pattern)
        if not text:
            raise ModelError(f"keywords rule: block entries must not be empty, got {pattern!r}")
        core = body = re.escape(text)
        if not _CJK.search(text):
            if re.match(_WORD, text):
                body = _BEFORE + body
            if re.match(_WORD, text[-1]):
                body += _AFTER
        compiled = re.compile(body, re.IGNORECASE)
    if compiled.search(""):
        raise ModelError(
            f"keywords rule: block pattern {pattern!r} matches an empty text, so every message"
        )
    return compiled, core


def _screen(cores: Sequence[tuple[re.Pattern[str], str]]) -> re.Pattern[str] | None:
    """One pattern that finds something wherever any block entry would: the entries'
    cores as alternatives, so a text it finds nothing in has no blocked word.

    ``None`` when the cores cannot be joined without changing what they match
    (a pattern with groups, whose back references would be renumbered, or with
    its own global flags).
    """
    if any(compiled.groups for compiled, _core in cores):
        return None
    try:
        return re.compile("|".join(f"(?:{core})" for _compiled, core in cores), re.IGNORECASE)
    except re.error:
        return None


#: every character but an ASCII lowercase letter itself that a case-insensitive
#: pattern of an ASCII lowercase letter matches (a test checks this against ``re``)
_ASCII_CASE_VARIANTS = re.compile("[A-Z\u0130\u0131\u017f\u212a]")


def _plain_words(patterns: Sequence[str]) -> tuple[tuple[str, ...], re.Pattern[str] | None] | None:
    """The block words, and the ``re:`` patterns joined, when each word's letters
    are ASCII lowercase ones and its other characters have no case: then in a text
    without :data:`_ASCII_CASE_VARIANTS` a word's case-insensitive pattern matches
    exactly where the word itself is. ``None`` otherwise (or when the patterns
    cannot be joined, see :func:`_screen`)."""
    words = [normalize_text(p) for p in patterns if not p.startswith("re:")]
    if not all("a" <= c <= "z" or c.lower() == c == c.upper() for w in words for c in w):
        return None
    others = [p[3:] for p in patterns if p.startswith("re:")]
    if not others:
        return tuple(words), None
    joined = _screen([(compile_pattern(p, "keywords rule: block"), p) for p in others])
    return None if joined is None else (tuple(words), joined)


_ACTIONS = ("delete", "strike", "delete_only")


KEYWORDS_NOTICE = "Please remove this message: it contains words not allowed here."


@attrs.frozen
class KeywordsRule:
    """Deletes and/or strikes messages containing a blocked word, phrase or pattern."""

    block: tuple[tuple[str, re.Pattern[str]], ...]
    name: str = "keywords"
    action: str = "delete"
    notice: str = KEYWORDS_NOTICE
    # finds something in every text a block entry matches (see _screen), so a
    # text it finds nothing in is passed without trying each entry
    screen: re.Pattern[str] | None = attrs.field(default=None, eq=False, repr=False)
    # the same for a text without _ASCII_CASE_VARIANTS (see _plain_words): the
    # words looked for as they are, and the re: patterns joined
    plain: tuple[tuple[str, ...], re.Pattern[str] | None] | None = attrs.field(
        default=None, eq=False, repr=False
    )
    event_types: ClassVar[frozenset[str]] = _MESSAGES

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> KeywordsRule:
        read = Settings(settings, "keywords")
        patterns = read.texts("block")
        if not patterns:
            raise ModelError("keywords rule: block must list at least one word or pattern")
        action = read.text("action", "delete")
        if action not in _ACTIONS:
            raise ModelError(
                f"keywords rule: action must be one of {', '.join(_ACTIONS)}, got {action!r}"
            )
        compiled = [_keyword_and_core(p) for p in patterns]
        rule = cls(
            block=tuple((p, c) for p, (c, _core) in zip(patterns, compiled, strict=True)),
            name=read.name(),
            action=action,
            notice=read.text("notice", KEYWORDS_NOTICE),
            screen=_screen(compiled),
            plain=_plain_words(patterns),
        )
        read.done()
        return rule

    def evaluate(self, ctx: RuleContext) -> Decision | None:
        message = ctx.event
        if not isinstance(message, _MESSAGE_TYPES) or message.group is None:
            return None
        text = normalize_text(message.text)
        plain = self.plain
        if plain is not None and _ASCII_CASE_VARIANTS.search(text) is None:
            words, others = plain
            for word in words:
                if word in text:
                    break
            else:
                if others is None or others.search(text) is None:
                    return None
        elif (screen := self.screen) is not None and screen.search(text) is None:
            return None
        pattern = next((p for p, compiled in self.block if compiled.search(text)), None)
        if pattern is None:
            return None
        what = "pattern" if pattern.startswith("re:") else "word"
        why = f'used the blocked {what} "{_quote(pattern)}"'
        source = f"rule:{self.name}"
        actions: tuple[Action, ...] = ()
        fallbacks: dict[str, tuple[Action, ...]] = {}
        if self.action != "strike":
            actions, fallbacks = _delete(ctx, message, source, why, self.notice)
        return Decision(
            source=source,
            explanation=why,
            actions=actions,
            fallbacks=fallbacks,
            strike=self.action != "delete_only",
        )


# ---------------------------------------------------------------------- recent


def _within(
    recent: Sequence[Recent], at: datetime, window: timedelta, *, same: tuple[str, str] | None
) -> list[Recent]:
    """The group messages of ``recent`` in ``[at - window, at]``, each message once,
    only those in group ``same`` (platform, group) when given."""
    seen: set[tuple[str, str | None, str]] = set()
    found = []
    for item in recent:
        key = (item.platform, item.group, item.message_id)
        if item.group is None or key in seen or not at - window <= item.at <= at:
            continue
        if same is not None and (item.platform, item.group) != same:
            continue
        seen.add(key)
        found.append(item)
    return found


def _groups_phrase(groups: int) -> str:
    return "1 group" if groups == 1 else f"{groups} groups"


# ----------------------------------------------------------------------- flood


FLOOD_NOTICE = "Please slow down: you are posting too many messages too quickly."


@attrs.frozen
class FloodRule:
    """Mutes a member who posts more than ``messages`` messages in ``seconds``."""

    name: str = "flood"
    messages: int = 5
    seconds: int = 10
    mute: timedelta = timedelta(minutes=10)
    strike: bool = False
    per_group: bool = False
    notice: str = FLOOD_NOTICE
    event_types: ClassVar[frozenset[str]] = _POSTED
    _window: timedelta = attrs.field(init=False, eq=False, repr=False)

    @_window.default
    def _seconds_window(self) -> timedelta:
        return timedelta(seconds=self.seconds)

    @property
    def window(self) -> timedelta:
        return self._window

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> FloodRule:
        read = Settings(settings, "flood")
        rule = cls(
            name=read.name(),
            # the engine remembers a member's last RECENT_LIMIT messages
            messages=read.integer("messages", 5, minimum=1, maximum=RECENT_LIMIT - 1),
            seconds=read.integer("seconds", 10, minimum=1),
            mute=read.duration("mute", timedelta(minutes=10)),
            strike=read.flag("strike", False),
            per_group=read.flag("per_group", False),
            notice=read.text("notice", FLOOD_NOTICE),
        )
        read.done()
        return rule

    @staticmethod
    def _still_muted(muted: object, at: datetime) -> bool:
        """Whether a mute this rule gave (``muted_until``, ISO text) lasts at ``at``;
        a value it cannot read (not written by this rule) is no mute."""
        if not isinstance(muted, str):
            return False
        try:
            until = datetime.fromisoformat(muted)
        except ValueError:
            return False
        return until.tzinfo is not None and at < until

    @staticmethod
    def _user_on(ctx: RuleContext, message: MessagePosted, platform: str) -> str | None:
        if platform == message.platform:
            return message.user
        identity = ctx.member.identity_on(platform)
        return None if identity is None else identity.user_id

    def evaluate(self, ctx: RuleContext) -> Decision | None:
        message = ctx.event
        if not isinstance(message, MessagePosted) or message.group is None:
            return None
        at = message.at
        recent = ctx.recent
        # the messages counted are some of those since the window's start: too
        # few of those, and the limit is not passed
        limit = self.messages
        if len(recent) < limit:
            return None
        if sum(map((at - self._window).__le__, map(_AT, recent))) < limit:
            return None
        if self._still_muted(ctx.rule_state(self.name).get("muted_until"), at):
            return None
        here = (message.platform, message.group)
        earlier = [
            item
            for item in _within(recent, at, self._window, same=here if self.per_group else None)
            if (item.platform, item.group, item.message_id) != (*here, message.message_id)
        ]
        count = len(earlier) + 1
        if count <= self.messages:
            return None
        until = at + self.mute
        others = {(i.platform, i.group) for i in earlier if i.group is not None}
        groups: list[tuple[str, str]] = [here, *sorted(others - {here})]
        source = f"rule:{self.name}"
        why = (
            f"posted {count} messages within {self.seconds} seconds in "
            f"{_groups_phrase(len(groups))} (limit {self.messages}); muted for "
            f"{format_duration(self.mute)}"
        )
        actions: list[Action] = []
        fallbacks: dict[str, tuple[Action, ...]] = {}
        for index, (platform, group) in enumerate(groups):
            user = self._user_on(ctx, message, platform)
            if user is None:
                continue
            where = {"platform": platform, "group": group, "user": user}
            mute = ctx.action(Mute, source, why, 2 * index, until=until, **where)
            reply = message.message_id if (platform, group) == here else None
            ask = ctx.action(
                SendMessage, source, why, 2 * index + 1, text=self.notice, reply_to=reply, **where
            )
            actions.append(mute)
            fallbacks[mute.action_id] = (ask,)
        return Decision(
            source=source,
            explanation=why,
            actions=actions,
            fallbacks=fallbacks,
            strike=self.strike,
            state={"muted_until": until.isoformat()},
        )


# ------------------------------------------------------------------ duplicates


DUPLICATES_NOTICE = "Please remove this message: the same text was posted several times."


@attrs.frozen
class DuplicatesRule:
    """Deletes and strikes the same text posted ``times`` times within ``within``."""

    name: str = "duplicates"
    times: int = 3
    within: timedelta = timedelta(hours=1)
    across_groups: bool = True
    min_length: int = 10
    notice: str = DUPLICATES_NOTICE
    event_types: ClassVar[frozenset[str]] = _POSTED

    @property
    def window(self) -> timedelta:
        return self.within

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> DuplicatesRule:
        read = Settings(settings, "duplicates")
        rule = cls(
            name=read.name(),
            times=read.integer("times", 3, minimum=2, maximum=RECENT_LIMIT),
            within=read.duration("within", timedelta(hours=1)),
            across_groups=read.flag("across_groups", True),
            min_length=read.integer("min_length", 10),
            notice=read.text("notice", DUPLICATES_NOTICE),
        )
        read.done()
        return rule

    def evaluate(self, ctx: RuleContext) -> Decision | None:
        message = ctx.event
        if not isinstance(message, MessagePosted) or message.group is None:
            return None
        recent = ctx.recent
        # the copies counted are some of the recent messages with the same
        # fingerprint: too few of those, and the text is not repeated often enough
        times = self.times
        if len(recent) + 1 < times:
            return None
        printed = fingerprint(message.text)
        if list(map(_FINGERPRINT, recent)).count(printed) + 1 < times:
            return None
        if len(normalize_text(message.text)) < max(1, self.min_length):
            return None
        here = (message.platform, message.group)
        copies = [
            item
            for item in _within(
                recent, message.at, self.within, same=None if self.across_groups else here
            )
            if item.fingerprint == printed
            and (item.platform, item.group, item.message_id) != (*here, message.message_id)
        ]
        count = len(copies) + 1
        if count < self.times:
            return None
        groups = len({here, *((i.platform, i.group) for i in copies)})
        why = (
            f"posted the same text {count} times within {format_duration(self.within)} in "
            f"{_groups_phrase(groups)}"
        )
        source = f"rule:{self.name}"
        actions, fallbacks = _delete(ctx, message, source, why, self.notice)
        return Decision(
            source=source, explanation=why, actions=actions, fallbacks=fallbacks, strike=True
        )


def _types() -> Iterable[RuleType]:
    return [
        RuleType(
            name="links",
            factory=LinksRule.from_settings,
            description="deletes links off the allowlist, invite links, and new members' links",
        ),
        RuleType(
            name="keywords",
            factory=KeywordsRule.from_settings,
            description="deletes messages with blocked words, phrases or patterns",
        ),
        RuleType(
            name="flood",
            factory=FloodRule.from_settings,
            description="mutes a member posting too many messages too quickly",
        ),
        RuleType(
            name="duplicates",
            factory=DuplicatesRule.from_settings,
            description="deletes the same text posted again and again",
        ),
    ]


@hookimpl
def communitykit_rule_types() -> Iterable[RuleType]:
    return _types()
