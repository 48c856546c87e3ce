"""The governor on a virtual clock: spacing, combined buckets, order, pauses."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence

import pytest

from communitykit import Secret
from communitykit.http import (
    GLOBAL,
    TELEGRAM,
    Governor,
    Key,
    Limits,
    Priority,
    RateLimit,
    UnknownScope,
)

from .vtime import clock, vrun

BOT: Key = ("bot", "1")
TEN = Limits("ten", {"bot": RateLimit(10, 1.0)}, margin=0.0)


def chat(n: int) -> Key:
    return ("chat", n)


async def _collect(governor: Governor, requests: Sequence[tuple[Key, ...]]) -> list[float]:
    """Grant times, in the order the requests were made."""
    t0 = governor.now()
    return [t - t0 for t in await asyncio.gather(*(governor.acquire(k) for k in requests))]


def test_sends_are_evenly_spaced_at_exactly_the_configured_rate() -> None:
    async def main() -> list[float]:
        governor = Governor(TEN, monotonic=clock())
        return await _collect(governor, [(BOT,)] * 25)

    times = vrun(main)
    assert times == pytest.approx([i * 0.1 for i in range(25)], abs=1e-9)


def test_the_safety_margin_stretches_the_interval() -> None:
    async def main() -> list[float]:
        governor = Governor(TEN.with_margin(0.03), monotonic=clock())
        return await _collect(governor, [(BOT,)] * 11)

    times = vrun(main)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps == pytest.approx([0.1 / 0.97] * 10, abs=1e-9)
    assert 10 / times[-1] == pytest.approx(9.7)


def test_an_idle_bucket_grants_at_once_and_gives_no_credit_for_idle_time() -> None:
    async def main() -> list[float]:
        governor = Governor(TEN, monotonic=clock())
        await governor.acquire([BOT])
        await asyncio.sleep(5)
        return await _collect(governor, [(BOT,)] * 3)

    assert vrun(main) == pytest.approx([0.0, 0.1, 0.2], abs=1e-9)


def test_combined_buckets_chat_and_bot_both_hold() -> None:
    async def main() -> list[float]:
        governor = Governor(TELEGRAM.with_margin(0.0), monotonic=clock())
        # three messages to chat 1, then one to each of chats 2..4
        requests = [(BOT, chat(1))] * 3 + [(BOT, chat(n)) for n in (2, 3, 4)]
        return await _collect(governor, requests)

    times = vrun(main)
    # chat 1: one per second; chats 2-4 use the bot's next slots meanwhile
    assert times[:3] == pytest.approx([0.0, 1.0, 2.0], abs=1e-9)
    assert times[3:] == pytest.approx([1 / 30, 2 / 30, 3 / 30], abs=1e-9)


def test_a_request_waiting_for_its_chat_does_not_hold_the_bot_bucket() -> None:
    async def main() -> list[float]:
        governor = Governor(TELEGRAM.with_margin(0.0), monotonic=clock())
        await governor.acquire([BOT, chat(1)])
        # chat 1 is busy for a second: 29 other chats take the bot's slots meanwhile
        requests = [(BOT, chat(1))] + [(BOT, chat(n)) for n in range(2, 31)]
        return await _collect(governor, requests)

    times = vrun(main)
    assert times[0] == pytest.approx(1.0, abs=1e-9)
    assert times[1:] == pytest.approx([n / 30 for n in range(1, 30)], abs=1e-9)


def test_a_high_priority_request_behind_many_low_ones_gets_the_next_slot() -> None:
    async def main() -> tuple[list[str], float]:
        governor = Governor(TELEGRAM.with_margin(0.0), monotonic=clock())
        t0 = governor.now()
        order: list[str] = []
        high_at = 0.0

        async def send(name: str, key: Key, priority: Priority) -> None:
            nonlocal high_at
            granted = await governor.acquire([BOT, key], priority)
            order.append(name)
            if name == "reply":
                high_at = granted - t0

        broadcast = [
            asyncio.create_task(send(f"b{n}", chat(100 + n), Priority.LOW)) for n in range(100)
        ]
        await asyncio.sleep(0.05)  # the broadcast is running: 2 sent
        await send("reply", chat(7), Priority.HIGH)
        await asyncio.gather(*broadcast)
        return order, high_at

    order, high_at = vrun(main)
    assert order[:3] == ["b0", "b1", "reply"]
    assert high_at == pytest.approx(2 / 30, abs=1e-9)
    assert order[3:] == [f"b{n}" for n in range(2, 100)]


def test_fifo_per_chat_within_a_priority_and_high_first_per_chat() -> None:
    async def main() -> list[str]:
        governor = Governor(TELEGRAM, monotonic=clock())
        order: list[str] = []

        async def send(name: str, priority: Priority) -> None:
            await governor.acquire([BOT, chat(1)], priority)
            order.append(name)

        tasks = [asyncio.create_task(send(f"n{i}", Priority.NORMAL)) for i in range(5)]
        await asyncio.sleep(0)
        tasks.append(asyncio.create_task(send("urgent", Priority.HIGH)))
        tasks += [asyncio.create_task(send(f"n{i}", Priority.NORMAL)) for i in range(5, 8)]
        await asyncio.gather(*tasks)
        return order

    # n0 went at once; the urgent one overtakes the waiting normal ones; the rest in order
    assert vrun(main) == ["n0", "urgent", *[f"n{i}" for i in range(1, 8)]]


def test_a_lease_keeps_its_chat_across_retries() -> None:
    async def main() -> list[str]:
        governor = Governor(TELEGRAM.with_margin(0.0), monotonic=clock())
        order: list[str] = []

        async def first() -> None:
            async with governor.lease([BOT, chat(1)]) as lease:
                await lease.acquire()
                order.append("first, attempt 1")
                await asyncio.sleep(5)  # a long retry backoff: chat 1 stays ours
                await lease.acquire()
                order.append("first, attempt 2")

        async def second() -> None:
            await asyncio.sleep(0.1)
            await governor.acquire([BOT, chat(1)], Priority.HIGH)
            order.append("second")

        async def other() -> None:
            await asyncio.sleep(0.1)
            await governor.acquire([BOT, chat(2)])
            order.append("other chat")

        await asyncio.gather(first(), second(), other())
        return order

    assert vrun(main) == ["first, attempt 1", "other chat", "first, attempt 2", "second"]


def test_pausing_a_chat_pauses_only_that_chat() -> None:
    async def main() -> list[float]:
        governor = Governor(TELEGRAM.with_margin(0.0), monotonic=clock())
        governor.pause([chat(1)], 10.0)
        assert governor.paused_until(chat(1)) is not None
        assert governor.paused_until(chat(2)) is None
        return await _collect(governor, [(BOT, chat(1)), (BOT, chat(2))])

    assert vrun(main) == pytest.approx([10.0, 0.0], abs=1e-9)


def test_a_global_pause_pauses_everything() -> None:
    async def main() -> list[float]:
        governor = Governor(TELEGRAM.with_margin(0.0), monotonic=clock())
        governor.pause(GLOBAL, 3.0)
        assert governor.paused_until(GLOBAL) is not None
        return await _collect(governor, [(BOT, chat(1)), (BOT, chat(2)), (chat(3),)])

    times = vrun(main)
    assert min(times) == pytest.approx(3.0, abs=1e-9)


def test_a_cancelled_request_gives_up_its_place() -> None:
    async def main() -> list[float]:
        governor = Governor(TELEGRAM.with_margin(0.0), monotonic=clock())
        t0 = governor.now()
        await governor.acquire([BOT, chat(1)])
        stuck = asyncio.create_task(governor.acquire([BOT, chat(1)]))
        later = asyncio.create_task(governor.acquire([BOT, chat(1)]))
        await asyncio.sleep(0.5)
        stuck.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stuck
        assert governor.waiting == 1
        return [await later - t0]

    assert vrun(main) == pytest.approx([1.0], abs=1e-9)


def test_rejected_waiting_requests_raise_the_given_error() -> None:
    class Stop(Exception):
        pass

    async def main() -> None:
        governor = Governor(TELEGRAM, monotonic=clock())
        await governor.acquire([BOT, chat(1)])
        waiting = [asyncio.create_task(governor.acquire([BOT, chat(1)])) for _ in range(3)]
        other = asyncio.create_task(governor.acquire([BOT, chat(2)]))
        await asyncio.sleep(0)
        rejected = governor.reject_waiting(
            lambda lease: Stop(), lambda lease: chat(1) in lease.keys
        )
        assert rejected == 3
        for task in waiting:
            with pytest.raises(Stop):
                await task
        await other
        assert governor.waiting == 0

    vrun(main)


def test_a_learned_rate_replaces_the_kind_default() -> None:
    async def main() -> list[float]:
        limits = Limits("d", {"bucket": None, "global": RateLimit(50, 1.0)}, margin=0.0)
        governor = Governor(limits, monotonic=clock())
        bucket: Key = ("bucket", ("abc", 1))
        assert governor.rate(bucket) is None
        governor.set_rate(bucket, RateLimit(5, 5.0))
        return await _collect(governor, [(("global", "app"), bucket)] * 3)

    assert vrun(main) == pytest.approx([0.0, 1.0, 2.0], abs=1e-9)


def test_a_tightened_rate_applies_to_the_next_request_already() -> None:
    async def main() -> float:
        limits = Limits("d", {"route": RateLimit(10, 1.0)}, margin=0.0)
        governor = Governor(limits, monotonic=clock())
        route: Key = ("route", "GET /x")
        t0 = governor.now()
        await governor.acquire([route])
        governor.set_rate(route, RateLimit(1, 2.0))
        return await governor.acquire([route]) - t0

    assert vrun(main) == pytest.approx(2.0, abs=1e-9)


def test_keys_must_name_a_scope_of_the_profile_and_hold_no_secret() -> None:
    governor = Governor(TELEGRAM)
    with pytest.raises(UnknownScope, match="'chatt' is not in the 'telegram' limits"):
        governor.lease([("chatt", 1)])
    with pytest.raises(UnknownScope, match="must not hold a secret"):
        governor.lease([("bot", Secret("123:abc"))])  # type: ignore[list-item]
    with pytest.raises(UnknownScope, match="pair"):
        governor.lease(["bot"])  # type: ignore[list-item]


def test_limits_validate_themselves() -> None:
    with pytest.raises(ValueError, match="positive integer"):
        RateLimit(0, 1.0)
    with pytest.raises(ValueError, match="positive number"):
        RateLimit(1, 0)
    with pytest.raises(ValueError, match="margin"):
        Limits("x", {"a": RateLimit(1, 1.0)}, margin=0.6)
    with pytest.raises(ValueError, match="no entry in rates"):
        Limits("x", {"a": RateLimit(1, 1.0)}, targets={"b"})
    custom = TELEGRAM.with_scope("topic", RateLimit(5, 1.0), target=True)
    assert custom.is_target(("topic", 1)) and custom.rate("topic") == RateLimit(5, 1.0)
    assert "chat*=1/1s" in str(TELEGRAM)


def test_ten_thousand_waiting_requests_cost_little_per_grant() -> None:
    """A big broadcast waits in heaps: each grant costs O(lanes + log n), not O(n)."""

    async def main() -> tuple[int, float]:
        governor = Governor(TELEGRAM.with_margin(0.0), monotonic=clock())
        t0 = governor.now()
        tasks = [
            asyncio.create_task(governor.acquire([BOT, chat(n)], Priority.LOW))
            for n in range(10_000)
        ]
        await asyncio.sleep(9.99)
        done = sum(task.done() for task in tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return done, governor.now() - t0

    done, _ = vrun(main)
    assert done == 300  # 30 per second for 10 seconds


def test_a_retry_holding_its_target_is_not_blocked_by_a_later_request_in_another_line() -> None:
    """Lines of a bucket and of a channel: the holder's retry heads both, or nothing moves."""

    async def main() -> list[str]:
        limits = Limits(
            "d",
            {"bucket": RateLimit(5, 5.0), "channel": None},
            targets={"channel"},
            shared=frozenset(),
        )
        governor = Governor(limits, monotonic=clock())
        keys: list[Key] = [("bucket", "b"), ("channel", 5)]
        order: list[str] = []

        async def urgent() -> None:
            await governor.acquire(keys, Priority.HIGH)
            order.append("urgent")

        async with governor.lease(keys) as lease:
            await lease.acquire()
            order.append("first")
            task = asyncio.create_task(urgent())
            await asyncio.sleep(0.1)  # waits behind the held channel, first in the bucket's line
            await lease.acquire()  # the retry (after a 429, say)
            order.append("retry")
        await task
        return order

    assert vrun(main) == ["first", "retry", "urgent"]
