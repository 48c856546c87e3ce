"""Batch lifecycle stages agree with the one definition, member by member."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from communitykit._clock import SimulatedClock
from communitykit.analytics import stage_counts, stages
from communitykit.analytics._stages import STAGES, stage_codes
from communitykit.app import CommunityApp
from communitykit.config import parse_config
from communitykit.model import (
    CommandInvoked,
    Event,
    LifecycleSettings,
    MemberJoined,
    MemberLeft,
    MemberStatus,
    MessagePosted,
    Stage,
    last_return,
    stage_of,
)
from communitykit.store import SQLiteStore
from communitykit.store._common import to_us

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NOW = T0 + timedelta(days=120)

lifecycle_settings = st.builds(
    LifecycleSettings,
    new_days=st.integers(0, 20),
    active_days=st.integers(1, 30),
    churned_days=st.integers(30, 90),
    recalled_days=st.integers(0, 30),
)
instants = st.integers(0, 150 * 24).map(lambda h: T0 + timedelta(hours=h))
histories = st.lists(
    st.tuples(
        st.none() | instants,  # joined_at
        st.sampled_from([MemberStatus.ACTIVE, MemberStatus.LEFT, MemberStatus.BANNED]),
        st.lists(instants, max_size=12),  # activity, any order
    ),
    max_size=25,
)


def _expected(
    joined: datetime | None,
    status: MemberStatus,
    activity: list[datetime],
    now: datetime,
    s: LifecycleSettings,
) -> Stage:
    done = sorted(a for a in activity if a <= now)
    return stage_of(
        now=now,
        joined_at=joined,
        status=status,
        last_active_at=done[-1] if done else None,
        returned_at=last_return(joined, done, s),
        settings=s,
    )


@settings(max_examples=300, deadline=None)
@given(histories, lifecycle_settings)
def test_batch_stages_equal_the_pure_function_on_random_histories(
    history: list[tuple[datetime | None, MemberStatus, list[datetime]]], s: LifecycleSettings
) -> None:
    joined = np.array([-1 if j is None else to_us(j) for j, _, _ in history], dtype=np.int64)
    gone = np.array([st_ in (MemberStatus.LEFT, MemberStatus.BANNED) for _, st_, _ in history])
    members = [n for n, (_, _, acts) in enumerate(history) for _ in acts]
    ats = [to_us(a) for _, _, acts in history for a in acts]
    codes = stage_codes(
        now_us=to_us(NOW),
        joined_us=joined,
        gone=gone.astype(np.bool_),
        act_member=np.array(members, dtype=np.int32),
        act_at=np.array(ats, dtype=np.int64),
        settings=s,
    )
    for n, (j, status, acts) in enumerate(history):
        assert STAGES[codes[n]] == _expected(j, status, acts, NOW, s), n


USERS = [f"u{n}" for n in range(8)]


@st.composite
def event_logs(draw: st.DrawFn) -> list[Event]:
    events: list[Event] = []
    for n in range(draw(st.integers(0, 30))):
        kind = draw(st.sampled_from(["join", "leave", "message", "command"]))
        user = draw(st.sampled_from(USERS))
        at = T0 + timedelta(hours=draw(st.integers(0, 130 * 24)))
        common = {"event_id": f"e{n}", "platform": "telegram", "user": user, "at": at}
        if kind == "join":
            events.append(MemberJoined(group="-100", **common))
        elif kind == "leave":
            events.append(MemberLeft(group="-100", reason="left", **common))
        elif kind == "message":
            events.append(MessagePosted(group="-100", message_id=f"m{n}", text="hi", **common))
        else:
            events.append(CommandInvoked(group="-100", command="help", args=(), **common))
    return sorted(events, key=lambda e: e.at)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_logs())
def test_every_member_is_in_exactly_one_stage_and_the_store_scan_agrees(
    events: list[Event],
) -> None:
    config = parse_config('[community]\nname = "stages"\n')
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "c.db")
        store.open()
        app = CommunityApp(config, store=store, clock=SimulatedClock(NOW))
        app.open(with_adapters=False)
        try:

            async def feed() -> None:
                for event in events:
                    await app.feed([event])

            asyncio.run(feed())
            found = stages(store, NOW)
            members = {m.member_id: m for m in store.load_members()}
            activity: dict[str, list[datetime]] = {m: [] for m in members}
            for e in store.iter_events():
                if e.TYPE in ("message_posted", "command_invoked", "reaction_added"):
                    activity[f"telegram:{e.user}"].append(e.at)
        finally:
            app.close()
    assert set(found) == set(members)  # every member, once
    counts = stage_counts(found)
    assert sum(counts.values()) == len(members)
    assert set(counts) == set(Stage)
    for member_id, member in members.items():
        expected = _expected(
            member.joined_at, member.status, activity[member_id], NOW, LifecycleSettings()
        )
        assert found[member_id] == expected, member_id
