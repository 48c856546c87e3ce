"""How each platform's policy reads responses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from communitykit.http import (
    GLOBAL,
    Attempt,
    DiscordPolicy,
    GenericPolicy,
    Key,
    Outcome,
    RateLimit,
    TelegramPolicy,
    WeComPolicy,
    discord_keys,
)

BOT: Key = ("bot", "1")
CHAT: Key = ("chat", 42)


def attempt(keys: tuple[Key, ...] = (BOT, CHAT), targets: tuple[Key, ...] = (CHAT,)) -> Attempt:
    return Attempt(method="POST", keys=keys, routed=keys, targets=targets)


def response(status: int, body: Any = None, **headers: str) -> httpx.Response:
    if body is None:
        return httpx.Response(status, headers=headers)
    if isinstance(body, str):
        return httpx.Response(status, text=body, headers=headers)
    return httpx.Response(status, json=body, headers=headers)


def tg(status: int, description: str, **parameters: Any) -> httpx.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return response(status, body)


class TestTelegram:
    policy = TelegramPolicy()

    def test_success_gives_the_result(self) -> None:
        verdict = self.policy.classify(
            response(200, {"ok": True, "result": {"message_id": 7}}), attempt()
        )
        assert verdict.outcome is Outcome.OK
        assert verdict.result == {"message_id": 7}

    def test_a_429_pauses_the_chat_for_retry_after(self) -> None:
        verdict = self.policy.classify(tg(429, "Too Many Requests", retry_after=17), attempt())
        assert verdict.outcome is Outcome.RATE_LIMITED
        assert verdict.retry_after == 17
        assert verdict.pause == (CHAT,)

    def test_a_429_without_a_chat_pauses_the_bots_lane(self) -> None:
        verdict = self.policy.classify(
            tg(429, "Too Many Requests", retry_after=3), attempt((BOT,), ())
        )
        assert verdict.pause == (BOT,)

    def test_a_migrated_group_carries_the_new_id(self) -> None:
        verdict = self.policy.classify(
            tg(400, "Bad Request: group chat was upgraded", migrate_to_chat_id=-100777), attempt()
        )
        assert verdict.outcome is Outcome.MIGRATED
        assert verdict.migrate_to == -100777

    @pytest.mark.parametrize(
        ("status", "description", "outcome"),
        [
            (401, "Unauthorized", Outcome.AUTH_FAILED),
            (403, "Forbidden: bot was blocked by the user", Outcome.UNREACHABLE),
            (403, "Forbidden: bot was kicked from the group chat", Outcome.UNREACHABLE),
            (400, "Bad Request: chat not found", Outcome.UNREACHABLE),
            (400, "Bad Request: message to delete not found", Outcome.FAILED),
            (404, "Not Found", Outcome.FAILED),
            (500, "Internal Server Error", Outcome.RETRY),
        ],
    )
    def test_errors(self, status: int, description: str, outcome: Outcome) -> None:
        verdict = self.policy.classify(tg(status, description), attempt())
        assert verdict.outcome is outcome
        assert verdict.description == description
        assert verdict.code == status

    def test_a_gateway_error_page_is_retried(self) -> None:
        verdict = self.policy.classify(response(502, "<html>Bad Gateway</html>"), attempt())
        assert verdict.outcome is Outcome.RETRY
        assert verdict.description == "Bad Gateway"


class TestDiscord:
    def keys(self, channel: int = 5) -> tuple[Key, ...]:
        return discord_keys(
            "app", "POST", "/channels/{channel_id}/messages", channel, target=("channel", channel)
        )

    def test_headers_teach_the_bucket_and_its_rate(self) -> None:
        policy = DiscordPolicy()
        keys = self.keys()
        headers = {
            "X-RateLimit-Bucket": "abcd",
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "4",
            "X-RateLimit-Reset-After": "5.000",
        }
        verdict = policy.classify(
            response(200, {"id": "1"}, **headers),
            Attempt(method="POST", keys=keys, routed=keys, targets=()),
        )
        assert verdict.outcome is Outcome.OK
        assert verdict.learned == {("bucket", ("abcd", 5)): RateLimit(5, 5.0)}
        assert not verdict.exhausted
        # the route now maps to its bucket, for any channel
        routed = policy.route(self.keys(6))
        assert routed.keys == (("global", "app"), ("bucket", ("abcd", 6)), ("channel", 6))
        assert routed.rates == {("bucket", ("abcd", 6)): RateLimit(5, 5.0)}

    def test_a_used_up_bucket_is_paused_until_it_resets(self) -> None:
        policy = DiscordPolicy()
        keys = self.keys()
        headers = {
            "X-RateLimit-Bucket": "abcd",
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset-After": "2.5",
        }
        verdict = policy.classify(
            response(200, {}, **headers), Attempt(method="POST", keys=keys, routed=keys, targets=())
        )
        assert verdict.exhausted[("bucket", ("abcd", 5))] == 2.5

    def test_a_global_429_pauses_everything_and_counts_as_invalid(self) -> None:
        keys = self.keys()
        verdict = DiscordPolicy().classify(
            response(429, {"message": "rate limited", "retry_after": 0.75, "global": True}),
            Attempt(method="POST", keys=keys, routed=keys, targets=(("channel", 5),)),
        )
        assert verdict.outcome is Outcome.RATE_LIMITED
        assert verdict.pause is GLOBAL
        assert verdict.retry_after == 0.75
        assert verdict.invalid

    def test_a_bucket_429_pauses_only_the_bucket(self) -> None:
        keys = self.keys()
        verdict = DiscordPolicy().classify(
            response(
                429,
                {"message": "rate limited", "retry_after": 1.5, "global": False},
                **{"X-RateLimit-Scope": "shared"},
            ),
            Attempt(method="POST", keys=keys, routed=keys, targets=(("channel", 5),)),
        )
        assert verdict.pause == (keys[1],)
        assert not verdict.invalid  # shared-scope 429s do not count

    def test_a_cloudflare_429_is_global(self) -> None:
        keys = self.keys()
        verdict = DiscordPolicy().classify(
            response(429, "<html>banned</html>", **{"Retry-After": "30"}),
            Attempt(method="POST", keys=keys, routed=keys, targets=()),
        )
        assert verdict.pause is GLOBAL
        assert verdict.retry_after == 30


class TestWeCom:
    policy = WeComPolicy()
    robot: Key = ("robot", "ops")

    @pytest.mark.parametrize(
        ("errcode", "outcome"),
        [
            (0, Outcome.OK),
            (45009, Outcome.RATE_LIMITED),
            (-1, Outcome.RETRY),
            (40014, Outcome.AUTH_FAILED),
            (42001, Outcome.AUTH_FAILED),
            (93000, Outcome.UNREACHABLE),
            (40008, Outcome.FAILED),
        ],
    )
    def test_errcodes(self, errcode: int, outcome: Outcome) -> None:
        verdict = self.policy.classify(
            response(200, {"errcode": errcode, "errmsg": "x"}),
            attempt((self.robot,), (self.robot,)),
        )
        assert verdict.outcome is outcome
        if outcome is Outcome.RATE_LIMITED:
            assert verdict.pause == (self.robot,)
            assert verdict.retry_after == 60


class TestGeneric:
    policy = GenericPolicy()

    def test_retry_after_as_an_http_date(self) -> None:
        when = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
        verdict = self.policy.classify(response(429, **{"Retry-After": when}), attempt())
        assert verdict.retry_after is not None and 100 < verdict.retry_after <= 120

    @pytest.mark.parametrize(
        ("status", "outcome"),
        [
            (204, Outcome.OK),
            (401, Outcome.AUTH_FAILED),
            (403, Outcome.UNREACHABLE),
            (404, Outcome.UNREACHABLE),
            (408, Outcome.RETRY),
            (503, Outcome.RETRY),
            (422, Outcome.FAILED),
        ],
    )
    def test_statuses(self, status: int, outcome: Outcome) -> None:
        assert self.policy.classify(response(status), attempt()).outcome is outcome

    def test_a_404_without_a_target_is_a_plain_failure(self) -> None:
        assert self.policy.classify(response(404), attempt((BOT,), ())).outcome is Outcome.FAILED
