"""The crowd: deterministic, time-ordered, heavy-tailed."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from communitykit_console import ConsoleAdapter, ConsolePlatform, Crowd, ManualClock
from console_helpers import Recorder

from communitykit import (
    ApproveJoin,
    CommandInvoked,
    Event,
    JoinRequested,
    Kick,
    MemberJoined,
    MessagePosted,
    event_from_json,
)

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 1, tzinfo=timezone(timedelta(hours=8)))  # a midnight


async def play(seed: int, *, members: int = 200, days: int = 3) -> list[Event]:
    clock = ManualClock(T0)
    platform = ConsolePlatform(clock=clock)
    crowd = Crowd(platform, members=members, seed=seed)
    events: list[Event] = []
    for day in range(days):
        produced = await crowd.run_day(T0 + timedelta(days=day), clock.set)
        batch = platform.drain_queue()
        assert produced == len(batch)
        events.extend(batch)
    return events


async def test_the_same_seed_gives_the_same_events() -> None:
    first = [e.to_json() for e in await play(7)]
    second = [e.to_json() for e in await play(7)]
    assert first == second
    assert len(first) > 500
    other = [e.to_json() for e in await play(8)]
    assert other != first


async def test_events_are_time_ordered_well_formed_and_varied() -> None:
    events = await play(7, days=4)
    times = [e.at for e in events]
    assert times == sorted(times)
    assert times[0] >= T0
    assert times[-1] < T0 + timedelta(days=4)
    assert [e.event_id for e in events] == [f"c-{n}" for n in range(1, len(events) + 1)]
    for event in events[:: max(1, len(events) // 300)]:
        assert event_from_json(event.to_json()) == event
    kinds = Counter(e.TYPE for e in events)
    for kind in (
        "member_joined",
        "message_posted",
        "reaction_added",
        "command_invoked",
        "join_requested",
        "message_edited",
    ):
        assert kinds[kind] > 0, kind
    commands = Counter(e.command for e in events if isinstance(e, CommandInvoked))
    assert commands["checkin"] > 0
    assert commands["start"] > 0
    joins = [e for e in events if isinstance(e, MemberJoined)]
    assert any(j.invite is not None for j in joins)
    assert any(j.added_by is not None for j in joins)
    posts = [e for e in events if isinstance(e, MessagePosted)]
    assert any(p.media is not None for p in posts)
    assert any(p.reply_to is not None for p in posts)
    requests = [e for e in events if isinstance(e, JoinRequested)]
    assert all(r.answers for r in requests)
    # members join over the first days, not all at once
    join_days = Counter((j.at - T0).days for j in joins)
    assert join_days[0] > join_days[1] > 0
    assert join_days[3] > 0
    # check-ins happen in the morning
    for event in events:
        if event.TYPE == "command_invoked" and event.group is not None:
            assert 6 <= event.at.hour < 10


async def test_activity_is_heavy_tailed() -> None:
    events = await play(7, members=300, days=5)
    posts = Counter(e.user for e in events if isinstance(e, MessagePosted))
    counts = sorted(posts.values(), reverse=True) + [0] * (300 - len(posts))
    top = sum(counts[: len(counts) // 10])
    assert top / sum(counts) > 0.4
    assert counts.count(0) > 20  # and many only read


async def test_the_crowd_follows_what_the_engine_does() -> None:
    clock = ManualClock(T0)
    platform = ConsolePlatform(clock=clock)
    adapter = ConsoleAdapter(platform)
    recorder = Recorder()
    await adapter.start(recorder)
    crowd = Crowd(platform, members=120, seed=3)
    await crowd.run_day(T0, clock.set)
    main = platform.groups["main"]
    removed = sorted(main.members)[:10]
    for index, user in enumerate(removed):
        await adapter.perform(
            Kick(
                action_id=f"k{index}",
                platform="console",
                group="main",
                user=user,
                source="test",
                reason="removed",
            )
        )
    for index, (group, user) in enumerate(sorted(platform.join_requests)):
        await adapter.perform(
            ApproveJoin(
                action_id=f"ok{index}",
                platform="console",
                group=group,
                user=user,
                source="test",
                reason="answers look fine",
            )
        )
    before = len(recorder.events)
    for day in range(1, 4):
        await crowd.run_day(T0 + timedelta(days=day), clock.set)
    later = recorder.events[before:]
    spoke = {e.user for e in later if e.TYPE in ("message_posted", "reaction_added")}
    assert not spoke & set(removed)
    assert [e.TYPE for e in later[:10]] == ["member_left"] * 10
    times = [e.at for e in later]
    assert times == sorted(times)
