"""The dispatcher delivers lanes side by side, each lane in order, bulk work behind."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from communitykit import (
    Action,
    Capabilities,
    EventSink,
    Receipt,
    SendDirectMessage,
    SendMessage,
    SimulatedClock,
    TransientFailure,
)
from communitykit.engine import Dispatcher, is_bulk, lane_of
from communitykit.store import Batch, MemoryStore, OutboxItem, OutboxStatus
from communitykit.testing import fresh_plugin_manager

from .doubles import EVERYTHING, ScriptedAdapter

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class GatedAdapter(ScriptedAdapter):
    """Each perform waits until its action's gate opens; records starts and ends."""

    def __init__(self) -> None:
        super().__init__()
        self.capabilities = Capabilities(actions=EVERYTHING, direct_messages=True)
        self.gates: dict[str, asyncio.Event] = {}
        self.started: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.fail: dict[str, Exception] = {}

    def gate(self, action_id: str) -> asyncio.Event:
        return self.gates.setdefault(action_id, asyncio.Event())

    async def start(self, sink: EventSink) -> None:
        self.sink = sink

    async def perform(self, action: Action) -> Receipt:
        self.started.append(action.action_id)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.gate(action.action_id).wait()
        finally:
            self.in_flight -= 1
        if action.action_id in self.fail:
            raise self.fail.pop(action.action_id)
        self.performed.append(action)
        return Receipt(action_id=action.action_id, platform_message_id=action.action_id)


def say(action_id: str, group: str) -> SendMessage:
    return SendMessage(
        action_id=action_id, platform="console", group=group, source="rule:t", reason="t", text="hi"
    )


def broadcast_dm(action_id: str, user: str) -> SendDirectMessage:
    return SendDirectMessage(
        action_id=action_id,
        platform="console",
        user=user,
        source="broadcast:b1",
        reason="news",
        text="news",
    )


def setup(
    actions: list[Action], concurrency: int = 64, clock: SimulatedClock | None = None
) -> tuple[Dispatcher, GatedAdapter, MemoryStore]:
    store = MemoryStore()
    store.open()
    store.commit(Batch(created_at=T0, actions=actions))
    adapter = GatedAdapter()
    dispatcher = Dispatcher(
        store=store,
        adapters={"console": adapter},
        plugins=fresh_plugin_manager(),
        clock=clock or SimulatedClock(T0),
        concurrency=concurrency,
    )
    return dispatcher, adapter, store


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_a_lane_is_a_chat_or_one_members_direct_messages() -> None:
    assert lane_of(say("a", "g1")) == ("console", "group:g1")
    assert lane_of(broadcast_dm("b", "u1")) == ("console", "user:u1")
    assert is_bulk(broadcast_dm("b", "u1")) and not is_bulk(say("a", "g1"))


async def test_lanes_are_delivered_side_by_side_each_in_its_order() -> None:
    actions: list[Action] = [say(f"a{i}", "g1") for i in range(3)]
    actions += [say(f"b{i}", "g2") for i in range(3)]
    dispatcher, adapter, store = setup(actions)
    delivering = asyncio.ensure_future(dispatcher.deliver_due())
    await settle()
    assert sorted(adapter.started) == ["a0", "b0"]  # both lanes at once, one each
    for action_id in ["a0", "a1", "b0", "a2", "b1", "b2"]:
        adapter.gate(action_id).set()
        await settle()
    assert await delivering == 6
    assert [a.action_id for a in adapter.performed if a.group == "g1"] == ["a0", "a1", "a2"]
    assert [a.action_id for a in adapter.performed if a.group == "g2"] == ["b0", "b1", "b2"]
    assert adapter.most_in_flight == 2
    assert {i.status for i in store.outbox()} == {OutboxStatus.DELIVERED}


async def test_a_reply_is_delivered_while_every_broadcast_slot_is_taken() -> None:
    dms: list[Action] = [broadcast_dm(f"dm{i}", f"u{i}") for i in range(10)]
    dispatcher, adapter, store = setup(dms, concurrency=4)
    broadcast = asyncio.ensure_future(dispatcher.deliver_due())
    await settle()
    assert adapter.in_flight == 4  # the broadcast holds all its slots, gates shut
    store.commit(Batch(created_at=T0, actions=[say("reply", "g1")]))
    adapter.gate("reply").set()
    reply = asyncio.ensure_future(dispatcher.deliver_due())
    await settle()
    assert [a.action_id for a in adapter.performed] == ["reply"]
    for i in range(10):
        adapter.gate(f"dm{i}").set()
    assert await broadcast == 10
    assert await reply == 1
    assert sorted(a.action_id for a in adapter.performed) == sorted(
        ["reply", *(f"dm{i}" for i in range(10))]
    )


async def test_a_rescheduled_action_holds_back_the_rest_of_its_lane_only() -> None:
    actions: list[Action] = [say("a0", "g1"), say("a1", "g1"), say("b0", "g2")]
    dispatcher, adapter, store = setup(actions)
    adapter.fail["a0"] = TransientFailure("busy", retry_after=30)
    for action_id in ["a0", "a1", "b0"]:
        adapter.gate(action_id).set()
    assert await dispatcher.deliver_due() == 3
    assert [a.action_id for a in adapter.performed] == ["b0"]  # a1 waits behind a0
    status = {i.action.action_id: i.status for i in store.outbox()}
    assert status == {
        "a0": OutboxStatus.PENDING,
        "a1": OutboxStatus.PENDING,
        "b0": OutboxStatus.DELIVERED,
    }


async def test_the_rest_of_a_lane_waits_until_its_rescheduled_head_is_delivered() -> None:
    clock = SimulatedClock(T0)
    dispatcher, adapter, _store = setup([say("a0", "g1"), say("a1", "g1")], clock=clock)
    adapter.fail["a0"] = TransientFailure("busy", retry_after=30)
    for action_id in ["a0", "a1"]:
        adapter.gate(action_id).set()
    await dispatcher.deliver_due()
    clock.set(T0 + timedelta(seconds=10))  # a1 is due, a0 not yet
    assert await dispatcher.deliver_due() == 0
    assert adapter.performed == []
    clock.set(T0 + timedelta(seconds=31))
    assert await dispatcher.deliver_due() == 2
    assert [a.action_id for a in adapter.performed] == ["a0", "a1"]  # in the decided order


def scripted(actions: list[Action]) -> tuple[Dispatcher, ScriptedAdapter, MemoryStore]:
    store = MemoryStore()
    store.open()
    store.commit(Batch(created_at=T0, actions=actions))
    adapter = ScriptedAdapter()
    dispatcher = Dispatcher(
        store=store,
        adapters={"console": adapter},
        plugins=fresh_plugin_manager(),
        clock=SimulatedClock(T0),
    )
    return dispatcher, adapter, store


async def test_a_held_lane_with_many_actions_behind_it_does_not_hold_back_other_lanes() -> None:
    busy: list[Action] = [say(f"busy{i}", "big-group") for i in range(600)]
    dispatcher, adapter, store = scripted(busy)
    adapter.fail_next(TransientFailure("Too Many Requests", retry_after=30))
    await dispatcher.deliver_due()  # busy0 waits for its retry; the 599 behind it too
    store.commit(Batch(created_at=T0, actions=[say("quiet", "small-group")]))
    assert await dispatcher.deliver_due() == 1
    assert [a.action_id for a in adapter.performed] == ["quiet"]


async def test_stopping_never_hangs_on_deliveries_cancelled_before_they_started() -> None:
    dispatcher, adapter, _store = scripted([say("a0", "g1"), say("b0", "g2")])
    assert dispatcher._take_due(10) == 2  # workers created, not yet run
    await dispatcher.aclose()
    stop = asyncio.Event()
    stop.set()
    await asyncio.wait_for(dispatcher.run(stop), timeout=5)  # returns: nothing left running
    assert adapter.performed == []
    assert await dispatcher.deliver_due() == 2  # both were left pending, and go now


async def test_waiting_for_a_held_lane_does_not_spin() -> None:
    dispatcher, adapter, store = scripted([say("a0", "g1"), say("a1", "g1")])
    adapter.fail_next(TransientFailure("busy", retry_after=60))
    await dispatcher.deliver_due()  # a0 waits a minute; a1, due, waits behind it
    queries = 0
    due_actions = store.due_actions

    def counted(now: datetime, limit: int = 100) -> list[OutboxItem]:
        nonlocal queries
        queries += 1
        return due_actions(now, limit)

    store.due_actions = counted  # type: ignore[method-assign]
    stop = asyncio.Event()
    running = asyncio.ensure_future(dispatcher.run(stop))
    await asyncio.sleep(0.3)
    stop.set()
    await running
    assert queries <= 3  # one look, then at most one every half second (not thousands)
    assert adapter.performed == []
