"""The webhook: only Telegram (the secret) gets in, each update once, answered once recorded."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from communitykit_telegram import SECRET_HEADER, TelegramAdapter
from structlog.testing import capture_logs
from telegram_helpers import GROUP_ID, MakeAdapter, Recorder
from tests.doubles.telegram import TelegramDouble, apost_update, message_update

from communitykit import CommunityKitError, MessagePosted

pytestmark = pytest.mark.anyio

SECRET = "webhook-Secret_0123456789"


async def webhook_adapter(double: TelegramDouble, make_adapter: MakeAdapter, **kwargs: Any) -> Any:
    kwargs.setdefault("mode", "webhook")
    kwargs.setdefault("webhook_secret", SECRET)
    kwargs.setdefault("webhook_listen", "127.0.0.1:0")
    return make_adapter(double, **kwargs)


def update(update_id: int, text: str = "hello") -> dict[str, Any]:
    return message_update(GROUP_ID, 42, text, update_id=update_id, message_id=update_id)


async def test_served_registered_and_fed_by_telegram(
    double: TelegramDouble, make_adapter: MakeAdapter, recorder: Recorder
) -> None:
    adapter = await webhook_adapter(double, make_adapter)
    await adapter.start(recorder)
    url = f"http://127.0.0.1:{adapter.webhook_port}/telegram"
    await adapter.set_webhook(url)
    hook = double.webhook()
    assert hook is not None
    assert hook["url"] == url
    assert hook["secret_token"] == SECRET
    assert "chat_member" in hook["allowed_updates"]
    # the double posts as Telegram does, with the registered secret (from another thread)
    response = await asyncio.to_thread(double.post_to_webhook, update(1))
    assert response.status_code == 200
    [event] = recorder.events
    assert isinstance(event, MessagePosted)
    assert (event.event_id, event.text) == ("u1", "hello")
    await adapter.stop()
    assert adapter.webhook_port is None


async def test_start_registers_the_configured_url(
    double: TelegramDouble, make_adapter: MakeAdapter, recorder: Recorder
) -> None:
    adapter = await webhook_adapter(
        double, make_adapter, webhook_url="https://bot.example.org/telegram"
    )
    await adapter.start(recorder)
    hook = double.webhook()
    assert hook is not None
    assert hook["url"] == "https://bot.example.org/telegram"


async def test_a_forged_or_missing_secret_is_refused(
    double: TelegramDouble, make_adapter: MakeAdapter, recorder: Recorder
) -> None:
    adapter = await webhook_adapter(double, make_adapter)
    await adapter.start(recorder)
    url = f"http://127.0.0.1:{adapter.webhook_port}/"
    with capture_logs() as logs:
        missing = await apost_update(url, update(1))
        wrong = await apost_update(url, update(2), secret_token="guess")
        prefix = await apost_update(url, update(3), secret_token=SECRET[:-1])
    assert [r.status_code for r in (missing, wrong, prefix)] == [403, 403, 403]
    assert recorder.calls == []
    reasons = [log["reason"] for log in logs if log["event"] == "telegram.webhook_forbidden"]
    assert reasons == ["missing secret header", "wrong secret", "wrong secret"]
    assert SECRET not in repr(logs)
    right = await apost_update(url, update(4), secret_token=SECRET)
    assert right.status_code == 200
    assert [e.event_id for e in recorder.events] == ["u4"]


async def test_a_duplicate_update_is_delivered_once(
    double: TelegramDouble, make_adapter: MakeAdapter, recorder: Recorder
) -> None:
    adapter = await webhook_adapter(double, make_adapter)
    await adapter.start(recorder)
    url = f"http://127.0.0.1:{adapter.webhook_port}/"
    answers = [await apost_update(url, update(7), secret_token=SECRET) for _ in range(3)]
    answers += await asyncio.gather(
        *(apost_update(url, update(8), secret_token=SECRET) for _ in range(5))
    )
    assert {r.status_code for r in answers} == {200}
    assert [e.event_id for e in recorder.events] == ["u7", "u8"]


async def test_a_failed_recording_is_a_500_and_telegram_may_retry(
    double: TelegramDouble, make_adapter: MakeAdapter
) -> None:
    sink = Recorder(fail=1)
    adapter = await webhook_adapter(double, make_adapter)
    await adapter.start(sink)
    url = f"http://127.0.0.1:{adapter.webhook_port}/"
    first = await apost_update(url, update(9), secret_token=SECRET)
    assert first.status_code == 500
    again = await apost_update(url, update(9), secret_token=SECRET)  # Telegram's redelivery
    assert again.status_code == 200
    assert [e.event_id for e in sink.events] == ["u9"]


async def asgi(app: Any, method: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hook") as client:
        return await client.request(method, "/", content=body, headers=headers)


async def test_the_plain_asgi_app(
    double: TelegramDouble, make_adapter: MakeAdapter, recorder: Recorder
) -> None:
    adapter = await webhook_adapter(double, make_adapter)
    app = adapter.webhook_app
    ok = {SECRET_HEADER: SECRET, "content-type": "application/json"}
    body = json.dumps(update(1)).encode()
    # before start: not ready (Telegram tries again later)
    assert (await asgi(app, "POST", body, ok)).status_code == 503
    await adapter.start(recorder)
    assert (await asgi(app, "GET", b"", ok)).status_code == 405
    assert (await asgi(app, "POST", b"[1, 2]", ok)).status_code == 400
    assert (await asgi(app, "POST", b"{not json", ok)).status_code == 400
    assert (await asgi(app, "POST", b"x" * (2 << 20), ok)).status_code == 413
    # a well-formed but meaningless update: 200 (retrying cannot help), logged, skipped
    with capture_logs() as logs:
        assert (await asgi(app, "POST", b'{"update_id": 5, "message": 1}', ok)).status_code == 200
    assert [log["event"] for log in logs] == ["telegram.update_skipped"]
    assert (await asgi(app, "POST", body, ok)).status_code == 200
    assert [e.event_id for e in recorder.events] == ["u1"]


async def test_webhook_mode_needs_a_secret(double: TelegramDouble) -> None:
    with pytest.raises(CommunityKitError, match="needs a webhook_secret"):
        TelegramAdapter("123456:TEST-x", api_base=double.base_url, mode="webhook")
    with pytest.raises(CommunityKitError, match="1-256 characters"):
        TelegramAdapter("123456:TEST-x", mode="webhook", webhook_secret="no spaces allowed")


async def test_a_busy_port_is_a_clear_error(
    double: TelegramDouble, make_adapter: MakeAdapter, recorder: Recorder
) -> None:
    first = await webhook_adapter(double, make_adapter)
    await first.start(recorder)
    second = await webhook_adapter(
        double, make_adapter, webhook_listen=f"127.0.0.1:{first.webhook_port}"
    )
    with pytest.raises(CommunityKitError, match="cannot serve the Telegram webhook"):
        await second.start(Recorder())
    assert not second.running
