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

import threading
from typing import Any

import sqlalchemy as sa
import structlog

from communitykit.store._schema import WRITE_OPTION

__all__ = ["BUSY_TIMEOUT_MS", "Checkpointer", "configure"]

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

    Every ``interval`` seconds it runs a passive checkpoint (which never waits for
    readers or the writer); :meth:`stop` runs a last, truncating one so the log
    file is left empty.
    """

    def __init__(self, engine: sa.Engine, interval: float = 1.0) -> None:
        self._engine = engine
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
        self.checkpoint("TRUNCATE")

    def checkpoint(self, mode: str = "PASSIVE") -> None:
        try:
            connection = self._engine.raw_connection()
            try:
                cursor = connection.cursor()
                cursor.execute(f"PRAGMA wal_checkpoint({mode})")
                cursor.fetchall()
                cursor.close()
            finally:
                connection.close()
        except Exception as exc:  # a busy database: the next round tries again
            log.warning("store.checkpoint_failed", mode=mode, error=f"{type(exc).__name__}")

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            self.checkpoint()
