"""A store in a SQL database, on SQLAlchemy Core: SQLite today, PostgreSQL next.

Nothing here is particular to one database: the SQL is SQLAlchemy Core, the
types are portable, upserts are a delete then an insert. What SQLite needs on
top (WAL, pragmas, ``BEGIN IMMEDIATE``) lives in :mod:`._sqlite` and is
installed when the URL names SQLite.

A commit is one transaction of bulk statements (one ``executemany`` per table),
with the rows prepared before the transaction starts so the write lock is held
only while the database works. The constraints of the schema (one row per event
key, per idempotency key, per action id, per identity) are the last word on
duplicates; when one fails, the store finds out which and says so.
"""

from __future__ import annotations

import functools
import importlib
import itertools
import json
import operator
import os
import sys
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
import structlog

from communitykit.model import (
    Action,
    AuditRecord,
    Entry,
    EntryKind,
    Event,
    IdentityLink,
    LinkProvenance,
    Member,
    MemberState,
    PlatformIdentity,
    action_from_dict,
    action_from_json,
    event_from_json,
)
from communitykit.model._time import epoch_us, iso_text
from communitykit.store import _sqlite
from communitykit.store._common import (
    already_in_outbox,
    already_stored,
    check_batch,
    from_us,
    identity_taken,
    key_taken,
    not_in_outbox,
    not_open,
    not_pending,
    out_of_sequence,
    refuse,
    to_us,
)
from communitykit.store._protocol import Batch, OutboxItem, OutboxStatus, StoreError
from communitykit.store._schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    WRITE_OPTION,
    audit,
    events,
    fallbacks,
    group_members,
    identities,
    invites,
    ledger,
    links,
    members,
    meta,
    outbox,
    rule_states,
    schema,
    states,
)

__all__ = ["WRITER_ROWS", "SQLStore", "SQLiteStore"]

T = TypeVar("T")

log = structlog.get_logger("communitykit.store")

#: Rows fetched from the database at a time while a read streams.
_YIELD_PER = 1000
#: Values bound in one ``IN (...)`` list.
_CHUNK = 500
#: A batch of at least this many rows (events, entries, states, ...) goes through
#: the writer process (on a SQLite file): below about 500 (200 events), handing
#: the rows to another process costs more than it saves.
WRITER_ROWS = 1000

#: Pools that give every checkout the same connection.
_SHARED_POOLS = (sa.pool.SingletonThreadPool, sa.pool.StaticPool)

_KINDS = {kind.value: kind for kind in EntryKind}
_PENDING = OutboxStatus.PENDING.value

Row = tuple[Any, ...]
_Plan = tuple[str, tuple[int, ...] | None]


class _Bulk:
    """One INSERT or DELETE run for many rows as a single DBAPI ``executemany``.

    SQLAlchemy compiles the statement once per dialect, so the SQL and its
    parameter style are the dialect's own; the rows then go to the driver as
    plain tuples, skipping SQLAlchemy's per-row parameter processing (most of the
    time of a bulk write). Where a column's type needs a bind processor on the
    dialect, or the dialect renames parameters, rows go through ``execute``.
    """

    __slots__ = ("_names", "_plans", "_stmt")

    def __init__(
        self, stmt: sa.Insert | sa.Delete | sa.Select[Any], names: tuple[str, ...]
    ) -> None:
        self._stmt = stmt
        self._names = names
        # per dialect: (SQL, parameter order, None when named), or None to use execute()
        self._plans: weakref.WeakKeyDictionary[sa.Dialect, _Plan | None] = (
            weakref.WeakKeyDictionary()
        )

    @classmethod
    def insert(cls, table: sa.Table, names: tuple[str, ...]) -> _Bulk:
        # inline(): no implicit RETURNING of generated keys (executemany needs none).
        values: dict[str, Any] = {name: sa.bindparam(name) for name in names}
        return cls(table.insert().values(values).inline(), names)

    @classmethod
    def delete(cls, table: sa.Table, column: str) -> _Bulk:
        stmt = table.delete().where(table.c[column] == sa.bindparam("b_" + column))
        return cls(stmt, ("b_" + column,))

    def _plan(self, dialect: sa.Dialect) -> _Plan | None:
        compiled = self._stmt.compile(dialect=dialect)
        for name in self._names:
            impl = compiled.binds[name].type.dialect_impl(dialect)
            if impl.bind_processor(dialect) is not None:
                return None
        if compiled.positional:
            order = compiled.positiontup or []
            if sorted(order) != sorted(self._names):
                return None
            return str(compiled), tuple(self._names.index(name) for name in order)
        if getattr(compiled, "escaped_bind_names", None):
            return None
        return str(compiled), None

    def plan(self, dialect: sa.Dialect) -> _Plan | None:
        """The SQL and parameter order for ``dialect``; None when rows need ``execute``."""
        if dialect not in self._plans:
            self._plans[dialect] = self._plan(dialect)
        return self._plans[dialect]

    def driver(self, dialect: sa.Dialect, rows: list[Row]) -> tuple[str, Sequence[Any]] | None:
        """The SQL and the parameters for the driver's ``executemany`` of ``rows``;
        None when the rows must go through SQLAlchemy's ``execute``."""
        plan = self.plan(dialect)
        if plan is None:
            return None
        sql, order = plan
        if order is None:
            return sql, [dict(zip(self._names, row, strict=True)) for row in rows]
        if order == tuple(range(len(self._names))):
            return sql, rows
        return sql, [tuple(row[i] for i in order) for row in rows]

    def run(self, conn: sa.Connection, rows: list[Row]) -> None:
        if not rows:
            return
        call = self.driver(conn.dialect, rows)
        if call is None:
            names = self._names
            conn.execute(self._stmt, [dict(zip(names, row, strict=True)) for row in rows])
            return
        _executemany(conn, *call)

    def fetch(self, conn: sa.Connection, row: Row) -> list[Row]:
        """Run the statement (a SELECT) once with the values ``row``; its rows."""
        dialect = conn.dialect
        plan = self.plan(dialect)
        if plan is None:
            params = dict(zip(self._names, row, strict=True))
            return [tuple(found) for found in conn.execute(self._stmt, params)]
        sql, order = plan
        values: Any = (
            dict(zip(self._names, row, strict=True))
            if order is None
            else tuple(row[i] for i in order)
        )
        dbapi = dialect.loaded_dbapi
        cursor = conn.connection.cursor()
        try:
            cursor.execute(sql, values)
            return [tuple(found) for found in cursor.fetchall()]
        except dbapi.Error as exc:
            raise sa.exc.DBAPIError.instance(sql, None, exc, dbapi.Error) from exc
        finally:
            cursor.close()


def _executemany(conn: sa.Connection, sql: str, params: Sequence[Any]) -> None:
    """``executemany`` on the driver's own cursor, inside ``conn``'s transaction.

    SQLAlchemy's execute path costs a tenth of a millisecond a call, more than the
    rows of a small batch; a driver error comes out as SQLAlchemy's exception
    for it (``IntegrityError``, ...), as it would from ``execute``.
    """
    dbapi = conn.dialect.loaded_dbapi
    cursor = conn.connection.cursor()
    try:
        cursor.executemany(sql, params)
    except dbapi.Error as exc:
        raise sa.exc.DBAPIError.instance(sql, None, exc, dbapi.Error) from exc
    finally:
        cursor.close()


_EVENTS = _Bulk.insert(
    events, ("platform", "event_id", "type", "at_us", "user_id", "group_id", "payload")
)
_MEMBERS = _Bulk.insert(
    members,
    ("member_id", "display_name", "joined_at", "left_at", "role", "status", "tags", "paid_until"),
)
_IDENTITIES = _Bulk.insert(identities, ("platform", "user_id", "member_id", "position"))
_LINKS = _Bulk.insert(
    links, ("platform", "user_id", "member_id", "method", "at_us", "at", "by", "note")
)
_ENTRIES = _Bulk.insert(
    ledger,
    (
        "seq",
        "member",
        "kind",
        "points",
        "reason",
        "at_us",
        "at",
        "idempotency_key",
        "amount",
        "expires_at",
        "refers_to",
        "unrecovered",
        "lots",
    ),
)


class _Upsert:
    """Insert rows, replacing those whose key is taken: one ``INSERT ... ON CONFLICT
    DO UPDATE`` where the dialect has it (SQLite, PostgreSQL), else a delete of the
    keys then an insert."""

    __slots__ = ("_delete", "_insert", "_native")

    _DIALECTS = ("sqlite", "postgresql")

    def __init__(self, table: sa.Table, names: tuple[str, ...], key: str) -> None:
        self._insert = _Bulk.insert(table, names)
        self._delete = _Bulk.delete(table, key)
        self._native: dict[str, _Bulk] = {}
        values: dict[str, Any] = {name: sa.bindparam(name) for name in names}
        for name in self._DIALECTS:
            module = importlib.import_module(f"sqlalchemy.dialects.{name}")
            stmt = module.insert(table).values(values)
            stmt = stmt.on_conflict_do_update(
                index_elements=[table.c[key]],
                set_={n: stmt.excluded[n] for n in names if n != key},
            )
            self._native[name] = _Bulk(stmt, names)

    def plan(self, dialect: sa.Dialect) -> _Plan | None:
        native = self._native.get(dialect.name)
        return None if native is None else native.plan(dialect)

    def driver(self, dialect: sa.Dialect, rows: list[Row]) -> tuple[str, Sequence[Any]] | None:
        native = self._native.get(dialect.name)
        return None if native is None else native.driver(dialect, rows)

    def run(self, conn: sa.Connection, rows: list[Row]) -> None:
        if not rows:
            return
        native = self._native.get(conn.dialect.name)
        if native is not None:
            native.run(conn, rows)
            return
        self._delete.run(conn, [(row[0],) for row in rows])
        self._insert.run(conn, rows)


_STATES = _Upsert(
    states,
    (
        "member_id",
        "tier",
        "tier_since",
        "below_since",
        "last_active_at",
        "messages",
        "reactions_received",
    ),
    "member_id",
)
_OUTBOX = _Bulk.insert(
    outbox,
    (
        "action_id",
        "platform",
        "type",
        "payload",
        "status",
        "attempts",
        "next_attempt_us",
        "created_at",
        "created_us",
    ),
)
_META = _Bulk.insert(meta, ("key", "value"))
_LAST_POSITION = _Bulk(sa.select(sa.func.max(ledger.c.seq)), ())


@functools.lru_cache(maxsize=64)
def _seen_query(count: int) -> _Bulk:
    """Which of ``count`` event ids of one platform are stored (one statement per count)."""
    names = ("platform", *(f"id{i}" for i in range(count)))
    stmt = sa.select(events.c.event_id).where(
        events.c.platform == sa.bindparam("platform"),
        events.c.event_id.in_([sa.bindparam(name) for name in names[1:]]),
    )
    return _Bulk(stmt, names)


_DELETE_IDENTITIES = _Bulk.delete(identities, "member_id")
_DELETE_MEMBERS = _Bulk.delete(members, "member_id")
_DELETE_META = _Bulk.delete(meta, "key")


_RULE_STATES = _Upsert(rule_states, ("key", "rule", "member_id", "state"), "key")
_DELETE_RULE_STATES = _Bulk.delete(rule_states, "key")
_GROUP_MEMBERS = _Upsert(group_members, ("key", "group_key", "member_id", "since"), "key")
_DELETE_GROUP_MEMBERS = _Bulk.delete(group_members, "key")
_INVITES = _Upsert(invites, ("key", "member_id"), "key")
_FALLBACKS = _Upsert(fallbacks, ("action_id", "rule", "member_id", "actions"), "action_id")
_AUDIT = _Bulk.insert(
    audit, ("at_us", "at", "kind", "rule", "member_id", "event", "actions", "explanation")
)
_SEP = "\x1f"


def _moderation_rows(batch: Batch) -> list[tuple[_Bulk | _Upsert, list[Row]]]:
    """The moderation part of a batch, as (statement, rows) in the order to run."""
    kept, forgotten = [], []
    for (rule, member_id), state in batch.rule_states.items():
        key = f"{rule}{_SEP}{member_id}"
        if state is None:
            forgotten.append((key,))
        else:
            kept.append((key, rule, member_id, _json(dict(state))))
    joined, left = [], []
    for (group_key, member_id), since in batch.group_members.items():
        key = f"{group_key}{_SEP}{member_id}"
        if since is None:
            left.append((key,))
        else:
            joined.append((key, group_key, member_id, since.isoformat()))
    return [
        (_DELETE_RULE_STATES, forgotten),
        (_RULE_STATES, kept),
        (_DELETE_GROUP_MEMBERS, left),
        (_GROUP_MEMBERS, joined),
        (
            _INVITES,
            [(f"{platform}{_SEP}{invite}", m) for (platform, invite), m in batch.invites.items()],
        ),
        (
            _FALLBACKS,
            [
                (action_id, rule, member_id, _json([a.to_dict() for a in actions]))
                for action_id, (rule, member_id, actions) in batch.fallbacks.items()
            ],
        ),
        (
            _AUDIT,
            [
                (
                    to_us(record.at),
                    record.at.isoformat(),
                    record.kind.value,
                    record.rule,
                    record.member_id,
                    record.event,
                    _json([a.to_dict() for a in record.actions]),
                    record.explanation,
                )
                for record in batch.audit
            ],
        ),
    ]


def _audit_record(row: sa.Row[Any]) -> AuditRecord:
    return AuditRecord(
        seq=row.seq,
        at=datetime.fromisoformat(row.at),
        kind=row.kind,
        rule=row.rule,
        member_id=row.member_id,
        event=row.event,
        actions=tuple(action_from_dict(a) for a in json.loads(row.actions)),
        explanation=row.explanation,
    )


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _iso(value: datetime | None) -> str | None:
    return None if value is None else iso_text(value)


# Equal instants read back share one datetime (immutable, 48 B each): members
# imported together, a joining time that is also the tier's start, the credits
# of one moment.
_instant = functools.lru_cache(maxsize=4096)(datetime.fromisoformat)


def _datetime(text: str | None) -> datetime | None:
    return None if text is None else _instant(text)


def _chunks(values: Sequence[T], size: int = _CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _lots(lots: tuple[tuple[str, int], ...]) -> str | None:
    return _json([[lot, points] for lot, points in lots]) if lots else None


_Statement = _Bulk | _Upsert

#: Events (with as many ledger entries and member states) turned into rows at a
#: time: a batch's rows are built while the writer process inserts the ones before.
_STEP = 100


def _steps(batch: Batch) -> Iterator[tuple[_Statement, list[Row]]]:
    """The batch as ``(statement, rows)`` in an order that keeps the tables'
    constraints, each step's rows built when it is asked for (an empty list where a
    table has nothing to write).

    Events, ledger entries and member states come in slices of the same share of
    each: rows that are quick to build and slow to insert (entries, states) mixed
    with ones that are slow to build (events, for their JSON).
    """
    touched: list[Row] = [(m,) for m in (*batch.members, *sorted(batch.removed_members))]
    yield _DELETE_IDENTITIES, touched
    yield _DELETE_MEMBERS, touched
    yield (
        _MEMBERS,
        [
            (
                member.member_id,
                member.display_name,
                _iso(member.joined_at),
                _iso(member.left_at),
                member.role.value,
                member.status.value,
                _json(sorted(member.tags)),
                None if member.paid_until is None else member.paid_until.isoformat(),
            )
            for member in batch.members.values()
        ],
    )
    yield (
        _IDENTITIES,
        [
            (identity.platform, identity.user_id, member.member_id, position)
            for member in batch.members.values()
            for position, identity in enumerate(member.identities)
        ],
    )
    yield (
        _LINKS,
        [
            (
                link.identity.platform,
                link.identity.user_id,
                link.member_id,
                link.provenance.method.value,
                to_us(link.provenance.at),
                link.provenance.at.isoformat(),
                link.provenance.by,
                link.provenance.note,
            )
            for link in batch.links
        ],
    )
    found, entries, changed = batch.events, batch.entries, list(batch.states.values())
    slices = max(1, -(-max(len(found), len(entries), len(changed)) // _STEP))
    for k in range(slices):
        yield (
            _ENTRIES,
            [
                (
                    int(entry.entry_id[1:]),
                    entry.member,
                    entry.kind.value,
                    entry.points,
                    entry.reason,
                    epoch_us(entry.at),
                    iso_text(entry.at),
                    entry.idempotency_key,
                    entry.amount,
                    None if entry.expires_at is None else iso_text(entry.expires_at),
                    entry.refers_to,
                    entry.unrecovered,
                    _lots(entry.lots) if entry.lots else None,
                )
                for entry in _slice(entries, k, slices)
            ],
        )
        yield (
            _STATES,
            [
                (
                    state.member_id,
                    state.tier,
                    iso_text(state.tier_since),
                    _iso(state.below_since),
                    _iso(state.last_active_at),
                    state.messages,
                    state.reactions_received,
                )
                for state in _slice(changed, k, slices)
            ],
        )
        yield (
            _EVENTS,
            [
                (
                    event.platform,
                    event.event_id,
                    event.TYPE,
                    epoch_us(event.at),
                    event.user,
                    event.group,
                    event.to_json(),
                )
                for event in _slice(found, k, slices)
            ],
        )
    if batch.actions:
        created = batch.created_at
        assert created is not None  # check_batch made sure
        created_at, created_us = created.isoformat(), to_us(created)
        yield (
            _OUTBOX,
            [
                (
                    action.action_id,
                    action.platform,
                    action.TYPE,
                    action.to_json(),
                    _PENDING,
                    0,
                    created_us,
                    created_at,
                    created_us,
                )
                for action in batch.actions
            ],
        )
    if batch.meta:
        yield _DELETE_META, [(key,) for key in batch.meta]
        yield _META, list(batch.meta.items())
    if batch.rule_states or batch.group_members or batch.invites or batch.audit or batch.fallbacks:
        yield from _moderation_rows(batch)


def _slice(values: Sequence[T], k: int, slices: int) -> Sequence[T]:
    """The ``k``-th of ``slices`` nearly equal consecutive slices of ``values``."""
    size = len(values)
    return values[k * size // slices : (k + 1) * size // slices]


#: Every statement a commit may run.
_WRITES: tuple[_Statement, ...] = (
    _EVENTS,
    _DELETE_IDENTITIES,
    _DELETE_MEMBERS,
    _MEMBERS,
    _IDENTITIES,
    _LINKS,
    _ENTRIES,
    _STATES,
    _OUTBOX,
    _DELETE_META,
    _META,
    _DELETE_RULE_STATES,
    _RULE_STATES,
    _DELETE_GROUP_MEMBERS,
    _GROUP_MEMBERS,
    _INVITES,
    _FALLBACKS,
    _AUDIT,
)


# Strings read back from rows are new objects each time; a million members would
# hold a million copies of "console" and of each tier and reason. Interned, each
# exists once. Member ids are not interned (the interpreter's table would hold an
# entry for each): the engine keeps the member record's copy wherever it needs one.
_shared = sys.intern


_NO_TAGS: frozenset[str] = frozenset()


def _tags(text: str) -> frozenset[str]:
    """Most members have no tags: they share one empty set (an empty frozenset is 216 B)."""
    if text == "[]":
        return _NO_TAGS
    tags = json.loads(text)
    return frozenset(tags) if tags else _NO_TAGS


# The columns each loader reads, in the order its row is unpacked (by position:
# a quarter of the time of reading them by name).
_ENTRY_COLUMNS = (
    *("seq", "member", "kind", "points", "reason", "at", "idempotency_key", "amount"),
    *("expires_at", "refers_to", "unrecovered", "lots"),
)
_STATE_COLUMNS = (
    *("member_id", "tier", "tier_since", "below_since", "last_active_at", "messages"),
    "reactions_received",
)
_MEMBER_COLUMNS = (
    *("member_id", "display_name", "joined_at", "left_at", "role", "status", "tags"),
    "paid_until",
)


def _entry(row: Sequence[Any]) -> Entry:
    seq, member, kind, points, reason, at, key, amount, expires, refers, unrecovered, lots = row
    return Entry(
        f"e{seq}",
        member,
        _KINDS[kind],
        points,
        _shared(reason),
        _instant(at),
        key,
        amount,
        None if expires is None else _instant(expires),
        refers,
        unrecovered,
        () if lots is None else tuple((lot, part) for lot, part in json.loads(lots)),
    )


def _member(member_id: str, rows: Iterable[Sequence[Any]]) -> Member:
    found = list(rows)
    _, name, joined_at, left_at, role, status, tags, paid_until = found[0][:8]
    return Member(
        member_id=member_id,
        identities=tuple(PlatformIdentity(_shared(row[8]), row[9]) for row in found),
        display_name=name,
        joined_at=_datetime(joined_at),
        left_at=_datetime(left_at),
        role=role,
        status=status,
        tags=_tags(tags),
        paid_until=None if paid_until is None else date.fromisoformat(paid_until),
    )


def _link(row: sa.Row[Any]) -> IdentityLink:
    return IdentityLink(
        identity=PlatformIdentity(row.platform, row.user_id),
        member_id=row.member_id,
        provenance=LinkProvenance(
            method=row.method, at=datetime.fromisoformat(row.at), by=row.by, note=row.note
        ),
    )


def _state(row: Sequence[Any]) -> MemberState:
    member_id, tier, since, below_since, last_active_at, messages, reactions = row
    return MemberState(
        member_id=member_id,
        tier=_shared(tier),
        tier_since=_instant(since),
        below_since=_datetime(below_since),
        last_active_at=_datetime(last_active_at),
        messages=messages,
        reactions_received=reactions,
    )


def _outbox_item(row: sa.Row[Any]) -> OutboxItem:
    return OutboxItem(
        seq=row.seq,
        action=action_from_json(row.payload),
        status=OutboxStatus(row.status),
        attempts=row.attempts,
        next_attempt_at=None if row.next_attempt_us is None else from_us(row.next_attempt_us),
        created_at=datetime.fromisoformat(row.created_at),
        receipt=row.receipt,
        error=row.error,
    )


class _WriterUnavailable(Exception):
    """The writer process could not be started: the store writes batches itself."""


class SQLStore:
    """A store in the SQL database at ``url`` (a SQLAlchemy URL).

    ``url`` (the attribute) is the URL with any password replaced by ``***``; it
    is what every error message names.

    ``writer_process``: on a SQLite file, a batch of at least :data:`WRITER_ROWS`
    rows is written by a child process (started at the first such batch, stopped
    by :meth:`close`) while this one builds the rows, in one transaction all the
    same. False: every batch is written from this process.
    """

    url: str

    def __init__(self, url: str | sa.URL, *, writer_process: bool = True) -> None:
        try:
            self._sa_url = sa.make_url(url)
        except sa.exc.ArgumentError:
            scheme = str(url).partition(":")[0] if isinstance(url, str) else "?"
            raise StoreError(
                f"cannot read the store URL (scheme {scheme!r}): expected a database URL "
                "such as sqlite:///path/to/community.db"
            ) from None
        self.url = self._sa_url.render_as_string(hide_password=True)
        self._engine: sa.Engine | None = None
        self._checkpointer: _sqlite.Checkpointer | None = None
        self._writer_wanted = writer_process
        self._writer: _sqlite.WriterProcess | None = None
        self._writer_plans: bool | None = None
        self._writer_rows = WRITER_ROWS
        # held while this store writes: the checkpointer's second pass comes between
        self._write_lock = threading.RLock()
        self._version = 0

    def __repr__(self) -> str:
        state = "open" if self._engine is not None else "closed"
        return f"<{type(self).__name__} {self.url} ({state})>"

    # ------------------------------------------------------------ opening and closing

    def open(self) -> None:
        """Connect and create or migrate the schema to the newest version. Idempotent."""
        if self._engine is not None:
            return
        try:
            engine = sa.create_engine(self._sa_url)
        except (sa.exc.SQLAlchemyError, ImportError) as exc:
            raise StoreError(f"cannot open {self.url}: {self._reason(exc)}") from exc
        if engine.dialect.name == "sqlite":
            _sqlite.configure(engine)
        try:
            self._version = self._migrate(engine)
        except BaseException:
            engine.dispose()
            raise
        self._engine = engine
        if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
            self._checkpointer = _sqlite.Checkpointer(engine, self._write_lock)
            self._checkpointer.start()
            if self._writer_wanted:
                self._writer = _sqlite.WriterProcess(os.path.abspath(engine.url.database))

    def close(self) -> None:
        """Release connections. Idempotent."""
        engine, self._engine = self._engine, None
        checkpointer, self._checkpointer = self._checkpointer, None
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.stop()
        if checkpointer is not None:
            checkpointer.stop()
        if engine is not None:
            engine.dispose()

    def schema_version(self) -> int:
        """The schema version the store is at (after :meth:`open`)."""
        self._require()
        return self._version

    def _migrate(self, engine: sa.Engine) -> int:
        try:
            with self._writing(engine) as conn:
                found = 0
                if sa.inspect(conn).has_table(schema.name):
                    found = conn.scalar(sa.select(sa.func.max(schema.c.version))) or 0
                if found > SCHEMA_VERSION:
                    raise StoreError(
                        f"the store {self.url} is at schema version {found}: it was created "
                        "by a newer communitykit; upgrade communitykit to use it (this one "
                        f"knows schema versions up to {SCHEMA_VERSION})"
                    )
                if found < SCHEMA_VERSION:
                    for step in MIGRATIONS[found:]:
                        step(conn)
                    conn.execute(schema.delete())
                    conn.execute(schema.insert(), {"version": SCHEMA_VERSION})
                return SCHEMA_VERSION
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"cannot open {self.url}: {self._reason(exc)}") from exc

    # ------------------------------------------------------------------ writing

    def commit(self, batch: Batch) -> None:
        """Write the whole batch in one transaction, or nothing (then raise StoreError)."""
        engine = self._require()
        first = check_batch(batch, self.url)
        if not len(batch):
            return
        writer = self._writer
        if (
            writer is not None
            and len(batch) >= self._writer_rows
            and self._writer_can(engine.dialect)
        ):
            try:
                self._commit_through(writer, engine, batch, first)
                return
            except _WriterUnavailable as exc:
                log.warning("store.writer_unavailable", store=self.url, error=str(exc))
                self._writer = None
        steps = [(statement, rows) for statement, rows in _steps(batch) if rows]
        try:
            with self._writing(engine) as conn:
                if first is not None:
                    expected = self._next_position(conn)
                    if first != expected:
                        raise refuse(self.url, out_of_sequence(batch.entries[0].entry_id, expected))
                for statement, rows in steps:
                    statement.run(conn, rows)
        except sa.exc.IntegrityError as exc:
            raise refuse(self.url, self._diagnose(engine, batch, self._reason(exc))) from exc
        except sa.exc.SQLAlchemyError as exc:
            raise refuse(self.url, self._reason(exc)) from exc

    def _writer_can(self, dialect: sa.Dialect) -> bool:
        """Whether every statement of a commit can go to the driver as plain rows."""
        if self._writer_plans is None:
            self._writer_plans = all(s.plan(dialect) is not None for s in _WRITES) and (
                _LAST_POSITION.plan(dialect) is not None
            )
        return self._writer_plans

    def _commit_through(
        self, writer: _sqlite.WriterProcess, engine: sa.Engine, batch: Batch, first: int | None
    ) -> None:
        """:meth:`commit` with the statements run by the writer process, each step's
        rows sent while the next ones are built."""
        dialect = engine.dialect

        def requests() -> Iterator[tuple[str, str, Any]]:
            if first is not None:
                plan = _LAST_POSITION.plan(dialect)
                assert plan is not None  # _writer_can made sure
                yield ("expect", plan[0], first)
            for statement, rows in _steps(batch):
                if rows:
                    call = statement.driver(dialect, rows)
                    assert call is not None  # _writer_can made sure
                    yield ("run", *call)

        try:
            with self._write_lock:
                writer.batch(requests())
        except _sqlite.Refused as exc:
            if exc.kind == "position":
                problem = out_of_sequence(batch.entries[0].entry_id, int(exc.detail))
            elif exc.kind == "integrity":
                problem = self._diagnose(engine, batch, str(exc.detail))
            else:
                problem = str(exc.detail)
            raise refuse(self.url, problem) from None
        except _sqlite.WriterGone as exc:
            if exc.starting:
                raise _WriterUnavailable(str(exc)) from None
            if exc.committing:
                raise StoreError(
                    f"cannot confirm the commit to {self.url}: {exc}; it may have stopped "
                    "after committing, so the batch is stored whole or not at all"
                ) from None
            raise refuse(self.url, str(exc)) from None

    @staticmethod
    def _next_position(conn: sa.Connection) -> int:
        last = _LAST_POSITION.fetch(conn, ())[0][0]
        return 0 if last is None else int(last) + 1

    def _diagnose(self, engine: sa.Engine, batch: Batch, reason: str) -> str:
        """Which constraint a refused batch broke, in words."""
        try:
            with engine.connect() as conn:
                keys = [(event.platform, event.event_id) for event in batch.events]
                seen = self._seen(conn, keys)
                for platform, event_id in keys:
                    if (platform, event_id) in seen:
                        return already_stored(platform, event_id)
                used: dict[str, str] = {}
                wanted = [entry.idempotency_key for entry in batch.entries]
                for chunk in _chunks(wanted):
                    stmt = sa.select(ledger.c.idempotency_key, ledger.c.seq).where(
                        ledger.c.idempotency_key.in_(chunk)
                    )
                    used.update((row.idempotency_key, f"e{row.seq}") for row in conn.execute(stmt))
                for key in wanted:
                    if key in used:
                        return key_taken(key, used[key])
                if batch.entries:
                    expected = self._next_position(conn)
                    if batch.entries[0].entry_id != f"e{expected}":
                        return out_of_sequence(batch.entries[0].entry_id, expected)
                action_ids = [action.action_id for action in batch.actions]
                for chunk in _chunks(action_ids):
                    stmt = sa.select(outbox.c.action_id).where(outbox.c.action_id.in_(chunk))
                    for action_id in conn.scalars(stmt):
                        return already_in_outbox(action_id)
                touched = set(batch.members) | batch.removed_members
                for member in batch.members.values():
                    for identity in member.identities:
                        owner = conn.scalar(
                            sa.select(identities.c.member_id).where(
                                identities.c.platform == identity.platform,
                                identities.c.user_id == identity.user_id,
                            )
                        )
                        if owner is not None and owner not in touched:
                            return identity_taken(identity, owner)
        except sa.exc.SQLAlchemyError:
            pass
        return f"a constraint of the database failed ({reason})"

    # ------------------------------------------------------------------ reading

    def seen_events(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these ``(platform, event_id)`` pairs are already stored."""
        engine = self._require()
        try:
            with engine.connect() as conn:
                return self._seen(conn, keys)
        except sa.exc.SQLAlchemyError as exc:
            raise self._read_error(exc) from exc

    @staticmethod
    def _seen(conn: sa.Connection, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        by_platform: dict[str, list[str]] = {}
        for platform, event_id in keys:
            by_platform.setdefault(platform, []).append(event_id)
        found: set[tuple[str, str]] = set()
        for platform, ids in by_platform.items():
            for chunk in _chunks(sorted(set(ids))):
                rows = _seen_query(len(chunk)).fetch(conn, (platform, *chunk))
                found.update((platform, event_id) for (event_id,) in rows)
        return found

    def count_events(self) -> int:
        return int(self._scalar(sa.select(sa.func.count()).select_from(events)) or 0)

    def iter_events(self) -> Iterator[Event]:
        """Every stored event, in the order they were committed."""
        rows = self._stream(sa.select(events.c.payload).order_by(events.c.seq))
        return (event_from_json(row.payload) for row in rows)

    def load_members(self) -> Iterator[Member]:
        """Every member not merged away, with their identities (by member id)."""
        stmt = (
            sa.select(
                *(members.c[name] for name in _MEMBER_COLUMNS),
                identities.c.platform,
                identities.c.user_id,
            )
            .join(identities, identities.c.member_id == members.c.member_id)
            .order_by(members.c.member_id, identities.c.position)
        )
        rows = self._stream(stmt)
        return (
            _member(member_id, group)
            for member_id, group in itertools.groupby(rows, key=operator.itemgetter(0))
        )

    def load_links(self) -> Iterator[IdentityLink]:
        """The identity-link history, in order written."""
        return map(_link, self._stream(sa.select(links).order_by(links.c.seq)))

    def load_entries(self) -> Iterator[Entry]:
        """Every ledger entry, in ledger order (entry ids ``e0``, ``e1``, ...)."""
        columns = (ledger.c[name] for name in _ENTRY_COLUMNS)
        return map(_entry, self._stream(sa.select(*columns).order_by(ledger.c.seq)))

    def load_states(self) -> Iterator[MemberState]:
        """Every member state, by member id."""
        columns = (states.c[name] for name in _STATE_COLUMNS)
        return map(_state, self._stream(sa.select(*columns).order_by(states.c.member_id)))

    def get_meta(self, key: str) -> str | None:
        value = self._scalar(sa.select(meta.c.value).where(meta.c.key == key))
        return None if value is None else str(value)

    def iter_events_since(self, at: datetime) -> Iterator[Event]:
        """The stored events at or after ``at``, in the order they were committed."""
        stmt = sa.select(events.c.payload).where(events.c.at_us >= to_us(at)).order_by(events.c.seq)
        return (event_from_json(row.payload) for row in self._stream(stmt))

    # --------------------------------------------------------------- moderation

    def load_rule_states(self) -> Iterator[tuple[str, str, Mapping[str, object]]]:
        stmt = sa.select(rule_states).order_by(rule_states.c.key)
        return ((r.rule, r.member_id, json.loads(r.state)) for r in self._stream(stmt))

    def load_group_members(self) -> Iterator[tuple[str, str, datetime]]:
        stmt = sa.select(group_members).order_by(group_members.c.key)
        return ((r.group_key, r.member_id, _instant(r.since)) for r in self._stream(stmt))

    def load_invites(self) -> Iterator[tuple[str, str, str]]:
        stmt = sa.select(invites).order_by(invites.c.key)
        for row in self._stream(stmt):
            platform, _, invite = row.key.partition(_SEP)
            yield platform, invite, row.member_id

    def audit_trail(
        self, *, member_id: str | None = None, rule: str | None = None
    ) -> Iterator[AuditRecord]:
        stmt = sa.select(audit).order_by(audit.c.seq)
        if member_id is not None:
            stmt = stmt.where(audit.c.member_id == member_id)
        if rule is not None:
            stmt = stmt.where(audit.c.rule == rule)
        return map(_audit_record, self._stream(stmt))

    def fallbacks_of(self, action_id: str) -> tuple[str, str | None, tuple[Action, ...]] | None:
        engine = self._require()
        stmt = sa.select(fallbacks).where(fallbacks.c.action_id == action_id)
        try:
            with engine.connect() as conn:
                row = conn.execute(stmt).first()
        except sa.exc.SQLAlchemyError as exc:
            raise self._read_error(exc) from exc
        if row is None:
            return None
        actions = tuple(action_from_dict(a) for a in json.loads(row.actions))
        return row.rule, row.member_id, actions

    # ------------------------------------------------------------------- outbox

    def due_actions(self, now: datetime, limit: int = 100) -> list[OutboxItem]:
        """Pending actions whose next attempt is due at ``now``, oldest first."""
        stmt = (
            sa.select(outbox)
            .where(outbox.c.status == _PENDING, outbox.c.next_attempt_us <= to_us(now))
            .order_by(outbox.c.seq)
            .limit(max(0, limit))
        )
        return list(map(_outbox_item, self._stream(stmt)))

    def known_actions(self, action_ids: Sequence[str]) -> set[str]:
        """Which of these action ids are in the outbox already (whatever their status)."""
        engine = self._require()
        found: set[str] = set()
        try:
            with engine.connect() as conn:
                for chunk in _chunks(sorted(set(action_ids))):
                    stmt = sa.select(outbox.c.action_id).where(outbox.c.action_id.in_(chunk))
                    found.update(conn.scalars(stmt))
        except sa.exc.SQLAlchemyError as exc:
            raise self._read_error(exc) from exc
        return found

    def next_due(self) -> datetime | None:
        """When the earliest pending action is due (``None``: nothing pending)."""
        stmt = sa.select(sa.func.min(outbox.c.next_attempt_us)).where(outbox.c.status == _PENDING)
        us = self._scalar(stmt)
        return None if us is None else from_us(int(us))

    def outbox(self, status: OutboxStatus | None = None) -> Iterator[OutboxItem]:
        """Every outbox item (or those with ``status``), in order written."""
        stmt = sa.select(outbox).order_by(outbox.c.seq)
        if status is not None:
            stmt = stmt.where(outbox.c.status == OutboxStatus(status).value)
        return map(_outbox_item, self._stream(stmt))

    def mark_delivered(self, action_id: str, receipt: str | None, at: datetime) -> None:
        self._settle(
            action_id,
            status=OutboxStatus.DELIVERED.value,
            receipt=receipt,
            next_attempt_us=None,
            updated_us=to_us(at),
        )

    def mark_failed(self, action_id: str, error: str, at: datetime) -> None:
        """A permanent failure: the action will not be tried again."""
        self._settle(
            action_id,
            status=OutboxStatus.FAILED.value,
            error=error,
            next_attempt_us=None,
            updated_us=to_us(at),
        )

    def reschedule(self, action_id: str, error: str, next_attempt_at: datetime) -> None:
        """A transient failure: count the attempt and try again at ``next_attempt_at``."""
        self._settle(action_id, error=error, next_attempt_us=to_us(next_attempt_at))

    def _settle(self, action_id: str, **values: Any) -> None:
        engine = self._require()
        stmt = (
            outbox.update()
            .where(outbox.c.action_id == action_id, outbox.c.status == _PENDING)
            .values(attempts=outbox.c.attempts + 1, **values)
        )
        try:
            with self._writing(engine) as conn:
                if conn.execute(stmt).rowcount == 0:
                    status = conn.scalar(
                        sa.select(outbox.c.status).where(outbox.c.action_id == action_id)
                    )
                    if status is None:
                        raise not_in_outbox(self.url, action_id)
                    raise not_pending(self.url, action_id, status)
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(
                f"cannot update the outbox of {self.url}: {self._reason(exc)}"
            ) from exc

    # ---------------------------------------------------------------- internals

    def _require(self) -> sa.Engine:
        if self._engine is None:
            raise not_open(self.url)
        return self._engine

    @contextmanager
    def _writing(self, engine: sa.Engine) -> Iterator[sa.Connection]:
        """A connection in a write transaction, committed when the block ends without error."""
        with self._write_lock, engine.connect() as conn:
            conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                yield conn

    def _scalar(self, stmt: sa.Select[Any]) -> Any:
        engine = self._require()
        try:
            with engine.connect() as conn:
                return conn.scalar(stmt)
        except sa.exc.SQLAlchemyError as exc:
            raise self._read_error(exc) from exc

    def _stream(self, stmt: sa.Select[Any]) -> Iterator[sa.Row[Any]]:
        """The rows of ``stmt``, fetched a thousand at a time while the caller iterates.

        On an engine whose pool hands out one shared connection (a database in
        memory), the rows are read whole first: a read left open there would
        hold the transaction a commit needs.
        """
        engine = self._require()
        if isinstance(engine.pool, _SHARED_POOLS):
            return self._all_rows(engine, stmt)
        return self._rows(engine, stmt.execution_options(yield_per=_YIELD_PER))

    def _rows(self, engine: sa.Engine, stmt: sa.Select[Any]) -> Iterator[sa.Row[Any]]:
        try:
            with engine.connect() as conn:
                # a thousand rows a fetch, handed on from a list (not fetched one by one)
                for rows in conn.execute(stmt).partitions():
                    yield from rows
        except sa.exc.SQLAlchemyError as exc:
            raise self._read_error(exc) from exc

    def _all_rows(self, engine: sa.Engine, stmt: sa.Select[Any]) -> Iterator[sa.Row[Any]]:
        try:
            with engine.connect() as conn:
                rows = conn.execute(stmt).all()
        except sa.exc.SQLAlchemyError as exc:
            raise self._read_error(exc) from exc
        return iter(rows)

    def _read_error(self, exc: sa.exc.SQLAlchemyError) -> StoreError:
        return StoreError(f"cannot read {self.url}: {self._reason(exc)}")

    def _reason(self, exc: BaseException) -> str:
        """What went wrong, in one line, without the SQL, the parameters or a password."""
        cause: BaseException = exc
        if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None:
            cause = exc.orig
        text = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        password = self._sa_url.password
        if password:
            text = text.replace(str(password), "***")
        return text


class SQLiteStore(SQLStore):
    """A store in the SQLite database file at ``path`` (``":memory:"``: in memory)."""

    def __init__(self, path: str | os.PathLike[str], *, writer_process: bool = True) -> None:
        text = os.fspath(path)
        self.path = text if text == ":memory:" else os.path.abspath(text)
        database = None if text == ":memory:" else self.path
        super().__init__(sa.URL.create("sqlite", database=database), writer_process=writer_process)
