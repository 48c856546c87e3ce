"""A whole community on Telegram: config, entry point, polling, engine, outbox, the double."""

from __future__ import annotations

from typing import Any

import pytest
from communitykit_telegram import TelegramAdapter
from telegram_helpers import eventually
from tests.doubles.fixtures import TEST_TOKEN
from tests.doubles.telegram import TelegramDouble, message_update

from communitykit import CommunityApp, parse_config

pytestmark = pytest.mark.anyio

GROUP = -4001
CONFIG = """
[community]
name = "readers"
timezone = "UTC"
store = "memory://"

[[groups]]
key = "main"
platform = "telegram"
id = "{group}"

[platforms.telegram]
token = "${{TELEGRAM_TOKEN}}"
api_base = "{base}"
poll_timeout = 1
"""


def joined(user_id: int, invite: str | None = None) -> dict[str, Any]:
    update: dict[str, Any] = {
        "chat_member": {
            "chat": {"id": GROUP, "type": "group", "title": "Readers"},
            "from": {"id": user_id, "is_bot": False, "first_name": f"U{user_id}"},
            "date": 1_774_747_800,
            "old_chat_member": {"status": "left", "user": {"id": user_id, "is_bot": False}},
            "new_chat_member": {
                "status": "member",
                "user": {"id": user_id, "is_bot": False, "first_name": f"U{user_id}"},
            },
        }
    }
    if invite is not None:
        update["chat_member"]["invite_link"] = {"invite_link": invite}
    return update


async def test_a_community_runs_on_telegram(double: TelegramDouble) -> None:
    config = parse_config(
        CONFIG.format(group=GROUP, base=double.base_url), environ={"TELEGRAM_TOKEN": TEST_TOKEN}
    )
    app = CommunityApp(config)
    users = list(range(101, 111))
    for user_id in users:
        double.push_update(joined(user_id))
    double.push_update(message_update(GROUP, 101, "hello everyone"))
    double.block(105)
    async with app:
        adapter = app.adapters["telegram"]
        assert isinstance(adapter, TelegramAdapter)  # found through the entry point
        await eventually(lambda: all(app.member("telegram", str(u)) for u in users))
        member = app.member("telegram", "101")
        assert member is not None
        await eventually(lambda: app.balance(member.member_id) > 0)  # points for the message

        plan, queued = await app.broadcast("Book club on Friday!", platform="telegram")
        assert queued == len(users)
        report = await eventually(
            lambda: (r := app.broadcast_report(plan.broadcast_id)).done and r, timeout=10
        )
        assert (report.delivered, report.unreachable, report.failed) == (9, 1, 0)
        sent = sorted(d.chat_id for d in double.delivered() if d.text == "Book club on Friday!")
        assert sent == [u for u in users if u != 105]  # once each, never to the blocked one

        # the group becomes a supergroup: the community follows it
        new_id = double.migrate(GROUP)
        update = message_update(GROUP, 101, "x")
        del update["message"]["text"]
        update["message"]["migrate_to_chat_id"] = new_id
        double.push_update(update)
        await eventually(lambda: app.engine.community.group("telegram", str(new_id)))
        group = app.engine.community.group("telegram", str(new_id))
        assert group is not None
        assert group.key == "main"
    assert double.count_429 == 0
