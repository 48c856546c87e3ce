"""The Telegram adapter: updates in (long polling or webhook), actions out (the Bot API).

Every request goes through one :func:`communitykit.http.telegram_client`, so the
Bot API's limits hold whatever the engine asks for at once: 30 messages a second
per bot, one a second per private chat, 20 a minute per group (or the paid
broadcast lane), 429s waited out, network errors retried, the token redacted
from every log line and error.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager
from typing import Any, Literal

import httpx
import structlog

from communitykit import (
    Action,
    Adapter,
    ApproveJoin,
    Ban,
    Capabilities,
    CommunityKitError,
    CreateInviteLink,
    DeclineJoin,
    DeleteMessage,
    DeliveryFailed,
    Event,
    EventSink,
    Kick,
    Mute,
    PermanentFailure,
    PlatformSettings,
    Receipt,
    Secret,
    SendDirectMessage,
    SendMessage,
    SetTitle,
    TransientFailure,
    Warn,
)
from communitykit.engine import is_bulk
from communitykit.http import (
    TELEGRAM,
    AuthFailed,
    ChatMigrated,
    CircuitOpen,
    Governor,
    HttpClient,
    HttpError,
    Key,
    Limits,
    Priority,
    Redactor,
    TargetUnreachable,
    install_log_filter,
    redact_text,
    telegram_bot_id,
    telegram_client,
    telegram_keys,
)
from communitykit_telegram._normalize import (
    DEFAULT_ALLOWED_UPDATES,
    PLATFORM,
    Bounded,
    JoinsFrom,
    Normalizer,
    SkippedUpdate,
)
from communitykit_telegram._text import MAX_MESSAGE_LENGTH, split_text, utf16_len
from communitykit_telegram._webhook import NotReady, WebhookApp, WebhookServer, parse_listen

__all__ = [
    "ACTIONS",
    "DEFAULT_API_BASE",
    "DEFAULT_RATE_MARGIN",
    "Mode",
    "TelegramAdapter",
    "priority_of",
]

log = structlog.get_logger("communitykit_telegram")

DEFAULT_API_BASE = "https://api.telegram.org"

#: The safety margin under Telegram's limits (as ``TELEGRAM``'s own). Telegram counts
#: arrivals, and a request leaves a little after the governor granted it when the
#: event loop is busy: the 30/s bot lane has ``margin / (1 - margin)`` seconds of
#: slack, 31 ms at 3 %. Against the double in a process of its own, 300-message
#: broadcasts ran at 0.95-0.96 of the limit with no 429 (benchmarks/broadcast.py);
#: raise ``rate_margin`` where the network to Telegram jitters more (5 %: 53 ms).
DEFAULT_RATE_MARGIN = 0.03

#: Every action type the adapter performs.
ACTIONS: frozenset[str] = frozenset(
    {
        "send_message",
        "send_direct_message",
        "delete_message",
        "warn",
        "mute",
        "kick",
        "ban",
        "approve_join",
        "decline_join",
        "create_invite_link",
        "set_title",
    }
)

Mode = Literal["polling", "webhook"]

_OPTIONS = (
    "mode",
    "poll_timeout",
    "allowed_updates",
    "paid_broadcast",
    "webhook_secret",
    "webhook_url",
    "webhook_listen",
    "bot_username",
    "joins_from",
    "max_retries",
    "request_timeout",
    "rate_margin",
)
_WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")
_USERNAME = re.compile(r"@?[A-Za-z0-9_]{3,64}")
_CHAT_ID = re.compile(r"-?[0-9]+")
#: no permission to send anything (``restrictChatMember`` for a mute)
_MUTED = {
    "can_send_messages": False,
    "can_send_audios": False,
    "can_send_documents": False,
    "can_send_photos": False,
    "can_send_videos": False,
    "can_send_video_notes": False,
    "can_send_voice_notes": False,
    "can_send_polls": False,
    "can_send_other_messages": False,
    "can_add_web_page_previews": False,
}
#: the scope of ``getUpdates``: no rate, but a 429 answered to it pauses the next poll
_POLL = "poll"
_MODERATION = (DeleteMessage, Warn, Mute, Kick, Ban, ApproveJoin, DeclineJoin)

Sleep = Callable[[float], Awaitable[Any]]


def priority_of(action: Action) -> Priority:
    """How urgent an action is among requests waiting for the same limits.

    Broadcasts (:func:`communitykit.engine.is_bulk`) are ``LOW``; moderation,
    join requests and replies (a ``send_message`` with ``reply_to``) are
    ``HIGH``; the rest (welcomes, scheduled posts, direct messages, invite
    links, titles) ``NORMAL``.
    """
    if is_bulk(action):
        return Priority.LOW
    if isinstance(action, _MODERATION) or (isinstance(action, SendMessage) and action.reply_to):
        return Priority.HIGH
    return Priority.NORMAL


class _ChatLocks:
    """One lock per chat, kept only while someone holds or waits for it.

    The parts of a long message go out back to back: no other message to the
    same chat slips in between them.
    """

    def __init__(self) -> None:
        self._locks: dict[int | str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, chat: int | str) -> AsyncIterator[None]:
        lock, users = self._locks.get(chat, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[chat] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[chat]
            if users <= 1:
                del self._locks[chat]
            else:
                self._locks[chat] = (lock, users - 1)


class TelegramAdapter(Adapter):
    """The ``telegram`` platform: the Bot API of one bot token.

    Build it from a ``[platforms.telegram]`` table with :meth:`from_settings`,
    or directly. ``mode`` is ``"polling"`` (``getUpdates``; the default) or
    ``"webhook"`` (:attr:`webhook_app`, served by :meth:`start` on
    ``webhook_listen`` and registered with ``setWebhook`` when ``webhook_url``
    is given). ``limits`` is the limit profile (or a shared
    :class:`~communitykit.http.Governor`): by default ``TELEGRAM`` with
    ``rate_margin`` (:data:`DEFAULT_RATE_MARGIN`); ``transport`` replaces the
    network (tests). See ``docs/telegram.md``.
    """

    platform = PLATFORM
    capabilities = Capabilities(
        actions=ACTIONS, direct_messages=True, max_message_length=MAX_MESSAGE_LENGTH
    )

    def __init__(
        self,
        token: Secret | str,
        *,
        api_base: str = DEFAULT_API_BASE,
        mode: Mode = "polling",
        poll_timeout: int = 30,
        allowed_updates: Iterable[str] = DEFAULT_ALLOWED_UPDATES,
        paid_broadcast: bool = False,
        webhook_secret: Secret | str | None = None,
        webhook_url: str | None = None,
        webhook_listen: str = "127.0.0.1:8443",
        bot_username: str | None = None,
        joins_from: JoinsFrom = "chat_member",
        limits: Limits | Governor | None = None,
        rate_margin: float = DEFAULT_RATE_MARGIN,
        transport: httpx.AsyncBaseTransport | None = None,
        max_retries: int = 3,
        backoff: float = 0.5,
        request_timeout: float = 30.0,
        poll_backoff: float = 1.0,
        max_poll_backoff: float = 30.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._token = token if isinstance(token, Secret) else Secret(token)
        secret = webhook_secret
        self._webhook_secret = Secret(secret) if isinstance(secret, str) else secret
        # redact both from every log line from now on, before any request is made
        self._redactor = Redactor([s for s in (self._token, self._webhook_secret) if s])
        self._redactor.register()
        install_log_filter()
        try:
            self.bot_id = telegram_bot_id(self._token)
        except ValueError as exc:
            raise CommunityKitError(f"telegram: {exc}") from None
        if mode not in ("polling", "webhook"):
            raise CommunityKitError(f"telegram: mode is 'polling' or 'webhook', got {mode!r}")
        if mode == "webhook" and not self._webhook_secret:
            raise CommunityKitError(
                "telegram: webhook mode needs a webhook_secret (anyone could post updates "
                "otherwise)"
            )
        if self._webhook_secret and not _WEBHOOK_SECRET.fullmatch(self._webhook_secret.reveal()):
            raise CommunityKitError(
                "telegram: webhook_secret must be 1-256 characters A-Z, a-z, 0-9, '_' or '-'"
            )
        if joins_from not in ("chat_member", "service_messages"):
            raise CommunityKitError(
                f"telegram: joins_from is 'chat_member' or 'service_messages', got {joins_from!r}"
            )
        try:
            self.webhook_listen = parse_listen(webhook_listen)
        except ValueError as exc:
            raise CommunityKitError(f"telegram: webhook_listen: {exc}") from None
        self.api_base = api_base.rstrip("/")
        self.mode: Mode = mode
        self.poll_timeout = poll_timeout
        self.allowed_updates = tuple(allowed_updates)
        self.paid_broadcast = paid_broadcast
        self.webhook_url = webhook_url
        self.normalizer = Normalizer(
            bot_id=int(self.bot_id),
            bot_username=bot_username.removeprefix("@") if bot_username else None,
            joins_from=joins_from,
        )
        #: the ASGI app Telegram posts updates to (serve it yourself, or let start() do it)
        self.webhook_app = WebhookApp(self._deliver_webhook, self._webhook_secret)
        if limits is None:
            try:
                limits = TELEGRAM.with_margin(rate_margin)
            except ValueError as exc:
                raise CommunityKitError(f"telegram: rate_margin: {exc}") from None
        if isinstance(limits, Limits) and _POLL not in limits.rates:
            # the long poll's own key: not paced, but a 429 on getUpdates pauses it
            limits = limits.with_scope(_POLL, None)
        self._limits: Limits | Governor = limits
        self._transport = transport
        self._max_retries = max_retries
        self._backoff = backoff
        self._request_timeout = request_timeout
        self._poll_backoff = poll_backoff
        self._max_poll_backoff = max_poll_backoff
        self._sleep = sleep
        self._client: HttpClient | None = None
        self._sink: EventSink | None = None
        self._poll_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._recording = False
        #: seconds :meth:`stop` waits for a batch being recorded before cancelling it
        self.stop_grace = 10.0
        self._server: WebhookServer | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._moved: dict[int, int] = {}
        self._told: set[tuple[int, int]] = set()
        self._parts_sent: Bounded[str, list[int]] = Bounded(10_000)
        self._chat_locks = _ChatLocks()
        # the first action waits for one getMe: a cold connection (TCP, TLS) would
        # otherwise delay the first paced send until the next one catches it up
        self._warm = False
        self._warming = asyncio.Lock()
        #: the ``offset`` the next ``getUpdates`` sends (last recorded update_id + 1)
        self.offset: int | None = None

    @classmethod
    def from_settings(cls, settings: PlatformSettings) -> TelegramAdapter:
        """Build the adapter of a ``[platforms.telegram]`` table (see ``docs/telegram.md``).

        Any option it does not know is an error, so a misspelt ``webhook_secret``
        cannot silently leave the webhook open.
        """
        return cls(**_settings_kwargs(settings))

    def __repr__(self) -> str:
        return f"TelegramAdapter(bot={self.bot_id}, mode={self.mode!r}, api_base={self.api_base!r})"

    # -- lifecycle ------------------------------------------------------------

    @property
    def client(self) -> HttpClient:
        """The rate-limited Bot API client (made on first use, closed by :meth:`close`)."""
        if self._client is None:
            self._redactor.register()
            extra = [self._webhook_secret] if self._webhook_secret else []
            self._client = telegram_client(
                self._token,
                api_base=self.api_base,
                limits=self._limits,
                secrets=extra,
                transport=self._transport,
                max_retries=self._max_retries,
                backoff=self._backoff,
                timeout=self._request_timeout,
                sleep=self._sleep,
            )
        return self._client

    @property
    def limits(self) -> Limits:
        """The limit profile requests are paced by (Telegram's, with the margin)."""
        limits = self._limits
        return limits.limits if isinstance(limits, Governor) else limits

    @property
    def running(self) -> bool:
        return self._sink is not None

    @property
    def webhook_port(self) -> int | None:
        """The port the webhook is served on, once :meth:`start` served it."""
        return self._server.port if self._server is not None else None

    async def start(self, sink: EventSink) -> None:
        """Learn the bot's username, then poll or serve the webhook; return once started.

        Raises :class:`~communitykit.CommunityKitError` when Telegram refuses the
        token, and (webhook mode) when the webhook cannot be served or registered.
        """
        if self._sink is not None:
            return
        await self._learn_me(strict=True)
        self._sink = sink
        try:
            if self.mode == "polling":
                self._stopping = False
                self._poll_task = asyncio.create_task(self._poll(sink), name="telegram-poll")
            else:
                host, port = self.webhook_listen
                self._server = WebhookServer(self.webhook_app, host, port)
                await self._server.start()
                if self.webhook_url:
                    await self.set_webhook(self.webhook_url)
        except BaseException:
            await self.stop()
            raise
        log.info("telegram.started", bot=self.bot_id, mode=self.mode)

    async def stop(self) -> None:
        """Stop receiving: cancel the long poll at once, or stop serving. Idempotent.

        Actions can still be performed until :meth:`close`.
        """
        task, self._poll_task = self._poll_task, None
        server, self._server = self._server, None
        self._sink = None
        self._stopping = True
        if task is not None:
            # a batch being recorded finishes (it is not cut in the middle); a long poll
            # or a backoff is cancelled at once
            if not self._recording:
                task.cancel()
            done, _ = await asyncio.wait([task], timeout=self.stop_grace)
            if not done:
                task.cancel()
                await asyncio.wait([task])
        if server is not None:
            await server.stop()

    async def close(self) -> None:
        """Stop, finish answering button presses, close the connections. Idempotent."""
        await self.stop()
        for pending in list(self._background):
            pending.cancel()
        if self._background:
            await asyncio.wait(list(self._background))
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
        self._redactor.unregister()

    async def set_webhook(self, url: str, *, drop_pending_updates: bool = False) -> None:
        """Register ``url`` with Telegram (``setWebhook``) with the secret and allowed updates."""
        if not self._webhook_secret:
            raise CommunityKitError("telegram: set a webhook_secret before registering a webhook")
        params: dict[str, Any] = {
            "url": url,
            "secret_token": self._webhook_secret.reveal(),
            "allowed_updates": list(self.allowed_updates),
            "drop_pending_updates": drop_pending_updates,
        }
        try:
            await self.client.post("setWebhook", json=params, keys=self._bot_keys())
        except HttpError as exc:
            raise CommunityKitError(f"telegram: setWebhook failed: {exc}") from None
        log.info("telegram.webhook_set", url=redact_text(url))

    async def delete_webhook(self, *, drop_pending_updates: bool = False) -> None:
        """Remove the webhook (``deleteWebhook``), e.g. before polling again."""
        try:
            await self.client.post(
                "deleteWebhook",
                json={"drop_pending_updates": drop_pending_updates},
                keys=self._bot_keys(),
            )
        except HttpError as exc:
            raise CommunityKitError(f"telegram: deleteWebhook failed: {exc}") from None

    async def _learn_me(self, *, strict: bool) -> None:
        if self.normalizer.bot_username is not None:
            return
        try:
            response = await self.client.post("getMe", keys=self._bot_keys())
        except AuthFailed as exc:
            if strict:
                raise CommunityKitError(
                    f"telegram: the bot token was refused ({exc.description or exc}): "
                    "check [platforms.telegram] token (revoked? ask @BotFather)"
                ) from None
            raise
        except HttpError as exc:
            log.warning("telegram.get_me_failed", error=str(exc))
            return
        result = response.result
        if isinstance(result, Mapping) and isinstance(result.get("username"), str):
            self.normalizer.bot_username = result["username"]

    # -- receiving ------------------------------------------------------------

    async def _poll(self, sink: EventSink) -> None:
        """``getUpdates`` until stopped; the offset moves on once the sink returned."""
        failures = 0
        params: dict[str, Any] = {
            "timeout": self.poll_timeout,
            "allowed_updates": list(self.allowed_updates),
        }
        while not self._halted():
            if self.offset is not None:
                params["offset"] = self.offset
            try:
                await self._learn_me(strict=False)
                response = await self.client.post(
                    "getUpdates",
                    json=params,
                    keys=self._poll_keys(),
                    timeout=self.poll_timeout + 15.0,
                )
            except AuthFailed as exc:
                log.error(
                    "telegram.polling_stopped",
                    reason="the bot token was refused (revoked?)",
                    error=str(exc),
                )
                return
            except HttpError as exc:
                failures += 1
                delay = self._delay(failures)
                if exc.status == 409:
                    log.error(
                        "telegram.poll_conflict",
                        description=exc.description,
                        hint="another process polls with this token, or a webhook is set; "
                        "stop the other poller, or delete the webhook (deleteWebhook) "
                        "or use mode = 'webhook'",
                        retry_in=delay,
                    )
                else:
                    log.warning("telegram.poll_failed", error=str(exc), retry_in=delay)
                await self._sleep(delay)
                continue
            updates = response.result
            if not isinstance(updates, list):
                failures += 1
                log.warning("telegram.poll_failed", error="getUpdates result is not a list")
                await self._sleep(self._delay(failures))
                continue
            if not updates:
                failures = 0
                continue
            self._recording = True
            try:
                await self._receive(updates, sink)
            except Exception as exc:
                if self._halted():
                    return
                failures += 1
                delay = self._delay(failures)
                log.error(
                    "telegram.sink_failed",
                    updates=len(updates),
                    error=redact_text(repr(exc)),
                    retry_in=delay,
                )
                await self._sleep(delay)  # then the same updates again: the offset stayed
                continue
            finally:
                self._recording = False
            failures = 0
            last = max((u["update_id"] for u in updates if _is_update_id(u)), default=None)
            if last is not None:
                self.offset = last + 1

    def _halted(self) -> bool:
        """Whether :meth:`stop` asked the poll loop to end (read afresh after each await)."""
        return self._stopping

    def _delay(self, failures: int) -> float:
        return float(min(self._max_poll_backoff, self._poll_backoff * 2 ** (failures - 1)))

    async def _deliver_webhook(self, updates: list[Mapping[str, Any]]) -> None:
        sink = self._sink
        if sink is None:
            raise NotReady
        await self._receive(updates, sink)

    async def _receive(self, updates: Sequence[Any], sink: EventSink) -> None:
        """Normalize ``updates``, record their events (the sink), then answer button presses."""
        events: list[Event] = []
        answers: list[str] = []
        for update in updates:
            update_id = update.get("update_id") if isinstance(update, Mapping) else None
            try:
                if not isinstance(update, Mapping):
                    raise SkippedUpdate("not an object")
                normalized = self.normalizer.normalize(update)
            except Exception as exc:
                reason = str(exc) if isinstance(exc, SkippedUpdate) else repr(exc)
                log.warning(
                    "telegram.update_skipped",
                    update_id=update_id if isinstance(update_id, int) else None,
                    reason=redact_text(reason),
                )
                continue
            if normalized.moved is not None:
                await self._group_moved(*normalized.moved)
            events.extend(normalized.events)
            if normalized.callback_query_id is not None:
                answers.append(normalized.callback_query_id)
        if events:
            await sink(events)
        self._reachable_again(events)
        for query_id in answers:
            self._spawn(self._answer_callback(query_id))

    def _reachable_again(self, events: Sequence[Event]) -> None:
        """A chat that sent an update can be reached: forget an earlier 403 about it.

        A member who blocked the bot and wrote to it again (``/start``), a group
        the bot was added back to: the client sends to them again.
        """
        client = self._client
        if client is None or not client.unreachable:
            return
        for event in events:
            if event.group is None:
                if _CHAT_ID.fullmatch(event.user):
                    client.mark_reachable(("chat", int(event.user)))
            elif _CHAT_ID.fullmatch(event.group):
                group = int(event.group)
                if group not in self._moved:
                    client.mark_reachable(("group", group))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _answer_callback(self, query_id: str) -> None:
        try:
            await self.client.post(
                "answerCallbackQuery",
                json={"callback_query_id": query_id},
                keys=self._bot_keys(),
                priority=Priority.HIGH,
            )
        except HttpError as exc:  # too old, or answered already: the press was recorded anyway
            log.debug("telegram.callback_answer_failed", error=str(exc))

    async def _group_moved(self, old: int, new: int) -> None:
        """Group ``old`` is now supergroup ``new``: send there, and tell the community."""
        if self._moved.get(old) != new:
            self._moved[old] = new
            log.info("telegram.group_moved", old_id=old, new_id=new)
        host = self.host
        if host is None or (old, new) in self._told:
            return
        try:
            await host.group_moved(PLATFORM, str(old), str(new))
        except Exception as exc:  # told again on the next action or update about it
            log.error(
                "telegram.group_move_not_recorded",
                old_id=old,
                new_id=new,
                error=redact_text(repr(exc)),
            )
            return
        self._told.add((old, new))

    # -- performing -----------------------------------------------------------

    async def perform(self, action: Action) -> Receipt:
        """Perform ``action`` with the Bot API (see ``docs/telegram.md`` for each type).

        Raises :class:`~communitykit.PermanentFailure` (``unreachable`` when the
        chat or user cannot be reached: blocked, never started the bot, gone)
        or :class:`~communitykit.TransientFailure` (network, 5xx, retries spent).
        """
        if not self._warm:
            await self._warm_up()
        try:
            return await self._perform(action)
        except HttpError as exc:
            raise _failure(exc) from None

    async def _warm_up(self) -> None:
        async with self._warming:
            if self._warm:
                return
            # a problem here is met again, and reported, by the action's own request
            with contextlib.suppress(HttpError):
                await self._learn_me(strict=False)
            self._warm = True

    async def _perform(self, action: Action) -> Receipt:
        priority = priority_of(action)
        if isinstance(action, SendMessage):
            chat = _chat(action.group, action)
            return await self._send_text(
                action, chat, action.text, priority=priority, reply_to=action.reply_to
            )
        if isinstance(action, SendDirectMessage):
            user = _user(action.user, action)
            return await self._send_text(action, user, action.text, priority=priority)
        if isinstance(action, Warn):
            return await self._warn(action, priority)
        chat = _chat(action.group, action)
        if isinstance(action, DeleteMessage):
            message_id = _int_id(action.message_id, "message_id", action)
            try:
                await self._call("deleteMessage", {"message_id": message_id}, chat, priority)
            except HttpError as exc:
                if exc.status == 400 and "message to delete not found" in exc.description.lower():
                    return Receipt(action_id=action.action_id, detail="already deleted")
                raise
            return Receipt(action_id=action.action_id, detail="deleted")
        if isinstance(action, CreateInviteLink):
            result = await self._call(
                "createChatInviteLink", {"name": action.name[:32]}, chat, priority
            )
            link = result.get("invite_link") if isinstance(result, Mapping) else None
            if not isinstance(link, str):
                raise PermanentFailure("createChatInviteLink: Telegram answered no invite_link")
            return Receipt(action_id=action.action_id, detail=link)
        user = _user(action.user, action)
        if isinstance(action, Mute):
            until_date = _until_date(action.until.timestamp(), time.time())
            if until_date is None:  # delivered late: the mute would be over already
                return Receipt(action_id=action.action_id, detail="mute already expired")
            restrict = {
                "user_id": user,
                "permissions": _MUTED,
                "use_independent_chat_permissions": True,
                "until_date": until_date,
            }
            await self._call("restrictChatMember", restrict, chat, priority)
            return Receipt(
                action_id=action.action_id, detail=f"muted until {action.until.isoformat()}"
            )
        if isinstance(action, Kick):
            if isinstance(chat, int):
                self.normalizer.kicked(self._moved_to(chat), user)
            await self._call("banChatMember", {"user_id": user}, chat, priority)
            await self._call(
                "unbanChatMember", {"user_id": user, "only_if_banned": True}, chat, priority
            )
            return Receipt(action_id=action.action_id, detail="removed (may join again)")
        if isinstance(action, Ban):
            ban: dict[str, Any] = {"user_id": user}
            if action.until is not None:
                # a ban that would be over already is still a ban: for the shortest time
                ban["until_date"] = _until_date(action.until.timestamp(), time.time()) or (
                    math.ceil(time.time()) + _SHORTEST
                )
            await self._call("banChatMember", ban, chat, priority)
            until = action.until.isoformat() if action.until is not None else None
            return Receipt(
                action_id=action.action_id,
                detail=f"banned until {until}" if until else "banned for good",
            )
        if isinstance(action, ApproveJoin):
            await self._call("approveChatJoinRequest", {"user_id": user}, chat, priority)
            return Receipt(action_id=action.action_id, detail="approved")
        if isinstance(action, DeclineJoin):
            await self._call("declineChatJoinRequest", {"user_id": user}, chat, priority)
            return Receipt(action_id=action.action_id, detail="declined")
        if isinstance(action, SetTitle):
            title = {"user_id": user, "custom_title": action.title}
            await self._call("setChatAdministratorCustomTitle", title, chat, priority)
            return Receipt(action_id=action.action_id, detail=action.title)
        raise PermanentFailure(f"telegram cannot perform {action.TYPE}")

    async def _warn(self, action: Warn, priority: Priority) -> Receipt:
        chat = _chat(action.group, action)
        user = _user(action.user, action)
        name = self.normalizer.name_of(user) or "member"
        prefix = "⚠️ "
        text = f"{prefix}{name}, warning {action.count}: {action.reason}"
        mention = {
            "type": "text_mention",
            "offset": utf16_len(prefix),
            "length": utf16_len(name),
            "user": {"id": user, "is_bot": False, "first_name": name},
        }
        return await self._send_text(action, chat, text, priority=priority, entities=[mention])

    async def _send_text(
        self,
        action: Action,
        chat: int | str,
        text: str,
        *,
        priority: Priority,
        reply_to: str | None = None,
        entities: Sequence[Mapping[str, Any]] = (),
    ) -> Receipt:
        """Send ``text`` (in parts when it is long) to ``chat``; the receipt names part one.

        Parts already delivered by an earlier attempt of the same action are
        not sent again.
        """
        parts = split_text(text, MAX_MESSAGE_LENGTH, entities)
        if not parts:
            raise PermanentFailure("the message has no text to send (only white space)")
        paid = self.paid_broadcast and is_bulk(action)
        sent = self._parts_sent.get(action.action_id) or []
        async with self._chat_locks.hold(chat):
            for index, part in enumerate(parts):
                if index < len(sent):
                    continue
                params: dict[str, Any] = {"text": part.text}
                if part.entities:
                    params["entities"] = [dict(e) for e in part.entities]
                if index == 0 and reply_to is not None and _CHAT_ID.fullmatch(reply_to):
                    params["reply_parameters"] = {
                        "message_id": int(reply_to),
                        "allow_sending_without_reply": True,
                    }
                if paid:
                    params["allow_paid_broadcast"] = True
                result = await self._call(
                    "sendMessage", params, chat, priority, send=True, paid=paid
                )
                message_id = result.get("message_id") if isinstance(result, Mapping) else None
                if not isinstance(message_id, int):
                    raise PermanentFailure("sendMessage: Telegram answered no message_id")
                sent.append(message_id)
                if len(parts) > 1:
                    self._parts_sent.set(action.action_id, sent)
        self._parts_sent.pop(action.action_id)
        detail = (
            "sent" if len(sent) == 1 else f"sent in {len(sent)} parts: " + ", ".join(map(str, sent))
        )
        return Receipt(action_id=action.action_id, platform_message_id=str(sent[0]), detail=detail)

    async def _call(
        self,
        method: str,
        params: Mapping[str, Any],
        chat: int | str,
        priority: Priority,
        *,
        send: bool = False,
        paid: bool = False,
    ) -> Any:
        """Call ``method`` about ``chat``, following the chat if it moved to a supergroup."""
        target = self._moved_to(chat) if isinstance(chat, int) else chat
        for _ in range(4):
            keys = telegram_keys(self.bot_id, target, paid=paid) if send else self._bot_keys()
            try:
                response = await self.client.post(
                    method, json={"chat_id": target, **params}, keys=keys, priority=priority
                )
            except ChatMigrated as moved:
                if not isinstance(target, int) or moved.new_chat_id == target:
                    raise
                await self._group_moved(target, moved.new_chat_id)
                target = moved.new_chat_id
                continue
            return response.result
        raise PermanentFailure(f"{method}: the chat kept moving (last seen as {target})")

    def _moved_to(self, chat: int) -> int:
        for _ in range(8):  # a group moves once; a chain is a curiosity
            new = self._moved.get(chat)
            if new is None:
                break
            chat = new
        return chat

    def _bot_keys(self) -> tuple[Key, ...]:
        return (("bot", self.bot_id),)

    def _poll_keys(self) -> tuple[Key, ...]:
        """The long poll's key (unpaced; a 429 pauses it), when the profile has the scope."""
        return ((_POLL, self.bot_id),) if _POLL in self.limits.rates else ()


def _failure(error: HttpError) -> DeliveryFailed:
    """What the outbox makes of a failed request."""
    method = (error.url or "").rsplit("/", 1)[-1] or "request"
    said = error.description or str(error)
    if isinstance(error, TargetUnreachable):
        return PermanentFailure(f"{method}: {said}", unreachable=True)
    if isinstance(error, AuthFailed):
        return PermanentFailure(f"{method}: the bot token was refused (revoked?): {said}")
    if isinstance(error, CircuitOpen) or error.transient:
        return TransientFailure(str(error), error.retry_after)
    status = error.status
    if status is not None and 400 <= status < 500:
        unreachable = status == 403 or "chat not found" in said.lower()
        return PermanentFailure(f"{method}: {said}", unreachable=unreachable)
    return TransientFailure(str(error), error.retry_after)


def _is_update_id(update: Any) -> bool:
    if not isinstance(update, Mapping):
        return False
    value = update.get("update_id")
    return isinstance(value, int) and not isinstance(value, bool)


def _chat(group: str | None, action: Action) -> int | str:
    if group is None:
        raise PermanentFailure(f"{action.TYPE} needs a group")
    if _CHAT_ID.fullmatch(group):
        return int(group)
    if group.startswith("@") and _USERNAME.fullmatch(group):
        return group
    raise PermanentFailure(f"{group!r} is not a Telegram chat id (a number or @channelname)")


def _user(user: str | None, action: Action) -> int:
    if user is None:
        raise PermanentFailure(f"{action.TYPE} needs a user")
    return _int_id(user, "user", action)


def _int_id(value: str, what: str, action: Action) -> int:
    if not _CHAT_ID.fullmatch(value):
        raise PermanentFailure(f"{action.TYPE}: {what} {value!r} is not a Telegram id")
    return int(value)


#: Telegram takes an ``until_date`` less than 30 s ahead (or past) as *forever*.
_SHORTEST = 31


def _until_date(timestamp: float, now: float) -> int | None:
    """``until_date`` for a restriction until ``timestamp``; ``None`` when it is over.

    A restriction ending within 30 s is sent as 31 s, never as the "forever"
    Telegram would make of it.
    """
    if timestamp <= now:
        return None
    return max(math.ceil(timestamp), math.ceil(now) + _SHORTEST)


# -- settings -------------------------------------------------------------------


def _settings_kwargs(settings: PlatformSettings) -> dict[str, Any]:
    where = f"[platforms.{settings.name}]"
    options = settings.options
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise CommunityKitError(
            f"{where} has unknown option(s) {', '.join(map(repr, unknown))}; "
            f"the telegram platform knows token, api_base, {', '.join(_OPTIONS)}"
        )
    if settings.token is None:
        raise CommunityKitError(f'{where} needs the bot\'s token (token = "${{TELEGRAM_TOKEN}}")')
    kwargs: dict[str, Any] = {"token": settings.token}
    if settings.api_base is not None:
        kwargs["api_base"] = settings.api_base

    def wrong(name: str, expected: str) -> CommunityKitError:
        value = options[name]
        shown = "a secret" if isinstance(value, Secret) else repr(value)
        return CommunityKitError(f"{where} option {name!r} must be {expected}, got {shown}")

    if "mode" in options:
        if options["mode"] not in ("polling", "webhook"):
            raise wrong("mode", '"polling" or "webhook"')
        kwargs["mode"] = options["mode"]
    if "rate_margin" in options:
        value = options["rate_margin"]
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 0.5:
            raise wrong("rate_margin", "a fraction in [0, 0.5), e.g. 0.05")
        kwargs["rate_margin"] = float(value)
    if "request_timeout" in options:
        value = options["request_timeout"]
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise wrong("request_timeout", "a number of seconds > 0")
        kwargs["request_timeout"] = float(value)
    for name, expected in (("poll_timeout", "whole seconds"), ("max_retries", "a whole number")):
        if name in options:
            value = options[name]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise wrong(name, f"{expected} >= 0")
            kwargs[name] = value
    if "allowed_updates" in options:
        value = options["allowed_updates"]
        if isinstance(value, str) or not isinstance(value, Iterable):
            raise wrong("allowed_updates", "a list of update types")
        items = list(value)
        if not all(isinstance(v, str) and v for v in items):
            raise wrong("allowed_updates", "a list of update types")
        kwargs["allowed_updates"] = tuple(items)
    if "paid_broadcast" in options:
        if not isinstance(options["paid_broadcast"], bool):
            raise wrong("paid_broadcast", "true or false")
        kwargs["paid_broadcast"] = options["paid_broadcast"]
    if "webhook_secret" in options:
        value = options["webhook_secret"]
        if not isinstance(value, Secret | str):
            raise wrong("webhook_secret", "a string")
        kwargs["webhook_secret"] = value
    for name in ("webhook_url", "webhook_listen", "bot_username", "joins_from"):
        if name in options:
            if not isinstance(options[name], str) or not options[name]:
                raise wrong(name, "a non-empty string")
            kwargs[name] = options[name]
    url = kwargs.get("webhook_url")
    if url is not None and not re.fullmatch(r"https?://\S+", url):
        raise wrong("webhook_url", "an https:// URL Telegram can reach")
    username = kwargs.get("bot_username")
    if username is not None and not _USERNAME.fullmatch(username):
        raise wrong("bot_username", "a Telegram username")
    return kwargs
