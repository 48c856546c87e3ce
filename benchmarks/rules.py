# ruff: noqa: RUF001 - the chat is in Chinese, with its full-width punctuation
"""Messages per second through every built-in rule type at once, 10,000 active members.

* **Rule evaluation alone**: each message becomes a ``RuleContext`` (its member's
  recent messages kept as the engine keeps them) and every rule that wants
  messages evaluates it: ``links``, ``keywords``, ``flood``, ``duplicates`` and
  ``captcha`` (``entry``, ``size_cap`` and ``inactivity`` are configured too, but
  messages are not theirs). Baseline in the same run: the same loop with the
  contexts built and the recent messages kept, and no rule asked.
* **Through the engine**: the same messages fed to a community on the in-memory
  store, with all rules on and with none (points only), in batches of 1,000.

The stream is realistic chat: mostly plain Chinese and English messages, with
links (half of them allowed), blocked words, bursts and repeated texts mixed in.

Run:  .venv/bin/python benchmarks/rules.py [--messages N] [--members M]
Aim: >= 50,000 messages/s for rule evaluation alone.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import random
import statistics
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from communitykit import (
    Capabilities,
    CommunityApp,
    Decision,
    Member,
    MemberState,
    MessagePosted,
    PlatformIdentity,
    Recent,
    RuleContext,
    SimulatedClock,
    fingerprint,
    make_plugin_manager,
    parse_config,
)
from communitykit.model import ACTION_TYPES, RuleScope
from communitykit.store import MemoryStore

START = datetime(2026, 3, 1, tzinfo=UTC)

CONFIG = """
[community]
name = "rules benchmark"
timezone = "Asia/Shanghai"

[[groups]]
key = "main"
platform = "console"
id = "main"
size_cap = 500

[[groups]]
key = "side"
platform = "console"
id = "side"

[points]
message = 1

[[rules]]
type = "links"
allow = ["python.org", "github.com"]

[[rules]]
type = "keywords"
block = ["加微信", "代购", "spam", "re:v\\\\s*x\\\\s*\\\\d{5,}"]

[[rules]]
type = "flood"
messages = 5
seconds = 10

[[rules]]
type = "duplicates"
times = 3
within = "1h"

[[rules]]
type = "entry"
questions = [{ question = "城市？" }]

[[rules]]
type = "captcha"

[[rules]]
type = "inactivity"

[[rules]]
type = "size_cap"

[[rules]]
type = "warning_ladder"
"""

PLAIN = [
    "今天的分享很有用，谢谢大家 👍",
    "早上好！今天跑步了吗？",
    "Does anyone know a good place for coffee near the station?",
    "周末的活动几点开始？我想带朋友一起来",
    "I pushed the slides to the group drive, have a look",
    "收到，晚上见",
    "这本书我读完了，推荐给大家：第三章写得特别好",
]
LINKS = [
    "文档在这里 https://docs.python.org/3/",
    "see github.com/communitykit",
    "看这个 spamshop。com",
]
BLOCKED = ["便宜代购 加微信 abc", "vx 123456 私聊", "SPAM offer today"]


def make_messages(count: int, members: int, seed: int = 7) -> list[MessagePosted]:
    rng = random.Random(seed)
    step = timedelta(seconds=86400 / count * 3)  # three days of chat
    out: list[MessagePosted] = []
    n = 0
    while len(out) < count:
        user = f"u{int(rng.paretovariate(1.2) * 31) % members}"
        at = START + step * n
        roll = rng.random()
        if roll < 0.01:  # a burst: one member, eight messages in four seconds
            texts = [f"{rng.choice(PLAIN)} #{n}.{i}" for i in range(8)]
            gap = timedelta(seconds=0.5)
        elif roll < 0.02:  # the same text three times in two groups
            texts = ["加入我们的投资群，收益翻倍，名额有限"] * 3
            gap = timedelta(minutes=5)
        elif roll < 0.05:
            texts, gap = [rng.choice(LINKS)], step
        elif roll < 0.07:
            texts, gap = [rng.choice(BLOCKED)], step
        else:  # people rarely say exactly the same thing twice
            texts, gap = [f"{rng.choice(PLAIN)} #{n}"], step
        for i, text in enumerate(texts):
            n += 1
            out.append(
                MessagePosted(
                    event_id=f"m{n}",
                    platform="console",
                    group="main" if (n + i) % 3 else "side",
                    user=user,
                    at=at + gap * i,
                    message_id=str(n),
                    text=text,
                )
            )
    return out[:count]


def build_rules() -> list[Any]:
    config = parse_config(CONFIG)
    types = make_plugin_manager().rule_types()
    rules = []
    for entry in config.rules:
        _scope, settings = RuleScope.split(entry.settings)
        rules.append(types[entry.type].factory(settings))
    return rules


def evaluate_alone(messages: list[MessagePosted], members: int, *, ask: bool) -> tuple[float, int]:
    """Messages per second through the rules (or through the harness alone)."""
    config = parse_config(CONFIG)
    community = config.community
    rules = build_rules()
    asked = [r.evaluate for r in rules if "message_posted" in getattr(r, "event_types", ())]
    window = max(
        (w for r in rules if isinstance(w := getattr(r, "window", None), timedelta)),
        default=timedelta(0),
    )
    capabilities = Capabilities(actions=ACTION_TYPES, direct_messages=True)
    tier = config.ladder.base
    people: dict[str, tuple[Member, MemberState]] = {}
    for i in range(members):
        user = f"u{i}"
        member = Member(
            member_id=f"console:{user}",
            identities=(PlatformIdentity("console", user),),
            joined_at=START - timedelta(days=60),
        )
        people[user] = (
            member,
            MemberState(member_id=member.member_id, tier=tier.name, tier_since=START),
        )
    recent: dict[str, collections.deque[Recent]] = collections.defaultdict(
        lambda: collections.deque(maxlen=64)
    )
    states: dict[tuple[str, str], Mapping[str, Any]] = {}
    nothing: Callable[[str], Any] = lambda _key: None  # noqa: E731
    verdicts = 0
    t0 = time.process_time()
    for event in messages:
        member, state = people[event.user]
        mine = recent[event.user]
        horizon = event.at - window
        while mine and mine[0].at < horizon:
            mine.popleft()
        member_id = member.member_id
        ctx = RuleContext(
            event=event,
            member=member,
            state=state,
            tier=tier,
            balance=0,
            community=community,
            capabilities=capabilities,
            now=event.at,
            cap_remaining=nothing,
            member_of=nothing,
            already_awarded=lambda _key: False,
            recent=tuple(mine),
            rule_state=lambda name, m=member_id: states.get((name, m), {}),  # type: ignore[misc]
        )
        if ask:
            for evaluate in asked:
                decision: Decision | None = evaluate(ctx)
                if decision is not None and not decision.empty:
                    verdicts += 1
                    if decision.state is not None:
                        states[(decision.source.partition(":")[2], member_id)] = decision.state
        mine.append(
            Recent(event.at, event.platform, event.group, event.message_id, fingerprint(event.text))
        )
    elapsed = time.process_time() - t0
    return len(messages) / elapsed, verdicts


async def through_engine(messages: list[MessagePosted], *, with_rules: bool) -> float:
    from communitykit_console import ConsoleAdapter

    text = CONFIG if with_rules else CONFIG.split("[[rules]]")[0]
    clock = SimulatedClock(messages[-1].at)
    store = MemoryStore()
    store.open()
    app = CommunityApp(
        parse_config(text + "\n[platforms.console]\n"),
        clock=clock,
        store=store,
        adapters={"console": ConsoleAdapter()},
    )
    app.open()
    t0 = time.process_time()
    for start in range(0, len(messages), 1000):
        await app.engine.process(messages[start : start + 1000])
    elapsed = time.process_time() - t0
    app.close()
    return len(messages) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    messages = make_messages(args.messages, args.members)
    print(
        f"{len(messages):,} messages from {args.members:,} members; CPU time, best of {args.runs}"
    )

    alone, harness, verdicts = [], [], 0
    for _ in range(args.runs):
        harness.append(evaluate_alone(messages, args.members, ask=False)[0])
        rate, verdicts = evaluate_alone(messages, args.members, ask=True)
        alone.append(rate)
    best, base = max(alone), max(harness)
    # the rules' own share: what asking them adds per message to the harness
    own = 1 / (1 / best - 1 / base)
    print(f"harness only (contexts and recent messages, no rule asked): {base:>10,.0f} msg/s")
    print(
        f"all built-in rules, harness included:                      {best:>10,.0f} msg/s "
        f"(median {statistics.median(alone):,.0f}; {verdicts:,} verdicts)"
    )
    print(
        f"rule evaluation alone (harness time taken out):            {own:>10,.0f} msg/s "
        f"(aim 50,000: {own / 50_000:.2f}x)"
    )

    engine_rules = max(
        asyncio.run(through_engine(messages, with_rules=True)) for _ in range(args.runs)
    )
    engine_bare = max(
        asyncio.run(through_engine(messages, with_rules=False)) for _ in range(args.runs)
    )
    print(f"engine, memory store, points only:                         {engine_bare:>10,.0f} msg/s")
    print(
        f"engine, memory store, every rule:                          {engine_rules:>10,.0f} msg/s "
        f"({engine_rules / engine_bare:.2f}x of points only)"
    )


if __name__ == "__main__":
    main()
