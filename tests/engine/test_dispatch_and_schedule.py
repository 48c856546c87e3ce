from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from communitykit import (
    Decision,
    MessagePosted,
    PermanentFailure,
    RuleContext,
    SendMessage,
    TransientFailure,
)
from communitykit.store import OutboxStatus
from communitykit.testing import HookRecorder, memory_app

from .doubles import ScriptedAdapter

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

CONFIG = """
[community]
name = "t"
timezone = "Europe/Berlin"

[[groups]]
key = "main"
platform = "console"
id = "main"

[points]
message = 5
message_daily_cap = 100
expire_after_days = 10

[tiers]
window_days = 7
grace_days = 3

[[tiers.ladder]]
name = "base"
threshold = 0

[[tiers.ladder]]
name = "gold"
threshold = 20
"""


class Echo:
    name = "echo"

    def evaluate(self, ctx: RuleContext) -> Decision | None:
        if not isinstance(ctx.event, MessagePosted):
            return None
        return Decision(
            source="rule:echo",
            explanation="echo",
            actions=[ctx.action(SendMessage, "rule:echo", "echo", text=f"re: {ctx.event.text}")],
        )


def msg(n: int, at: datetime = T0, user: str = "ana") -> MessagePosted:
    return MessagePosted(
        event_id=f"m{n}",
        platform="console",
        group="main",
        user=user,
        at=at,
        message_id=str(n),
        text=f"hello {n}",
    )


async def test_delivered_actions_carry_the_platform_receipt() -> None:
    adapter = ScriptedAdapter()
    app, clock = memory_app(config_text=CONFIG, adapters={"console": adapter}, rules=[Echo()])
    recorder = HookRecorder()
    app.register_plugin(recorder, name="recorder")
    clock.set(T0)
    await app.feed([msg(1), msg(2)])
    assert await app.deliver() == 2
    assert [a.text for a in adapter.performed] == ["re: hello 1", "re: hello 2"]  # type: ignore[attr-defined]
    items = list(app.store.outbox())
    assert [(i.status, i.receipt) for i in items] == [
        (OutboxStatus.DELIVERED, "pm-1"),
        (OutboxStatus.DELIVERED, "pm-2"),
    ]
    assert len(recorder.calls("communitykit_action_delivered")) == 2
    assert await app.deliver() == 0  # nothing is delivered twice


async def test_permanent_failure_marks_the_action_failed_with_its_reason() -> None:
    adapter = ScriptedAdapter()
    adapter.fail_next(PermanentFailure("the chat is gone"))
    app, clock = memory_app(config_text=CONFIG, adapters={"console": adapter}, rules=[Echo()])
    recorder = HookRecorder()
    app.register_plugin(recorder, name="recorder")
    clock.set(T0)
    await app.feed([msg(1)])
    await app.deliver()
    (item,) = list(app.store.outbox())
    assert (item.status, item.error) == (OutboxStatus.FAILED, "the chat is gone")
    (call,) = recorder.calls("communitykit_action_failed")
    assert call["permanent"] is True
    assert adapter.performed == []


async def test_transient_failures_retry_with_backoff_then_deliver() -> None:
    adapter = ScriptedAdapter()
    adapter.fail_next(
        TransientFailure("502 Bad Gateway"), TransientFailure("timeout", retry_after=30)
    )
    app, clock = memory_app(config_text=CONFIG, adapters={"console": adapter}, rules=[Echo()])
    clock.set(T0)
    await app.feed([msg(1)])
    await app.deliver()
    (item,) = list(app.store.outbox())
    assert (item.status, item.attempts, item.error) == (OutboxStatus.PENDING, 1, "502 Bad Gateway")
    assert item.next_attempt_at is not None
    first_wait = (item.next_attempt_at - T0).total_seconds()
    assert 1.0 <= first_wait <= 2.0  # 2**1 seconds, with jitter in [0.5, 1]
    assert await app.deliver() == 0  # not due yet
    clock.set(item.next_attempt_at)
    await app.deliver()
    (item,) = list(app.store.outbox())
    assert item.attempts == 2
    assert item.next_attempt_at == clock.now() + timedelta(seconds=30)  # retry_after honoured
    clock.set(item.next_attempt_at)
    await app.deliver()
    (item,) = list(app.store.outbox())
    assert item.status is OutboxStatus.DELIVERED
    assert len(adapter.performed) == 1


async def test_transient_failures_give_up_after_the_last_attempt() -> None:
    adapter = ScriptedAdapter()
    adapter.fail_next(*[TransientFailure("503") for _ in range(20)])
    app, clock = memory_app(config_text=CONFIG, adapters={"console": adapter}, rules=[Echo()])
    clock.set(T0)
    await app.feed([msg(1)])
    for _ in range(app.dispatcher.max_attempts):
        await app.deliver()
        (item,) = list(app.store.outbox())
        if item.next_attempt_at is not None:
            clock.set(item.next_attempt_at)
    (item,) = list(app.store.outbox())
    assert item.status is OutboxStatus.FAILED
    assert item.error is not None and "gave up after 8 attempts" in item.error


async def test_backoff_is_deterministic_and_bounded() -> None:
    app, _ = memory_app(config_text=CONFIG, adapters={"console": ScriptedAdapter()})
    app.open()
    dispatcher = app.dispatcher
    waits = [dispatcher.backoff("a-1", n) for n in range(1, 15)]
    assert waits == [dispatcher.backoff("a-1", n) for n in range(1, 15)]
    assert all(0 < w <= dispatcher.max_backoff for w in waits)
    assert waits[0] < waits[3] < waits[6]


async def test_points_expire_at_the_simulated_moment() -> None:
    app, clock = memory_app(config_text=CONFIG, adapters={"console": ScriptedAdapter()})
    clock.set(T0)
    await app.feed([msg(1)])
    assert app.balance("console:ana") == 5
    await app.engine.advance_to(T0 + timedelta(days=10) - timedelta(seconds=1), clock.set)
    assert app.balance("console:ana") == 5
    await app.engine.advance_to(T0 + timedelta(days=10), clock.set)
    assert app.balance("console:ana") == 0
    (expiry,) = [e for e in app.history("console:ana") if e.kind.value == "expiry"]
    assert expiry.at == T0 + timedelta(days=10)


async def test_a_simulated_month_downgrades_after_window_and_grace() -> None:
    app, clock = memory_app(config_text=CONFIG, adapters={"console": ScriptedAdapter()})
    recorder = HookRecorder()
    app.register_plugin(recorder, name="recorder")
    clock.set(T0)
    await app.feed([msg(n, at=T0 + timedelta(minutes=n)) for n in range(4)])  # 20 points
    assert app.tier("console:ana") == "gold"
    # The credits leave the 7-day window on day 7; the daily review notices at the
    # next Berlin midnight, then the 3-day grace runs; no further activity.
    await app.engine.advance_to(T0 + timedelta(days=30), clock.set)
    assert app.tier("console:ana") == "base"
    (down,) = [c for c in recorder.calls("communitykit_tier_changed") if c["new_tier"] == "base"]
    berlin_midnight = datetime(2026, 3, 12, 0, 0, tzinfo=UTC) - timedelta(hours=1)
    assert down["at"] == berlin_midnight  # below since Mar 9 00:00 Berlin + 3 days grace
