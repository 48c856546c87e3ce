"""At Telegram's limits without a 429: each message delivered once, in order per chat."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import pytest
from communitykit_telegram import TelegramAdapter
from telegram_helpers import GROUP_ID, MakeAdapter, act, eventually
from tests.doubles.telegram import RateLimits, TelegramDouble

from communitykit import Action, SendDirectMessage, SendMessage
from communitykit.http import TELEGRAM, RateLimit

pytestmark = pytest.mark.anyio

#: 20 messages per group in a 2 s window instead of 60 s (the other limits are Telegram's)
GROUP_WINDOW = 2.0
#: The double serves from a thread of this process, so its clock also reads arrivals
#: late by GIL hand-offs (several ms each on a loaded machine): more room than the
#: adapter's default margin, which is measured against a double in its own process
#: (benchmarks/broadcast.py).
LIMITS = TELEGRAM.with_margin(0.05)


async def test_a_broadcast_and_a_busy_group_stay_inside_every_window(
    telegram_double_factory: Callable[..., TelegramDouble], make_adapter: MakeAdapter
) -> None:
    double = telegram_double_factory(limits=RateLimits(per_group_window=GROUP_WINDOW))
    adapter: TelegramAdapter = make_adapter(
        double,
        limits=LIMITS.with_scope("group", RateLimit(20, GROUP_WINDOW), target=True),
    )
    users = range(1001, 1061)
    actions: list[Action] = [
        act(SendDirectMessage, group=None, user=str(u), text=f"news for {u}", source="broadcast:b")
        for u in users
    ]
    actions += [act(SendMessage, text=f"group {n}") for n in range(25)]
    actions += [act(SendDirectMessage, group=None, user="2000", text=f"dm {n}") for n in range(3)]
    receipts = await asyncio.gather(*(adapter.perform(a) for a in actions))

    assert double.refusals == [], [(r.reason, r.chat_id, r.wait, r.at) for r in double.refusals]
    assert double.count_429 == 0
    delivered = double.delivered()
    assert len(delivered) == len(actions)
    assert Counter(d.text for d in delivered) == Counter(
        a.text for a in actions if isinstance(a, SendMessage | SendDirectMessage)
    )
    assert all(r.platform_message_id for r in receipts)
    # order kept per chat
    assert [d.text for d in double.delivered(GROUP_ID)] == [f"group {n}" for n in range(25)]
    assert [d.text for d in double.delivered(2000)] == ["dm 0", "dm 1", "dm 2"]
    # the densest window of every scope, recomputed from the delivery log
    assert double.max_in_window(None, 1.0) <= 30
    assert double.max_in_window(GROUP_ID, GROUP_WINDOW) <= 20
    assert double.max_in_window(2000, 1.0) == 1
    # How close to each limit this runs is measured on virtual time, where a busy
    # machine cannot slow the sender down (tests/http/test_client.py,
    # tests/http/test_governor_properties.py), and against a double in its own
    # process by benchmarks/broadcast.py; here, in real time, only the limits hold.


async def test_a_reply_overtakes_a_waiting_broadcast(
    telegram_double_factory: Callable[..., TelegramDouble], make_adapter: MakeAdapter
) -> None:
    double = telegram_double_factory()
    adapter: TelegramAdapter = make_adapter(double, limits=None)  # the default
    broadcast = [
        asyncio.create_task(
            adapter.perform(
                act(SendDirectMessage, group=None, user=str(u), text="news", source="broadcast:b")
            )
        )
        for u in range(1, 61)
    ]
    await eventually(lambda: len(double.delivered()) >= 5)  # the broadcast is under way
    reply = act(SendMessage, text="welcome!", reply_to="1")
    await adapter.perform(reply)
    await asyncio.gather(*broadcast)
    order = [d.text for d in double.delivered()]
    assert order.index("welcome!") < 15  # not after the 55 queued broadcast messages
    assert double.count_429 == 0


async def test_the_first_actions_wait_for_one_warm_up_request(
    telegram_double_factory: Callable[..., TelegramDouble], make_adapter: MakeAdapter
) -> None:
    double = telegram_double_factory()
    adapter: TelegramAdapter = make_adapter(double)
    users = range(2001, 2011)
    await asyncio.gather(
        *(
            adapter.perform(
                act(SendDirectMessage, group=None, user=str(u), text="hi", source="broadcast:w")
            )
            for u in users
        )
    )
    (get_me,) = double.calls_to("getMe")  # one, however many actions started at once
    assert all(get_me.at <= d.at for d in double.delivered())
    assert sorted(d.chat_id for d in double.delivered()) == list(users)
