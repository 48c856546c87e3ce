"""Long polling: the offset moves on only once the sink recorded a batch."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest
from communitykit_telegram import TelegramAdapter
from structlog.testing import capture_logs
from telegram_helpers import GROUP_ID, Host, MakeAdapter, Recorder, eventually
from tests.doubles.telegram import TelegramDouble, callback_query_update, message_update

from communitykit import CommandInvoked, CommunityKitError, Event, MessagePosted

pytestmark = pytest.mark.anyio


def offsets(double: TelegramDouble) -> list[int | None]:
    return [call.params.get("offset") for call in double.calls_to("getUpdates")]


async def test_updates_become_events_and_the_offset_follows(
    double: TelegramDouble, adapter: TelegramAdapter, recorder: Recorder
) -> None:
    first = double.push_update(message_update(GROUP_ID, 42, "hello"))
    await adapter.start(recorder)
    assert adapter.running
    await eventually(lambda: recorder.events)
    [event] = recorder.events
    assert isinstance(event, MessagePosted)
    assert (event.event_id, event.text, event.group) == (f"u{first}", "hello", str(GROUP_ID))
    await eventually(lambda: adapter.offset == first + 1)
    second = double.push_update(message_update(GROUP_ID, 43, "/checkin"))
    await eventually(lambda: len(recorder.events) == 2)
    assert isinstance(recorder.events[1], CommandInvoked)
    await eventually(lambda: adapter.offset == second + 1)
    await eventually(lambda: double.pending_updates() == [])  # confirmed to Telegram
    assert offsets(double)[0] is None
    assert first + 1 in offsets(double)
    [get_updates] = double.calls_to("getUpdates")[:1]
    assert get_updates.params["allowed_updates"] == list(adapter.allowed_updates)
    assert "chat_member" in get_updates.params["allowed_updates"]


async def test_a_failing_sink_gets_the_same_updates_again(
    double: TelegramDouble, adapter: TelegramAdapter
) -> None:
    sink = Recorder(fail=2)
    ids = [double.push_update(message_update(GROUP_ID, 42, f"m{n}")) for n in range(3)]
    with capture_logs() as logs:
        await adapter.start(sink)
        await eventually(lambda: sink.batches)
    assert len(sink.calls) == 3
    expected = [f"u{i}" for i in ids]
    for call in sink.calls:  # the same three updates, three times: nothing lost, no skip
        assert [e.event_id for e in call] == expected
    assert [e.event_id for e in sink.events] == expected
    # the polls after each failure asked from the same place: nothing confirmed early
    assert offsets(double)[:3] == [None, None, None]
    await eventually(lambda: adapter.offset == ids[-1] + 1)
    failures = [log for log in logs if log["event"] == "telegram.sink_failed"]
    assert len(failures) == 2
    assert "the store is unavailable" in failures[0]["error"]


async def test_malformed_updates_are_skipped_and_logged(
    double: TelegramDouble, adapter: TelegramAdapter, recorder: Recorder
) -> None:
    broken = [
        double.push_update({"message": "not an object"}),
        double.push_update({"message": {"chat": {"id": GROUP_ID}, "date": "yesterday"}}),
        double.push_update({"edited_message": {"message_id": 1, "chat": None}}),
    ]
    good = double.push_update(message_update(GROUP_ID, 42, "still here"))
    with capture_logs() as logs:
        await adapter.start(recorder)
        await eventually(lambda: recorder.events)
        await eventually(lambda: adapter.offset == good + 1)
    assert [e.event_id for e in recorder.events] == [f"u{good}"]
    skipped = [log["update_id"] for log in logs if log["event"] == "telegram.update_skipped"]
    assert skipped == broken
    await eventually(lambda: double.pending_updates() == [])  # skipped ones are confirmed too


async def test_a_callback_query_is_recorded_then_answered(
    double: TelegramDouble, adapter: TelegramAdapter, recorder: Recorder
) -> None:
    double.push_update(callback_query_update(GROUP_ID, 42, "checkin", query_id="press-1"))
    await adapter.start(recorder)
    await eventually(lambda: recorder.events)
    [event] = recorder.events
    assert isinstance(event, CommandInvoked)
    assert event.command == "checkin"
    answered = await eventually(lambda: double.calls_to("answerCallbackQuery"))
    assert answered[0].params["callback_query_id"] == "press-1"


async def test_a_migration_update_tells_the_host(
    double: TelegramDouble, adapter: TelegramAdapter, recorder: Recorder
) -> None:
    host = Host()
    adapter.host = host
    update = message_update(-4001, 42, "x")
    del update["message"]["text"]
    update["message"]["migrate_to_chat_id"] = GROUP_ID
    double.push_update(update)
    await adapter.start(recorder)
    await eventually(lambda: host.moves)
    assert host.moves == [("telegram", "-4001", str(GROUP_ID))]


async def test_stop_cancels_the_long_poll_at_once(
    double: TelegramDouble, make_adapter: MakeAdapter, recorder: Recorder
) -> None:
    adapter = make_adapter(double, poll_timeout=50)
    await adapter.start(recorder)
    assert await asyncio.to_thread(double.wait_until_polling, 5.0)
    began = time.monotonic()
    await adapter.stop()
    assert time.monotonic() - began < 1.0
    assert not adapter.running
    await adapter.stop()  # idempotent
    double.push_update(message_update(GROUP_ID, 42, "after stop"))
    await adapter.start(recorder)  # and it can start again
    await eventually(lambda: recorder.events)


async def test_stop_lets_a_batch_being_recorded_finish(
    double: TelegramDouble, adapter: TelegramAdapter
) -> None:
    entered, release = asyncio.Event(), asyncio.Event()
    recorded: list[str] = []

    async def slow_sink(events: Sequence[Event]) -> None:
        entered.set()
        await release.wait()  # the engine is writing the batch
        recorded.extend(e.event_id for e in events)

    update_id = double.push_update(message_update(GROUP_ID, 42, "being recorded"))
    await adapter.start(slow_sink)
    await asyncio.wait_for(entered.wait(), 5.0)
    stopping = asyncio.create_task(adapter.stop())
    await asyncio.sleep(0)  # stop() is waiting for the batch, not cancelling it
    assert not stopping.done()
    release.set()
    await asyncio.wait_for(stopping, 5.0)
    assert recorded == [f"u{update_id}"]
    assert adapter.offset == update_id + 1


async def test_a_conflict_is_logged_clearly_and_polling_goes_on(
    double: TelegramDouble, make_adapter: MakeAdapter, recorder: Recorder
) -> None:
    owner = make_adapter(double, webhook_secret="s3cret")
    await owner.set_webhook("http://127.0.0.1:9/telegram")
    adapter = make_adapter(double)
    with capture_logs() as logs:
        await adapter.start(recorder)
        await eventually(lambda: [log for log in logs if log["event"] == "telegram.poll_conflict"])
        await owner.delete_webhook()
        double.push_update(message_update(GROUP_ID, 42, "back"))
        await eventually(lambda: recorder.events)
    conflict = next(log for log in logs if log["event"] == "telegram.poll_conflict")
    assert conflict["log_level"] == "error"
    assert "webhook" in conflict["description"]
    assert "deleteWebhook" in conflict["hint"]


async def test_network_errors_back_off_and_retry(
    double: TelegramDouble, make_adapter: MakeAdapter, recorder: Recorder
) -> None:
    adapter = make_adapter(double, max_retries=0)
    double.fail_next(3, 502, methods=["getUpdates"])
    double.push_update(message_update(GROUP_ID, 42, "eventually"))
    with capture_logs() as logs:
        await adapter.start(recorder)
        await eventually(lambda: recorder.events)
    assert len([log for log in logs if log["event"] == "telegram.poll_failed"]) == 3


async def test_a_429_on_the_long_poll_is_waited_out(
    double: TelegramDouble, adapter: TelegramAdapter, recorder: Recorder
) -> None:
    double.inject_429(1, methods=["getUpdates"])
    double.push_update(message_update(GROUP_ID, 42, "after the wait"))
    began = time.monotonic()
    await adapter.start(recorder)
    await eventually(lambda: recorder.events)
    assert time.monotonic() - began >= 1.0  # retry_after, not a tight loop of polls
    assert double.count_429 == 1
    polls = double.calls_to("getUpdates")
    assert len(polls) <= 2


async def test_a_refused_token_fails_start_clearly(
    double: TelegramDouble, make_adapter: MakeAdapter, recorder: Recorder
) -> None:
    adapter = make_adapter(double, token="999999:REVOKED-ccccccccccccccccccccccccccccccc")
    with pytest.raises(CommunityKitError, match="token was refused") as refused:
        await adapter.start(recorder)
    assert "REVOKED" not in str(refused.value)
    assert not adapter.running
