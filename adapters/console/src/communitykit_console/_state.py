"""The records the console platform keeps, and a clock a simulation can move."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from communitykit import Media

__all__ = [
    "BOT",
    "MAX_MESSAGE_LENGTH",
    "PLATFORM",
    "ConsoleGroup",
    "ConsoleMessage",
    "ConsoleUser",
    "InviteLink",
    "JoinRequest",
    "ManualClock",
]

#: the platform name events and actions carry
PLATFORM = "console"
#: the user id of the bot on the console platform (the author of what it sends)
BOT = "bot"
#: the longest text one message may carry, as on Telegram
MAX_MESSAGE_LENGTH = 4096


def check_aware(value: object, what: str) -> datetime:
    """``value`` if it is a datetime with a UTC offset, else a :class:`ValueError`."""
    if not isinstance(value, datetime):
        raise ValueError(f"{what} must be a datetime with a UTC offset, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{what} must carry a UTC offset (e.g. 2026-03-29T01:30:00+08:00), "
            f"got {value.isoformat()!r}"
        )
    return value


class ManualClock:
    """A clock that only moves when told to: ``ConsolePlatform(clock=ManualClock(start))``.

    Calling it returns the current simulated time; :meth:`set` and :meth:`advance`
    move it (``crowd.run_day(day, clock.set)``).
    """

    def __init__(self, start: datetime) -> None:
        self._now = check_aware(start, "the start of a ManualClock")

    def __call__(self) -> datetime:
        return self._now

    def set(self, at: datetime) -> None:
        """Move the clock to ``at`` (an aware datetime)."""
        self._now = check_aware(at, "the time of a ManualClock")

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock forward by ``delta`` and return the new time."""
        self._now = self._now + delta
        return self._now

    def __repr__(self) -> str:
        return f"ManualClock({self._now.isoformat()})"


@dataclass
class ConsoleUser:
    """A user of the platform: ``started_bot`` says whether the bot may message them."""

    user_id: str
    display_name: str | None = None
    started_bot: bool = False

    @property
    def name(self) -> str:
        """The display name, or the user id when there is none."""
        return self.display_name or self.user_id


@dataclass
class ConsoleGroup:
    """A group chat: its title, members and administrators (user ids)."""

    group_id: str
    title: str
    members: set[str] = field(default_factory=set)
    admins: set[str] = field(default_factory=set)


@dataclass
class ConsoleMessage:
    """A message in a group, or a direct message (``group`` is ``None``).

    ``recipient`` is the user a direct message from the bot went to; ``reactions``
    holds ``(user, emoji)`` pairs in the order they came.
    """

    message_id: str
    group: str | None
    author: str
    text: str
    at: datetime
    reply_to: str | None = None
    media: Media | None = None
    recipient: str | None = None
    deleted: bool = False
    edits: int = 0
    reactions: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class JoinRequest:
    """A pending request to join a group, with the answers to its entry questions."""

    group: str
    user: str
    at: datetime
    answers: Mapping[str, str] = field(default_factory=dict)
    invite: str | None = None


@dataclass
class InviteLink:
    """An invite link to a group: ``name`` is for attribution, ``creator`` made it."""

    link: str
    group: str
    name: str
    creator: str
    uses: int = 0


def invite_url(group: str, name: str) -> str:
    """The link the console platform gives an invite named ``name`` to ``group``."""
    return f"console://join/{group}/{name}"


def short(text: str, limit: int = 60) -> str:
    """``text`` on one line, cut to ``limit`` characters for a transcript line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
