"""Telegram updates as communitykit events (the contract is ``EVENTS.md``).

:class:`Normalizer` turns one Bot API ``Update`` object into the events it
means, plus what the adapter must do about it (answer a callback query, move a
group that became a supergroup). It remembers a little of what it saw — who
wrote each recent message, so a reaction can name its author (Telegram's
``message_reaction`` does not), and the members' names — in bounded maps.

Event ids are ``u<update_id>``: the same update delivered twice (a webhook
retry, a poll after a failed batch) is the same event, which the engine records
once. An update that means several events (two new reactions at once) gives
``u<update_id>``, ``u<update_id>.1``, ... in a fixed order.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

import attrs

from communitykit import (
    CommandInvoked,
    Event,
    JoinRequested,
    LeaveReason,
    Media,
    MemberJoined,
    MemberLeft,
    MessageEdited,
    MessagePosted,
    ReactionAdded,
)

__all__ = [
    "DEFAULT_ALLOWED_UPDATES",
    "PLATFORM",
    "JoinsFrom",
    "Normalized",
    "Normalizer",
    "SkippedUpdate",
    "parse_command",
]

PLATFORM = "telegram"

#: The update types the adapter asks for (``allowed_updates``). ``chat_member``
#: and ``message_reaction`` are off unless asked for, and need the bot to be an
#: administrator of the group.
DEFAULT_ALLOWED_UPDATES: tuple[str, ...] = (
    "message",
    "edited_message",
    "callback_query",
    "chat_member",
    "chat_join_request",
    "message_reaction",
)

#: Where joins and leaves come from: ``chat_member`` updates (with the invite link
#: used; the bot must be an administrator) or the ``new_chat_members`` /
#: ``left_chat_member`` service messages (any bot that sees messages; no invite).
JoinsFrom = Literal["chat_member", "service_messages"]

_COMMAND = re.compile(r"^/([A-Za-z0-9_]{1,64})(?:@([A-Za-z0-9_]{3,64}))?(?=\s|$)")
_MEMBER_STATUSES = frozenset({"creator", "administrator", "member"})
_IGNORED_UPDATES = frozenset(
    {
        "channel_post",
        "edited_channel_post",
        "business_connection",
        "business_message",
        "edited_business_message",
        "deleted_business_messages",
        "message_reaction_count",
        "inline_query",
        "chosen_inline_result",
        "shipping_query",
        "pre_checkout_query",
        "purchased_paid_media",
        "poll",
        "poll_answer",
        "my_chat_member",
        "chat_boost",
        "removed_chat_boost",
    }
)
_MEDIA: tuple[tuple[str, Media], ...] = (
    ("photo", Media.PHOTO),
    ("video", Media.VIDEO),
    ("animation", Media.VIDEO),
    ("video_note", Media.VIDEO),
    ("voice", Media.VOICE),
    ("audio", Media.FILE),
    ("document", Media.FILE),
    ("sticker", Media.STICKER),
)
#: how long a kick done by this adapter explains a member's removal (seconds)
_KICK_MEMORY = 600.0

K = TypeVar("K")
V = TypeVar("V")


class SkippedUpdate(Exception):
    """An update that cannot become events (malformed): logged and skipped."""


class Bounded(Generic[K, V]):
    """A map that forgets its least recently set entries beyond ``size``."""

    __slots__ = ("_items", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def set(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def get(self, key: K) -> V | None:
        return self._items.get(key)

    def pop(self, key: K) -> V | None:
        return self._items.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)


@attrs.frozen
class Normalized:
    """What one update means: its events, and what the adapter must do about it."""

    events: tuple[Event, ...] = ()
    #: a callback query to answer once the events are recorded
    callback_query_id: str | None = None
    #: a group that became a supergroup: (old id, new id)
    moved: tuple[int, int] | None = None


def parse_command(text: str, bot_username: str | None) -> tuple[str, tuple[str, ...]] | None:
    """``("checkin", ("a", "b"))`` for ``/checkin@this_bot a b``; ``None`` if not ours.

    A command addressed to another bot (``/start@other_bot``) is not ours; an
    unaddressed one is. While the bot's own username is unknown, only unaddressed
    commands count.
    """
    match = _COMMAND.match(text)
    if match is None:
        return None
    name, addressed = match.groups()
    if addressed is not None and (
        bot_username is None or addressed.lower() != bot_username.lower()
    ):
        return None
    return name.lower(), tuple(text[match.end() :].split())


def _obj(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SkippedUpdate(f"{what} is not an object")
    return value


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SkippedUpdate(f"{what} is not an integer")
    return value


def _at(value: Any, what: str = "date") -> datetime:
    seconds = _int(value, what)
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise SkippedUpdate(f"{what} {seconds} is not a time") from None


def _name(user: Mapping[str, Any]) -> str | None:
    first, last = user.get("first_name"), user.get("last_name")
    parts = [p for p in (first, last) if isinstance(p, str) and p]
    if parts:
        return " ".join(parts)
    username = user.get("username")
    return f"@{username}" if isinstance(username, str) and username else None


def _invite(value: Any) -> str | None:
    if isinstance(value, Mapping):
        link = value.get("invite_link")
        if isinstance(link, str) and link:
            return link
    return None


def _is_member(member: Mapping[str, Any]) -> bool:
    status = member.get("status")
    if status in _MEMBER_STATUSES:
        return True
    return status == "restricted" and member.get("is_member") is True


class Normalizer:
    """Turns updates into events for one bot (``bot_id``, ``bot_username``).

    ``remember`` bounds each memory (message authors, member names, recent kicks).
    """

    def __init__(
        self,
        *,
        bot_id: int,
        bot_username: str | None = None,
        joins_from: JoinsFrom = "chat_member",
        remember: int = 50_000,
    ) -> None:
        self.bot_id = bot_id
        self.bot_username = bot_username
        self.joins_from: JoinsFrom = joins_from
        self._authors: Bounded[tuple[int, int], int] = Bounded(remember)
        self._names: Bounded[int, str] = Bounded(remember)
        self._kicks: Bounded[tuple[int, int], float] = Bounded(min(remember, 10_000))

    # -- memories the adapter feeds and reads -----------------------------------

    def name_of(self, user_id: int) -> str | None:
        """The display name last seen for ``user_id``, if any."""
        return self._names.get(user_id)

    def author_of(self, chat_id: int, message_id: int) -> int | None:
        """Who wrote message ``message_id`` of ``chat_id``, if this adapter saw it."""
        return self._authors.get((chat_id, message_id))

    def kicked(self, chat_id: int, user_id: int) -> None:
        """This adapter is removing ``user_id`` (ban + unban): their removal is a kick."""
        self._kicks.set((chat_id, user_id), time.monotonic())

    def _was_kicked(self, chat_id: int, user_id: int) -> bool:
        at = self._kicks.pop((chat_id, user_id))
        return at is not None and time.monotonic() - at < _KICK_MEMORY

    # -- updates --------------------------------------------------------------

    def normalize(self, update: Mapping[str, Any]) -> Normalized:
        """The events of one update. Raises :class:`SkippedUpdate` when it is malformed.

        An update of a kind communitykit has no event for (a poll, an inline
        query, the bot's own membership) gives no events.
        """
        update_id = _int(update.get("update_id"), "update_id")
        ids = _Ids(update_id)
        if "message" in update:
            return self._message(_obj(update["message"], "message"), ids)
        if "edited_message" in update:
            return self._edited(_obj(update["edited_message"], "edited_message"), ids)
        if "callback_query" in update:
            return self._callback(_obj(update["callback_query"], "callback_query"), ids)
        if "chat_member" in update:
            return self._chat_member(_obj(update["chat_member"], "chat_member"), ids)
        if "chat_join_request" in update:
            request = _obj(update["chat_join_request"], "chat_join_request")
            return self._join_request(request, ids)
        if "message_reaction" in update:
            return self._reaction(_obj(update["message_reaction"], "message_reaction"), ids)
        kinds = set(update) - {"update_id"}
        if kinds and kinds <= _IGNORED_UPDATES:
            return Normalized()
        raise SkippedUpdate(f"unknown update kind {sorted(kinds)!r}" if kinds else "empty update")

    def _sender(self, message: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The human who sent ``message`` (``None``: a bot, a channel, an anonymous admin)."""
        sender = message.get("from")
        if sender is None:
            return None
        sender = _obj(sender, "message.from")
        user_id = _int(sender.get("id"), "from.id")
        if sender.get("is_bot") is True or message.get("sender_chat") is not None:
            return None
        name = _name(sender)
        if name is not None:
            self._names.set(user_id, name)
        return sender

    def _chat(self, message: Mapping[str, Any], what: str) -> tuple[int, str | None]:
        chat = _obj(message.get("chat"), f"{what}.chat")
        chat_id = _int(chat.get("id"), f"{what}.chat.id")
        group = None if chat.get("type") == "private" else str(chat_id)
        return chat_id, group

    def _message(self, message: Mapping[str, Any], ids: _Ids) -> Normalized:
        chat_id, group = self._chat(message, "message")
        message_id = _int(message.get("message_id"), "message.message_id")
        at = _at(message.get("date"))
        moved = self._migration(message, chat_id)
        if moved is not None:
            return Normalized(moved=moved)
        if self.joins_from == "service_messages" and group is not None:
            membership = self._service(message, ids, group, at)
            if membership:
                return Normalized(events=tuple(membership))
        sender = self._sender(message)
        if sender is None:
            return Normalized()
        user = _int(sender.get("id"), "from.id")
        text = message.get("text")
        caption = message.get("caption")
        media = next((kind for field, kind in _MEDIA if field in message), None)
        if not isinstance(text, str):
            text = caption if isinstance(caption, str) else None
        if text is None and media is None:
            return Normalized()  # a service message (pinned, title changed, ...)
        self._authors.set((chat_id, message_id), user)
        common = _common(ids.next(), group, str(user), at)
        if isinstance(message.get("text"), str):
            command = parse_command(message["text"], self.bot_username)
            if command is not None:
                name, args = command
                return Normalized(events=(CommandInvoked(command=name, args=args, **common),))
        reply = message.get("reply_to_message")
        reply_to: str | None = None
        if isinstance(reply, Mapping):
            replied = _int(reply.get("message_id"), "reply_to_message.message_id")
            # in a forum topic every message "replies" to the topic's first message
            if not (
                message.get("is_topic_message") and replied == message.get("message_thread_id")
            ):
                reply_to = str(replied)
        event = MessagePosted(
            message_id=str(message_id), text=text or "", reply_to=reply_to, media=media, **common
        )
        return Normalized(events=(event,))

    def _migration(self, message: Mapping[str, Any], chat_id: int) -> tuple[int, int] | None:
        to = message.get("migrate_to_chat_id")
        if to is not None:
            return (chat_id, _int(to, "migrate_to_chat_id"))
        source = message.get("migrate_from_chat_id")
        if source is not None:
            return (_int(source, "migrate_from_chat_id"), chat_id)
        return None

    def _service(
        self, message: Mapping[str, Any], ids: _Ids, group: str, at: datetime
    ) -> list[Event]:
        events: list[Event] = []
        sender = message.get("from")
        actor = _int(_obj(sender, "from").get("id"), "from.id") if sender is not None else None
        joined = message.get("new_chat_members")
        if isinstance(joined, Sequence) and not isinstance(joined, str):
            for raw in joined:
                user = _obj(raw, "new_chat_members[]")
                user_id = _int(user.get("id"), "new_chat_members[].id")
                if user.get("is_bot") is True:
                    continue
                name = _name(user)
                if name is not None:
                    self._names.set(user_id, name)
                added_by = str(actor) if actor is not None and actor != user_id else None
                common = _common(ids.next(), group, str(user_id), at)
                events.append(MemberJoined(display_name=name, added_by=added_by, **common))
        left = message.get("left_chat_member")
        if left is not None:
            user = _obj(left, "left_chat_member")
            user_id = _int(user.get("id"), "left_chat_member.id")
            if user.get("is_bot") is not True:
                self._was_kicked(int(group), user_id)  # forget it: this is the removal
                removed = actor is not None and actor != user_id
                reason = LeaveReason.KICKED if removed else LeaveReason.LEFT
                common = _common(ids.next(), group, str(user_id), at)
                events.append(MemberLeft(reason=reason, **common))
        return events

    def _edited(self, message: Mapping[str, Any], ids: _Ids) -> Normalized:
        _chat_id, group = self._chat(message, "edited_message")
        message_id = _int(message.get("message_id"), "edited_message.message_id")
        sender = self._sender(message)
        if sender is None:
            return Normalized()
        edited = message.get("edit_date")
        at = _at(edited if edited is not None else message.get("date"), "edit_date")
        text = message.get("text")
        if not isinstance(text, str):
            text = message.get("caption")
        if not isinstance(text, str):
            return Normalized()  # a media edit without a caption: nothing to read
        common = _common(ids.next(), group, str(_int(sender.get("id"), "from.id")), at)
        return Normalized(events=(MessageEdited(message_id=str(message_id), text=text, **common),))

    def _callback(self, query: Mapping[str, Any], ids: _Ids) -> Normalized:
        query_id = query.get("id")
        if not isinstance(query_id, str) or not query_id:
            raise SkippedUpdate("callback_query.id is missing")
        sender = _obj(query.get("from"), "callback_query.from")
        user = _int(sender.get("id"), "callback_query.from.id")
        name = _name(sender)
        if name is not None:
            self._names.set(user, name)
        group: str | None = None
        message = query.get("message")
        if isinstance(message, Mapping):
            _chat_id, group = self._chat(message, "callback_query.message")
        data = query.get("data")
        at = datetime.now(UTC)  # a press carries no time of its own: the moment it is read
        words = data.strip().removeprefix("/").split() if isinstance(data, str) else []
        if not words:
            return Normalized(callback_query_id=query_id)
        command, *args = words
        if "@" in command:
            command, _, addressed = command.partition("@")
            if self.bot_username is not None and addressed.lower() != self.bot_username.lower():
                return Normalized(callback_query_id=query_id)
            if not command:
                return Normalized(callback_query_id=query_id)
        event = CommandInvoked(
            command=command,
            args=tuple(args),
            extra={"via": "callback_query"},
            **_common(ids.next(), group, str(user), at),
        )
        return Normalized(events=(event,), callback_query_id=query_id)

    def _chat_member(self, update: Mapping[str, Any], ids: _Ids) -> Normalized:
        if self.joins_from != "chat_member":
            return Normalized()
        chat_id, group = self._chat(update, "chat_member")
        if group is None:
            return Normalized()
        at = _at(update.get("date"))
        old = _obj(update.get("old_chat_member"), "old_chat_member")
        new = _obj(update.get("new_chat_member"), "new_chat_member")
        user = _obj(new.get("user"), "new_chat_member.user")
        user_id = _int(user.get("id"), "new_chat_member.user.id")
        if user.get("is_bot") is True:
            return Normalized()
        actor_raw = update.get("from")
        actor = _int(_obj(actor_raw, "from").get("id"), "from.id") if actor_raw else None
        name = _name(user)
        if name is not None:
            self._names.set(user_id, name)
        was, now = _is_member(old), _is_member(new)
        common = _common(ids.next(), group, str(user_id), at)
        if now and not was:
            invite = _invite(update.get("invite_link"))
            added_by = (
                str(actor)
                if invite is None
                and actor is not None
                and actor not in (user_id, self.bot_id)
                and not update.get("via_join_request")
                else None
            )
            return Normalized(
                events=(
                    MemberJoined(display_name=name, invite=invite, added_by=added_by, **common),
                )
            )
        if was and not now:
            status = new.get("status")
            if status == "kicked":
                reason = (
                    LeaveReason.KICKED if self._was_kicked(chat_id, user_id) else LeaveReason.BANNED
                )
            elif actor is not None and actor != user_id:
                reason = LeaveReason.KICKED
            else:
                reason = LeaveReason.LEFT
            return Normalized(events=(MemberLeft(reason=reason, **common),))
        return Normalized()  # promoted, restricted, ...: not a join or a leave

    def _join_request(self, request: Mapping[str, Any], ids: _Ids) -> Normalized:
        _chat_id, group = self._chat(request, "chat_join_request")
        sender = _obj(request.get("from"), "chat_join_request.from")
        user_id = _int(sender.get("id"), "chat_join_request.from.id")
        name = _name(sender)
        if name is not None:
            self._names.set(user_id, name)
        at = _at(request.get("date"))
        bio = request.get("bio")
        extra: dict[str, Any] = {"bio": bio} if isinstance(bio, str) and bio else {}
        event = JoinRequested(
            invite=_invite(request.get("invite_link")),
            extra=extra,
            **_common(ids.next(), group, str(user_id), at),
        )
        return Normalized(events=(event,))

    def _reaction(self, update: Mapping[str, Any], ids: _Ids) -> Normalized:
        chat_id, group = self._chat(update, "message_reaction")
        message_id = _int(update.get("message_id"), "message_reaction.message_id")
        at = _at(update.get("date"))
        sender = update.get("user")
        if sender is None:
            return Normalized()  # an anonymous reaction (on behalf of a chat)
        user = _obj(sender, "message_reaction.user")
        user_id = _int(user.get("id"), "message_reaction.user.id")
        if user.get("is_bot") is True:
            return Normalized()
        old = {_reaction_key(r) for r in _list(update.get("old_reaction"), "old_reaction")}
        author = self._authors.get((chat_id, message_id))
        to_user = str(author) if author is not None else None
        events: list[Event] = []
        for raw in _list(update.get("new_reaction"), "new_reaction"):
            key = _reaction_key(raw)
            if key in old or key is None:
                continue
            common = _common(ids.next(), group, str(user_id), at)
            events.append(
                ReactionAdded(message_id=str(message_id), emoji=key, to_user=to_user, **common)
            )
        return Normalized(events=tuple(events))


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    raise SkippedUpdate(f"{what} is not a list")


def _reaction_key(value: Any) -> str | None:
    """``"👍"`` for an emoji, ``"custom:<id>"`` for a custom emoji, ``"paid"`` for a star."""
    reaction = _obj(value, "reaction")
    kind = reaction.get("type")
    if kind == "emoji" and isinstance(reaction.get("emoji"), str) and reaction["emoji"]:
        return str(reaction["emoji"])
    if kind == "custom_emoji" and isinstance(reaction.get("custom_emoji_id"), str):
        return f"custom:{reaction['custom_emoji_id']}"
    if kind == "paid":
        return "paid"
    return None


class _Ids:
    """The event ids of one update: ``u<id>``, then ``u<id>.1``, ``u<id>.2``, ..."""

    __slots__ = ("_count", "update_id")

    def __init__(self, update_id: int) -> None:
        self.update_id = update_id
        self._count = 0

    def next(self) -> str:
        n, self._count = self._count, self._count + 1
        return f"u{self.update_id}" if n == 0 else f"u{self.update_id}.{n}"


def _common(event_id: str, group: str | None, user: str, at: datetime) -> dict[str, Any]:
    return {"event_id": event_id, "platform": PLATFORM, "group": group, "user": user, "at": at}
