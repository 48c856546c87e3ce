"""Discord: buckets learned from headers, the global limit before sending, the breaker."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import attrs
import httpx
import pytest

from communitykit import Secret
from communitykit.http import (
    CircuitBreaker,
    CircuitOpen,
    HttpClient,
    Priority,
    RateLimit,
    RequestFailed,
    TargetUnreachable,
    discord_client,
    discord_keys,
)

from .doubles import WindowExceeded, now
from .vtime import vrun

TOKEN = "MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs"
APP = "198622483471925248"
MESSAGES = "/channels/{channel_id}/messages"
MESSAGE = "/channels/{channel_id}/messages/{message_id}"


@attrs.define
class Window:
    start: float = -1e9
    used: int = 0


class FakeDiscord:
    """Fixed-window buckets per (bucket, channel) and a strict global 50/s, like Discord.

    Exceeding either fails the test (:class:`WindowExceeded`): where Discord
    would answer 429, the client has already failed.
    """

    def __init__(self, *, limit: int = 5, window: float = 5.0) -> None:
        self.limit = limit
        self.window = window
        self.buckets: dict[tuple[str, str], Window] = {}
        self.global_sends: deque[float] = deque()
        self.received: list[tuple[float, str, str, int]] = []
        self.scripted: dict[str, list[httpx.Response]] = {}

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def use_elsewhere(self, channel: str, count: int) -> None:
        """Another process spends ``count`` of the channel's bucket."""
        state = self.buckets.setdefault(("messages", channel), Window())
        if now() >= state.start + self.window:
            state.start, state.used = now(), 0
        state.used += count

    def handle(self, request: httpx.Request) -> httpx.Response:
        at = now()
        parts = request.url.path.split("/")  # "", "api", "v10", "channels", id, "messages", ...
        channel = parts[4]
        status = self._answer(request, at, channel)
        self.received.append((at, request.method, channel, status.status_code))
        return status

    def _answer(self, request: httpx.Request, at: float, channel: str) -> httpx.Response:
        self.global_sends.append(at)
        while self.global_sends[0] < at - 1.0 - 1e-9:
            self.global_sends.popleft()
        if len(self.global_sends) > 50:
            raise WindowExceeded(f"more than 50 requests in 1s: {list(self.global_sends)}")
        state = self.buckets.setdefault(("messages", channel), Window())
        if at >= state.start + self.window:
            state.start, state.used = at, 0
        reset_after = state.start + self.window - at
        headers = {
            "X-RateLimit-Bucket": "messages",
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
        }
        if state.used >= self.limit:
            raise WindowExceeded(f"bucket of channel {channel} used up, resets in {reset_after}s")
        state.used += 1
        headers["X-RateLimit-Remaining"] = str(self.limit - state.used)
        scripted = self.scripted.get(channel)
        if scripted:
            answer = scripted.pop(0)
            return httpx.Response(
                answer.status_code, content=answer.content, headers={**answer.headers, **headers}
            )
        return httpx.Response(200, json={"id": "1", "channel_id": channel}, headers=headers)


def make_client(fake: FakeDiscord, **options: Any) -> HttpClient:
    return discord_client(
        Secret(TOKEN),
        api_base="https://discord.test/api/v10",
        transport=fake.transport(),
        monotonic=now,
        **options,
    )


async def post(client: HttpClient, channel: int, priority: Priority = Priority.NORMAL) -> Any:
    keys = discord_keys(APP, "POST", MESSAGES, channel, target=("channel", channel))
    response = await client.post(
        f"channels/{channel}/messages", json={"content": "hi"}, keys=keys, priority=priority
    )
    return response.result


async def edit(client: HttpClient, channel: int) -> Any:
    keys = discord_keys(APP, "PATCH", MESSAGE, channel, target=("channel", channel))
    response = await client.request(
        "PATCH", f"channels/{channel}/messages/9", json={"content": "edited"}, keys=keys
    )
    return response.result


def test_a_bucket_is_learned_from_the_headers_and_run_at_its_rate() -> None:
    fake = FakeDiscord(limit=5, window=5.0)

    async def main() -> None:
        async with make_client(fake) as client:
            await asyncio.gather(*(post(client, 1) for _ in range(21)))

    vrun(main)
    times = [at for at, *_ in fake.received]
    rate = 20 / (times[-1] - times[0])
    assert rate >= 0.95 * 5 / 5.0, rate


def test_routes_sharing_a_bucket_are_paced_together_once_learned() -> None:
    fake = FakeDiscord(limit=5, window=5.0)

    async def main() -> None:
        async with make_client(fake) as client:
            await post(client, 1)
            await edit(client, 1)  # same bucket hash: now known for both routes
            await asyncio.sleep(10)
            await asyncio.gather(
                *(post(client, 1) for _ in range(10)), *(edit(client, 1) for _ in range(10))
            )

    vrun(main)


def test_a_bucket_used_up_elsewhere_is_paused_until_it_resets() -> None:
    fake = FakeDiscord(limit=5, window=5.0)

    async def main() -> None:
        async with make_client(fake) as client:
            await post(client, 1)
            await asyncio.sleep(10)
            fake.use_elsewhere("1", 4)  # a second worker on the same token
            await asyncio.gather(*(post(client, 1) for _ in range(6)))

    vrun(main)
    assert len(fake.received) == 7


def test_the_global_limit_is_kept_before_sending() -> None:
    fake = FakeDiscord()

    async def main() -> None:
        async with make_client(fake) as client:
            await asyncio.gather(*(post(client, channel) for channel in range(300)))

    vrun(main)
    times = sorted(at for at, *_ in fake.received)
    assert 299 / (times[-1] - times[0]) >= 0.95 * 50


def test_a_global_429_pauses_everything() -> None:
    fake = FakeDiscord()
    fake.scripted["1"] = [
        httpx.Response(
            429,
            json={"message": "You are being rate limited.", "retry_after": 2.5, "global": True},
            headers={"X-RateLimit-Global": "true", "X-RateLimit-Scope": "global"},
        )
    ]

    async def main() -> None:
        async with make_client(fake) as client:
            await asyncio.gather(*(post(client, channel) for channel in range(1, 60)))

    vrun(main)
    limited_at = next(at for at, _, _, status in fake.received if status == 429)
    after = [at for at, *_ in fake.received if at > limited_at]
    assert min(after) >= limited_at + 2.5
    assert sum(1 for *_, status in fake.received if status == 200) == 59


def test_the_breaker_opens_long_before_the_invalid_request_budget_is_spent() -> None:
    fake = FakeDiscord()
    for channel in range(100):
        fake.scripted[str(channel)] = [
            httpx.Response(403, json={"message": "Missing Access", "code": 50001})
        ]
    breaker = CircuitBreaker(RateLimit(20, 600.0), threshold=0.5)

    async def main() -> None:
        async with make_client(fake, breaker=breaker) as client:
            results = await asyncio.gather(
                *(post(client, channel) for channel in range(100)), return_exceptions=True
            )
            unreachable = [r for r in results if isinstance(r, TargetUnreachable)]
            stopped = [r for r in results if isinstance(r, CircuitOpen)]
            assert len(unreachable) == 10  # the breaker opened at the 10th
            assert len(stopped) == 90
            assert all(0 < error.retry_after <= 600 for error in stopped if error.retry_after)
            assert len(fake.received) == 10
            await asyncio.sleep(601)
            assert await post(client, 500)  # closed again after one window

    vrun(main)


def test_the_default_breaker_takes_discords_budget() -> None:
    client = make_client(FakeDiscord())
    assert client.breaker is not None
    assert client.breaker.budget == RateLimit(10_000, 600.0)
    assert client.breaker.trip_at == 5_000


def test_a_shared_scope_429_does_not_count_as_invalid() -> None:
    fake = FakeDiscord()
    fake.scripted["1"] = [
        httpx.Response(
            429,
            json={"message": "shared", "retry_after": 0.5, "global": False},
            headers={"X-RateLimit-Scope": "shared"},
        )
    ] * 3
    breaker = CircuitBreaker(RateLimit(2, 600.0), threshold=1.0)

    async def main() -> None:
        async with make_client(fake, breaker=breaker) as client:
            assert await post(client, 1)
            assert breaker.count(now()) == 0

    vrun(main)


def test_an_unknown_message_fails_but_an_unknown_channel_is_unreachable() -> None:
    fake = FakeDiscord()
    fake.scripted["1"] = [httpx.Response(404, json={"message": "Unknown Message", "code": 10008})]
    fake.scripted["2"] = [httpx.Response(404, json={"message": "Unknown Channel", "code": 10003})]

    async def main() -> None:
        async with make_client(fake) as client:
            with pytest.raises(RequestFailed, match="Unknown Message") as failed:
                await edit(client, 1)
            assert failed.value.code == 10008
            assert await post(client, 1)  # channel 1 is fine
            with pytest.raises(TargetUnreachable, match="Unknown Channel"):
                await post(client, 2)
            assert client.unreachable == {("channel", 2)}

    vrun(main)


def test_the_authorization_header_carries_the_token_and_the_user_agent() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    async def main() -> None:
        async with discord_client(
            Secret(TOKEN), transport=httpx.MockTransport(handler), monotonic=now
        ) as client:
            await client.get("gateway/bot", keys=discord_keys(APP, "GET", "/gateway/bot"))

    vrun(main)
    assert seen[0].headers["authorization"] == f"Bot {TOKEN}"
    assert seen[0].headers["user-agent"].startswith("DiscordBot (")
    assert str(seen[0].url) == "https://discord.com/api/v10/gateway/bot"
