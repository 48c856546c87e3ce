"""Analytics at scale: lifecycle stages and the full report over a large SQLite store.

Generates 1,000,000 members and 10,000,000 events (joins over a year, leaves,
messages, reactions and commands in three groups), a ledger of check-in and
message credits, spends and expiries, member states with tiers, each member's
last activity and identity links (as the engine keeps them) and an audit trail,
straight into the tables of a SQLite store (bulk inserts in one transaction, not
through the engine). The file is kept under /tmp and reused by the next run
unless ``--regenerate`` is given.

Then times, on that store (process time and wall time):

* the lifecycle stages of every member at the end of the data (``stages``);
* the full report for the last 30 days (``build_report``, every built-in metric);

and prints the peak resident memory of the process.

Run:  .venv/bin/python benchmarks/analytics.py [--members N] [--events M] [--regenerate]
      [--only stages|report]
Aim:  stages < 10 s, report < 60 s, peak memory < 1 GB (1M members, 10M events).
"""

from __future__ import annotations

import argparse
import json
import resource
import sqlite3
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np

from communitykit.model import Community, LifecycleSettings
from communitykit.store import SQLiteStore

START = datetime(2025, 6, 1, tzinfo=UTC)
DAYS = 365
GROUPS = ("-1001", "-1002", "-1003")
TIERS = ("bronze", "silver", "gold")
_US = 1_000_000
_DAY_US = 86_400 * _US


def _path(members: int, events: int) -> Path:
    return Path(f"/tmp/communitykit-analytics-{members}-{events}.db")


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / _US, UTC).isoformat()


def generate(path: Path, members: int, events: int, seed: int = 7) -> None:
    """Write the store at ``path`` (replacing it)."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    store = SQLiteStore(path)
    store.open()  # creates the schema
    store.close()
    rng = np.random.default_rng(seed)
    start_us = int(START.timestamp() * _US)
    # members join over the year, more of them later (a growing community)
    join_us = start_us + (np.sqrt(rng.random(members)) * DAYS * _DAY_US).astype(np.int64)
    join_us.sort()
    group_of = rng.integers(0, len(GROUPS), members)
    leaves = rng.random(members) < 0.1
    leave_us = join_us + (rng.random(members) * (start_us + DAYS * _DAY_US - join_us)).astype(
        np.int64
    )
    # activity: every member gets a share, heavy-tailed; each event after joining
    n_activity = events - members - int(leaves.sum())
    weights = rng.pareto(1.5, members) + 0.05
    who = rng.choice(members, size=n_activity, p=weights / weights.sum())
    span = np.where(leaves, leave_us, start_us + DAYS * _DAY_US) - join_us
    # people are most active right after joining: an exponential over their span
    offset = np.minimum(rng.exponential(0.35, n_activity), 0.999)
    at_us = join_us[who] + (offset * span[who]).astype(np.int64)
    kind = rng.choice(3, size=n_activity, p=(0.7, 0.2, 0.1))
    types = ("message_posted", "reaction_added", "command_invoked")

    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA cache_size=-400000")
    con.execute("BEGIN")
    con.executemany(
        "INSERT INTO ck_members (member_id, display_name, joined_at, left_at, role, status,"
        " tags, paid_until) VALUES (?, ?, ?, ?, 'member', ?, '[]', NULL)",
        (
            (
                f"telegram:u{i}",
                f"member {i}",
                _iso(int(join_us[i])),
                _iso(int(leave_us[i])) if leaves[i] else None,
                "left" if leaves[i] else "active",
            )
            for i in range(members)
        ),
    )
    con.executemany(
        "INSERT INTO ck_identities (platform, user_id, member_id, position)"
        " VALUES ('telegram', ?, ?, 0)",
        ((f"u{i}", f"telegram:u{i}") for i in range(members)),
    )
    # the identity links the engine writes when an identity first shows up (joining)
    con.executemany(
        "INSERT INTO ck_links (platform, user_id, member_id, method, at_us, at, by, note)"
        " VALUES ('telegram', ?, ?, 'joined', ?, ?, NULL, '')",
        (
            (f"u{i}", f"telegram:u{i}", int(join_us[i]), _iso(int(join_us[i])))
            for i in range(members)
        ),
    )
    tier = np.minimum(rng.geometric(0.7, members) - 1, len(TIERS) - 1)
    # what the engine keeps: each member's latest activity (NULL if none) and messages
    last_active = np.full(members, -1, dtype=np.int64)
    np.maximum.at(last_active, who, at_us)
    messages = np.bincount(who[kind == 0], minlength=members)
    con.executemany(
        "INSERT INTO ck_member_states (member_id, tier, tier_since, below_since,"
        " last_active_at, messages, reactions_received) VALUES (?, ?, ?, NULL, ?, ?, 0)",
        (
            (
                f"telegram:u{i}",
                TIERS[tier[i]],
                _iso(int(join_us[i])),
                _iso(int(last_active[i])) if last_active[i] >= 0 else None,
                int(messages[i]),
            )
            for i in range(members)
        ),
    )
    # events: joins, leaves, activity, in time order
    all_at = np.concatenate([join_us, leave_us[leaves], at_us])
    all_kind = np.concatenate([np.full(members, 3), np.full(int(leaves.sum()), 4), kind]).astype(
        np.int8
    )
    all_who = np.concatenate([np.arange(members), np.flatnonzero(leaves), who])
    order = np.argsort(all_at, kind="stable")
    names = (*types, "member_joined", "member_left")

    def rows():  # type: ignore[no-untyped-def]
        for n, k in enumerate(order.tolist()):
            at = int(all_at[k])
            m = int(all_who[k])
            t = names[all_kind[k]]
            g = GROUPS[group_of[m]]
            payload = (
                f'{{"type": "{t}", "event_id": "e{n}", "platform": "telegram", '
                f'"group": "{g}", "user": "u{m}", "at": "{_iso(at)}"}}'
            )
            yield ("telegram", f"e{n}", t, at, f"u{m}", g, payload)

    con.executemany(
        "INSERT INTO ck_events (platform, event_id, type, at_us, user_id, group_id, payload)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows(),
    )
    # ledger: a credit for a fifth of the messages, check-ins, some spends and expiries
    credit = np.flatnonzero(kind == 0)[::5]
    checkins = np.flatnonzero(kind == 2)
    ledger_at = np.concatenate([at_us[credit], at_us[checkins]])
    ledger_who = np.concatenate([who[credit], who[checkins]])
    ledger_reason = np.concatenate([np.zeros(len(credit)), np.ones(len(checkins))]).astype(int)
    spends = rng.choice(len(ledger_at), size=len(ledger_at) // 20, replace=False)
    expiries = rng.choice(len(ledger_at), size=len(ledger_at) // 20, replace=False)
    entries = [
        *(
            (
                int(ledger_at[i]),
                int(ledger_who[i]),
                "credit",
                2,
                ("message", "checkin")[ledger_reason[i]],
            )
            for i in range(len(ledger_at))
        ),
        *((int(ledger_at[i]) + _US, int(ledger_who[i]), "debit", -1, "shop") for i in spends),
        *(
            (int(ledger_at[i]) + 90 * _DAY_US, int(ledger_who[i]), "expiry", -1, "expiry")
            for i in expiries
        ),
    ]
    entries.sort()
    con.executemany(
        "INSERT INTO ck_ledger (seq, member, kind, points, reason, at_us, at,"
        " idempotency_key, amount, expires_at, refers_to, unrecovered, lots)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, 0, NULL)",
        (
            (n, f"telegram:u{m}", k, p, r, at, _iso(at), f"k{n}", abs(p))
            for n, (at, m, k, p, r) in enumerate(entries)
        ),
    )
    # an audit trail: a warning now and then
    flagged = np.flatnonzero(kind == 0)[::200]
    con.executemany(
        "INSERT INTO ck_audit (at_us, at, kind, rule, member_id, event, actions, explanation)"
        " VALUES (?, ?, 'verdict', ?, ?, NULL, ?, 'flood')",
        (
            (
                int(at_us[i]),
                _iso(int(at_us[i])),
                ("flood", "links")[i % 2],
                f"telegram:u{who[i]}",
                json.dumps([{"type": ("delete_message", "restrict")[int(i) % 3 == 0]}]),
            )
            for i in flagged
        ),
    )
    con.execute("COMMIT")
    con.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--regenerate", action="store_true", help="generate the store again")
    parser.add_argument(
        "--only", choices=("stages", "report"), help="time only the stages or only the report"
    )
    args = parser.parse_args(argv)
    from communitykit.analytics import build_report, stage_counts, stages

    path = _path(args.members, args.events)
    if args.regenerate or not path.exists():
        began = time.perf_counter()
        generate(path, args.members, args.events)
        print(f"generated {path} in {time.perf_counter() - began:.1f} s", file=sys.stderr)
    store = SQLiteStore(path)
    store.open()
    community = Community(name="bench", timezone="Asia/Shanghai")
    end = (START + timedelta(days=DAYS - 1)).date()
    now = datetime.combine(end + timedelta(days=1), datetime.min.time(), UTC)
    settings = LifecycleSettings()

    if args.only != "report":
        wall, cpu = time.perf_counter(), time.process_time()
        found = stages(store, now, settings)
        counts = stage_counts(found)
        stages_wall, stages_cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(f"stages: {stages_wall:.2f} s wall, {stages_cpu:.2f} s cpu  {dict(counts)}")
        del found

    if args.only != "stages":
        wall, cpu = time.perf_counter(), time.process_time()
        report = build_report(store, end - timedelta(days=29), end, community=community)
        report_wall, report_cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(
            f"report: {report_wall:.2f} s wall, {report_cpu:.2f} s cpu"
            f"  ({len(report.metrics)} metrics)"
        )
        headline = report.metric("headline").figures
        print("headline:", dict(headline))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {peak:.0f} MB")
    store.close()
    _ = date  # kept for readers adapting the range
    return 0


if __name__ == "__main__":
    sys.exit(main())
