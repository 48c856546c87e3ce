"""Behaviours an engine review found wrong once, kept right."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import anyio
import pytest

from communitykit import (
    CommunityApp,
    DuplicateEntry,
    MemberJoined,
    MemberPaid,
    MessagePosted,
    SimulatedClock,
    hookimpl,
    parse_config,
)
from communitykit.testing import memory_app

from .doubles import ScriptedAdapter

pytestmark = pytest.mark.anyio

D = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)

CONFIG = """
[community]
name = "t"
store = "{store}"

[[groups]]
key = "main"
platform = "console"
id = "main"

[points]
message = 10
message_daily_cap = 1000

[tiers]
grace_days = 0
{tiers}
[[tiers.ladder]]
name = "member"
threshold = 0

[[tiers.ladder]]
name = "gold"
threshold = 10
multiplier = "2"
titles = {{ console = "Gold" }}
"""


def config(store: str = "memory://", tiers: str = "") -> str:
    return CONFIG.format(store=store, tiers=tiers)


def msg(n: int, user: str = "ana", at: datetime = D) -> MessagePosted:
    return MessagePosted(
        event_id=f"m{n}",
        platform="console",
        group="main",
        user=user,
        at=at,
        message_id=str(n),
        text="hi",
    )


async def test_an_operator_award_with_a_key_used_for_another_member_is_refused() -> None:
    app, _ = memory_app(config_text=config(), adapters={"console": ScriptedAdapter()})
    await app.feed([msg(1, "ana"), msg(2, "bo")])
    await app.award("console:ana", 5, reason="manual", key="K")
    with pytest.raises(DuplicateEntry, match="'K' was already used"):
        await app.award("console:bo", 7, reason="manual", key="K")
    assert app.balance("console:bo") == 10


async def test_the_batching_of_events_does_not_change_the_points() -> None:
    balances = []
    for batches in ([[msg(1)], [msg(2)]], [[msg(1), msg(2)]]):
        app, _ = memory_app(config_text=config(), adapters={"console": ScriptedAdapter()})
        for batch in batches:
            await app.feed(batch)
        balances.append(app.balance("console:ana"))
    assert balances == [30, 30]  # the second message earns at gold's x2 either way


async def test_paying_reaches_a_paid_tier_at_once_and_tenure_on_the_daily_review() -> None:
    tiers = """
[[tiers.ladder]]
name = "member"
threshold = 0

[[tiers.ladder]]
name = "vip"
threshold = 5
requires_paid = true

[[tiers.ladder]]
name = "veteran"
threshold = 100
min_tenure_days = 30
"""
    text = config().split("[[tiers.ladder]]")[0] + tiers
    app, clock = memory_app(config_text=text, adapters={"console": ScriptedAdapter()}, start=D)
    joined = MemberJoined(event_id="j1", platform="console", group="main", user="ana", at=D)
    await app.feed([joined, msg(1)])
    assert app.tier("console:ana") == "member"
    paid = MemberPaid(
        event_id="p1",
        platform="console",
        user="ana",
        at=D,
        amount=Decimal("99.00"),
        currency="CNY",
        valid_until=date(2026, 3, 20),
    )
    await app.feed([paid])
    assert app.tier("console:ana") == "vip"
    await app.feed([msg(n, at=D) for n in range(2, 12)])  # 110 points, tenure 0 days
    assert app.tier("console:ana") == "vip"
    await app.engine.advance_to(D + timedelta(days=40), clock.set)
    assert app.tier("console:ana") == "veteran"  # 30 days of tenure, found by the review


async def test_the_first_daily_review_is_not_moved_by_a_restart(tmp_path: Path) -> None:
    tiers = "window_days = 1\n"
    text = config(f"sqlite:///{tmp_path / 'c.db'}", tiers)
    results = []
    for restart in (False, True):
        (tmp_path / "c.db").unlink(missing_ok=True)
        clock = SimulatedClock(D)
        app = CommunityApp(parse_config(text), clock=clock, adapters={"console": ScriptedAdapter()})
        app.open()
        await app.feed([msg(1, at=D - timedelta(hours=22))])  # credited yesterday 12:00
        await app.engine.advance_to(D + timedelta(hours=13), clock.set)
        if restart:
            app.close()
            clock.set(D + timedelta(hours=15))
            app = CommunityApp(
                parse_config(text), clock=clock, adapters={"console": ScriptedAdapter()}
            )
            app.open()
        await app.engine.advance_to(D + timedelta(hours=26), clock.set)
        results.append(app.tier("console:ana"))
        app.close()
    assert results == ["member", "member"]  # the credit left the 1-day window either way


async def test_a_community_opens_again_after_close() -> None:
    app, _ = memory_app(config_text=config(), adapters={"console": ScriptedAdapter()})
    await app.feed([msg(1)])
    app.close()
    await app.feed([msg(2)])
    assert app.balance("console:ana") == 30


async def test_offline_work_still_queues_the_actions_it_causes(tmp_path: Path) -> None:
    path = tmp_path / "community.toml"
    path.write_text(config(f"sqlite:///{tmp_path / 'c.db'}"), encoding="utf-8")
    app = CommunityApp.from_file(path)
    app.open(with_adapters=False)
    import communitykit.model as model

    member = model.Member(
        member_id="console:ana", identities=[model.PlatformIdentity("console", "ana")]
    )
    await app.engine.import_members(
        [member],
        model.LinkProvenance(method="import", at=D),  # type: ignore[arg-type]
    )
    await app.award("console:ana", 20, reason="host", key="k1")
    assert [(i.action.TYPE, i.action.title) for i in app.store.outbox()] == [("set_title", "Gold")]  # type: ignore[attr-defined]
    app.close()


async def test_a_downgrade_clears_the_title_a_higher_tier_gave() -> None:
    text = config(tiers="window_days = 1\n")
    app, clock = memory_app(config_text=text, adapters={"console": ScriptedAdapter()}, start=D)
    await app.feed([msg(1)])
    assert app.tier("console:ana") == "gold"
    await app.engine.advance_to(D + timedelta(days=3), clock.set)
    assert app.tier("console:ana") == "member"
    titles = [i.action.title for i in app.store.outbox()]  # type: ignore[attr-defined]
    assert titles == ["Gold", ""]


async def test_notifications_of_concurrent_batches_do_not_interleave() -> None:
    seen: list[tuple[str, str]] = []

    class Slow:
        @hookimpl
        async def communitykit_points_awarded(self, entry: object) -> None:
            await anyio.sleep(0.01)
            seen.append(("points", entry.idempotency_key.split(":")[1]))  # type: ignore[attr-defined]

        @hookimpl
        async def communitykit_event_processed(self, event: MessagePosted) -> None:
            await anyio.sleep(0.01)
            seen.append(("event", event.event_id))

    app, _ = memory_app(config_text=config(), adapters={"console": ScriptedAdapter()})
    app.register_plugin(Slow(), name="slow")
    await asyncio.gather(app.feed([msg(1)]), app.feed([msg(2, "bo")]))
    assert seen == [("points", "m1"), ("event", "m1"), ("points", "m2"), ("event", "m2")]


TWO_GROUPS = """
[community]
name = "两个群"

[[groups]]
key = "a"
platform = "console"
id = "ga"

[[groups]]
key = "b"
platform = "console"
id = "gb"
"""


async def test_leaving_one_group_of_two_leaves_the_member_a_member() -> None:
    from communitykit import MemberLeft, MemberStatus

    app, _ = memory_app(config_text=TWO_GROUPS, adapters={"console": ScriptedAdapter()}, start=D)
    app.open()

    def event(kind: type, n: int, group: str, **extra: object) -> object:
        at = D + timedelta(hours=n)
        return kind(event_id=f"e{n}", platform="console", group=group, user="ana", at=at, **extra)

    await app.feed([event(MemberJoined, 1, "ga"), event(MemberJoined, 2, "gb")])
    await app.feed([event(MemberLeft, 3, "ga", reason="left")])
    member = app.member("console", "ana")
    assert member is not None
    assert (member.status, member.left_at) == (MemberStatus.ACTIVE, None)
    assert app.engine.moderation.member_groups("console:ana") == {"b"}
    await app.feed([event(MemberLeft, 4, "gb", reason="left")])
    member = app.member("console", "ana")
    assert member is not None
    assert (member.status, member.left_at) == (MemberStatus.LEFT, D + timedelta(hours=4))
    await app.feed([event(MemberJoined, 5, "gb"), event(MemberLeft, 6, "gb", reason="banned")])
    member = app.member("console", "ana")
    assert member is not None and member.status is MemberStatus.BANNED


async def test_a_late_event_never_moves_the_last_activity_back() -> None:
    from communitykit import MessagePosted

    app, _ = memory_app(config_text=TWO_GROUPS, adapters={"console": ScriptedAdapter()}, start=D)
    app.open()

    def said(n: int, hours: int) -> MessagePosted:
        at = D + timedelta(hours=hours)
        return MessagePosted(
            event_id=f"m{n}", platform="console", group="ga", user="ana", at=at,
            message_id=f"m{n}", text="hi",
        )  # fmt: skip

    await app.feed([said(1, 48)])
    await app.feed([said(2, 1)])  # delivered late: it happened two days earlier
    state = app.state("console:ana")
    assert state.last_active_at == D + timedelta(hours=48)
    assert state.messages == 2
