"""The client: every request paced by a :class:`Governor`, read by a :class:`Policy`."""

from __future__ import annotations

import asyncio
import collections
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Literal, TypedDict, Unpack

import attrs
import httpx
import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_exponential, wait_random

from communitykit._secret import Secret
from communitykit._version import __version__
from communitykit.http._errors import (
    AuthFailed,
    ChatMigrated,
    CircuitOpen,
    ErrorFields,
    RequestFailed,
    TargetUnreachable,
)
from communitykit.http._governor import Governor, Lease
from communitykit.http._limits import DISCORD, TELEGRAM, WECOM, Key, Limits, Priority, RateLimit
from communitykit.http._policy import (
    Attempt,
    DiscordPolicy,
    GenericPolicy,
    Outcome,
    Policy,
    TelegramPolicy,
    Verdict,
    WeComPolicy,
    parse_json,
)
from communitykit.http._redact import Redactor, install_log_filter, redact_text

__all__ = [
    "CircuitBreaker",
    "ClientOptions",
    "HttpClient",
    "Response",
    "discord_client",
    "telegram_client",
    "wecom_client",
]

log = structlog.get_logger(__name__)

Sleep = Callable[[float], Awaitable[Any]]


@attrs.frozen(kw_only=True)
class Response:
    """A completed request: what the platform answered, and how it went."""

    method: str
    #: the URL, redacted
    url: str
    status: int
    #: the policy's payload: Telegram's ``result``, the JSON body elsewhere
    result: Any = attrs.field(repr=False)
    #: the whole JSON body (``None`` when the body is not JSON)
    data: Any = attrs.field(repr=False)
    headers: Mapping[str, str] = attrs.field(repr=False)
    content: bytes = attrs.field(repr=False)
    #: how many times the request was sent (429s and retries included)
    attempts: int
    #: seconds from the call to the answer, waiting for slots included
    elapsed: float


class CircuitBreaker:
    """Stops a client before it spends a platform's budget of invalid requests.

    Counts invalid responses over ``budget.period``; at ``threshold`` of
    ``budget.limit`` it opens for one whole period (by then every counted
    response has left the platform's window too), then closes by itself.
    """

    def __init__(self, budget: RateLimit, *, threshold: float = 0.5) -> None:
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold is a fraction in (0, 1], got {threshold!r}")
        self.budget = budget
        self.threshold = threshold
        self.trip_at = max(1, math.floor(budget.limit * threshold))
        self._seen: collections.deque[float] = collections.deque()
        self._open_until: float | None = None

    def count(self, now: float) -> int:
        """Invalid responses counted in the window ending ``now``."""
        while self._seen and self._seen[0] <= now - self.budget.period:
            self._seen.popleft()
        return len(self._seen)

    def record(self, now: float) -> bool:
        """Count one invalid response; ``True`` when this opened the breaker."""
        self._seen.append(now)
        if self._open_until is None and self.count(now) >= self.trip_at:
            self._open_until = now + self.budget.period
            return True
        return False

    def open_for(self, now: float) -> float | None:
        """Seconds until the breaker closes, or ``None`` when it is closed."""
        if self._open_until is None:
            return None
        if now >= self._open_until:
            self.reset()
            return None
        return self._open_until - now

    def reset(self) -> None:
        self._open_until = None
        self._seen.clear()

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.budget}, threshold={self.threshold})"


class _Retry(Exception):
    """A response or error worth another try (5xx, network): tenacity retries on it."""

    def __init__(
        self,
        description: str,
        *,
        status: int | None = None,
        code: int | str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(description)
        self.description = description
        self.status = status
        self.code = code
        self.retry_after = retry_after


@attrs.define
class _Call:
    method: str
    path: str
    url: str
    keys: tuple[Key, ...]
    attempt: Attempt
    options: dict[str, Any]
    started: float
    attempts: int = 0

    def fields(
        self,
        *,
        status: int | None = None,
        code: int | str | None = None,
        description: str = "",
        retry_after: float | None = None,
    ) -> ErrorFields:
        return {
            "method": self.method,
            "url": self.url,
            "status": status,
            "code": code,
            "description": description,
            "retry_after": retry_after,
        }


@attrs.frozen
class _Refusal:
    """Why the credentials were refused, for the errors of later requests."""

    description: str
    status: int | None
    code: int | str | None


class ClientOptions(TypedDict, total=False):
    """The keyword options :func:`telegram_client` and friends pass on to :class:`HttpClient`."""

    transport: httpx.AsyncBaseTransport | None
    headers: Mapping[str, str] | None
    timeout: float
    max_retries: int
    backoff: float
    max_backoff: float
    breaker: CircuitBreaker | Literal["auto"] | None
    monotonic: Callable[[], float]
    sleep: Sleep


class HttpClient:
    """An async HTTP client that runs at a platform's rate limit without 429s.

    ``limits`` is a :class:`Limits` profile (the client makes its governor) or a
    :class:`Governor` to share with other clients using the same token.
    ``policy`` reads the platform's responses. ``secrets`` are redacted from
    every log line, error and repr while the client is open. ``transport``
    replaces the network (tests: ``httpx.MockTransport``). ``max_retries``
    bounds the retries of network errors and 5xx (429s are never given up);
    ``backoff``/``max_backoff`` shape their exponential waits with jitter.
    ``breaker`` guards the invalid-request budget (``"auto"``: the policy's).
    """

    def __init__(
        self,
        base_url: str,
        *,
        limits: Limits | Governor,
        policy: Policy | None = None,
        secrets: Iterable[Secret] = (),
        transport: httpx.AsyncBaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        breaker: CircuitBreaker | Literal["auto"] | None = "auto",
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries!r}")
        self._redactor = Redactor(secrets)
        self._redactor.register()
        install_log_filter()
        if isinstance(limits, Governor):
            self._governor, self._owns_governor = limits, False
        else:
            self._governor = Governor(limits, monotonic=monotonic, sleep=sleep)
            self._owns_governor = True
        self._policy: Policy = policy if policy is not None else GenericPolicy()
        if breaker == "auto":
            budget = self._policy.invalid_budget
            breaker = CircuitBreaker(budget) if budget is not None else None
        self._breaker = breaker
        self._monotonic = monotonic
        self._sleep = sleep
        self._max_retries = max_retries
        self._wait = wait_exponential(multiplier=backoff, max=max_backoff) + wait_random(0, backoff)
        self._http = httpx.AsyncClient(
            base_url=base_url,
            transport=transport,
            headers=dict(headers or {}),
            timeout=timeout,
            follow_redirects=False,
        )
        self._base_url = self._redact(str(self._http.base_url))
        self._auth_failure: _Refusal | None = None
        self._unreachable: dict[Key, str] = {}
        self._migrated: dict[Key, int] = {}
        self._leases: set[Lease] = set()
        self._closed = False

    # -- public --------------------------------------------------------------

    @property
    def governor(self) -> Governor:
        return self._governor

    @property
    def policy(self) -> Policy:
        return self._policy

    @property
    def breaker(self) -> CircuitBreaker | None:
        return self._breaker

    @property
    def unreachable(self) -> frozenset[Key]:
        """Targets marked unreachable (requests to them fail fast)."""
        return frozenset(self._unreachable)

    @property
    def auth_failed(self) -> bool:
        return self._auth_failure is not None

    def add_secret(self, secret: Secret) -> None:
        """Redact one more secret (a refreshed access token) from now on."""
        self._redactor.add(secret)

    def mark_reachable(self, target: Key) -> None:
        """Send to ``target`` again (the user unblocked the bot, the adapter moved the group)."""
        self._unreachable.pop(target, None)
        self._migrated.pop(target, None)

    def reset(self) -> None:
        """Forget the auth failure, close the breaker, forget unreachable targets."""
        self._auth_failure = None
        if self._breaker is not None:
            self._breaker.reset()
        self._unreachable.clear()
        self._migrated.clear()

    async def request(
        self,
        method: str,
        path: str,
        *,
        keys: Iterable[Key] = (),
        priority: Priority = Priority.NORMAL,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        files: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Response:
        """Send one request once all buckets of ``keys`` admit it; return the answer.

        ``keys`` are the limiter keys the request consumes (none: not paced);
        ``priority`` orders it among requests waiting for the same buckets.
        ``timeout`` (seconds) replaces the client's for this request (a long
        poll). Upload ``files`` as bytes: a retry sends them again.

        Raises :class:`AuthFailed`, :class:`TargetUnreachable`,
        :class:`ChatMigrated`, :class:`CircuitOpen` or :class:`RequestFailed`.
        A 429 is waited out and retried as often as it takes; cancel the call
        (``asyncio.timeout``) to bound the wait.
        """
        if self._closed:
            raise RuntimeError("this HttpClient is closed")
        method = method.upper()
        options: dict[str, Any] = {
            "json": json,
            "params": params,
            "data": data,
            "files": files,
            "content": content,
            "headers": headers,
        }
        if timeout is not None:
            options["timeout"] = timeout
        url = self._redact(str(self._http.build_request(method, path, params=params).url))
        checked = self._governor.limits.check(keys)
        routed = self._policy.route(checked)
        for key, rate in routed.rates.items():
            self._governor.set_rate(key, rate)
        lease = self._governor.lease(routed.keys, priority)
        call = _Call(
            method=method,
            path=path,
            url=url,
            keys=checked,
            attempt=Attempt(method=method, keys=checked, routed=lease.keys, targets=lease.targets),
            options=options,
            started=self._monotonic(),
        )
        self._check(call)
        self._leases.add(lease)
        try:
            async with lease:
                retrying = AsyncRetrying(
                    stop=stop_after_attempt(self._max_retries + 1),
                    wait=self._retry_wait,
                    retry=retry_if_exception_type(_Retry),
                    sleep=self._sleep,
                    before_sleep=self._log_retry(call),
                    reraise=True,
                )
                try:
                    response: Response = await retrying(self._deliver, lease, call)
                except _Retry as exc:
                    raise RequestFailed(
                        f"{method} {url}: gave up after {call.attempts} attempts: "
                        f"{exc.description}",
                        transient=True,
                        **call.fields(
                            status=exc.status,
                            code=exc.code,
                            description=exc.description,
                            retry_after=exc.retry_after,
                        ),
                    ) from None
                return response
        finally:
            self._leases.discard(lease)

    async def get(self, path: str, **kwargs: Any) -> Response:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> Response:
        return await self.request("POST", path, **kwargs)

    async def aclose(self) -> None:
        """Close the connections; requests still waiting fail. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._governor.reject_waiting(
            lambda lease: RequestFailed("the client was closed", transient=True),
            lambda lease: lease in self._leases,
        )
        if self._owns_governor:
            self._governor.close()
        try:
            await self._http.aclose()
        finally:
            self._redactor.unregister()

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return (
            f"HttpClient({self._base_url!r}, limits={self._governor.limits.name!r}, "
            f"policy={self._policy.name!r})"
        )

    # -- one request -----------------------------------------------------------

    async def _deliver(self, lease: Lease, call: _Call) -> Response:
        """Send until an answer that is not a 429; raise :class:`_Retry` for a retryable one."""
        while True:
            self._check(call)
            try:
                await lease.acquire()
            except _Recheck:
                continue  # the client's state changed while waiting: check it again
            self._check(call)
            call.attempts += 1
            try:
                request = self._http.build_request(call.method, call.path, **call.options)
                response = await self._http.send(request)
            except httpx.TransportError as exc:  # network errors and timeouts
                raise _Retry(f"{type(exc).__name__}: {self._redact(str(exc))}") from None
            except httpx.HTTPError as exc:  # a response that cannot be read, ...
                raise RequestFailed(
                    f"{call.method} {call.url}: {type(exc).__name__}: {self._redact(str(exc))}",
                    **call.fields(),
                ) from None
            verdict = self._policy.classify(response, call.attempt)
            self._learn(verdict)
            log.debug(
                "http.response",
                method=call.method,
                url=call.url,
                status=response.status_code,
                outcome=verdict.outcome.value,
                attempt=call.attempts,
            )
            if verdict.invalid:
                self._count_invalid()
            if verdict.outcome is Outcome.OK:
                return Response(
                    method=call.method,
                    url=call.url,
                    status=response.status_code,
                    result=verdict.result,
                    data=parse_json(response),
                    headers=dict(response.headers),
                    content=response.content,
                    attempts=call.attempts,
                    elapsed=self._monotonic() - call.started,
                )
            if verdict.outcome is Outcome.RATE_LIMITED:
                self._rate_limited(call, response.status_code, verdict)
                continue
            raise self._failure(call, response.status_code, verdict)

    def _failure(self, call: _Call, status: int, verdict: Verdict) -> Exception:
        description = self._redact(verdict.description)
        what = f"{call.method} {call.url}: {status} {description}".rstrip()
        fields = call.fields(status=status, code=verdict.code, description=description)
        targets = call.attempt.targets
        if verdict.outcome is Outcome.RETRY:
            return _Retry(
                f"{status} {description}".rstrip(),
                status=status,
                code=verdict.code,
                retry_after=verdict.retry_after,
            )
        if verdict.outcome is Outcome.AUTH_FAILED:
            self._auth_failure = _Refusal(description or f"HTTP {status}", status, verdict.code)
            log.error("http.auth_failed", method=call.method, url=call.url, status=status)
            self._reject_waiting(lambda lease: True)
            return AuthFailed(
                f"{what}: the credentials were refused; nothing more is sent", **fields
            )
        if verdict.outcome is Outcome.UNREACHABLE:
            for target in targets:
                self._unreachable[target] = description or f"HTTP {status}"
            log.info("http.target_unreachable", targets=self._redact(repr(targets)), status=status)
            self._reject_waiting(lambda lease: any(t in targets for t in lease.targets))
            return TargetUnreachable(
                f"{what} ({_show(targets)} unreachable)", targets=targets, **fields
            )
        if verdict.outcome is Outcome.MIGRATED and verdict.migrate_to is not None:
            for target in targets:
                self._migrated[target] = verdict.migrate_to
            self._reject_waiting(lambda lease: any(t in targets for t in lease.targets))
            return ChatMigrated(
                f"{what}: the chat moved to {verdict.migrate_to}",
                new_chat_id=verdict.migrate_to,
                target=targets[0] if targets else None,
                **fields,
            )
        return RequestFailed(what, **fields)

    def _check(self, call: _Call) -> None:
        """Fail fast, without a network call, when the answer is known already."""
        if self._closed:
            raise RequestFailed("the client was closed", transient=True, **call.fields())
        refusal = self._auth_failure
        if refusal is not None:
            raise AuthFailed(
                f"{call.method} {call.url}: not sent: the credentials were refused earlier "
                f"({refusal.description}); reset() the client once they are fixed",
                **call.fields(
                    status=refusal.status, code=refusal.code, description=refusal.description
                ),
            )
        if self._breaker is not None:
            open_for = self._breaker.open_for(self._monotonic())
            if open_for is not None:
                raise CircuitOpen(
                    f"{call.method} {call.url}: not sent: too many invalid requests; "
                    f"sending resumes in {open_for:.0f}s",
                    **call.fields(retry_after=open_for),
                )
        for target in call.attempt.targets:
            if target in self._migrated:
                new_id = self._migrated[target]
                raise ChatMigrated(
                    f"{call.method} {call.url}: not sent: {_show([target])} moved to {new_id}",
                    new_chat_id=new_id,
                    target=target,
                    **call.fields(),
                )
            if target in self._unreachable:
                raise TargetUnreachable(
                    f"{call.method} {call.url}: not sent: {_show([target])} is unreachable "
                    f"({self._unreachable[target]})",
                    targets=(target,),
                    **call.fields(description=self._unreachable[target]),
                )

    def _rate_limited(self, call: _Call, status: int, verdict: Verdict) -> None:
        seconds = verdict.retry_after if verdict.retry_after is not None else 1.0
        self._governor.pause(verdict.pause, seconds)
        log.warning(
            "http.rate_limited",
            method=call.method,
            url=call.url,
            status=status,
            retry_after=seconds,
            scope=self._redact(repr(verdict.pause)),
            attempt=call.attempts,
        )

    def _learn(self, verdict: Verdict) -> None:
        for key, rate in verdict.learned.items():
            self._governor.set_rate(key, rate)
        for key, seconds in verdict.exhausted.items():
            self._governor.pause([key], seconds)

    def _count_invalid(self) -> None:
        if self._breaker is None:
            return
        if self._breaker.record(self._monotonic()):
            log.error(
                "http.circuit_open",
                invalid=self._breaker.trip_at,
                window=self._breaker.budget.period,
            )
            self._reject_waiting(lambda lease: True)

    def _reject_waiting(self, where: Callable[[Lease], bool]) -> None:
        """Wake this client's waiting requests that match ``where``: they re-check and fail."""
        self._governor.reject_waiting(
            lambda lease: _Recheck(), lambda lease: lease in self._leases and where(lease)
        )

    def _retry_wait(self, state: RetryCallState) -> float:
        delay = float(self._wait(state))
        error = state.outcome.exception() if state.outcome is not None else None
        if isinstance(error, _Retry) and error.retry_after:
            delay = max(delay, error.retry_after)
        return delay

    def _log_retry(self, call: _Call) -> Callable[[RetryCallState], None]:
        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            log.warning(
                "http.retrying",
                method=call.method,
                url=call.url,
                error=self._redact(str(error)),
                attempt=call.attempts,
                wait=round(state.upcoming_sleep, 3),
            )

        return before_sleep

    def _redact(self, text: str) -> str:
        return redact_text(self._redactor.redact(text))


class _Recheck(Exception):
    """Raised in a waiting request when the client's state changed: it re-checks and fails."""


def _show(targets: Iterable[Key]) -> str:
    return ", ".join(f"{kind} {ident!r}" for kind, ident in targets) or "the target"


def telegram_client(
    token: Secret,
    *,
    api_base: str = "https://api.telegram.org",
    limits: Limits | Governor = TELEGRAM,
    secrets: Iterable[Secret] = (),
    **options: Unpack[ClientOptions],
) -> HttpClient:
    """A client for the Bot API of ``token`` (``api_base``: a local Bot API server, a double).

    Call methods by name: ``await client.post("sendMessage", json=..., keys=...)``.
    """
    base = f"{api_base.rstrip('/')}/bot{token.reveal()}/"
    return HttpClient(
        base, limits=limits, policy=TelegramPolicy(), secrets=[token, *secrets], **options
    )


def discord_client(
    token: Secret,
    *,
    api_base: str = "https://discord.com/api/v10",
    limits: Limits | Governor = DISCORD,
    secrets: Iterable[Secret] = (),
    **options: Unpack[ClientOptions],
) -> HttpClient:
    """A client for Discord's HTTP API with bot ``token`` (sent as ``Authorization: Bot ...``)."""
    options["headers"] = {
        "Authorization": f"Bot {token.reveal()}",
        "User-Agent": f"DiscordBot (https://pypi.org/project/communitykit, {__version__})",
        **(options.get("headers") or {}),
    }
    return HttpClient(
        api_base.rstrip("/") + "/",
        limits=limits,
        policy=DiscordPolicy(),
        secrets=[token, *secrets],
        **options,
    )


def wecom_client(
    *,
    api_base: str = "https://qyapi.weixin.qq.com",
    limits: Limits | Governor = WECOM,
    secrets: Iterable[Secret] = (),
    **options: Unpack[ClientOptions],
) -> HttpClient:
    """A client for WeCom's API; ``secrets``: the access tokens and robot keys sent in queries."""
    return HttpClient(
        api_base.rstrip("/") + "/",
        limits=limits,
        policy=WeComPolicy(),
        secrets=secrets,
        **options,
    )
