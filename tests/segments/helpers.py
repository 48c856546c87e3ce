"""Events for segment scenarios."""

from __future__ import annotations

from datetime import datetime
from itertools import count

from communitykit import MemberJoined, MemberLeft, MessagePosted, ReactionAdded

_ids = count()


def joined(user: str, at: datetime, name: str = "") -> MemberJoined:
    return MemberJoined(
        event_id=f"j{next(_ids)}",
        platform="console",
        group="g1",
        user=user,
        at=at,
        display_name=name or user,
    )


def left(user: str, at: datetime) -> MemberLeft:
    return MemberLeft(
        event_id=f"l{next(_ids)}", platform="console", group="g1", user=user, at=at, reason="left"
    )


def posted(
    user: str,
    at: datetime,
    message_id: str = "",
    reply_to: str | None = None,
    media: str | None = None,
) -> MessagePosted:
    n = next(_ids)
    return MessagePosted(
        event_id=f"m{n}",
        platform="console",
        group="g1",
        user=user,
        at=at,
        message_id=message_id or f"msg{n}",
        text="hi",
        reply_to=reply_to,
        media=media,
    )


def reacted(user: str, to_user: str, message_id: str, at: datetime) -> ReactionAdded:
    return ReactionAdded(
        event_id=f"r{next(_ids)}",
        platform="console",
        group="g1",
        user=user,
        at=at,
        message_id=message_id,
        emoji="👍",
        to_user=to_user,
    )
