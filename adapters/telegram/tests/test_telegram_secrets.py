"""The token and the webhook secret appear in no log line, error or repr."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from structlog.testing import capture_logs
from telegram_helpers import GROUP_ID, Host, MakeAdapter, Recorder, act, eventually
from tests.doubles.telegram import RateLimits, TelegramDouble, apost_update, message_update

from communitykit import (
    CommunityKitError,
    DeliveryFailed,
    PlatformSettings,
    Secret,
    SendDirectMessage,
    SendMessage,
)

pytestmark = pytest.mark.anyio

# Not token-shaped (the secret part is short): only the registered redactor can hide it.
TOKEN = "654321:Zq-sh0rt-s3cret"
SECRET_PART = TOKEN.split(":", 1)[1]
WEBHOOK_SECRET = "hook-S3cret-value"


def assert_clean(text: str) -> None:
    assert SECRET_PART not in text
    assert WEBHOOK_SECRET not in text


async def test_a_whole_session_shows_no_secret(
    telegram_double_factory: Callable[..., TelegramDouble],
    make_adapter: MakeAdapter,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "httpcore.http11", "httpcore.connection", "uvicorn"):
        caplog.set_level(logging.DEBUG, logger=name)
    double = telegram_double_factory(tokens=[TOKEN], limits=RateLimits.unlimited())
    shown: list[str] = []
    recorder = Recorder(fail=1)
    host = Host()
    with capture_logs() as logs:
        poller = make_adapter(double, token=TOKEN, max_retries=1)
        poller.host = host
        shown += [repr(poller), repr(poller.client), repr(poller.webhook_app)]
        double.push_update(message_update(GROUP_ID, 42, "hi"))
        double.push_update({"message": "broken"})
        await poller.start(recorder)  # the first batch fails: logged with its error
        await eventually(lambda: recorder.events)

        double.block(77)
        double.fail_next(2, 500, chat_id=GROUP_ID)
        new_id = double.migrate(-4001)
        for action in (
            act(SendDirectMessage, group=None, user="77", text="blocked"),
            act(SendMessage, text="5xx twice"),
            act(SendMessage, group="-4001", text="moved"),
            act(SendMessage, text=""),
        ):
            try:
                receipt = await poller.perform(action)
                shown.append(repr(receipt))
            except DeliveryFailed as failure:
                shown += [str(failure), repr(failure), failure.reason]
        assert host.moves == [("telegram", "-4001", str(new_id))]
        await poller.stop()

        hook = make_adapter(
            double,
            token=TOKEN,
            mode="webhook",
            webhook_secret=WEBHOOK_SECRET,
            webhook_listen="127.0.0.1:0",
        )
        await hook.start(Recorder())
        url = f"http://127.0.0.1:{hook.webhook_port}/hook"
        await hook.set_webhook(url)
        await apost_update(url, message_update(GROUP_ID, 42, "forged"), secret_token="guess")
        await apost_update(url, message_update(GROUP_ID, 42, "real"), secret_token=WEBHOOK_SECRET)
        await hook.stop()
        await poller.close()
        await hook.close()

    assert len(shown) > 8
    for text in shown:
        assert_clean(text)
    events = {log["event"] for log in logs}
    assert {
        "telegram.sink_failed",
        "telegram.update_skipped",
        "telegram.group_moved",
        "telegram.webhook_forbidden",
        "http.retrying",
        "http.target_unreachable",
    } <= events
    assert_clean(repr(logs))
    assert any("/bot***/" in record.getMessage() for record in caplog.records)  # httpx's lines
    for record in caplog.records:
        assert_clean(record.getMessage())
    assert_clean(caplog.text)
    output = capsys.readouterr()
    assert_clean(output.out + output.err)


async def test_a_refused_token_is_never_shown(
    double: TelegramDouble, make_adapter: MakeAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    adapter = make_adapter(double, token=TOKEN)  # the double does not know this token
    with capture_logs() as logs:
        with pytest.raises(CommunityKitError) as refused:
            await adapter.start(Recorder())
        with pytest.raises(DeliveryFailed) as failed:
            await adapter.perform(act(SendMessage, text="hi"))
    for text in (str(refused.value), repr(refused.value), str(failed.value), repr(logs)):
        assert_clean(text)
    assert_clean(caplog.text)
    assert "token was refused" in str(refused.value)


def test_settings_errors_never_show_secrets() -> None:
    from communitykit_telegram import TelegramAdapter

    settings = PlatformSettings(
        name="telegram",
        token=Secret(TOKEN),
        options={"webhook_secret": 12, "mode": "webhook"},
    )
    with pytest.raises(CommunityKitError) as bad:
        TelegramAdapter.from_settings(settings)
    assert_clean(str(bad.value))
    spaced: dict[str, Any] = {"webhook_secret": Secret("has spaces " + WEBHOOK_SECRET)}
    with pytest.raises(CommunityKitError) as wrong:
        TelegramAdapter.from_settings(
            PlatformSettings(name="telegram", token=Secret(TOKEN), options=spaced)
        )
    assert_clean(str(wrong.value))
