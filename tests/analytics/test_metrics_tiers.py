"""Tier distribution, funnel and movements from what the engine stores."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from communitykit._clock import SimulatedClock
from communitykit.analytics import build_report
from communitykit.app import CommunityApp
from communitykit.config import parse_config
from communitykit.model import MemberJoined
from communitykit.store import SQLiteStore
from communitykit.testing import HookRecorder, fresh_plugin_manager

CONFIG = """
[community]
name = "tiers"

[tiers]
window_days = 30

[[tiers.ladder]]
name = "bronze"
threshold = 0

[[tiers.ladder]]
name = "silver"
threshold = 10

[[tiers.ladder]]
name = "gold"
threshold = 30
"""
T0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
END = date(2026, 4, 12)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 40 * 24), st.integers(1, 25)), max_size=20)
)
def test_tier_movements_count_every_promotion_and_demotion_the_engine_announced(
    awards: list[tuple[int, int, int]],
) -> None:
    plugins = fresh_plugin_manager(entry_points=True)
    recorder = HookRecorder()
    plugins.register(recorder, name="recorder")
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "c.db")
        store.open()
        clock = SimulatedClock(T0)
        app = CommunityApp(parse_config(CONFIG), store=store, clock=clock, plugins=plugins)
        app.open(with_adapters=False)
        try:

            async def go() -> None:
                for user in range(4):
                    await app.feed(
                        [MemberJoined(event_id=f"j{user}", platform="tg", user=f"u{user}", at=T0)]
                    )
                for n, (user, hours, points) in enumerate(sorted(awards, key=lambda a: a[1])):
                    clock.set(T0 + timedelta(hours=hours))
                    await app.award(f"tg:u{user}", points, reason="help", key=f"a{n}")
                clock.set(datetime(2026, 4, 12, 23, tzinfo=UTC))
                await app.run_due()  # tier reviews: demotions once points leave the window

            asyncio.run(go())
            report = build_report(app, T0.date(), END)
            tiers = {m.member_id: app.tier(m.member_id) for m in app.members()}
        finally:
            app.close()
    calls = recorder.calls("communitykit_tier_changed")
    rank = {"bronze": 0, "silver": 1, "gold": 2}
    ups = sum(1 for c in calls if rank[c["new_tier"]] > rank[c["old_tier"]])
    downs = len(calls) - ups
    movements = report.metric("tier_movements").series
    assert sum(movements["promotions"]) == ups  # type: ignore[arg-type]
    assert sum(movements["demotions"]) == downs  # type: ignore[arg-type]
    table = {row[0]: row[1] for row in report.metric("tiers").rows}
    for tier in rank:
        assert table[tier] == sum(1 for t in tiers.values() if t == tier)
    funnel = report.metric("tier_funnel")
    assert funnel.x == ("bronze", "silver", "gold")
    reached_gold = {c["member_id"] for c in calls if c["new_tier"] == "gold"}
    reached_gold |= {m for m, t in tiers.items() if t == "gold"}
    assert funnel.series["members"][2] == len(reached_gold)
    assert funnel.series["members"][0] == len(tiers)
