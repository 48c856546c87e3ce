"""A worker for the crash test: runs a community on SQLite and the console
adapter (with a journal), feeding a recorded event log in batches and
delivering after each. Killed with SIGKILL at any moment and started again, it
must deliver every action exactly once and never award points twice.

Usage: python crash_worker.py WORKDIR [inline|writer]

``writer``: every batch, however small, is written by the SQLite store's writer
process (as large batches are), so a kill also lands while it holds a batch.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from communitykit import (
    CommunityApp,
    Decision,
    MessagePosted,
    RuleContext,
    SendMessage,
    event_from_json,
    parse_config,
)
from communitykit.store import SQLiteStore

BATCH = 20


class Echo:
    """One reply per message: so every event also leaves an action in the outbox."""

    name = "echo"

    def evaluate(self, ctx: RuleContext) -> Decision | None:
        if not isinstance(ctx.event, MessagePosted):
            return None
        return Decision(
            source="rule:echo",
            explanation="acknowledge",
            actions=[
                ctx.action(SendMessage, "rule:echo", "ack", text=f"got {ctx.event.message_id}")
            ],
        )


def config_text(workdir: Path) -> str:
    return f"""
[community]
name = "crash test"
store = "sqlite:///{workdir / "community.db"}"

[[groups]]
key = "main"
platform = "console"
id = "main"

[platforms.console]
journal = "{workdir / "journal.jsonl"}"
groups = ["main"]

[points]
message = 3
message_daily_cap = 100000
"""


async def run(workdir: Path, mode: str) -> None:
    app = CommunityApp(parse_config(config_text(workdir)), rules=[Echo()])
    app.open()
    if mode == "writer":
        store = app.store
        assert isinstance(store, SQLiteStore)
        store._writer_rows = 1
    events = [
        event_from_json(line)
        for line in (workdir / "events.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    progress = workdir / "progress"
    # Like an adapter after a restart, deliver everything again from the start:
    # what was already recorded is recognised and skipped.
    for start in range(0, len(events), BATCH):
        await app.feed(events[start : start + BATCH])
        await app.deliver()
        progress.write_text(str(start + BATCH))
    await app.deliver()
    app.close()
    progress.write_text("done")


if __name__ == "__main__":
    asyncio.run(run(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "inline"))
