"""The ``welcome`` campaign: one welcome message, birthdays and milestones."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from communitykit import (
    Capabilities,
    CommandInvoked,
    Decision,
    MemberJoined,
    MessagePosted,
    RuleContext,
    SendDirectMessage,
    SendMessage,
)
from communitykit._errors import ModelError
from communitykit.builtins.campaigns.rituals import WelcomeCampaign, parse_birthday
from communitykit.model import ACTION_TYPES
from communitykit.testing import memory_app
from tests.engine.doubles import ScriptedAdapter
from tests.rules.membership_helpers import FakeSource, context, member, state_of, tick

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
CHINESE: dict[str, Any] = {
    "greeting": "欢迎 {name} 加入{group} 我们现在有 {members} 位成员",
    "rules": "入群须知 不发广告 不刷屏",
    "introduce": "请用三句话介绍一下自己",
    "nickname_hint": "名字-城市-行业",
    "nickname": "请把群昵称改为 {hint}",
    "admission_dm": "{name} 你已加入{group} 这里是新人指南",
    "birthday": "祝 {name} 生日快乐",
    "milestone": "{name} 加入社群已经 {days} 天了 感谢陪伴",
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def welcome(**settings: Any) -> WelcomeCampaign:
    return WelcomeCampaign.from_settings(settings)


def joined(n: int = 1, *, at: datetime = T0, group: str = "-1", user: str = "42") -> MemberJoined:
    return MemberJoined(
        event_id=f"j{n}", platform="tg", group=group, user=user, at=at, display_name="阿明"
    )


def on(
    campaign: WelcomeCampaign,
    event: Any,
    state: Mapping[str, Any] | None = None,
    *,
    dms: bool = True,
) -> Decision | None:
    ctx = context(event, rule_state={campaign.name: state or {}}, sizes={"main": 12})
    if not dms:
        caps = Capabilities(actions=frozenset(ACTION_TYPES) - {"send_direct_message"})
        ctx = RuleContext(
            event=ctx.event,
            member=ctx.member,
            state=ctx.state,
            tier=ctx.tier,
            balance=0,
            community=ctx.community,
            capabilities=caps,
            now=ctx.now,
            cap_remaining=lambda _r: None,
            member_of=lambda _p, _u: None,
            already_awarded=lambda _k: False,
            rule_state=lambda _n: state or {},
            group_size=lambda _k: 12,
        )
    return campaign.on_event(ctx)


# ------------------------------------------------------------------ joining


def test_one_welcome_message_with_chinese_templates_and_an_admission_dm() -> None:
    decision = on(welcome(**CHINESE), joined())
    assert decision is not None
    post, dm = decision.actions
    assert isinstance(post, SendMessage) and post.group == "-1"
    assert post.text.split("\n") == [
        "欢迎 阿明 加入Group main 我们现在有 12 位成员",
        "入群须知 不发广告 不刷屏",
        "请用三句话介绍一下自己",
        "请把群昵称改为 名字-城市-行业",
    ]
    assert isinstance(dm, SendDirectMessage) and dm.user == "42"
    assert dm.text == "阿明 你已加入Group main 这里是新人指南"
    assert decision.state is not None
    assert decision.state["greeted"] == {"main": T0.isoformat()}


def test_no_admission_dm_where_the_platform_has_none() -> None:
    decision = on(welcome(**CHINESE), joined(), dms=False)
    assert decision is not None
    assert [type(a) for a in decision.actions] == [SendMessage]


def test_defaults_greet_in_english_with_the_greeting_alone() -> None:
    decision = on(welcome(), joined())
    assert decision is not None
    assert [a.text for a in decision.actions if isinstance(a, SendMessage)] == [
        "Welcome to Group main, 阿明! We are 12 members now."
    ]


def test_only_configured_groups_and_known_groups() -> None:
    campaign = welcome(groups=["main2"])
    assert on(campaign, joined(group="-1")) is None
    assert on(campaign, joined(group="-2")) is not None
    assert on(welcome(), joined(group="-99")) is None


def test_rejoining_within_the_quiet_period_is_not_greeted_again() -> None:
    campaign = welcome(rejoin_quiet_days=30)
    first = on(campaign, joined(1))
    assert first is not None and first.state is not None
    again = on(campaign, joined(2, at=T0 + timedelta(days=29)), first.state)
    assert again is not None and again.actions == () and again.state is None
    later = on(campaign, joined(3, at=T0 + timedelta(days=31)), first.state)
    assert later is not None and len(later.actions) == 1


@settings(max_examples=200)
@given(st.lists(st.integers(0, 90 * 24), min_size=1, max_size=12), st.integers(0, 60))
def test_a_member_is_greeted_once_per_join_quiet_period(hours: list[int], quiet: int) -> None:
    campaign = welcome(rejoin_quiet_days=quiet)
    state: Mapping[str, Any] = {}
    greetings: list[datetime] = []
    for n, hour in enumerate(sorted(hours)):
        at = T0 + timedelta(hours=hour)
        decision = on(campaign, joined(n, at=at), state)
        assert decision is not None
        if decision.actions:
            greetings.append(at)
        if decision.state is not None:
            state = decision.state
    assert greetings[0] == T0 + timedelta(hours=min(hours))
    for earlier, later in itertools.pairwise(greetings):
        assert later - earlier >= timedelta(days=quiet)


# ---------------------------------------------------------------- birthdays


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("08-15", "08-15"),
        ("8-5", "08-05"),
        ("02-29", "02-29"),
        ("12/31", "12-31"),
        ("\uff10\uff18\uff0d\uff11\uff15", "08-15"),  # full-width, as a Chinese input method types
        ("13-01", None),
        ("02-30", None),
        ("00-10", None),
        ("0815", None),
        ("生日", None),
        ("2000-08-15", None),
    ],
)
def test_parse_birthday(text: str, expected: str | None) -> None:
    assert parse_birthday(text) == expected


def command(args: tuple[str, ...], *, group: str | None = "-1") -> CommandInvoked:
    return CommandInvoked(
        event_id="c1", platform="tg", group=group, user="42", at=T0, command="birthday", args=args
    )


def test_the_birthday_command_stores_a_valid_date_and_replies() -> None:
    campaign = welcome(birthday_saved="{name} 已记下你的生日 {birthday}")
    decision = on(campaign, command(("8-15",)), {"greeted": {"main": "x"}})
    assert decision is not None
    assert decision.state == {"greeted": {"main": "x"}, "birthday": "08-15"}
    (reply,) = decision.actions
    assert isinstance(reply, SendMessage) and reply.text.endswith("已记下你的生日 08-15")


def test_a_bad_birthday_is_refused_privately_without_storing() -> None:
    decision = on(welcome(), command(("02-30",), group=None))
    assert decision is not None and decision.state is None
    (reply,) = decision.actions
    assert isinstance(reply, SendDirectMessage)
    assert "MM-DD" in reply.text


def people(birthday: str | None = "03-02", **state: Any) -> tuple[FakeSource, str]:
    who = member("m1", user="42", name="阿明", joined_at=datetime(2025, 1, 1, tzinfo=UTC))
    remembered: dict[str, Any] = dict(state)
    if birthday is not None:
        remembered["birthday"] = birthday
    source = FakeSource(
        members={"m1": (who, state_of(who))},
        rule_states={"welcome": {"m1": remembered}},
        groups={"m1": frozenset({"main", "main2"})},
    )
    return source, "m1"


def test_birthday_greeting_in_each_group_of_the_member() -> None:
    campaign = welcome(birthday="祝 {name} 生日快乐", timezone="Asia/Shanghai", member_days=[])
    run = campaign.next_run(datetime(2026, 3, 1, 12, tzinfo=UTC))
    assert run == datetime(2026, 3, 2, 1, tzinfo=UTC)  # 09:00 in Shanghai
    source, _ = people()
    (decision,) = campaign.on_schedule(tick(run, source=source))
    assert decision.member == "m1"
    assert [(a.group, a.text) for a in decision.actions if isinstance(a, SendMessage)] == [
        ("-1", "祝 阿明 生日快乐"),
        ("-2", "祝 阿明 生日快乐"),
    ]
    assert decision.state == {"birthday": "03-02", "birthday_year": 2026}


@settings(max_examples=100)
@given(st.lists(st.integers(0, 3 * 365), min_size=1, max_size=40))
def test_birthday_greeting_at_most_once_a_year(days: list[int]) -> None:
    campaign = welcome(member_days=[])
    source, member_id = people("03-02")
    state: Mapping[str, Any] = {"birthday": "03-02"}
    greeted: list[int] = []
    for day in sorted(days):
        now = datetime(2026, 1, 1, 9, tzinfo=UTC) + timedelta(days=day)
        source._rule_states["welcome"][member_id] = state
        for decision in campaign.on_schedule(tick(now, source=source)):
            if decision.actions:
                greeted.append(now.year)
            if decision.state is not None:
                state = decision.state
    assert len(greeted) == len(set(greeted))


def test_a_29_february_birthday_is_celebrated_on_the_28th_in_other_years() -> None:
    campaign = welcome(member_days=[])
    source, _ = people("02-29")
    decisions = list(
        campaign.on_schedule(tick(datetime(2027, 2, 28, 9, tzinfo=UTC), source=source))
    )
    assert len(decisions) == 1 and len(decisions[0].actions) == 2


# --------------------------------------------------------------- milestones


def test_milestones_once_each_and_not_for_long_past_ones() -> None:
    campaign = welcome(milestone=CHINESE["milestone"], member_days=[100, 365])
    source, member_id = people(None)  # joined 2025-01-01
    day_100 = datetime(2025, 4, 11, 9, tzinfo=UTC)
    (decision,) = campaign.on_schedule(tick(day_100, source=source))
    assert {a.text for a in decision.actions if isinstance(a, SendMessage)} == {
        "阿明 加入社群已经 100 天了 感谢陪伴"
    }
    assert decision.state == {"milestones": [100]}
    source._rule_states["welcome"][member_id] = decision.state
    assert list(campaign.on_schedule(tick(day_100 + timedelta(days=1), source=source))) == []
    # enabled long after day 365: it is remembered as passed, nothing is said
    fresh, _ = people(None)
    (late,) = campaign.on_schedule(tick(datetime(2026, 6, 1, 9, tzinfo=UTC), source=fresh))
    assert late.actions == () and late.state == {"milestones": [100, 365]}


TIERS = {"活跃成员": "🎉 {name} 升级为{tier}", "核心成员": "{name} 成为{tier} 感谢"}


def at_tier(tier: str, since: datetime, **state: Any) -> tuple[FakeSource, str]:
    source, member_id = people(None, **state)
    who, facts = source._members[member_id]
    source._members[member_id] = (who, attrs.evolve(facts, tier=tier, tier_since=since))
    return source, member_id


def test_a_tier_reached_is_congratulated_in_each_group_once() -> None:
    campaign = welcome(member_days=[], tier_reached=TIERS)
    now = datetime(2026, 3, 8, 9, tzinfo=UTC)
    source, member_id = at_tier("活跃成员", now - timedelta(days=1))
    (decision,) = campaign.on_schedule(tick(now, source=source))
    assert [(a.group, a.text) for a in decision.actions if isinstance(a, SendMessage)] == [
        ("-1", "🎉 阿明 升级为活跃成员"),
        ("-2", "🎉 阿明 升级为活跃成员"),
    ]
    assert decision.state == {"tiers": ["活跃成员"]}
    source._rule_states["welcome"][member_id] = decision.state
    assert list(campaign.on_schedule(tick(now + timedelta(days=1), source=source))) == []
    # a tier without a template says nothing and is not remembered
    plain, _ = at_tier("member", now - timedelta(days=1))
    assert list(campaign.on_schedule(tick(now, source=plain))) == []


def test_a_tier_reached_long_ago_is_remembered_without_a_message() -> None:
    campaign = welcome(member_days=[], tier_reached=TIERS)
    now = datetime(2026, 3, 8, 9, tzinfo=UTC)
    source, _ = at_tier("核心成员", now - timedelta(days=30), tiers=["活跃成员"])
    (decision,) = campaign.on_schedule(tick(now, source=source))
    assert decision.actions == ()
    assert decision.state == {"tiers": sorted(["活跃成员", "核心成员"])}


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["member", "活跃成员", "核心成员"]), min_size=1, max_size=30))
def test_each_tier_is_congratulated_at_most_once_per_member(tiers: list[str]) -> None:
    campaign = welcome(member_days=[], tier_reached=TIERS)
    state: Mapping[str, Any] = {}
    said: list[str] = []
    since = datetime(2026, 3, 1, 9, tzinfo=UTC)
    current = "member"
    for day, tier in enumerate(tiers):
        now = datetime(2026, 3, 1, 9, tzinfo=UTC) + timedelta(days=day)
        if tier != current:
            current, since = tier, now - timedelta(hours=1)
        source, _ = at_tier(current, since, **state)
        for decision in campaign.on_schedule(tick(now, source=source)):
            said += [a.text for a in decision.actions if isinstance(a, SendMessage)]
            if decision.state is not None:
                state = decision.state
    per_group = [text for text in said if text]
    assert len(per_group) == 2 * len(set(per_group))  # each tier once, in both groups
    reached = {t for t in tiers if t in TIERS}
    assert {t for t in TIERS if any(t in text for text in said)} == reached


def test_evaluation_is_deterministic() -> None:
    campaign = welcome(**CHINESE)
    assert on(campaign, joined()) == on(campaign, joined())
    source, _ = people("03-02")
    now = datetime(2026, 3, 2, 9, tzinfo=UTC)
    assert list(campaign.on_schedule(tick(now, source=source))) == list(
        campaign.on_schedule(tick(now, source=source))
    )


# ----------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"greeting": "欢迎 {nickname}"}, "welcome campaign: greeting may use the placeholders"),
        ({"greeting": "欢迎 {name:>10}"}, "only use plain placeholders"),
        ({"birthday": "生日快乐 {days}"}, "unknown: days"),
        ({"milestone": "{name} {group}"}, "unknown: group"),
        ({"birthday_at": "9点"}, "birthday_at must be a local time HH:MM"),
        ({"birthday_at": "24:00"}, "birthday_at must be a local time HH:MM"),
        ({"member_days": [100, -1]}, "member_days must be a list of positive whole numbers"),
        ({"rejoin_quiet_days": -3}, "rejoin_quiet_days must be a whole number >= 0"),
        ({"birthday_command": "/birthday"}, "birthday_command must be a command name"),
        ({"timezone": "Beijing"}, "timezone must be an IANA time zone"),
        ({"greet": "hi"}, "welcome campaign: unknown settings: greet"),
        ({"tier_reached": "gold"}, "welcome campaign: tier_reached must be a table"),
        ({"tier_reached": {"gold": "{name} {days}"}}, "tier_reached.gold may use the placeh"),
        ({"tier_reached": {"gold": 3}}, "tier_reached.gold must be a text"),
    ],
)
def test_bad_settings_are_refused_with_the_key(settings: dict[str, Any], words: str) -> None:
    with pytest.raises(ModelError, match=words):
        WelcomeCampaign.from_settings(settings)


# --------------------------------------------------------------- the engine

CONFIG = """
[community]
name = "读书会"
timezone = "America/New_York"

[[groups]]
key = "main"
platform = "console"
id = "main"
title = "读书会主群"

[points]
message = 0
reaction_received = 0

[[campaigns]]
type = "welcome"
timezone = "America/New_York"
greeting = "欢迎 {name} 加入{group}"
rules = "入群须知 不发广告"
nickname_hint = "名字-城市-行业"
nickname = "请把群昵称改为 {hint}"
birthday = "祝 {name} 生日快乐"
birthday_at = "09:00"
"""


@pytest.mark.anyio
async def test_welcome_and_birthday_through_the_engine_across_dst() -> None:
    start = datetime(2026, 3, 6, 15, tzinfo=UTC)
    app, clock = memory_app(
        config_text=CONFIG, start=start, adapters={"console": ScriptedAdapter()}
    )
    app.open()
    ana = MemberJoined(
        event_id="j1", platform="console", group="main", user="ana", at=start, display_name="安娜"
    )
    await app.feed([ana])
    birthday = CommandInvoked(
        event_id="c1",
        platform="console",
        group="main",
        user="ana",
        at=start + timedelta(minutes=5),
        command="birthday",
        args=("03-08",),
    )
    await app.feed([birthday])
    again = MemberJoined(
        event_id="j2",
        platform="console",
        group="main",
        user="ana",
        at=start + timedelta(days=2),
        display_name="安娜",
    )
    await app.engine.advance_to(again.at, clock.set)
    await app.feed([again])
    await app.engine.advance_to(datetime(2027, 3, 9, tzinfo=UTC), clock.set)
    texts = [
        (item.created_at.isoformat(), item.action.text)
        for item in app.store.outbox()
        if isinstance(item.action, SendMessage)
    ]
    greetings = [t for _at, t in texts if t.startswith("欢迎")]
    assert greetings == [
        "欢迎 安娜 加入读书会主群\n入群须知 不发广告\n请把群昵称改为 名字-城市-行业"
    ]
    birthdays = [at for at, t in texts if t == "祝 安娜 生日快乐"]
    # 09:00 in New York on the day clocks spring forward (EDT), then a year later
    assert birthdays == ["2026-03-08T13:00:00+00:00", "2027-03-08T14:00:00+00:00"]
    state: Any = app.engine.moderation.state("welcome", "console:ana")
    assert state["birthday"] == "03-08" and state["birthday_year"] == 2027


TIER_CONFIG = """
[community]
name = "读书会"
timezone = "America/New_York"

[[groups]]
key = "main"
platform = "console"
id = "main"
title = "读书会主群"

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
member_days = []
birthday_at = "09:00"
tier_reached = { "活跃成员" = "🎉 {name} 升级为{tier}" }
"""


@pytest.mark.anyio
async def test_a_tier_reached_is_congratulated_at_the_next_daily_run_through_the_engine() -> None:
    start = datetime(2026, 3, 7, 15, tzinfo=UTC)
    app, clock = memory_app(
        config_text=TIER_CONFIG, start=start, adapters={"console": ScriptedAdapter()}
    )
    app.open()
    ana = MemberJoined(
        event_id="j1", platform="console", group="main", user="ana", at=start, display_name="安娜"
    )
    await app.feed([ana])
    await app.feed(
        [
            MessagePosted(
                event_id=f"m{n}",
                platform="console",
                group="main",
                user="ana",
                at=start + timedelta(minutes=n),
                message_id=f"m{n}",
                text="今天读完了第三章",
            )
            for n in range(1, 4)
        ]
    )
    assert app.tier("console:ana") == "活跃成员"
    await app.engine.advance_to(datetime(2026, 3, 12, tzinfo=UTC), clock.set)
    congratulated = [
        (item.created_at.isoformat(), item.action.text)
        for item in app.store.outbox()
        if isinstance(item.action, SendMessage) and "升级" in item.action.text
    ]
    # 09:00 in New York on the day clocks spring forward (EDT), once
    assert congratulated == [("2026-03-08T13:00:00+00:00", "🎉 安娜 升级为活跃成员")]


def test_a_milestone_for_a_tier_the_ladder_lacks_is_refused_at_load() -> None:
    from communitykit import ConfigError, parse_config

    text = TIER_CONFIG.replace('"活跃成员" = "🎉', '"活越成员" = "🎉')
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert caught.value.key == 'campaigns[0].tier_reached."活越成员"'
    assert 'unknown tier "活越成员"; did you mean "活跃成员"?' in str(caught.value)
