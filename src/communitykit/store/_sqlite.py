"""What a SQL store does differently on SQLite: connection settings and transactions.

Every new connection gets write-ahead logging (readers never block the writer),
``synchronous=NORMAL`` (durable at each checkpoint; with WAL a crash never
corrupts the file), enforced foreign keys and a busy timeout, so that a second
process waits for the write lock instead of failing at once.

Checkpoints (copying the log into the database file, and the only writes that
wait for the disk) do not run inside a commit, where they would stall the event
that happened to fill the log for tens of milliseconds: a :class:`Checkpointer`
thread runs them in the background, and once more when the store closes.

Python's ``sqlite3`` begins transactions itself, only before data changes and
never before DDL; here SQLAlchemy's ``begin`` emits the ``BEGIN`` instead, so a
migration is one transaction and a write transaction takes the write lock up
front (``BEGIN IMMEDIATE``, for connections marked with
:data:`~communitykit.store._schema.WRITE_OPTION`): a write never fails half-way
because another process wrote since it started reading.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import structlog

from communitykit.store import _writer
from communitykit.store._schema import WRITE_OPTION

__all__ = [
    "BUSY_TIMEOUT_MS",
    "Checkpointer",
    "Refused",
    "WriterGone",
    "WriterProcess",
    "configure",
]

log = structlog.get_logger("communitykit.store")

#: How long a connection waits for another one's write lock before giving up.
BUSY_TIMEOUT_MS = 10_000

_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA wal_autocheckpoint=0",  # the Checkpointer's work
    "PRAGMA foreign_keys=ON",
    f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
)


_WRITER = str(Path(_writer.__file__).resolve())
#: The pipe to the writer process holds this much (where the system lets it grow).
_PIPE_BYTES = 1 << 20


def _on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # BEGIN comes from _on_begin
    cursor = dbapi_connection.cursor()
    try:
        for pragma in _PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()


def _on_begin(conn: sa.Connection) -> None:
    write = conn.get_execution_options().get(WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def configure(engine: sa.Engine) -> None:
    """Install the SQLite connection settings and transaction handling on ``engine``."""
    sa.event.listen(engine, "connect", _on_connect)
    sa.event.listen(engine, "begin", _on_begin)


class Checkpointer:
    """Checkpoints a SQLite database's write-ahead log from a background thread.

    Every ``interval`` seconds it checkpoints in two passes. The first is passive:
    it copies what the log holds while the store goes on committing, waiting for
    no one. The second runs between two commits (it takes ``lock``, which the store
    holds while it writes) and copies what was committed during the first, a few
    pages: the log is then checkpointed whole, and the next commit writes it again
    from its start. With the first pass alone, a store committing without pause
    (each checkpoint overlapping a commit) would see its log grow without end.

    :meth:`stop` runs a last, truncating checkpoint so the log file is left empty.
    """

    def __init__(self, engine: sa.Engine, lock: threading.RLock, interval: float = 0.5) -> None:
        self._engine = engine
        self._lock = lock
        self._interval = interval
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="communitykit-sqlite-checkpoint", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        with self._lock:
            self._pass("TRUNCATE")

    def checkpoint(self) -> tuple[int, int] | None:
        """Checkpoint the log in the two passes; returns the last pass's ``(pages
        in the log, pages checkpointed)`` (the first's alone when the log was
        empty), None when a pass failed."""
        first = self._pass("PASSIVE")
        if first is None or first[0] <= 0:
            return first  # failed, or nothing in the log
        with self._lock:
            return self._pass("PASSIVE")

    def _pass(self, mode: str) -> tuple[int, int] | None:
        try:
            connection = self._engine.raw_connection()
            try:
                cursor = connection.cursor()
                cursor.execute(f"PRAGMA wal_checkpoint({mode})")
                row = cursor.fetchone()
                cursor.close()
            finally:
                connection.close()
        except Exception as exc:  # a busy database: the next round tries again
            log.warning("store.checkpoint_failed", mode=mode, error=f"{type(exc).__name__}")
            return None
        return (int(row[1]), int(row[2])) if row is not None else None

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            self.checkpoint()


class WriterGone(Exception):
    """The writer process stopped or could not start (the message says which).

    ``committing``: it stopped after it was told to commit, before it answered;
    ``starting``: it could not be started (no batch was sent).
    """

    committing = False
    starting = False


class Refused(Exception):
    """The writer process refused a batch: ``kind`` and ``detail`` as it answered."""

    def __init__(self, kind: str, detail: Any) -> None:
        super().__init__(kind, detail)
        self.kind = kind
        self.detail = detail


class WriterProcess:
    """A child process that runs the statements of large batches on its own core.

    Started at the first :meth:`batch` and kept until :meth:`stop`; one that
    stopped (or was killed) is replaced at the next batch. See :mod:`._writer`
    for what it does and how the two talk.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        """The running process's id (None before the first batch and after :meth:`stop`)."""
        return None if self._proc is None else self._proc.pid

    def _start(self) -> None:
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", _WRITER],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
        except OSError as exc:
            raise WriterGone(f"cannot start the writer process: {exc.strerror or exc}") from None
        self._proc = proc
        if sys.platform == "linux" and proc.stdin is not None:
            # room for a batch's rows ahead of the process (Linux; 64 KiB otherwise)
            import fcntl

            with contextlib.suppress(OSError):
                fcntl.fcntl(proc.stdin.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
        try:
            self._send(("open", self._path, _PRAGMAS))
            reply = self._receive()
        except BaseException:
            self._kill()
            raise
        if reply[0] != "ready":
            self._kill()
            raise WriterGone(f"the writer process cannot open the database: {reply[1]}")

    def _send(self, message: object) -> None:
        proc = self._proc
        assert proc is not None
        assert proc.stdin is not None
        try:
            proc.stdin.write(_writer.frame(message))
        except (BrokenPipeError, ValueError):
            raise WriterGone(self._gone()) from None

    def _receive(self) -> tuple[Any, ...]:
        self._flush()
        return self._read()

    def _flush(self) -> None:
        proc = self._proc
        assert proc is not None
        assert proc.stdin is not None
        try:
            proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            raise WriterGone(self._gone()) from None

    def _read(self) -> tuple[Any, ...]:
        proc = self._proc
        assert proc is not None
        assert proc.stdout is not None
        reply = _writer.read_frame(proc.stdout)
        if reply is None:
            raise WriterGone(self._gone())
        return tuple(reply)

    def _gone(self) -> str:
        proc = self._proc
        code = None
        if proc is not None:
            try:
                code = proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                code = None
        self._kill()
        return f"the writer process stopped (exit status {code})"

    def batch(self, steps: Iterator[tuple[str, str, Any]]) -> None:
        """Send each ``(op, sql, value)`` of ``steps`` (``run`` or ``expect``), then commit.

        Raises :class:`Refused` when the process refused the batch (nothing of it is
        stored) and :class:`WriterGone` when it stopped on the way (then nothing of
        it is stored, unless it stopped between its commit and its answer). When
        ``steps`` raises, the batch is rolled back and the exception goes on.
        """
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._kill()
                try:
                    self._start()
                except WriterGone as exc:
                    exc.starting = True
                    raise
            try:
                for step in steps:
                    self._send(step)
            except WriterGone:
                raise
            except Exception:  # the rows could not be built: nothing is stored
                self._send(("abort",))
                self._receive()
                raise
            except BaseException:
                self._kill()  # half a frame may have gone out: start afresh next time
                raise
            try:
                self._send(("commit",))
                self._flush()
                try:
                    reply = self._read()
                except WriterGone as exc:
                    exc.committing = True
                    raise
            except WriterGone:
                raise
            except BaseException:
                self._kill()
                raise
        if reply[0] != "ok":
            raise Refused(reply[0], reply[1] if len(reply) > 1 else None)

    def stop(self) -> None:
        """Close the database and end the process (killed if it does not end in 10 s)."""
        with self._lock:
            proc = self._proc
            if proc is None:
                return
            try:
                self._send(("close",))
                assert proc.stdin is not None
                proc.stdin.close()
                proc.wait(timeout=10)
            except (WriterGone, OSError, subprocess.TimeoutExpired):
                pass
            self._kill()

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
