"""Driving the platform: each user action makes exactly one well-formed event."""

from __future__ import annotations

import io
from datetime import date, timedelta
from decimal import Decimal

import pytest
from communitykit_console import BOT, ConsoleAdapter, ConsolePlatform, ManualClock
from console_helpers import T0, Recorder, act

from communitykit import (
    Ban,
    CommandInvoked,
    DeleteMessage,
    Event,
    JoinRequested,
    Kick,
    LeaveReason,
    Media,
    MemberJoined,
    MemberLeft,
    MemberPaid,
    MessageEdited,
    MessagePosted,
    Mute,
    ReactionAdded,
    SendDirectMessage,
    SendMessage,
    event_from_json,
)

pytestmark = pytest.mark.anyio


def roundtrip(event: Event) -> Event:
    again = event_from_json(event.to_json())
    assert again == event
    assert again.to_json() == event.to_json()
    return again


async def members(platform: ConsolePlatform, *users: str) -> None:
    for user in users:
        await platform.join(user, "main", display_name=user.title())
    platform.drain_queue()


async def test_every_driver_method_emits_one_event_that_round_trips(
    platform: ConsolePlatform, clock: ManualClock
) -> None:
    link = platform.create_invite_link("main", "spring", creator="alice")
    await platform.join("alice", "main", display_name="Alice")
    clock.advance(timedelta(minutes=1))
    await platform.join("bob", "main", display_name="Bob", invite=link.link)
    await platform.join("carol", "main", added_by="alice")
    message_id = await platform.post("alice", "main", "hello")
    reply_id = await platform.post("bob", "main", "hi!", reply_to=message_id, media="photo")
    await platform.edit("alice", "main", message_id, "hello all")
    await platform.react("bob", "main", message_id, "👍")
    await platform.command("alice", "main", "checkin")
    await platform.command("bob", None, "/start")
    await platform.request_join("dave", "main", {"Why join?": "to learn"}, invite=link.link)
    await platform.pay("alice", "99.00", "CNY", date(2027, 3, 1))
    await platform.leave("carol", "main")

    events = platform.drain_queue()
    assert [type(e) for e in events] == [
        MemberJoined,
        MemberJoined,
        MemberJoined,
        MessagePosted,
        MessagePosted,
        MessageEdited,
        ReactionAdded,
        CommandInvoked,
        CommandInvoked,
        JoinRequested,
        MemberPaid,
        MemberLeft,
    ]
    assert [e.event_id for e in events] == [f"c-{n}" for n in range(1, 13)]
    assert all(e.platform == "console" for e in events)
    assert events[0].at == T0
    assert events[1].at == T0 + timedelta(minutes=1)
    for event in events:
        roundtrip(event)
        assert event.at.utcoffset() is not None

    alice, bob, carol, post, reply, edit, reaction, checkin, start, request, paid, left = events
    assert isinstance(alice, MemberJoined)
    assert alice.display_name == "Alice"
    assert alice.invite is None
    assert alice.group == "main"
    assert alice.user == "alice"
    assert isinstance(bob, MemberJoined)
    assert bob.invite == "console://join/main/spring"
    assert isinstance(carol, MemberJoined)
    assert carol.added_by == "alice"
    assert isinstance(post, MessagePosted)
    assert post.message_id == message_id
    assert post.text == "hello"
    assert post.reply_to is None
    assert post.media is None
    assert isinstance(reply, MessagePosted)
    assert reply.message_id == reply_id
    assert reply.reply_to == message_id
    assert reply.media is Media.PHOTO
    assert isinstance(edit, MessageEdited)
    assert edit.message_id == message_id
    assert edit.text == "hello all"
    assert isinstance(reaction, ReactionAdded)
    assert reaction.to_user == "alice"
    assert reaction.emoji == "👍"
    assert reaction.message_id == message_id
    assert isinstance(checkin, CommandInvoked)
    assert checkin.command == "checkin"
    assert checkin.args == ()
    assert checkin.group == "main"
    assert isinstance(start, CommandInvoked)
    assert start.command == "start"
    assert start.group is None
    assert '"group"' not in start.to_json()
    assert isinstance(request, JoinRequested)
    assert dict(request.answers) == {"Why join?": "to learn"}
    assert request.invite == link.link
    assert isinstance(paid, MemberPaid)
    assert paid.amount == Decimal("99.00")
    assert paid.currency == "CNY"
    assert paid.valid_until == date(2027, 3, 1)
    assert paid.group is None
    assert '"amount": "99.00"' in paid.to_json()
    assert isinstance(left, MemberLeft)
    assert left.reason is LeaveReason.LEFT


async def test_driving_changes_the_state(platform: ConsolePlatform) -> None:
    link = platform.create_invite_link("main", "spring", creator="alice")
    await members(platform, "alice")
    await platform.join("bob", "main", invite=link.link)
    message_id = await platform.post("alice", "main", "hello")
    await platform.edit("alice", "main", message_id, "hello all")
    await platform.react("bob", "main", message_id, "🎉")
    await platform.command("bob", None, "start")
    await platform.request_join("carol", "main", {"q": "a"})
    await platform.pay("bob", "10", "USD")
    await platform.leave("bob", "main", "kicked")

    group = platform.groups["main"]
    assert group.members == {"alice"}
    assert link.uses == 1
    message = platform.messages[message_id]
    assert (message.group, message.author, message.text, message.edits) == (
        "main",
        "alice",
        "hello all",
        1,
    )
    assert message.reactions == [("bob", "🎉")]
    assert platform.users["bob"].started_bot
    assert not platform.users["alice"].started_bot
    assert platform.join_requests[("main", "carol")].answers == {"q": "a"}
    assert [p.amount for p in platform.payments] == [Decimal("10")]
    assert platform.transcript[-1] == "[main] ← bob was removed"
    assert "[main] Alice: hello" in platform.transcript


async def test_a_banned_user_or_a_stranger_cannot_post(
    platform: ConsolePlatform, adapter: ConsoleAdapter
) -> None:
    await members(platform, "alice", "bob")
    with pytest.raises(ValueError, match="'zed' is not a member of 'main' and cannot post there"):
        await platform.post("zed", "main", "hi")

    await adapter.perform(act(Ban, user="bob"))
    with pytest.raises(ValueError, match="'bob' is banned from 'main' and cannot post there"):
        await platform.post("bob", "main", "let me in")
    with pytest.raises(ValueError, match="banned from 'main' and cannot join"):
        await platform.join("bob", "main")

    until = T0 + timedelta(hours=1)
    await adapter.perform(act(Mute, user="alice", until=until))
    with pytest.raises(ValueError, match="'alice' is muted in 'main' until"):
        await platform.post("alice", "main", "hi")
    assert platform.why_cannot_post("alice", "main") is not None
    assert isinstance(platform.clock, ManualClock)
    platform.clock.set(until + timedelta(seconds=1))
    assert platform.can_post("alice", "main")
    await platform.post("alice", "main", "I am back")


async def test_script_mistakes_are_value_errors(platform: ConsolePlatform) -> None:
    await members(platform, "alice", "bob")
    message_id = await platform.post("alice", "main", "hello")
    platform.drain_queue()
    with pytest.raises(ValueError, match="no group 'nowhere'"):
        await platform.join("alice", "nowhere")
    with pytest.raises(ValueError, match="already a member"):
        await platform.join("alice", "main")
    with pytest.raises(ValueError, match="is not an invite link to 'main'"):
        await platform.join("carol", "main", invite="console://join/main/nope")
    with pytest.raises(ValueError, match="cannot add"):
        await platform.join("carol", "main", added_by="zed")
    with pytest.raises(ValueError, match="cannot leave"):
        await platform.leave("carol", "main")
    with pytest.raises(ValueError, match="'bob' cannot edit message"):
        await platform.edit("bob", "main", message_id, "mine now")
    with pytest.raises(ValueError, match="cannot react to message '999'"):
        await platform.react("bob", "main", "999", "👍")
    with pytest.raises(ValueError, match="cannot reply to message '999'"):
        await platform.post("bob", "main", "re", reply_to="999")
    with pytest.raises(ValueError, match="cannot react there"):
        await platform.react("zed", "main", message_id, "👍")
    with pytest.raises(ValueError, match="needs a name"):
        await platform.command("alice", "main", "/")
    with pytest.raises(ValueError, match="decimal string"):
        await platform.pay("alice", "-1", "CNY")
    with pytest.raises(ValueError, match="already a member"):
        await platform.request_join("alice", "main")
    await platform.request_join("carol", "main")
    with pytest.raises(ValueError, match="already has a pending request"):
        await platform.request_join("carol", "main")
    assert [e.event_id for e in platform.drain_queue()] == ["c-4"]  # no id was used up


async def test_events_go_to_the_connected_sink_and_queue_without_one(
    platform: ConsolePlatform, adapter: ConsoleAdapter, recorder: Recorder
) -> None:
    await platform.join("alice", "main")  # before start: queued
    assert platform.queued == 1
    await adapter.start(recorder)
    assert [[e.event_id for e in b] for b in recorder.batches] == [["c-1"]]
    await platform.post("alice", "main", "one")
    await platform.post("alice", "main", "two")
    assert [len(b) for b in recorder.batches] == [1, 1, 1]
    assert platform.drain_queue() == []

    async with platform.batch():
        await platform.post("alice", "main", "three")
        async with platform.batch():
            await platform.post("alice", "main", "four")
        await platform.command("alice", "main", "checkin")
        assert len(recorder.batches) == 3
    assert [e.event_id for e in recorder.batches[-1]] == ["c-4", "c-5", "c-6"]

    await adapter.stop()
    await adapter.stop()  # idempotent
    await platform.post("alice", "main", "five")
    assert len(recorder.batches) == 4
    assert [e.event_id for e in platform.drain_queue()] == ["c-7"]


async def test_a_failing_sink_keeps_the_events_queued(platform: ConsolePlatform) -> None:
    calls: list[int] = []

    async def broken(events: object) -> None:
        calls.append(1)
        raise RuntimeError("engine down")

    platform.connect(broken)
    with pytest.raises(RuntimeError, match="engine down"):
        await platform.join("alice", "main")
    assert platform.queued == 1

    async def failing_block() -> None:
        async with platform.batch():
            await platform.post("alice", "main", "kept")
            raise RuntimeError("inside the block")

    with pytest.raises(RuntimeError, match="inside"):
        await failing_block()
    assert len(calls) == 1  # the failed block handed nothing over
    recorder = Recorder()
    platform.connect(recorder)
    await platform.flush()
    assert [e.event_id for e in recorder.events] == ["c-1", "c-2"]


async def test_events_carry_the_clock_time_and_a_naive_clock_is_refused(
    clock: ManualClock,
) -> None:
    platform = ConsolePlatform(clock=clock, groups={"main": "Main group"}, event_prefix="x-")
    assert platform.groups["main"].title == "Main group"
    clock.set(T0 + timedelta(days=2))
    event = await platform.join("alice", "main")
    assert event.at == T0 + timedelta(days=2)
    assert event.event_id == "x-1"
    naive = ConsolePlatform(clock=lambda: T0.replace(tzinfo=None), groups=["main"])
    with pytest.raises(ValueError, match="UTC offset"):
        await naive.join("alice", "main")
    with pytest.raises(ValueError, match="UTC offset"):
        ManualClock(T0.replace(tzinfo=None))


async def test_a_direct_message_starts_the_bot_and_has_no_group(
    platform: ConsolePlatform,
) -> None:
    message_id = await platform.post("zoe", None, "hello bot")
    event = platform.drain_queue()[0]
    assert isinstance(event, MessagePosted)
    assert event.group is None
    assert platform.users["zoe"].started_bot
    assert platform.messages[message_id].group is None
    assert platform.transcript[-1] == "[dm zoe] zoe: hello bot"


async def test_the_transcript_is_printed_when_not_quiet(clock: ManualClock) -> None:
    out = io.StringIO()
    platform = ConsolePlatform(clock=clock, groups=["main"], quiet=False, out=out)
    adapter = ConsoleAdapter(platform)
    await platform.join("alice", "main", display_name="Alice")
    await adapter.perform(act(SendMessage, text="Welcome, Alice!"))
    assert out.getvalue().splitlines() == ["[main] → Alice joined", "[main] 🤖 Welcome, Alice!"]
    assert platform.transcript == out.getvalue().splitlines()
    assert platform.messages["1"].author == BOT


async def test_observe_mirrors_a_recorded_log_without_emitting(
    platform: ConsolePlatform, adapter: ConsoleAdapter
) -> None:
    lines = [
        '{"type": "member_joined", "event_id": "tg-1", "platform": "telegram", '
        '"group": "-100", "user": "42", "at": "2026-03-29T01:30:00+08:00", "display_name": "Li"}',
        '{"type": "message_posted", "event_id": "tg-2", "platform": "telegram", '
        '"group": "-100", "user": "7", "at": "2026-03-29T01:31:00+08:00", '
        '"message_id": "5", "text": "buy now https://spam.example"}',
        '{"type": "command_invoked", "event_id": "tg-3", "platform": "telegram", '
        '"user": "42", "at": "2026-03-29T01:32:00+08:00", "command": "start", "args": []}',
    ]
    for line in [*lines, lines[0]]:
        platform.observe(event_from_json(line))
    assert platform.drain_queue() == []
    assert platform.groups["-100"].members == {"42", "7"}
    assert platform.users["42"].started_bot
    await adapter.perform(act(DeleteMessage, group="-100", message_id="5"))
    await adapter.perform(act(Kick, group="-100", user="7"))
    receipt = await adapter.perform(act(SendDirectMessage, group=None, user="42", text="hi"))
    assert receipt.platform_message_id == "6"  # the recorded message ids are not reused
    assert platform.messages["5"].deleted
    assert platform.groups["-100"].members == {"42"}
