"""The client against strict fake platforms, on virtual time: limits, 429s, failures."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from communitykit import PermanentFailure, Secret, TransientFailure
from communitykit.http import (
    TELEGRAM,
    AuthFailed,
    ChatMigrated,
    Governor,
    HttpClient,
    Priority,
    RequestFailed,
    TargetUnreachable,
    telegram_bot_id,
    telegram_client,
    telegram_keys,
)

from .doubles import (
    BOT_ID,
    TOKEN,
    StrictPlatform,
    fake_telegram,
    now,
    telegram_429,
    telegram_error,
)
from .vtime import vrun


def client_for(platform: StrictPlatform, **options: Any) -> HttpClient:
    return telegram_client(
        Secret(TOKEN),
        api_base="https://api.telegram.test",
        transport=platform.transport(),
        monotonic=now,
        **options,
    )


async def send(
    client: HttpClient, chat_id: int, text: str = "hi", priority: Priority = Priority.NORMAL
) -> Any:
    response = await client.post(
        "sendMessage",
        json={"chat_id": chat_id, "text": text},
        keys=telegram_keys(BOT_ID, chat_id),
        priority=priority,
    )
    return response.result


def test_a_broadcast_runs_at_the_limit_with_no_429() -> None:
    """300 private chats and 5 groups with 30 messages each, all at once."""
    platform = fake_telegram()

    async def main() -> None:
        async with client_for(platform) as client:
            await asyncio.gather(
                *(send(client, 1000 + n) for n in range(300)),
                *(send(client, -(100 + g), f"g{i}") for g in range(5) for i in range(30)),
            )

    vrun(main)
    assert len(platform.delivered()) == 450
    private = sorted(call.at for call in platform.delivered() if call.payload["chat_id"] > 0)
    assert 299 / (private[-1] - private[0]) >= 0.95 * 30
    for group in range(5):
        times = [call.at for call in platform.to(-(100 + group))]
        assert 29 / ((times[-1] - times[0]) / 60) >= 0.95 * 20


def test_the_bot_lane_runs_at_no_less_than_95_percent_of_30_per_second() -> None:
    platform = fake_telegram()

    async def main() -> float:
        async with client_for(platform) as client:
            await send(client, 1)
            t0 = now()
            await asyncio.gather(*(send(client, 1000 + n) for n in range(600)))
            return 600 / (now() - t0)

    rate = vrun(main)
    assert rate >= 0.95 * 30, rate


def test_a_429_pauses_only_its_chat_and_the_message_is_delivered_exactly_once() -> None:
    platform = fake_telegram()
    platform.script(1, telegram_429(5))

    async def main() -> dict[int, float]:
        async with client_for(platform) as client:
            t0 = now()
            done: dict[int, float] = {}

            async def timed(chat_id: int) -> None:
                await send(client, chat_id)
                done[chat_id] = now() - t0

            await asyncio.gather(timed(1), *(timed(n) for n in range(2, 12)))
            return done

    done = vrun(main)
    assert done[1] >= 5.0
    assert all(done[n] < 1.0 for n in range(2, 12))  # the other chats did not wait
    to_one = platform.to(1)
    assert [call.status for call in to_one] == [429, 200]
    assert len(platform.delivered()) == 11


def test_429s_are_never_given_up() -> None:
    platform = fake_telegram()
    platform.script(1, *[telegram_429(30) for _ in range(10)])

    async def main() -> Any:
        async with client_for(platform, max_retries=1) as client:
            return await client.post(
                "sendMessage", json={"chat_id": 1, "text": "x"}, keys=telegram_keys(BOT_ID, 1)
            )

    response = vrun(main)
    assert response.attempts == 11
    assert response.elapsed >= 300


def test_a_401_stops_everything_until_reset() -> None:
    platform = fake_telegram()
    platform.script(1, telegram_error(401, "Unauthorized"))

    async def main() -> None:
        async with client_for(platform) as client:
            waiting = [asyncio.create_task(send(client, 1)) for _ in range(3)]
            with pytest.raises(AuthFailed, match="Unauthorized"):
                await waiting[0]
            for task in waiting[1:]:  # waiting for chat 1's next slot: woken and failed
                with pytest.raises(AuthFailed):
                    await task
            calls = len(platform.received)
            with pytest.raises(AuthFailed, match="refused earlier"):
                await send(client, 2)
            assert len(platform.received) == calls  # failed fast: no network call
            assert client.auth_failed
            client.reset()
            assert await send(client, 2)

    vrun(main)


def test_a_403_marks_that_chat_unreachable_and_the_others_go_on() -> None:
    platform = fake_telegram()
    platform.script(1, telegram_error(403, "Forbidden: bot was blocked by the user"))

    async def main() -> None:
        async with client_for(platform) as client:
            with pytest.raises(TargetUnreachable, match="blocked by the user") as caught:
                await send(client, 1)
            assert caught.value.targets == (("chat", 1),)
            assert caught.value.status == 403
            failure = caught.value.delivery_failure()
            assert isinstance(failure, PermanentFailure) and failure.unreachable
            calls = len(platform.received)
            with pytest.raises(TargetUnreachable, match="unreachable"):
                await send(client, 1)
            assert len(platform.received) == calls
            assert await send(client, 2)
            assert client.unreachable == {("chat", 1)}
            client.mark_reachable(("chat", 1))
            assert await send(client, 1)

    vrun(main)


def test_5xx_and_network_errors_are_retried_a_bounded_number_of_times() -> None:
    platform = fake_telegram()
    bad_gateway = httpx.Response(502, text="<html>Bad Gateway</html>")
    platform.script(1, bad_gateway, bad_gateway)
    platform.answer_always(2, bad_gateway)

    def unplugged(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    platform.script(3, unplugged)

    async def main() -> None:
        async with client_for(platform, max_retries=3) as client:
            response = await client.post(
                "sendMessage", json={"chat_id": 1, "text": "x"}, keys=telegram_keys(BOT_ID, 1)
            )
            assert response.attempts == 3
            with pytest.raises(RequestFailed, match="gave up after 4 attempts: 502") as caught:
                await send(client, 2)
            assert caught.value.transient
            assert isinstance(caught.value.delivery_failure(), TransientFailure)
            assert len(platform.to(2)) == 4
            response = await client.post(
                "sendMessage", json={"chat_id": 3, "text": "x"}, keys=telegram_keys(BOT_ID, 3)
            )
            assert response.attempts == 2

    vrun(main)


def test_other_4xx_fail_at_once_with_the_platforms_description() -> None:
    platform = fake_telegram()
    platform.script(1, telegram_error(400, "Bad Request: message text is empty"))

    async def main() -> None:
        async with client_for(platform) as client:
            with pytest.raises(RequestFailed, match="message text is empty") as caught:
                await send(client, 1, "")
            assert not caught.value.transient
            assert caught.value.code == 400
            assert len(platform.to(1)) == 1

    vrun(main)


def test_a_migrated_group_raises_chat_migrated_with_the_new_id() -> None:
    platform = fake_telegram()
    platform.script(
        -5,
        telegram_error(
            400,
            "Bad Request: group chat was upgraded to a supergroup chat",
            migrate_to_chat_id=-1001234,
        ),
    )

    async def main() -> None:
        async with client_for(platform) as client:
            with pytest.raises(ChatMigrated) as caught:
                await send(client, -5)
            assert caught.value.new_chat_id == -1001234
            assert caught.value.target == ("group", -5)
            with pytest.raises(ChatMigrated):  # fails fast from now on
                await send(client, -5)
            assert len(platform.to(-5)) == 1
            assert await send(client, -1001234)

    vrun(main)


def test_a_reply_overtakes_a_running_broadcast() -> None:
    platform = fake_telegram()

    async def main() -> tuple[float, int]:
        async with client_for(platform) as client:
            broadcast = [
                asyncio.create_task(send(client, 1000 + n, priority=Priority.LOW))
                for n in range(200)
            ]
            await asyncio.sleep(1.0)
            t0 = now()
            await send(client, 7, "reply", priority=Priority.HIGH)
            waited = now() - t0
            left = sum(not task.done() for task in broadcast)
            await asyncio.gather(*broadcast)
            return waited, left

    waited, left = vrun(main)
    assert waited <= 1 / 29  # the next slot of the bot's bucket
    assert left > 150


def test_messages_to_one_chat_arrive_in_order_even_through_retries() -> None:
    platform = fake_telegram()
    platform.script(1, httpx.Response(500), telegram_429(2))

    async def main() -> None:
        async with client_for(platform) as client:
            await asyncio.gather(*(send(client, 1, f"m{i}") for i in range(5)))

    vrun(main)
    delivered = [call.payload["text"] for call in platform.delivered()]
    assert delivered == [f"m{i}" for i in range(5)]


def test_two_clients_of_one_token_share_one_governor() -> None:
    platform = fake_telegram()

    async def main() -> None:
        governor = Governor(TELEGRAM, monotonic=now)
        first = client_for(platform, limits=governor)
        second = client_for(platform, limits=governor)
        async with first, second:
            await asyncio.gather(
                *(send(first, 1000 + n) for n in range(100)),
                *(send(second, 2000 + n) for n in range(100)),
            )

    vrun(main)


def test_a_waiting_request_fails_when_the_client_closes() -> None:
    platform = fake_telegram()

    async def main() -> None:
        client = client_for(platform)
        await send(client, 1)
        waiting = asyncio.create_task(send(client, 1))
        await asyncio.sleep(0.1)
        await client.aclose()
        with pytest.raises(RequestFailed, match="closed"):
            await waiting
        with pytest.raises(RuntimeError, match="closed"):
            await send(client, 2)

    vrun(main)


def test_the_telegram_helpers() -> None:
    assert telegram_bot_id(Secret(TOKEN)) == BOT_ID
    with pytest.raises(ValueError, match="bot id"):
        telegram_bot_id(Secret("nonsense"))
    assert telegram_keys("1", 42) == (("bot", "1"), ("chat", 42))
    assert telegram_keys("1", "-100200") == (("bot", "1"), ("group", -100200))
    assert telegram_keys("1", "@news", paid=True) == (("paid", "1"), ("group", "@news"))


def test_an_unreadable_response_fails_with_request_failed() -> None:
    platform = fake_telegram()
    platform.script(
        1,
        lambda request: httpx.Response(
            200, headers={"Content-Encoding": "gzip"}, stream=httpx.ByteStream(b"not gzip")
        ),
    )

    async def main() -> None:
        async with client_for(platform) as client:
            with pytest.raises(RequestFailed, match="DecodingError") as caught:
                await send(client, 1)
            assert "bot***" in str(caught.value)

    vrun(main)


def test_a_long_poll_gets_its_own_timeout_and_is_not_paced() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return httpx.Response(200, json={"ok": True, "result": []})

    async def main() -> list[float]:
        async with telegram_client(
            Secret(TOKEN), transport=httpx.MockTransport(handler), monotonic=now, timeout=10
        ) as client:
            t0 = now()
            times = []
            for _ in range(3):
                await client.post("getUpdates", json={"timeout": 50}, timeout=60)
                times.append(now() - t0)
            await client.post("getMe")
            return times

    assert vrun(main) == [0, 0, 0]
    assert seen[0]["read"] == 60
    assert seen[-1]["read"] == 10
