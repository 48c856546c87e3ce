"""The Telegram double itself: real HTTP over 127.0.0.1, windows on a manual clock."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.doubles.fixtures import TEST_TOKEN
from tests.doubles.telegram import (
    ManualClock,
    RateLimits,
    TelegramDouble,
    apost_update,
    chat_join_request_update,
    message_update,
    post_update,
    serve_asgi,
)

Factory = Callable[..., TelegramDouble]
Body = dict[str, Any]


class Api:
    """A thin Bot API client for the tests: ``api("sendMessage", chat_id=1, text="hi")``."""

    def __init__(self, double: TelegramDouble, client: httpx.Client, token: str) -> None:
        self.double = double
        self.client = client
        self.token = token

    def __call__(self, method: str, **params: Any) -> tuple[int, Body]:
        response = self.client.post(self.double.api_url(method, self.token), json=params)
        return response.status_code, response.json()

    def ok(self, method: str, **params: Any) -> Any:
        status, body = self(method, **params)
        assert status == 200, body
        assert body["ok"] is True
        return body["result"]


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False, timeout=10) as client:
        yield client


@pytest.fixture
def api(telegram_double: TelegramDouble, client: httpx.Client) -> Api:
    return Api(telegram_double, client, TEST_TOKEN)


@pytest.fixture
def clocked(
    telegram_double_factory: Factory, manual_clock: ManualClock, client: httpx.Client
) -> Api:
    """A double on a manual clock with Telegram's real limits."""
    return Api(telegram_double_factory(clock=manual_clock), client, TEST_TOKEN)


def too_many(retry_after: int) -> Body:
    return {
        "ok": False,
        "error_code": 429,
        "description": f"Too Many Requests: retry after {retry_after}",
        "parameters": {"retry_after": retry_after},
    }


# -- tokens, methods, parameters -------------------------------------------------


def test_a_token_it_was_not_given_is_401(api: Api, client: httpx.Client) -> None:
    other = Api(api.double, client, "654321:not-a-valid-token")
    assert other("getMe") == (401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
    assert other("sendMessage", chat_id=1, text="hi")[0] == 401
    assert api.double.delivered() == []
    assert api.ok("getMe")["is_bot"] is True


def test_several_tokens_are_several_bots(telegram_double_factory: Factory) -> None:
    double = telegram_double_factory(tokens=["111:first", "222:second"])
    with httpx.Client(trust_env=False) as client:
        first, second = Api(double, client, "111:first"), Api(double, client, "222:second")
        assert first.ok("getMe")["id"] == 111
        assert second.ok("getMe")["id"] == 222
        double.push_update(message_update(5, 5, "for the second"), token="222:second")
        assert first.ok("getUpdates") == []
        assert [u["message"]["text"] for u in second.ok("getUpdates")] == ["for the second"]


def test_unknown_methods_are_404_and_names_are_case_insensitive(
    api: Api, client: httpx.Client
) -> None:
    not_found = {"ok": False, "error_code": 404, "description": "Not Found"}
    assert api("sendCarrierPigeon", chat_id=1) == (404, not_found)
    assert client.get(f"{api.double.base_url}/file/bot{TEST_TOKEN}/x").json() == not_found
    assert api.ok("GETME")["username"] == "communitykit_test_bot"


def test_missing_parameters_answer_telegram_descriptions(api: Api) -> None:
    assert api("sendMessage", text="hi") == (
        400,
        {"ok": False, "error_code": 400, "description": "Bad Request: chat_id is empty"},
    )
    assert api("sendMessage", chat_id=-1001)[1]["description"] == (
        "Bad Request: message text is empty"
    )
    assert api("sendMessage", chat_id=-1001, text="  ")[1]["description"] == (
        "Bad Request: message text is empty"
    )
    assert api("sendMessage", chat_id=-1001, text="x" * 4097)[1]["description"] == (
        "Bad Request: message is too long"
    )
    assert api("banChatMember", chat_id=-1001)[1]["description"] == (
        "Bad Request: invalid user_id specified"
    )
    assert api("deleteMessage", chat_id=-1001)[1]["description"] == (
        "Bad Request: message identifier is not specified"
    )
    assert api.double.stats.other_errors == 6
    assert api.double.delivered() == []


def test_form_and_multipart_bodies_are_read(api: Api, client: httpx.Client) -> None:
    entities = [{"type": "bold", "offset": 0, "length": 2}]
    response = client.post(
        api.double.api_url("sendMessage", TEST_TOKEN),
        data={"chat_id": "-1001", "text": "hi there", "entities": json.dumps(entities)},
    )
    assert response.status_code == 200
    assert response.json()["result"]["entities"] == entities
    response = client.post(
        api.double.api_url("sendPhoto", TEST_TOKEN),
        data={"chat_id": "-1001", "caption": "a cat"},
        files={"photo": ("cat.jpg", b"\xff\xd8 not really a jpeg")},
    )
    assert response.status_code == 200, response.text
    assert response.json()["result"]["caption"] == "a cat"
    response = client.get(api.double.api_url("getMe", TEST_TOKEN))
    assert response.json()["ok"] is True
    [text, photo] = api.double.delivered(-1001)
    assert (text.text, text.entities, text.method) == ("hi there", entities, "sendMessage")
    assert (photo.text, photo.method, photo.params["photo"]["filename"]) == (
        "a cat",
        "sendPhoto",
        "cat.jpg",
    )


# -- sending -----------------------------------------------------------------------


def test_send_message_returns_a_message_numbered_per_chat(
    clocked: Api, manual_clock: ManualClock
) -> None:
    first = clocked.ok("sendMessage", chat_id=-1001, text="one")
    second = clocked.ok("sendMessage", chat_id=-1001, text="two")
    elsewhere = clocked.ok("sendMessage", chat_id=42, text="hello")
    assert (first["message_id"], second["message_id"], elsewhere["message_id"]) == (1, 2, 1)
    assert first["chat"] == {"id": -1001, "type": "group", "title": "Chat -1001"}
    assert elsewhere["chat"]["type"] == "private"
    assert first["text"] == "one"
    assert first["from"]["is_bot"] is True
    assert abs(first["date"] - time.time()) < 60
    supergroup = clocked.ok("sendMessage", chat_id=-1001234567890, text="x")
    assert supergroup["chat"]["type"] == "supergroup"
    [one, two] = clocked.double.delivered(-1001)
    assert (one.text, one.message_id, one.at, two.message_id) == ("one", 1, manual_clock(), 2)
    assert clocked.double.stats.delivered == 4


def test_messages_can_be_deleted_once(clocked: Api) -> None:
    sent = clocked.ok("sendMessage", chat_id=-1001, text="oops")
    assert clocked.ok("deleteMessage", chat_id=-1001, message_id=sent["message_id"]) is True
    assert clocked("deleteMessage", chat_id=-1001, message_id=sent["message_id"])[1][
        "description"
    ] == ("Bad Request: message to delete not found")
    assert [c.method for c in clocked.double.calls] == ["deleteMessage"]


def test_moderation_and_admin_methods_answer_true_and_are_recorded(api: Api) -> None:
    group, user = -1001234, 77
    assert api.ok(
        "restrictChatMember", chat_id=group, user_id=user, permissions={"can_send_messages": False}
    )
    assert api("restrictChatMember", chat_id=group, user_id=user)[0] == 400
    for method in (
        "banChatMember",
        "unbanChatMember",
        "approveChatJoinRequest",
        "declineChatJoinRequest",
        "promoteChatMember",
    ):
        assert api.ok(method, chat_id=group, user_id=user) is True
    assert api.ok("setChatAdministratorCustomTitle", chat_id=group, user_id=user, custom_title="x")
    assert api.ok("answerCallbackQuery", callback_query_id="q1", text="done") is True
    assert api("answerCallbackQuery")[0] == 400
    calls = api.double.calls
    assert [c.method for c in calls][:2] == ["restrictChatMember", "banChatMember"]
    assert calls[0].params["permissions"] == {"can_send_messages": False}
    assert [c.params["user_id"] for c in api.double.calls_to("banchatmember")] == [user]


def test_invite_links_are_unique_and_carry_their_name(api: Api) -> None:
    one = api.ok("createChatInviteLink", chat_id=-1001, name="spring campaign")
    two = api.ok("createChatInviteLink", chat_id=-1001, creates_join_request=True)
    assert one["name"] == "spring campaign"
    assert "name" not in two
    assert one["invite_link"] != two["invite_link"]
    assert one["invite_link"].startswith("https://t.me/+")
    assert (one["creates_join_request"], two["creates_join_request"]) == (False, True)
    assert one["creator"]["is_bot"] is True
    assert api("createChatInviteLink", chat_id=-1001, name="x" * 33)[0] == 400


# -- rate limits -----------------------------------------------------------------


def test_a_31st_message_in_one_second_is_429(clocked: Api, manual_clock: ManualClock) -> None:
    start = manual_clock()
    for chat in range(1, 31):  # 30 private chats: only the bot's own limit is in play
        clocked.ok("sendMessage", chat_id=chat, text="hi")
        manual_clock.advance(0.01)
    manual_clock.advance(0.3)  # 0.6 s after the first: it leaves the window in 0.4 s
    assert clocked("sendMessage", chat_id=31, text="hi") == (429, too_many(1))
    [refusal] = clocked.double.refusals
    assert refusal.reason == "rate_limit:bot"
    assert refusal.wait == pytest.approx(0.4)
    assert (refusal.chat_id, refusal.retry_after) == (31, 1)
    assert len(clocked.double.delivered()) == 30
    assert clocked.double.count_429 == 1
    assert clocked.double.count_429_for(31) == 1
    manual_clock.advance(start + 1.0 - manual_clock())  # the first leaves the window
    clocked.ok("sendMessage", chat_id=31, text="hi")
    assert clocked("sendMessage", chat_id=32, text="hi")[0] == 429  # the second has not
    assert clocked.double.max_in_window(None, 1.0) == 30


def test_a_21st_message_to_one_group_in_60_seconds_is_429(
    clocked: Api, manual_clock: ManualClock
) -> None:
    group = -1001
    for _ in range(20):
        clocked.ok("sendMessage", chat_id=group, text="news")
        manual_clock.advance(1.0)
    manual_clock.advance(10.0)  # 30 s after the first: it leaves the window in 30 s
    assert clocked("sendMessage", chat_id=group, text="news") == (429, too_many(30))
    assert clocked.double.refusals[-1].reason == "rate_limit:chat"
    clocked.ok("sendMessage", chat_id=-1002, text="another group is not limited by this one")
    manual_clock.advance(30.0)
    clocked.ok("sendMessage", chat_id=group, text="news")
    assert clocked("sendMessage", chat_id=group, text="news") == (429, too_many(1))
    manual_clock.advance(0.5)  # 0.5 s to go: retry_after rounds up to whole seconds
    assert clocked("sendMessage", chat_id=group, text="news") == (429, too_many(1))
    assert clocked.double.count_429_for(group) == 3
    assert clocked.double.max_in_window(group, 60.0) == 20
    assert len(clocked.double.delivered(group)) == 21


def test_one_message_per_second_to_a_private_chat(clocked: Api, manual_clock: ManualClock) -> None:
    clocked.ok("sendMessage", chat_id=42, text="one")
    assert clocked("sendMessage", chat_id=42, text="two") == (429, too_many(1))
    clocked.ok("sendMessage", chat_id=43, text="someone else")
    manual_clock.advance(0.999)
    assert clocked("sendMessage", chat_id=42, text="two")[0] == 429
    manual_clock.advance(0.001)
    clocked.ok("sendMessage", chat_id=42, text="two")
    assert [d.text for d in clocked.double.delivered(42)] == ["one", "two"]
    assert clocked.double.max_in_window(42, 1.0) == 1
    assert clocked.double.stats.too_many_requests_by_chat == {42: 2}


def test_windows_scale_with_time_scale(
    telegram_double_factory: Factory, manual_clock: ManualClock, client: httpx.Client
) -> None:
    api = Api(telegram_double_factory(clock=manual_clock, time_scale=0.01), client, TEST_TOKEN)
    assert api.double.limits.per_group_window == pytest.approx(0.6)
    for _ in range(20):
        api.ok("sendMessage", chat_id=-5, text="fast")
    assert api("sendMessage", chat_id=-5, text="fast") == (429, too_many(1))  # at least 1
    assert api.double.refusals[-1].wait == pytest.approx(0.6)
    manual_clock.advance(0.6)
    api.ok("sendMessage", chat_id=-5, text="fast")


def test_limits_are_configurable(
    telegram_double_factory: Factory, manual_clock: ManualClock, client: httpx.Client
) -> None:
    limits = RateLimits(per_bot=3, per_bot_window=10.0)
    api = Api(telegram_double_factory(clock=manual_clock, limits=limits), client, TEST_TOKEN)
    for chat in (-1, -2, -3):
        api.ok("sendMessage", chat_id=chat, text="x")
        manual_clock.advance(2.0)
    assert api("sendMessage", chat_id=-4, text="x") == (429, too_many(4))
    unlimited = Api(
        telegram_double_factory(clock=manual_clock, limits=RateLimits.unlimited()),
        client,
        TEST_TOKEN,
    )
    for _ in range(50):
        unlimited.ok("sendMessage", chat_id=42, text="x")


def test_every_send_method_counts_against_the_limits(
    clocked: Api, manual_clock: ManualClock
) -> None:
    clocked.ok("sendPhoto", chat_id=42, photo="AgACAgIAAx0")
    assert clocked("sendMessage", chat_id=42, text="x")[0] == 429
    manual_clock.advance(1.0)
    copy = clocked.ok("copyMessage", chat_id=42, from_chat_id=-1001, message_id=7)
    assert copy == {"message_id": 2}
    assert clocked("forwardMessage", chat_id=42, from_chat_id=-1001, message_id=7)[0] == 429
    assert [d.method for d in clocked.double.delivered(42)] == ["sendPhoto", "copyMessage"]


def test_max_in_window_recomputes_the_densest_window(
    clocked: Api, manual_clock: ManualClock
) -> None:
    start = manual_clock()
    for offset in (0.0, 0.5, 0.99, 1.0, 1.5):
        manual_clock.advance(start + offset - manual_clock())
        clocked.ok("sendMessage", chat_id=-7, text="x")
    clocked.ok("sendMessage", chat_id=-8, text="x")
    double = clocked.double
    assert double.max_in_window(-7, 1.0) == 3  # windows are half-open: 0.0 and 1.0 are apart
    assert double.max_in_window(-7, 0.5) == 2
    assert double.max_in_window(-7, 0.01) == 2  # 0.99 and 1.0
    assert double.max_in_window(-7, 100.0) == 5
    assert double.max_in_window(None, 100.0) == 6
    assert double.max_in_window(-9, 1.0) == 0
    assert double.max_in_window(None, 1.0, token=TEST_TOKEN) == 4  # 1.0, 1.5, 1.5 and 0.99


# -- scripted errors -----------------------------------------------------------------


def test_a_migrated_group_answers_with_its_new_id(clocked: Api) -> None:
    new_id = clocked.double.migrate(-123)
    assert new_id == -1000000000123
    migrated = {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: group chat was upgraded to a supergroup chat",
        "parameters": {"migrate_to_chat_id": -1000000000123},
    }
    assert clocked("sendMessage", chat_id=-123, text="hi") == (400, migrated)
    assert clocked.ok("sendMessage", chat_id=new_id, text="hi")["chat"]["type"] == "supergroup"
    assert clocked("sendMessage", chat_id=-123, text="again") == (400, migrated)
    assert clocked("banChatMember", chat_id=-123, user_id=5) == (400, migrated)
    assert [d.chat_id for d in clocked.double.delivered()] == [new_id]
    assert clocked.double.stats.errors_by_status == {400: 3}


def test_a_blocked_private_chat_answers_403(clocked: Api, manual_clock: ManualClock) -> None:
    clocked.double.block(42)
    blocked = {
        "ok": False,
        "error_code": 403,
        "description": "Forbidden: bot was blocked by the user",
    }
    assert clocked("sendMessage", chat_id=42, text="hi") == (403, blocked)
    assert clocked("sendMessage", chat_id=42, text="hi") == (403, blocked)  # no 429: not sent
    clocked.double.unblock(42)
    clocked.ok("sendMessage", chat_id=42, text="hi")
    clocked.double.block(-1001)
    assert clocked("sendMessage", chat_id=-1001, text="hi")[1]["description"] == (
        "Forbidden: bot was kicked from the group chat"
    )
    assert clocked.double.stats.other_errors == 3
    assert [r.reason for r in clocked.double.refusals] == ["forbidden"] * 3


def test_a_chat_can_be_not_found(clocked: Api) -> None:
    clocked.double.set_chat_not_found(-1001)
    not_found = {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}
    assert clocked("sendMessage", chat_id=-1001, text="hi") == (400, not_found)
    assert clocked("createChatInviteLink", chat_id=-1001) == (400, not_found)
    assert clocked("sendMessage", chat_id="@nobody", text="hi") == (400, not_found)
    clocked.double.add_chat(-1002, "channel", title="News", username="news")
    sent = clocked.ok("sendMessage", chat_id="@news", text="hi")
    assert sent["chat"] == {"id": -1002, "type": "channel", "title": "News", "username": "news"}


def test_the_next_requests_can_fail_with_5xx(api: Api, client: httpx.Client) -> None:
    api.double.fail_next(2, 500)
    api.double.fail_next(1, 502)
    assert api("sendMessage", chat_id=-1, text="x") == (
        500,
        {"ok": False, "error_code": 500, "description": "Internal Server Error"},
    )
    assert api("getMe")[0] == 500
    response = client.post(api.double.api_url("sendMessage", TEST_TOKEN), json={})
    assert response.status_code == 502
    assert response.headers["content-type"] == "text/html"  # as Telegram's proxy answers
    assert "502 Bad Gateway" in response.text
    api.ok("sendMessage", chat_id=-1, text="x")
    assert api.double.stats.errors_by_status == {500: 2, 502: 1}
    assert [d.text for d in api.double.delivered()] == ["x"]


def test_faults_can_target_a_chat_or_methods(api: Api) -> None:
    api.double.fail_next(1, 500, chat_id=-2)
    api.double.fail_next(1, 502, methods=["getUpdates"], html=False)
    api.ok("sendMessage", chat_id=-1, text="other chat")
    assert api("sendMessage", chat_id=-2, text="x")[0] == 500
    assert api("getUpdates") == (
        502,
        {"ok": False, "error_code": 502, "description": "Bad Gateway"},
    )
    api.ok("getUpdates")
    with pytest.raises(ValueError, match="no method"):
        api.double.fail_next(methods=["sendPigeon"])


def test_a_429_can_be_injected_for_a_chat_or_everything(api: Api) -> None:
    api.double.inject_429(17, chat_id=-1)
    assert api("sendMessage", chat_id=-2, text="x")[0] == 200
    assert api("sendMessage", chat_id=-1, text="x") == (429, too_many(17))
    api.double.inject_429(5, count=2)
    assert api("getUpdates")[0] == 200  # getUpdates is spared unless named
    assert api("banChatMember", chat_id=-1, user_id=1) == (429, too_many(5))
    assert api("sendMessage", chat_id=-3, text="x") == (429, too_many(5))
    assert api("sendMessage", chat_id=-1, text="x")[0] == 200
    assert api.double.count_429 == 3
    assert [r.reason for r in api.double.refusals] == ["injected"] * 3
    assert api.double.stats.too_many_requests_by_chat == {-1: 2, -3: 1}


# -- updates -----------------------------------------------------------------------


def test_get_updates_drops_what_an_offset_confirms(api: Api) -> None:
    double = api.double
    ids = [double.push_update(message_update(-1, 5, f"m{n}")) for n in range(3)]
    assert ids == [1, 2, 3]
    assert [u["update_id"] for u in api.ok("getUpdates")] == [1, 2, 3]
    assert [u["update_id"] for u in api.ok("getUpdates")] == [1, 2, 3]  # not confirmed yet
    assert [u["update_id"] for u in api.ok("getUpdates", offset=3)] == [3]
    assert [u["update_id"] for u in double.pending_updates()] == [3]
    assert api.ok("getUpdates", offset=4) == []
    assert double.pending_updates() == []
    assert double.push_update({"update_id": 100, "message": {"text": "given id"}}) == 100
    assert double.push_update(message_update(-1, 5, "next")) == 101
    assert [u["update_id"] for u in api.ok("getUpdates", limit=1)] == [100]
    assert [u["update_id"] for u in api.ok("getUpdates", offset=-1)] == [101]  # keeps the last
    assert [u["update_id"] for u in double.pending_updates()] == [101]


def test_get_updates_honours_allowed_updates(api: Api) -> None:
    api.double.push_update(message_update(-1, 5, "hi"))
    api.double.push_update(chat_join_request_update(-1, 6))
    api.double.push_update({"chat_member": {"chat": {"id": -1}}})  # off unless asked for
    assert [sorted(u)[0] for u in api.ok("getUpdates")] == ["message", "chat_join_request"]
    kinds = api.ok("getUpdates", allowed_updates=["chat_member", "chat_join_request"])
    assert [sorted(u)[0] for u in kinds] == ["chat_join_request", "chat_member"]
    assert len(api.ok("getUpdates")) == 2  # the setting is remembered, as on Telegram


def test_a_long_poll_returns_as_soon_as_an_update_arrives(api: Api) -> None:
    with ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        poll = pool.submit(api.ok, "getUpdates", timeout=30)
        assert api.double.wait_until_polling(timeout=10)
        api.double.push_update(message_update(-1, 5, "wake up"))
        [update] = poll.result(timeout=10)
    assert update["message"]["text"] == "wake up"
    assert time.monotonic() - started < 10


def test_a_long_poll_waits_its_timeout(api: Api) -> None:
    started = time.monotonic()
    assert api.ok("getUpdates", timeout=0.3) == []
    assert time.monotonic() - started >= 0.3


def test_a_second_poller_terminates_the_first(api: Api, client: httpx.Client) -> None:
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(api, "getUpdates", timeout=30)
        assert api.double.wait_until_polling(timeout=10)
        assert api.ok("getUpdates") == []
        status, body = first.result(timeout=10)
    assert status == 409
    assert body["description"].startswith("Conflict: terminated by other getUpdates request")


def test_stopping_answers_pending_long_polls(telegram_double_factory: Factory) -> None:
    double = telegram_double_factory()
    with httpx.Client(trust_env=False, timeout=10) as client, ThreadPoolExecutor(1) as pool:
        poll = pool.submit(Api(double, client, TEST_TOKEN).ok, "getUpdates", timeout=30)
        assert double.wait_until_polling(timeout=10)
        started = time.monotonic()
        double.stop()
        assert poll.result(timeout=10) == []
        assert time.monotonic() - started < 5


# -- webhooks ------------------------------------------------------------------------


class Receiver:
    """An ASGI app that records what is POSTed to it, as an adapter's webhook would."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], Body]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.received.append((headers, json.loads(body)))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def test_set_and_delete_webhook_are_recorded(api: Api) -> None:
    assert api("setWebhook", url="http://127.0.0.1:9/hook", secret_token="s3cret") == (
        200,
        {"ok": True, "result": True, "description": "Webhook was set"},
    )
    assert api.double.webhook() == {"url": "http://127.0.0.1:9/hook", "secret_token": "s3cret"}
    assert api.ok("getWebhookInfo")["url"] == "http://127.0.0.1:9/hook"
    assert api("getUpdates")[0] == 409
    assert api("deleteWebhook", drop_pending_updates=True)[1]["description"] == (
        "Webhook was deleted"
    )
    assert api.double.webhook() is None
    assert api.ok("getUpdates") == []
    assert [c.method for c in api.double.calls_to("setWebhook")] == ["setWebhook"]


def test_updates_can_be_posted_to_a_webhook(api: Api) -> None:
    receiver = Receiver()
    with serve_asgi(receiver) as base:
        update = message_update(-1, 5, "hi", update_id=10)
        assert post_update(f"{base}/hook", update).status_code == 200
        post_update(f"{base}/hook", update, secret_token="s3cret")
        asyncio.run(apost_update(f"{base}/hook", update, secret_token="other"))
        api.ok("setWebhook", url=f"{base}/hook", secret_token="from-set-webhook")
        api.double.post_to_webhook(message_update(-1, 5, "via the double"))
    secrets = [h.get("x-telegram-bot-api-secret-token") for h, _ in receiver.received]
    assert secrets == [None, "s3cret", "other", "from-set-webhook"]
    assert receiver.received[0][1] == update
    assert receiver.received[3][1]["message"]["text"] == "via the double"
    with pytest.raises(ValueError, match="loopback"):
        post_update("https://example.com/hook", update)


# -- lifecycle, async use, logs ------------------------------------------------------------


def test_start_and_stop(client: httpx.Client) -> None:
    double = TelegramDouble(tokens=[TEST_TOKEN])
    with pytest.raises(RuntimeError, match="not running"):
        _ = double.base_url
    with double:
        url = double.base_url
        assert url.startswith("http://127.0.0.1:")
        assert client.get(double.api_url("getMe")).status_code == 200
    with pytest.raises(httpx.ConnectError):
        client.get(f"{url}/bot{TEST_TOKEN}/getMe")
    with double:  # it can start again, on a new port
        assert client.get(double.api_url("getMe")).status_code == 200


def test_it_serves_an_async_caller_and_asgi_transport() -> None:
    async def main() -> tuple[int, int]:
        async with (
            TelegramDouble(tokens=[TEST_TOKEN]) as double,
            httpx.AsyncClient(trust_env=False) as client,
        ):
            served = await client.post(double.api_url("getMe"), json={})
        in_process = TelegramDouble(tokens=[TEST_TOKEN])
        transport = httpx.ASGITransport(app=in_process.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://telegram") as client:
            sent = await client.post(
                f"/bot{TEST_TOKEN}/sendMessage", json={"chat_id": 1, "text": "a"}
            )
        return served.status_code, sent.json()["result"]["message_id"]

    assert asyncio.run(main()) == (200, 1)


def test_reset_forgets_everything(clocked: Api) -> None:
    clocked.ok("sendMessage", chat_id=42, text="x")
    clocked.double.block(43)
    clocked.double.push_update(message_update(1, 1, "x"))
    clocked.double.reset()
    assert clocked.double.deliveries == []
    assert clocked.double.stats.requests == 0
    clocked.ok("sendMessage", chat_id=42, text="again")  # the window is forgotten too
    clocked.ok("sendMessage", chat_id=43, text="unblocked")
    assert clocked.ok("getUpdates") == []


def test_tokens_never_reach_logs_records_or_reprs(
    api: Api,
    client: httpx.Client,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)

    def broken(*args: object) -> None:
        raise RuntimeError("a bug in the double")

    monkeypatch.setattr(api.double, "_other", broken)
    assert api("getMe") == (
        500,
        {"ok": False, "error_code": 500, "description": "Internal Server Error"},
    )
    assert "Telegram double failed on getMe" in caplog.text
    api.ok("sendMessage", chat_id=-1, text="x")
    api("sendMessage", text="no chat")
    Api(api.double, client, "999:wrong-token")("getMe")
    client.get(f"{api.double.base_url}/nothing/here")
    # Only the double's own logs: httpx, the client here, logs every URL (with its token) at INFO.
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    everything = " ".join(
        [
            *ours,
            repr(api.double),
            repr(api.double.deliveries),
            repr(api.double.refusals),
            repr(api.double.stats),
        ]
    )
    assert TEST_TOKEN.split(":")[1] not in everything
    assert "wrong-token" not in everything


def test_messages_pushed_in_updates_can_be_deleted(api: Api) -> None:
    api.double.push_update(message_update(-1001, 5, "spam", message_id=500))
    api.double.push_update({"message": {"chat": {"id": -1001, "type": "group"}, "text": "more"}})
    [_, second] = api.ok("getUpdates")
    assert second["message"]["message_id"] == 501  # filled in: the chat's next id
    assert api.ok("deleteMessage", chat_id=-1001, message_id=500) is True
    assert api.ok("deleteMessage", chat_id=-1001, message_id=501) is True
    assert api("deleteMessage", chat_id=-1001, message_id=499)[0] == 400
    assert api.ok("sendMessage", chat_id=-1001, text="please don't")["message_id"] == 502


def test_each_bot_has_its_own_chat_windows(
    telegram_double_factory: Factory, manual_clock: ManualClock, client: httpx.Client
) -> None:
    double = telegram_double_factory(tokens=["1:a", "2:b"], clock=manual_clock)
    first, second = Api(double, client, "1:a"), Api(double, client, "2:b")
    first.ok("sendMessage", chat_id=42, text="from the first bot")
    second.ok("sendMessage", chat_id=42, text="from the second bot")
    assert first("sendMessage", chat_id=42, text="again")[0] == 429
    assert double.max_in_window(42, 1.0) == 2
    assert double.max_in_window(42, 1.0, token="1:a") == 1


def test_reset_answers_a_pending_long_poll(api: Api) -> None:
    api.double.push_update(message_update(1, 1, "old"))
    api.ok("getUpdates", offset=2)
    with ThreadPoolExecutor(1) as pool:
        poll = pool.submit(api.ok, "getUpdates", timeout=30)
        assert api.double.wait_until_polling(timeout=10)
        api.double.reset()
        assert poll.result(timeout=10) == []
