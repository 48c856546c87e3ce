"""What only a SQL store does: files, migrations, connection settings, error wording."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from communitykit.model import MessagePosted
from communitykit.store import Batch, SQLiteStore, SQLStore, StoreError, _sql, open_store
from communitykit.store._schema import METADATA, SCHEMA_VERSION, events, states

from .test_store_contract import at, full_batch, sample_entries, snapshot


def _version(path: Path) -> list[tuple[int]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT version FROM ck_schema").fetchall()


def test_reopening_the_file_gives_back_the_same_data(tmp_path: Path) -> None:
    first = SQLiteStore(tmp_path / "community.db")
    first.open()
    first.commit(full_batch())
    before = snapshot(first)
    first.close()

    second = SQLiteStore(tmp_path / "community.db")
    second.open()
    try:
        assert snapshot(second) == before
        assert list(second.load_entries()) == sample_entries()
    finally:
        second.close()


def test_an_empty_database_is_migrated_to_the_newest_version_and_reopening_is_a_no_op(
    tmp_path: Path,
) -> None:
    path = tmp_path / "community.db"
    store = SQLiteStore(path)
    store.open()
    assert store.schema_version() == SCHEMA_VERSION == 3
    store.commit(full_batch())
    store.close()
    assert _version(path) == [(3,)]
    with sqlite3.connect(path) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert set(METADATA.tables) <= tables

    again = SQLiteStore(path)
    again.open()
    try:
        assert again.schema_version() == 3
        assert again.count_events() == len(full_batch().events)
    finally:
        again.close()
    assert _version(path) == [(3,)]


def test_a_version_1_database_is_migrated_to_the_newest_version(
    tmp_path: Path,
) -> None:
    import sqlalchemy as sa

    from communitykit.store._schema import MIGRATIONS, schema

    path = tmp_path / "community.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        MIGRATIONS[0](conn)
        conn.execute(schema.insert().values(version=1))
    engine.dispose()
    with sqlite3.connect(path) as conn:
        before = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert "ck_audit" not in before and "ck_events" in before

    store = SQLiteStore(path)
    store.open()
    try:
        assert store.schema_version() == SCHEMA_VERSION
        store.commit(full_batch())
        assert store.count_events() == len(full_batch().events)
        assert list(store.audit_trail()) == []
    finally:
        store.close()
    assert _version(path) == [(SCHEMA_VERSION,)]


def _indexes(path: Path, table: str) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?", (table,)
        )
        return {name for (name,) in rows}


def _version_2_database(path: Path) -> None:
    """A database at version 2 holding :func:`full_batch`, written as version 2 laid
    out its rows (the ledger also had ``entry_id``)."""
    from communitykit.store._schema import MIGRATIONS, schema

    batch = full_batch()
    entries: list[tuple[object, ...]] = []
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        for step in MIGRATIONS[:2]:
            step(conn)
        conn.execute(schema.insert().values(version=2))
        for statement, rows in _sql._steps(batch):
            if statement is _sql._ENTRIES:
                entries += [(row[0], f"e{row[0]}", *row[1:]) for row in rows]
            else:
                statement.run(conn, rows)
        marks = ", ".join("?" * len(entries[0]))
        conn.exec_driver_sql(f"INSERT INTO ck_ledger VALUES ({marks})", entries)
    engine.dispose()


def test_a_version_2_database_keeps_everything_when_migrated_to_version_3(
    tmp_path: Path,
) -> None:
    fresh = SQLiteStore(tmp_path / "fresh.db")
    fresh.open()
    fresh.commit(full_batch())
    expected = snapshot(fresh)
    fresh.close()
    path = tmp_path / "community.db"
    _version_2_database(path)
    assert "ix_ck_ledger_member" in _indexes(path, "ck_ledger")

    store = SQLiteStore(path)
    store.open()
    try:
        assert store.schema_version() == 3
        assert snapshot(store) == expected
        assert list(store.load_entries()) == sample_entries()
        # and it goes on where it stood
        with pytest.raises(StoreError, match=f"the next is e{len(sample_entries())}"):
            store.commit(full_batch())
    finally:
        store.close()
    assert _version(path) == [(3,)]
    assert _layout(path) == _layout(tmp_path / "fresh.db")


def test_a_migration_that_fails_half_way_leaves_the_store_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from communitykit.store import _schema

    path = tmp_path / "community.db"
    _version_2_database(path)
    before = _layout(path)
    with sqlite3.connect(path) as conn:
        rows_before = conn.execute("SELECT * FROM ck_ledger ORDER BY seq").fetchall()

    def rebuild_the_ledger_then_fail(conn: sa.Connection) -> None:
        _schema._rebuild(conn, _schema._ledger_v1, _schema.ledger)
        raise sa.exc.OperationalError("ALTER", {}, Exception("disk I/O error"))

    steps = (*_schema.MIGRATIONS[:2], rebuild_the_ledger_then_fail)
    monkeypatch.setattr(_sql, "MIGRATIONS", steps)
    store = SQLiteStore(path)
    with pytest.raises(StoreError, match=r"cannot open .*disk I/O error"):
        store.open()
    assert _version(path) == [(2,)]
    assert _layout(path) == before
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT * FROM ck_ledger ORDER BY seq").fetchall() == rows_before

    monkeypatch.undo()
    again = SQLiteStore(path)
    again.open()
    try:
        assert list(again.load_entries()) == sample_entries()
    finally:
        again.close()


def _layout(path: Path) -> list[tuple[str, str, str | None]]:
    """Every table and index of a database, with its SQL."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' "
            "ORDER BY type, name"
        )
        return [(kind, name, sql) for kind, name, sql in rows]


def test_a_new_database_has_the_version_3_ledger_and_states(tmp_path: Path) -> None:
    path = tmp_path / "community.db"
    store = SQLiteStore(path)
    store.open()
    store.close()
    with sqlite3.connect(path) as conn:
        ledger_columns = [row[1] for row in conn.execute("PRAGMA table_info(ck_ledger)")]
        states_sql = conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'ck_member_states'"
        ).fetchone()[0]
    assert "entry_id" not in ledger_columns and "idempotency_key" in ledger_columns
    assert _indexes(path, "ck_ledger") == {"sqlite_autoindex_ck_ledger_1"}  # the key's
    assert "WITHOUT ROWID" in states_sql


def test_a_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "community.db"
    store = SQLiteStore(path)
    store.open()
    store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE ck_schema SET version = 999")
    newer = SQLiteStore(path)
    with pytest.raises(StoreError, match=r"schema version 999.*newer communitykit; upgrade"):
        newer.open()
    with pytest.raises(StoreError, match="not open"):
        newer.count_events()
    assert _version(path) == [(999,)]


def test_a_database_of_another_application_gets_its_own_tables(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, total TEXT)")
        conn.execute("INSERT INTO orders VALUES (1, '9.50')")
    store = SQLiteStore(path)
    store.open()
    store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT total FROM orders").fetchall() == [("9.50",)]


def test_connections_use_wal_and_enforce_foreign_keys(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "community.db")
    store.open()
    try:
        engine = store._engine  # the connection settings
        assert engine is not None
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert (conn.exec_driver_sql("PRAGMA busy_timeout").scalar() or 0) > 0
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    finally:
        store.close()


def test_commits_leave_checkpoints_to_the_background_and_close_empties_the_log(
    tmp_path: Path,
) -> None:
    path = tmp_path / "community.db"
    wal = tmp_path / "community.db-wal"
    store = SQLiteStore(path)
    store.open()
    checkpointer = store._checkpointer
    assert checkpointer is not None
    checkpointer._stopping.set()  # hold the background rounds: this test runs them
    checkpointer._thread.join()
    try:
        store.commit(full_batch())
        logged = wal.stat().st_size
        assert logged > 0  # the commit is in the log, not yet in the database file
        with sqlite3.connect(path) as raw:  # another process reads it all the same
            assert raw.execute("SELECT count(*) FROM ck_events").fetchone()[0] > 0
        checkpointer.checkpoint()
        assert wal.stat().st_size == logged  # passive: copies frames, keeps the file
    finally:
        store.close()
    assert not wal.exists() or wal.stat().st_size == 0  # truncated at close
    assert store._checkpointer is None


def _messages(batch: int, count: int = 300) -> Batch:
    return Batch(
        events=[
            MessagePosted(
                event_id=f"b{batch}-{n}",
                platform="telegram",
                group="-100123",
                user=str(n % 50),
                at=at(n),
                message_id=str(n),
                text="早上好",
            )
            for n in range(count)
        ]
    )


def test_a_checkpoint_overlapping_commits_still_lets_the_log_start_again(
    tmp_path: Path,
) -> None:
    """Committing without pause, every first pass overlaps a commit: the second
    pass, between commits, checkpoints the log whole, and the next commit writes
    the log from its start again (with the first pass alone, it grows without end)."""
    store = SQLiteStore(tmp_path / "c.db")
    store.open()
    checkpointer = store._checkpointer
    assert checkpointer is not None
    checkpointer._stopping.set()  # hold the background rounds: this test runs them
    checkpointer._thread.join()
    real = checkpointer._pass
    passes: list[tuple[int, int] | None] = []

    def overlapped(mode: str) -> tuple[int, int] | None:
        if passes:
            passes.append(real(mode))
            return passes[-1]
        # a commit under way while the first pass runs (another connection: the
        # store's own would wait for nothing, which is the point of the first pass)
        with sqlite3.connect(tmp_path / "c.db", isolation_level=None) as other:
            other.execute("BEGIN IMMEDIATE")
            other.execute("INSERT INTO ck_meta (key, value) VALUES ('during', 'the first pass')")
            passes.append(real(mode))
            other.execute("COMMIT")
        return passes[-1]

    try:
        store.commit(_messages(1))
        store.commit(_messages(2))
        checkpointer._pass = overlapped  # type: ignore[method-assign]
        second = checkpointer.checkpoint()
        first = passes[0]
        assert first is not None and second is not None
        assert first[0] == first[1]  # the first pass copied all it saw...
        assert second[0] > first[0]  # ...but the commit during it added pages
        assert second[0] == second[1]  # the second copied those too: the whole log
        store.commit(_messages(4))
        log = real("PASSIVE")
        assert log is not None
        assert log[0] < first[0]  # the log started again: only the last commit is in it
        assert store.count_events() == 900
        assert store.get_meta("during") == "the first pass"
    finally:
        checkpointer._pass = real  # type: ignore[method-assign]
        store.close()


def test_a_file_in_a_missing_directory_cannot_be_opened(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "no" / "such" / "dir" / "community.db")
    with pytest.raises(StoreError, match=r"cannot open sqlite:///.*community\.db"):
        store.open()


def test_sqlite_in_memory() -> None:
    store = SQLiteStore(":memory:")
    assert store.url == "sqlite://"
    store.open()
    try:
        batch = full_batch()
        store.commit(Batch(events=batch.events[:4], entries=batch.entries))
        reading = store.iter_events()
        first = next(reading)
        # one shared connection: a read in progress must not hold the commit's transaction
        store.commit(Batch(events=batch.events[4:]))
        assert [first, *reading] == batch.events[:4]
        assert list(store.iter_events()) == batch.events
        assert list(store.load_entries()) == sample_entries()
    finally:
        store.close()


def test_a_store_url_never_shows_the_password() -> None:
    store = SQLStore("postgresql://bob:s3cret-pw@db.example:5432/community")
    assert "s3cret-pw" not in store.url
    assert store.url == "postgresql://bob:***@db.example:5432/community"
    assert "s3cret-pw" not in repr(store)


def test_a_store_that_cannot_connect_names_the_url_without_the_password() -> None:
    store = SQLStore("postgresql://bob:s3cret-pw@127.0.0.1:1/community")
    with pytest.raises(StoreError) as info:
        store.open()
    assert "s3cret-pw" not in str(info.value)
    assert "postgresql://bob:***@127.0.0.1:1/community" in str(info.value)


# --------------------------------------------------------------------------- open_store


def test_open_store_opens_each_kind(tmp_path: Path) -> None:
    memory = open_store("memory://")
    assert memory.url == "memory://"
    assert memory.schema_version() == SCHEMA_VERSION  # already open
    memory.close()

    path = tmp_path / "community.db"
    sqlite_store = open_store(f"sqlite:///{path}")
    try:
        assert isinstance(sqlite_store, SQLiteStore)
        assert sqlite_store.path == str(path)
        assert sqlite_store.schema_version() == SCHEMA_VERSION
    finally:
        sqlite_store.close()
    assert path.exists()

    in_memory = open_store("sqlite://")
    assert isinstance(in_memory, SQLiteStore)
    in_memory.close()


def test_open_store_takes_relative_sqlite_paths_from_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("sqlite:///data.db")
    store.close()
    assert (tmp_path / "data.db").exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://bob:s3cret-pw@db.example/community", "PostgreSQL support is not installed"),
        ("postgresql+psycopg://bob:s3cret-pw@db/c", "PostgreSQL support is not installed"),
        ("mysql://bob:s3cret-pw@db.example/community", "unknown store URL scheme 'mysql'"),
        ("redis://:s3cret-pw@cache:6379/0", "unknown store URL scheme 'redis'"),
        ("bob:s3cret-pw@db.example", "expected a store URL"),
        ("memory://s3cret-pw", "memory:// takes no path"),
        ("", "expected a store URL"),
    ],
)
def test_open_store_refuses_other_urls(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message) as info:
        open_store(url)
    text = str(info.value)
    assert "s3cret-pw" not in text
    if "unknown" in message:
        assert "memory://" in text and "sqlite:///" in text  # names the accepted ones


# --------------------------------------------------------------------------- several writers


def test_two_stores_on_one_file_see_each_others_commits(tmp_path: Path) -> None:
    path = tmp_path / "community.db"
    first, second = SQLiteStore(path), SQLiteStore(path)
    first.open()
    second.open()
    try:
        batch = full_batch()
        first.commit(Batch(events=batch.events[:3], entries=batch.entries[:2]))
        assert second.seen_events([("telegram", "tg-1")]) == {("telegram", "tg-1")}
        # the second writer's ledger is behind: its entries no longer continue the sequence
        with pytest.raises(StoreError, match="does not continue the stored ledger"):
            second.commit(Batch(events=batch.events[3:], entries=batch.entries[:2]))
        second.commit(Batch(events=batch.events[3:], entries=batch.entries[2:]))
        assert list(first.iter_events()) == batch.events
        assert list(first.load_entries()) == batch.entries
    finally:
        first.close()
        second.close()


# --------------------------------------------------------------------------- bulk writes


@pytest.mark.parametrize("paramstyle", ["qmark", "named"])
def test_bulk_writes_follow_the_dialects_parameter_style(paramstyle: str) -> None:
    engine = sa.create_engine("sqlite://", paramstyle=paramstyle)
    rows = [("telegram", f"e{i}", "message_posted", i, "u", None, "{}") for i in range(3)]
    with engine.begin() as conn:
        METADATA.create_all(conn)
        _sql._EVENTS.run(conn, rows)
        _sql._DELETE_META.run(conn, [("nobody",)])
        stored = conn.execute(
            sa.select(
                events.c.platform,
                events.c.event_id,
                events.c.type,
                events.c.at_us,
                events.c.user_id,
                events.c.group_id,
                events.c.payload,
            ).order_by(events.c.seq)
        ).all()
    engine.dispose()
    assert [tuple(row) for row in stored] == rows


@pytest.mark.parametrize("native", [True, False], ids=["on-conflict", "delete-then-insert"])
@pytest.mark.parametrize("paramstyle", ["qmark", "named"])
def test_state_upserts_replace_the_row_of_a_member(
    paramstyle: str, native: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not native:  # a dialect without ON CONFLICT
        monkeypatch.setattr(_sql._STATES, "_native", {})
    engine = sa.create_engine("sqlite://", paramstyle=paramstyle)
    first = [("m1", "newcomer", "2026-03-01T00:00:00+00:00", None, None, 1, 0)]
    second = [
        ("m1", "regular", "2026-03-02T00:00:00+00:00", None, "2026-03-02T00:00:00+00:00", 9, 2),
        ("m2", "newcomer", "2026-03-02T00:00:00+00:00", None, None, 0, 0),
    ]
    with engine.begin() as conn:
        METADATA.create_all(conn)
        _sql._STATES.run(conn, first)
        _sql._STATES.run(conn, second)
        stored = conn.execute(sa.select(states).order_by(states.c.member_id)).all()
    engine.dispose()
    assert [tuple(row) for row in stored] == second


def test_bulk_writes_fall_back_to_execute_when_sqlalchemy_must_process_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_sql._Bulk, "_plan", lambda self, dialect: None)
    store = SQLiteStore(tmp_path / "community.db")
    store.open()
    try:
        store.commit(full_batch())
        store.commit(Batch(members={"m-ana": full_batch().members["m-ana"]}, meta={"a": "b"}))
        assert list(store.load_entries()) == sample_entries()
        assert snapshot(store)["members"] == sorted(
            full_batch().members.values(), key=lambda m: m.member_id
        )
    finally:
        store.close()
