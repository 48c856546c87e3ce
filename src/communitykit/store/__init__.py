"""Where a community is kept: the :class:`Store` protocol and its implementations.

* :class:`MemoryStore` (``memory://``): dictionaries and lists, for tests and dry runs;
* :class:`SQLiteStore` (``sqlite:///path/to/community.db``): the embedded default;
* :class:`SQLStore`: any SQLAlchemy URL; PostgreSQL support comes later.

:func:`open_store` picks one from a URL and opens it.
"""

from __future__ import annotations

import sqlalchemy as sa

from communitykit.store._memory import MemoryStore
from communitykit.store._protocol import Batch, OutboxItem, OutboxStatus, Store, StoreError
from communitykit.store._sql import SQLiteStore, SQLStore

__all__ = [
    "Batch",
    "MemoryStore",
    "OutboxItem",
    "OutboxStatus",
    "SQLStore",
    "SQLiteStore",
    "Store",
    "StoreError",
    "open_store",
]

_ACCEPTED = "memory://, sqlite:///<path> (sqlite:///:memory: for a database in memory)"


def open_store(url: str) -> Store:
    """The store ``url`` names, opened (schema created or migrated).

    ``memory://`` gives a :class:`MemoryStore`; ``sqlite:///<path>`` a
    :class:`SQLiteStore` on that file (relative paths are taken from the current
    directory; ``sqlite:////abs/path`` for an absolute one; ``?writer=inline`` to
    write every batch from this process, see :class:`SQLStore`). PostgreSQL is not
    supported yet. Raises :class:`StoreError` for anything else; no message ever
    shows a password from the URL.
    """
    scheme, separator, rest = url.partition("://")
    if not separator or not scheme:
        raise StoreError(f"expected a store URL, one of {_ACCEPTED}")
    backend = scheme.lower().partition("+")[0]
    store: Store
    if backend == "memory":
        if rest:
            raise StoreError("memory:// takes no path: use exactly memory://")
        store = MemoryStore()
    elif backend == "sqlite":
        # Read as SQLAlchemy reads it: sqlite:///relative.db, sqlite:////absolute.db.
        parsed = _parse(url)
        store = SQLiteStore(parsed.database or ":memory:", writer_process=_writer_choice(parsed))
    elif backend in ("postgresql", "postgres"):
        raise StoreError(
            f"PostgreSQL support is not installed yet (store {_hidden(url)}); "
            f"use one of {_ACCEPTED}"
        )
    else:
        raise StoreError(f"unknown store URL scheme {scheme!r}: use one of {_ACCEPTED}")
    try:
        store.open()
    except BaseException:
        store.close()
        raise
    return store


def _parse(url: str) -> sa.URL:
    try:
        return sa.make_url(url)
    except sa.exc.ArgumentError:
        raise StoreError(
            f"cannot read the store URL {_hidden(url)}; expected one of {_ACCEPTED}"
        ) from None


def _hidden(url: str) -> str:
    """``url`` without its password (only its scheme when it cannot be read)."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url.partition("://")[0] + "://..."


_WRITER_CHOICES = {"process": True, "inline": False}


def _writer_choice(url: sa.URL) -> bool:
    """Whether large batches go through a writer process: ``?writer=process`` (the
    default) or ``?writer=inline``; any other option of the URL is refused."""
    options = dict(url.query)
    unknown = sorted(set(options) - {"writer"})
    if unknown:
        raise StoreError(
            f"unknown option {unknown[0]!r} in the store URL {_hidden(str(url))}: "
            "a SQLite store takes only writer=process or writer=inline"
        )
    choice = options.get("writer", "process")
    if not isinstance(choice, str) or choice not in _WRITER_CHOICES:
        raise StoreError(
            f"the store URL {_hidden(str(url))} has writer={choice!r}: "
            "expected writer=process or writer=inline"
        )
    return _WRITER_CHOICES[choice]
