"""Kill a real worker process with SIGKILL mid-run, restart it, and check that
nothing was lost and nothing happened twice."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from communitykit import MessagePosted

WORKER = Path(__file__).with_name("crash_worker.py")
USERS = 12
EVENTS = 300


def write_events(path: Path) -> list[MessagePosted]:
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    events = [
        MessagePosted(
            event_id=f"e{n}",
            platform="console",
            group="main",
            user=f"u{n % USERS}",
            at=t0 + timedelta(seconds=n),
            message_id=f"in-{n}",
            text=f"message {n}",
        )
        for n in range(EVENTS)
    ]
    path.write_text("".join(e.to_json() + "\n" for e in events), encoding="utf-8")
    return events


def start(workdir: Path, mode: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(workdir), mode],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def progress(workdir: Path) -> str:
    try:
        return (workdir / "progress").read_text()
    except FileNotFoundError:
        return "0"


def wait_for_progress(proc: subprocess.Popen[bytes], workdir: Path, at_least: int) -> bool:
    """Wait until the worker has done ``at_least`` events; False if it finished first."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done = progress(workdir)
        if done == "done" or proc.poll() is not None:
            return False
        if done.isdigit() and int(done) >= at_least:
            return True
        time.sleep(0.005)
    raise AssertionError("the worker made no progress in 120 s")


@pytest.mark.parametrize("mode", ["inline", "writer"])
def test_sigkill_at_any_moment_loses_nothing_and_repeats_nothing(tmp_path: Path, mode: str) -> None:
    events = write_events(tmp_path / "events.jsonl")
    rng = random.Random(20260301)
    kills = 0
    target = 0
    while kills < 6:
        proc = start(tmp_path, mode)
        target += rng.randrange(20, 50)
        if not wait_for_progress(proc, tmp_path, target):
            proc.communicate()
            break
        # land somewhere inside the next batch: mid-commit, mid-delivery, mid-journal
        time.sleep(rng.uniform(0, 0.03))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        assert proc.returncode == -signal.SIGKILL
        kills += 1
    final = start(tmp_path, mode)
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err.decode()
    assert progress(tmp_path) == "done"
    assert kills >= 3, "the worker finished before it could be killed mid-run"

    db = sqlite3.connect(tmp_path / "community.db")
    try:
        # every event recorded exactly once
        (events_stored,) = db.execute("select count(*) from ck_events").fetchone()
        assert events_stored == EVENTS
        # no points awarded twice: one credit of 3 per message, per member
        balances = dict(
            db.execute("select member, sum(points) from ck_ledger group by member").fetchall()
        )
        expected = Counter(f"console:{e.user}" for e in events)
        assert balances == {member: 3 * count for member, count in expected.items()}
        (keys, distinct) = db.execute(
            "select count(*), count(distinct idempotency_key) from ck_ledger"
        ).fetchone()
        assert keys == distinct == EVENTS
        # every action in the outbox, once, and delivered
        statuses = Counter(s for (s,) in db.execute("select status from ck_outbox"))
        assert statuses == {"delivered": EVENTS}
        outbox_ids = {a for (a,) in db.execute("select action_id from ck_outbox")}
    finally:
        db.close()
    # the platform performed each action exactly once
    journal = [
        json.loads(line)
        for line in (tmp_path / "journal.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    performed = Counter(entry["action_id"] for entry in journal)
    assert set(performed) == outbox_ids
    assert max(performed.values()) == 1
