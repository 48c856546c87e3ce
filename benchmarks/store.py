"""Store commit throughput: events per second written in engine-sized batches.

Each batch is what the engine writes for 1,000 events: the events (messages in
a group, timestamps at +08:00), one ledger credit per event, and one member
state upsert per event (over a pool of members, so later batches update states
that exist). Batches are built before the clock starts; only ``commit`` is timed.

Prints events/s for a SQLite file (WAL, synchronous=NORMAL), SQLite in memory,
and the memory store: over the whole run, for the median batch and for the best
batch (the least disturbed by other work on a shared machine).

Run:  .venv/bin/python benchmarks/store.py [--batches N] [--batch-size M]
Aim:  > 20,000 events/s on the SQLite file.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

from communitykit.model import Ledger, MemberState, MessagePosted
from communitykit.store import Batch, MemoryStore, SQLiteStore, Store

TZ = timezone(timedelta(hours=8))
MEMBERS = 5_000


def make_batches(batches: int, size: int) -> list[Batch]:
    ledger = Ledger("Asia/Shanghai")
    start = datetime(2026, 3, 1, 9, 0, tzinfo=TZ)
    out = []
    n = 0
    for _ in range(batches):
        batch = Batch()
        for _ in range(size):
            at = start + timedelta(seconds=n)
            user = f"u{(n * 7919) % MEMBERS}"
            member = f"m-{user}"
            batch.events.append(
                MessagePosted(
                    event_id=f"tg-{n}",
                    platform="telegram",
                    group="-100123",
                    user=user,
                    at=at,
                    message_id=str(n),
                    text="good morning, everyone",
                )
            )
            seq = ledger.award_seq(member, 2, reason="message", at=at, key=f"telegram:tg-{n}:msg")
            batch.entries.append(ledger.entry_at(seq))
            batch.states[member] = MemberState(
                member_id=member, tier="bronze", tier_since=start, last_active_at=at, messages=n
            )
            n += 1
        out.append(batch)
    return out


def run(name: str, make: Callable[[], Store], batches: list[Batch]) -> None:
    store = make()
    store.open()
    try:
        events = sum(len(b.events) for b in batches)
        times = []
        gc.collect()
        for batch in batches:
            t0 = time.perf_counter()
            store.commit(batch)
            times.append(time.perf_counter() - t0)
        assert store.count_events() == events
    finally:
        store.close()
    total = sum(times)
    size = events / len(batches)
    median, best = statistics.median(times), min(times)
    print(
        f"{name:<16} {events / total:>9,.0f} events/s overall"
        f" | {size / median:>9,.0f} median batch ({median * 1000:.1f} ms)"
        f" | {size / best:>9,.0f} best batch ({best * 1000:.1f} ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args()
    batches = make_batches(args.batches, args.batch_size)
    print(
        f"{args.batches} batches of {args.batch_size} events "
        "(+1 ledger entry and 1 state upsert per event)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        run("sqlite (file)", lambda: SQLiteStore(Path(tmp) / "bench.db"), batches)
    run("sqlite (memory)", lambda: SQLiteStore(":memory:"), batches)
    run("memory store", MemoryStore, batches)


if __name__ == "__main__":
    main()
