"""Broadcasts: one direct message per reachable member, resumable, never twice."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from communitykit import (
    Action,
    BroadcastError,
    MemberJoined,
    MemberLeft,
    PermanentFailure,
    Receipt,
    SendDirectMessage,
)
from communitykit.testing import memory_app

from .doubles import ScriptedAdapter

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class Picky(ScriptedAdapter):
    """Unreachable for the users listed; hangs after ``stop_after`` sends."""

    def __init__(self, unreachable: set[str], stop_after: int | None = None) -> None:
        super().__init__()
        self.unreachable = unreachable
        self.stop_after = stop_after
        self.hung = 0
        self.attempts = 0

    async def perform(self, action: Action) -> Receipt:
        self.attempts += 1
        if action.user in self.unreachable:
            raise PermanentFailure("Forbidden: bot was blocked by the user", unreachable=True)
        if self.stop_after is not None and self.attempts > self.stop_after:
            self.hung += 1
            await asyncio.Event().wait()  # until cancelled
        return await super().perform(action)


def joined(user: str, n: int) -> MemberJoined:
    return MemberJoined(
        event_id=f"j{n}", platform="console", group="main", user=user, at=T0, display_name=user
    )


async def community(adapter: ScriptedAdapter, users: int = 5):  # type: ignore[no-untyped-def]
    app, clock = memory_app(adapters={"console": adapter})
    clock.set(T0)
    await app.feed([joined(f"u{n}", n) for n in range(users)])
    return app


async def test_every_current_member_gets_the_message_once() -> None:
    adapter = Picky(unreachable={"u3"})
    app = await community(adapter)
    left = MemberLeft(
        event_id="l1", platform="console", group="main", user="u4", at=T0, reason="left"
    )
    await app.feed([left])
    plan, queued = await app.broadcast("Meetup on Friday!")
    assert (plan.members, len(plan.actions), queued) == (4, 4, 4)  # u4 left
    await app.deliver()
    sent = [a for a in adapter.performed if isinstance(a, SendDirectMessage)]
    assert sorted(a.user or "" for a in sent) == ["u0", "u1", "u2"]
    assert all(a.text == "Meetup on Friday!" for a in sent)
    report = app.broadcast_report(plan.broadcast_id)
    assert (report.delivered, report.unreachable, report.failed, report.pending) == (3, 1, 0, 0)
    assert report.failures == {"Forbidden: bot was blocked by the user": 1}
    assert report.done


async def test_running_a_broadcast_again_resumes_and_sends_nobody_twice() -> None:
    adapter = Picky(unreachable=set(), stop_after=2)
    app = await community(adapter)
    plan, _ = await app.broadcast("news")
    delivering = asyncio.ensure_future(app.deliver())
    while adapter.hung < 3:  # two sent, the other three lanes hang
        await asyncio.sleep(0)
    delivering.cancel()  # the operator presses Ctrl-C
    await app.dispatcher.aclose()
    assert len(adapter.performed) == 2
    assert not app.broadcast_report(plan.broadcast_id).done
    adapter.stop_after = None
    again, queued = await app.broadcast("news")  # the same command: the same id
    assert again.broadcast_id == plan.broadcast_id and queued == 0
    await app.deliver()
    users = [a.user for a in adapter.performed]
    assert sorted(users) == [f"u{n}" for n in range(5)]  # each exactly once
    assert app.broadcast_report(plan.broadcast_id).delivered == 5


async def test_segments_pick_members_by_tier_or_tag() -> None:
    app = await community(ScriptedAdapter())
    with pytest.raises(BroadcastError, match="unknown tier 'nonexistent'"):
        await app.broadcast("hi", segment="tier:nonexistent")
    plan, _ = await app.broadcast("hi", segment="tag:nobody-has-it")
    assert plan.actions == ()
    base = app.engine.ladder.base.name
    plan, _ = await app.broadcast("hi", segment=f"tier:{base}")
    assert len(plan.actions) == 5


async def test_bad_broadcasts_are_refused_with_the_reason() -> None:
    app = await community(ScriptedAdapter(direct_messages=False))
    with pytest.raises(BroadcastError, match="does not let a bot message members directly"):
        await app.broadcast("hi", platform="console")
    with pytest.raises(BroadcastError, match="unknown segment 'vip'"):
        await app.broadcast("hi", segment="vip")
    with pytest.raises(BroadcastError, match="no platform 'telegram'"):
        await app.broadcast("hi", platform="telegram")
    with pytest.raises(BroadcastError, match="needs a text"):
        await app.broadcast("  ")


def test_a_members_message_keeps_its_id_whichever_platform_carries_it() -> None:
    from communitykit import Capabilities, Member, PlatformIdentity
    from communitykit._broadcast import plan_broadcast

    member = Member(
        member_id="m1",
        identities=(PlatformIdentity("console", "u1"), PlatformIdentity("telegram", "42")),
        joined_at=T0,
    )
    dm = Capabilities(actions={"send_direct_message"}, direct_messages=True)
    both = plan_broadcast(
        broadcast_id="b1",
        text="hi",
        members=[member],
        capabilities={"console": dm, "telegram": dm},
    )
    one = plan_broadcast(
        broadcast_id="b1", text="hi", members=[member], capabilities={"telegram": dm}
    )
    assert [a.platform for a in both.actions] == ["console"]
    assert [a.platform for a in one.actions] == ["telegram"]
    assert both.actions[0].action_id == one.actions[0].action_id  # resumed: never twice


async def test_a_running_community_beats_in_the_store_and_stops_beating_when_stopped() -> None:
    import json
    import os

    from communitykit.app import RUNNER_META

    app, _clock = memory_app(adapters={"console": ScriptedAdapter()})
    async with app:
        await asyncio.sleep(0)  # the first beat is written as the community starts
        beat = json.loads(app.store.get_meta(RUNNER_META) or "{}")
        assert beat["pid"] == os.getpid()
        assert app.running_elsewhere() is None  # this process's own beat
    app.open(with_adapters=False)
    assert app.store.get_meta(RUNNER_META) == ""  # stopped: nobody delivers now
