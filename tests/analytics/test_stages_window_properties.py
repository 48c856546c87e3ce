"""Stages on SQLite read only a recent window of activity: the answers still equal
the one definition (and the full scan), member by member, whatever ``now`` is."""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from communitykit._clock import SimulatedClock
from communitykit.analytics import stage_counts, stages
from communitykit.analytics._stages import _stages_scan
from communitykit.app import CommunityApp
from communitykit.config import parse_config
from communitykit.model import Event, LifecycleSettings, Stage, last_return, stage_of
from communitykit.store import SQLiteStore
from tests.analytics.test_stages_properties import NOW, T0, event_logs, lifecycle_settings

ACTIVITY = ("message_posted", "command_invoked", "reaction_added")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=event_logs(),
    s=lifecycle_settings,
    now_hours=st.none() | st.integers(0, 140 * 24),
    merge=st.booleans(),
    drop_links=st.booleans(),
    drop_idle_states=st.booleans(),
    other_zone=st.booleans(),
)
def test_window_stages_equal_the_definition_and_the_full_scan_for_any_now(
    events: list[Event],
    s: LifecycleSettings,
    now_hours: int | None,
    merge: bool,
    drop_links: bool,
    drop_idle_states: bool,
    other_zone: bool,
) -> None:
    # now: after every event, or any instant (before some events: their activity
    # after now counts for last_active_at but not for the stage)
    now = NOW if now_hours is None else T0 + timedelta(hours=now_hours)
    config = parse_config('[community]\nname = "stages"\n')
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.db"
        store = SQLiteStore(path)
        store.open()
        app = CommunityApp(config, store=store, clock=SimulatedClock(NOW))
        app.open(with_adapters=False)
        try:

            async def feed() -> None:
                for event in events:
                    await app.feed([event])

            asyncio.run(feed())
        finally:
            app.close()
        con = sqlite3.connect(path)
        with con:
            ids = [m for (m,) in con.execute("SELECT member_id FROM ck_members ORDER BY rowid")]
            if merge and len(ids) >= 2:
                # two members become one: the survivor gets the identities and the
                # later of the two last activities
                survivor, absorbed = ids[0], ids[1]
                con.execute(
                    "UPDATE ck_member_states SET last_active_at = (SELECT MAX(last_active_at)"
                    " FROM ck_member_states WHERE member_id IN (?, ?)) WHERE member_id = ?",
                    (survivor, absorbed, survivor),
                )
                con.execute(
                    "UPDATE ck_identities SET member_id = ?, position = 1 WHERE member_id = ?",
                    (survivor, absorbed),
                )
                con.execute("DELETE FROM ck_member_states WHERE member_id = ?", (absorbed,))
                con.execute("DELETE FROM ck_members WHERE member_id = ?", (absorbed,))
            if drop_links:  # nothing tells when an identity showed up: older events are read
                con.execute("DELETE FROM ck_links")
            if other_zone:  # instants written with another offset (or none) read the same
                zone = timezone(timedelta(hours=5, minutes=30))
                for member_id, joined_at in con.execute(
                    "SELECT member_id, joined_at FROM ck_members WHERE joined_at IS NOT NULL"
                ).fetchall():
                    shifted = datetime.fromisoformat(joined_at).astimezone(zone)
                    con.execute(
                        "UPDATE ck_members SET joined_at = ? WHERE member_id = ?",
                        (shifted.replace(microsecond=0).isoformat(), member_id),
                    )
            if drop_idle_states:  # members never active may have no state at all
                con.execute("DELETE FROM ck_member_states WHERE last_active_at IS NULL")
        con.close()
        store = SQLiteStore(path)
        store.open()
        try:
            found = stages(store, now, s)
            scanned = _stages_scan(store, now, s)
            members = {m.member_id: m for m in store.load_members()}
            owner = {
                (i.platform, i.user_id): m.member_id for m in members.values() for i in m.identities
            }
            activity: dict[str, list[datetime]] = {m: [] for m in members}
            for e in store.iter_events():
                if e.TYPE in ACTIVITY and e.at <= now:
                    activity[owner[(e.platform, e.user)]].append(e.at)
        finally:
            store.close()
    assert set(found) == set(members) == set(scanned)  # every member, once
    counts = stage_counts(found)
    assert sum(counts.values()) == len(members)
    assert set(counts) == set(Stage)
    for member_id, member in members.items():
        done = sorted(activity[member_id])
        expected = stage_of(
            now=now,
            joined_at=member.joined_at,
            status=member.status,
            last_active_at=done[-1] if done else None,
            returned_at=last_return(member.joined_at, done, s),
            settings=s,
        )
        assert found[member_id] == expected, member_id
        assert scanned[member_id] == expected, member_id
