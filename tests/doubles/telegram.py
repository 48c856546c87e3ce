"""A local double of the Telegram Bot API, for tests and benchmarks.

:class:`TelegramDouble` is an ASGI app served by uvicorn on ``127.0.0.1`` (a
free port chosen by the OS) in a background thread with its own event loop, so
a synchronous test, an ``async`` test and a benchmark with its own event loop
can all use it the same way. It never reaches the internet: everything it
answers is made up locally, and :func:`post_update` refuses non-loopback URLs.

Start it with a ``with`` block (or ``async with``, or :meth:`~TelegramDouble.start`
and :meth:`~TelegramDouble.stop`)::

    from tests.doubles.telegram import TelegramDouble

    with TelegramDouble(tokens=["123456:TEST"]) as telegram:
        url = f"{telegram.base_url}/bot123456:TEST/sendMessage"
        httpx.post(url, json={"chat_id": 42, "text": "hi"}, trust_env=False)
        assert [d.text for d in telegram.delivered(42)] == ["hi"]

From a benchmark script (``benchmarks/*.py`` run as scripts need the repo
root on ``sys.path`` to import ``tests.doubles``)::

    import sys, pathlib
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
    from tests.doubles.telegram import TelegramDouble

    with TelegramDouble(tokens=[TOKEN], time_scale=0.05) as telegram:  # 20/60 s -> 20/3 s
        run_the_adapter(api_base=telegram.base_url, token=TOKEN)  # any thread, any loop
        print(telegram.stats, telegram.max_in_window(-1001, telegram.limits.per_group_window))

or in another process: ``python -m tests.doubles.telegram --token TOKEN``
prints its base URL and serves until interrupted.

What it does, in the order a request meets it:

1. ``{base}/bot{TOKEN}/{method}`` (GET or POST; query string, JSON,
   url-encoded or multipart body). A token it was not given: 401. A method it
   does not know (method names are case-insensitive, as on Telegram): 404.
2. Scripted faults (:meth:`~TelegramDouble.fail_next`,
   :meth:`~TelegramDouble.inject_429`): a failing server answers before it
   looks at the parameters.
3. Missing or unparsable parameters: 400 with a Telegram-like description
   (``Bad Request: chat_id is empty``, ``Bad Request: message text is empty``),
   then the scripted state of the chat (:meth:`~TelegramDouble.migrate`,
   :meth:`~TelegramDouble.set_chat_not_found`, :meth:`~TelegramDouble.block`).
4. For the methods that send a message (:data:`SEND_METHODS`): the rate
   limits, strict sliding windows over delivered messages (see
   :class:`RateLimits`). A send that would overfill a window answers 429 with
   ``retry_after`` = whole seconds (ceil, at least 1) until it would fit, and
   is not delivered.

Everything is recorded: :attr:`~TelegramDouble.deliveries`,
:attr:`~TelegramDouble.refusals`, :attr:`~TelegramDouble.calls` (successful
non-send requests) and :attr:`~TelegramDouble.stats`;
:meth:`~TelegramDouble.max_in_window` recomputes the densest window from the
delivery log, so a test can prove a client stayed inside the limits.

Tokens are never logged, never part of a record (records carry the bot id,
the number before the colon) and never in a ``repr``. (httpx, on the client
side, logs every request URL with its token at INFO: a client must redact it.)

Good to know:

- Windows are half-open: deliveries at ``t`` and ``t + window`` are in no
  window together. Chat windows are per bot and chat, as on Telegram.
- ``time_scale`` shrinks the windows but ``retry_after`` stays whole seconds
  (at least 1); :attr:`Refusal.wait` has the exact wait.
- ``getUpdates``' ``timeout`` waits in real time, not on ``clock``.
- Faults (:meth:`~TelegramDouble.fail_next`, :meth:`~TelegramDouble.inject_429`)
  spare ``getUpdates`` unless it is named in ``methods``.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import ipaddress
import itertools
import json
import logging
import math
import re
import secrets
import socket
import threading
import time
import urllib.parse
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import httpx
import uvicorn

__all__ = [
    "SEND_METHODS",
    "Call",
    "Delivery",
    "ManualClock",
    "RateLimits",
    "Refusal",
    "Stats",
    "TelegramDouble",
    "apost_update",
    "callback_query_update",
    "chat_join_request_update",
    "message_update",
    "post_update",
    "serve_asgi",
]

logger = logging.getLogger(__name__)

Json = dict[str, Any]
ChatId = int | str
Clock = Callable[[], float]
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Methods that deliver a message: they are rate limited and recorded as deliveries.
SEND_METHODS: frozenset[str] = frozenset(
    {"sendMessage", "sendPhoto", "sendDocument", "sendSticker", "forwardMessage", "copyMessage"}
)

_OTHER_METHODS = (
    "getMe",
    "getUpdates",
    "setWebhook",
    "deleteWebhook",
    "getWebhookInfo",
    "deleteMessage",
    "restrictChatMember",
    "banChatMember",
    "unbanChatMember",
    "approveChatJoinRequest",
    "declineChatJoinRequest",
    "createChatInviteLink",
    "setChatAdministratorCustomTitle",
    "promoteChatMember",
    "answerCallbackQuery",
)
#: Every method the double answers, keyed by its lower-case name.
METHODS: dict[str, str] = {name.lower(): name for name in (*SEND_METHODS, *_OTHER_METHODS)}

_UPDATE_TYPES_OFF_BY_DEFAULT = frozenset(
    {"chat_member", "message_reaction", "message_reaction_count"}
)
_JSON_FIELDS = frozenset(
    {
        "entities",
        "caption_entities",
        "reply_markup",
        "permissions",
        "allowed_updates",
        "reply_parameters",
        "link_preview_options",
    }
)
_MAX_TEXT = 4096
_EPSILON = 1e-9


class _ApiError(Exception):
    """An answer other than ``ok``: raised inside a handler, turned into a response."""

    def __init__(
        self, status: int, description: str, parameters: Json | None = None, *, reason: str = ""
    ) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters
        self.reason = reason or description

    def body(self) -> Json:
        body: Json = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters is not None:
            body["parameters"] = self.parameters
        return body


def _bad_request(what: str) -> _ApiError:
    return _ApiError(400, f"Bad Request: {what}")


# ---------------------------------------------------------------------------
# Clock, limits and records


class ManualClock:
    """A clock that moves only when told: pass it as ``clock=`` for deterministic windows."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (never back) and return the new time."""
        if seconds < 0:
            raise ValueError(f"a clock never goes back (asked to advance by {seconds})")
        with self._lock:
            self._now += seconds
            return self._now

    def __repr__(self) -> str:
        return f"ManualClock(now={self()})"


@dataclass(frozen=True)
class RateLimits:
    """Sliding-window limits on delivered messages (Telegram's documented ones by default).

    No window of ``*_window`` seconds may hold more than the limit's deliveries:
    ``per_bot`` for all sends of one token, ``per_group`` for one group,
    supergroup or channel (a negative ``chat_id`` or an ``@username``),
    ``per_private`` for one private chat (a positive ``chat_id``).
    """

    per_bot: int = 30
    per_bot_window: float = 1.0
    per_group: int = 20
    per_group_window: float = 60.0
    per_private: int = 1
    per_private_window: float = 1.0

    def scaled(self, factor: float) -> RateLimits:
        """The same limits with every window multiplied by ``factor`` (0.01: 60 s becomes 0.6 s)."""
        if factor <= 0:
            raise ValueError(f"time scale must be positive, not {factor}")
        return replace(
            self,
            per_bot_window=self.per_bot_window * factor,
            per_group_window=self.per_group_window * factor,
            per_private_window=self.per_private_window * factor,
        )

    @classmethod
    def unlimited(cls) -> RateLimits:
        """No limit that a test could reach (for tests that are not about limits)."""
        big = 1 << 62
        return cls(per_bot=big, per_group=big, per_private=big)


@dataclass(frozen=True)
class Delivery:
    """A message the double accepted (one successful send)."""

    chat_id: ChatId
    text: str | None
    entities: list[Json] | None
    message_id: int
    at: float
    """The double's clock when it was delivered."""
    method: str
    params: Json
    bot_id: int


@dataclass(frozen=True)
class Refusal:
    """A request answered with an error (any status but 200)."""

    method: str
    chat_id: ChatId | None
    status: int
    description: str
    at: float
    params: Json
    bot_id: int | None
    reason: str
    """What refused it: ``rate_limit:bot``, ``rate_limit:chat``, ``injected``, ``migrated``, ..."""
    retry_after: int | None = None
    wait: float | None = None
    """For a rate-limit 429: the exact seconds until the windows would have admitted it."""


@dataclass(frozen=True)
class Call:
    """A successful request to a method that does not send a message."""

    method: str
    params: Json
    at: float
    bot_id: int
    result: Any


@dataclass
class Stats:
    """Counters since the start (or the last :meth:`TelegramDouble.reset`)."""

    requests: int = 0
    delivered: int = 0
    too_many_requests: int = 0
    too_many_requests_by_chat: Counter[ChatId] = field(default_factory=Counter)
    other_errors: int = 0
    errors_by_status: Counter[int] = field(default_factory=Counter)

    def copy(self) -> Stats:
        return replace(
            self,
            too_many_requests_by_chat=Counter(self.too_many_requests_by_chat),
            errors_by_status=Counter(self.errors_by_status),
        )


@dataclass
class _Fault:
    remaining: int
    status: int
    description: str
    parameters: Json | None
    chat_id: ChatId | None
    methods: frozenset[str] | None
    html: bool

    def matches(self, method: str, chat_id: ChatId | None) -> bool:
        if self.methods is None:
            if method == "getUpdates":
                return False
        elif method not in self.methods:
            return False
        return self.chat_id is None or self.chat_id == chat_id


@dataclass
class _Chat:
    id: ChatId
    type: str
    title: str | None = None
    username: str | None = None
    next_message_id: int = 1
    live_messages: set[int] = field(default_factory=set)
    migrated_to: int | None = None
    not_found: bool = False
    forbidden: str | None = None

    def as_json(self) -> Json:
        chat: Json = {"id": self.id, "type": self.type}
        if self.type == "private":
            chat["first_name"] = f"User {self.id}"
        else:
            chat["title"] = self.title or f"Chat {self.id}"
        if self.username:
            chat["username"] = self.username
        return chat


@dataclass
class _Bot:
    id: int
    username: str
    first_name: str
    window: deque[float] = field(default_factory=deque)
    chat_windows: dict[ChatId, deque[float]] = field(default_factory=dict)
    updates: list[Json] = field(default_factory=list)
    next_update_id: int = 1
    allowed_updates: frozenset[str] | None = None
    webhook: Json | None = None
    poll_generation: int = 0
    waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = field(default_factory=set)

    def user(self) -> Json:
        return {
            "id": self.id,
            "is_bot": True,
            "first_name": self.first_name,
            "username": self.username,
        }


def _bot_id(token: str) -> int:
    head = token.split(":", 1)[0]
    if head.isdigit():
        return int(head)
    return int.from_bytes(head.encode()[:6].ljust(6, b"\0"), "big")


def _redact(text: str, tokens: Iterable[str]) -> str:
    for token in tokens:
        text = text.replace(token, f"{token.split(':', 1)[0]}:***")
    return text


def _wait_in(window: deque[float], limit: int, span: float, now: float) -> float | None:
    """Seconds until one more delivery fits in ``window``; ``None`` if it fits now.

    A window of ``span`` seconds is half-open: deliveries at ``t`` and ``u``
    share one when ``|t - u| < span``.
    """
    while window and now - window[0] >= span:
        window.popleft()
    if len(window) < limit:
        return None
    return window[len(window) - limit] + span - now


# ---------------------------------------------------------------------------
# The double


class TelegramDouble:
    """A fake Telegram Bot API server on ``127.0.0.1``.

    Args:
        tokens: the valid bot tokens; any other answers 401.
        limits: the rate limits (Telegram's documented ones by default).
        time_scale: multiplies every window of ``limits`` (0.01 makes 20 per
            60 s into 20 per 0.6 s). ``retry_after`` stays whole real seconds.
        clock: the time the windows are measured in (``time.monotonic``); give
            a :class:`ManualClock` to move time by hand in unit tests.
        wall_clock: Unix time for the ``date`` of messages (``time.time``).
        bot_username: the username ``getMe`` answers (suffixed per extra token).
    """

    def __init__(
        self,
        tokens: Iterable[str] = ("123456:TEST-TOKEN",),
        *,
        limits: RateLimits | None = None,
        time_scale: float = 1.0,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        bot_username: str = "communitykit_test_bot",
    ) -> None:
        self._tokens = tuple(tokens)
        if not self._tokens:
            raise ValueError("give the double at least one valid token")
        for token in self._tokens:
            if not token or "/" in token or any(c.isspace() for c in token):
                raise ValueError("a bot token cannot be empty or hold '/' or whitespace")
        self.limits = (limits or RateLimits()).scaled(time_scale)
        self.clock = clock
        self.wall_clock = wall_clock
        self._bot_username = bot_username
        self._lock = threading.RLock()
        self._polling = threading.Condition(self._lock)
        self._closing = False
        self._epoch = 0  # bumped by reset(): a long poll from before answers []
        self._reset_state()
        self._server = _ThreadedServer(self.app)

    def _reset_state(self) -> None:
        self._bots: dict[str, _Bot] = {}
        for n, token in enumerate(self._tokens):
            suffix = "" if n == 0 else f"_{n + 1}"
            self._bots[token] = _Bot(
                id=_bot_id(token),
                username=f"{self._bot_username}{suffix}",
                first_name=f"Test Bot{suffix.replace('_', ' ')}",
            )
        self._chats: dict[ChatId, _Chat] = {}
        self._usernames: dict[str, ChatId] = {}
        self._faults: list[_Fault] = []
        self._deliveries: list[Delivery] = []
        self._refusals: list[Refusal] = []
        self._calls: list[Call] = []
        self._stats = Stats()
        self._invite_counter = itertools.count(1)

    def __repr__(self) -> str:
        state = f"serving on {self.base_url}" if self._server.port is not None else "stopped"
        return f"<TelegramDouble {len(self._tokens)} token(s), {state}>"

    # -- lifecycle ---------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` once started."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def port(self) -> int:
        port = self._server.port
        if port is None:
            raise RuntimeError("the Telegram double is not running: call start() or use `with`")
        return port

    @property
    def tokens(self) -> tuple[str, ...]:
        return self._tokens

    @property
    def token(self) -> str:
        """The first valid token."""
        return self._tokens[0]

    def api_url(self, method: str, token: str | None = None) -> str:
        """``{base_url}/bot{token}/{method}`` (the first token by default)."""
        return f"{self.base_url}/bot{token or self._tokens[0]}/{method}"

    def start(self, timeout: float = 10.0) -> Self:
        """Serve in a background thread; return once the port accepts connections."""
        with self._lock:
            self._closing = False
        self._server.start(timeout)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Answer pending long polls, close every connection and join the thread."""
        self._wake_all(closing=True)
        self._server.stop(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    def reset(self) -> None:
        """Forget everything (records, chats, updates, faults, windows); keep serving."""
        with self._lock:
            self._epoch += 1
            bots = list(self._bots.values())
            self._reset_state()
        for bot in bots:
            self._wake(bot)

    # -- scripting ---------------------------------------------------------

    def add_chat(
        self,
        chat_id: int,
        type: Literal["private", "group", "supergroup", "channel"] | None = None,
        *,
        title: str | None = None,
        username: str | None = None,
    ) -> None:
        """Describe a chat (its type is guessed from the id otherwise).

        A chat with a ``username`` can be addressed as ``@username``, which is
        the only way ``@username`` chat ids resolve.
        """
        with self._lock:
            chat = self._chat(chat_id)
            if type is not None:
                chat.type = type
            chat.title = title or chat.title
            if username:
                chat.username = username
                self._usernames[username.lower()] = chat_id

    def block(self, chat_id: ChatId, description: str | None = None) -> None:
        """Sends to ``chat_id`` answer 403 (private: ``Forbidden: bot was blocked by the user``)."""
        with self._lock:
            chat = self._chat(chat_id)
            if description is None:
                description = {
                    "private": "Forbidden: bot was blocked by the user",
                    "group": "Forbidden: bot was kicked from the group chat",
                    "supergroup": "Forbidden: bot was kicked from the supergroup chat",
                    "channel": "Forbidden: bot is not a member of the channel chat",
                }[chat.type]
            chat.forbidden = description

    def unblock(self, chat_id: ChatId) -> None:
        with self._lock:
            self._chat(chat_id).forbidden = None

    def set_chat_not_found(self, chat_id: ChatId, not_found: bool = True) -> None:
        """Every method naming ``chat_id`` answers 400 ``Bad Request: chat not found``."""
        with self._lock:
            self._chat(chat_id).not_found = not_found

    def migrate(self, chat_id: int, new_chat_id: int | None = None) -> int:
        """Upgrade group ``chat_id`` to a supergroup; return its new id (``-100…`` by default).

        From now on every method naming the old id answers 400 ``group chat was
        upgraded to a supergroup chat`` with ``parameters.migrate_to_chat_id``;
        the new id works.
        """
        if new_chat_id is None:
            new_chat_id = -(10**12 + abs(chat_id))  # "-100" and ten digits, as supergroups are
        with self._lock:
            old = self._chat(chat_id)
            old.migrated_to = new_chat_id
            new = self._chat(new_chat_id)
            new.type = "supergroup"
            new.title = new.title or old.title
        return new_chat_id

    def fail_next(
        self,
        count: int = 1,
        status: int = 500,
        *,
        description: str | None = None,
        chat_id: ChatId | None = None,
        methods: Iterable[str] | None = None,
        html: bool | None = None,
    ) -> None:
        """The next ``count`` matching requests answer ``status`` (500, 502, ...).

        Matching: any method but ``getUpdates`` unless ``methods`` is given;
        any chat unless ``chat_id`` is. A 502 answers an HTML page as the proxy
        in front of the real API does (``html=False`` for JSON).
        """
        if html is None:
            html = status in (502, 503, 504)
        default = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
        self._add_fault(
            _Fault(
                remaining=count,
                status=status,
                description=description or default.get(status, f"Error {status}"),
                parameters=None,
                chat_id=chat_id,
                methods=_method_set(methods),
                html=html,
            )
        )

    def inject_429(
        self,
        retry_after: int,
        *,
        chat_id: ChatId | None = None,
        count: int = 1,
        methods: Iterable[str] | None = None,
    ) -> None:
        """The next ``count`` matching requests answer 429 with this ``retry_after``.

        Matching as for :meth:`fail_next`. These do not touch the windows.
        """
        self._add_fault(
            _Fault(
                remaining=count,
                status=429,
                description=f"Too Many Requests: retry after {retry_after}",
                parameters={"retry_after": retry_after},
                chat_id=chat_id,
                methods=_method_set(methods),
                html=False,
            )
        )

    def _add_fault(self, fault: _Fault) -> None:
        if fault.remaining < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._faults.append(fault)

    # -- updates -------------------------------------------------------------

    def push_update(self, update: Mapping[str, Any], *, token: str | None = None) -> int:
        """Queue an update for ``getUpdates``; return its ``update_id`` (given or assigned).

        A message in it without a ``message_id`` gets the chat's next one, and
        every message in it becomes one the bot can delete (``deleteMessage``).
        """
        with self._lock:
            bot = self._bot_for(token)
            body = self._stamp(bot, update)
            bot.updates.append(body)
        self._wake(bot)
        return int(body["update_id"])

    def _stamp(self, bot: _Bot, update: Mapping[str, Any]) -> Json:
        body = dict(update)
        if "update_id" not in body:
            body["update_id"] = bot.next_update_id
        bot.next_update_id = max(bot.next_update_id, int(body["update_id"]) + 1)
        for key in ("message", "edited_message", "channel_post", "edited_channel_post"):
            message = body.get(key)
            if not isinstance(message, dict) or not isinstance(message.get("chat"), dict):
                continue
            chat_id = message["chat"].get("id")
            if not isinstance(chat_id, int):
                continue
            chat = self._chat(chat_id)
            message = body[key] = dict(message)
            if message.get("message_id") is None:
                message["message_id"] = chat.next_message_id
            message_id = int(message["message_id"])
            chat.next_message_id = max(chat.next_message_id, message_id + 1)
            chat.live_messages.add(message_id)
        return body

    def pending_updates(self, token: str | None = None) -> list[Json]:
        """Updates not yet confirmed by an ``offset`` (delivered or not)."""
        with self._lock:
            return [dict(u) for u in self._bot_for(token).updates]

    def wait_until_polling(self, timeout: float = 5.0, *, token: str | None = None) -> bool:
        """Block until some ``getUpdates`` long poll is waiting; ``False`` on timeout."""
        with self._polling:
            bot = self._bot_for(token)
            return self._polling.wait_for(lambda: bool(bot.waiters), timeout)

    def webhook(self, token: str | None = None) -> Json | None:
        """The webhook set with ``setWebhook`` (its parameters), or ``None``."""
        with self._lock:
            hook = self._bot_for(token).webhook
            return dict(hook) if hook is not None else None

    def post_to_webhook(
        self, update: Mapping[str, Any], *, token: str | None = None, timeout: float = 10.0
    ) -> httpx.Response:
        """POST ``update`` to the webhook set for the bot, with its secret token if any."""
        hook = self.webhook(token)
        if hook is None:
            raise RuntimeError("no webhook is set for this bot")
        with self._lock:
            body = self._stamp(self._bot_for(token), update)
        return post_update(
            hook["url"], body, secret_token=hook.get("secret_token"), timeout=timeout
        )

    # -- records -------------------------------------------------------------

    @property
    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries)

    @property
    def refusals(self) -> list[Refusal]:
        with self._lock:
            return list(self._refusals)

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    @property
    def stats(self) -> Stats:
        with self._lock:
            return self._stats.copy()

    @property
    def count_429(self) -> int:
        """How many requests answered 429 (rate limits and injected)."""
        with self._lock:
            return self._stats.too_many_requests

    def count_429_for(self, chat_id: ChatId) -> int:
        with self._lock:
            return self._stats.too_many_requests_by_chat[chat_id]

    def delivered(self, chat_id: ChatId | None = None) -> list[Delivery]:
        """Deliveries to ``chat_id`` (all of them for ``None``), in order."""
        with self._lock:
            return [d for d in self._deliveries if chat_id is None or d.chat_id == chat_id]

    def calls_to(self, method: str) -> list[Call]:
        name = METHODS.get(method.lower(), method)
        with self._lock:
            return [c for c in self._calls if c.method == name]

    def max_in_window(
        self, chat_id: ChatId | None, window_seconds: float, *, token: str | None = None
    ) -> int:
        """The most deliveries any window of ``window_seconds`` held (half-open windows).

        ``chat_id=None`` counts every chat; ``token`` restricts to one bot.
        """
        bot_id = _bot_id(token) if token is not None else None
        times = sorted(
            d.at for d in self.delivered(chat_id) if bot_id is None or d.bot_id == bot_id
        )
        best = start = 0
        for end, at in enumerate(times):
            while at - times[start] >= window_seconds:
                start += 1
            best = max(best, end - start + 1)
        return best

    # -- the ASGI app --------------------------------------------------------

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI app: serve it elsewhere, or use it with ``httpx.ASGITransport``."""
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":  # pragma: no cover - websockets are off
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        match = re.fullmatch(r"/bot([^/]+)/([^/]+)/?", scope["path"])
        if match is None:
            await _respond(send, 404, _ApiError(404, "Not Found").body())
            return
        token, method = match.groups()
        headers = {k.decode("latin1").lower(): v.decode("latin1") for k, v in scope["headers"]}
        try:
            status, payload, html = await self._handle(
                token,
                method,
                lambda: _parse_params(scope["query_string"], headers.get("content-type", ""), body),
            )
        except Exception:  # a bug in the double: never leak a token through the traceback
            logger.exception("Telegram double failed on %s", _redact(method, self._tokens))
            status, payload, html = 500, _ApiError(500, "Internal Server Error").body(), False
        if html:
            await _respond_html(send, status)
        else:
            await _respond(send, status, payload)

    async def _handle(
        self, token: str, method: str, parse: Callable[[], Json]
    ) -> tuple[int, Json, bool]:
        name = METHODS.get(method.lower())
        with self._lock:
            self._stats.requests += 1
            bot = self._bots.get(token)
            try:
                if bot is None:
                    raise _ApiError(401, "Unauthorized")
                if name is None:
                    raise _ApiError(404, "Not Found")
                try:
                    params = parse()
                except ValueError as error:
                    raise _bad_request(str(error)) from None
            except _ApiError as error:
                self._refuse(error, name or "?", None, {}, bot)
                return error.status, error.body(), False
        assert name is not None and bot is not None
        if name == "getUpdates":
            return await self._get_updates(bot, params)
        with self._lock:
            chat_id: ChatId | None = None
            with suppress(_ApiError):
                chat_id = _chat_id(params, "chat_id")  # so that faults can match a bad request
            try:
                self._apply_faults(name, chat_id)  # a failing server answers before it validates
                chat_id = self._validate(name, params)
                if chat_id is not None:
                    chat_id = self._check_chat(name, chat_id)
                result = self._run(name, params, bot, chat_id)
            except _Injected as injected:
                self._refuse(injected.error, name, chat_id, params, bot)
                return injected.error.status, injected.error.body(), injected.html
            except _ApiError as error:
                self._refuse(error, name, chat_id, params, bot)
                return error.status, error.body(), False
        answer: Json = {"ok": True, "result": result}
        if name in ("setWebhook", "deleteWebhook"):
            answer["description"] = "Webhook was set" if result == "set" else "Webhook was deleted"
            answer["result"] = True
        return 200, answer, False

    def _refuse(
        self, error: _ApiError, method: str, chat_id: ChatId | None, params: Json, bot: _Bot | None
    ) -> None:
        retry_after = (error.parameters or {}).get("retry_after") if error.status == 429 else None
        wait = error.parameters.get("_wait") if error.parameters else None
        if error.parameters is not None:
            error.parameters.pop("_wait", None)
        self._refusals.append(
            Refusal(
                method=method,
                chat_id=chat_id,
                status=error.status,
                description=error.description,
                at=self.clock(),
                params=params,
                bot_id=bot.id if bot is not None else None,
                reason=error.reason,
                retry_after=retry_after,
                wait=wait,
            )
        )
        if error.status == 429:
            self._stats.too_many_requests += 1
            if chat_id is not None:
                self._stats.too_many_requests_by_chat[chat_id] += 1
        else:
            self._stats.other_errors += 1
        self._stats.errors_by_status[error.status] += 1

    # -- validation and chat state (called with the lock held) ---------------

    def _validate(self, name: str, params: Json) -> ChatId | None:
        """Check the parameters; return the chat the request is about, if any."""
        needs_chat = name not in (
            "getMe",
            "setWebhook",
            "deleteWebhook",
            "getWebhookInfo",
            "answerCallbackQuery",
        )
        chat_id: ChatId | None = None
        if needs_chat:
            chat_id = _chat_id(params, "chat_id")
        if name == "sendMessage":
            text = params.get("text")
            if text is None or (isinstance(text, str) and not text.strip()):
                raise _bad_request("message text is empty")
            if len(str(text)) > _MAX_TEXT:
                raise _bad_request("message is too long")
        elif name in ("sendPhoto", "sendDocument", "sendSticker"):
            kind = name.removeprefix("send").lower()
            if not params.get(kind):
                raise _bad_request(f"there is no {kind} in the request")
        elif name in ("forwardMessage", "copyMessage"):
            _chat_id(params, "from_chat_id")
            _int(params, "message_id", "message identifier is not specified")
        elif name == "deleteMessage":
            _int(params, "message_id", "message identifier is not specified")
        elif name in (
            "restrictChatMember",
            "banChatMember",
            "unbanChatMember",
            "approveChatJoinRequest",
            "declineChatJoinRequest",
            "setChatAdministratorCustomTitle",
            "promoteChatMember",
        ):
            _int(params, "user_id", "invalid user_id specified")
            if name == "restrictChatMember" and not isinstance(params.get("permissions"), dict):
                raise _bad_request('parameter "permissions" is required')
            if name == "setChatAdministratorCustomTitle":
                title = params.get("custom_title")
                if title is None:
                    raise _bad_request('parameter "custom_title" is required')
                if len(str(title)) > 16:
                    raise _bad_request("custom title is too long")
        elif name == "createChatInviteLink":
            if len(str(params.get("name") or "")) > 32:
                raise _bad_request("invite link name is too long")
        elif name == "answerCallbackQuery":
            if not params.get("callback_query_id"):
                raise _bad_request(
                    "query is too old and response timeout expired or query ID is invalid"
                )
        elif name == "setWebhook" and params.get("url") is None:
            raise _bad_request('parameter "url" is required')
        return chat_id

    def _apply_faults(self, name: str, chat_id: ChatId | None) -> None:
        for fault in self._faults:
            if fault.matches(name, chat_id):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                parameters = dict(fault.parameters) if fault.parameters else None
                error = _ApiError(fault.status, fault.description, parameters, reason="injected")
                raise _Injected(error, fault.html)

    def _check_chat(self, name: str, chat_id: ChatId) -> ChatId:
        """Resolve ``@username``; raise what the chat's scripted state answers."""
        if isinstance(chat_id, str):
            resolved = self._usernames.get(chat_id.removeprefix("@").lower())
            if resolved is None:
                raise _ApiError(400, "Bad Request: chat not found", reason="chat_not_found")
            chat_id = resolved
        chat = self._chats.get(chat_id)
        if chat is None:
            return chat_id
        if chat.not_found:
            raise _ApiError(400, "Bad Request: chat not found", reason="chat_not_found")
        if chat.migrated_to is not None:
            raise _ApiError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": chat.migrated_to},
                reason="migrated",
            )
        if chat.forbidden and name in SEND_METHODS:
            raise _ApiError(403, chat.forbidden, reason="forbidden")
        return chat_id

    def _chat(self, chat_id: ChatId) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            chat = self._chats[chat_id] = _Chat(id=chat_id, type=_guess_type(chat_id))
        return chat

    # -- methods (called with the lock held) -----------------------------------

    def _run(self, name: str, params: Json, bot: _Bot, chat_id: ChatId | None) -> Any:
        if name in SEND_METHODS:
            assert chat_id is not None
            return self._send(name, params, bot, chat_id)
        result = self._other(name, params, bot, chat_id)
        self._calls.append(
            Call(method=name, params=params, at=self.clock(), bot_id=bot.id, result=result)
        )
        return result

    def _send(self, name: str, params: Json, bot: _Bot, chat_id: ChatId) -> Json:
        chat = self._chat(chat_id)
        now = self.clock()
        limits = self.limits
        if chat.type == "private":
            chat_limit, chat_span = limits.per_private, limits.per_private_window
        else:
            chat_limit, chat_span = limits.per_group, limits.per_group_window
        chat_window = bot.chat_windows.setdefault(chat_id, deque())
        waits = {
            "rate_limit:bot": _wait_in(bot.window, limits.per_bot, limits.per_bot_window, now),
            "rate_limit:chat": _wait_in(chat_window, chat_limit, chat_span, now),
        }
        refused = {reason: wait for reason, wait in waits.items() if wait is not None}
        if refused:
            wait = max(refused.values())
            retry_after = max(1, math.ceil(wait - _EPSILON))
            raise _ApiError(
                429,
                f"Too Many Requests: retry after {retry_after}",
                {"retry_after": retry_after, "_wait": wait},
                reason="+".join(sorted(refused)),
            )
        bot.window.append(now)
        chat_window.append(now)
        message_id = chat.next_message_id
        chat.next_message_id += 1
        chat.live_messages.add(message_id)
        text = params.get("text") if name == "sendMessage" else params.get("caption")
        entities = params.get("entities" if name == "sendMessage" else "caption_entities")
        self._deliveries.append(
            Delivery(
                chat_id=chat_id,
                text=None if text is None else str(text),
                entities=entities if isinstance(entities, list) else None,
                message_id=message_id,
                at=now,
                method=name,
                params=params,
                bot_id=bot.id,
            )
        )
        self._stats.delivered += 1
        if name == "copyMessage":
            return {"message_id": message_id}
        message: Json = {
            "message_id": message_id,
            "from": bot.user(),
            "chat": chat.as_json(),
            "date": int(self.wall_clock()),
        }
        if name == "sendMessage":
            message["text"] = str(text)
            if isinstance(entities, list):
                message["entities"] = entities
        elif name == "forwardMessage":
            message["forward_origin"] = {
                "type": "hidden_user",
                "sender_user_name": "someone",
                "date": int(self.wall_clock()),
            }
        else:
            kind = name.removeprefix("send").lower()
            message[kind] = _file_json(kind, params.get(kind))
            if text is not None:
                message["caption"] = str(text)
        reply_markup = params.get("reply_markup")
        if isinstance(reply_markup, dict) and "inline_keyboard" in reply_markup:
            message["reply_markup"] = reply_markup
        return message

    def _other(self, name: str, params: Json, bot: _Bot, chat_id: ChatId | None) -> Any:
        if name == "getMe":
            user = bot.user()
            user.update(
                can_join_groups=True,
                can_read_all_group_messages=False,
                supports_inline_queries=False,
            )
            return user
        if name == "deleteMessage":
            assert chat_id is not None
            chat = self._chat(chat_id)
            message_id = _int(params, "message_id", "")
            if message_id not in chat.live_messages:
                raise _bad_request("message to delete not found")
            chat.live_messages.discard(message_id)
            return True
        if name == "createChatInviteLink":
            n = next(self._invite_counter)
            link: Json = {
                "invite_link": f"https://t.me/+double{n:04d}{secrets.token_urlsafe(8)}",
                "creator": bot.user(),
                "creates_join_request": bool(_truthy(params.get("creates_join_request"))),
                "is_primary": False,
                "is_revoked": False,
            }
            for key in ("name", "expire_date", "member_limit"):
                if params.get(key) is not None:
                    value = params[key]
                    link[key] = value if key == "name" else int(value)
            return link
        if name == "setWebhook":
            url = str(params["url"])
            if not url:
                bot.webhook = None
                return "deleted"
            bot.webhook = {k: v for k, v in params.items() if v is not None}
            if _truthy(params.get("drop_pending_updates")):
                bot.updates.clear()
            self._wake(bot, new_generation=True)
            return "set"
        if name == "deleteWebhook":
            bot.webhook = None
            if _truthy(params.get("drop_pending_updates")):
                bot.updates.clear()
            return "deleted"
        if name == "getWebhookInfo":
            hook = bot.webhook or {}
            info: Json = {
                "url": hook.get("url", ""),
                "has_custom_certificate": False,
                "pending_update_count": len(bot.updates),
            }
            if hook.get("allowed_updates") is not None:
                info["allowed_updates"] = hook["allowed_updates"]
            return info
        # restrict/ban/unban/approve/decline/promote/custom title/answerCallbackQuery
        return True

    # -- getUpdates ------------------------------------------------------------

    async def _get_updates(self, bot: _Bot, params: Json) -> tuple[int, Json, bool]:
        method = "getUpdates"
        with self._lock:
            try:
                if bot.webhook is not None:
                    raise _ApiError(
                        409,
                        "Conflict: can't use getUpdates method while webhook is active; "
                        "use deleteWebhook to delete the webhook first",
                    )
                offset = _opt_int(params, "offset")
                limit = min(max(_opt_int(params, "limit") or 100, 1), 100)
                timeout = _opt_float(params, "timeout") or 0.0
                allowed = params.get("allowed_updates")
                if allowed is not None:
                    if not isinstance(allowed, list):
                        raise _bad_request("can't parse allowed_updates JSON array")
                    bot.allowed_updates = frozenset(str(a) for a in allowed) or None
                self._apply_faults(method, None)
            except _Injected as injected:
                self._refuse(injected.error, method, None, params, bot)
                return injected.error.status, injected.error.body(), injected.html
            except _ApiError as error:
                self._refuse(error, method, None, params, bot)
                return error.status, error.body(), False
            if offset is not None:
                if offset < 0:
                    del bot.updates[: max(len(bot.updates) + offset, 0)]
                else:
                    bot.updates[:] = [u for u in bot.updates if u["update_id"] >= offset]
            bot.poll_generation += 1
            generation, epoch = bot.poll_generation, self._epoch
        self._wake(bot)  # an older poll of this bot is now a conflict
        deadline = time.monotonic() + timeout
        while True:
            loop = asyncio.get_running_loop()
            event = asyncio.Event()
            with self._lock:
                if bot.poll_generation != generation:
                    conflict = _ApiError(
                        409,
                        "Conflict: terminated by other getUpdates request; "
                        "make sure that only one bot instance is running",
                    )
                    self._refuse(conflict, method, None, params, bot)
                    return 409, conflict.body(), False
                ready = [u for u in bot.updates if _allowed(u, bot.allowed_updates)][:limit]
                remaining = deadline - time.monotonic()
                if self._epoch != epoch:
                    ready = []
                if ready or remaining <= 0 or self._closing or self._epoch != epoch:
                    self._calls.append(
                        Call(
                            method=method,
                            params=params,
                            at=self.clock(),
                            bot_id=bot.id,
                            result=[u["update_id"] for u in ready],
                        )
                    )
                    return 200, {"ok": True, "result": [dict(u) for u in ready]}, False
                bot.waiters.add((loop, event))
                self._polling.notify_all()
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                pass
            finally:
                with self._lock:
                    bot.waiters.discard((loop, event))

    def _wake(self, bot: _Bot, *, new_generation: bool = False) -> None:
        with self._lock:
            if new_generation:
                bot.poll_generation += 1
            waiters = list(bot.waiters)
        for loop, event in waiters:
            with suppress(RuntimeError):  # that loop has ended
                loop.call_soon_threadsafe(event.set)

    def _wake_all(self, *, closing: bool) -> None:
        with self._lock:
            self._closing = closing
            bots = list(self._bots.values())
        for bot in bots:
            self._wake(bot)

    def _bot_for(self, token: str | None) -> _Bot:
        bot = self._bots.get(token or self._tokens[0])
        if bot is None:
            raise KeyError("that token is not one of the double's")
        return bot


class _Injected(Exception):
    def __init__(self, error: _ApiError, html: bool) -> None:
        super().__init__(error.description)
        self.error = error
        self.html = html


# ---------------------------------------------------------------------------
# Parameters


def _parse_params(query: bytes, content_type: str, body: bytes) -> Json:
    params: Json = dict(urllib.parse.parse_qsl(query.decode("latin1"), keep_blank_values=True))
    kind = content_type.split(";", 1)[0].strip().lower()
    if body.strip():
        if kind == "application/json":
            try:
                decoded = json.loads(body)
            except ValueError:
                raise ValueError("can't parse JSON object") from None
            if not isinstance(decoded, dict):
                raise ValueError("can't parse JSON object")
            params.update(decoded)
        elif kind == "multipart/form-data":
            params.update(_parse_multipart(content_type, body))
        else:
            params.update(urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    for key in _JSON_FIELDS & params.keys():
        value = params[key]
        if isinstance(value, str):
            try:
                params[key] = json.loads(value) if value else None
            except ValueError:
                raise ValueError(f"can't parse {key} JSON object") from None
    return params


def _parse_multipart(content_type: str, body: bytes) -> Json:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin1")
    parsed = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    params: Json = {}
    for part in parsed.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            params[name] = {"filename": filename, "size": len(data)}
        else:
            params[name] = data.decode("utf-8")
    return params


def _chat_id(params: Json, key: str) -> ChatId:
    value = params.get(key)
    if value is None or value == "":
        raise _bad_request(f"{key} is empty")
    if isinstance(value, bool):
        raise _bad_request("chat not found")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.startswith("@") and len(text) > 1:
        return text
    try:
        return int(text)
    except ValueError:
        raise _bad_request("chat not found") from None


def _int(params: Json, key: str, missing: str) -> int:
    value = params.get(key)
    if value is None or value == "" or isinstance(value, bool):
        raise _bad_request(missing)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _bad_request(missing) from None


def _opt_int(params: Json, key: str) -> int | None:
    value = params.get(key)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _bad_request(f"can't parse {key}") from None


def _opt_float(params: Json, key: str) -> float | None:
    value = params.get(key)
    if value is None or value == "":
        return None
    try:
        return max(float(value), 0.0)
    except (TypeError, ValueError):
        raise _bad_request(f"can't parse {key}") from None


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes", "on")
    return bool(value)


def _method_set(methods: Iterable[str] | None) -> frozenset[str] | None:
    if methods is None:
        return None
    names = set()
    for method in methods:
        name = METHODS.get(method.lower())
        if name is None:
            raise ValueError(f"the double has no method {method!r}")
        names.add(name)
    return frozenset(names)


def _guess_type(chat_id: ChatId) -> str:
    if isinstance(chat_id, str):
        return "channel"
    if chat_id > 0:
        return "private"
    # Supergroups and channels are -100 followed by ten digits or more; groups are shorter.
    return "supergroup" if chat_id <= -1_000_000_000_000 else "group"


def _allowed(update: Json, allowed: frozenset[str] | None) -> bool:
    kinds = set(update) - {"update_id"}
    if allowed is None:
        return not kinds or not kinds <= _UPDATE_TYPES_OFF_BY_DEFAULT
    return bool(kinds & allowed)


def _file_json(kind: str, value: Any) -> Any:
    file_id = f"double-{kind}-{secrets.token_hex(6)}"
    base: Json = {"file_id": file_id, "file_unique_id": file_id[-8:]}
    if isinstance(value, dict):
        base["file_size"] = int(value.get("size", 0))
    if kind == "photo":
        return [{**base, "width": 90, "height": 90}]
    return base


# ---------------------------------------------------------------------------
# Serving


def _uvicorn_config(app: AsgiApp) -> uvicorn.Config:
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        loop="none",
        http="h11",
        ws="none",
        lifespan="off",
        interface="asgi3",
        log_config=None,
        log_level="warning",
        access_log=False,  # the access log would print every token
        server_header=False,
        timeout_graceful_shutdown=2,
    )
    config.load()
    return config


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _respond(send: Send, status: int, payload: Json) -> None:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _respond_html(send: Send, status: int) -> None:
    title = f"{status} Bad Gateway" if status == 502 else f"{status} Error"
    body = (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n"
        "</body>\r\n</html>\r\n"
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/html"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _Server(uvicorn.Server):
    """uvicorn's server, woken at once to stop instead of noticing within 0.1 s."""

    _exit: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._exit = asyncio.Event()
        ticks = 0
        while not await self.on_tick(ticks):  # on_tick refreshes the Date header every 10
            ticks += 10
            with suppress(TimeoutError):
                await asyncio.wait_for(self._exit.wait(), 1.0)

    def exit_soon(self) -> None:
        self.should_exit = True
        loop, event = self._loop, self._exit
        if loop is not None and event is not None:
            with suppress(RuntimeError):  # that loop already ended
                loop.call_soon_threadsafe(event.set)


class _ThreadedServer:
    """An ASGI app served by uvicorn on 127.0.0.1 in a thread with its own event loop."""

    def __init__(self, app: AsgiApp) -> None:
        self._app = app
        self._thread: threading.Thread | None = None
        self._server: _Server | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self.port: int | None = None

    def start(self, timeout: float = 10.0) -> int:
        if self._thread is not None:
            raise RuntimeError("already running")
        self._started.clear()
        self._error = None
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
        # and without it every answer waits ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.bind(("127.0.0.1", 0))  # a free port, chosen by the OS, loopback only
            port: int = sock.getsockname()[1]
            server = self._server = _Server(_uvicorn_config(self._app))
        except BaseException:
            sock.close()
            raise
        self._thread = threading.Thread(
            target=self._run, args=(server, sock), name=f"asgi-double-{port}", daemon=True
        )
        self._thread.start()
        if not self._started.wait(timeout) or self._error is not None:
            error = self._error
            self.stop()
            raise RuntimeError("the local server did not start") from error
        self.port = port
        return port

    def stop(self, timeout: float = 10.0) -> None:
        thread, server = self._thread, self._server
        if thread is None:
            return
        if server is not None:
            server.exit_soon()
        thread.join(timeout)
        if thread.is_alive():  # pragma: no cover - a stuck server
            raise RuntimeError("the local server did not stop")
        self._thread = self._server = None
        self.port = None

    def _run(self, server: uvicorn.Server, sock: socket.socket) -> None:
        try:
            asyncio.run(self._serve(server, sock))
        except BaseException as error:  # reported by start()
            self._error = error
        finally:
            sock.close()
            self._started.set()

    async def _serve(self, server: uvicorn.Server, sock: socket.socket) -> None:
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not serving.done():
            await asyncio.sleep(0.005)
        self._started.set()
        await serving


@contextmanager
def serve_asgi(app: AsgiApp) -> Iterator[str]:
    """Serve any ASGI ``app`` on 127.0.0.1 in a background thread; yield its base URL.

    Handy for a webhook receiver in a test of :func:`post_update`.
    """
    server = _ThreadedServer(app)
    port = server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


# ---------------------------------------------------------------------------
# Webhook helpers and update builders


def _check_local(url: str) -> None:
    host = httpx.URL(url).host
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError(f"the double only posts to loopback addresses, not {host!r}")


def _webhook_headers(secret_token: str | None) -> dict[str, str]:
    headers = {"content-type": "application/json"}
    if secret_token is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret_token
    return headers


def post_update(
    url: str,
    update: Mapping[str, Any],
    *,
    secret_token: str | None = None,
    timeout: float = 10.0,
    client: httpx.Client | None = None,
) -> httpx.Response:
    """POST ``update`` as Telegram does to a webhook; with the secret header if given.

    Only loopback URLs are accepted: the double never reaches the internet.
    """
    _check_local(url)
    content = json.dumps(dict(update), ensure_ascii=False).encode()
    headers = _webhook_headers(secret_token)
    if client is not None:
        return client.post(url, content=content, headers=headers, timeout=timeout)
    with httpx.Client(trust_env=False, timeout=timeout) as own:
        return own.post(url, content=content, headers=headers)


async def apost_update(
    url: str,
    update: Mapping[str, Any],
    *,
    secret_token: str | None = None,
    timeout: float = 10.0,
    client: httpx.AsyncClient | None = None,
) -> httpx.Response:
    """The ``async`` form of :func:`post_update`."""
    _check_local(url)
    content = json.dumps(dict(update), ensure_ascii=False).encode()
    headers = _webhook_headers(secret_token)
    if client is not None:
        return await client.post(url, content=content, headers=headers, timeout=timeout)
    async with httpx.AsyncClient(trust_env=False, timeout=timeout) as own:
        return await own.post(url, content=content, headers=headers)


_message_ids = itertools.count(1)


def _user(user_id: int, first_name: str | None = None, username: str | None = None) -> Json:
    user: Json = {"id": user_id, "is_bot": False, "first_name": first_name or f"User {user_id}"}
    if username:
        user["username"] = username
    return user


def _chat_json(chat_id: int, chat_type: str | None = None) -> Json:
    return _Chat(id=chat_id, type=chat_type or _guess_type(chat_id)).as_json()


def message_update(
    chat_id: int,
    user_id: int,
    text: str,
    *,
    message_id: int | None = None,
    date: int | None = None,
    chat_type: str | None = None,
    entities: list[Json] | None = None,
    update_id: int | None = None,
) -> Json:
    """A ``message`` update as Telegram sends it (``update_id`` assigned on push if omitted).

    Without a ``message_id`` it takes the next of a counter shared by all chats.
    """
    message: Json = {
        "message_id": next(_message_ids) if message_id is None else message_id,
        "from": _user(user_id),
        "chat": _chat_json(chat_id, chat_type),
        "date": int(time.time()) if date is None else date,
        "text": text,
    }
    if entities:
        message["entities"] = entities
    update: Json = {"message": message}
    if update_id is not None:
        update["update_id"] = update_id
    return update


def callback_query_update(
    chat_id: int,
    user_id: int,
    data: str,
    *,
    query_id: str | None = None,
    message_id: int = 1,
    update_id: int | None = None,
) -> Json:
    """A ``callback_query`` update (a press on an inline button of message ``message_id``)."""
    update: Json = {
        "callback_query": {
            "id": query_id or secrets.token_hex(8),
            "from": _user(user_id),
            "chat_instance": str(abs(chat_id)),
            "data": data,
            "message": {
                "message_id": message_id,
                "chat": _chat_json(chat_id),
                "date": int(time.time()),
                "text": "…",
            },
        }
    }
    if update_id is not None:
        update["update_id"] = update_id
    return update


def chat_join_request_update(
    chat_id: int,
    user_id: int,
    *,
    bio: str | None = None,
    invite_link: str | None = None,
    date: int | None = None,
    update_id: int | None = None,
) -> Json:
    """A ``chat_join_request`` update (answer it with approve/declineChatJoinRequest)."""
    request: Json = {
        "chat": _chat_json(chat_id),
        "from": _user(user_id),
        "user_chat_id": user_id,
        "date": int(time.time()) if date is None else date,
    }
    if bio is not None:
        request["bio"] = bio
    if invite_link is not None:
        request["invite_link"] = {
            "invite_link": invite_link,
            "creates_join_request": True,
            "is_primary": False,
            "is_revoked": False,
            "creator": _user(1, "Admin"),
        }
    update: Json = {"chat_join_request": request}
    if update_id is not None:
        update["update_id"] = update_id
    return update


def main(argv: list[str] | None = None) -> None:
    """Serve a double until interrupted: ``python -m tests.doubles.telegram --token T``.

    ``--report FILE`` writes what it saw as JSON when it stops (SIGTERM or
    Ctrl-C): deliveries and 429s per chat, and the densest window of the bot and
    of each group, so a benchmark can run the double in a process of its own
    (where its clock is not delayed by the client's hold on the interpreter).
    """
    import argparse

    parser = argparse.ArgumentParser(description="A local double of the Telegram Bot API.")
    parser.add_argument("--token", action="append", required=True, help="a valid bot token")
    parser.add_argument("--time-scale", type=float, default=1.0, help="multiplies every window")
    parser.add_argument(
        "--group-window", type=float, default=None, help="the group window in seconds (60)"
    )
    parser.add_argument("--group", type=int, action="append", default=[], help="a supergroup id")
    parser.add_argument("--report", help="write a JSON report here when stopped")
    args = parser.parse_args(argv)
    import signal

    limits = RateLimits()
    if args.group_window is not None:
        limits = replace(limits, per_group_window=args.group_window)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with TelegramDouble(tokens=args.token, time_scale=args.time_scale, limits=limits) as double:
        for group in args.group:
            double.add_chat(group, "supergroup", title=f"group {group}")
        print(f"Telegram double on {double.base_url} (Ctrl-C or SIGTERM to stop)", flush=True)
        with suppress(KeyboardInterrupt):
            while not stop.wait(0.1):
                pass
        if args.report:
            chats = Counter(d.chat_id for d in double.deliveries)
            report = {
                "delivered": {str(chat): count for chat, count in chats.items()},
                "too_many_requests": double.stats.too_many_requests,
                "too_many_requests_by_chat": {
                    str(chat): count
                    for chat, count in double.stats.too_many_requests_by_chat.items()
                },
                "densest_bot_window": double.max_in_window(None, double.limits.per_bot_window),
                "densest_group_window": {
                    str(group): double.max_in_window(group, double.limits.per_group_window)
                    for group in args.group
                },
            }
            Path(args.report).write_text(json.dumps(report), encoding="utf-8")


if __name__ == "__main__":
    main()
