"""Actions: what communitykit decided to do on a platform (the contract is ``EVENTS.md``).

Rules and campaigns return these frozen values; the engine writes them to the
outbox and ``communitykit simulate`` to ``actions.jsonl``, one JSON object per
line::

    {"type": "warn", "action_id": "a-1", "platform": "telegram", "group": "-100123",
     "user": "42", "source": "rule:links", "reason": "posted a link", "count": 1}

``action_id`` is stable (replaying the same events yields the same ids),
``source`` names the rule or campaign that decided the action, ``reason`` is a
sentence a moderator can read. ``action.to_json()`` writes the line and
:func:`action_from_json` / :func:`action_from_dict` read it back, raising
:class:`~communitykit._errors.FormatError` (with the field and the line) for
anything malformed. Unknown fields are kept in ``extra``; optional fields
holding ``None`` are left out of the JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, ClassVar

import attrs

from communitykit.model._json import (
    JSONRecord,
    extra_field,
    non_negative_int,
    optional_aware,
    record_from_dict,
    record_from_json,
    required_aware,
)

__all__ = [
    "ACTION_TYPES",
    "Action",
    "ApproveJoin",
    "Ban",
    "CreateInviteLink",
    "DeclineJoin",
    "DeleteMessage",
    "Kick",
    "Mute",
    "SendDirectMessage",
    "SendMessage",
    "SetTitle",
    "Warn",
    "action_from_dict",
    "action_from_json",
]


@attrs.frozen(kw_only=True)
class Action(JSONRecord):
    """Fields every action carries. ``group`` and ``user`` are set where the action needs them."""

    TYPE: ClassVar[str]

    action_id: str
    platform: str
    group: str | None = None
    user: str | None = None
    source: str
    reason: str
    extra: Mapping[str, Any] = extra_field()


@attrs.frozen(kw_only=True)
class SendMessage(Action):
    """Post ``text`` in ``group``, as a reply to message ``reply_to`` if set."""

    TYPE: ClassVar[str] = "send_message"

    text: str
    reply_to: str | None = None


@attrs.frozen(kw_only=True)
class SendDirectMessage(Action):
    """Send ``text`` to ``user`` privately."""

    TYPE: ClassVar[str] = "send_direct_message"

    text: str


@attrs.frozen(kw_only=True)
class DeleteMessage(Action):
    """Delete message ``message_id`` in ``group``."""

    TYPE: ClassVar[str] = "delete_message"

    message_id: str


@attrs.frozen(kw_only=True)
class Warn(Action):
    """Warn ``user``; ``count`` is the number of warnings now active for them."""

    TYPE: ClassVar[str] = "warn"

    count: int = attrs.field(validator=non_negative_int)


@attrs.frozen(kw_only=True)
class Mute(Action):
    """Mute ``user`` in ``group`` until the given time."""

    TYPE: ClassVar[str] = "mute"

    until: datetime = attrs.field(validator=required_aware)


@attrs.frozen(kw_only=True)
class Kick(Action):
    """Remove ``user`` from ``group``; they may join again."""

    TYPE: ClassVar[str] = "kick"


@attrs.frozen(kw_only=True)
class Ban(Action):
    """Ban ``user`` from ``group``, until the given time or for good."""

    TYPE: ClassVar[str] = "ban"

    until: datetime | None = attrs.field(default=None, validator=optional_aware)


@attrs.frozen(kw_only=True)
class ApproveJoin(Action):
    """Approve the pending join request of ``user`` to ``group``."""

    TYPE: ClassVar[str] = "approve_join"


@attrs.frozen(kw_only=True)
class DeclineJoin(Action):
    """Decline the pending join request of ``user`` to ``group``."""

    TYPE: ClassVar[str] = "decline_join"


@attrs.frozen(kw_only=True)
class CreateInviteLink(Action):
    """Create an invite link to ``group`` named ``name``, for referral attribution."""

    TYPE: ClassVar[str] = "create_invite_link"

    name: str


@attrs.frozen(kw_only=True)
class SetTitle(Action):
    """Show ``title`` (a tier badge) next to ``user`` in ``group``."""

    TYPE: ClassVar[str] = "set_title"

    title: str


ACTION_TYPES: Mapping[str, type[Action]] = MappingProxyType(
    {
        cls.TYPE: cls
        for cls in (
            SendMessage,
            SendDirectMessage,
            DeleteMessage,
            Warn,
            Mute,
            Kick,
            Ban,
            ApproveJoin,
            DeclineJoin,
            CreateInviteLink,
            SetTitle,
        )
    }
)
"""Every action class by its JSON ``type``."""


def action_from_dict(data: object, *, line: int | None = None) -> Action:
    """Build the action a decoded JSON object describes.

    Raises :class:`~communitykit._errors.FormatError` naming the field (and
    ``line``, when given) for anything that is not a well-formed action; unknown
    fields go to ``extra``.
    """
    return record_from_dict(data, ACTION_TYPES, kind="action", line=line)


def action_from_json(text: str, *, line: int | None = None) -> Action:
    """Parse one JSON line into an action; see :func:`action_from_dict`."""
    return record_from_json(text, ACTION_TYPES, kind="action", line=line)
