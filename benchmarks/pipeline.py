"""Events through the engine: throughput, latency to the outbox, memory.

* **Throughput**: a 10,000-member community with the default rules and points
  (a point per message capped per day, a point per reaction received, tier
  multipliers) processes a stream of messages, reactions and commands in
  batches of 1,000, on the in-memory store and on SQLite (WAL). Its members
  joined the day before (``--cold``: the community starts empty and each member
  is created by their first event, which costs more). The same runs again with
  a third-party rule added that is asked about every event and replies to
  every 10th message, so the outbox and the audit trail are written too.
  Baseline in the same run: the same events only parsed from JSON (the least
  any consumer of the log does).
* **Latency**: events offered open-loop at a fixed rate (default 5,000/s) in
  10 ms ticks, with the replying rule; each event's latency is from the moment
  it was offered until its batch was committed (event recorded, points and
  outbox written). p50, p99 and max over the run, on SQLite.
* **Memory**: a separate process loads a community of 1,000,000 members (one
  ledger entry each) from SQLite into the engine; its peak RSS is reported,
  against a baseline process that only imports communitykit.

Run:  .venv/bin/python benchmarks/pipeline.py [--events N] [--repeat K] [--rate R]
      [--big-members M] [--cold]
Aims (default rules and points): >= 50,000 events/s in memory, >= 20,000 events/s
on SQLite, p99 < 20 ms at 5,000 events/s offered, < 1 GB with 1,000,000 members
loaded.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from communitykit import (
    CommandInvoked,
    CommunityApp,
    Decision,
    Event,
    MemberJoined,
    MessagePosted,
    ReactionAdded,
    RuleContext,
    SendMessage,
    SimulatedClock,
    event_from_json,
    parse_config,
)

MEMBERS = 10_000
START = datetime(2026, 3, 1, tzinfo=UTC)

CONFIG = """
[community]
name = "pipeline benchmark"
timezone = "Asia/Shanghai"
store = "{store}"

[[groups]]
key = "main"
platform = "console"
id = "main"

[points]
message = 2
message_daily_cap = 20
reaction_received = 1
reaction_daily_cap = 10

[tiers]
window_days = 30
grace_days = 7

[[tiers.ladder]]
name = "newcomer"
threshold = 0

[[tiers.ladder]]
name = "regular"
threshold = 60
multiplier = "1.1"

[[tiers.ladder]]
name = "core"
threshold = 200
multiplier = "1.25"
"""


class ReplySometimes:
    """Every 10th message gets a reply: the outbox is written, as in a real community."""

    name = "reply"

    def evaluate(self, ctx: RuleContext) -> Decision | None:
        event = ctx.event
        if isinstance(event, MessagePosted) and event.message_id.endswith("0"):
            action = ctx.action(SendMessage, "rule:reply", "reply", text="noted")
            return Decision(source="rule:reply", explanation="reply", actions=[action])
        return None


def make_events(count: int, seed: int = 1) -> list[Event]:
    rng = random.Random(seed)
    step = timedelta(seconds=86400 * 7 / count)  # a week of activity
    events: list[Event] = []
    for n in range(count):
        user = f"u{int(rng.paretovariate(1.1) * 97) % MEMBERS}"
        at = START + step * n
        kind = rng.random()
        if kind < 0.7:
            events.append(
                MessagePosted(
                    event_id=f"e{n}",
                    platform="console",
                    group="main",
                    user=user,
                    at=at,
                    message_id=str(n),
                    text="今天的分享很有用 👍",
                )
            )
        elif kind < 0.9:
            events.append(
                ReactionAdded(
                    event_id=f"e{n}",
                    platform="console",
                    group="main",
                    user=user,
                    at=at,
                    message_id=str(max(0, n - 3)),
                    emoji="👍",
                    to_user=f"u{rng.randrange(MEMBERS)}",
                )
            )
        else:
            events.append(
                CommandInvoked(
                    event_id=f"e{n}",
                    platform="console",
                    group="main",
                    user=user,
                    at=at,
                    command="points",
                    args=(),
                )
            )
    return events


async def make_app(
    store_url: str, *, members: int = MEMBERS, reply: bool = True
) -> tuple[CommunityApp, SimulatedClock]:
    """The benchmark's community, its ``members`` members joined the day before the run.

    A stored community is then opened again, as a running one was last started:
    its members are loaded from the store. ``reply``: with the :class:`ReplySometimes`
    rule besides the default ones.
    """
    from communitykit_console import ConsoleAdapter

    def opened() -> CommunityApp:
        app = CommunityApp(
            parse_config(CONFIG.format(store=store_url)),
            clock=clock,
            adapters={"console": ConsoleAdapter()},
            rules=[ReplySometimes()] if reply else [],
        )
        app.open()
        return app

    clock = SimulatedClock(START - timedelta(days=1))
    app = opened()
    joins: list[Event] = [
        MemberJoined(
            event_id=f"join{n}",
            platform="console",
            group="main",
            user=f"u{n}",
            at=START - timedelta(days=1),
        )
        for n in range(members)
    ]
    for first in range(0, len(joins), 1000):
        await app.feed(joins[first : first + 1000])
    clock.set(START)
    if members and not store_url.startswith("memory:"):
        app.close()
        app = opened()
    return app, clock


async def throughput(
    store_url: str,
    events: list[Event],
    batch: int = 1000,
    *,
    members: int = MEMBERS,
    reply: bool = False,
) -> float:
    app, clock = await make_app(store_url, members=members, reply=reply)
    clock.set(events[-1].at)
    t0 = time.perf_counter()
    for start in range(0, len(events), batch):
        await app.feed(events[start : start + batch])
    elapsed = time.perf_counter() - t0
    app.close()
    return len(events) / elapsed


def parse_baseline(events: list[Event]) -> float:
    lines = [e.to_json() for e in events]
    t0 = time.perf_counter()
    for line in lines:
        event_from_json(line)
    return len(lines) / (time.perf_counter() - t0)


async def latency(
    store_url: str,
    events: list[Event],
    rate: int,
    *,
    members: int = MEMBERS,
    log_sizes: list[int] | None = None,
) -> list[float]:
    """Open loop: events are offered at ``rate`` per second whatever the engine does.

    ``log_sizes``: on a SQLite file, the size of its write-ahead log after each
    batch is appended to it.
    """
    wal = Path(store_url.removeprefix("sqlite:///") + "-wal")
    app, clock = await make_app(store_url, members=members)
    clock.set(events[-1].at)
    tick = 0.01
    per_tick = max(1, round(rate * tick))
    latencies: list[float] = []
    start = time.perf_counter()
    offered = 0
    while offered < len(events):
        now = time.perf_counter()
        due = min(len(events), int((now - start) / tick + 1) * per_tick)
        if due <= offered:
            await asyncio.sleep(start + (offered // per_tick) * tick - now)
            continue
        batch = events[offered:due]
        # each event was offered at the start of its own tick
        offered_at = [start + ((offered + i) // per_tick) * tick for i in range(len(batch))]
        await app.feed(batch)
        done = time.perf_counter()
        latencies.extend(done - t for t in offered_at)
        if log_sizes is not None and wal.exists():
            log_sizes.append(wal.stat().st_size)
        offered = due
    app.close()
    return latencies


MEMORY_CHILD = """
import asyncio, sys, time

def peak_kb():
    # VmHWM: this process's own peak RSS (ru_maxrss would carry the parent's
    # high-water mark across exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

from communitykit import CommunityApp, SimulatedClock, parse_config
sys.path.insert(0, {bench_dir!r})
from pipeline import CONFIG, START
mode = sys.argv[1]
if mode == "baseline":
    print(peak_kb())
    raise SystemExit
config = parse_config(CONFIG.format(store={url!r}))
app = CommunityApp(config, clock=SimulatedClock(START), adapters={{}})
t0 = time.perf_counter()
app.open(with_adapters=False)
peak = peak_kb()
took = round(time.perf_counter() - t0, 1)
print(peak, len(app.engine.graph), len(app.engine.ledger), took)
"""


def build_big_store(path: Path, members: int) -> str:
    """A SQLite store holding ``members`` members with one credit each."""
    from communitykit.model import (
        IdentityGraph,
        Ledger,
        LinkMethod,
        LinkProvenance,
        Member,
        MemberState,
        PlatformIdentity,
    )
    from communitykit.store import Batch, open_store

    url = f"sqlite:///{path}"
    store = open_store(url)
    ledger = Ledger("Asia/Shanghai")
    graph = IdentityGraph()
    provenance = LinkProvenance(method=LinkMethod.IMPORT, at=START)
    chunk = 20_000
    for first in range(0, members, chunk):
        batch = Batch(created_at=START)
        done_links = graph.links_count()
        done_entries = len(ledger)
        for n in range(first, min(members, first + chunk)):
            identity = PlatformIdentity("console", f"u{n}")
            member = Member(member_id=str(identity), identities=(identity,), joined_at=START)
            graph.add(member, provenance)
            batch.members[member.member_id] = member
            batch.states[member.member_id] = MemberState(
                member_id=member.member_id, tier="newcomer", tier_since=START
            )
            ledger.award_seq(member.member_id, 5, reason="import", at=START, key=f"import:{n}")
        batch.links = graph.links_from(done_links)
        batch.entries = ledger.entries_from(done_entries)
        store.commit(batch)
    store.close()
    return url


def memory(members: int) -> tuple[float, float, int, float]:
    bench_dir = str(Path(__file__).resolve().parent)
    with tempfile.TemporaryDirectory() as folder:
        url = build_big_store(Path(folder) / "big.db", members)
        script = MEMORY_CHILD.format(bench_dir=bench_dir, url=url)
        base = subprocess.run(
            [sys.executable, "-c", script, "baseline"], capture_output=True, text=True, check=True
        )
        loaded = subprocess.run(
            [sys.executable, "-c", script, "load"], capture_output=True, text=True, check=True
        )
    base_kb = int(base.stdout.split()[0])
    rss_kb, count, _entries, seconds = loaded.stdout.split()
    return base_kb / 1024, int(rss_kb) / 1024, int(count), float(seconds)


def _spread(rates: list[float], bases: list[float] | None = None) -> str:
    """Events/s over the rounds: the median (and the best), with the median of each
    round's time against its own baseline's."""
    text = f"{statistics.median(rates):>10,.0f} events/s"
    if len(rates) > 1:
        text += f" (best {max(rates):,.0f})"
    if bases is not None:
        ratio = statistics.median(b / r for b, r in zip(bases, rates, strict=True))
        text += f"  ({ratio:.1f}x)"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=5_000, help="offered events/s for latency")
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--big-members", type=int, default=1_000_000)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument(
        "--repeat", type=int, default=3, help="throughput rounds (median and best are shown)"
    )
    parser.add_argument(
        "--cold", action="store_true", help="start from an empty community (no member joined)"
    )
    args = parser.parse_args()

    events = make_events(args.events)
    joined = 0 if args.cold else MEMBERS
    print(
        f"{len(events):,} events from {MEMBERS:,} members"
        + (" (none joined before: each is created by their first event)" if args.cold else "")
    )
    print("(x: how many times the baseline's time the engine takes for the same events)")
    if args.repeat > 1:
        print(
            f"({args.repeat} rounds, each with its own baseline: the host's speed can change "
            "between rounds; median and best of the rounds)"
        )
    bases: list[float] = []
    runs: dict[tuple[str, bool], list[float]] = {}
    for _round in range(args.repeat):
        bases.append(parse_baseline(events))
        for reply in (False, True):
            rate = asyncio.run(throughput("memory://", events, members=joined, reply=reply))
            runs.setdefault(("memory", reply), []).append(rate)
            with tempfile.TemporaryDirectory() as folder:
                url = f"sqlite:///{Path(folder) / 'bench.db'}"
                rate = asyncio.run(throughput(url, events, members=joined, reply=reply))
            runs.setdefault(("sqlite", reply), []).append(rate)
            if not reply:  # the same-run reference for the store's writer process
                with tempfile.TemporaryDirectory() as folder:
                    url = f"sqlite:///{Path(folder) / 'bench.db'}?writer=inline"
                    rate = asyncio.run(throughput(url, events, members=joined))
                runs.setdefault(("inline", reply), []).append(rate)
    print(f"baseline: parsing the events' JSON     {_spread(bases)}")
    print("default rules and points (the aims):")
    print(f"  engine, in-memory store             {_spread(runs['memory', False], bases)}")
    print(f"  engine, SQLite store (WAL)          {_spread(runs['sqlite', False], bases)}")
    print(f"    the same, writer=inline           {_spread(runs['inline', False], bases)}")
    print("with a third-party rule asked about every event, replying to every 10th message:")
    print(f"  engine, in-memory store             {_spread(runs['memory', True], bases)}")
    print(f"  engine, SQLite store (WAL)          {_spread(runs['sqlite', True], bases)}")

    count = int(args.rate * args.latency_seconds)
    offered = make_events(count, seed=2)
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'latency.db'}"
        log_sizes: list[int] = []
        lat = asyncio.run(latency(url, offered, args.rate, members=joined, log_sizes=log_sizes))
    lat.sort()
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000  # noqa: E731
    print(
        f"latency event -> outbox at {args.rate:,} events/s offered (SQLite, replying rule): "
        f"p50 {p(0.5):.1f} ms, p99 {p(0.99):.1f} ms, max {lat[-1] * 1000:.1f} ms "
        f"(mean {statistics.fmean(lat) * 1000:.1f} ms); "
        f"write-ahead log at most {max(log_sizes, default=0) / 2**20:.0f} MiB"
    )
    if not args.skip_memory and args.big_members > 0:
        base_mb, rss_mb, loaded, seconds = memory(args.big_members)
        print(
            f"memory with {loaded:,} members loaded: peak RSS {rss_mb:,.0f} MB "
            f"(baseline process {base_mb:,.0f} MB; "
            f"{(rss_mb - base_mb) * 2**20 / loaded:,.0f} B/member; "
            f"load took {seconds} s)"
        )


if __name__ == "__main__":
    main()
