"""The SQLite store's writer process: large batches are written by a child process
while the store builds their rows, and still stored whole or not at all."""

from __future__ import annotations

import io
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from communitykit.model import Ledger, MemberState, MessagePosted
from communitykit.store import Batch, SQLiteStore, StoreError, _sql, open_store
from communitykit.store import _writer as writer_module

from .test_store_contract import T0, full_batch, sample_ledger

TABLES = ("ck_events", "ck_ledger", "ck_member_states", "ck_members", "ck_outbox", "ck_meta")


def big_batch(count: int, *, start: int = 0, ledger: Ledger | None = None) -> Batch:
    """``count`` messages from 50 members, a point for each and the members' states."""
    ledger = ledger if ledger is not None else Ledger("UTC")
    first = len(ledger)
    events = [
        MessagePosted(
            event_id=f"m{n}",
            platform="console",
            group="main",
            user=f"u{n % 50}",
            at=T0 + timedelta(seconds=n),
            message_id=f"in{n}",
            text=f"message {n} 你好",
        )
        for n in range(start, start + count)
    ]
    for event in events:
        ledger.award(f"console:{event.user}", 1, reason="message", at=event.at, key=event.event_id)
    states = {
        f"console:u{u}": MemberState(
            member_id=f"console:u{u}", tier="newcomer", tier_since=T0, messages=count // 50
        )
        for u in range(50)
    }
    return Batch(events=events, entries=ledger.entries()[first:], states=states, created_at=T0)


def dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(path) as conn:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
            for table in TABLES
        }


def through_writer(path: Path) -> SQLiteStore:
    store = SQLiteStore(path)
    store.open()
    store._writer_rows = 1
    return store


def writer_pid(store: SQLiteStore) -> int | None:
    assert store._writer is not None
    return store._writer.pid


def gone(pid: int, within: float = 10.0) -> bool:
    """Whether process ``pid`` ends (and is reaped) within ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # our own child: reap it
            if os.waitpid(pid, os.WNOHANG) != (0, 0):
                return True
        except ChildProcessError:
            pass
        time.sleep(0.01)
    return False


def test_a_large_batch_written_by_the_writer_leaves_the_same_rows_as_one_written_inline(
    tmp_path: Path,
) -> None:
    inline = SQLiteStore(tmp_path / "inline.db", writer_process=False)
    inline.open()
    inline.commit(full_batch())
    inline.commit(big_batch(1234, ledger=sample_ledger()))
    inline.close()
    piped = SQLiteStore(tmp_path / "piped.db")
    piped.open()
    piped.commit(full_batch())  # small: written inline
    assert writer_pid(piped) is None
    # large: through the writer, in many slices
    piped.commit(big_batch(1234, ledger=sample_ledger()))
    assert writer_pid(piped) is not None
    piped.close()
    rows = dump(tmp_path / "piped.db")
    assert rows == dump(tmp_path / "inline.db")
    assert len(rows["ck_events"]) == len(full_batch().events) + 1234
    assert len(rows["ck_ledger"]) == len(full_batch().entries) + 1234


def test_the_writer_stops_when_the_store_closes(tmp_path: Path) -> None:
    store = through_writer(tmp_path / "c.db")
    store.commit(big_batch(10))
    pid = writer_pid(store)
    assert pid is not None
    store.close()
    assert gone(pid)


def test_a_refused_batch_names_its_fault_and_leaves_nothing_through_the_writer(
    tmp_path: Path,
) -> None:
    store = through_writer(tmp_path / "r.db")
    ledger = Ledger("UTC")
    store.commit(big_batch(300, ledger=ledger))
    before = dump(tmp_path / "r.db")
    again = big_batch(300, start=299, ledger=ledger)  # m299 is stored already
    with pytest.raises(StoreError, match=r"m299.*already stored.*nothing was written"):
        store.commit(again)
    assert dump(tmp_path / "r.db") == before
    skipped = big_batch(10, start=1000, ledger=ledger)  # the ledger went on without storing
    first = skipped.entries[0].entry_id
    assert first != "e300"
    with pytest.raises(StoreError, match=rf"{first} .*the next is e300\).*nothing was written"):
        store.commit(skipped)
    assert dump(tmp_path / "r.db") == before
    pid = writer_pid(store)
    store.commit(big_batch(10, start=5000, ledger=_ledger_after(300)))
    assert writer_pid(store) == pid  # a refusal keeps the process
    assert len(dump(tmp_path / "r.db")["ck_events"]) == 310
    store.close()


def test_rows_that_cannot_be_built_roll_the_batch_back_and_keep_the_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = through_writer(tmp_path / "b.db")
    store.commit(big_batch(10))
    pid = writer_pid(store)
    before = dump(tmp_path / "b.db")
    real = _sql._steps

    def failing(batch: Batch) -> Iterator[Any]:
        steps = real(batch)
        yield next(steps)
        yield next(steps)
        raise RuntimeError("cannot build a row")

    monkeypatch.setattr(_sql, "_steps", failing)
    with pytest.raises(RuntimeError, match="cannot build a row"):
        store.commit(big_batch(500, start=10))
    monkeypatch.setattr(_sql, "_steps", real)
    assert dump(tmp_path / "b.db") == before
    assert writer_pid(store) == pid
    store.commit(big_batch(500, start=10, ledger=_ledger_after(10)))
    assert len(dump(tmp_path / "b.db")["ck_events"]) == 510
    store.close()


def _ledger_after(count: int) -> Ledger:
    """A ledger holding what ``big_batch(count)`` awarded."""
    ledger = Ledger("UTC")
    big_batch(count, ledger=ledger)
    return ledger


def test_a_writer_killed_mid_batch_leaves_nothing_and_the_next_batch_gets_a_new_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = through_writer(tmp_path / "k.db")
    store.commit(big_batch(10))
    pid = writer_pid(store)
    assert pid is not None
    before = dump(tmp_path / "k.db")
    real = _sql._steps

    def killing(batch: Batch) -> Iterator[Any]:
        for n, step in enumerate(real(batch)):
            if n == 3:
                os.kill(pid, signal.SIGKILL)
                assert gone(pid)
            yield step

    monkeypatch.setattr(_sql, "_steps", killing)
    with pytest.raises(StoreError, match=r"writer process stopped.*nothing was written"):
        store.commit(big_batch(2000, start=10, ledger=_ledger_after(10)))
    monkeypatch.setattr(_sql, "_steps", real)
    assert dump(tmp_path / "k.db") == before
    store.commit(big_batch(2000, start=10, ledger=_ledger_after(10)))
    assert writer_pid(store) not in (None, pid)
    assert len(dump(tmp_path / "k.db")["ck_events"]) == 2010
    store.close()


KILLED = """
import os, sys, time
from pathlib import Path
sys.path[:0] = {path!r}
from tests.store.test_writer_process import big_batch
from communitykit.store import SQLiteStore, _sql

store = SQLiteStore({db!r})
store.open()
store._writer_rows = 1
real = _sql._steps

def stalling(batch):
    for n, step in enumerate(real(batch)):
        if n == 6:
            Path({pidfile!r}).write_text(str(store._writer.pid))
            time.sleep(600)  # killed here, half of the batch with the writer
        yield step

_sql._steps = stalling
store.commit(big_batch(3000))
"""


def test_killing_the_store_process_mid_batch_stores_nothing_and_ends_the_writer(
    tmp_path: Path,
) -> None:
    db, pidfile = tmp_path / "p.db", tmp_path / "writer.pid"
    root = str(Path(__file__).resolve().parents[2])
    script = KILLED.format(path=[root, *sys.path], db=str(db), pidfile=str(pidfile))
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not pidfile.exists() or not pidfile.read_text():
        assert proc.poll() is None, proc.communicate()[1].decode()
        assert time.monotonic() < deadline, "the batch never reached the writer"
        time.sleep(0.01)
    writer = int(pidfile.read_text())
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert gone(writer), "the writer process outlived the store's"
    store = SQLiteStore(db)
    store.open()
    try:
        assert store.count_events() == 0
        assert list(store.load_entries()) == []
    finally:
        store.close()


def test_the_store_url_chooses_the_writer(tmp_path: Path) -> None:
    for option, wanted in (("?writer=inline", False), ("?writer=process", True), ("", True)):
        store = open_store(f"sqlite:///{tmp_path / 'u.db'}{option}")
        assert isinstance(store, SQLiteStore)
        assert (store._writer is not None) is wanted
        store.close()
    with pytest.raises(StoreError, match=r"writer='sometimes'.*writer=process or writer=inline"):
        open_store("sqlite:///x.db?writer=sometimes")
    with pytest.raises(StoreError, match=r"unknown option 'mode'"):
        open_store("sqlite:///x.db?mode=ro")


def test_the_writer_skips_what_follows_a_failure_until_the_batch_ends() -> None:
    frames = b"".join(
        writer_module.frame(message)
        for message in (
            ("open", ":memory:", ["PRAGMA foreign_keys=ON"]),
            ("run", "CREATE TABLE t (k TEXT PRIMARY KEY)", [()]),
            ("commit",),
            ("run", "INSERT INTO t VALUES (?)", [("a",), ("a",)]),
            ("run", "INSERT INTO t VALUES (?)", [("b",)]),  # skipped: the batch failed
            ("commit",),
            ("run", "INSERT INTO t VALUES (?)", [("c",)]),
            ("abort",),
            ("frobnicate",),
            ("commit",),
            ("run", "INSERT INTO t VALUES (?)", [("d",)]),
            ("expect", "SELECT count(*) - 1 FROM t", 1),
            ("commit",),
            ("run", "INSERT INTO t VALUES (?)", [("e",)]),
            ("expect", "SELECT count(*) - 1 FROM t", 7),
            ("commit",),
            ("run", "INSERT INTO t VALUES (?)", [("f",)]),
            # the input ends here: the open batch is rolled back
        )
    )
    out = io.BytesIO()
    writer_module.serve(io.BytesIO(frames), out)
    out.seek(0)
    replies = []
    while (reply := writer_module.read_frame(out)) is not None:
        replies.append(reply)
    assert replies[0] == ("ready",)
    assert replies[1] == ("ok",)
    assert replies[2][0] == "integrity" and "UNIQUE" in replies[2][1]
    assert replies[3] == ("aborted",)
    assert replies[4] == ("error", "unknown request 'frobnicate'")
    assert replies[5] == ("ok",)  # d: one row, so the next position is 1
    assert replies[6] == ("position", 2)
    assert len(replies) == 7


def test_a_frame_carries_plain_rows_and_anything_else() -> None:
    for value in (("run", "sql", [("a", 1, None, 2.5, True)]), ("x", {1, 2}, frozenset("ab"))):
        frame = writer_module.frame(value)
        assert writer_module.read_frame(io.BytesIO(frame)) == value
        assert writer_module.read_frame(io.BytesIO(frame[:-1])) is None


def test_a_writer_that_cannot_start_leaves_the_store_writing_batches_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from communitykit.store import _sqlite

    monkeypatch.setattr(_sqlite, "_WRITER", str(tmp_path / "missing.py"))
    store = through_writer(tmp_path / "f.db")
    store.commit(big_batch(600))
    assert store._writer is None
    store.commit(big_batch(600, start=600, ledger=_ledger_after(600)))
    store.close()
    assert len(dump(tmp_path / "f.db")["ck_events"]) == 1200
