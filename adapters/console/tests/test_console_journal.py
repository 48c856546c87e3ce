"""The journal: an action is performed once at the receiver, across adapters and crashes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from communitykit_console import (
    BOT,
    ConsoleAdapter,
    ConsolePlatform,
    JournalError,
    ManualClock,
)
from console_helpers import Recorder, act

from communitykit import CreateInviteLink, Kick, PlatformSettings, SendMessage

pytestmark = pytest.mark.anyio


def fresh(path: Path, clock: ManualClock) -> ConsoleAdapter:
    return ConsoleAdapter(ConsolePlatform(clock=clock, groups=["main"]), journal=path)


def bot_messages(adapter: ConsoleAdapter) -> list[str]:
    state = adapter.platform_state
    return [m.text for m in state.messages.values() if m.author == BOT]


async def test_a_new_adapter_on_the_same_journal_does_not_perform_twice(
    tmp_path: Path, clock: ManualClock
) -> None:
    path = tmp_path / "var" / "journal.jsonl"
    first = fresh(path, clock)
    await first.start(Recorder())
    action = act(SendMessage, text="Welcome!")
    receipt = await first.perform(action)
    assert bot_messages(first) == ["Welcome!"]
    assert await first.perform(action) == receipt  # a retry in the same process
    assert bot_messages(first) == ["Welcome!"]

    record = json.loads(path.read_text().splitlines()[0])
    assert record["action_id"] == action.action_id
    assert record["type"] == "send_message"
    assert record["receipt"]["platform_message_id"] == receipt.platform_message_id
    assert len(path.read_text().splitlines()) == 1

    second = fresh(path, clock)  # a new process after a crash
    await second.start(Recorder())
    again = await second.perform(action)
    assert again == receipt
    assert bot_messages(second) == []  # not applied again
    assert second.performed == []
    other = await second.perform(act(SendMessage, text="Next"))
    assert bot_messages(second) == ["Next"]
    assert other.platform_message_id is not None
    assert len(path.read_text().splitlines()) == 2


async def test_the_journal_is_honoured_before_start(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "journal.jsonl"
    action = act(CreateInviteLink, user="alice", name="ref")
    receipt = await fresh(path, clock).perform(action)
    assert receipt.detail == "console://join/main/ref"
    later = fresh(path, clock)
    assert await later.perform(action) == receipt
    assert later.platform_state.invite_links == {}


async def test_two_live_adapters_sharing_a_journal_perform_once(
    tmp_path: Path, clock: ManualClock
) -> None:
    path = tmp_path / "journal.jsonl"
    one, two = fresh(path, clock), fresh(path, clock)
    await one.start(Recorder())
    await two.start(Recorder())
    action = act(SendMessage, text="only once")
    receipt = await one.perform(action)
    assert await two.perform(action) == receipt
    assert bot_messages(one) == ["only once"]
    assert bot_messages(two) == []


async def test_a_line_cut_short_by_a_crash_is_tolerated(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "journal.jsonl"
    done = act(SendMessage, text="done")
    cut = act(SendMessage, text="cut short")
    receipt = await fresh(path, clock).perform(done)
    whole = path.read_bytes()
    line = json.dumps({"action_id": cut.action_id, "type": "send_message", "receipt": {}})
    path.write_bytes(whole + line[:25].encode())  # the crash: half a line, no newline

    restarted = fresh(path, clock)
    await restarted.start(Recorder())
    assert restarted.journal is not None
    assert restarted.journal.repaired == 25
    assert path.read_bytes() == whole  # the torn line is gone
    assert await restarted.perform(done) == receipt
    assert bot_messages(restarted) == []
    await restarted.perform(cut)  # never confirmed, so performed now
    assert bot_messages(restarted) == ["cut short"]
    lines = path.read_text().splitlines()
    assert [json.loads(x)["action_id"] for x in lines] == [done.action_id, cut.action_id]


async def test_a_last_line_missing_only_its_newline_is_kept(
    tmp_path: Path, clock: ManualClock
) -> None:
    path = tmp_path / "journal.jsonl"
    action = act(SendMessage, text="hi")
    receipt = await fresh(path, clock).perform(action)
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    again = fresh(path, clock)
    assert await again.perform(action) == receipt
    assert bot_messages(again) == []
    await again.perform(act(SendMessage, text="next"))
    assert len(path.read_text().splitlines()) == 2


async def test_a_damaged_line_in_the_middle_is_an_error(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "journal.jsonl"
    adapter = fresh(path, clock)
    await adapter.perform(act(Kick, user="nobody"))
    path.write_text("not json\n" + path.read_text())
    with pytest.raises(JournalError, match="damaged at line 1"):
        await fresh(path, clock).start(Recorder())


async def test_the_journal_option_of_the_settings(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    settings = PlatformSettings(name="console", options={"journal": str(path)})
    adapter = ConsoleAdapter.from_settings(settings)
    assert adapter.journal is not None
    assert adapter.journal.path == path
