"""The ``checkin`` campaign type: check-ins by command or tag, streaks, make-up
cards, milestones, reminders, the leaderboard, and a scenario through the engine."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from communitykit import (
    ACTION_TYPES,
    Capabilities,
    CommandInvoked,
    Community,
    Decision,
    Event,
    Group,
    Member,
    MemberJoined,
    MemberState,
    MessagePosted,
    PlatformIdentity,
    RuleContext,
    SendDirectMessage,
    SendMessage,
    TickContext,
    Tier,
)
from communitykit._errors import ModelError
from communitykit.builtins.campaigns.checkin import (
    CheckinCampaign,
    checkin_numbers,
    leaderboard,
)
from communitykit.testing import memory_app
from tests.engine.doubles import ScriptedAdapter

NY = ZoneInfo("America/New_York")
COMMUNITY = Community(
    name="t",
    timezone="America/New_York",
    groups=[Group(key="main", platform="console", group_id="g1")],
)
EVERYTHING = Capabilities(actions=frozenset(ACTION_TYPES), direct_messages=True)
NO_DMS = Capabilities(actions=frozenset(ACTION_TYPES) - {"send_direct_message"})
TIER = Tier(name="member", threshold=0)


def local(day: date, hour: int = 12, minute: int = 0) -> datetime:
    """A moment of a New York day, in UTC."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=NY).astimezone(UTC)


def campaign(**settings: Any) -> CheckinCampaign:
    return CheckinCampaign.from_settings({"timezone": "America/New_York", **settings})


class World:
    """Applies a campaign's decisions the way the engine does (state, idempotent
    awards, all-or-nothing spends), to test the campaign on its own."""

    def __init__(self, checkin: CheckinCampaign, balance: int = 0, tier: Tier = TIER) -> None:
        self.campaign = checkin
        self.tier = tier
        self.states: dict[str, dict[str, Any]] = {}
        self.keys: set[str] = set()
        self.balances: dict[str, int] = {}
        self.start_balance = balance
        self.applied: list[Decision] = []
        self.dropped: list[Decision] = []
        self.seq = 0

    def member(self, user: str) -> Member:
        return Member(
            member_id=f"console:{user}",
            identities=[PlatformIdentity("console", user)],
            display_name=user.capitalize(),
        )

    def balance(self, user: str) -> int:
        return self.balances.get(f"console:{user}", self.start_balance)

    def context(self, event: Event) -> RuleContext:
        member = self.member(event.user)
        return RuleContext(
            event=event,
            member=member,
            state=MemberState(member_id=member.member_id, tier="member", tier_since=event.at),
            tier=self.tier,
            balance=self.balance(event.user),
            community=COMMUNITY,
            capabilities=EVERYTHING,
            now=event.at,
            cap_remaining=lambda _reason: None,
            member_of=lambda _platform, _user: None,
            already_awarded=lambda key: key in self.keys,
            rule_state=lambda name: self.states.get(member.member_id, {}),
        )

    def feed(self, event: Event) -> Decision | None:
        decision = self.campaign.on_event(self.context(event))
        if decision is None:
            return None
        member_id = f"console:{event.user}"
        due = sum(s.points for s in decision.spends if s.key not in self.keys)
        if due > self.balance(event.user):
            self.dropped.append(decision)
            return decision
        for spend in decision.spends:
            if spend.key not in self.keys:
                self.keys.add(spend.key)
                self.balances[member_id] = self.balance(event.user) - spend.points
        for award in decision.awards:
            if award.key not in self.keys:
                self.keys.add(award.key)
                self.balances[member_id] = self.balance(event.user) + award.points
        if decision.state is not None:
            # what the store keeps is plain JSON
            self.states[member_id] = json.loads(json.dumps(_plain(decision.state)))
        self.applied.append(decision)
        return decision

    def command(self, user: str, at: datetime, *args: str, command: str = "checkin") -> Event:
        self.seq += 1
        return CommandInvoked(
            event_id=f"c{self.seq}",
            platform="console",
            group="g1",
            user=user,
            at=at,
            command=command,
            args=args,
        )

    def say(self, user: str, at: datetime, text: str) -> Event:
        self.seq += 1
        return MessagePosted(
            event_id=f"m{self.seq}",
            platform="console",
            group="g1",
            user=user,
            at=at,
            message_id=f"pm{self.seq}",
            text=text,
        )

    def state(self, user: str) -> Mapping[str, Any]:
        return self.states.get(f"console:{user}", {})


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def texts(decision: Decision | None) -> list[str]:
    assert decision is not None
    return [a.text for a in decision.actions if isinstance(a, SendMessage | SendDirectMessage)]


class FakeSource:
    """What a tick looks over: members, their check-in states and groups."""

    def __init__(self, states: Mapping[str, Mapping[str, Any]], name: str = "checkin") -> None:
        self.states = states
        self.name = name

    def members(self) -> Iterator[tuple[Member, MemberState]]:
        return iter(())

    def member(self, member_id: str) -> Member | None:
        user = member_id.partition(":")[2]
        return Member(
            member_id=member_id,
            identities=[PlatformIdentity("console", user)],
            display_name=user.capitalize(),
        )

    def state(self, member_id: str) -> MemberState | None:
        return None

    def rule_states(self, name: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
        return iter(self.states.items() if name == self.name else ())

    def groups_of(self, member_id: str) -> frozenset[str]:
        return frozenset({"main"})

    def group_size(self, key: str) -> int:
        return len(self.states)

    def warnings(self, member_id: str) -> int:
        return 0


# ------------------------------------------------------------------- check-in


def test_a_check_in_pays_the_reward_once_and_a_second_one_the_same_day_is_answered_politely() -> (
    None
):
    world = World(campaign())
    day = date(2026, 3, 5)
    first = world.feed(world.command("ana", local(day, 9)))
    assert first is not None
    assert [(a.points, a.reason) for a in first.awards] == [(5, "checkin")]
    assert texts(first) == ["✅ Ana checked in: 1-day streak, +5 points."]
    second = world.feed(world.command("ana", local(day, 23, 59)))
    assert second is not None and second.awards == () and second.state is None
    assert texts(second) == [
        "Ana, you have already checked in today (1-day streak). See you tomorrow!"
    ]
    assert world.balance("ana") == 5
    third = world.feed(world.command("ana", local(day + timedelta(days=1), 0, 1)))
    assert third is not None and [a.points for a in third.awards] == [5]
    assert world.state("ana")["streak"] == 2 and world.balance("ana") == 10


def test_the_reply_shows_the_points_as_the_tier_multiplies_them() -> None:
    gold = Tier(name="gold", threshold=100, multiplier="1.5")
    world = World(campaign(milestones={"1": 3}), tier=gold)
    decision = world.feed(world.command("ana", local(date(2026, 3, 8), 1)))
    assert decision is not None and [a.points for a in decision.awards] == [5, 3]
    assert all(a.multiply for a in decision.awards)  # the engine multiplies them
    assert texts(decision) == [
        "✅ Ana checked in: 1-day streak, +8 points.",  # 5 x 1.5 = 7.5, half up
        "🎉 Ana reached a 1-day streak: +5 bonus points!",  # 3 x 1.5 = 4.5
    ]


def test_the_tag_checks_in_from_a_chinese_message_and_replies_to_it() -> None:
    world = World(campaign(tag="#打卡", reply="{name} 打卡成功! 连续 {streak} 天, +{points} 积分"))
    plain = world.feed(world.say("ana", local(date(2026, 3, 5)), "今天天气不错"))
    assert plain is None
    event = world.say("ana", local(date(2026, 3, 5)), "今天读完了第三章 #打卡 💪")
    decision = world.feed(event)
    assert texts(decision) == ["Ana 打卡成功! 连续 1 天, +5 积分"]
    assert decision is not None
    reply = decision.actions[0]
    assert isinstance(reply, SendMessage) and reply.reply_to == event.message_id
    # a full-width number sign (U+FF03) is the same tag; the next day continues the streak
    nxt = world.feed(world.say("ana", local(date(2026, 3, 6)), "\uff03打卡 第二天"))
    assert texts(nxt) == ["Ana 打卡成功! 连续 2 天, +5 积分"]


def test_without_a_tag_messages_are_not_even_asked_for() -> None:
    assert campaign().event_types == frozenset({"command_invoked"})
    assert "message_posted" in campaign(tag="#打卡").event_types


def test_milestones_pay_once_when_the_streak_reaches_them() -> None:
    world = World(campaign(milestones={"3": 10, "5": 30}))
    start = date(2026, 3, 5)  # across the change to summer time on 2026-03-08
    decisions = [
        world.feed(world.command("ana", local(start + timedelta(days=i), 22))) for i in range(6)
    ]
    paid = [[(a.points, a.reason) for a in d.awards] for d in decisions if d is not None]
    assert paid == [
        [(5, "checkin")],
        [(5, "checkin")],
        [(5, "checkin"), (10, "checkin_milestone")],
        [(5, "checkin")],
        [(5, "checkin"), (30, "checkin_milestone")],
        [(5, "checkin")],
    ]
    assert texts(decisions[2])[1] == "🎉 Ana reached a 3-day streak: +10 bonus points!"
    milestone = decisions[4].awards[1] if decisions[4] is not None else None
    assert milestone is not None and milestone.key.endswith(":milestone:5:2026-03-05")
    assert world.balance("ana") == 6 * 5 + 10 + 30
    state = world.state("ana")
    assert (state["streak"], state["best"], state["total"]) == (6, 6, 6)


def test_a_missed_day_breaks_the_streak_unless_within_the_grace() -> None:
    strict, lenient = World(campaign()), World(campaign(grace_days=1))
    for world in (strict, lenient):
        for day in (date(2026, 3, 5), date(2026, 3, 6), date(2026, 3, 8)):
            world.feed(world.command("ana", local(day)))
    assert strict.state("ana")["streak"] == 1 and strict.state("ana")["best"] == 2
    assert lenient.state("ana")["streak"] == 3  # the missed day does not count


# -------------------------------------------------------------- make-up cards


def test_a_make_up_card_fills_yesterday_for_its_cost() -> None:
    world = World(campaign(), balance=15)
    world.feed(world.command("ana", local(date(2026, 3, 6))))  # 20 points now
    # 2026-03-07 missed; on 2026-03-08 a make-up card repairs the streak
    made = world.feed(world.command("ana", local(date(2026, 3, 8), 8), "makeup"))
    assert made is not None and made.awards == ()
    assert [(s.points, s.reason) for s in made.spends] == [(20, "checkin_makeup")]
    assert texts(made) == ["Ana, yesterday (2026-03-07) is filled for 20 points: 2-day streak."]
    assert world.balance("ana") == 0
    world.feed(world.command("ana", local(date(2026, 3, 8), 9)))
    state = world.state("ana")
    assert (state["streak"], state["start"], state["total"]) == (3, "2026-03-06", 3)
    assert state["makeups"] == {"2026-03": 1}


def test_a_make_up_card_after_today_s_check_in_joins_the_streak_again() -> None:
    world = World(campaign(), balance=100)
    for day in (date(2026, 3, 5), date(2026, 3, 6), date(2026, 3, 8)):
        world.feed(world.command("ana", local(day)))
    assert world.state("ana")["streak"] == 1
    world.feed(world.command("ana", local(date(2026, 3, 8), 20), command="makeup"))
    assert world.state("ana")["streak"] == 4 and world.state("ana")["start"] == "2026-03-05"


def test_make_up_cards_are_refused_politely() -> None:
    world = World(campaign(makeup_per_month=1), balance=0)
    world.feed(world.command("ana", local(date(2026, 3, 2))))  # 5 points
    nothing = world.feed(world.command("ana", local(date(2026, 3, 3)), "makeup"))
    assert texts(nothing) == [
        "Ana, there is no missed day yesterday that a make-up card could repair."
    ]
    world.feed(world.command("ana", local(date(2026, 3, 3))))  # 10 points
    poor = world.feed(world.command("ana", local(date(2026, 3, 5)), "makeup"))
    assert poor is not None and poor.spends == () and poor.state is None
    assert texts(poor) == [
        "Ana, a make-up card costs 20 points and you have 10: not enough points."
    ]
    world.balances["console:ana"] = 100
    assert world.feed(world.command("ana", local(date(2026, 3, 5)), "makeup")) is not None
    assert world.state("ana")["streak"] == 3
    too_late = world.feed(world.command("ana", local(date(2026, 3, 8)), "makeup"))
    assert "no missed day" in texts(too_late)[0]  # 03-05 to 03-07: two days missed
    world.feed(world.command("ana", local(date(2026, 3, 8))))
    world.feed(world.command("ana", local(date(2026, 3, 10))))
    limit = world.feed(world.command("ana", local(date(2026, 3, 10)), "makeup"))
    assert texts(limit) == ["Ana, you have used all 1 make-up cards of this month."]
    assert world.balance("ana") == 100 - 20 + 5 + 5


def test_a_make_up_card_the_member_cannot_pay_is_dropped_whole() -> None:
    world = World(campaign(), balance=0)
    world.feed(world.command("ana", local(date(2026, 3, 2))))
    decision = world.campaign.on_event(
        world.context(world.command("ana", local(date(2026, 3, 4)), "makeup"))
    )
    # the balance read by the campaign was stale: the engine would drop all of it
    assert decision is not None and texts(decision) != []
    assert "not enough points" in texts(decision)[0]


# ------------------------------------------------------------------ status


def test_the_leaderboard_command_answers_with_the_member_s_own_streak() -> None:
    world = World(campaign())
    for i in range(3):
        world.feed(world.command("ana", local(date(2026, 3, 5) + timedelta(days=i))))
    mine = world.feed(world.command("ana", local(date(2026, 3, 7), 18), "top"))
    assert texts(mine) == ["Ana: 3-day streak, best 3, 3 check-ins in all."]
    later = world.feed(world.command("ana", local(date(2026, 3, 12)), command="top"))
    assert texts(later) == ["Ana: 0-day streak, best 3, 3 check-ins in all."]


def test_leaderboard_and_numbers_are_pure_functions_of_the_states() -> None:
    states = [
        ("console:a", {"last": "2026-03-08", "streak": 4, "start": "2026-03-05", "best": 9}),
        ("console:b", {"last": "2026-03-07", "streak": 6, "start": "2026-03-02", "best": 6}),
        ("console:c", {"last": "2026-03-01", "streak": 12, "start": "2026-02-18", "best": 12}),
        ("console:d", {"last": "2026-03-08", "streak": 4, "start": "2026-03-05", "best": 4}),
    ]
    assert leaderboard(states, 10) == [
        ("console:c", 12, 12),
        ("console:b", 6, 6),
        ("console:a", 4, 9),
        ("console:d", 4, 4),
    ]
    assert leaderboard(states, 2, today=date(2026, 3, 8)) == [
        ("console:b", 6, 6),
        ("console:a", 4, 9),
    ]
    with_days = [
        (m, {**s, "days": ["2026-03-07", "2026-03-08"] if s["last"] == "2026-03-08" else []})
        for m, s in states
    ]
    numbers = checkin_numbers(with_days, [date(2026, 3, 7), date(2026, 3, 8)])
    assert numbers["members"] == 4
    assert numbers["checked_in"] == {"2026-03-07": 2, "2026-03-08": 2}
    assert numbers["rate"] == {"2026-03-07": 0.5, "2026-03-08": 0.5}
    assert numbers["streaks"] == {0: 1, 4: 2, 6: 1}


# ---------------------------------------------------------------- schedule


def test_next_run_is_at_local_evening_across_the_change_to_summer_time() -> None:
    checkin = campaign()
    before = datetime(2026, 3, 7, 20, 0, tzinfo=NY).astimezone(UTC)
    assert before == datetime(2026, 3, 8, 1, 0, tzinfo=UTC)  # EST: UTC-5
    after = checkin.next_run(before)
    assert after == datetime(2026, 3, 9, 0, 0, tzinfo=UTC)  # EDT: UTC-4
    assert checkin.next_run(after - timedelta(seconds=1)) == after
    assert checkin.next_run(datetime(2026, 3, 7, 17, 0, tzinfo=UTC)) == before
    assert checkin.next_run(None) is None
    with_board = campaign(leaderboard_at="21:30", remind=False)
    assert with_board.next_run(before) == datetime(2026, 3, 8, 2, 30, tzinfo=UTC)
    assert campaign(remind=False).next_run(before) is None


def _tick(
    moment: datetime, states: Mapping[str, Mapping[str, Any]], caps: Capabilities
) -> TickContext:
    return TickContext(
        now=moment,
        community=COMMUNITY,
        capabilities={"console": caps},
        source=FakeSource(states),
    )


def _state(last: str, group: str | None = "g1") -> dict[str, Any]:
    return {
        "last": last,
        "streak": 2,
        "start": last,
        "best": 2,
        "platform": "console",
        "user": "",
        "group": group,
    }


def test_reminders_go_only_to_recent_members_who_have_not_checked_in_today() -> None:
    checkin = campaign()
    states = {
        "console:ana": {**_state("2026-03-08"), "user": "ana"},  # already today
        "console:bo": {**_state("2026-03-07"), "user": "bo"},  # yesterday
        "console:cy": {**_state("2026-03-01"), "user": "cy"},  # exactly 7 days ago
        "console:di": {**_state("2026-02-28"), "user": "di"},  # too long ago
    }
    moment = checkin.next_run(datetime(2026, 3, 8, 12, 0, tzinfo=UTC))
    assert moment == datetime(2026, 3, 9, 0, 0, tzinfo=UTC)
    decisions = list(checkin.on_schedule(_tick(moment, states, EVERYTHING)))
    assert [d.member for d in decisions] == ["console:bo", "console:cy"]
    dm = decisions[0].actions[0]
    assert isinstance(dm, SendDirectMessage) and dm.user == "bo"
    assert "send /checkin" in dm.text
    (mention,) = decisions[0].fallbacks[dm.action_id]
    assert isinstance(mention, SendMessage) and mention.group == "g1" and "@Bo" in mention.text
    without = list(checkin.on_schedule(_tick(moment, states, NO_DMS)))
    assert [type(a) for d in without for a in d.actions] == [SendMessage, SendMessage]
    assert list(checkin.on_schedule(_tick(moment + timedelta(hours=1), states, EVERYTHING))) == []


def test_the_leaderboard_is_posted_to_the_groups_at_its_time() -> None:
    checkin = campaign(leaderboard_at="21:00", remind=False)
    states = {
        "console:ana": {**_state("2026-03-08"), "streak": 5, "user": "ana"},
        "console:bo": {**_state("2026-03-07"), "user": "bo"},
    }
    moment = datetime(2026, 3, 8, 21, 0, tzinfo=NY).astimezone(UTC)
    (decision,) = checkin.on_schedule(_tick(moment, states, EVERYTHING))
    (post,) = decision.actions
    assert isinstance(post, SendMessage) and post.group == "g1"
    assert post.text.splitlines() == [
        "🏆 Check-in streaks, top 2:",
        "1. Ana: 5 (best 2)".replace("best 2", "best 5"),
        "2. Bo: 2 (best 2)",
    ]


# ---------------------------------------------------------------- settings


def test_defaults_and_a_campaign_can_be_hashed() -> None:
    checkin = CheckinCampaign.from_settings({})
    assert (checkin.name, checkin.command, checkin.reward, checkin.grace_days) == (
        "checkin",
        "checkin",
        5,
        0,
    )
    assert (checkin.makeup_per_month, checkin.makeup_cost, checkin.remind) == (2, 20, True)
    assert checkin.leaderboard_at is None and checkin.timezone == "UTC"
    assert hash(checkin) == hash(CheckinCampaign.from_settings({}))


@pytest.mark.parametrize(
    ("settings", "found"),
    [
        ({"rewrad": 5}, "unknown settings: rewrad"),
        ({"remind_at": "25:00"}, "remind_at must be a local time"),
        ({"reward": -1}, "reward must be a whole number >= 0"),
        ({"reply": "{name} {nope}"}, "unknown: nope"),
        ({"reply": "{points:>5}"}, "plain placeholders"),
        ({"milestones": {"seven": 20}}, "milestones must be a table"),
        ({"milestones": {"\u00b2": 20}}, "milestones must be a table"),
        ({"milestones": {"7": -1}}, "milestones must be a table"),
        ({"leaderboard_at": "9pm"}, "leaderboard_at must be a local time like '20:00' or ''"),
        ({"command": "/checkin"}, "command must be a command name"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
    ],
)
def test_bad_settings_are_refused_naming_the_campaign_and_the_key(
    settings: dict[str, Any], found: str
) -> None:
    with pytest.raises(ModelError, match="checkin campaign") as caught:
        CheckinCampaign.from_settings(settings)
    assert found in str(caught.value)


# --------------------------------------------------------- through the engine

CONFIG = """
[community]
name = "t"
timezone = "America/New_York"

[[groups]]
key = "main"
platform = "console"
id = "g1"

[points]
message = 0
reaction_received = 0

[[campaigns]]
type = "checkin"
timezone = "America/New_York"
tag = "#打卡"
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_through_the_engine_points_are_credited_once_and_a_make_up_card_is_paid() -> None:
    start = local(date(2026, 3, 6), 8)
    app, clock = memory_app(
        config_text=CONFIG, adapters={"console": ScriptedAdapter()}, start=start
    )
    app.open()
    world = World(campaign())  # only to build events

    def at(day: int, hour: int) -> datetime:
        moment = local(date(2026, 3, day), hour)
        clock.set(moment)
        return moment

    await app.feed(
        [MemberJoined(event_id="j1", platform="console", group="g1", user="ana", at=start)]
    )
    await app.feed([world.command("ana", at(6, 9))])
    await app.feed([world.command("ana", at(6, 10))])  # the same day: nothing more
    await app.feed([world.say("ana", at(6, 11), "第一天 #打卡")])
    assert app.balance("console:ana") == 5
    await app.feed([world.command("ana", at(7, 9))])
    assert app.balance("console:ana") == 10
    # 2026-03-08 (the clocks change) is missed; the evening reminder goes out
    await app.engine.advance_to(local(date(2026, 3, 8), 21), clock.set)
    reminders = [
        item.action
        for item in app.store.outbox()
        if isinstance(item.action, SendDirectMessage) and item.action.reason.endswith("reminder")
    ]
    assert [r.user for r in reminders] == ["ana"]
    await app.feed([world.command("ana", at(9, 9))])
    assert app.balance("console:ana") == 15
    assert app.engine.moderation.state("checkin", "console:ana")["streak"] == 1
    await app.feed([world.command("ana", at(9, 10), "makeup")])  # 15 < 20: refused
    assert app.balance("console:ana") == 15
    await app.award("console:ana", 10, reason="bonus", key="bonus-1")
    await app.feed([world.command("ana", at(9, 11), "makeup")])
    assert app.balance("console:ana") == 5
    state = app.engine.moderation.state("checkin", "console:ana")
    assert (state["streak"], state["start"], state["total"]) == (4, "2026-03-06", 4)
    await app.feed([world.command("ana", at(9, 12), "makeup")])  # nothing left to repair
    assert app.balance("console:ana") == 5
    replies = [
        item.action.text for item in app.store.outbox() if isinstance(item.action, SendMessage)
    ]
    assert any("not enough points" in text for text in replies)
    assert any("2026-03-08" in text and "4-day streak" in text for text in replies)
