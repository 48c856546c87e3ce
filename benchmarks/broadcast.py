"""Broadcast at the platform's limit: communitykit against a naive asyncio.gather.

Against the local Telegram double (``tests/doubles/telegram.py``, run in a process
of its own on 127.0.0.1; strict sliding
windows: 30 messages/s per bot, 1/s per private chat, 20/min per group):

* **direct messages**: one message each to 300 private chats; the platform's
  minimum is 300 / 30 = 10 s;
* **group**: 25 messages to one group; the platform's minimum is 25 / (20/min)
  = 75 s (``--group-scale`` shrinks the group window, in the double and in the
  limits communitykit paces by alike, to keep the run short).

For each: wall time, the ratio of the platform's minimum to the wall time (1.0 =
at the limit), 429s, and messages delivered. communitykit runs a real community
(SQLite store in a temporary folder, the Telegram adapter, ``app.broadcast`` and
the dispatcher); the baseline sends the same messages with ``asyncio.gather`` of
httpx requests, retrying each 429 after its ``retry_after`` (without the retry,
those messages are lost).

Run:  .venv/bin/python benchmarks/broadcast.py [--chats 300] [--group-messages 25]
      [--group-scale 1.0] [--skip-naive]
Aim:  ratio >= 0.95 with zero 429s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import structlog

ROOT = Path(__file__).resolve().parents[1]

TOKEN = "123456:BENCHMARK-TOKEN"
GROUP = -1001234567890


@dataclass
class Run:
    name: str
    seconds: float
    minimum: float
    delivered: int
    expected: int
    too_many: int

    def line(self) -> str:
        return (
            f"{self.name:<38} {self.seconds:8.2f} s  ratio {self.minimum / self.seconds:5.2f}  "
            f"429s {self.too_many:5d}  delivered {self.delivered}/{self.expected}"
        )


async def naive(base_url: str, chats: list[int], group_messages: int) -> None:
    """What a script does first: fire everything, sleep on 429, try again."""
    async with httpx.AsyncClient(base_url=base_url, trust_env=False, timeout=120) as client:

        async def send(chat_id: int, text: str) -> None:
            while True:
                answer = await client.post(
                    f"/bot{TOKEN}/sendMessage", json={"chat_id": chat_id, "text": text}
                )
                if answer.status_code != 429:
                    return
                await asyncio.sleep(answer.json()["parameters"]["retry_after"])

        await asyncio.gather(
            *(send(chat, "news") for chat in chats),
            *(send(GROUP, f"group {n}") for n in range(group_messages)),
        )


CONFIG = """
[community]
name = "broadcast benchmark"
timezone = "UTC"
store = "sqlite:///{db}"

[[groups]]
key = "main"
platform = "telegram"
id = "{group}"
"""


async def with_communitykit(
    api_base: str, folder: Path, chats: list[int], group_messages: int, scale: float, margin: float
) -> tuple[float, float]:
    """Seconds for the direct-message broadcast, then for the group messages."""
    from communitykit_telegram import TelegramAdapter

    from communitykit import CommunityApp, Member, PlatformIdentity, SendMessage, parse_config
    from communitykit.http import TELEGRAM, RateLimit
    from communitykit.model import LinkMethod, LinkProvenance

    limits = TELEGRAM.with_margin(margin).with_scope(
        "group", RateLimit(20, 60.0 * scale), target=True
    )
    adapter = TelegramAdapter(TOKEN, api_base=api_base, limits=limits)
    config = parse_config(CONFIG.format(db=folder / "bench.db", group=GROUP))
    app = CommunityApp(config, adapters={"telegram": adapter})
    app.open()
    try:
        now = datetime.now(UTC)
        members = [
            Member(
                member_id=f"telegram:{chat}",
                identities=(PlatformIdentity("telegram", str(chat)),),
                joined_at=now,
            )
            for chat in chats
        ]
        await app.engine.import_members(members, LinkProvenance(method=LinkMethod.IMPORT, at=now))

        start = time.perf_counter()
        plan, _ = await app.broadcast("news", platform="telegram")
        await app.deliver()
        dm_seconds = time.perf_counter() - start
        report = app.broadcast_report(plan.broadcast_id)
        if report.delivered != len(chats):
            print(f"  communitykit broadcast: {report}", file=sys.stderr)

        start = time.perf_counter()
        await app.engine.queue_actions(
            [
                SendMessage(
                    action_id=f"bench-group-{n}",
                    platform="telegram",
                    group=str(GROUP),
                    source="rule:benchmark",
                    reason="benchmark",
                    text=f"group {n}",
                )
                for n in range(group_messages)
            ]
        )
        await app.deliver()
        group_seconds = time.perf_counter() - start
    finally:
        await adapter.close()
        app.close()
    return dm_seconds, group_seconds


class Double:
    """The Telegram double in a process of its own (its clock then reads arrivals
    as a remote server's would, not late by this process's hold on the interpreter)."""

    def __init__(self, group_window: float, report: Path) -> None:
        self.report = report
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.doubles.telegram",
                "--token",
                TOKEN,
                "--group",
                str(GROUP),
                "--group-window",
                str(group_window),
                "--report",
                str(report),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        found = re.search(r"(http://127\.0\.0\.1:\d+)", line)
        if found is None:
            self.process.kill()
            raise SystemExit(f"the Telegram double did not start: {line!r}")
        self.base_url = found.group(1)

    def stop(self) -> dict[str, Any]:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        report: dict[str, Any] = json.loads(self.report.read_text(encoding="utf-8"))
        return report


def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=300)
    parser.add_argument("--group-messages", type=int, default=25)
    parser.add_argument(
        "--group-scale", type=float, default=1.0, help="shrink the 60 s group window (0.1: 6 s)"
    )
    parser.add_argument(
        "--margin", type=float, default=None, help="rate margin (default: the adapter's)"
    )
    parser.add_argument("--skip-naive", action="store_true")
    args = parser.parse_args()
    from communitykit_telegram import DEFAULT_RATE_MARGIN

    margin = DEFAULT_RATE_MARGIN if args.margin is None else args.margin
    print(f"rate margin {margin:.0%} under Telegram's limits")
    chats = list(range(1001, 1001 + args.chats))
    group_window = 60.0 * args.group_scale
    dm_minimum = args.chats / 30
    group_minimum = args.group_messages / 20 * group_window
    runs: list[Run] = []

    with tempfile.TemporaryDirectory() as folder:
        double = Double(group_window, Path(folder) / "ck.json")
        try:
            dm, group = asyncio.run(
                with_communitykit(
                    double.base_url,
                    Path(folder),
                    chats,
                    args.group_messages,
                    args.group_scale,
                    margin,
                )
            )
        finally:
            seen = double.stop()
        delivered, refused = seen["delivered"], seen["too_many_requests_by_chat"]
        runs.append(
            Run(
                f"communitykit, {args.chats} direct messages",
                dm,
                dm_minimum,
                sum(delivered.get(str(chat), 0) for chat in chats),
                len(chats),
                sum(refused.get(str(chat), 0) for chat in chats),
            )
        )
        runs.append(
            Run(
                f"communitykit, {args.group_messages} to one group",
                group,
                group_minimum,
                delivered.get(str(GROUP), 0),
                args.group_messages,
                refused.get(str(GROUP), 0),
            )
        )
        print(
            f"communitykit: densest 1 s window {seen['densest_bot_window']} messages (limit 30), "
            f"densest group window {seen['densest_group_window'][str(GROUP)]} (limit 20)"
        )

        if not args.skip_naive:
            double = Double(group_window, Path(folder) / "naive.json")
            try:
                start = time.perf_counter()
                asyncio.run(naive(double.base_url, chats, args.group_messages))
                seconds = time.perf_counter() - start
            finally:
                seen = double.stop()
            runs.append(
                Run(
                    "naive asyncio.gather, both at once",
                    seconds,
                    max(dm_minimum, group_minimum),
                    sum(seen["delivered"].values()),
                    len(chats) + args.group_messages,
                    seen["too_many_requests"],
                )
            )

    print(f"{'':<38} {'wall':>10}  {'(minimum / wall)':>16}")
    for run in runs:
        print(run.line())


if __name__ == "__main__":
    main()
