"""The SQL schema of a store, and the migrations that build it version by version.

Every table name starts with ``ck_`` so a store can share a database with other
applications. Only portable types are used (Integer, BigInteger, String, Text):
instants are kept twice, as UTC epoch microseconds (``*_us``, for ordering and
filtering) and as the original ISO 8601 text (so the UTC offset reads back as
written); JSON is kept as text.

:data:`MIGRATIONS` lists the steps from an empty database to the newest schema;
the version a database is at is the one row of ``ck_schema``. Migration 1
creates the tables as this module defines them. When a later migration changes a
table, change the definition here and give migration 1 a frozen copy of the
version-1 tables, so that a new database still passes through every version.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

__all__ = [
    "METADATA",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "WRITE_OPTION",
    "audit",
    "events",
    "fallbacks",
    "group_members",
    "identities",
    "invites",
    "ledger",
    "links",
    "members",
    "meta",
    "outbox",
    "rule_states",
    "schema",
    "states",
]

#: The execution option a store sets on a connection whose transaction writes.
#: A dialect that can take its write lock up front (SQLite: ``BEGIN IMMEDIATE``)
#: does so; the others ignore it.
WRITE_OPTION = "communitykit_write"

# Row positions: 64-bit everywhere, but on SQLite the type must read INTEGER for the
# column to be the rowid (autoincrementing, and no separate index).
_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

METADATA = sa.MetaData()

meta = sa.Table(
    "ck_meta",
    METADATA,
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

schema = sa.Table(
    "ck_schema",
    METADATA,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
)

events = sa.Table(
    "ck_events",
    METADATA,
    sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
    sa.Column("platform", sa.String, nullable=False),
    sa.Column("event_id", sa.String, nullable=False),
    sa.Column("type", sa.String, nullable=False),
    sa.Column("at_us", sa.BigInteger, nullable=False),
    sa.Column("user_id", sa.String, nullable=False),
    sa.Column("group_id", sa.String, nullable=True),
    sa.Column("payload", sa.Text, nullable=False),
    sa.UniqueConstraint("platform", "event_id", name="uq_ck_events_key"),
    sa.Index("ix_ck_events_at_us", "at_us"),
)

members = sa.Table(
    "ck_members",
    METADATA,
    sa.Column("member_id", sa.String, primary_key=True),
    sa.Column("display_name", sa.Text, nullable=False),
    sa.Column("joined_at", sa.String, nullable=True),
    sa.Column("left_at", sa.String, nullable=True),
    sa.Column("role", sa.String, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("tags", sa.Text, nullable=False),
    sa.Column("paid_until", sa.String, nullable=True),
)

identities = sa.Table(
    "ck_identities",
    METADATA,
    sa.Column("platform", sa.String, primary_key=True),
    sa.Column("user_id", sa.String, primary_key=True),
    sa.Column(
        "member_id",
        sa.String,
        sa.ForeignKey("ck_members.member_id", name="fk_ck_identities_member"),
        nullable=False,
    ),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Index("ix_ck_identities_member", "member_id"),
)

links = sa.Table(
    "ck_links",
    METADATA,
    sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
    sa.Column("platform", sa.String, nullable=False),
    sa.Column("user_id", sa.String, nullable=False),
    sa.Column("member_id", sa.String, nullable=False),
    sa.Column("method", sa.String, nullable=False),
    sa.Column("at_us", sa.BigInteger, nullable=False),
    sa.Column("at", sa.String, nullable=False),
    sa.Column("by", sa.String, nullable=True),
    sa.Column("note", sa.Text, nullable=False),
)

ledger = sa.Table(
    "ck_ledger",
    METADATA,
    sa.Column("seq", _SEQ, primary_key=True, autoincrement=False),  # the entry id is e{seq}
    sa.Column("member", sa.String, nullable=False),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("points", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("at_us", sa.BigInteger, nullable=False),
    sa.Column("at", sa.String, nullable=False),
    sa.Column("idempotency_key", sa.String, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.String, nullable=True),
    sa.Column("refers_to", sa.String, nullable=True),
    sa.Column("unrecovered", sa.BigInteger, nullable=False),
    sa.Column("lots", sa.Text, nullable=True),  # [["e3", 5], ...]; NULL when none
    sa.UniqueConstraint("idempotency_key", name="uq_ck_ledger_idempotency_key"),
)

states = sa.Table(
    "ck_member_states",
    METADATA,
    sa.Column("member_id", sa.String, primary_key=True),
    sa.Column("tier", sa.String, nullable=False),
    sa.Column("tier_since", sa.String, nullable=False),
    sa.Column("below_since", sa.String, nullable=True),
    sa.Column("last_active_at", sa.String, nullable=True),
    sa.Column("messages", sa.BigInteger, nullable=False),
    sa.Column("reactions_received", sa.BigInteger, nullable=False),
    # one B-tree keyed by member (SQLite; other databases ignore the option)
    sqlite_with_rowid=False,
)

outbox = sa.Table(
    "ck_outbox",
    METADATA,
    sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
    sa.Column("action_id", sa.String, nullable=False),
    sa.Column("platform", sa.String, nullable=False),
    sa.Column("type", sa.String, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_us", sa.BigInteger, nullable=True),  # NULL once settled
    sa.Column("created_at", sa.String, nullable=False),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Column("receipt", sa.Text, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("updated_us", sa.BigInteger, nullable=True),
    sa.UniqueConstraint("action_id", name="uq_ck_outbox_action_id"),
    sa.Index("ix_ck_outbox_due", "status", "next_attempt_us"),
)


# ------------------------------------------------------------------ version 2: moderation

rule_states = sa.Table(
    "ck_rule_states",
    METADATA,
    sa.Column("key", sa.String, primary_key=True),  # rule \x1f member id
    sa.Column("rule", sa.String, nullable=False),
    sa.Column("member_id", sa.String, nullable=False),
    sa.Column("state", sa.Text, nullable=False),  # JSON object
)

group_members = sa.Table(
    "ck_group_members",
    METADATA,
    sa.Column("key", sa.String, primary_key=True),  # group key \x1f member id
    sa.Column("group_key", sa.String, nullable=False),
    sa.Column("member_id", sa.String, nullable=False),
    sa.Column("since", sa.String, nullable=False),
)

invites = sa.Table(
    "ck_invites",
    METADATA,
    sa.Column("key", sa.String, primary_key=True),  # platform \x1f invite link or code
    sa.Column("member_id", sa.String, nullable=False),
)

fallbacks = sa.Table(
    "ck_fallbacks",
    METADATA,
    sa.Column("action_id", sa.String, primary_key=True),
    sa.Column("rule", sa.String, nullable=False),
    sa.Column("member_id", sa.String, nullable=True),
    sa.Column("actions", sa.Text, nullable=False),  # JSON list of action objects, in order
)

audit = sa.Table(
    "ck_audit",
    METADATA,
    sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
    sa.Column("at_us", sa.BigInteger, nullable=False),
    sa.Column("at", sa.String, nullable=False),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("rule", sa.String, nullable=False),
    sa.Column("member_id", sa.String, nullable=True),
    sa.Column("event", sa.String, nullable=True),
    sa.Column("actions", sa.Text, nullable=False),  # JSON list of action objects
    sa.Column("explanation", sa.Text, nullable=False),
    sa.Index("ix_ck_audit_member", "member_id"),
    sa.Index("ix_ck_audit_rule", "rule"),
)

_VERSION_1 = (
    *("ck_meta", "ck_schema", "ck_events", "ck_members", "ck_identities", "ck_links"),
    *("ck_ledger", "ck_member_states", "ck_outbox"),
)
_VERSION_2 = ("ck_rule_states", "ck_group_members", "ck_invites", "ck_fallbacks", "ck_audit")

# The tables as version 1 had them where a later version changed them (see the
# module's docstring).
_V1 = sa.MetaData()

_ledger_v1 = sa.Table(
    "ck_ledger",
    _V1,
    sa.Column("seq", _SEQ, primary_key=True, autoincrement=False),
    sa.Column("entry_id", sa.String, nullable=False),
    sa.Column("member", sa.String, nullable=False),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("points", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("at_us", sa.BigInteger, nullable=False),
    sa.Column("at", sa.String, nullable=False),
    sa.Column("idempotency_key", sa.String, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.String, nullable=True),
    sa.Column("refers_to", sa.String, nullable=True),
    sa.Column("unrecovered", sa.BigInteger, nullable=False),
    sa.Column("lots", sa.Text, nullable=True),
    sa.UniqueConstraint("entry_id", name="uq_ck_ledger_entry_id"),
    sa.UniqueConstraint("idempotency_key", name="uq_ck_ledger_idempotency_key"),
    sa.Index("ix_ck_ledger_member", "member"),
)

_states_v1 = sa.Table(
    "ck_member_states",
    _V1,
    sa.Column("member_id", sa.String, primary_key=True),
    sa.Column("tier", sa.String, nullable=False),
    sa.Column("tier_since", sa.String, nullable=False),
    sa.Column("below_since", sa.String, nullable=True),
    sa.Column("last_active_at", sa.String, nullable=True),
    sa.Column("messages", sa.BigInteger, nullable=False),
    sa.Column("reactions_received", sa.BigInteger, nullable=False),
)


def _create_tables(conn: sa.Connection) -> None:
    tables = [_V1.tables.get(name, METADATA.tables[name]) for name in _VERSION_1]
    for table in tables:
        table.create(conn, checkfirst=False)


def _add_moderation(conn: sa.Connection) -> None:
    tables = [METADATA.tables[name] for name in _VERSION_2]
    METADATA.create_all(conn, tables=tables, checkfirst=False)


def _rebuild(conn: sa.Connection, old: sa.Table, new: sa.Table) -> None:
    """Replace the table ``old`` by ``new`` (same name), keeping the rows' values of
    the columns they share.

    The rows wait in a holding table while neither exists, so no two tables ever
    carry the same constraint names (PostgreSQL keeps those schema-wide).
    """
    shared = [column.name for column in new.c if column.name in old.c]
    holding = sa.Table(
        f"{new.name}_rebuilding",
        sa.MetaData(),
        *(sa.Column(name, new.c[name].type) for name in shared),
    )
    holding.create(conn, checkfirst=False)
    conn.execute(holding.insert().from_select(shared, sa.select(*(old.c[n] for n in shared))))
    old.drop(conn, checkfirst=False)
    new.create(conn, checkfirst=False)
    conn.execute(new.insert().from_select(shared, sa.select(*holding.c)))
    holding.drop(conn, checkfirst=False)


def _leaner_ledger_and_states(conn: sa.Connection) -> None:
    """Version 3: less to write for each entry and each member's state.

    * The ledger loses ``entry_id`` (always ``e{seq}``, and uniquely indexed) and its
      index on ``member`` (nothing reads the ledger by member: a community loads its
      whole ledger when it opens). The two cost about half of each entry's insert.
    * Member states are one B-tree keyed by member on SQLite (``WITHOUT ROWID``)
      instead of a row table and an index of its key.
    """
    _rebuild(conn, _ledger_v1, ledger)
    _rebuild(conn, _states_v1, states)


Migration = Callable[[sa.Connection], None]

#: Step ``i`` takes a database from version ``i`` to version ``i + 1``.
MIGRATIONS: tuple[Migration, ...] = (_create_tables, _add_moderation, _leaner_ledger_and_states)

#: The newest schema version this code knows.
SCHEMA_VERSION = len(MIGRATIONS)
