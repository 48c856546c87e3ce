"""The simulated platform: its state, what its users do, and what its bot API does.

Driver methods (:meth:`ConsolePlatform.join`, :meth:`~ConsolePlatform.post`, ...)
are what users of the platform do. Each changes the state and produces exactly one
normalized event, handed to the connected sink or queued when none is connected.
A driver call that makes no sense (posting in a group one is not a member of,
reacting to a deleted message) is a mistake of the simulation script and raises
:class:`ValueError`.

:meth:`ConsolePlatform.apply` is the platform's bot API: it performs an action and
returns a :class:`~communitykit.Receipt`, or raises
:class:`~communitykit.PermanentFailure` when the platform refuses it.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TextIO, TypedDict

from communitykit import (
    ACTION_TYPES,
    Action,
    ApproveJoin,
    Ban,
    CommandInvoked,
    CreateInviteLink,
    DeclineJoin,
    DeleteMessage,
    DeliveryFailed,
    Event,
    EventSink,
    JoinRequested,
    Kick,
    LeaveReason,
    Media,
    MemberJoined,
    MemberLeft,
    MemberPaid,
    MessageEdited,
    MessagePosted,
    Mute,
    PermanentFailure,
    ReactionAdded,
    Receipt,
    SendDirectMessage,
    SendMessage,
    SetTitle,
    TransientFailure,
    Warn,
)
from communitykit_console._state import (
    BOT,
    MAX_MESSAGE_LENGTH,
    PLATFORM,
    ConsoleGroup,
    ConsoleMessage,
    ConsoleUser,
    InviteLink,
    JoinRequest,
    check_aware,
    invite_url,
    short,
)

__all__ = ["CHAT_NOT_FOUND", "NOT_STARTED", "ConsolePlatform"]

CHAT_NOT_FOUND = "chat not found"
NOT_STARTED = "the user has not started a conversation with the bot"
BOT_MARK = "🤖"
_AMOUNT = re.compile(r"[0-9]+(?:\.[0-9]+)?")


class _Common(TypedDict):
    event_id: str
    platform: str
    group: str | None
    user: str
    at: datetime


def _real_clock() -> datetime:
    return datetime.now(UTC)


class ConsolePlatform:
    """An in-process chat platform: groups, users, messages and moderation state.

    ``clock`` returns the current (aware) time; a simulation passes its own (see
    :class:`~communitykit_console.ManualClock`) so events carry the times it
    chooses. ``groups`` are created empty (ids, or a mapping of id to title).
    With ``quiet=False`` every transcript line is also printed to ``out``
    (standard output by default) as it happens. Event ids are ``event_prefix``
    followed by 1, 2, 3, ... for each platform instance.

    The state is public, for tests and demos to inspect:

    * ``groups``: group id → :class:`ConsoleGroup` (title, members, admins)
    * ``users``: user id → :class:`ConsoleUser` (display name, started the bot)
    * ``messages``: message id → :class:`ConsoleMessage` (group, author, text, deleted)
    * ``mutes``: ``(group, user)`` → muted until; ``bans``: ``(group, user)`` →
      banned until (``None``: for good)
    * ``join_requests``: ``(group, user)`` → pending :class:`JoinRequest`
    * ``invite_links``: link → :class:`InviteLink` (group, name, creator, uses)
    * ``titles``: ``(group, user)`` → title; ``warnings``: ``(group, user)`` →
      active warnings
    * ``payments``: the :class:`~communitykit.MemberPaid` events, in order
    * ``transcript``: what happened, one readable line each
      (``[main] 🤖 Welcome, Alice!``)
    """

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] | None = None,
        groups: Iterable[str] | Mapping[str, str] = (),
        quiet: bool = True,
        out: TextIO | None = None,
        event_prefix: str = "c-",
    ) -> None:
        self.clock: Callable[[], datetime] = clock if clock is not None else _real_clock
        self.quiet = quiet
        self.out = out
        self.event_prefix = event_prefix
        self.max_message_length = MAX_MESSAGE_LENGTH

        self.groups: dict[str, ConsoleGroup] = {}
        self.users: dict[str, ConsoleUser] = {}
        self.messages: dict[str, ConsoleMessage] = {}
        self.mutes: dict[tuple[str, str], datetime] = {}
        self.bans: dict[tuple[str, str], datetime | None] = {}
        self.join_requests: dict[tuple[str, str], JoinRequest] = {}
        self.invite_links: dict[str, InviteLink] = {}
        self.titles: dict[tuple[str, str], str] = {}
        self.warnings: dict[tuple[str | None, str], int] = {}
        self.payments: list[MemberPaid] = []
        self.transcript: list[str] = []

        self._event_count = 0
        self._message_count = 0
        self._queue: list[Event] = []
        self._sink: EventSink | None = None
        self._batch_depth = 0
        self._faults: deque[tuple[bool, float | None]] = deque()
        self._observed: set[str] = set()

        titles = groups if isinstance(groups, Mapping) else {g: g for g in groups}
        for group_id, title in titles.items():
            self.add_group(group_id, title)

    # ------------------------------------------------------------------ setup

    def now(self) -> datetime:
        """The platform's current time (the clock's reading, checked to be aware)."""
        return check_aware(self.clock(), "the console platform's clock")

    def add_group(
        self, group_id: str, title: str | None = None, *, admins: Iterable[str] = ()
    ) -> ConsoleGroup:
        """Create an empty group; ``admins`` become members and administrators at once."""
        if not isinstance(group_id, str) or not group_id:
            raise ValueError(f"a group id must be a non-empty string, got {group_id!r}")
        if group_id in self.groups:
            raise ValueError(f"the console platform already has a group {group_id!r}")
        group = ConsoleGroup(group_id=group_id, title=title or group_id)
        for admin in admins:
            self.add_user(admin)
            group.members.add(admin)
            group.admins.add(admin)
        self.groups[group_id] = group
        return group

    def add_user(
        self, user_id: str, display_name: str | None = None, *, started_bot: bool | None = None
    ) -> ConsoleUser:
        """Make ``user_id`` known (no event), or update their name and DM permission."""
        if not isinstance(user_id, str) or not user_id:
            raise ValueError(f"a user id must be a non-empty string, got {user_id!r}")
        user = self.users.get(user_id)
        if user is None:
            user = self.users[user_id] = ConsoleUser(user_id=user_id)
        if display_name is not None:
            user.display_name = display_name
        if started_bot is not None:
            user.started_bot = started_bot
        return user

    def create_invite_link(self, group: str, name: str, *, creator: str = BOT) -> InviteLink:
        """An invite link to ``group`` named ``name`` (the same one when asked again).

        Members sharing a link of their own use this; it produces no event (the
        platforms report a link only when someone joins through it).
        """
        self._group(group)
        if not name:
            raise ValueError("an invite link needs a name")
        url = invite_url(group, name)
        link = self.invite_links.get(url)
        if link is None:
            link = self.invite_links[url] = InviteLink(
                link=url, group=group, name=name, creator=creator
            )
        return link

    def invite_link(self, group: str, name: str) -> InviteLink | None:
        """The invite link to ``group`` named ``name``, if it was created."""
        return self.invite_links.get(invite_url(group, name))

    def name_of(self, user: str) -> str:
        """How the transcript names ``user``."""
        if user == BOT:
            return BOT_MARK
        known = self.users.get(user)
        return known.name if known is not None else user

    # ------------------------------------------------------------------ queries

    def is_member(self, user: str, group: str) -> bool:
        found = self.groups.get(group)
        return found is not None and user in found.members

    def is_banned(self, user: str, group: str) -> bool:
        """Whether a ban on ``user`` in ``group`` is in force now."""
        key = (group, user)
        if key not in self.bans:
            return False
        until = self.bans[key]
        return until is None or until > self.now()

    def muted_until(self, user: str, group: str) -> datetime | None:
        """Until when ``user`` is muted in ``group``, or ``None`` when they are not now."""
        until = self.mutes.get((group, user))
        return until if until is not None and until > self.now() else None

    def why_cannot_post(self, user: str, group: str | None) -> str | None:
        """Why ``user`` may not post in ``group`` now, or ``None`` when they may."""
        if group is None:
            return None
        if group not in self.groups:
            return f"there is no group {group!r} on the console platform"
        if self.is_banned(user, group):
            return f"{user!r} is banned from {group!r}"
        if not self.is_member(user, group):
            return f"{user!r} is not a member of {group!r}"
        until = self.muted_until(user, group)
        if until is not None:
            return f"{user!r} is muted in {group!r} until {until.isoformat()}"
        return None

    def can_post(self, user: str, group: str | None) -> bool:
        return self.why_cannot_post(user, group) is None

    # ------------------------------------------------------------------ delivery

    @property
    def connected(self) -> bool:
        return self._sink is not None

    def connect(self, sink: EventSink) -> None:
        """Hand future events to ``sink`` (queued ones go at the next :meth:`flush`)."""
        self._sink = sink

    def disconnect(self, sink: EventSink | None = None) -> None:
        """Stop handing events to a sink: they are queued again. Idempotent.

        With ``sink``, only that sink is disconnected (another one stays connected).
        """
        if sink is None or sink == self._sink:
            self._sink = None

    async def flush(self) -> None:
        """Hand every queued event to the connected sink, in one list.

        Events the platform reports about the bot's own actions (a member approved,
        kicked or banned) are queued like a real platform's updates and go out
        here, before the next event a user causes. If the sink raises, the events
        stay queued and the error propagates.
        """
        if self._sink is None or not self._queue:
            return
        events, self._queue = self._queue, []
        try:
            await self._sink(events)
        except BaseException:
            self._queue[:0] = events
            raise

    def drain_queue(self) -> list[Event]:
        """Return the queued events (those no sink took yet) and clear the queue."""
        events, self._queue = self._queue, []
        return events

    @property
    def queued(self) -> int:
        return len(self._queue)

    @contextlib.asynccontextmanager
    async def batch(self) -> AsyncIterator[None]:
        """Collect the events of the block; hand them to the sink as one list at exit.

        When the block raises, its events stay queued and are not handed over.
        """
        self._batch_depth += 1
        try:
            yield
        finally:
            self._batch_depth -= 1
        if self._batch_depth == 0:
            await self.flush()

    async def _emit(self, event: Event) -> None:
        self._queue.append(event)
        if self._batch_depth == 0:
            await self.flush()

    # ------------------------------------------------------------------ fault injection

    def fail_next(
        self, n: int = 1, transient: bool = True, retry_after: float | None = None
    ) -> None:
        """Make the next ``n`` performed actions fail.

        Transient failures (a simulated network error, with ``retry_after`` if
        given) by default; permanent ones with ``transient=False``.
        """
        if n < 0:
            raise ValueError(f"cannot fail a negative number of actions ({n})")
        self._faults.extend([(transient, retry_after)] * n)

    def take_fault(self) -> DeliveryFailed | None:
        """The failure for this perform, if :meth:`fail_next` left one (it is used up)."""
        if not self._faults:
            return None
        transient, retry_after = self._faults.popleft()
        if transient:
            return TransientFailure(
                "injected failure: the console platform did not answer", retry_after=retry_after
            )
        return PermanentFailure("injected failure: the console platform refused the action")

    # ------------------------------------------------------------------ driving

    async def join(
        self,
        user: str,
        group: str,
        *,
        display_name: str | None = None,
        invite: str | None = None,
        added_by: str | None = None,
    ) -> MemberJoined:
        """``user`` joins ``group``, maybe through an invite link or added by a member."""
        target = self._group(group)
        if self.is_banned(user, group):
            raise ValueError(f"{user!r} is banned from {group!r} and cannot join it")
        if user in target.members:
            raise ValueError(f"{user!r} is already a member of {group!r}")
        if invite is not None:
            self._invite(invite, group)
        if added_by is not None and added_by not in target.members:
            raise ValueError(
                f"{added_by!r} is not a member of {group!r} and cannot add {user!r} to it"
            )
        known = self.add_user(user, display_name)
        event = MemberJoined(
            **self._common(user, group),
            display_name=known.display_name,
            invite=invite,
            added_by=added_by,
        )
        self._record(event)
        await self._emit(event)
        return event

    async def leave(
        self, user: str, group: str, reason: LeaveReason | str = LeaveReason.LEFT
    ) -> MemberLeft:
        """``user`` leaves ``group`` (or an administrator removes them: ``kicked``, ``banned``)."""
        self._group(group)
        why = LeaveReason(reason)
        if not self.is_member(user, group):
            raise ValueError(f"{user!r} is not a member of {group!r} and cannot leave it")
        event = MemberLeft(**self._common(user, group), reason=why)
        self._record(event)
        await self._emit(event)
        return event

    async def post(
        self,
        user: str,
        group: str | None,
        text: str,
        *,
        reply_to: str | None = None,
        media: Media | str | None = None,
    ) -> str:
        """``user`` posts ``text`` in ``group`` (``None``: to the bot); returns the message id."""
        self._speaker(user, group, "post")
        if reply_to is not None:
            self._message_in(reply_to, group, "reply to")
        message_id = self._next_message_id()
        event = MessagePosted(
            **self._common(user, group),
            message_id=message_id,
            text=text,
            reply_to=reply_to,
            media=None if media is None else Media(media),
        )
        self._record(event)
        await self._emit(event)
        return message_id

    async def edit(self, user: str, group: str | None, message_id: str, text: str) -> MessageEdited:
        """``user`` edits their message ``message_id``; ``text`` is the new text."""
        self._speaker(user, group, "edit messages")
        message = self._message_in(message_id, group, "edit")
        if message.author != user:
            raise ValueError(
                f"{user!r} cannot edit message {message_id!r}: {message.author!r} wrote it"
            )
        event = MessageEdited(**self._common(user, group), message_id=message_id, text=text)
        self._record(event)
        await self._emit(event)
        return event

    async def react(
        self, user: str, group: str | None, message_id: str, emoji: str
    ) -> ReactionAdded:
        """``user`` reacts with ``emoji`` to message ``message_id`` (``to_user``: its author)."""
        if group is not None:
            self._group(group)
            if self.is_banned(user, group) or not self.is_member(user, group):
                raise ValueError(f"{user!r} is not a member of {group!r} and cannot react there")
        message = self._message_in(message_id, group, "react to")
        event = ReactionAdded(
            **self._common(user, group),
            message_id=message_id,
            emoji=emoji,
            to_user=message.author,
        )
        self._record(event)
        await self._emit(event)
        return event

    async def command(
        self, user: str, group: str | None, command: str, *args: str
    ) -> CommandInvoked:
        """``user`` sends ``/command args...`` in ``group`` (``None``: to the bot directly).

        A command sent to the bot directly (``/start``) lets the bot message the user.
        """
        name = command.removeprefix("/")
        if not name or name.startswith("/") or name != name.strip():
            raise ValueError(f"a command needs a name such as 'checkin', got {command!r}")
        self._speaker(user, group, "use commands")
        event = CommandInvoked(**self._common(user, group), command=name, args=args)
        self._record(event)
        await self._emit(event)
        return event

    async def request_join(
        self,
        user: str,
        group: str,
        answers: Mapping[str, str] | None = None,
        invite: str | None = None,
    ) -> JoinRequested:
        """``user`` asks to join ``group``, answering its entry questions."""
        self._group(group)
        if self.is_banned(user, group):
            raise ValueError(f"{user!r} is banned from {group!r} and cannot ask to join it")
        if self.is_member(user, group):
            raise ValueError(f"{user!r} is already a member of {group!r}")
        if (group, user) in self.join_requests:
            raise ValueError(f"{user!r} already has a pending request to join {group!r}")
        if invite is not None:
            self._invite(invite, group)
        self.add_user(user)
        event = JoinRequested(
            **self._common(user, group), answers=dict(answers or {}), invite=invite
        )
        self._record(event)
        await self._emit(event)
        return event

    async def pay(
        self,
        user: str,
        amount: str,
        currency: str,
        valid_until: date | None = None,
    ) -> MemberPaid:
        """Record that ``user`` paid ``amount`` (a decimal string such as ``"99.00"``)."""
        if not isinstance(amount, str) or _AMOUNT.fullmatch(amount) is None:
            raise ValueError(
                f"an amount must be a non-negative decimal string such as '99.00', got {amount!r}"
            )
        value = Decimal(amount)
        if not currency:
            raise ValueError("a payment needs a currency, e.g. 'CNY'")
        self.add_user(user)
        event = MemberPaid(
            **self._common(user, None), amount=value, currency=currency, valid_until=valid_until
        )
        self._record(event)
        await self._emit(event)
        return event

    # ------------------------------------------------------------------ mirroring

    def observe(self, event: Event) -> None:
        """Mirror an event that happened elsewhere (a recorded log) into the state.

        Nothing is emitted and nothing is checked: the log is the truth. Groups and
        users are created as the events name them, a member who posts is a member.
        ``communitykit simulate`` uses this so actions about recorded events find
        their groups, members and messages. An event seen before is ignored.
        """
        key = f"{event.platform}\x1f{event.event_id}"
        if key in self._observed:
            return
        self._observed.add(key)
        if event.group is not None and event.group not in self.groups:
            self.add_group(event.group)
        self.add_user(event.user)
        if event.group is not None and not isinstance(event, MemberLeft | JoinRequested):
            self.groups[event.group].members.add(event.user)
        if isinstance(event, MessagePosted):
            number = event.message_id
            if number.isdigit():
                self._message_count = max(self._message_count, int(number))
        self._record(event)

    # ------------------------------------------------------------------ bot API

    def apply(self, action: Action) -> Receipt:
        """Perform ``action`` on the platform, as its bot API would.

        Raises :class:`~communitykit.PermanentFailure` with the platform's reason
        when it refuses (``"chat not found"``, a message too long, ...). Events the
        platform reports about the change (a member approved, kicked or banned)
        are queued and handed to the sink at the next :meth:`flush`.
        """
        if isinstance(action, SendMessage):
            return self._send_message(action)
        if isinstance(action, SendDirectMessage):
            return self._send_direct_message(action)
        if isinstance(action, DeleteMessage):
            return self._delete_message(action)
        if isinstance(action, Warn):
            return self._warn(action)
        if isinstance(action, Mute):
            return self._mute(action)
        if isinstance(action, Kick):
            return self._kick(action)
        if isinstance(action, Ban):
            return self._ban(action)
        if isinstance(action, ApproveJoin):
            return self._approve_join(action)
        if isinstance(action, DeclineJoin):
            return self._decline_join(action)
        if isinstance(action, CreateInviteLink):
            return self._create_invite_link(action)
        if isinstance(action, SetTitle):
            return self._set_title(action)
        raise PermanentFailure(f"the console platform cannot perform {action.TYPE!r}")

    def _send_message(self, action: SendMessage) -> Receipt:
        group = self._chat(action)
        self._check_text(action.text)
        reply_to = action.reply_to
        if reply_to is not None:
            target = self.messages.get(reply_to)
            if target is None or target.group != group.group_id or target.deleted:
                reply_to = None  # sent without the reply, as Telegram does when asked
        message = self._store_message(
            group=group.group_id, author=BOT, text=action.text, reply_to=reply_to
        )
        self._say(f"[{group.group_id}] {BOT_MARK} {action.text}")
        return Receipt(action_id=action.action_id, platform_message_id=message.message_id)

    def _send_direct_message(self, action: SendDirectMessage) -> Receipt:
        user = self._target(action)
        known = self.users.get(user)
        if known is None or not known.started_bot:
            raise PermanentFailure(NOT_STARTED, unreachable=True)
        self._check_text(action.text)
        message = self._store_message(group=None, author=BOT, text=action.text, recipient=user)
        self._say(f"[dm {known.name}] {BOT_MARK} {action.text}")
        return Receipt(action_id=action.action_id, platform_message_id=message.message_id)

    def _delete_message(self, action: DeleteMessage) -> Receipt:
        group = self._chat(action)
        message = self.messages.get(action.message_id)
        if message is None or message.group != group.group_id:
            raise PermanentFailure("message to delete not found")
        if message.deleted:
            raise PermanentFailure("message to delete not found: it was already deleted")
        message.deleted = True
        self._say(
            f"[{group.group_id}] {BOT_MARK} deleted message {message.message_id} by "
            f"{self.name_of(message.author)} ({short(message.text)!r}){_because(action)}"
        )
        return Receipt(
            action_id=action.action_id,
            platform_message_id=message.message_id,
            detail=f"deleted message {message.message_id}",
        )

    def _warn(self, action: Warn) -> Receipt:
        user = self._target(action)
        group = None if action.group is None else self._chat(action).group_id
        self.warnings[(group, user)] = action.count
        where = "dm" if group is None else group
        self._say(
            f"[{where}] {BOT_MARK} ⚠ warned {self.name_of(user)} "
            f"(warning {action.count}){_because(action)}"
        )
        return Receipt(action_id=action.action_id, detail=f"warning {action.count}")

    def _mute(self, action: Mute) -> Receipt:
        group = self._chat(action)
        user = self._member(action, group, "mute")
        if user in group.admins:
            raise PermanentFailure("cannot mute an administrator of the chat")
        self.mutes[(group.group_id, user)] = action.until
        self._say(
            f"[{group.group_id}] {BOT_MARK} muted {self.name_of(user)} until "
            f"{action.until.isoformat()}{_because(action)}"
        )
        return Receipt(action_id=action.action_id, detail=f"muted until {action.until.isoformat()}")

    def _kick(self, action: Kick) -> Receipt:
        group = self._chat(action)
        user = self._target(action)
        if user in group.admins:
            raise PermanentFailure("cannot remove an administrator of the chat")
        if user not in group.members:
            return Receipt(action_id=action.action_id, detail="was not a member")
        self._say(f"[{group.group_id}] {BOT_MARK} removed {self.name_of(user)}{_because(action)}")
        self._report(MemberLeft(**self._common(user, group.group_id), reason=LeaveReason.KICKED))
        return Receipt(action_id=action.action_id, detail=f"removed from {group.group_id}")

    def _ban(self, action: Ban) -> Receipt:
        group = self._chat(action)
        user = self._target(action)
        if user in group.admins:
            raise PermanentFailure("cannot ban an administrator of the chat")
        self.add_user(user)
        until = "for good" if action.until is None else f"until {action.until.isoformat()}"
        self._say(
            f"[{group.group_id}] {BOT_MARK} banned {self.name_of(user)} {until}{_because(action)}"
        )
        was_member = user in group.members
        self.bans[(group.group_id, user)] = action.until
        self.join_requests.pop((group.group_id, user), None)
        if was_member:
            self._report(
                MemberLeft(**self._common(user, group.group_id), reason=LeaveReason.BANNED)
            )
        return Receipt(action_id=action.action_id, detail=f"banned {until}")

    def _approve_join(self, action: ApproveJoin) -> Receipt:
        group = self._chat(action)
        user = self._target(action)
        request = self.join_requests.get((group.group_id, user))
        if request is None:
            raise PermanentFailure("there is no pending request from this user to join the chat")
        self._say(
            f"[{group.group_id}] {BOT_MARK} approved the request of {self.name_of(user)}"
            f"{_because(action)}"
        )
        known = self.add_user(user)
        self._report(
            MemberJoined(
                **self._common(user, group.group_id),
                display_name=known.display_name,
                invite=request.invite,
            )
        )
        return Receipt(action_id=action.action_id, detail="approved")

    def _decline_join(self, action: DeclineJoin) -> Receipt:
        group = self._chat(action)
        user = self._target(action)
        if self.join_requests.pop((group.group_id, user), None) is None:
            raise PermanentFailure("there is no pending request from this user to join the chat")
        self._say(
            f"[{group.group_id}] {BOT_MARK} declined the request of {self.name_of(user)}"
            f"{_because(action)}"
        )
        return Receipt(action_id=action.action_id, detail="declined")

    def _create_invite_link(self, action: CreateInviteLink) -> Receipt:
        group = self._chat(action)
        if not action.name:
            raise PermanentFailure("an invite link needs a name")
        link = self.create_invite_link(group.group_id, action.name, creator=action.user or BOT)
        self._say(f"[{group.group_id}] {BOT_MARK} created the invite link {link.link}")
        return Receipt(action_id=action.action_id, detail=link.link)

    def _set_title(self, action: SetTitle) -> Receipt:
        group = self._chat(action)
        user = self._member(action, group, "give a title to")
        self.titles[(group.group_id, user)] = action.title
        self._say(
            f"[{group.group_id}] {BOT_MARK} {self.name_of(user)} now carries the title "
            f"{action.title!r}"
        )
        return Receipt(action_id=action.action_id, detail=action.title)

    # ------------------------------------------------------------------ internals

    def _common(self, user: str, group: str | None) -> _Common:
        """The common fields of the next event (its id is taken only here)."""
        at = self.now()
        self._event_count += 1
        return _Common(
            event_id=f"{self.event_prefix}{self._event_count}",
            platform=PLATFORM,
            group=group,
            user=user,
            at=at,
        )

    def _next_message_id(self) -> str:
        self._message_count += 1
        while str(self._message_count) in self.messages:
            self._message_count += 1
        return str(self._message_count)

    def _store_message(
        self,
        *,
        group: str | None,
        author: str,
        text: str,
        reply_to: str | None = None,
        recipient: str | None = None,
    ) -> ConsoleMessage:
        message = ConsoleMessage(
            message_id=self._next_message_id(),
            group=group,
            author=author,
            text=text,
            at=self.now(),
            reply_to=reply_to,
            recipient=recipient,
        )
        self.messages[message.message_id] = message
        return message

    def _say(self, line: str) -> None:
        self.transcript.append(line)
        if not self.quiet:
            print(line, file=self.out or sys.stdout, flush=True)

    def _report(self, event: Event) -> None:
        """A change the bot caused, reported by the platform: recorded and queued."""
        self._record(event, say=False)
        self._queue.append(event)

    def _group(self, group: str) -> ConsoleGroup:
        found = self.groups.get(group)
        if found is None:
            raise ValueError(
                f"there is no group {group!r} on the console platform; "
                "create it with add_group() or the 'groups' option"
            )
        return found

    def _invite(self, invite: str, group: str) -> InviteLink:
        link = self.invite_links.get(invite)
        if link is None or link.group != group:
            raise ValueError(f"{invite!r} is not an invite link to {group!r}")
        return link

    def _speaker(self, user: str, group: str | None, verb: str) -> None:
        if group is None:
            return
        self._group(group)
        reason = self.why_cannot_post(user, group)
        if reason is not None:
            raise ValueError(f"{reason} and cannot {verb} there")

    def _message_in(self, message_id: str, group: str | None, verb: str) -> ConsoleMessage:
        message = self.messages.get(message_id)
        where = "the direct messages" if group is None else repr(group)
        if message is None or message.group != group:
            raise ValueError(f"cannot {verb} message {message_id!r}: it is not in {where}")
        if message.deleted:
            raise ValueError(f"cannot {verb} message {message_id!r}: it was deleted")
        return message

    def _chat(self, action: Action) -> ConsoleGroup:
        if action.group is None:
            raise PermanentFailure(f"{action.TYPE} needs a group (chat not found)")
        found = self.groups.get(action.group)
        if found is None:
            raise PermanentFailure(CHAT_NOT_FOUND)
        return found

    def _target(self, action: Action) -> str:
        if action.user is None:
            raise PermanentFailure(f"{action.TYPE} needs a user")
        return action.user

    def _member(self, action: Action, group: ConsoleGroup, verb: str) -> str:
        user = self._target(action)
        if user not in group.members:
            raise PermanentFailure(f"cannot {verb} a user who is not a member of the chat")
        return user

    def _check_text(self, text: str) -> None:
        if not text.strip():
            raise PermanentFailure("message text is empty")
        if len(text) > self.max_message_length:
            raise PermanentFailure(
                f"message is too long: {len(text)} characters, "
                f"the console platform allows at most {self.max_message_length}"
            )

    def _record(self, event: Event, *, say: bool = True) -> None:
        """Apply ``event`` to the state (the one place events change it)."""
        group = event.group
        where = f"[{group}]" if group is not None else f"[dm {self.name_of(event.user)}]"
        name = self.name_of(event.user)
        line: str | None = None
        if isinstance(event, MemberJoined):
            known = self.add_user(event.user, event.display_name)
            name = known.name
            if group is not None:
                self.groups[group].members.add(event.user)
                self.join_requests.pop((group, event.user), None)
                self.bans.pop((group, event.user), None)
            link = None if event.invite is None else self.invite_links.get(event.invite)
            if link is not None:
                link.uses += 1
            line = f"{where} → {name} joined"
            if event.invite is not None:
                line += f" via {event.invite}"
            if event.added_by is not None:
                line += f", added by {self.name_of(event.added_by)}"
        elif isinstance(event, MemberLeft):
            if group is not None:
                self.groups[group].members.discard(event.user)
                self.mutes.pop((group, event.user), None)
                if event.reason is LeaveReason.BANNED:
                    self.bans.setdefault((group, event.user), None)
            line = {
                LeaveReason.LEFT: f"{where} ← {name} left",
                LeaveReason.KICKED: f"{where} ← {name} was removed",
                LeaveReason.BANNED: f"{where} ← {name} was banned",
            }[event.reason]
        elif isinstance(event, JoinRequested):
            if group is not None:
                self.join_requests[(group, event.user)] = JoinRequest(
                    group=group,
                    user=event.user,
                    at=event.at,
                    answers=dict(event.answers),
                    invite=event.invite,
                )
            answers = "; ".join(f"{q} {a}" for q, a in event.answers.items())
            line = f"{where} ? {name} asks to join" + (f" ({answers})" if answers else "")
        elif isinstance(event, MessagePosted):
            self.messages[event.message_id] = ConsoleMessage(
                message_id=event.message_id,
                group=group,
                author=event.user,
                text=event.text,
                at=event.at,
                reply_to=event.reply_to,
                media=event.media,
            )
            if group is None:
                self.add_user(event.user, started_bot=True)
            extras = []
            if event.media is not None:
                extras.append(f"[{event.media}]")
            if event.reply_to is not None:
                extras.append(f"↩{event.reply_to}")
            prefix = " ".join(extras)
            line = f"{where} {name}: " + (f"{prefix} " if prefix else "") + event.text
        elif isinstance(event, MessageEdited):
            message = self.messages.get(event.message_id)
            if message is not None:
                message.text = event.text
                message.edits += 1
            line = f"{where} {name} edited message {event.message_id}: {event.text}"
        elif isinstance(event, ReactionAdded):
            message = self.messages.get(event.message_id)
            if message is not None:
                message.reactions.append((event.user, event.emoji))
            line = f"{where} {name} reacted {event.emoji} to message {event.message_id}"
        elif isinstance(event, CommandInvoked):
            if group is None:
                self.add_user(event.user, started_bot=True)
            line = f"{where} {name}: /{' '.join([event.command, *event.args])}"
        elif isinstance(event, MemberPaid):
            self.payments.append(event)
            until = "" if event.valid_until is None else f", valid until {event.valid_until}"
            line = f"[payments] {name} paid {event.amount} {event.currency}{until}"
        if say and line is not None:
            self._say(line)


def _because(action: Action) -> str:
    return f" — {action.reason}" if action.reason else ""


#: the action types the console platform performs: every action type of ``EVENTS.md``
ACTION_CLASSES: tuple[type[Action], ...] = tuple(ACTION_TYPES.values())
ACTIONS: frozenset[str] = frozenset(ACTION_TYPES)
