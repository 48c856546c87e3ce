"""Rate limits, limit profiles, priorities and the keys a request consumes."""

from __future__ import annotations

import enum
from collections.abc import Hashable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, Final

import attrs

from communitykit._secret import Secret
from communitykit.http._errors import UnknownScope

__all__ = [
    "DISCORD",
    "GLOBAL",
    "TELEGRAM",
    "WECOM",
    "GlobalScope",
    "Key",
    "Limits",
    "Priority",
    "RateLimit",
    "discord_keys",
    "telegram_bot_id",
    "telegram_keys",
]

#: A limiter key: ``(kind, id)``, e.g. ``("bot", "123456")`` or ``("chat", 42)``.
#: The kind names a scope of the :class:`Limits` profile; the id says which one.
#: A key is logged and shown in errors: never put a token in it.
Key = tuple[str, Hashable]


class Priority(enum.IntEnum):
    """Which waiting request gets a bucket's next slot: the higher, the sooner.

    Interactive replies and moderation are ``HIGH``; broadcasts are ``LOW``.
    """

    LOW = 0
    NORMAL = 1
    HIGH = 2


@attrs.frozen
class GlobalScope:
    """The type of :data:`GLOBAL`: a pause that covers every request of a governor."""

    def __repr__(self) -> str:
        return "GLOBAL"


#: Pass to :meth:`Governor.pause` to pause everything.
GLOBAL: Final = GlobalScope()


def _positive_int(_instance: Any, attribute: Any, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{attribute.name} must be a positive integer, got {value!r}")


def _positive(_instance: Any, attribute: Any, value: float) -> None:
    if not value > 0 or value == float("inf"):
        raise ValueError(f"{attribute.name} must be a positive number of seconds, got {value!r}")


@attrs.frozen
class RateLimit:
    """``limit`` requests per ``period`` seconds, sent evenly spaced (a burst of one)."""

    limit: int = attrs.field(validator=_positive_int)
    period: float = attrs.field(converter=float, validator=_positive)

    @property
    def interval(self) -> float:
        """Seconds between two requests at exactly this rate."""
        return self.period / self.limit

    def __str__(self) -> str:
        return f"{self.limit}/{self.period:g}s"


def _freeze_rates(value: Mapping[str, RateLimit | None]) -> Mapping[str, RateLimit | None]:
    return MappingProxyType(dict(value))


def _check_rates(_instance: Any, _attribute: Any, value: Mapping[str, RateLimit | None]) -> None:
    for kind, rate in value.items():
        if not isinstance(kind, str) or not kind:
            raise ValueError(f"a scope kind is a non-empty string, got {kind!r}")
        if rate is not None and not isinstance(rate, RateLimit):
            raise TypeError(f"scope {kind!r}: expected a RateLimit or None, got {rate!r}")


def _frozen(value: Iterable[str]) -> frozenset[str]:
    return frozenset(value)


def _check_margin(_instance: Any, _attribute: Any, value: float) -> None:
    if not 0.0 <= value < 0.5:
        raise ValueError(f"margin is a fraction in [0, 0.5), got {value!r}")


@attrs.frozen
class Limits:
    """A platform's limit profile: one :class:`RateLimit` per scope kind.

    ``rates`` maps each scope kind a request may name in its keys to its rate
    (``None``: no fixed rate — unlimited, or learned at run time per key).
    ``targets`` are the kinds that name one recipient (a chat, a member, a
    robot): requests to one target go out in order, and a target can be marked
    unreachable without stopping the others. ``margin`` is the safety margin:
    every rate runs at ``(1 - margin)`` of its limit, so network jitter of up to
    about ``margin * period / 3`` cannot push two sends into one sliding window.
    With ``ordered`` (the default) a request holds its targets from its first
    send until it is done, retries included, so nothing overtakes it.
    ``shared`` are the kinds of few keys that many requests go through (a
    bot's lane; by default every kind that is not a target); requests wait in
    one line per key of every other kind (a chat, a Discord bucket), first by
    priority, then by arrival.
    """

    name: str
    rates: Mapping[str, RateLimit | None] = attrs.field(
        converter=_freeze_rates, validator=_check_rates
    )
    targets: frozenset[str] = attrs.field(default=frozenset(), converter=_frozen)
    margin: float = attrs.field(default=0.03, converter=float, validator=_check_margin)
    ordered: bool = True
    shared: frozenset[str] | None = attrs.field(
        default=None, converter=attrs.converters.optional(_frozen)
    )

    def __attrs_post_init__(self) -> None:
        for what, kinds in (("target", self.targets), ("shared", self.shared or frozenset())):
            unknown = sorted(kinds - set(self.rates))
            if unknown:
                raise ValueError(f"{what} kinds {unknown} of {self.name!r} have no entry in rates")
        if self.shared is not None and self.shared & self.targets:
            raise ValueError(f"kinds {sorted(self.shared & self.targets)} cannot be shared targets")

    @property
    def shared_kinds(self) -> frozenset[str]:
        """The kinds of few keys that many requests go through (a bot's lane, Discord's global)."""
        if self.shared is None:
            return frozenset(self.rates) - self.targets
        return self.shared

    def rate(self, kind: str) -> RateLimit | None:
        """The rate of a scope kind (``None``: no fixed rate)."""
        try:
            return self.rates[kind]
        except KeyError:
            raise UnknownScope(
                f"scope kind {kind!r} is not in the {self.name!r} limits "
                f"(known: {', '.join(sorted(self.rates))})"
            ) from None

    def is_target(self, key: Key) -> bool:
        return key[0] in self.targets

    def is_shared(self, key: Key) -> bool:
        return key[0] in self.shared_kinds

    def check(self, keys: Iterable[Key]) -> tuple[Key, ...]:
        """``keys`` validated against this profile, duplicates dropped, order kept."""
        seen: dict[Key, None] = {}
        for key in keys:
            if not (isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], str)):
                raise UnknownScope(f"a limiter key is a (kind, id) pair, got {key!r}")
            ident: object = key[1]
            if isinstance(ident, Secret):
                raise UnknownScope(f"a limiter key must not hold a secret (kind {key[0]!r})")
            self.rate(key[0])
            seen[key] = None
        return tuple(seen)

    def with_scope(
        self, kind: str, rate: RateLimit | None, *, target: bool = False, shared: bool = False
    ) -> Limits:
        """A copy with ``kind`` added or changed (a target, a shared lane, or neither)."""
        if target and shared:
            raise ValueError("a kind is a target or shared, not both")
        targets = self.targets | {kind} if target else self.targets - {kind}
        lanes = self.shared_kinds - {kind} | ({kind} if shared else set())
        return attrs.evolve(
            self, rates={**self.rates, kind: rate}, targets=targets, shared=frozenset(lanes)
        )

    def with_margin(self, margin: float) -> Limits:
        return attrs.evolve(self, margin=margin)

    def __str__(self) -> str:
        scopes = ", ".join(
            f"{kind}{'*' if kind in self.targets else ''}={rate or 'learned/unlimited'}"
            for kind, rate in self.rates.items()
        )
        return f"{self.name} ({scopes}; margin {self.margin:.0%})"


#: Telegram Bot API, from its documented limits (core.telegram.org/bots/faq):
#: 30 messages/s per bot (``bot``), 1 message/s per private chat (``chat``),
#: 20 messages/min per group or channel (``group``), and the paid broadcast lane
#: (``allow_paid_broadcast``: up to 1000 messages/s, ``paid``) used instead of
#: ``bot`` for paid sends. Build keys with :func:`telegram_keys`.
TELEGRAM: Final = Limits(
    "telegram",
    rates={
        "bot": RateLimit(30, 1.0),
        "paid": RateLimit(1000, 1.0),
        "chat": RateLimit(1, 1.0),
        "group": RateLimit(20, 60.0),
    },
    targets={"chat", "group"},
)

#: WeCom (企业微信): a group robot posts 20 messages/min (``robot``); an app
#: sends one member at most 30 messages/min (``member``, one key per recipient).
WECOM: Final = Limits(
    "wecom",
    rates={"robot": RateLimit(20, 60.0), "member": RateLimit(30, 60.0)},
    targets={"robot", "member"},
)

#: Discord: the global limit of 50 requests/s per bot (``global``), enforced
#: before sending; per-route buckets learned from ``X-RateLimit-*`` headers
#: (``route`` keys, paced at 1/s until their bucket is known, then ``bucket``
#: keys at the learned rate); ``channel``, ``member`` and ``webhook`` are targets
#: with no rate of their own. Build keys with :func:`discord_keys`.
DISCORD: Final = Limits(
    "discord",
    rates={
        "global": RateLimit(50, 1.0),
        "route": RateLimit(1, 1.0),
        "bucket": None,
        "channel": None,
        "member": None,
        "webhook": None,
    },
    targets={"channel", "member", "webhook"},
    shared={"global"},
)


def telegram_bot_id(token: Secret) -> str:
    """The public part of a bot token (the bot's user id), fit for a ``("bot", id)`` key."""
    bot_id, sep, _ = token.reveal().partition(":")
    if not sep or not bot_id.isdigit():
        raise ValueError("a Telegram bot token looks like '<bot id>:<secret>'")
    return bot_id


def telegram_keys(bot_id: str, chat_id: int | str, *, paid: bool = False) -> tuple[Key, Key]:
    """The keys of a message to ``chat_id``: the bot's lane and the chat.

    Positive ids are private chats (1/s); negative ids and ``@channel`` names
    are groups and channels (20/min). ``paid`` uses the paid broadcast lane.
    """
    chat: int | str = chat_id
    if isinstance(chat_id, str) and chat_id.lstrip("-").isdigit():
        chat = int(chat_id)
    private = isinstance(chat, int) and chat > 0
    return (("paid" if paid else "bot", bot_id), ("chat" if private else "group", chat))


def discord_keys(
    app_id: str,
    method: str,
    route: str,
    major: Hashable = None,
    *,
    target: Key | None = None,
    global_limit: bool = True,
) -> tuple[Key, ...]:
    """The keys of a Discord request.

    ``route`` is the path template (``"/channels/{channel_id}/messages"``) and
    ``major`` the value of its major parameter (channel, guild or webhook id);
    together they identify the rate-limit bucket. ``target`` (e.g.
    ``("channel", channel_id)``) keeps requests to one recipient in order.
    Interaction callbacks are not under the global limit: ``global_limit=False``.
    """
    keys: list[Key] = []
    if global_limit:
        keys.append(("global", app_id))
    keys.append(("route", (f"{method.upper()} {route}", major)))
    if target is not None:
        keys.append(target)
    return tuple(keys)
