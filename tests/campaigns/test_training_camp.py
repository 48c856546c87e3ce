# ruff: noqa: RUF001
"""The ``training_camp`` campaign type (训练营): enrolment, tasks, homework, reminders,
stars, certificates and the report, on its own and through the engine."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from communitykit import (
    ACTION_TYPES,
    AwardPoints,
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
    ReactionAdded,
    RuleContext,
    SendDirectMessage,
    SendMessage,
    TickContext,
    Tier,
)
from communitykit._errors import ModelError
from communitykit.builtins.campaigns.cohorts import TrainingCampCampaign, camp_numbers
from communitykit.testing import memory_app
from tests.engine.doubles import ScriptedAdapter

NY = ZoneInfo("America/New_York")
COMMUNITY = Community(
    name="t",
    timezone="America/New_York",
    groups=[
        Group(key="main", platform="console", group_id="g1"),
        Group(key="ops", platform="console", group_id="ops"),
    ],
)
EVERYTHING = Capabilities(actions=frozenset(ACTION_TYPES), direct_messages=True)
NO_DMS = Capabilities(actions=frozenset(ACTION_TYPES) - {"send_direct_message"})
TIER = Tier(name="member", threshold=0)
JOINED = datetime(2026, 1, 1, tzinfo=UTC)

DAYS = [
    {"lesson": "https://example.org/课程1", "task": "写下你的目标", "homework_tag": "#作业1"},
    {"lesson": "https://example.org/课程2", "task": "完成第一个练习", "homework_tag": "#作业2"},
    {"lesson": "https://example.org/课程3", "task": "分享你的收获", "homework_tag": "#作业3"},
]


def local(day: date, hour: int = 12, minute: int = 0) -> datetime:
    """A moment of a New York day, in UTC."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=NY).astimezone(UTC)


def camp(**settings: Any) -> TrainingCampCampaign:
    """A three-day camp from 2026-03-07 (the clocks change on its second day)."""
    base: dict[str, Any] = {
        "timezone": "America/New_York",
        "start": "2026-03-07",
        "group": "main",
        "days": DAYS,
        "operator_group": "ops",
    }
    return TrainingCampCampaign.from_settings({**base, **settings})


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class World:
    """Applies a campaign's decisions the way the engine does (state as plain JSON,
    awards once per key), and looks over the community for its ticks."""

    def __init__(self, campaign: Any, community: Community = COMMUNITY) -> None:
        self.campaign = campaign
        self.community = community
        self.states: dict[str, dict[str, Any]] = {}
        self.people: dict[str, Member] = {}
        self.live: dict[str, MemberState] = {}
        self.paid: dict[str, AwardPoints] = {}
        self.decisions: list[Decision] = []
        self.seq = 0

    # ---- events
    def join(
        self, user: str, name: str = "", at: datetime = JOINED, *, left: datetime | None = None
    ) -> str:
        member_id = f"console:{user}"
        self.people[member_id] = Member(
            member_id=member_id,
            identities=[PlatformIdentity("console", user)],
            display_name=name or user.capitalize(),
            joined_at=at,
            left_at=left,
        )
        self.live[member_id] = MemberState(member_id=member_id, tier="member", tier_since=at)
        return member_id

    def command(
        self, user: str, at: datetime, command: str, *args: str, group: bool = True
    ) -> Event:
        self.seq += 1
        return CommandInvoked(
            event_id=f"c{self.seq}",
            platform="console",
            group="g1" if group else None,
            user=user,
            at=at,
            command=command,
            args=args,
        )

    def say(self, user: str, at: datetime, text: str) -> MessagePosted:
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

    def react(self, user: str, at: datetime, message_id: str) -> Event:
        self.seq += 1
        return ReactionAdded(
            event_id=f"r{self.seq}",
            platform="console",
            group="g1",
            user=user,
            at=at,
            message_id=message_id,
            emoji="👍",
        )

    def feed(self, event: Event) -> Decision | None:
        member_id = f"console:{event.user}"
        if member_id not in self.people:
            self.join(event.user)
        who = self.people[member_id]
        previous = self.live[member_id]
        self.live[member_id] = MemberState(
            member_id=member_id,
            tier="member",
            tier_since=previous.tier_since,
            last_active_at=event.at,
        )
        if event.TYPE not in self.campaign.event_types:
            return None
        ctx = RuleContext(
            event=event,
            member=who,
            state=self.live[member_id],
            tier=TIER,
            balance=0,
            community=self.community,
            capabilities=EVERYTHING,
            now=event.at,
            cap_remaining=lambda _reason: None,
            member_of=lambda _platform, _user: None,
            already_awarded=lambda key: key in self.paid,
            rule_state=lambda _name: self.states.get(member_id, {}),
            rule_state_of=lambda _name, other: self.states.get(other, {}),
        )
        decision: Decision | None = self.campaign.on_event(ctx)
        if decision is not None:
            self.apply(decision, member_id)
        return decision

    def apply(self, decision: Decision, member_id: str | None) -> None:
        member_id = decision.member or member_id
        for award in decision.awards:
            self.paid.setdefault(award.key, award)
        if decision.state is not None and member_id is not None:
            self.states[member_id] = json.loads(json.dumps(_plain(decision.state)))
        self.decisions.append(decision)

    # ---- ticks
    def tick(
        self, moment: datetime, caps: Capabilities = EVERYTHING, now: datetime | None = None
    ) -> list[Decision]:
        ctx = TickContext(
            now=now or moment,
            moment=moment,
            community=self.community,
            capabilities={"console": caps},
            source=self,
        )
        found = list(self.campaign.on_schedule(ctx))
        for decision in found:
            self.apply(decision, None)
        return found

    def run_until(self, moment: datetime, caps: Capabilities = EVERYTHING) -> list[Decision]:
        """Every scheduled moment after the last one run, up to ``moment``."""
        found: list[Decision] = []
        after = getattr(self, "_after", None)
        while True:
            due = self.campaign.next_run(after)
            if due is None or due > moment:
                break
            found.extend(self.tick(due, caps))
            after = due
        self._after = after
        return found

    # ---- TickSource
    def members(self) -> Iterator[tuple[Member, MemberState]]:
        return iter([(self.people[k], self.live[k]) for k in sorted(self.people)])

    def member(self, member_id: str) -> Member | None:
        return self.people.get(member_id)

    def state(self, member_id: str) -> MemberState | None:
        return self.live.get(member_id)

    def rule_states(self, name: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
        return iter(sorted(self.states.items()))

    def groups_of(self, member_id: str) -> frozenset[str]:
        return frozenset({"main"}) if member_id in self.people else frozenset()

    def group_size(self, key: str) -> int:
        return len(self.people)

    def warnings(self, member_id: str) -> int:
        return 0


def texts(decisions: list[Decision] | Decision | None) -> list[str]:
    if decisions is None:
        return []
    if isinstance(decisions, Decision):
        decisions = [decisions]
    return [
        a.text
        for d in decisions
        for a in d.actions
        if isinstance(a, SendMessage | SendDirectMessage)
    ]


D1, D2, D3, END = (date(2026, 3, 7) + timedelta(days=n) for n in range(4))


# ------------------------------------------------------------------ settings


@pytest.mark.parametrize(
    ("settings", "found"),
    [
        ({"start": "3月7日"}, "start must be a local date"),
        ({"group": ""}, "group must be the key"),
        ({"days": []}, "days must be a list"),
        ({"days": [{"lesson": "x", "作业": "y"}]}, "days must be a list"),
        ({"star_rule": "random"}, "star_rule must be"),
        ({"complete_rate": 1.5}, "complete_rate must be a number from 0 to 1"),
        ({"post_at": "8点"}, "post_at must be a local time"),
        ({"star_at": "25:00"}, "star_at must be a local time like '20:00' or ''"),
        ({"done_command": "/done"}, "done_command must be a command name"),
        ({"star": "{name} {rank}"}, "unknown: rank"),
        ({"colour": "red"}, "unknown settings: colour"),
    ],
)
def test_bad_settings_are_refused_naming_the_campaign_and_key(
    settings: dict[str, Any], found: str
) -> None:
    with pytest.raises(ModelError, match="training_camp campaign") as caught:
        camp(**settings)
    assert found in str(caught.value)


# ------------------------------------------------------------------ schedule


def test_moments_are_local_times_across_the_clock_change() -> None:
    c = camp()
    first = c.next_run(None)
    assert first == datetime(2026, 3, 7, 13, 0, tzinfo=UTC)  # 08:00 EST
    assert c.next_run(first) == datetime(2026, 3, 8, 1, 0, tzinfo=UTC)  # 20:00 EST
    # 2026-03-08: EDT from 03:00, so 08:00 is 12:00 UTC
    assert c.next_run(datetime(2026, 3, 8, 3, 0, tzinfo=UTC)) == datetime(
        2026, 3, 8, 12, 0, tzinfo=UTC
    )
    end = local(END, 8)
    assert end == datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    assert c.next_run(end - timedelta(seconds=1)) == end
    assert c.next_run(end) is None
    assert [kind for _, kind, _ in c.moments()].count("post") == 3
    no_extras = camp(remind_at="", star_at="")
    assert [kind for _, kind, _ in no_extras.moments()] == ["post", "post", "post", "end"]


def test_each_day_the_lesson_and_task_are_posted_in_the_group() -> None:
    world = World(camp())
    posts = world.run_until(local(D2, 9))
    assert texts(posts) == [
        "📚 训练营第 1/3 天\n课程：https://example.org/课程1\n"
        "任务：写下你的目标\n交作业请带上 #作业1",
        "📚 训练营第 2/3 天\n课程：https://example.org/课程2\n"
        "任务：完成第一个练习\n交作业请带上 #作业2",
    ]
    (post,) = posts[-1].actions
    assert isinstance(post, SendMessage) and post.group == "g1"
    # the same moment again yields the same action ids (replays are idempotent)
    again = world.tick(local(D2, 8))
    assert again[0].actions[0].action_id == post.action_id


# ------------------------------------------------------------------- events


def test_members_enrol_do_tasks_and_hand_in_homework_once_a_day() -> None:
    world = World(camp())
    world.join("ana", "安娜")
    assert texts(world.feed(world.command("ana", local(D1, 7), "done"))) == [
        "安娜，你还没有报名训练营：发送 /enroll 报名。"
    ]
    assert "console:ana" not in world.states
    assert texts(world.feed(world.command("ana", local(D1, 7), "enroll"))) == [
        "安娜 报名成功！训练营 2026-03-07 开始，共 3 天。"
    ]
    assert texts(world.feed(world.command("ana", local(D1, 9), "done"))) == [
        "✅ 安娜 完成了第 1 天的任务（1/3）。"
    ]
    first = world.say("ana", local(D1, 10), "今天的作业 #作业1 我的目标是每天跑步")
    assert texts(world.feed(first)) == ["📝 安娜 交了第 1 天的作业。"]
    second = world.feed(world.say("ana", local(D1, 11), "补充一下 #作业1"))
    assert second is not None and second.state is None and not second.actions
    state = world.states["console:ana"]
    assert list(state["homework"]) == ["2026-03-07"]
    assert state["homework"]["2026-03-07"]["id"] == first.message_id
    # yesterday's tag on day 2 is not day 2's homework
    assert world.feed(world.say("ana", local(D2, 10), "#作业1 again")) is None
    # 23:30 on 2026-03-08 in New York is 03:30 UTC on 03-09: still day 2
    world.feed(world.say("ana", local(D2, 23, 30), "晚交的 #作业2"))
    assert sorted(world.states["console:ana"]["homework"]) == ["2026-03-07", "2026-03-08"]
    assert texts(world.feed(world.command("ana", local(END, 9), "done"))) == [
        "安娜，今天没有训练营的任务。"
    ]
    assert texts(world.feed(world.command("bo", local(END, 9), "enroll"))) == [
        "Bo，训练营已经结束，无法报名。"
    ]


def test_homework_by_command_and_messages_in_other_groups_are_ignored() -> None:
    world = World(camp(homework_command="交作业"))
    world.feed(world.command("ana", local(D1, 7), "enroll"))
    other = MessagePosted(
        event_id="x1",
        platform="console",
        group="elsewhere",
        user="ana",
        at=local(D1, 8),
        message_id="x1",
        text="#作业1",
    )
    assert world.feed(other) is None
    world.feed(world.command("ana", local(D1, 9), "交作业", "我的", "作业"))
    record = world.states["console:ana"]["homework"]["2026-03-07"]
    assert record["length"] == len("我的 作业")


def test_with_the_group_as_cohort_everyone_takes_part_without_enrolling() -> None:
    world = World(camp(cohort="group"))
    world.join("ana", "安娜")
    world.join("bo", "博")
    world.feed(world.say("ana", local(D1, 9), "#作业1 完成"))
    assert world.states["console:ana"]["enrolled"]
    reminders = world.tick(local(D1, 20))
    assert [d.member for d in reminders] == ["console:bo"]


def test_the_evening_reminder_goes_to_who_has_not_done_the_task() -> None:
    world = World(camp())
    for user in ("ana", "bo", "cy"):
        world.feed(world.command(user, local(D1, 7), "enroll"))
    world.join("di")  # not enrolled
    world.feed(world.command("ana", local(D1, 9), "done"))
    world.feed(world.say("bo", local(D1, 9), "#作业1"))  # homework counts as done
    reminders = world.tick(local(D1, 20))
    assert [d.member for d in reminders] == ["console:cy"]
    (dm,) = reminders[0].actions
    assert isinstance(dm, SendDirectMessage) and dm.user == "cy"
    assert dm.text == "@Cy，今天（第 1 天）的任务还没有完成：完成后发送 /done。"
    (fallback,) = reminders[0].fallbacks[dm.action_id]
    assert isinstance(fallback, SendMessage) and fallback.group == "g1"
    mentions = world.tick(local(D1, 20), NO_DMS)
    assert [type(a) for d in mentions for a in d.actions] == [SendMessage]
    # a member who left is not reminded
    world.join("cy", left=local(D1, 10))
    assert world.tick(local(D1, 20)) == []


@pytest.mark.parametrize(
    ("rule", "star"),
    [("first", "console:bo"), ("longest", "console:cy"), ("most_reactions", "console:ana")],
)
def test_the_star_of_the_day_by_each_rule(rule: str, star: str) -> None:
    world = World(camp(star_rule=rule, star_points=10))
    for user in ("ana", "bo", "cy"):
        world.feed(world.command(user, local(D2, 7), "enroll"))
    bo = world.say("bo", local(D2, 9), "#作业2 短")
    ana = world.say("ana", local(D2, 10), "#作业2 中等长度的作业")
    cy = world.say("cy", local(D2, 11), "#作业2 这是一份非常非常长的作业，写了很多内容")
    for event in (bo, ana, cy):
        world.feed(event)
    world.feed(world.react("bo", local(D2, 12), ana.message_id))
    world.feed(world.react("cy", local(D2, 12), ana.message_id))
    world.feed(world.react("cy", local(D2, 12), ana.message_id))  # once per member
    world.feed(world.react("ana", local(D2, 12), ana.message_id))  # not one's own
    world.feed(world.react("ana", local(D2, 12), cy.message_id))
    decisions = world.tick(local(D2, 22))
    assert [d.member for d in decisions] == [star]
    shown = {"console:ana": "Ana", "console:bo": "Bo", "console:cy": "Cy"}[star]
    assert texts(decisions) == [f"⭐ 第 2 天的作业之星：@{shown}！"]
    (award,) = decisions[0].awards
    assert (award.member, award.points, award.key) == (
        star,
        10,
        "camp:training_camp:star:2026-03-08",
    )


def test_most_reactions_ties_go_to_the_earliest_homework() -> None:
    world = World(camp(star_rule="most_reactions"))
    for user in ("ana", "bo"):
        world.feed(world.command(user, local(D1, 7), "enroll"))
    late = world.say("ana", local(D1, 11), "#作业1")
    early = world.say("bo", local(D1, 10), "#作业1")
    world.feed(late)
    world.feed(early)
    world.feed(world.react("bo", local(D1, 12), late.message_id))
    world.feed(world.react("ana", local(D1, 12), early.message_id))
    assert [d.member for d in world.tick(local(D1, 22))] == ["console:bo"]


def test_no_homework_no_star() -> None:
    world = World(camp())
    world.feed(world.command("ana", local(D1, 7), "enroll"))
    assert world.tick(local(D1, 22)) == []


def test_the_end_brings_certificates_and_a_report_to_the_operators() -> None:
    world = World(camp())
    for user in ("ana", "bo"):
        world.feed(world.command(user, local(D1, 7), "enroll"))
    for day in (D1, D2, D3):
        world.feed(world.say("ana", local(day, 9), f"#作业{(day - D1).days + 1}"))
    world.feed(world.command("bo", local(D1, 9), "done"))
    decisions = world.tick(local(END, 8))
    certificates = [d for d in decisions if d.member is not None]
    assert [d.member for d in certificates] == ["console:ana"]
    assert texts(certificates) == ["🎓 Ana，恭喜完成训练营！你的完成率是 100%。"]
    (report,) = [a for d in decisions if d.member is None for a in d.actions]
    assert isinstance(report, SendMessage) and report.group == "ops"
    assert report.text.splitlines() == [
        "训练营 training_camp 结束：报名 2 人，结业 1 人，作业提交率 50%。",
        "1. 2026-03-07: 100% / 50%",
        "2. 2026-03-08: 50% / 50%",
        "3. 2026-03-09: 50% / 50%",
    ]


def test_the_report_goes_by_direct_message_to_an_operator() -> None:
    world = World(camp(operator_group="", operator="boss"))
    world.feed(world.command("ana", local(D1, 7), "enroll"))
    decisions = world.tick(local(END, 8))
    (report,) = [a for d in decisions for a in d.actions]
    assert isinstance(report, SendDirectMessage) and report.user == "boss"
    assert "报名 1 人，结业 0 人" in report.text


def test_camp_numbers() -> None:
    states: list[tuple[str, Mapping[str, Any]]] = [
        ("a", {"enrolled": "x", "done": ["2026-03-07"], "homework": {"2026-03-08": {}}}),
        ("b", {"enrolled": "x", "homework": {"2026-03-07": {}, "2026-03-08": {}}}),
        ("c", {"reacted": ["pm1"]}),  # not enrolled
    ]
    numbers = camp_numbers(states, [D1, D2, D3], complete_rate=0.6)
    assert numbers["enrolled"] == 2
    assert numbers["completed"] == 2
    assert numbers["done"] == {"2026-03-07": 2, "2026-03-08": 2, "2026-03-09": 0}
    assert numbers["homework_rate"] == {"2026-03-07": 0.5, "2026-03-08": 1.0, "2026-03-09": 0.0}
    assert numbers["homework_overall"] == pytest.approx(0.5)
    assert numbers["completion"] == {"a": pytest.approx(2 / 3), "b": pytest.approx(2 / 3)}
    assert camp_numbers([], [D1])["homework_overall"] == 0.0


# --------------------------------------------------------- through the engine

CONFIG = """
[community]
name = "t"
timezone = "America/New_York"

[[groups]]
key = "main"
platform = "console"
id = "g1"

[[groups]]
key = "ops"
platform = "console"
id = "ops"

[points]
message = 0
reaction_received = 0

[[campaigns]]
type = "training_camp"
start = "2026-03-07"
group = "main"
operator_group = "ops"
star_points = 10
days = [
  { lesson = "https://example.org/课程1", task = "写下你的目标", homework_tag = "#作业1" },
  { lesson = "https://example.org/课程2", task = "完成第一个练习", homework_tag = "#作业2" },
]
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_through_the_engine_a_two_day_camp_over_the_clock_change() -> None:
    start = local(date(2026, 3, 6), 12)
    app, clock = memory_app(
        config_text=CONFIG, adapters={"console": ScriptedAdapter()}, start=start
    )
    app.open()
    world = World(camp())  # only to build events

    def at(day: date, hour: int) -> datetime:
        moment = local(day, hour)
        clock.set(moment)
        return moment

    await app.feed(
        [
            MemberJoined(
                event_id=f"j-{u}", platform="console", group="g1", user=u, at=start, display_name=n
            )
            for u, n in (("ana", "Ana"), ("bo", ""))
        ]
    )
    await app.feed([world.command("ana", at(date(2026, 3, 6), 13), "enroll")])
    await app.feed([world.command("bo", at(date(2026, 3, 6), 14), "enroll")])
    await app.engine.advance_to(local(D1, 9), clock.set)
    await app.feed([world.say("ana", at(D1, 10), "第一天的作业 #作业1")])
    await app.feed([world.say("ana", at(D1, 11), "再交一次 #作业1")])
    await app.engine.advance_to(local(D2, 9), clock.set)  # bo reminded, ana the star
    await app.feed([world.say("ana", at(D2, 10), "#作业2 完成")])
    await app.feed([world.command("bo", at(D2, 11), "done")])
    await app.engine.advance_to(local(D3, 9), clock.set)  # the end

    sent = [item.action for item in app.store.outbox()]
    posts = [a.text for a in sent if isinstance(a, SendMessage) and a.reason.startswith("camp day")]
    assert [p.splitlines()[0] for p in posts] == ["📚 训练营第 1/2 天", "📚 训练营第 2/2 天"]
    said = [a for a in sent if isinstance(a, SendMessage | SendDirectMessage)]
    reminders = [a for a in said if a.reason == "camp task reminder"]
    assert [(a.user, a.text) for a in reminders] == [  # day 1 only: bo did day 2's task
        ("bo", "@bo，今天（第 1 天）的任务还没有完成：完成后发送 /done。")
    ]
    assert app.balance("console:ana") == 20  # star of both days
    state = app.engine.moderation.state("training_camp", "console:ana")
    assert sorted(state["homework"]) == ["2026-03-07", "2026-03-08"]
    certificates = [a for a in said if a.reason == "camp certificate"]
    assert [(a.user, a.text) for a in certificates] == [
        ("ana", "🎓 Ana，恭喜完成训练营！你的完成率是 100%。")
    ]
    (report,) = [a for a in sent if a.reason == "camp completion report"]
    assert isinstance(report, SendMessage) and report.group == "ops"
    assert "报名 2 人，结业 1 人" in report.text


def test_reactions_outside_the_camp_group_or_days_are_not_counted() -> None:
    world = World(camp(star_rule="most_reactions"))
    world.feed(world.command("ana", local(D1, 7), "enroll"))
    homework = world.say("ana", local(D1, 9), "#作业1")
    world.feed(homework)
    private = ReactionAdded(
        event_id="dm-r",
        platform="console",
        group=None,
        user="bo",
        at=local(D1, 10),
        message_id=homework.message_id,
        emoji="👍",
    )
    assert world.feed(private) is None
    assert world.feed(world.react("bo", local(END, 10), homework.message_id)) is None
    world.feed(world.react("bo", local(D1, 11), homework.message_id))
    assert world.states["console:bo"]["reacted"] == [homework.message_id]
