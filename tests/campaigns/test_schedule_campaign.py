"""The ``schedule`` campaign: settings, moments, segments, and a week through the engine."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from communitykit import (
    ConfigError,
    MemberJoined,
    MemberState,
    MessagePosted,
    SendDirectMessage,
    SendMessage,
    parse_config,
)
from communitykit._errors import ModelError
from communitykit.builtins.campaigns.rituals import ScheduleCampaign
from communitykit.testing import memory_app
from tests.engine.doubles import ScriptedAdapter
from tests.rules.membership_helpers import FakeSource, community, member, state_of, tick

NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def schedule(**settings: Any) -> ScheduleCampaign:
    base: dict[str, Any] = {"when": "0 8 * * *", "groups": ["main"], "text": "早上好 {date}"}
    return ScheduleCampaign.from_settings({**base, **settings})


def sent(decisions: Any) -> list[Any]:
    return [action for decision in decisions for action in decision.actions]


# ------------------------------------------------------------------ settings


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"when": "0 8 * *"}, "schedule campaign: when: cron '0 8 \\* \\*': expected 5 fields"),
        ({"when": "0 25 * * *"}, "hour field has 25"),
        ({"when": 8}, "a cron expression must be a text"),
        ({"text": "早上好 {name}"}, "unknown: name"),
        ({"text": "早上好 {date!r}"}, "only use plain placeholders"),
        ({"text": "  "}, "text must be a text that is not empty"),
        ({"groups": [], "segment": None}, "groups must be set"),
        ({"segment": "  "}, "segment must be a segment name or expression"),
        ({"missed": "later"}, "missed must be 'skip' or 'catch_up'"),
        ({"grace": "soon"}, "grace"),
        ({"timezone": "Mars/Olympus"}, "timezone must be an IANA time zone"),
        ({"weekday_names": ["一", "二"]}, "weekday_names must be 7 names"),
        ({"sometimes": True}, "unknown settings: sometimes"),
    ],
)
def test_bad_settings_are_refused_with_the_key(settings: dict[str, Any], words: str) -> None:
    base: dict[str, Any] = {"when": "0 8 * * *", "groups": ["main"], "text": "早上好 {date}"}
    merged = {k: v for k, v in {**base, **settings}.items() if v is not None}
    with pytest.raises(ModelError, match=words):
        ScheduleCampaign.from_settings(merged)


def test_settings_need_when_and_text() -> None:
    with pytest.raises(ModelError, match="schedule campaign: when must be a cron expression"):
        ScheduleCampaign.from_settings({"groups": ["main"], "text": "hi"})
    with pytest.raises(ModelError, match="schedule campaign: text must be the text to send"):
        ScheduleCampaign.from_settings({"groups": ["main"], "when": "0 8 * * *"})


def test_defaults() -> None:
    campaign = schedule()
    assert (campaign.name, campaign.missed, campaign.grace) == (
        "schedule",
        "skip",
        timedelta(minutes=10),
    )
    assert campaign.timezone == "UTC"
    assert campaign.segment is None
    assert campaign.next_run(None) is None


# ------------------------------------------------------------------- moments


def test_chinese_text_with_date_and_weekday_in_each_group() -> None:
    campaign = schedule(
        groups=["main", "main2"],
        text="{date} {weekday} 早上好今天也要加油。",
        weekday_names=["周一", "周二", "周三", "周四", "周五", "周六", "周日"],
        timezone="America/New_York",
    )
    moment = campaign.next_run(datetime(2026, 3, 7, 20, tzinfo=UTC))
    assert moment == datetime(2026, 3, 8, 12, tzinfo=UTC)  # 08:00 EDT, the first day of DST
    actions = sent(campaign.on_schedule(tick(moment)))
    assert [(a.group, a.text) for a in actions] == [
        ("-1", "2026-03-08 周日 早上好今天也要加油。"),
        ("-2", "2026-03-08 周日 早上好今天也要加油。"),
    ]
    assert all(isinstance(a, SendMessage) and a.source == "campaign:schedule" for a in actions)
    again = sent(campaign.on_schedule(tick(moment)))
    assert [a.action_id for a in again] == [a.action_id for a in actions]


def test_a_late_moment_is_skipped_beyond_grace_and_caught_up_once() -> None:
    start = datetime(2026, 3, 9, 12, tzinfo=UTC)  # 08:00 in New York
    late = start + timedelta(days=2, hours=3)  # back after two days and three hours
    skip = schedule(timezone="America/New_York")
    assert sent(skip.on_schedule(tick(start + timedelta(minutes=9)))) != []
    assert sent(skip.on_schedule(tick(start + timedelta(minutes=11)))) == []
    assert sent(skip.on_schedule(tick(late))) == []
    catch_up = schedule(timezone="America/New_York", missed="catch_up")
    first = sent(catch_up.on_schedule(tick(late)))
    # every missed moment the engine replays sends the latest one, under one id
    second = sent(catch_up.on_schedule(tick(late + timedelta(seconds=5))))
    assert [a.text for a in first] == ["早上好 2026-03-11"]
    assert [a.action_id for a in second] == [a.action_id for a in first]


def test_segment_gets_direct_messages_where_platforms_allow_them() -> None:
    where = community()
    people = {
        m.member_id: (m, state_of(m))
        for m in (
            member("m1", user="1", name="阿明").with_tags("早起"),
            member("m2", user="2", name="小红"),
            member("m3", user="3", platform="nodm").with_tags("早起"),
        )
    }
    campaign = schedule(groups=[], segment="tag:早起", text="打卡提醒 {weekday}")
    moment = datetime(2026, 3, 9, 8, tzinfo=UTC)
    decisions = list(campaign.on_schedule(tick(moment, where, FakeSource(members=people))))
    actions = sent(decisions)
    assert [
        (d.member, type(a).__name__, a.user, a.text)
        for d, a in zip(decisions, actions, strict=True)
    ] == [("m1", "SendDirectMessage", "1", "打卡提醒 Monday")]
    assert all(isinstance(a, SendDirectMessage) for a in actions)


def test_tier_segment() -> None:
    gold = member("m1", user="1")
    plain = member("m2", user="2")
    people: Mapping[str, Any] = {
        "m1": (
            gold,
            MemberState(member_id="m1", tier="gold", tier_since=datetime(2026, 1, 1, tzinfo=UTC)),
        ),
        "m2": (plain, state_of(plain)),
    }
    campaign = schedule(groups=[], segment="tier:gold")
    actions = sent(
        campaign.on_schedule(
            tick(datetime(2026, 3, 9, 8, tzinfo=UTC), source=FakeSource(members=people))
        )
    )
    assert [a.user for a in actions] == ["1"]


@settings(max_examples=100)
@given(
    missed=st.sampled_from(["skip", "catch_up"]),
    delays=st.lists(st.integers(0, 3 * 24 * 60), min_size=1, max_size=30),
)
def test_a_scheduled_moment_is_never_sent_twice(missed: str, delays: list[int]) -> None:
    """Like the engine: each moment after the last one run is run when the clock
    (sometimes far behind, after downtime) reaches it; an id is sent once."""
    campaign = schedule(missed=missed, timezone="America/New_York", groups=["main"])
    last = datetime(2026, 3, 6, tzinfo=UTC)
    clock = last
    outbox: dict[str, SendMessage] = {}
    for delay in delays:
        moment = campaign.next_run(last)
        assert moment is not None
        clock = max(clock, moment) + timedelta(minutes=delay)
        # the engine runs each due moment; the campaign sees the clock's time
        for action in sent(campaign.on_schedule(tick(clock))):
            assert isinstance(action, SendMessage)
            if action.action_id in outbox:
                assert outbox[action.action_id] == action
            outbox[action.action_id] = action
        last = moment
    texts = [a.text for a in outbox.values()]
    assert len(texts) == len(set(texts))  # one message per scheduled day


def test_evaluation_is_deterministic() -> None:
    campaign = schedule(groups=["main"], segment="all", missed="catch_up")
    m = member("m1", user="1")
    source = FakeSource(members={"m1": (m, state_of(m))})
    now = datetime(2026, 3, 12, 9, 30, tzinfo=UTC)
    first = list(campaign.on_schedule(tick(now, source=source)))
    assert first == list(campaign.on_schedule(tick(now, source=source)))
    assert len(sent(first)) == 2


# -------------------------------------------------------------- the engine

CONFIG = """
[community]
name = "晨读会"
timezone = "America/New_York"

[[groups]]
key = "main"
platform = "console"
id = "main"

[[campaigns]]
type = "schedule"
name = "morning"
when = "0 8 * * *"
timezone = "America/New_York"
groups = ["main"]
text = "{date} {weekday} 早上好"
weekday_names = ["周一", "周二", "周三", "周四", "周五", "周六", "周日"]
"""


@pytest.mark.anyio
async def test_a_week_of_morning_greetings_through_the_engine() -> None:
    start = datetime(2026, 3, 5, 17, tzinfo=UTC)  # Thursday noon in New York
    app, clock = memory_app(
        config_text=CONFIG, start=start, adapters={"console": ScriptedAdapter()}
    )
    app.open()
    await app.feed(
        [MemberJoined(event_id="j1", platform="console", group="main", user="ana", at=start)]
    )
    await app.engine.advance_to(datetime(2026, 3, 9, 0, tzinfo=UTC), clock.set)

    def mornings() -> list[tuple[str, str]]:
        return [
            (item.created_at.astimezone(NEW_YORK).strftime("%m-%d %H:%M"), item.action.text)
            for item in app.store.outbox()
            if isinstance(item.action, SendMessage) and item.action.source == "campaign:morning"
        ]

    assert mornings() == [
        ("03-06 08:00", "2026-03-06 周五 早上好"),
        ("03-07 08:00", "2026-03-07 周六 早上好"),
        ("03-08 08:00", "2026-03-08 周日 早上好"),  # the day clocks spring forward
    ]
    # the scheduler was down for two days: the clock moves over them at once
    clock.set(datetime(2026, 3, 11, 15, tzinfo=UTC))  # 11:00 in New York
    while await app.run_due():
        pass
    await app.engine.advance_to(datetime(2026, 3, 12, 18, tzinfo=UTC), clock.set)
    texts = [text for _when, text in mornings()]
    assert len(texts) == len(set(texts))  # no morning twice
    # missed = "skip" (the default): the mornings of the 9th, 10th and 11th were due
    # while the scheduler was down and are more than the grace late: not sent
    assert [text[:10] for text in texts] == [f"2026-03-{day:02d}" for day in (6, 7, 8, 12)]
    assert mornings()[-1] == ("03-12 08:00", "2026-03-12 周四 早上好")
    # running the same moments again sends nothing new
    before = len(mornings())
    await app.engine.advance_to(datetime(2026, 3, 12, 19, tzinfo=UTC), clock.set)
    assert len(mornings()) == before


@pytest.mark.anyio
async def test_missed_mornings_beyond_grace_are_skipped_through_the_engine() -> None:
    start = datetime(2026, 3, 5, 17, tzinfo=UTC)
    app, clock = memory_app(
        config_text=CONFIG, start=start, adapters={"console": ScriptedAdapter()}
    )
    app.open()
    clock.set(datetime(2026, 3, 8, 15, tzinfo=UTC))  # down since Thursday
    while await app.run_due():
        pass
    texts = [
        item.action.text
        for item in app.store.outbox()
        if isinstance(item.action, SendMessage) and item.action.source == "campaign:morning"
    ]
    assert texts == []  # 06, 07 and 08 March are hours late: skipped


SEGMENT_CONFIG = """
[community]
name = "晨读会"
timezone = "Asia/Shanghai"

[[groups]]
key = "main"
platform = "console"
id = "main"

[segments.readers]
where = "active and not tag:staff"

[[campaigns]]
type = "schedule"
name = "digest"
when = "0 20 * * *"
segment = "readers"
text = "{date} 今日书摘"
"""


@pytest.mark.anyio
async def test_a_configured_segment_gets_the_direct_messages_through_the_engine() -> None:
    start = datetime(2026, 3, 5, 4, tzinfo=UTC)  # noon in Shanghai
    app, clock = memory_app(
        config_text=SEGMENT_CONFIG, start=start, adapters={"console": ScriptedAdapter()}
    )
    app.open()
    joins = [
        MemberJoined(event_id=f"j-{u}", platform="console", group="main", user=u, at=start)
        for u in ("ana", "bo", "cy")
    ]
    await app.feed(joins)
    await app.tag("console:cy", "staff")
    await app.engine.advance_to(start + timedelta(days=1), clock.set)
    # new members are not active yet: nobody is in the segment, nothing is sent
    assert app.segment("readers", at=start + timedelta(days=1)) == frozenset()
    said = start + timedelta(days=10)
    await app.engine.advance_to(said, clock.set)
    await app.feed(
        [
            MessagePosted(
                event_id=f"m-{u}",
                platform="console",
                group="main",
                user=u,
                at=said,
                message_id=f"m-{u}",
                text="读完了",
            )
            for u in ("ana", "cy")
        ]
    )
    await app.engine.advance_to(said + timedelta(hours=12), clock.set)
    dms = [
        (item.action.user, item.action.text)
        for item in app.store.outbox()
        if isinstance(item.action, SendDirectMessage) and item.action.source == "campaign:digest"
    ]
    assert dms == [("ana", "2026-03-15 今日书摘")]  # active, not staff; bo is silent


def test_a_campaign_segment_naming_no_segment_is_refused_at_load() -> None:
    text = SEGMENT_CONFIG.replace('segment = "readers"', 'segment = "raeders or tier:gold"')
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert caught.value.key == "campaigns[0].segment"
    assert "unknown segment 'raeders'; did you mean 'readers'?" in str(caught.value)
