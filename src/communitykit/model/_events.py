"""Events: what happened on a platform, normalized (the contract is ``EVENTS.md``).

Every adapter turns platform updates into these frozen values, and a recorded
event log holds their JSON form, one object per line::

    {"type": "message_posted", "event_id": "tg-1", "platform": "telegram",
     "group": "-100123", "user": "42", "at": "2026-03-29T01:30:00+08:00",
     "message_id": "7", "text": "hello"}

``event.to_json()`` writes that line (``type``, the common fields, the fields of
the type, then unknown fields kept from the input); :func:`event_from_json` and
:func:`event_from_dict` read it back, raising
:class:`~communitykit._errors.FormatError` (with the field and the line) for
anything malformed. A round trip keeps everything: the offset of ``at``, the
exponent of an amount (``"99.00"`` stays ``"99.00"``), unknown fields.
Optional fields holding ``None`` are left out of the JSON; ``group`` is absent
for direct messages.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar

import attrs

from communitykit._errors import FormatError
from communitykit.model._json import (
    JSONRecord,
    extra_field,
    freeze_str_map,
    record_from_dict,
    record_from_json,
    required_aware,
    str_tuple,
)

__all__ = [
    "EVENT_TYPES",
    "CommandInvoked",
    "Event",
    "JoinRequested",
    "LeaveReason",
    "Media",
    "MemberJoined",
    "MemberLeft",
    "MemberPaid",
    "MessageEdited",
    "MessagePosted",
    "ReactionAdded",
    "event_from_dict",
    "event_from_json",
]


_E = TypeVar("_E", bound=enum.StrEnum)


def _enum(cls: type[_E], field: str, value: object) -> _E:
    """attrs converter: a plain string given in code becomes the enum member."""
    if isinstance(value, cls):
        return value
    try:
        return cls(str(value)) if isinstance(value, str) else cls(value)  # type: ignore[arg-type]
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in cls)
        raise FormatError(f"expected one of {allowed}, found {value!r}", field=field) from None


def _leave_reason(value: object) -> LeaveReason:
    return _enum(LeaveReason, "reason", value)


def _media(value: object) -> Media | None:
    return None if value is None else _enum(Media, "media", value)


class LeaveReason(enum.StrEnum):
    """Why a member is no longer in a group."""

    LEFT = "left"
    KICKED = "kicked"
    BANNED = "banned"


class Media(enum.StrEnum):
    """The kind of media attached to a message."""

    PHOTO = "photo"
    VIDEO = "video"
    FILE = "file"
    VOICE = "voice"
    STICKER = "sticker"


@attrs.frozen(kw_only=True)
class Event(JSONRecord):
    """Fields every event carries. ``group`` is ``None`` for a direct message."""

    TYPE: ClassVar[str]

    event_id: str
    platform: str
    group: str | None = None
    user: str
    at: datetime = attrs.field(validator=required_aware)
    extra: Mapping[str, Any] = extra_field()


@attrs.frozen(kw_only=True)
class MemberJoined(Event):
    """A member joined a group, maybe through an invite or added by another member."""

    TYPE: ClassVar[str] = "member_joined"

    display_name: str | None = None
    invite: str | None = None
    added_by: str | None = None


@attrs.frozen(kw_only=True)
class MemberLeft(Event):
    """A member left a group, was kicked or was banned."""

    TYPE: ClassVar[str] = "member_left"

    reason: LeaveReason = attrs.field(converter=_leave_reason)


@attrs.frozen(kw_only=True)
class JoinRequested(Event):
    """Someone asked to join a group, with answers to the entry questions if any."""

    TYPE: ClassVar[str] = "join_requested"

    answers: Mapping[str, str] = attrs.field(factory=dict, converter=freeze_str_map, hash=False)
    invite: str | None = None


@attrs.frozen(kw_only=True)
class MessagePosted(Event):
    """A message was posted in a group or sent directly."""

    TYPE: ClassVar[str] = "message_posted"

    message_id: str
    text: str
    reply_to: str | None = None
    media: Media | None = attrs.field(default=None, converter=_media)


@attrs.frozen(kw_only=True)
class MessageEdited(Event):
    """A message was edited; ``text`` is the new text."""

    TYPE: ClassVar[str] = "message_edited"

    message_id: str
    text: str


@attrs.frozen(kw_only=True)
class ReactionAdded(Event):
    """A member reacted to a message; ``to_user`` is its author when known."""

    TYPE: ClassVar[str] = "reaction_added"

    message_id: str
    emoji: str
    to_user: str | None = None


def _command_name(_instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if not isinstance(value, str) or not value or value.startswith("/"):
        found = repr(value) if isinstance(value, str) else type(value).__name__
        raise FormatError(
            f"expected a command name without the leading '/', e.g. 'checkin', found {found}",
            field=attribute.name,
        )


@attrs.frozen(kw_only=True)
class CommandInvoked(Event):
    """A bot command: ``/checkin a b`` is ``command="checkin", args=("a", "b")``."""

    TYPE: ClassVar[str] = "command_invoked"

    command: str = attrs.field(validator=_command_name)
    args: tuple[str, ...] = attrs.field(converter=str_tuple)


def _amount(_instance: object, attribute: attrs.Attribute[Any], value: Decimal) -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or value.is_signed():
        raise FormatError(
            f"expected a finite, non-negative decimal amount, found {value!r}",
            field=attribute.name,
        )


def _plain_date(_instance: object, attribute: attrs.Attribute[Any], value: date | None) -> None:
    if value is not None and (isinstance(value, datetime) or not isinstance(value, date)):
        raise FormatError(f"expected a date, found {value!r}", field=attribute.name)


@attrs.frozen(kw_only=True)
class MemberPaid(Event):
    """A payment recorded from an external payment system."""

    TYPE: ClassVar[str] = "member_paid"

    amount: Decimal = attrs.field(validator=_amount)
    currency: str
    valid_until: date | None = attrs.field(default=None, validator=_plain_date)


EVENT_TYPES: Mapping[str, type[Event]] = MappingProxyType(
    {
        cls.TYPE: cls
        for cls in (
            MemberJoined,
            MemberLeft,
            JoinRequested,
            MessagePosted,
            MessageEdited,
            ReactionAdded,
            CommandInvoked,
            MemberPaid,
        )
    }
)
"""Every event class by its JSON ``type``."""


def event_from_dict(data: object, *, line: int | None = None) -> Event:
    """Build the event a decoded JSON object describes.

    Raises :class:`FormatError` naming the field (and ``line``, when given) for
    anything that is not a well-formed event; unknown fields go to ``extra``.
    """
    return record_from_dict(data, EVENT_TYPES, kind="event", line=line)


def event_from_json(text: str, *, line: int | None = None) -> Event:
    """Parse one JSON line into an event; see :func:`event_from_dict`."""
    return record_from_json(text, EVENT_TYPES, kind="event", line=line)
