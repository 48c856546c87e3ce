"""No token in any log line (ours, httpx's, httpcore's), error message or repr."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest
import structlog
from structlog.testing import capture_logs

from communitykit import Secret
from communitykit.http import (
    TELEGRAM,
    Governor,
    HttpClient,
    HttpError,
    Redactor,
    UnknownScope,
    redact_processor,
    redact_text,
    telegram_client,
    telegram_keys,
    wecom_client,
)

from .doubles import BOT_ID, TOKEN, fake_telegram, now, telegram_429, telegram_error
from .vtime import vrun

SECRET_PART = TOKEN.split(":", 1)[1]
ACCESS_TOKEN = "kqpTBpVfMHXXvK7h0lSsH3WQyq-Ev_6O9tnlm8d9wJ6d"


def assert_clean(text: str) -> None:
    assert SECRET_PART not in text
    assert ACCESS_TOKEN not in text


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "httpcore.http11", "httpcore.connection"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def test_a_telegram_session_shows_the_token_nowhere(
    all_logs: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    platform = fake_telegram()
    platform.script(1, telegram_429(2))
    platform.script(2, telegram_error(403, "Forbidden: bot was blocked by the user"))
    platform.script(3, httpx.Response(502), httpx.Response(502), httpx.Response(502))
    platform.script(4, telegram_error(400, "Bad Request: chat", migrate_to_chat_id=-1004))

    def unplugged(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot connect to {request.url}", request=request)

    platform.answer_always(5, unplugged)
    platform.script(6, telegram_error(401, "Unauthorized"))
    shown: list[str] = []

    async def main() -> None:
        client = telegram_client(
            Secret(TOKEN),
            transport=platform.transport(),
            monotonic=now,
            max_retries=2,
        )
        shown.append(repr(client))
        async with client:
            for chat in (1, 2, 3, 4, 5, 6, 7):
                try:
                    response = await client.post(
                        "sendMessage",
                        json={"chat_id": chat, "text": "hi"},
                        keys=telegram_keys(BOT_ID, chat),
                    )
                    shown.extend([repr(response), response.url])
                except HttpError as error:
                    shown.extend([str(error), repr(error), repr(error.args), str(error.url)])
                    shown.append(error.delivery_failure().reason)

    structlog.configure(
        processors=[structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
    )
    with capture_logs() as events:
        vrun(main)
    assert len(shown) > 20
    assert any("bot***" in text for text in shown)
    for text in shown:
        assert_clean(text)
    assert any("/bot***/sendMessage" in record.getMessage() for record in all_logs.records)
    for record in all_logs.records:
        assert_clean(record.getMessage())
    assert_clean(all_logs.text)
    assert {"http.response", "http.rate_limited", "http.retrying", "http.auth_failed"} <= {
        event["event"] for event in events
    }
    assert_clean(repr(events))
    output = capsys.readouterr()
    assert_clean(output.out + output.err)


def test_httpcore_debug_lines_are_redacted(all_logs: pytest.LogCaptureFixture) -> None:
    client = telegram_client(Secret(TOKEN), transport=httpx.MockTransport(lambda r: None))  # type: ignore[arg-type]
    logging.getLogger("httpcore.http11").debug(
        "send_request_headers.started request=%s", f"/bot{TOKEN}/getMe"
    )
    logging.getLogger("httpcore.connection").debug("failed", exc_info=ValueError(TOKEN))
    assert "/bot***/getMe" in all_logs.text
    assert_clean(all_logs.text)
    vrun(client.aclose)


def test_wecom_query_secrets_are_redacted(all_logs: pytest.LogCaptureFixture) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"errcode": 40014, "errmsg": "invalid access_token"})

    async def main() -> str:
        async with wecom_client(
            secrets=[Secret(ACCESS_TOKEN)], transport=httpx.MockTransport(handler), monotonic=now
        ) as client:
            try:
                await client.post(
                    "cgi-bin/message/send",
                    params={"access_token": ACCESS_TOKEN},
                    json={"touser": "zhangsan"},
                    keys=[("member", "zhangsan")],
                )
            except HttpError as error:
                return f"{error} {error!r} {error.url}"
        return ""

    shown = vrun(main)
    assert "access_token=***" in shown
    assert_clean(shown)
    assert_clean(all_logs.text)


def test_token_shaped_text_is_redacted_even_when_nobody_registered_it() -> None:
    other = "987654321:ZZHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
    assert redact_text(f"https://api.telegram.org/bot{other}/getMe") == (
        "https://api.telegram.org/bot***/getMe"
    )
    assert redact_text("GET /send?key=abc-123&x=1") == "GET /send?key=***&x=1"
    assert redact_text("Authorization: Bot MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ") == (
        "Authorization: Bot ***"
    )


def test_a_redactor_knows_the_url_encoded_forms_and_each_secret_once() -> None:
    redactor = Redactor([Secret("a b/c+d"), Secret("a b/c+d")])
    assert repr(redactor) == "Redactor(1 secrets)"
    assert redactor.redact("x=a%20b%2Fc%2Bd y=a+b%2Fc%2Bd z=a b/c+d") == "x=*** y=*** z=***"
    with pytest.raises(TypeError, match="Secret"):
        redactor.add("plain")  # type: ignore[arg-type]


def test_the_structlog_processor_redacts_nested_values() -> None:
    redactor = Redactor([Secret(ACCESS_TOKEN)])
    redactor.register()
    try:
        event: dict[str, Any] = {
            "event": f"calling ?access_token={ACCESS_TOKEN}",
            "nested": {"urls": [f"/bot{TOKEN}/x"], "n": 3},
            "error": ValueError(ACCESS_TOKEN),
        }
        cleaned = redact_processor(None, "info", event)
        assert_clean(repr(cleaned))
        assert cleaned["nested"]["n"] == 3
    finally:
        redactor.unregister()


def test_keys_refuse_secrets() -> None:
    with pytest.raises(UnknownScope, match="secret"):
        Governor(TELEGRAM).lease([("bot", Secret(TOKEN))])  # type: ignore[list-item]


def test_a_client_unregisters_its_secrets_when_closed() -> None:
    custom = "not-token-shaped-secret-value"

    async def main() -> None:
        client = HttpClient("https://example.test", limits=TELEGRAM, secrets=[Secret(custom)])
        assert redact_text(custom) == "***"
        await client.aclose()
        await asyncio.sleep(0)

    vrun(main)
    assert redact_text(custom) == custom
