"""Strict fake platforms for the client tests, served through ``httpx.MockTransport``.

A :class:`StrictPlatform` counts every request in strict sliding windows (a
closed window of one period, the platform's worst case) per scope and fails
the test (:class:`WindowExceeded`) the moment one is exceeded, so a test that
passes proves the client never exceeded any window. Scripts make a given
target answer something else (a 429, a 403, a 502).
"""

from __future__ import annotations

import asyncio
import json as jsonlib
from collections import defaultdict, deque
from collections.abc import Callable, Hashable
from typing import Any

import attrs
import httpx

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
BOT_ID = "123456789"

Scope = tuple[str, Hashable]
Answer = httpx.Response | Callable[[httpx.Request], httpx.Response]


@attrs.define
class Received:
    at: float
    method: str
    path: str
    payload: Any
    status: int = 0


class WindowExceeded(AssertionError):
    """The client sent more than a scope's limit in one window: the platform would say 429."""


def now() -> float:
    return asyncio.get_running_loop().time()


class StrictPlatform:
    """Counts sends per scope; answers 429 beyond a limit; scripted answers per target."""

    def __init__(
        self,
        limits: dict[str, tuple[int, float]],
        scopes: Callable[[httpx.Request, Any], list[Scope]],
        target: Callable[[httpx.Request, Any], Hashable],
        ok: Callable[[httpx.Request, Any], httpx.Response],
    ) -> None:
        self.limits = limits
        self._scopes = scopes
        self._target = target
        self._ok = ok
        self.received: list[Received] = []
        self.windows: dict[Scope, deque[float]] = defaultdict(deque)
        self.scripts: dict[Hashable, list[Answer]] = defaultdict(list)
        self.always: dict[Hashable, Answer] = {}
        self.failures: list[Exception] = []

    # -- scripting -------------------------------------------------------------

    def script(self, target: Hashable, *answers: Answer) -> None:
        """The next requests to ``target`` get these answers, in order."""
        self.scripts[target].extend(answers)

    def answer_always(self, target: Hashable, answer: Answer) -> None:
        self.always[target] = answer

    # -- what happened -----------------------------------------------------------

    def delivered(self) -> list[Received]:
        return [call for call in self.received if 200 <= call.status < 300]

    def to(self, target: Hashable) -> list[Received]:
        return [call for call in self.received if self._target_of(call) == target]

    def _target_of(self, call: Received) -> Hashable:
        return call.payload.get("chat_id") if isinstance(call.payload, dict) else None

    # -- serving ---------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        at = now()
        payload = jsonlib.loads(request.content) if request.content else None
        call = Received(at, request.method, request.url.path, payload)
        self.received.append(call)
        for scope in self._scopes(request, payload):
            kind = scope[0]
            if kind not in self.limits:
                continue
            limit, period = self.limits[kind]
            window = self.windows[scope]
            window.append(at)
            while window and window[0] < at - period - 1e-9:
                window.popleft()
            if len(window) > limit:
                raise WindowExceeded(
                    f"{len(window)} requests to {scope} within {period}s "
                    f"(limit {limit}): {list(window)}"
                )
        target = self._target(request, payload)
        answer: Answer | None = None
        if self.scripts.get(target):
            answer = self.scripts[target].pop(0)
        elif target in self.always:
            answer = self.always[target]
        if answer is None:
            response = self._ok(request, payload)
        elif isinstance(answer, httpx.Response):
            response = answer
        else:
            response = answer(request)
        call.status = response.status_code
        return response


def telegram_ok(request: httpx.Request, payload: Any) -> httpx.Response:
    chat = payload.get("chat_id") if isinstance(payload, dict) else None
    return httpx.Response(200, json={"ok": True, "result": {"message_id": 1, "chat": {"id": chat}}})


def telegram_error(status: int, description: str, **parameters: Any) -> httpx.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return httpx.Response(status, json=body)


def telegram_429(retry_after: float) -> httpx.Response:
    return telegram_error(
        429, f"Too Many Requests: retry after {retry_after:g}", retry_after=retry_after
    )


def fake_telegram() -> StrictPlatform:
    """Telegram's documented limits as strict sliding windows."""

    def scopes(request: httpx.Request, payload: Any) -> list[Scope]:
        found: list[Scope] = [("bot", BOT_ID)]
        chat = payload.get("chat_id") if isinstance(payload, dict) else None
        if isinstance(chat, int):
            found.append(("chat", chat) if chat > 0 else ("group", chat))
        return found

    return StrictPlatform(
        {"bot": (30, 1.0), "chat": (1, 1.0), "group": (20, 60.0)},
        scopes,
        lambda request, payload: payload.get("chat_id") if isinstance(payload, dict) else None,
        telegram_ok,
    )
