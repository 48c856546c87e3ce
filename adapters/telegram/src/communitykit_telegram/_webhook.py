"""The webhook: a plain ASGI app Telegram posts updates to, and a way to serve it.

:class:`WebhookApp` needs no web framework. For every ``POST`` it

1. checks the ``X-Telegram-Bot-Api-Secret-Token`` header against the
   configured secret with :func:`hmac.compare_digest` (403 when it is missing
   or wrong: a forged update never reaches the community);
2. reads the body (at most ``max_body`` bytes: 413 beyond) as one JSON
   ``Update`` (400 when it is not a JSON object);
3. drops an ``update_id`` it has already taken (Telegram redelivers an update
   it got no answer for): 200 at once;
4. hands the update to the adapter, which records its events through the sink,
   and answers 200 once they are recorded — a matter of milliseconds — or 500
   when recording failed, so that Telegram delivers the update again.

A malformed update (no ``update_id``, an unknown shape) is logged and answered
200: Telegram would only send it again. :class:`WebhookServer` serves the app
with uvicorn (the ``webhook`` extra) on the adapter's event loop.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import socket
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

import structlog

from communitykit import CommunityKitError, Secret
from communitykit.http import redact_text
from communitykit_telegram._normalize import Bounded

if TYPE_CHECKING:
    import uvicorn

__all__ = ["SECRET_HEADER", "NotReady", "WebhookApp", "WebhookServer", "parse_listen"]

log = structlog.get_logger("communitykit_telegram")

#: The header Telegram sends the ``secret_token`` of ``setWebhook`` in.
SECRET_HEADER = "x-telegram-bot-api-secret-token"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Deliver = Callable[[list[Mapping[str, Any]]], Awaitable[None]]


class NotReady(Exception):
    """The adapter is not started: updates cannot be recorded yet (answered 503)."""


class _BodyTooLarge(Exception):
    pass


class WebhookApp:
    """The ASGI app of a Telegram webhook (see the module documentation).

    ``secret`` is the ``secret_token`` given to ``setWebhook``; without one
    every request is refused (403), since anyone could post updates otherwise.
    ``deliver`` records a list of updates (raising :class:`NotReady` before the
    adapter started). ``remember`` bounds the set of recent ``update_id`` values.
    """

    def __init__(
        self,
        deliver: Deliver,
        secret: Secret | None,
        *,
        max_body: int = 1 << 20,
        remember: int = 10_000,
    ) -> None:
        self._deliver = deliver
        self._secret = secret.reveal().encode() if secret else None
        self.max_body = max_body
        self._recent: Bounded[int, bool] = Bounded(remember)

    def __repr__(self) -> str:
        return f"WebhookApp(secret={'set' if self._secret else 'missing'})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope.get("method") != "POST":
            await _answer(send, 405, [(b"allow", b"POST")])
            return
        if not self._authentic(scope):
            client = scope.get("client")
            log.warning(
                "telegram.webhook_forbidden",
                client=client[0] if isinstance(client, list | tuple) and client else None,
                path=scope.get("path"),
                reason="missing secret header"
                if _header(scope, SECRET_HEADER) is None
                else "wrong secret",
            )
            await _answer(send, 403)
            return
        try:
            body = await self._read(receive)
        except _BodyTooLarge:
            await _answer(send, 413)
            return
        try:
            update = json.loads(body)
        except ValueError:
            update = None
        if not isinstance(update, dict):
            log.warning("telegram.webhook_bad_body", reason="not a JSON object")
            await _answer(send, 400)
            return
        update_id = update.get("update_id")
        if isinstance(update_id, int) and not isinstance(update_id, bool):
            if update_id in self._recent:
                log.debug("telegram.webhook_duplicate", update_id=update_id)
                await _answer(send, 200)
                return
            self._recent.set(update_id, True)
        try:
            await self._deliver([update])
        except NotReady:
            self._forget(update_id)
            await _answer(send, 503)
            return
        except Exception as exc:
            self._forget(update_id)
            log.error("telegram.webhook_failed", update_id=update_id, error=redact_text(repr(exc)))
            await _answer(send, 500)
            return
        await _answer(send, 200)

    def _forget(self, update_id: Any) -> None:
        if isinstance(update_id, int):
            self._recent.pop(update_id)

    def _authentic(self, scope: Scope) -> bool:
        if self._secret is None:
            return False
        given = _header(scope, SECRET_HEADER)
        return given is not None and hmac.compare_digest(given, self._secret)

    async def _read(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise _BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        return b"".join(chunks)


def _header(scope: Scope, name: str) -> bytes | None:
    wanted = name.encode("latin-1")
    for key, value in scope.get("headers", ()):
        if key.lower() == wanted:
            return bytes(value)
    return None


async def _answer(send: Send, status: int, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-length", b"0"), *headers],
        }
    )
    await send({"type": "http.response.body", "body": b""})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def parse_listen(value: str) -> tuple[str, int]:
    """``("127.0.0.1", 8443)`` for ``"127.0.0.1:8443"`` (``[::1]:8443`` for IPv6)."""
    host, sep, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT such as 127.0.0.1:8443, got {value!r}")
    return host, int(port)


class WebhookServer:
    """Serves an ASGI app with uvicorn on the running event loop (``start``/``stop``).

    Signals stay with the application: the server installs no handlers of its
    own. ``port`` is the bound port (useful with port 0).
    """

    def __init__(self, app: Callable[..., Awaitable[None]], host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None

    async def start(self, timeout: float = 10.0) -> None:
        """Bind, serve in a task of the running loop, and return once it accepts requests."""
        if self._task is not None:
            return
        server_class = _server_class()
        import uvicorn

        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.requested_port))
        except OSError as exc:
            sock.close()
            raise CommunityKitError(
                f"cannot serve the Telegram webhook on {self.host}:{self.requested_port}: {exc}"
            ) from None
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            interface="asgi3",
            ws="none",
            log_config=None,
            log_level="warning",
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=2,
        )
        server = server_class(config)
        task = asyncio.create_task(server.serve(sockets=[sock]), name="telegram-webhook")
        self._server, self._task, self._sock = server, task, sock
        try:
            async with asyncio.timeout(timeout):
                while not server.started and not task.done():
                    await asyncio.sleep(0.01)
        except TimeoutError:
            await self.stop()
            raise CommunityKitError("the Telegram webhook server did not start") from None
        if task.done():
            await self.stop()
            raise CommunityKitError("the Telegram webhook server stopped as it started")
        self.port = int(sock.getsockname()[1])
        log.info("telegram.webhook_serving", host=self.host, port=self.port)

    async def stop(self) -> None:
        """Stop serving (requests under way finish first). Idempotent."""
        server, task, sock = self._server, self._task, self._sock
        self._server = self._task = self._sock = None
        self.port = None
        try:
            if server is not None and task is not None:
                server.should_exit = True
                await asyncio.wait([task])
                if not task.cancelled() and task.exception() is not None:
                    log.warning("telegram.webhook_server_failed", error=repr(task.exception()))
        finally:
            if sock is not None:
                sock.close()


def _server_class() -> type[uvicorn.Server]:
    try:
        import uvicorn
    except ImportError:
        raise CommunityKitError(
            'serving the Telegram webhook (mode = "webhook") needs uvicorn: '
            "pip install 'communitykit-telegram[webhook]', or serve "
            "adapter.webhook_app with an ASGI server of your own"
        ) from None

    class _Server(uvicorn.Server):
        def capture_signals(self) -> Any:  # the application handles signals, not the server
            import contextlib

            return contextlib.nullcontext()

    return _Server
