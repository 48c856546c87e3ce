"""WeCom group robots: 20 messages a minute each, errors in ``errcode``."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from communitykit import Secret
from communitykit.http import (
    AuthFailed,
    HttpClient,
    Key,
    RequestFailed,
    TargetUnreachable,
    wecom_client,
)

from .doubles import StrictPlatform, now
from .vtime import vrun

ROBOTS = {"ops": Secret("693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"), "news": Secret("5c1d-news-key")}


def fake_wecom() -> StrictPlatform:
    names = {secret.reveal(): name for name, secret in ROBOTS.items()}

    def robot(request: httpx.Request, payload: Any) -> str:
        return names.get(request.url.params.get("key", ""), "?")

    return StrictPlatform(
        {"robot": (20, 60.0)},
        lambda request, payload: [("robot", robot(request, payload))],
        robot,
        lambda request, payload: httpx.Response(200, json={"errcode": 0, "errmsg": "ok"}),
    )


def client_for(platform: StrictPlatform) -> HttpClient:
    return wecom_client(
        api_base="https://qyapi.weixin.test",
        secrets=ROBOTS.values(),
        transport=platform.transport(),
        monotonic=now,
    )


async def post(client: HttpClient, robot: str, text: str = "hi") -> Any:
    keys: list[Key] = [("robot", robot)]  # the robot's name: never its key
    response = await client.post(
        "cgi-bin/webhook/send",
        params={"key": ROBOTS[robot].reveal()},
        json={"msgtype": "text", "text": {"content": text}},
        keys=keys,
    )
    return response.result


def errcode(code: int, message: str) -> httpx.Response:
    return httpx.Response(200, json={"errcode": code, "errmsg": message})


def test_a_robot_posts_at_20_a_minute() -> None:
    platform = fake_wecom()

    async def main() -> None:
        async with client_for(platform) as client:
            await asyncio.gather(*(post(client, "ops", f"m{i}") for i in range(41)))

    vrun(main)
    times = [call.at for call in platform.received]
    assert 40 / ((times[-1] - times[0]) / 60) >= 0.95 * 20


def test_a_frequency_limit_pauses_that_robot_for_a_minute() -> None:
    platform = fake_wecom()
    platform.script("ops", errcode(45009, "api freq out of limit"))

    async def main() -> dict[str, float]:
        async with client_for(platform) as client:
            t0 = now()
            done: dict[str, float] = {}

            async def timed(robot: str) -> None:
                await post(client, robot)
                done[robot] = now() - t0

            await asyncio.gather(timed("ops"), timed("news"))
            return done

    done = vrun(main)
    assert done["ops"] >= 60
    assert done["news"] < 1


def test_an_invalid_robot_key_marks_that_robot_unreachable() -> None:
    platform = fake_wecom()
    platform.script("ops", errcode(93000, "invalid webhook url"))

    async def main() -> None:
        async with client_for(platform) as client:
            with pytest.raises(TargetUnreachable, match="invalid webhook url"):
                await post(client, "ops")
            assert await post(client, "news")

    vrun(main)


def test_an_expired_access_token_stops_the_client_until_reset() -> None:
    platform = fake_wecom()
    platform.script("ops", errcode(42001, "access_token expired"))

    async def main() -> None:
        async with client_for(platform) as client:
            with pytest.raises(AuthFailed, match="access_token expired") as caught:
                await post(client, "ops")
            assert caught.value.code == 42001
            with pytest.raises(AuthFailed):
                await post(client, "news")
            client.reset()  # after refreshing the token (and add_secret(new_token))
            assert await post(client, "news")

    vrun(main)


def test_a_busy_system_is_retried_and_other_errors_are_reported() -> None:
    platform = fake_wecom()
    platform.script("ops", errcode(-1, "system busy"), errcode(40008, "invalid message type"))

    async def main() -> None:
        async with client_for(platform) as client:
            with pytest.raises(RequestFailed, match="invalid message type") as caught:
                await post(client, "ops")
            assert caught.value.code == 40008
            assert not caught.value.transient

    vrun(main)
    assert len(platform.received) == 2
