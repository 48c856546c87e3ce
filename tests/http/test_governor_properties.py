"""Properties of the governor over random request streams (hypothesis, virtual time)."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import defaultdict
from collections.abc import Callable, Coroutine
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from communitykit.http import Governor, Key, Limits, Priority, RateLimit

from .vtime import VirtualTimeLoop, clock, vrun


@attrs.frozen
class Send:
    arrival: float
    target: int  # one of four: odd ones are private chats, even ones groups
    priority: Priority
    holding: float  # seconds the request stays in flight after its grant (its RTT)
    bucket: int | None  # a Discord-like bucket shared by several targets (a line, not a lane)
    through_bot: bool  # whether it goes through the bot's lane
    retries: int  # slots it takes again after the first, holding its target (429s, 5xx)


@attrs.frozen
class Stream:
    bot: RateLimit
    chat: RateLimit
    group: RateLimit
    bucket: RateLimit
    margin: float
    sends: list[Send]
    pauses: list[tuple[float, int, float]]  # (at, target, seconds)
    lateness: float  # the governor's timer wakes up to this much late
    seed: int


rates = st.builds(
    RateLimit,
    st.integers(min_value=1, max_value=40),
    st.sampled_from([0.5, 1.0, 2.0, 5.0, 60.0]),
)
sends = st.builds(
    Send,
    arrival=st.floats(min_value=0, max_value=5, allow_nan=False).map(lambda x: round(x, 3)),
    target=st.integers(min_value=0, max_value=3),
    priority=st.sampled_from(list(Priority)),
    holding=st.sampled_from([0.0, 0.01, 0.2, 1.5]),
    bucket=st.one_of(st.none(), st.integers(min_value=0, max_value=1)),
    through_bot=st.booleans(),
    retries=st.integers(min_value=0, max_value=2),
)
streams = st.builds(
    Stream,
    bot=rates,
    chat=rates,
    group=rates,
    bucket=rates,
    margin=st.sampled_from([0.01, 0.03, 0.05]),
    sends=st.lists(sends, min_size=1, max_size=60),
    pauses=st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=5, allow_nan=False),
            st.integers(min_value=0, max_value=3),
            st.floats(min_value=0, max_value=3, allow_nan=False),
        ),
        max_size=3,
    ),
    lateness=st.sampled_from([0.0, 0.0005, 0.002, 0.01, 0.1]),
    seed=st.integers(min_value=0, max_value=2**32),
)


def late_sleep(lateness: float, seed: int) -> Callable[[float], Coroutine[Any, Any, None]]:
    """``asyncio.sleep`` that oversleeps by up to ``lateness`` seconds, like a busy loop."""
    rng = random.Random(seed)

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(seconds + rng.uniform(0, lateness))

    return sleep


TARGETS = ("chat", "group")


def _key(target: int) -> Key:
    return ("chat", target) if target % 2 else ("group", target)


@attrs.define
class Run:
    limits: Limits
    granted: dict[Key, list[float]]
    order: dict[tuple[Key, Priority], list[int]]
    calls: dict[tuple[Key, Priority], list[int]]
    done: int


def _run(stream: Stream) -> Run:
    limits = Limits(
        "random",
        {"bot": stream.bot, "chat": stream.chat, "group": stream.group, "bucket": stream.bucket},
        targets={"chat", "group"},
        shared={"bot"},
        margin=stream.margin,
    )
    granted: dict[Key, list[float]] = defaultdict(list)
    order: dict[tuple[Key, Priority], list[int]] = defaultdict(list)
    calls: dict[tuple[Key, Priority], list[int]] = defaultdict(list)
    counter = itertools.count()

    async def main() -> int:
        governor = Governor(
            limits, monotonic=clock(), sleep=late_sleep(stream.lateness, stream.seed)
        )
        t0 = governor.now()

        async def send(send: Send) -> None:
            await asyncio.sleep(send.arrival)
            target = _key(send.target)
            keys: list[Key] = [target]
            if send.through_bot:
                keys.append(("bot", "b"))
            if send.bucket is not None:
                keys.append(("bucket", send.bucket))
            calls[(target, send.priority)].append(number := next(counter))
            async with governor.lease(keys, send.priority) as lease:
                for attempt in range(1 + send.retries):
                    at = await lease.acquire()
                    for key in keys:
                        granted[key].append(at - t0)
                    if attempt == 0:
                        order[(target, send.priority)].append(number)
                    await asyncio.sleep(send.holding)

        async def pause(at: float, target: int, seconds: float) -> None:
            await asyncio.sleep(at)
            governor.pause([_key(target)], seconds)

        await asyncio.gather(*(send(s) for s in stream.sends), *(pause(*p) for p in stream.pauses))
        return len(stream.sends)

    done = vrun(main)
    return Run(limits, granted, order, calls, done)


def densest_window(times: list[float], period: float) -> int:
    """The most sends in any closed window of ``period`` seconds."""
    times = sorted(times)
    densest, start = 0, 0
    for end, t in enumerate(times):
        while times[start] < t - period - 1e-9:
            start += 1
        densest = max(densest, end - start + 1)
    return densest


@settings(max_examples=150)
@given(streams)
def test_no_sliding_window_of_any_scope_holds_more_sends_than_its_limit(stream: Stream) -> None:
    run = _run(stream)
    sent = sum(len(times) for key, times in run.granted.items() if key[0] in TARGETS)
    assert sent == sum(1 + send.retries for send in stream.sends)
    for key, times in run.granted.items():
        rate = run.limits.rate(key[0])
        assert rate is not None
        assert densest_window(times, rate.period) <= rate.limit, (key, times)


@settings(max_examples=100)
@given(streams)
def test_requests_to_one_target_at_one_priority_go_out_in_arrival_order(stream: Stream) -> None:
    run = _run(stream)
    for line, numbers in run.order.items():
        assert numbers == run.calls[line], line


@pytest.mark.parametrize("lateness", [0.0, 0.001, 0.005])
def test_a_saturated_bucket_runs_at_no_less_than_95_percent_of_its_limit(lateness: float) -> None:
    """The measured throughput with the default 3% margin: 0.97 of each limit.

    A timer that wakes late (by up to ``lateness``, as on a busy event loop)
    costs nothing: a grant is booked at its scheduled moment.
    """

    async def main() -> dict[str, float]:
        limits = Limits(
            "t",
            {"bot": RateLimit(30, 1.0), "group": RateLimit(20, 60.0)},
            targets={"group"},
        )
        governor = Governor(limits, monotonic=clock(), sleep=late_sleep(lateness, 7))
        t0 = governor.now()
        bot = await asyncio.gather(*(governor.acquire([("bot", 1)]) for _ in range(301)))
        t1 = governor.now()
        group = await asyncio.gather(*(governor.acquire([("group", 1)]) for _ in range(201)))
        return {"bot": 300 / (max(bot) - t0) / 30, "group": 200 / (max(group) - t1) / (20 / 60)}

    measured = vrun(main)
    assert measured["bot"] >= 0.95 and measured["group"] >= 0.95, measured


def test_a_late_timer_is_caught_up_but_never_squeezes_two_sends_into_one_window() -> None:
    """A timer that wakes late by less than the tolerance keeps its booked slot;
    later than that, the grant is booked when it happens, so the next one cannot
    come closer than one interval minus the tolerance."""
    lateness = itertools.cycle([0.1, 0.0, 0.005, 0.0])

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(seconds + next(lateness))

    async def main() -> list[float]:
        limits = Limits("t", {"chat": RateLimit(1, 1.0)})
        governor = Governor(limits, monotonic=clock(), sleep=sleep)
        return list(await asyncio.gather(*(governor.acquire([("chat", 1)]) for _ in range(12))))

    times = vrun(main)
    assert densest_window(times, 1.0) == 1
    assert min(b - a for a, b in itertools.pairwise(sorted(times))) > 1.0


def test_a_stalled_event_loop_cannot_squeeze_sends_together() -> None:
    """A slot is consumed when its task really runs, not when it was granted.

    Four hundred tasks start at once and each spends 0.2 ms of CPU before it
    asks for a slot: the first one, granted at once, runs again only after the
    others, 80 ms later. Its send is booked then, so the next ones cannot
    follow it closer than the interval.
    """

    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualTimeLoop)
        governor = Governor(Limits("t", {"bot": RateLimit(30, 1.0)}), monotonic=clock())
        sent: list[float] = []

        async def send() -> None:
            loop.advance(0.0002)  # building the request
            await governor.acquire([("bot", 1)])
            sent.append(loop.time())

        await asyncio.gather(*(send() for _ in range(400)))
        return sent

    sent = vrun(main)
    assert densest_window(sent, 1.0) <= 30
    interval = 1 / 30 / 0.97
    assert min(b - a for a, b in itertools.pairwise(sent)) >= interval - 0.0075 - 1e-9
