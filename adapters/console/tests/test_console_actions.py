"""Performing actions: every action type, the platform's refusals, injected faults."""

from __future__ import annotations

from datetime import timedelta

import pytest
from communitykit_console import (
    ACTIONS,
    BOT,
    MAX_MESSAGE_LENGTH,
    ConsoleAdapter,
    ConsolePlatform,
    ManualClock,
)
from console_helpers import T0, Recorder, act

from communitykit import (
    ACTION_TYPES,
    Action,
    ApproveJoin,
    Ban,
    CreateInviteLink,
    DeclineJoin,
    DeleteMessage,
    Kick,
    LeaveReason,
    MemberJoined,
    MemberLeft,
    Mute,
    PermanentFailure,
    SendDirectMessage,
    SendMessage,
    SetTitle,
    TransientFailure,
    Warn,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
async def crowded(platform: ConsolePlatform) -> ConsolePlatform:
    platform.add_group("side", admins=["root"])
    for user, name in (("alice", "Alice"), ("bob", "Bob"), ("carol", "Carol")):
        await platform.join(user, "main", display_name=name)
    platform.drain_queue()
    return platform


def test_capabilities_cover_every_action_type() -> None:
    caps = ConsoleAdapter.capabilities
    assert caps.actions == frozenset(ACTION_TYPES) == ACTIONS
    assert caps.direct_messages is True
    assert caps.max_message_length == MAX_MESSAGE_LENGTH == 4096
    assert ConsoleAdapter.platform == "console"


async def test_send_message(crowded: ConsolePlatform, adapter: ConsoleAdapter) -> None:
    first = await adapter.perform(act(SendMessage, text="Welcome, Alice!"))
    assert first.platform_message_id is not None
    message = crowded.messages[first.platform_message_id]
    assert (message.group, message.author, message.text) == ("main", BOT, "Welcome, Alice!")
    reply = await adapter.perform(
        act(SendMessage, text="see above", reply_to=first.platform_message_id)
    )
    assert reply.platform_message_id != first.platform_message_id
    assert reply.platform_message_id is not None
    assert crowded.messages[reply.platform_message_id].reply_to == first.platform_message_id
    lost = await adapter.perform(act(SendMessage, text="re", reply_to="12345"))
    assert lost.platform_message_id is not None
    assert crowded.messages[lost.platform_message_id].reply_to is None
    assert crowded.transcript[-3] == "[main] 🤖 Welcome, Alice!"
    assert [a.TYPE for a, _ in adapter.performed] == ["send_message"] * 3


async def test_send_message_refusals(crowded: ConsolePlatform, adapter: ConsoleAdapter) -> None:
    exact = await adapter.perform(act(SendMessage, text="x" * MAX_MESSAGE_LENGTH))
    assert exact.platform_message_id is not None
    with pytest.raises(PermanentFailure, match="too long: 4097 characters") as too_long:
        await adapter.perform(act(SendMessage, text="x" * (MAX_MESSAGE_LENGTH + 1)))
    assert "at most 4096" in too_long.value.reason
    with pytest.raises(PermanentFailure, match=r"^chat not found$"):
        await adapter.perform(act(SendMessage, group="nowhere", text="hi"))
    with pytest.raises(PermanentFailure, match="needs a group"):
        await adapter.perform(act(SendMessage, group=None, text="hi"))
    with pytest.raises(PermanentFailure, match="empty"):
        await adapter.perform(act(SendMessage, text="  "))
    assert len(adapter.performed) == 1


async def test_send_direct_message(crowded: ConsolePlatform, adapter: ConsoleAdapter) -> None:
    with pytest.raises(PermanentFailure) as refused:
        await adapter.perform(act(SendDirectMessage, group=None, user="alice", text="hi"))
    assert refused.value.reason == "the user has not started a conversation with the bot"
    with pytest.raises(PermanentFailure, match="not started a conversation"):
        await adapter.perform(act(SendDirectMessage, group=None, user="stranger", text="hi"))
    await crowded.command("alice", None, "start")
    receipt = await adapter.perform(act(SendDirectMessage, group=None, user="alice", text="hi"))
    assert receipt.platform_message_id is not None
    message = crowded.messages[receipt.platform_message_id]
    assert (message.group, message.recipient, message.author) == (None, "alice", BOT)
    assert crowded.transcript[-1] == "[dm Alice] 🤖 hi"
    with pytest.raises(PermanentFailure, match="too long"):
        await adapter.perform(act(SendDirectMessage, user="alice", text="y" * 5000))


async def test_delete_message(crowded: ConsolePlatform, adapter: ConsoleAdapter) -> None:
    message_id = await crowded.post("bob", "main", "buy now https://spam.example")
    receipt = await adapter.perform(act(DeleteMessage, message_id=message_id))
    assert receipt.platform_message_id == message_id
    assert crowded.messages[message_id].deleted
    assert "deleted message" in crowded.transcript[-1]
    with pytest.raises(PermanentFailure, match="already deleted"):
        await adapter.perform(act(DeleteMessage, message_id=message_id))
    with pytest.raises(PermanentFailure, match="message to delete not found"):
        await adapter.perform(act(DeleteMessage, message_id="404"))
    with pytest.raises(PermanentFailure, match="message to delete not found"):
        await adapter.perform(act(DeleteMessage, group="side", message_id=message_id))
    with pytest.raises(ValueError, match="deleted"):
        await crowded.react("alice", "main", message_id, "👍")


async def test_warn(crowded: ConsolePlatform, adapter: ConsoleAdapter) -> None:
    receipt = await adapter.perform(act(Warn, user="bob", count=2, reason="posted a link"))
    assert receipt.detail == "warning 2"
    assert crowded.warnings[("main", "bob")] == 2
    assert crowded.transcript[-1] == "[main] 🤖 ⚠ warned Bob (warning 2) — posted a link"
    with pytest.raises(PermanentFailure, match="warn needs a user"):
        await adapter.perform(act(Warn, count=1))
    with pytest.raises(PermanentFailure, match="chat not found"):
        await adapter.perform(act(Warn, group="nowhere", user="bob", count=1))


async def test_mute(crowded: ConsolePlatform, adapter: ConsoleAdapter, clock: ManualClock) -> None:
    until = T0 + timedelta(hours=2)
    receipt = await adapter.perform(act(Mute, user="bob", until=until))
    assert receipt.detail == f"muted until {until.isoformat()}"
    assert crowded.mutes[("main", "bob")] == until
    assert crowded.muted_until("bob", "main") == until
    assert not crowded.can_post("bob", "main")
    clock.set(until)
    assert crowded.muted_until("bob", "main") is None
    with pytest.raises(PermanentFailure, match="not a member"):
        await adapter.perform(act(Mute, user="stranger", until=until))
    with pytest.raises(PermanentFailure, match="administrator"):
        await adapter.perform(act(Mute, group="side", user="root", until=until))


async def test_kick(crowded: ConsolePlatform, adapter: ConsoleAdapter, recorder: Recorder) -> None:
    await adapter.start(recorder)
    receipt = await adapter.perform(act(Kick, user="bob", reason="flooding"))
    assert receipt.detail == "removed from main"
    assert "bob" not in crowded.groups["main"].members
    assert crowded.transcript[-1] == "[main] 🤖 removed Bob — flooding"
    # the platform reports the removal like any update, before the next event
    assert recorder.events == []
    await crowded.post("alice", "main", "bye Bob")
    left, posted = recorder.batches[-1]
    assert isinstance(left, MemberLeft)
    assert left.reason is LeaveReason.KICKED
    assert left.user == "bob"
    assert left.group == "main"
    assert posted.event_id == f"c-{int(left.event_id[2:]) + 1}"
    again = await adapter.perform(act(Kick, user="bob"))
    assert again.detail == "was not a member"
    await crowded.join("bob", "main")  # a kicked member may come back
    with pytest.raises(PermanentFailure, match="administrator"):
        await adapter.perform(act(Kick, group="side", user="root"))


async def test_ban(crowded: ConsolePlatform, adapter: ConsoleAdapter, clock: ManualClock) -> None:
    until = T0 + timedelta(days=1)
    receipt = await adapter.perform(act(Ban, user="bob", until=until))
    assert receipt.detail == f"banned until {until.isoformat()}"
    assert crowded.bans[("main", "bob")] == until
    assert "bob" not in crowded.groups["main"].members
    [left] = crowded.drain_queue()
    assert isinstance(left, MemberLeft)
    assert left.reason is LeaveReason.BANNED
    with pytest.raises(ValueError, match="banned"):
        await crowded.join("bob", "main")
    clock.set(until + timedelta(seconds=1))
    await crowded.join("bob", "main")  # the ban ran out
    assert ("main", "bob") not in crowded.bans

    await crowded.request_join("dave", "main")
    forever = await adapter.perform(act(Ban, user="dave"))
    assert forever.detail == "banned for good"
    assert crowded.bans[("main", "dave")] is None
    assert ("main", "dave") not in crowded.join_requests  # the request went with the ban
    assert [e.TYPE for e in crowded.drain_queue()] == ["member_joined", "join_requested"]


async def test_approve_and_decline_join(crowded: ConsolePlatform, adapter: ConsoleAdapter) -> None:
    link = crowded.create_invite_link("main", "friends", creator="alice")
    await crowded.request_join("dave", "main", {"Why?": "to learn"}, invite=link.link)
    await crowded.request_join("eve", "main", {"Why?": "ads"})
    crowded.drain_queue()
    assert await adapter.perform(act(ApproveJoin, user="dave")) == adapter.performed[-1][1]
    assert "dave" in crowded.groups["main"].members
    assert ("main", "dave") not in crowded.join_requests
    [joined] = crowded.drain_queue()
    assert isinstance(joined, MemberJoined)
    assert joined.invite == link.link
    assert link.uses == 1
    declined = await adapter.perform(act(DeclineJoin, user="eve"))
    assert declined.detail == "declined"
    assert "eve" not in crowded.groups["main"].members
    assert crowded.join_requests == {}
    for cls in (ApproveJoin, DeclineJoin):
        with pytest.raises(PermanentFailure, match="no pending request"):
            await adapter.perform(act(cls, user="eve"))


async def test_create_invite_link(crowded: ConsolePlatform, adapter: ConsoleAdapter) -> None:
    receipt = await adapter.perform(act(CreateInviteLink, user="alice", name="ref-alice"))
    assert receipt.detail == "console://join/main/ref-alice"
    link = crowded.invite_links[receipt.detail]
    assert (link.group, link.name, link.creator) == ("main", "ref-alice", "alice")
    assert crowded.invite_link("main", "ref-alice") is link
    again = await adapter.perform(act(CreateInviteLink, user="alice", name="ref-alice"))
    assert again.detail == receipt.detail
    event = await crowded.join("frank", "main", invite=receipt.detail)
    assert isinstance(event, MemberJoined)
    assert event.invite == "console://join/main/ref-alice"
    assert link.uses == 1
    with pytest.raises(PermanentFailure, match="chat not found"):
        await adapter.perform(act(CreateInviteLink, group="nowhere", name="x"))


async def test_set_title(crowded: ConsolePlatform, adapter: ConsoleAdapter) -> None:
    receipt = await adapter.perform(act(SetTitle, user="carol", title="⭐ core"))
    assert receipt.detail == "⭐ core"
    assert crowded.titles[("main", "carol")] == "⭐ core"
    with pytest.raises(PermanentFailure, match="not a member"):
        await adapter.perform(act(SetTitle, user="stranger", title="x"))


@pytest.mark.parametrize(
    "action",
    [
        act(SendMessage, group="gone", text="hi"),
        act(DeleteMessage, group="gone", message_id="1"),
        act(Warn, group="gone", user="alice", count=1),
        act(Mute, group="gone", user="alice", until=T0),
        act(Kick, group="gone", user="alice"),
        act(Ban, group="gone", user="alice"),
        act(ApproveJoin, group="gone", user="alice"),
        act(DeclineJoin, group="gone", user="alice"),
        act(CreateInviteLink, group="gone", name="x"),
        act(SetTitle, group="gone", user="alice", title="x"),
    ],
    ids=lambda a: a.TYPE,
)
async def test_a_missing_group_is_chat_not_found(
    crowded: ConsolePlatform, adapter: ConsoleAdapter, action: Action
) -> None:
    with pytest.raises(PermanentFailure) as refused:
        await adapter.perform(action)
    assert refused.value.reason == "chat not found"


async def test_fault_injection(crowded: ConsolePlatform, adapter: ConsoleAdapter) -> None:
    crowded.fail_next(2, retry_after=1.5)
    crowded.fail_next(1, transient=False)
    action = act(SendMessage, text="hello")
    for _ in range(2):
        with pytest.raises(TransientFailure, match="injected") as transient:
            await adapter.perform(action)
        assert transient.value.retry_after == 1.5
    with pytest.raises(PermanentFailure, match="injected"):
        await adapter.perform(action)
    assert adapter.performed == []
    assert not any(m.author == BOT for m in crowded.messages.values())
    receipt = await adapter.perform(action)
    assert receipt.platform_message_id is not None
    with pytest.raises(ValueError, match="negative"):
        crowded.fail_next(-1)
