"""The report's funnels of the giveaway, red packet, welcome and schedule campaigns:
driven through an engine and checked against counts made here from what was sent
and paid; and the steps never widen along a funnel."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from communitykit import (
    CommandInvoked,
    MemberJoined,
    MemberState,
    MemberStatus,
    MessagePosted,
    Role,
    SendDirectMessage,
    SendMessage,
    TickContext,
)
from communitykit.analytics import Report
from communitykit.app import CommunityApp
from communitykit.builtins.campaigns._schedule import ScheduleCampaign
from communitykit.builtins.campaigns._welcome import WelcomeCampaign
from communitykit.builtins.campaigns.giveaway import (
    RESULT_KEY,
    GiveawayCampaign,
    RedPacketCampaign,
)
from communitykit.testing import memory_app
from tests.engine.doubles import ScriptedAdapter
from tests.rules.membership_helpers import EVERYTHING, FakeSource, community, member

from .helpers import context
from .test_redpacket import ADMIN, Ledger, grab_at
from .test_redpacket import command as packet_command

STEPS = ("reached", "responded", "signed up", "took part", "completed")


def funnel(report: Report, name: str) -> dict[str, int]:
    """One campaign's funnel in a report: the steps it counts."""
    values = report.metric("campaign_funnels").series[name]
    return {s: int(v) for s, v in zip(STEPS, values, strict=True) if v is not None}


def outbox_texts(app: CommunityApp, kind: type = SendMessage) -> list[tuple[datetime, Any]]:
    return [(i.created_at, i.action) for i in app.store.outbox() if isinstance(i.action, kind)]


def joined(users: list[str], at: datetime) -> list[MemberJoined]:
    return [
        MemberJoined(
            event_id=f"j-{u}", platform="console", group="main", user=u, at=at, display_name=u
        )
        for u in users
    ]


def said(user: str, n: int, at: datetime) -> MessagePosted:
    return MessagePosted(
        event_id=f"m-{user}-{n}",
        platform="console",
        group="main",
        user=user,
        at=at,
        message_id=f"m-{user}-{n}",
        text="读完了第三章",
    )


def command(n: str, user: str, name: str, *args: str, at: datetime) -> CommandInvoked:
    return CommandInvoked(
        event_id=n, platform="console", group="main", user=user, at=at, command=name, args=args
    )


GROUP = """
[[groups]]
key = "main"
platform = "console"
id = "main"
"""

# ------------------------------------------------------------------ giveaway

GIVEAWAY = (
    """
[community]
name = "抽奖社区"
timezone = "America/New_York"
"""
    + GROUP
    + """
[points]
message = 0
reaction_received = 0

[[campaigns]]
type = "giveaway"
name = "spring"
winners = 2
opens = "2026-03-07T20:00:00-05:00"
draws = "2026-03-08T20:00:00-04:00"
seed = "春节抽奖-一个很长的秘密种子-2026"
group = "main"

[[campaigns]]
type = "giveaway"
name = "loyal"
entry = "segment"
eligible = "tag:vip"
winners = 5
opens = "2026-03-07T20:00:00-05:00"
draws = "2026-03-08T20:00:00-04:00"
seed = "忠实会员抽奖-另一个很长的秘密种子"
group = "main"
"""
)


@pytest.mark.anyio
async def test_giveaway_funnels_count_the_entrants_the_eligible_and_the_winners() -> None:
    start = datetime(2026, 3, 7, 12, tzinfo=UTC)
    app, clock = memory_app(
        config_text=GIVEAWAY, adapters={"console": ScriptedAdapter()}, start=start
    )
    app.open()
    users = ["ana", "bo", "cy", "di", "ed", "fa"]
    await app.feed(joined(users, start))
    for u in ("bo", "cy", "fa"):
        await app.tag(f"console:{u}", "vip")
    opens = datetime(2026, 3, 8, 1, tzinfo=UTC)
    early = [command("e0", "ed", "join_giveaway", at=opens - timedelta(hours=1))]
    await app.feed(early)  # before the giveaway opens: refused
    await app.engine.advance_to(opens, clock.set)
    entries = [
        command(f"e{i}", u, "join_giveaway", at=opens + timedelta(hours=1, minutes=i))
        for i, u in enumerate(["ana", "bo", "cy", "ana", "di"], start=1)
    ]
    await app.feed(entries)
    draws = datetime(2026, 3, 9, 0, tzinfo=UTC)
    entered = {e.user for e in early + entries if opens <= e.at < draws}
    assert entered == {"ana", "bo", "cy", "di"}
    report = app.report(date(2026, 3, 7), date(2026, 3, 8))
    # before the draw: nobody has won yet, and the segment's members are not known
    assert funnel(report, "spring") == {"signed up": len(entered), "completed": 0}
    assert funnel(report, "loyal") == {"reached": 0, "completed": 0}

    await app.engine.advance_to(datetime(2026, 3, 9, 1, tzinfo=UTC), clock.set)
    vips = {"bo", "cy", "fa"}  # all active
    told = [a.user for _at, a in outbox_texts(app, SendDirectMessage) if "won" in a.text]
    report = app.report(date(2026, 3, 1), date(2026, 3, 31))
    assert funnel(report, "spring") == {"signed up": len(entered), "completed": 2}
    assert funnel(report, "loyal") == {"reached": len(vips), "completed": len(vips)}
    assert len(told) == 2 + len(vips)  # each winner of each draw was told
    app.close()


@settings(max_examples=40, deadline=None)
@given(
    tries=st.lists(st.tuples(st.sampled_from("abcdefgh"), st.integers(-30, 30 * 60)), max_size=20),
    winners=st.integers(1, 6),
    gone=st.sets(st.sampled_from("abcdefgh")),
)
def test_giveaway_funnel_never_widens(
    tries: list[tuple[str, int]], winners: int, gone: set[str]
) -> None:
    opens = datetime(2026, 3, 7, 20, tzinfo=UTC)
    campaign = GiveawayCampaign.from_settings(
        {
            "opens": opens.isoformat(),
            "draws": (opens + timedelta(hours=24)).isoformat(),
            "seed": "一个足够长的秘密种子-giveaway-2026",
            "group": "main",
            "winners": winners,
        }
    )
    states: dict[str, Mapping[str, Any]] = {}
    for n, (user, minutes) in enumerate(tries):
        who = member(f"tg:{user}", user=user)
        event = CommandInvoked(
            event_id=f"c{n}",
            platform="tg",
            group="-1",
            user=user,
            at=opens + timedelta(minutes=minutes),
            command="join_giveaway",
            args=(),
        )
        ctx = context(event, who=who, rule_state={campaign.name: states.get(who.member_id, {})})
        decision = campaign.on_event(ctx)
        if decision is not None and decision.state is not None:
            states[who.member_id] = decision.state
    before = campaign.funnel(states.items(), [])
    assert before["completed"] == 0
    people = {
        f"tg:{u}": (
            member(
                f"tg:{u}",
                user=u,
                status=MemberStatus.LEFT if u in gone else MemberStatus.ACTIVE,
            ),
            MemberState(member_id=f"tg:{u}", tier="member", tier_since=opens),
        )
        for u in "abcdefgh"
    }
    tick = TickContext(
        now=opens + timedelta(hours=24),
        community=community(),
        capabilities={"tg": EVERYTHING},
        source=FakeSource(members=people, rule_states={campaign.name: states}),
    )
    for decision in campaign.on_schedule(tick):
        if decision.state is not None and decision.member is not None:
            states[decision.member] = decision.state
    found = campaign.funnel(states.items(), [])
    entered = {m for m, s in states.items() if m != RESULT_KEY and "entered" in s}
    still_here = {m for m in entered if m.removeprefix("tg:") not in gone}
    assert found == {"signed up": len(entered), "completed": min(winners, len(still_here))}
    assert found["completed"] <= found["signed up"]


# ---------------------------------------------------------------- red packet

RED_PACKET = (
    """
[community]
name = "红包社区"
timezone = "Asia/Shanghai"
"""
    + GROUP
    + """
[points]
message = 0
reaction_received = 0

[[campaigns]]
type = "red_packet"
"""
)
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.mark.anyio
async def test_red_packet_funnel_counts_members_who_grabbed_in_the_days() -> None:
    start = datetime(2026, 3, 8, 2, tzinfo=UTC)  # 10:00 in Shanghai
    app, _clock = memory_app(
        config_text=RED_PACKET, adapters={"console": ScriptedAdapter()}, start=start
    )
    app.open()
    users = ["boss", "ana", "bo", "cy", "di"]
    await app.feed(joined(users, start))
    await app.set_role("console:boss", Role.OWNER)
    await app.award("console:boss", 100, reason="seed money", key="seed-money")

    async def opened(n: str, at: datetime, total: int, count: int) -> str:
        await app.feed([command(n, "boss", "red_packet", str(total), str(count), at=at)])
        posts = [a.text for _at, a in outbox_texts(app) if "opened a red packet" in a.text]
        return str(posts[-1].split("/grab ")[1].split()[0])

    first = await opened("o1", start + timedelta(minutes=5), 30, 2)
    at = start + timedelta(minutes=10)
    late = datetime(2026, 3, 8, 16, 30, tzinfo=UTC)  # 00:30 on 9 March in Shanghai
    await app.feed(
        [
            command("g1", "ana", "grab", first, at=at),
            command("g2", "ana", "grab", first, at=at),  # again: nothing
            command("g3", "bo", "grab", first, at=late),
            command("g4", "cy", "grab", first, at=late),  # empty: nothing
            command("g5", "di", "grab", "30x2-0123456789", at=at),  # no such packet
        ]
    )
    third = datetime(2026, 3, 10, 3, tzinfo=UTC)
    second = await opened("o2", third, 40, 4)
    await app.feed(
        [command(f"h{i}", u, "grab", second, at=third) for i, u in enumerate(["ana", "cy"])]
    )

    grabs: dict[date, set[str]] = {}
    for entry in app.engine.ledger.entries():
        if ":share:" in entry.idempotency_key:
            grabs.setdefault(entry.at.astimezone(SHANGHAI).date(), set()).add(entry.member)
    ever = set().union(*grabs.values())

    def expected(days: list[date]) -> dict[str, int]:
        took = set().union(*(grabs.get(d, set()) for d in days))
        return {"signed up": len(ever), "took part": len(took)}

    for first_day, last_day in [(8, 8), (9, 9), (8, 9), (10, 12), (11, 12), (1, 31)]:
        days = [date(2026, 3, d) for d in range(first_day, last_day + 1)]
        report = app.report(days[0], days[-1])
        assert funnel(report, "red_packet") == expected(days), days
    assert expected([date(2026, 3, 9)]) == {"signed up": 3, "took part": 1}  # bo, after midnight
    app.close()


def test_a_red_packet_state_kept_before_grab_days_counts_the_day_its_packet_opened() -> None:
    campaign = RedPacketCampaign.from_settings({"timezone": "Asia/Shanghai"})
    states = [
        ("packet:aaaaaaaaaa", {"opener": "tg:1", "opened": "2026-03-08T17:00:00+00:00"}),
        ("packet:bbbbbbbbbb", {"opener": "tg:1", "opened": "2026-03-08T02:00:00+00:00"}),
        ("tg:2", {"claims": {"aaaaaaaaaa": 0}}),  # 9 March in Shanghai
        ("tg:3", {"claims": {"bbbbbbbbbb": 1}}),
        ("tg:4", {"claims": {"cccccccccc": 0}}),  # its packet's record is gone
        ("tg:5", {"claims": {"bbbbbbbbbb": 0}, "days": ["2026-03-09"]}),
        ("tg:6", {"claims": {}}),  # never grabbed
    ]
    assert campaign.funnel(states, [date(2026, 3, 9)]) == {"signed up": 4, "took part": 2}
    assert campaign.funnel(states, [date(2026, 3, 8)]) == {"signed up": 4, "took part": 1}


@settings(max_examples=40, deadline=None)
@given(
    grabs=st.lists(
        st.tuples(st.sampled_from("abcdef"), st.integers(0, 3), st.integers(0, 9 * 24)),
        max_size=25,
    ),
    counts=st.lists(st.integers(1, 4), min_size=4, max_size=4),
    first=st.integers(0, 9),
    length=st.integers(0, 5),
)
def test_red_packet_funnel_never_widens(
    grabs: list[tuple[str, int, int]], counts: list[int], first: int, length: int
) -> None:
    campaign = RedPacketCampaign.from_settings({"timezone": "UTC"})
    ledger = Ledger()
    codes = []
    for n, c in enumerate(counts):
        opening = packet_command(n, "1", "red_packet", str(10 * c), str(c))
        decision = campaign.on_event(context(opening, who=ADMIN, balance=10 * c))
        assert decision is not None
        ledger.apply(decision, ADMIN.member_id)
        post = decision.actions[0]
        assert isinstance(post, SendMessage)
        codes.append(post.text.split("/grab ")[1].split()[0])
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    took: dict[str, set[date]] = {}
    for n, (user, which, hours) in enumerate(sorted(grabs, key=lambda g: g[2])):
        at = t0 + timedelta(hours=hours)
        decision = grab_at(campaign, ledger, user, codes[which], at, n)
        if decision is not None and decision.awards:
            took.setdefault(f"m{user}", set()).add(at.date())
    days = [date(2026, 3, 1) + timedelta(days=first + i) for i in range(length)]
    found = campaign.funnel(ledger.states.items(), days)
    assert found == {
        "signed up": len(took),
        "took part": sum(1 for d in took.values() if d & set(days)),
    }
    assert found["took part"] <= found["signed up"]


# ------------------------------------------------------------------- welcome

WELCOME = (
    """
[community]
name = "读书会"
timezone = "America/New_York"
"""
    + GROUP
    + """
[points]
message = 10
message_daily_cap = 100

[[tiers.ladder]]
name = "新人"
threshold = 0

[[tiers.ladder]]
name = "活跃成员"
threshold = 30

[[campaigns]]
type = "welcome"
greeting = "欢迎 {name}"
member_days = [3]
milestone = "🎉 {name} 已经 {days} 天"
tier_reached = { "活跃成员" = "🎉 {name} 升级为{tier}" }
"""
)


@pytest.mark.anyio
async def test_welcome_funnel_counts_the_welcomed_and_those_who_reached_a_milestone() -> None:
    start = datetime(2026, 3, 7, 15, tzinfo=UTC)
    app, clock = memory_app(
        config_text=WELCOME, start=start, adapters={"console": ScriptedAdapter()}
    )
    app.open()
    await app.feed(joined(["ana", "bo"], start))
    # ana climbs to the tier (bo stays 3 days); dan was there before the bot: never welcomed
    await app.feed(
        [said(u, n, start + timedelta(minutes=n)) for u in ("ana", "dan") for n in range(3)]
    )
    later = start + timedelta(days=5)
    await app.engine.advance_to(later, clock.set)
    await app.feed(joined(["cy"], later))  # too new for a milestone
    await app.engine.advance_to(later + timedelta(days=1), clock.set)

    posts = [a.text for _at, a in outbox_texts(app)]
    welcomed = {t.removeprefix("欢迎 ").split("\n")[0] for t in posts if t.startswith("欢迎 ")}
    celebrated = {t.split()[1] for t in posts if t.startswith("🎉 ")}
    assert welcomed == {"ana", "bo", "cy"} and celebrated == {"ana", "bo"}
    expected = {"reached": len(welcomed), "completed": len(welcomed & celebrated)}
    for first, last in [
        (date(2026, 3, 1), date(2026, 3, 31)),
        (date(2026, 1, 1), date(2026, 1, 2)),
    ]:
        assert funnel(app.report(first, last), "welcome") == expected
    app.close()


def test_a_welcome_that_celebrates_nothing_counts_only_the_welcomed() -> None:
    campaign = WelcomeCampaign.from_settings({"member_days": []})
    states = [
        ("tg:1", {"greeted": {"main": "2026-03-01T09:00:00+00:00"}}),
        ("tg:2", {"birthday": "08-15"}),
    ]
    assert campaign.funnel(states, []) == {"reached": 1}


states_of = st.dictionaries(
    st.sampled_from(["tg:1", "tg:2", "tg:3", "tg:4"]),
    st.fixed_dictionaries(
        {},
        optional={
            "greeted": st.one_of(
                st.none(), st.dictionaries(st.sampled_from(["main", "b"]), st.just("2026-03-01"))
            ),
            "milestones": st.one_of(
                st.none(),
                st.lists(st.one_of(st.integers(), st.text())),
            ),
            "tiers": st.one_of(st.none(), st.text(), st.lists(st.one_of(st.text(), st.integers()))),
        },
    ),
)


@given(states=states_of, member_days=st.sampled_from([[], [100]]), tiered=st.booleans())
def test_welcome_funnel_never_widens(
    states: dict[str, dict[str, Any]], member_days: list[int], tiered: bool
) -> None:
    tiers = {"gold": "{name}: {tier}"} if tiered else {}
    campaign = WelcomeCampaign.from_settings({"member_days": member_days, "tier_reached": tiers})
    found = campaign.funnel(states.items(), [])
    assert found["reached"] == sum(1 for s in states.values() if s.get("greeted"))
    assert found.get("completed", 0) <= found["reached"]
    assert ("completed" in found) == bool(member_days or tiered)


# ------------------------------------------------------------------ schedule

SCHEDULE = (
    """
[community]
name = "晨读会"
timezone = "Asia/Shanghai"
"""
    + GROUP
    + """
[segments.readers]
where = "active and not tag:staff"

[[campaigns]]
type = "schedule"
name = "digest"
when = "0 20 * * *"
segment = "readers"
text = "{date} 今日书摘"

[[campaigns]]
type = "schedule"
name = "morning"
when = "0 8 * * *"
groups = ["main"]
text = "早上好"
"""
)


@pytest.mark.anyio
async def test_schedule_funnel_counts_the_members_sent_the_content_in_the_days() -> None:
    start = datetime(2026, 3, 5, 4, tzinfo=UTC)  # noon in Shanghai
    app, clock = memory_app(
        config_text=SCHEDULE, start=start, adapters={"console": ScriptedAdapter()}
    )
    app.open()
    await app.feed(joined(["ana", "bo", "cy"], start))
    await app.tag("console:cy", "staff")
    talk = start + timedelta(days=10)  # 15 March
    await app.engine.advance_to(talk, clock.set)
    await app.feed([said(u, 0, talk) for u in ("ana", "cy")])
    await app.engine.advance_to(talk + timedelta(days=2), clock.set)  # two evenings
    await app.feed([said("bo", 0, talk + timedelta(days=2))])
    await app.engine.advance_to(talk + timedelta(days=4), clock.set)

    sent: dict[date, set[str]] = {}
    for at, action in outbox_texts(app, SendDirectMessage):
        if action.source == "campaign:digest":
            sent.setdefault(at.astimezone(ZoneInfo("Asia/Shanghai")).date(), set()).add(action.user)
    assert set().union(*sent.values()) == {"ana", "bo"}
    for first, last in [(15, 15), (16, 17), (17, 18), (1, 31), (1, 10)]:
        days = [date(2026, 3, d) for d in range(first, last + 1)]
        reached = set().union(*(sent.get(d, set()) for d in days))
        report = app.report(days[0], days[-1])
        assert funnel(report, "digest") == {"reached": len(reached)}, days
        assert "morning" not in report.metric("campaign_funnels").series  # groups only: no funnel
    app.close()


def test_a_segment_schedule_remembers_the_local_days_it_sent_on() -> None:
    campaign = ScheduleCampaign.from_settings(
        {"when": "0 20 * * *", "segment": "all", "text": "hi", "timezone": "Asia/Shanghai"}
    )
    people = {
        "tg:1": (
            member("tg:1", user="1"),
            MemberState(
                member_id="tg:1", tier="member", tier_since=datetime(2026, 1, 1, tzinfo=UTC)
            ),
        )
    }
    states: dict[str, Mapping[str, Any]] = {"tg:1": {"sent": ["2025-12-01", "2026-03-07"]}}
    now = datetime(2026, 3, 8, 12, tzinfo=UTC)  # 20:00 in Shanghai
    tick = TickContext(
        now=now,
        community=community(),
        capabilities={"tg": EVERYTHING},
        source=FakeSource(members=people, rule_states={campaign.name: states}),
    )
    (decision,) = campaign.on_schedule(tick)
    # the days of the last 62 days before the latest are kept
    assert decision.state == {"sent": ["2026-03-07", "2026-03-08"]}
    assert campaign.funnel([("tg:1", decision.state)], [date(2026, 3, 8)]) == {"reached": 1}
    assert campaign.funnel([("tg:1", decision.state)], [date(2026, 3, 6)]) == {"reached": 0}
