"""The SQLite writer process: runs a large batch's statements while the store builds them.

A SQLite store hands a large batch to this process one chunk of rows at a time:
the store turns the next objects into rows while this process inserts the last
ones, so the two halves of a commit run on two cores instead of one after the
other. The transaction is this process's; it commits only when the store says
so, after the last chunk.

It is started as a script (``python -I _writer.py``), so it imports nothing but
the standard library, and talks through its standard input and output in
frames: a 4-byte little-endian length, then a tuple (see :func:`frame`).

From the store:

* ``("open", path, pragmas)`` once, first; answered ``("ready",)`` or ``("error", text)``;
* ``("run", sql, rows)``: ``executemany``; the first of a batch opens the write
  transaction (``BEGIN IMMEDIATE``);
* ``("expect", sql, first)``: ``sql`` gives the highest ledger position stored;
  the batch is refused unless ``first`` comes next;
* ``("commit",)`` or ``("abort",)``: ends the batch, answered ``("ok",)`` when it
  was committed, ``("aborted",)``, or the first failure of the batch:
  ``("integrity", text)``, ``("position", expected)``, ``("error", text)``.
  Frames after a failure are read and skipped until the batch ends, so the
  store never waits on a process that waits on it;
* ``("close",)``: close the database and exit.

When its input ends without ``commit`` (the store's process died), the open
transaction is rolled back and the process exits: a batch is stored whole or
not at all. Interrupts (Ctrl-C in a terminal reaches the whole process group)
are ignored: the store decides when this process stops.
"""

from __future__ import annotations

import marshal
import pickle
import signal
import sqlite3
import struct
import sys
from typing import IO, Any

_HEADER = struct.Struct("<I")
_MARSHAL, _PICKLE = b"M", b"P"


def read_frame(stream: IO[bytes]) -> Any:
    """The next frame from ``stream``; None at the end of the stream."""
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(head)
    body = stream.read(size)
    if len(body) < size:
        return None
    if body[:1] == _MARSHAL:
        return marshal.loads(body[1:])
    return pickle.loads(body[1:])


def frame(value: object) -> bytes:
    """``value`` as one frame.

    Rows of plain values (strings, numbers, ``None``) go in ``marshal``'s format,
    which is quicker than ``pickle`` for them and read by the same interpreter on
    the other side; anything else in ``pickle``'s.
    """
    try:
        body = _MARSHAL + marshal.dumps(value)  # type: ignore[arg-type]
    except ValueError:
        body = _PICKLE + pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


def _text(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class _Batch:
    """The write transaction of the batch under way, and its first failure."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.open = False
        self.failure: tuple[Any, ...] | None = None

    def step(self, op: str, sql: str, value: Any) -> None:
        if self.failure is not None:
            return
        try:
            if not self.open:
                self.conn.execute("BEGIN IMMEDIATE")
                self.open = True
            if op == "run":
                self.conn.executemany(sql, value)
                return
            (last,) = self.conn.execute(sql).fetchone()
            expected = 0 if last is None else int(last) + 1
            if value != expected:
                self.failure = ("position", expected)
        except sqlite3.IntegrityError as exc:
            self.failure = ("integrity", _text(exc))
        except sqlite3.Error as exc:
            self.failure = ("error", _text(exc))

    def end(self, commit: bool) -> tuple[Any, ...]:
        reply: tuple[Any, ...] = ("ok",) if commit else ("aborted",)
        if self.failure is not None:
            reply = self.failure
        if self.open:
            try:
                self.conn.execute("COMMIT" if reply == ("ok",) else "ROLLBACK")
            except sqlite3.Error as exc:
                reply = ("error", _text(exc))
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
        self.open = False
        self.failure = None
        return reply


def serve(inp: IO[bytes], out: IO[bytes]) -> None:
    """Answer the store on ``inp``/``out`` until it says ``close`` or goes away."""
    opening = read_frame(inp)
    if opening is None or opening[0] != "open":
        return
    _, path, pragmas = opening
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in pragmas:
            conn.execute(pragma).fetchall()
    except sqlite3.Error as exc:
        out.write(frame(("error", _text(exc))))
        out.flush()
        return
    out.write(frame(("ready",)))
    out.flush()
    batch = _Batch(conn)
    try:
        while True:
            message = read_frame(inp)
            if message is None or message[0] == "close":
                break
            op = message[0]
            if op in ("run", "expect"):
                batch.step(op, message[1], message[2])
            elif op in ("commit", "abort"):
                out.write(frame(batch.end(op == "commit")))
                out.flush()
            else:
                batch.failure = batch.failure or ("error", f"unknown request {op!r}")
    finally:
        conn.close()  # an open transaction is rolled back


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    main()
