"""Per-platform policies: how a response is read (success, 429, failure) and what it teaches.

A policy turns an ``httpx.Response`` into a :class:`Verdict`; the client acts
on the verdict (return, pause and retry, stop, mark a target). Each platform
puts its errors somewhere else — Telegram in ``{"ok": false, "error_code",
"description", "parameters"}``, Discord in ``{"code", "message"}`` and
``X-RateLimit-*`` headers, WeCom in ``{"errcode", "errmsg"}`` with HTTP 200 —
so each has its policy. Write your own by implementing :class:`Policy`
(subclassing :class:`GenericPolicy` is the short way).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

import attrs
import httpx

from communitykit.http._limits import GLOBAL, GlobalScope, Key, RateLimit

__all__ = [
    "Attempt",
    "DiscordPolicy",
    "GenericPolicy",
    "Outcome",
    "Policy",
    "Routed",
    "TelegramPolicy",
    "Verdict",
    "WeComPolicy",
    "parse_json",
    "retry_after_header",
]

_EMPTY: Mapping[Any, Any] = MappingProxyType({})


class Outcome(enum.Enum):
    """What a response means for the request."""

    #: done: return the response
    OK = "ok"
    #: 429: pause what it covers, then send again (never dropped)
    RATE_LIMITED = "rate_limited"
    #: 5xx and the like: retry with backoff, a bounded number of times
    RETRY = "retry"
    #: the credentials are refused: stop the client
    AUTH_FAILED = "auth_failed"
    #: the request's targets cannot be reached: mark them, go on with others
    UNREACHABLE = "unreachable"
    #: Telegram: the group moved to a supergroup with another id
    MIGRATED = "migrated"
    #: any other failure the platform explained: report it, do not retry
    FAILED = "failed"


@attrs.frozen(kw_only=True)
class Attempt:
    """What a policy knows about the request a response answers."""

    method: str
    #: the keys as the caller gave them
    keys: tuple[Key, ...]
    #: the keys after :meth:`Policy.route` (what the governor paced)
    routed: tuple[Key, ...]
    #: the keys of target kinds among ``routed``
    targets: tuple[Key, ...]


@attrs.frozen
class Routed:
    """A request's keys after the policy mapped them to known buckets, and those buckets' rates."""

    keys: tuple[Key, ...]
    rates: Mapping[Key, RateLimit] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class Verdict:
    """A policy's reading of one response."""

    outcome: Outcome
    #: the payload on success (Telegram's ``result``; the JSON body elsewhere)
    result: Any = None
    description: str = ""
    code: int | str | None = None
    #: seconds to wait: how long a 429 pauses, or a hint for a retry
    retry_after: float | None = None
    #: what a 429 covers: some keys, or ``GLOBAL``
    pause: tuple[Key, ...] | GlobalScope = ()
    #: Telegram's ``migrate_to_chat_id``
    migrate_to: int | None = None
    #: counts toward the invalid-request budget (Discord: 401, 403, non-shared 429)
    invalid: bool = False
    #: rates learned from the response, per key (Discord buckets)
    learned: Mapping[Key, RateLimit] = _EMPTY
    #: keys to pause for so many seconds though the request went through (a bucket used up)
    exhausted: Mapping[Key, float] = _EMPTY


@runtime_checkable
class Policy(Protocol):
    """How a platform's responses are read. See :class:`GenericPolicy`."""

    @property
    def name(self) -> str: ...

    @property
    def invalid_budget(self) -> RateLimit | None:
        """The platform's budget of invalid requests, if it has one (Discord: 10,000/10 min)."""

    def route(self, keys: tuple[Key, ...]) -> Routed:
        """Map keys to the buckets they are known to use (identity for most platforms)."""

    def classify(self, response: httpx.Response, attempt: Attempt) -> Verdict:
        """Read one response."""


def parse_json(response: httpx.Response) -> Any:
    """The JSON body, or ``None`` when there is none."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value >= 0 else None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if number >= 0 else None
    return None


def retry_after_header(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (a number or an HTTP date), if present."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    seconds = _number(value.strip())
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _description(data: Any, *fields: str) -> str:
    if isinstance(data, dict):
        for field in fields:
            value = data.get(field)
            if isinstance(value, str) and value:
                return value
    return ""


class GenericPolicy:
    """HTTP semantics with nothing platform-specific.

    2xx is success; 429 pauses the request's targets (all its keys if it has
    none) for ``Retry-After``; 401 stops the client; 403 and 404 mark the
    targets unreachable; 408 and 5xx are retried; anything else fails.
    Subclasses override the hooks they need.
    """

    name = "generic"
    #: seconds a 429 pauses when the platform does not say
    default_retry_after = 1.0

    @property
    def invalid_budget(self) -> RateLimit | None:
        return None

    def route(self, keys: tuple[Key, ...]) -> Routed:
        return Routed(keys)

    def classify(self, response: httpx.Response, attempt: Attempt) -> Verdict:
        data = parse_json(response)
        status = response.status_code
        if 200 <= status < 300:
            return Verdict(outcome=Outcome.OK, result=data)
        description = _description(data, "description", "message", "error", "errmsg")
        return self.failure(response, attempt, status, description or response.reason_phrase)

    def failure(
        self,
        response: httpx.Response,
        attempt: Attempt,
        status: int,
        description: str,
        code: int | str | None = None,
    ) -> Verdict:
        """The verdict for a failed response with the platform's ``description``."""
        invalid = status in (401, 403, 429)
        if status == 429:
            return Verdict(
                outcome=Outcome.RATE_LIMITED,
                description=description,
                code=code,
                retry_after=retry_after_header(response) or self.default_retry_after,
                pause=attempt.targets or attempt.routed,
                invalid=invalid,
            )
        if status == 401:
            return Verdict(
                outcome=Outcome.AUTH_FAILED, description=description, code=code, invalid=invalid
            )
        if status in (403, 404) and attempt.targets and self.unreachable(status, code):
            return Verdict(
                outcome=Outcome.UNREACHABLE, description=description, code=code, invalid=invalid
            )
        if status >= 500 or status == 408:
            return Verdict(
                outcome=Outcome.RETRY,
                description=description,
                code=code,
                retry_after=retry_after_header(response),
            )
        return Verdict(outcome=Outcome.FAILED, description=description, code=code, invalid=invalid)

    def unreachable(self, status: int, code: int | str | None) -> bool:
        """Whether a 403/404 with the platform's ``code`` means the target is gone."""
        return True

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class TelegramPolicy(GenericPolicy):
    """The Telegram Bot API: ``{"ok": true, "result": ...}`` or ``{"ok": false, ...}``.

    - 429: ``parameters.retry_after`` pauses the request's chat (the bot's lane
      when the request names no chat);
    - 400 with ``parameters.migrate_to_chat_id``: :class:`ChatMigrated`;
    - 401: the token is refused; 403 (blocked, kicked, deactivated) and
      400 "chat not found": the chat is unreachable;
    - 404 means a wrong method or a malformed token, never a gone chat: it fails.
    """

    name = "telegram"

    def classify(self, response: httpx.Response, attempt: Attempt) -> Verdict:
        data = parse_json(response)
        status = response.status_code
        if isinstance(data, dict) and data.get("ok") is True and 200 <= status < 300:
            return Verdict(outcome=Outcome.OK, result=data.get("result"))
        if not isinstance(data, dict) or "ok" not in data:
            if 200 <= status < 300:
                return Verdict(outcome=Outcome.OK, result=data)
            return self.failure(response, attempt, status, response.reason_phrase)
        code = data.get("error_code")
        if not isinstance(code, int) or isinstance(code, bool):
            code = status
        if 200 <= status < 300:  # "ok": false with a 2xx status: trust the body
            status = code
        description = _description(data, "description") or response.reason_phrase
        parameters = data.get("parameters")
        parameters = parameters if isinstance(parameters, dict) else {}
        if status == 429:
            retry_after = _number(parameters.get("retry_after"))
            if retry_after is None:
                retry_after = retry_after_header(response) or self.default_retry_after
            return Verdict(
                outcome=Outcome.RATE_LIMITED,
                description=description,
                code=code,
                retry_after=retry_after,
                pause=attempt.targets or attempt.routed,
                invalid=True,
            )
        migrate_to = parameters.get("migrate_to_chat_id")
        if isinstance(migrate_to, int) and not isinstance(migrate_to, bool):
            return Verdict(
                outcome=Outcome.MIGRATED, description=description, code=code, migrate_to=migrate_to
            )
        if status == 400 and attempt.targets and "chat not found" in description.lower():
            return Verdict(outcome=Outcome.UNREACHABLE, description=description, code=code)
        return self.failure(response, attempt, status, description, code)

    def unreachable(self, status: int, code: int | str | None) -> bool:
        return status == 403


_DISCORD_GONE = frozenset(
    {
        10003,  # Unknown Channel
        10004,  # Unknown Guild
        10007,  # Unknown Member
        10013,  # Unknown User
        10015,  # Unknown Webhook
    }
)


class DiscordPolicy(GenericPolicy):
    """Discord's HTTP API: learned buckets, the global limit, the invalid-request budget.

    Every response's ``X-RateLimit-Bucket`` tells which bucket a route uses
    (routes may share one); with the route's major parameter it names a
    ``("bucket", (hash, major))`` key paced at ``X-RateLimit-Limit`` per window
    (the window is the longest ``X-RateLimit-Reset-After`` seen). A bucket with
    ``X-RateLimit-Remaining: 0`` is paused until it resets. A 429 with
    ``global: true`` pauses everything; otherwise only its bucket. 401, 403 and
    429 (except ``X-RateLimit-Scope: shared``) count toward the budget of
    10,000 invalid requests per 10 minutes. Keep one instance per client: it
    remembers the buckets.
    """

    name = "discord"

    def __init__(self) -> None:
        self._bucket_of: dict[str, str] = {}
        self._limit: dict[str, int] = {}
        self._window: dict[str, float] = {}

    @property
    def invalid_budget(self) -> RateLimit | None:
        return RateLimit(10_000, 600.0)

    def bucket_rate(self, bucket: str) -> RateLimit | None:
        limit, window = self._limit.get(bucket), self._window.get(bucket)
        if limit is None or window is None or window <= 0:
            return None
        return RateLimit(limit, window)

    def route(self, keys: tuple[Key, ...]) -> Routed:
        routed: list[Key] = []
        rates: dict[Key, RateLimit] = {}
        for key in keys:
            route_major = _route_major(key)
            bucket = self._bucket_of.get(route_major[0]) if route_major else None
            if route_major is None or bucket is None:
                routed.append(key)
                continue
            bucket_key: Key = ("bucket", (bucket, route_major[1]))
            routed.append(bucket_key)
            rate = self.bucket_rate(bucket)
            if rate is not None:
                rates[bucket_key] = rate
        return Routed(tuple(routed), rates)

    def classify(self, response: httpx.Response, attempt: Attempt) -> Verdict:
        learned, exhausted, buckets = self._learn(response, attempt)
        data = parse_json(response)
        status = response.status_code
        if 200 <= status < 300:
            return Verdict(outcome=Outcome.OK, result=data, learned=learned, exhausted=exhausted)
        description = _description(data, "message") or response.reason_phrase
        raw_code = data.get("code") if isinstance(data, dict) else None
        code = raw_code if isinstance(raw_code, int) and not isinstance(raw_code, bool) else None
        if status == 429:
            headers = response.headers
            is_global = (isinstance(data, dict) and data.get("global") is True) or headers.get(
                "x-ratelimit-global", ""
            ).lower() == "true"
            retry_after = _number(data.get("retry_after")) if isinstance(data, dict) else None
            if retry_after is None:
                retry_after = retry_after_header(response) or self.default_retry_after
            if not isinstance(data, dict):
                is_global = True  # not Discord's JSON: Cloudflare, which blocks the whole IP
            pause: tuple[Key, ...] | GlobalScope = (
                GLOBAL
                if is_global
                else (buckets or tuple(k for k in attempt.routed if k[0] != "global") or GLOBAL)
            )
            shared = headers.get("x-ratelimit-scope", "").lower() == "shared"
            return Verdict(
                outcome=Outcome.RATE_LIMITED,
                description=description,
                code=code,
                retry_after=retry_after,
                pause=pause,
                invalid=not shared,
                learned=learned,
            )
        verdict = self.failure(response, attempt, status, description, code)
        return attrs.evolve(verdict, learned=learned, exhausted=exhausted)

    def unreachable(self, status: int, code: int | str | None) -> bool:
        return status == 403 or code in _DISCORD_GONE

    def _learn(
        self, response: httpx.Response, attempt: Attempt
    ) -> tuple[dict[Key, RateLimit], dict[Key, float], tuple[Key, ...]]:
        """Rates and exhausted buckets from ``X-RateLimit-*``; the request's bucket keys."""
        headers = response.headers
        buckets = tuple(key for key in attempt.routed if key[0] in ("route", "bucket"))
        bucket = headers.get("x-ratelimit-bucket")
        if not bucket:
            return {}, {}, buckets
        learned: dict[Key, RateLimit] = {}
        exhausted: dict[Key, float] = {}
        limit = _number(headers.get("x-ratelimit-limit"))
        remaining = _number(headers.get("x-ratelimit-remaining"))
        reset_after = _number(headers.get("x-ratelimit-reset-after"))
        if limit is not None and limit >= 1:
            self._limit[bucket] = int(limit)
        if reset_after is not None:
            self._window[bucket] = max(self._window.get(bucket, 0.0), reset_after)
        rate = self.bucket_rate(bucket)
        new_keys: list[Key] = []
        for key in attempt.keys:
            route_major = _route_major(key)
            if route_major is None:
                continue
            self._bucket_of[route_major[0]] = bucket
            bucket_key: Key = ("bucket", (bucket, route_major[1]))
            new_keys.append(bucket_key)
            if rate is not None:
                learned[bucket_key] = rate
        if remaining is not None and remaining < 1 and reset_after:
            for key in (*buckets, *new_keys):
                exhausted[key] = reset_after
        return learned, exhausted, tuple(dict.fromkeys((*buckets, *new_keys)))


def _route_major(key: Key) -> tuple[str, Any] | None:
    if key[0] != "route":
        return None
    value = key[1]
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
        return (value[0], value[1])
    if isinstance(value, str):
        return (value, None)
    return None


class WeComPolicy(GenericPolicy):
    """WeCom (企业微信): errors come as ``{"errcode", "errmsg"}``, usually with HTTP 200.

    45009 (frequency limit) pauses the request's targets for a minute (the
    limits are per minute and WeCom gives no retry time); -1 (busy) and 45033
    (too many concurrent calls) are retried; an invalid or expired
    ``access_token`` (40014, 42001, 41001, 40001) stops the client until
    :meth:`HttpClient.reset` (refresh the token, then reset); an invalid robot
    key (93000) or unknown recipients (60111, 81013) mark the targets
    unreachable.
    """

    name = "wecom"
    default_retry_after = 60.0
    auth_codes = frozenset({40001, 40014, 41001, 42001})
    unreachable_codes = frozenset({93000, 60111, 81013})
    retry_codes = frozenset({-1, 45033})
    rate_limit_codes = frozenset({45009})

    def classify(self, response: httpx.Response, attempt: Attempt) -> Verdict:
        data = parse_json(response)
        status = response.status_code
        if not 200 <= status < 300 or not isinstance(data, dict):
            return super().classify(response, attempt)
        code = data.get("errcode", 0)
        if code == 0 or not isinstance(code, int) or isinstance(code, bool):
            return Verdict(outcome=Outcome.OK, result=data)
        description = _description(data, "errmsg") or f"errcode {code}"
        if code in self.rate_limit_codes:
            return Verdict(
                outcome=Outcome.RATE_LIMITED,
                description=description,
                code=code,
                retry_after=self.default_retry_after,
                pause=attempt.targets or attempt.routed,
            )
        if code in self.retry_codes:
            return Verdict(outcome=Outcome.RETRY, description=description, code=code)
        if code in self.auth_codes:
            return Verdict(outcome=Outcome.AUTH_FAILED, description=description, code=code)
        if code in self.unreachable_codes and attempt.targets:
            return Verdict(outcome=Outcome.UNREACHABLE, description=description, code=code)
        return Verdict(outcome=Outcome.FAILED, description=description, code=code)
