"""Every action on the Bot API (the double), and what each failure becomes."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from communitykit_telegram import MAX_MESSAGE_LENGTH, TelegramAdapter, priority_of, utf16_len
from telegram_helpers import GROUP_ID, Host, MakeAdapter, Recorder, act, eventually
from tests.doubles.telegram import TelegramDouble, message_update

from communitykit import (
    ApproveJoin,
    Ban,
    CreateInviteLink,
    DeclineJoin,
    DeleteMessage,
    Kick,
    Mute,
    PermanentFailure,
    SendDirectMessage,
    SendMessage,
    SetTitle,
    TransientFailure,
    Warn,
)
from communitykit.http import Priority

pytestmark = pytest.mark.anyio


async def test_send_message_and_reply(double: TelegramDouble, adapter: TelegramAdapter) -> None:
    receipt = await adapter.perform(act(SendMessage, text="Welcome!"))
    [delivery] = double.delivered(GROUP_ID)
    assert delivery.text == "Welcome!"
    assert receipt.platform_message_id == str(delivery.message_id)
    assert receipt.detail == "sent"
    reply = await adapter.perform(act(SendMessage, text="Noted", reply_to="7"))
    sent = double.delivered(GROUP_ID)[-1]
    assert sent.params["reply_parameters"] == {"message_id": 7, "allow_sending_without_reply": True}
    assert reply.platform_message_id == str(sent.message_id)


async def test_send_direct_message_goes_to_the_users_private_chat(
    double: TelegramDouble, adapter: TelegramAdapter
) -> None:
    receipt = await adapter.perform(act(SendDirectMessage, group=None, user="42", text="hi"))
    [delivery] = double.delivered(42)
    assert delivery.text == "hi"
    assert receipt.platform_message_id == str(delivery.message_id)


async def test_a_long_text_is_split_in_utf16_units(
    double: TelegramDouble, adapter: TelegramAdapter
) -> None:
    paragraph = "打卡第一天 🎉 " * 120  # CJK (1 unit) and an emoji (2 units) per word
    text = "\n\n".join([paragraph.strip()] * 12)
    assert utf16_len(text) > 3 * MAX_MESSAGE_LENGTH
    assert len(text) < utf16_len(text)
    receipt = await adapter.perform(act(SendMessage, text=text, reply_to="3"))
    parts = double.delivered(GROUP_ID)
    assert len(parts) >= 4
    assert all(utf16_len(p.text or "") <= MAX_MESSAGE_LENGTH for p in parts)
    assert all(p.text and p.text == p.text.strip() for p in parts)
    # nothing lost, nothing repeated, in order; cut at paragraph boundaries
    assert "\n\n".join(p.text or "" for p in parts) == text
    assert receipt.platform_message_id == str(parts[0].message_id)
    assert receipt.detail.startswith(f"sent in {len(parts)} parts")
    assert "reply_parameters" in parts[0].params
    assert all("reply_parameters" not in p.params for p in parts[1:])


async def test_a_failed_long_message_is_sent_whole_on_retry(
    double: TelegramDouble, make_adapter: MakeAdapter
) -> None:
    adapter = make_adapter(double, max_retries=0)
    action = act(SendMessage, text="\n".join(["line"] * 2000))  # 9,999 units: three parts
    double.fail_next(1, 500, chat_id=GROUP_ID)
    double.fail_next(1, 500, chat_id=GROUP_ID)  # the first part goes, then the second fails
    with pytest.raises(TransientFailure):
        await adapter.perform(action)
    with pytest.raises(TransientFailure):
        await adapter.perform(action)
    assert double.delivered(GROUP_ID) == []
    receipt = await adapter.perform(action)  # the dispatcher's retry
    parts = double.delivered(GROUP_ID)
    assert len(parts) == 3
    assert receipt.platform_message_id == str(parts[0].message_id)


async def test_a_part_delivered_before_a_later_part_failed_is_kept(
    double: TelegramDouble, make_adapter: MakeAdapter
) -> None:
    adapter = make_adapter(double, max_retries=0)
    action = act(SendMessage, text="\n".join(["line"] * 2000))
    first = await adapter.perform(act(SendMessage, text="before"))
    assert first.platform_message_id is not None
    # make the second send of this action fail: one failure queued after one success
    original = adapter.client.post
    calls = 0

    async def flaky(path: str, **kwargs: object) -> object:
        nonlocal calls
        if path == "sendMessage":
            calls += 1
            if calls == 2:
                double.fail_next(1, 500, chat_id=GROUP_ID)
        return await original(path, **kwargs)

    adapter.client.post = flaky  # type: ignore[method-assign]
    with pytest.raises(TransientFailure):
        await adapter.perform(action)
    assert len(double.delivered(GROUP_ID)) == 2  # "before" and part one
    receipt = await adapter.perform(action)
    texts = [d.text for d in double.delivered(GROUP_ID)]
    assert len(texts) == 4  # parts two and three only: part one is not repeated
    assert receipt.platform_message_id == str(double.delivered(GROUP_ID)[1].message_id)


async def test_warn_mentions_the_member_with_utf16_offsets(
    double: TelegramDouble, adapter: TelegramAdapter
) -> None:
    adapter.normalizer.normalize(
        {
            "update_id": 1,
            "message": {
                "message_id": 5,
                "date": 1_770_000_000,
                "chat": {"id": GROUP_ID, "type": "supergroup"},
                "from": {"id": 42, "is_bot": False, "first_name": "Ana 🌸"},
                "text": "hello",
            },
        }
    )
    receipt = await adapter.perform(act(Warn, user="42", count=2, reason="no links, please"))
    [delivery] = double.delivered(GROUP_ID)
    assert delivery.text == "⚠️ Ana 🌸, warning 2: no links, please"
    [mention] = delivery.entities or []
    assert mention["type"] == "text_mention"
    assert mention["user"]["id"] == 42
    assert mention["offset"] == utf16_len("⚠️ ")  # 3: the sign and its variation selector
    assert mention["length"] == utf16_len("Ana 🌸") == 6
    assert receipt.platform_message_id == str(delivery.message_id)


async def test_moderation_calls(double: TelegramDouble, adapter: TelegramAdapter) -> None:
    until = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    mute = await adapter.perform(act(Mute, user="42", until=until))
    [restrict] = double.calls_to("restrictChatMember")
    assert restrict.params["chat_id"] == GROUP_ID
    assert restrict.params["user_id"] == 42
    assert restrict.params["until_date"] == int(until.timestamp())
    assert restrict.params["permissions"]["can_send_messages"] is False
    assert not any(restrict.params["permissions"].values())
    assert mute.detail == f"muted until {until.isoformat()}"

    kick = await adapter.perform(act(Kick, user="43"))
    assert [c.method for c in double.calls[-2:]] == ["banChatMember", "unbanChatMember"]
    assert double.calls[-1].params["only_if_banned"] is True
    assert kick.detail.startswith("removed")

    await adapter.perform(act(Ban, user="44", until=until))
    assert double.calls[-1].params == {"chat_id": GROUP_ID, "user_id": 44, "until_date": 1893553445}
    forever = await adapter.perform(act(Ban, user="45"))
    assert "until_date" not in double.calls[-1].params
    assert forever.detail == "banned for good"

    # Telegram takes an until_date under 30 s ahead as forever: never send one
    calls = len(double.calls)
    late = await adapter.perform(
        act(Mute, user="48", until=datetime.now(UTC) - timedelta(seconds=5))
    )
    assert late.detail == "mute already expired"
    assert len(double.calls) == calls
    soon = datetime.now(UTC) + timedelta(seconds=5)
    await adapter.perform(act(Mute, user="49", until=soon))
    assert double.calls[-1].params["until_date"] - time.time() > 30
    await adapter.perform(act(Ban, user="50", until=datetime.now(UTC) - timedelta(seconds=5)))
    assert double.calls[-1].params["until_date"] - time.time() > 30

    await adapter.perform(act(ApproveJoin, user="46"))
    await adapter.perform(act(DeclineJoin, user="47"))
    assert [(c.method, c.params["user_id"]) for c in double.calls[-2:]] == [
        ("approveChatJoinRequest", 46),
        ("declineChatJoinRequest", 47),
    ]


async def test_delete_message(double: TelegramDouble, adapter: TelegramAdapter) -> None:
    double.push_update(message_update(GROUP_ID, 42, "spam", message_id=9))
    receipt = await adapter.perform(act(DeleteMessage, message_id="9"))
    assert receipt.detail == "deleted"
    assert double.calls_to("deleteMessage")[0].params == {"chat_id": GROUP_ID, "message_id": 9}
    again = await adapter.perform(act(DeleteMessage, message_id="9"))  # a retry after a timeout
    assert again.detail == "already deleted"


async def test_create_invite_link(double: TelegramDouble, adapter: TelegramAdapter) -> None:
    receipt = await adapter.perform(act(CreateInviteLink, user="42", name="ref-42"))
    [call] = double.calls_to("createChatInviteLink")
    assert call.params["name"] == "ref-42"
    assert receipt.detail == call.result["invite_link"]
    assert receipt.detail.startswith("https://t.me/+")
    long = await adapter.perform(act(CreateInviteLink, name="x" * 40))
    assert double.calls_to("createChatInviteLink")[-1].params["name"] == "x" * 32
    assert long.detail


async def test_set_title(double: TelegramDouble, adapter: TelegramAdapter) -> None:
    receipt = await adapter.perform(act(SetTitle, user="42", title="Gold"))
    [call] = double.calls_to("setChatAdministratorCustomTitle")
    assert call.params == {"chat_id": GROUP_ID, "user_id": 42, "custom_title": "Gold"}
    assert receipt.detail == "Gold"
    double.fail_next(
        1,
        400,
        description="Bad Request: user is not an administrator",
        methods=["setChatAdministratorCustomTitle"],
    )
    with pytest.raises(PermanentFailure) as refused:
        await adapter.perform(act(SetTitle, user="43", title="Gold"))
    assert "user is not an administrator" in refused.value.reason
    assert refused.value.unreachable is False


async def test_a_blocked_user_is_unreachable(
    double: TelegramDouble, adapter: TelegramAdapter
) -> None:
    double.block(77)
    with pytest.raises(PermanentFailure) as blocked:
        await adapter.perform(act(SendDirectMessage, group=None, user="77", text="hi"))
    assert blocked.value.unreachable is True
    assert "bot was blocked by the user" in blocked.value.reason
    double.set_chat_not_found(78)  # never started the bot
    with pytest.raises(PermanentFailure) as never:
        await adapter.perform(act(SendDirectMessage, group=None, user="78", text="hi"))
    assert never.value.unreachable is True
    await adapter.perform(act(SendDirectMessage, group=None, user="79", text="hi"))
    assert [d.chat_id for d in double.delivered()] == [79]


async def test_a_member_who_writes_again_is_reachable_again(
    double: TelegramDouble, adapter: TelegramAdapter, recorder: Recorder
) -> None:
    double.block(77)
    dm = act(SendDirectMessage, group=None, user="77", text="hi")
    with pytest.raises(PermanentFailure):
        await adapter.perform(dm)
    with pytest.raises(PermanentFailure):  # known unreachable: refused without a request
        await adapter.perform(act(SendDirectMessage, group=None, user="77", text="again"))
    assert len(double.refusals) == 1
    double.unblock(77)
    double.push_update(message_update(77, 77, "/start"))  # they started the bot again
    await adapter.start(recorder)
    await eventually(lambda: recorder.events)
    await adapter.perform(act(SendDirectMessage, group=None, user="77", text="welcome back"))
    assert [d.text for d in double.delivered(77)] == ["welcome back"]


async def test_a_migrated_group_is_followed_and_the_host_told(
    double: TelegramDouble, adapter: TelegramAdapter
) -> None:
    host = Host()
    adapter.host = host
    new_id = double.migrate(-4001)
    receipt = await adapter.perform(act(SendMessage, group="-4001", text="first"))
    assert host.moves == [("telegram", "-4001", str(new_id))]
    [delivery] = double.delivered(new_id)
    assert delivery.text == "first"
    assert receipt.platform_message_id == str(delivery.message_id)
    migrated = [r for r in double.refusals if r.reason == "migrated"]
    assert len(migrated) == 1
    await adapter.perform(act(SendMessage, group="-4001", text="second"))  # queued before
    await adapter.perform(act(Kick, group="-4001", user="42"))
    assert [d.text for d in double.delivered(new_id)] == ["first", "second"]
    assert double.calls_to("banChatMember")[-1].params["chat_id"] == new_id
    assert len([r for r in double.refusals if r.reason == "migrated"]) == 1  # asked once
    assert host.moves == [("telegram", "-4001", str(new_id))]  # told once


async def test_a_migration_is_followed_without_a_host(
    double: TelegramDouble, adapter: TelegramAdapter
) -> None:
    new_id = double.migrate(-4002)
    await adapter.perform(act(Ban, group="-4002", user="42"))
    assert double.calls_to("banChatMember")[-1].params["chat_id"] == new_id


async def test_an_injected_429_is_waited_out_and_delivered_once(
    double: TelegramDouble, adapter: TelegramAdapter
) -> None:
    double.inject_429(1, chat_id=GROUP_ID)
    receipt = await adapter.perform(act(SendMessage, text="after the wait"))
    [refusal] = double.refusals
    assert refusal.status == 429
    assert refusal.retry_after == 1
    [delivery] = double.delivered(GROUP_ID)
    assert delivery.text == "after the wait"
    assert delivery.at - refusal.at >= 1.0  # retry_after was honoured
    assert receipt.platform_message_id == str(delivery.message_id)
    assert double.count_429 == 1


async def test_server_errors_are_retried_then_transient(
    double: TelegramDouble, make_adapter: MakeAdapter
) -> None:
    adapter = make_adapter(double, max_retries=2)
    double.fail_next(2, 502)  # an HTML page from the proxy, twice
    await adapter.perform(act(SendMessage, text="third time lucky"))
    assert [d.text for d in double.delivered(GROUP_ID)] == ["third time lucky"]
    double.fail_next(3, 500)
    with pytest.raises(TransientFailure) as failed:
        await adapter.perform(act(SendMessage, text="gave up"))
    assert "gave up after 3 attempts" in failed.value.reason
    assert len(double.delivered(GROUP_ID)) == 1


async def test_a_refused_request_is_permanent_with_telegrams_description(
    double: TelegramDouble, adapter: TelegramAdapter
) -> None:
    with pytest.raises(PermanentFailure) as empty:
        await adapter.perform(act(SendMessage, text="   "))
    assert empty.value.reason == "sendMessage: Bad Request: message text is empty"
    assert empty.value.unreachable is False
    with pytest.raises(PermanentFailure, match="not a Telegram chat id"):
        await adapter.perform(act(SendMessage, group="main", text="hi"))
    with pytest.raises(PermanentFailure, match="needs a group"):
        await adapter.perform(act(Kick, group=None, user="42"))
    with pytest.raises(PermanentFailure, match="not a Telegram id"):
        await adapter.perform(act(Kick, user="ana"))


async def test_a_revoked_token_is_a_permanent_failure(
    double: TelegramDouble, make_adapter: MakeAdapter
) -> None:
    adapter = make_adapter(double, token="999999:REVOKED-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")
    with pytest.raises(PermanentFailure) as refused:
        await adapter.perform(act(SendMessage, text="hi"))
    assert "token was refused" in refused.value.reason
    assert "REVOKED" not in refused.value.reason


async def test_paid_broadcast_uses_the_paid_lane_for_bulk_only(
    double: TelegramDouble, make_adapter: MakeAdapter
) -> None:
    adapter = make_adapter(double, paid_broadcast=True)
    await adapter.perform(
        act(SendDirectMessage, group=None, user="42", text="news", source="broadcast:b-1")
    )
    await adapter.perform(act(SendDirectMessage, group=None, user="43", text="reply"))
    bulk, reply = double.delivered()
    assert bulk.params["allow_paid_broadcast"] is True
    assert "allow_paid_broadcast" not in reply.params


def test_priorities() -> None:
    assert priority_of(act(SendDirectMessage, user="1", text="x", source="broadcast:b")) == (
        Priority.LOW
    )
    assert priority_of(act(SendMessage, text="x", source="broadcast:b", reply_to="1")) == (
        Priority.LOW
    )
    assert priority_of(act(SendMessage, text="x", reply_to="1")) == Priority.HIGH
    assert priority_of(act(Warn, user="1", count=1)) == Priority.HIGH
    assert priority_of(act(DeleteMessage, message_id="1")) == Priority.HIGH
    assert priority_of(act(Mute, user="1", until=datetime.now(UTC) + timedelta(hours=1))) == (
        Priority.HIGH
    )
    assert priority_of(act(SendMessage, text="x")) == Priority.NORMAL
    assert priority_of(act(CreateInviteLink, name="x")) == Priority.NORMAL


async def test_a_long_text_of_white_space_is_refused_not_retried(
    double: TelegramDouble, adapter: TelegramAdapter
) -> None:
    with pytest.raises(PermanentFailure, match="no text to send"):
        await adapter.perform(act(SendMessage, text=" \n" * 3000))
    assert double.delivered() == []
