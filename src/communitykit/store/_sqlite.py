"""What a SQL store does differently on SQLite: connection settings and transactions.

Every new connection gets write-ahead logging (readers never block the writer),
``synchronous=NORMAL`` (durable at each checkpoint; with WAL a crash never
corrupts the file), enforced foreign keys and a busy timeout, so that a second
process waits for the write lock instead of failing at once.

Python's ``sqlite3`` begins transactions itself, only before data changes and
never before DDL; here SQLAlchemy's ``begin`` emits the ``BEGIN`` instead, so a
migration is one transaction and a write transaction takes the write lock up
front (``BEGIN IMMEDIATE``, for connections marked with
:data:`~communitykit.store._schema.WRITE_OPTION`): a write never fails half-way
because another process wrote since it started reading.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from communitykit.store._schema import WRITE_OPTION

__all__ = ["BUSY_TIMEOUT_MS", "configure"]

#: How long a connection waits for another one's write lock before giving up.
BUSY_TIMEOUT_MS = 10_000

_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
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
