"""Ledger throughput and memory on the pure model.

1,000,000 awards spread over 100,000 members: a third from messages (capped at
20 points a day), a third from reactions, a third from check-ins; one award in
ten expires after 90 days. Events arrive in time order over 30 days.

Prints awards per second for the bulk path (``Ledger.award_many``) and the
one-at-a-time path (``Ledger.award``, which builds an ``Entry`` per award),
against a baseline measured in the same run: the least any idempotent ledger
must do (remember the key, add to a balance). Peak memory is measured in a
separate pass with tracemalloc, so that tracing does not slow the timings.

History (``--history-days``, default 365): half of 2,000 members earn a capped
message award every day for a year. Prints the ledger's memory per entry live
and once restored from its entries (as after a restart), and how much of it is
daily cap use: a ledger keeps that for its latest days only.

Run:  .venv/bin/python benchmarks/ledger.py [--awards N] [--members M]
Aim:  >= 300,000 awards/s, <= 400 MB peak.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from datetime import UTC, datetime, timedelta

from communitykit import Ledger

REASONS = ("message", "reaction_received", "checkin")
CAPS = {"message": 20}


def make_awards(
    count: int, members: int
) -> list[tuple[str, int, str, datetime, str, datetime | None]]:
    ids = [f"member-{i}" for i in range(members)]
    start = datetime(2026, 3, 1, tzinfo=UTC)
    step = timedelta(days=30) / count
    times = [
        start + step * i for i in range(0, count, 97)
    ]  # shared datetime objects, as a batch would
    out = []
    for i in range(count):
        at = times[i // 97]
        expires = at + timedelta(days=90) if i % 10 == 0 else None
        out.append((ids[(i * 7919) % members], 1 + i % 5, REASONS[i % 3], at, f"evt-{i}", expires))
    return out


def baseline(awards: list[tuple[str, int, str, datetime, str, datetime | None]]) -> float:
    seen: set[str] = set()
    balance: dict[str, int] = {}
    t0 = time.perf_counter()
    for member, points, _reason, _at, key, _exp in awards:
        if key in seen:
            continue
        seen.add(key)
        balance[member] = balance.get(member, 0) + points
    return time.perf_counter() - t0


def bulk(
    awards: list[tuple[str, int, str, datetime, str, datetime | None]],
) -> tuple[float, Ledger]:
    ledger = Ledger("Asia/Shanghai", CAPS)
    t0 = time.perf_counter()
    ledger.award_many(awards)
    return time.perf_counter() - t0, ledger


def one_at_a_time(awards: list[tuple[str, int, str, datetime, str, datetime | None]]) -> float:
    ledger = Ledger("Asia/Shanghai", CAPS)
    award = ledger.award
    t0 = time.perf_counter()
    for member, points, reason, at, key, expires in awards:
        award(member, points, reason=reason, at=at, key=key, expires_at=expires)
    return time.perf_counter() - t0


def peak_memory(awards: list[tuple[str, int, str, datetime, str, datetime | None]]) -> int:
    gc.collect()
    tracemalloc.start()
    ledger = Ledger("Asia/Shanghai", CAPS)
    ledger.award_many(awards)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del ledger
    return peak


def history(days: int, members: int = 2_000) -> None:
    start = datetime(2025, 3, 1, 12, tzinfo=UTC)
    awards: list[tuple[str, int, str, datetime, str, datetime | None]] = []
    for day in range(days):
        at = start + timedelta(days=day)
        for m in range(day % 2, members, 2):
            awards.append((f"member-{m}", 2, "message", at, f"d{day}-m{m}", None))
    gc.collect()
    tracemalloc.start()
    ledger = Ledger("Asia/Shanghai", CAPS)
    ledger.award_many(awards)
    live = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    entries = ledger.entries()
    slots = sum(len(r.cap_used or ()) for r in ledger._accounts_by_id.values())
    del ledger
    gc.collect()
    tracemalloc.start()
    restored = Ledger.restore(entries, "Asia/Shanghai", CAPS)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    n = len(entries)
    print(
        f"{days} days of capped awards, {n:,} entries: ledger {live / n:,.0f} B/entry live, "
        f"{after / n:,.0f} B/entry restored; {slots:,} daily cap slots kept "
        f"({slots / members:.1f} per member, {days / 2:.0f} days each earned on)"
    )
    del restored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--awards", type=int, default=1_000_000)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="timing runs; the best is kept")
    parser.add_argument("--history-days", type=int, default=365, help="0: skip")
    args = parser.parse_args()
    awards = make_awards(args.awards, args.members)
    n = len(awards)
    print(f"{n:,} awards over {args.members:,} members")
    base = min(baseline(awards) for _ in range(args.repeat))
    print(f"baseline (key set + balance dict) {n / base:>12,.0f} awards/s")
    runs = [bulk(awards) for _ in range(args.repeat)]
    best, ledger = min(runs, key=lambda r: r[0])
    print(
        f"Ledger.award_many                 {n / best:>12,.0f} awards/s"
        f"   {best / base:.1f}x the baseline's time"
    )
    single = min(one_at_a_time(awards) for _ in range(args.repeat))
    print(
        f"Ledger.award (Entry per award)    {n / single:>12,.0f} awards/s"
        f"   {single / base:.1f}x the baseline's time"
    )
    written = len(ledger)
    print(f"entries written {written:,} ({n - written:,} awards held back by the daily cap)")
    del runs, ledger
    # memory: the awards themselves are inputs, not counted
    peak = peak_memory(awards)
    print(
        f"peak memory of the ledger         {peak / 2**20:>12,.0f} MB "
        f"({peak / written:,.0f} B/entry)"
    )
    if args.history_days > 0:
        history(args.history_days)


if __name__ == "__main__":
    main()
