"""Broadcast at the platform's limit: communitykit against a naive asyncio.gather.

Against the local Telegram double (``tests/doubles/telegram.py``, strict sliding
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
import logging
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import structlog

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.doubles.telegram import RateLimits, TelegramDouble

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
    api_base: str, folder: Path, chats: list[int], group_messages: int, scale: float
) -> tuple[float, float]:
    """Seconds for the direct-message broadcast, then for the group messages."""
    from communitykit_telegram import TelegramAdapter

    from communitykit import CommunityApp, Member, PlatformIdentity, SendMessage, parse_config
    from communitykit.http import TELEGRAM, RateLimit
    from communitykit.model import LinkMethod, LinkProvenance

    limits = TELEGRAM.with_scope("group", RateLimit(20, 60.0 * scale), target=True)
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


def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=300)
    parser.add_argument("--group-messages", type=int, default=25)
    parser.add_argument(
        "--group-scale", type=float, default=1.0, help="shrink the 60 s group window (0.1: 6 s)"
    )
    parser.add_argument("--skip-naive", action="store_true")
    args = parser.parse_args()
    chats = list(range(1001, 1001 + args.chats))
    limits = RateLimits()
    limits = RateLimits(
        per_bot=limits.per_bot,
        per_bot_window=limits.per_bot_window,
        per_group=limits.per_group,
        per_group_window=limits.per_group_window * args.group_scale,
        per_private=limits.per_private,
        per_private_window=limits.per_private_window,
    )
    dm_minimum = args.chats / limits.per_bot * limits.per_bot_window
    group_minimum = args.group_messages / limits.per_group * limits.per_group_window
    runs: list[Run] = []

    with TelegramDouble(tokens=[TOKEN], limits=limits) as telegram:
        telegram.add_chat(GROUP, "supergroup", title="benchmark")
        with tempfile.TemporaryDirectory() as folder:
            dm, group = asyncio.run(
                with_communitykit(
                    telegram.base_url, Path(folder), chats, args.group_messages, args.group_scale
                )
            )
        stats = telegram.stats
        dm_429 = sum(telegram.count_429_for(chat) for chat in chats)
        runs.append(
            Run(
                "communitykit, 300 direct messages",
                dm,
                dm_minimum,
                sum(len(telegram.delivered(chat)) for chat in chats),
                len(chats),
                dm_429,
            )
        )
        runs.append(
            Run(
                f"communitykit, {args.group_messages} to one group",
                group,
                group_minimum,
                len(telegram.delivered(GROUP)),
                args.group_messages,
                telegram.count_429_for(GROUP),
            )
        )
        assert stats.too_many_requests == dm_429 + telegram.count_429_for(GROUP)
        densest = telegram.max_in_window(None, limits.per_bot_window)
        print(f"communitykit: densest {limits.per_bot_window:g} s window held {densest} messages")

        if not args.skip_naive:
            telegram.reset()
            telegram.add_chat(GROUP, "supergroup", title="benchmark")
            start = time.perf_counter()
            asyncio.run(naive(telegram.base_url, chats, args.group_messages))
            seconds = time.perf_counter() - start
            runs.append(
                Run(
                    "naive asyncio.gather, both at once",
                    seconds,
                    max(dm_minimum, group_minimum),
                    len(telegram.deliveries),
                    len(chats) + args.group_messages,
                    telegram.count_429,
                )
            )

    print(f"{'':<38} {'wall':>10}  {'(minimum / wall)':>16}")
    for run in runs:
        print(run.line())


if __name__ == "__main__":
    main()
