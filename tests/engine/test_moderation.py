"""Moderation through the engine: scopes and exemptions, the warning ladder,
rule state, group sizes, recent messages, fallbacks and the audit trail."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from communitykit import (
    AuditKind,
    CommunityApp,
    Decision,
    DeleteMessage,
    MemberJoined,
    MemberLeft,
    MessageEdited,
    MessagePosted,
    Mute,
    Recent,
    RuleContext,
    RuleType,
    SendDirectMessage,
    SendMessage,
    SimulatedClock,
    TickContext,
    Warn,
    hookimpl,
    parse_config,
    stable_id,
)
from communitykit.testing import memory_app

from .doubles import EVERYTHING, PermanentFailure, ScriptedAdapter

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class BadWords:
    """Strikes a message containing 'bad' and deletes it (with a reply as fallback)."""

    event_types: ClassVar[frozenset[str]] = frozenset({"message_posted", "message_edited"})
    window = timedelta(minutes=10)

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.name = str(settings.get("name", "badwords"))
        self.seen: list[tuple[Recent, ...]] = []  # what ctx.recent held at each message

    def evaluate(self, ctx: RuleContext) -> Decision | None:
        self.seen.append(tuple(ctx.recent))
        event = ctx.event
        assert isinstance(event, MessagePosted | MessageEdited)
        if "bad" not in event.text:
            return None
        source = f"rule:{self.name}"
        delete = ctx.action(DeleteMessage, source, "bad word", 0, message_id=event.message_id)
        reply = ctx.action(
            SendMessage, source, "bad word", 1, text="please remove it", reply_to=event.message_id
        )
        return Decision(
            source=source,
            explanation=f"said a bad word ({len(ctx.recent)} recent messages before)",
            actions=(delete,),
            fallbacks={delete.action_id: (reply,)},
            strike=True,
        )


class Counter:
    """Remembers how many messages it saw per member, in its rule state."""

    name = "counter"
    event_types: ClassVar[frozenset[str]] = frozenset({"message_posted"})

    def __init__(self, settings: Mapping[str, Any]) -> None:
        pass

    def evaluate(self, ctx: RuleContext) -> Decision | None:
        seen = int(ctx.rule_state(self.name).get("seen", 0)) + 1
        return Decision(source="rule:counter", explanation="counted", state={"seen": seen})


class Sweeper:
    """Every day at 10:00 UTC, DMs every member it applies to."""

    name = "sweeper"
    event_types: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, settings: Mapping[str, Any]) -> None:
        pass

    def evaluate(self, ctx: RuleContext) -> Decision | None:
        return None

    def next_run(self, after: datetime | None, tick: TickContext) -> datetime | None:
        base = after or tick.now
        moment = base.replace(hour=10, minute=0, second=0, microsecond=0)
        return moment if moment > base else moment + timedelta(days=1)

    def on_schedule(self, tick: TickContext) -> Iterable[Decision]:
        for member, _state in tick.members():
            user = member.identities[0].user_id
            dm = SendDirectMessage(
                action_id=stable_id("sweep", member.member_id, tick.now.isoformat()),
                platform="console",
                user=user,
                source="rule:sweeper",
                reason="sweep",
                text=f"hello, {len(tick.groups_of(member.member_id))} groups",
            )
            yield Decision(
                source="rule:sweeper", explanation="swept", actions=(dm,), member=member.member_id
            )


class TestRules:
    @hookimpl
    def communitykit_rule_types(self) -> list[RuleType]:
        return [
            RuleType(name="test.badwords", factory=BadWords),
            RuleType(name="test.counter", factory=Counter),
            RuleType(name="test.sweeper", factory=Sweeper, scope_defaults={"exempt_paid": True}),
        ]


CONFIG = """
[community]
name = "t"
timezone = "UTC"

[[groups]]
key = "main"
platform = "console"
id = "main"
size_cap = 3

[[groups]]
key = "side"
platform = "console"
id = "side"

[points]
message = 0
reaction_received = 0

[[rules]]
type = "test.badwords"
exempt_tags = ["trusted"]

[[rules]]
type = "warning_ladder"
steps = ["warn", "mute:1h", "kick"]
decay = "7d"
"""


def build(
    config: str = CONFIG, adapter: ScriptedAdapter | None = None
) -> tuple[CommunityApp, SimulatedClock, ScriptedAdapter]:
    from communitykit import make_plugin_manager

    plugins = make_plugin_manager()
    plugins.register(TestRules(), name="test-rules")
    adapter = adapter or ScriptedAdapter()
    app, clock = memory_app(
        config_text=config, adapters={"console": adapter}, plugins=plugins, start=T0
    )
    app.open()
    return app, clock, adapter


def say(n: int, text: str, user: str = "ana", at: datetime = T0, group: str = "main") -> Any:
    return MessagePosted(
        event_id=f"m{n}",
        platform="console",
        group=group,
        user=user,
        at=at,
        message_id=str(n),
        text=text,
    )


def joined(n: int, user: str, group: str = "main", at: datetime = T0) -> MemberJoined:
    return MemberJoined(event_id=f"j{n}", platform="console", group=group, user=user, at=at)


def outbox(app: CommunityApp) -> list[Any]:
    return [item.action for item in app.store.outbox()]


async def test_strikes_climb_the_ladder_one_step_at_a_time_and_each_is_audited() -> None:
    app, _, _ = build()
    await app.feed([say(1, "bad one", at=T0)])
    await app.feed([say(2, "bad two", at=T0 + timedelta(minutes=1))])
    await app.feed([say(3, "bad three", at=T0 + timedelta(minutes=2))])
    await app.feed([say(4, "bad four", at=T0 + timedelta(minutes=3))])
    kinds = [type(a).__name__ for a in outbox(app) if not isinstance(a, DeleteMessage)]
    assert kinds == ["Warn", "Mute", "Kick", "Kick"]  # the last step repeats
    warn = next(a for a in outbox(app) if isinstance(a, Warn))
    assert warn.count == 1 and warn.user == "ana" and warn.group == "main"
    mute = next(a for a in outbox(app) if isinstance(a, Mute))
    assert mute.until == T0 + timedelta(minutes=1, hours=1)
    trail = app.audit(member_id="console:ana")
    assert [r.kind for r in trail] == [AuditKind.VERDICT] * 4
    assert trail[1].event == "console:m2"
    assert "warning 2 of the ladder: mute:1h" in trail[1].explanation
    assert {type(a) for a in trail[1].actions} == {DeleteMessage, Mute}
    assert app.warnings("console:ana") == 4


async def test_decayed_warnings_no_longer_count() -> None:
    app, clock, _ = build()
    await app.feed([say(1, "bad", at=T0)])
    await app.feed([say(2, "bad", at=T0 + timedelta(days=1))])
    later = T0 + timedelta(days=7, hours=1)  # the first warning decayed, the second not
    clock.set(later)
    assert app.warnings("console:ana") == 1
    await app.feed([say(3, "bad", at=later)])
    last = [
        a for a in outbox(app) if a.source == "rule:badwords" and not isinstance(a, DeleteMessage)
    ]
    assert isinstance(last[-1], Mute)  # second active warning: step 2, not step 3


async def test_a_pardon_clears_warnings_and_is_audited() -> None:
    app, _, _ = build()
    await app.feed([say(1, "bad", at=T0), say(2, "bad", at=T0 + timedelta(seconds=5))])
    cleared = await app.pardon("console:ana", by="lin", note="first time")
    assert cleared == 2 and app.warnings("console:ana") == 0
    await app.feed([say(3, "bad again", at=T0 + timedelta(minutes=5))])
    last = [a for a in outbox(app) if not isinstance(a, DeleteMessage)][-1]
    assert isinstance(last, Warn) and last.count == 1
    pardon = [r for r in app.audit(member_id="console:ana") if r.kind is AuditKind.PARDON]
    assert (
        len(pardon) == 1 and "lin" in pardon[0].explanation and "2 active" in pardon[0].explanation
    )


async def test_admins_and_exempt_tags_are_never_asked() -> None:
    app, _, _ = build()
    await app.feed([say(1, "hello", user="boss"), say(2, "hi", user="friend")])
    await app.set_role("console:boss", "admin")
    await app.tag("console:friend", "trusted")
    await app.feed(
        [say(3, "bad", user="boss"), say(4, "bad", user="friend"), say(5, "bad", user="x")]
    )
    targets = {a.user for a in outbox(app)}
    assert targets == {"x"}


async def test_a_rule_scoped_to_a_group_is_not_asked_elsewhere() -> None:
    config = CONFIG.replace('exempt_tags = ["trusted"]', 'groups = ["side"]')
    app, _, _ = build(config)
    await app.feed([say(1, "bad", group="main"), say(2, "bad", group="side")])
    assert {a.group for a in outbox(app)} == {"side"}


async def test_when_the_platform_cannot_delete_the_fallback_is_taken_and_audited() -> None:
    adapter = ScriptedAdapter(actions=EVERYTHING - {"delete_message", "mute"})
    app, _, _ = build(adapter=adapter)
    await app.feed([say(1, "bad", at=T0), say(2, "bad", at=T0 + timedelta(seconds=1))])
    kinds = [type(a).__name__ for a in outbox(app)]
    # delete -> reply; the mute of the second step -> a warning
    assert kinds == ["SendMessage", "Warn", "SendMessage", "Warn"]
    trail = app.audit()
    assert "console cannot delete message; send message instead" in trail[0].explanation
    assert "console cannot mute; warn instead" in trail[1].explanation


async def test_when_delivery_fails_for_good_the_fallback_is_queued_once() -> None:
    adapter = ScriptedAdapter()
    app, _, _ = build(adapter=adapter)
    await app.feed([say(1, "bad")])
    adapter.fail_next(PermanentFailure("not enough rights to delete a message"))
    await app.dispatcher.drain()
    delivered = [type(a).__name__ for a in adapter.performed]
    assert delivered == ["Warn", "SendMessage"] or delivered == ["SendMessage", "Warn"]
    fallback = [r for r in app.audit() if r.kind is AuditKind.FALLBACK]
    assert len(fallback) == 1
    assert "not enough rights" in fallback[0].explanation
    assert isinstance(fallback[0].actions[0], SendMessage)
    # the same failure reported again (a restart before it was marked) adds nothing
    delete = next(a for a in outbox(app) if isinstance(a, DeleteMessage))
    assert await app.engine.fall_back(delete, "again") is None
    assert len([r for r in app.audit() if r.kind is AuditKind.FALLBACK]) == 1


async def test_rule_state_and_group_sizes_survive_a_restart(tmp_path: Path) -> None:
    from communitykit import make_plugin_manager

    text = CONFIG.replace('type = "test.badwords"', 'type = "test.counter"').replace(
        'exempt_tags = ["trusted"]\n', ""
    )
    config = parse_config(
        text.replace('timezone = "UTC"', f'timezone = "UTC"\nstore = "sqlite:///{tmp_path}/c.db"')
    )

    def make() -> CommunityApp:
        plugins = make_plugin_manager()
        plugins.register(TestRules(), name="test-rules")
        app = CommunityApp(
            config,
            plugins=plugins,
            clock=SimulatedClock(T0),
            adapters={"console": ScriptedAdapter()},
        )
        app.open()
        return app

    app = make()
    await app.feed([joined(1, "ana"), joined(2, "bo"), joined(3, "bo", group="side")])
    await app.feed([say(1, "a"), say(2, "b"), say(3, "c", user="bo")])
    await app.feed(
        [
            MemberLeft(
                event_id="l1", platform="console", group="main", user="bo", at=T0, reason="left"
            )
        ]
    )
    app.close()

    again = make()
    moderation = again.engine.moderation
    assert moderation.state("counter", "console:ana") == {"seen": 2}
    assert moderation.state("counter", "console:bo") == {"seen": 1}
    assert (moderation.group_size("main"), moderation.group_size("side")) == (1, 1)
    assert moderation.member_groups("console:bo") == {"side"}
    again.close()


async def test_rules_see_recent_messages_before_the_current_one_within_their_window() -> None:
    app, _, _ = build()
    rule = next(r for r in app.engine.rules if isinstance(r, BadWords))
    times = [T0, T0 + timedelta(minutes=5), T0 + timedelta(minutes=12)]
    for n, at in enumerate(times):
        await app.feed([say(n, f"text {n}", at=at)])
    assert [len(recent) for recent in rule.seen] == [0, 1, 1]  # the first left the window
    assert rule.seen[2][0].message_id == "1"


async def test_a_scheduled_rule_runs_at_its_moments_and_skips_exempt_members() -> None:
    config = CONFIG + '\n[[rules]]\ntype = "test.sweeper"\n'
    app, clock, _ = build(config)
    await app.feed([joined(1, "ana"), joined(2, "boss")])
    await app.set_role("console:boss", "owner")
    await app.engine.advance_to(T0 + timedelta(days=1, hours=2), clock.set)
    sweeps = [a for a in outbox(app) if a.source == "rule:sweeper"]
    assert [a.user for a in sweeps] == ["ana", "ana"]  # 10:00 on two days; the owner exempt
    assert sweeps[0].text == "hello, 1 groups"
    assert len(list(app.audit(rule="sweeper"))) == 2


async def test_two_rules_with_one_name_are_a_config_error() -> None:
    from communitykit import ConfigError

    config = CONFIG + '\n[[rules]]\ntype = "test.badwords"\n'
    with pytest.raises(ConfigError, match="two rules are named 'badwords'"):
        build(config)


# ---------------------------------------------------------------- properties


class Strict:
    """Acts on every message: anyone it reaches receives actions."""

    name = "strict"
    event_types: ClassVar[frozenset[str]] = frozenset({"message_posted"})

    def __init__(self, settings: Mapping[str, Any]) -> None:
        pass

    def evaluate(self, ctx: RuleContext) -> Decision | None:
        return Decision(source="rule:strict", explanation="acted", strike=True)


class StrictRules:
    @hookimpl
    def communitykit_rule_types(self) -> list[RuleType]:
        return [RuleType(name="test.strict", factory=Strict)]


STRICT = """
[community]
name = "t"
timezone = "UTC"

[[groups]]
key = "main"
platform = "console"
id = "main"

[points]
message = 0
reaction_received = 0

[[rules]]
type = "test.strict"
exempt_tags = ["vip"]
exempt_paid = true
"""


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    people=st.lists(
        st.tuples(
            st.sampled_from(["member", "kol", "admin", "owner"]),
            st.booleans(),  # tagged vip
            st.booleans(),  # paid
        ),
        min_size=1,
        max_size=6,
    ),
    messages=st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=20),
)
async def test_exempt_members_never_receive_actions(
    people: list[tuple[str, bool, bool]], messages: list[int]
) -> None:
    from communitykit import MemberPaid, make_plugin_manager

    plugins = make_plugin_manager()
    plugins.register(StrictRules(), name="strict")
    app, _ = memory_app(
        config_text=STRICT, adapters={"console": ScriptedAdapter()}, plugins=plugins, start=T0
    )
    app.open()
    exempt = set()
    for i, (role, vip, paid) in enumerate(people):
        await app.feed([joined(i, f"u{i}")])
        await app.set_role(f"console:u{i}", role)
        if vip:
            await app.tag(f"console:u{i}", "vip")
        if paid:
            await app.feed(
                [
                    MemberPaid(
                        event_id=f"p{i}",
                        platform="console",
                        user=f"u{i}",
                        at=T0,
                        amount=Decimal("9"),
                        currency="CNY",
                        valid_until=(T0 + timedelta(days=30)).date(),
                    )
                ]
            )
        if role in ("admin", "owner") or vip or paid:
            exempt.add(f"u{i}")
    for n, who in enumerate(messages):
        if who < len(people):
            await app.feed([say(100 + n, "x", user=f"u{who}", at=T0 + timedelta(seconds=n))])
    acted_on = {a.user for a in outbox(app)}
    assert not (acted_on & exempt)
    expected = {f"u{w}" for w in messages if w < len(people)} - exempt
    assert acted_on == expected
    assert {r.member_id for r in app.audit()} == {f"console:{u}" for u in expected}


async def test_editing_a_message_already_warned_for_does_not_count_again() -> None:
    app, _, _ = build()
    await app.feed([say(1, "bad")])
    edit = MessageEdited(
        event_id="x1",
        platform="console",
        group="main",
        user="ana",
        at=T0 + timedelta(seconds=30),
        message_id="1",
        text="still bad",
    )
    await app.feed([edit])
    assert app.warnings("console:ana") == 1
    ladder = [a for a in outbox(app) if not isinstance(a, DeleteMessage)]
    assert [type(a) for a in ladder] == [Warn]
    assert "already warned for this message" in app.audit()[-1].explanation
    await app.feed([say(2, "bad too", at=T0 + timedelta(minutes=1))])
    assert app.warnings("console:ana") == 2


async def test_an_invite_link_created_for_a_member_lets_a_newcomer_in() -> None:
    from communitykit import (
        ApproveJoin,
        CreateInviteLink,
        DeclineJoin,
        JoinRequested,
        Receipt,
        make_plugin_manager,
    )

    class LinkMaker(ScriptedAdapter):
        async def perform(self, action: Any) -> Receipt:
            await super().perform(action)
            detail = (
                f"https://t.example/+{action.name}" if isinstance(action, CreateInviteLink) else ""
            )
            return Receipt(action_id=action.action_id, detail=detail)

    config = """
[community]
name = "t"
timezone = "UTC"

[[groups]]
key = "main"
platform = "console"
id = "main"

[[rules]]
type = "entry"
member_invites = "enough"
"""
    adapter = LinkMaker()
    app, _ = memory_app(
        config_text=config, adapters={"console": adapter}, plugins=make_plugin_manager(), start=T0
    )
    app.open()
    await app.feed([joined(1, "ana")])
    made = CreateInviteLink(
        action_id="a-invite",
        platform="console",
        group="main",
        user="ana",
        source="campaign:referral",
        reason="ana's link",
        name="ana",
    )
    await app.engine.queue_actions([made])
    await app.dispatcher.drain()

    def request(n: int, user: str, invite: str) -> JoinRequested:
        return JoinRequested(
            event_id=f"r{n}",
            platform="console",
            group="main",
            user=user,
            at=T0 + timedelta(minutes=n),
            invite=invite,
        )

    await app.feed([request(1, "bo", "https://t.example/+ana"), request(2, "cy", "https://x/+z")])
    decided = {(type(a), a.user) for a in outbox(app) if isinstance(a, ApproveJoin | DeclineJoin)}
    assert decided == {(ApproveJoin, "bo"), (DeclineJoin, "cy")}
