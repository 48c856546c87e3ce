from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs

from communitykit import (
    AwardPoints,
    Decision,
    DeleteMessage,
    MemberJoined,
    MemberLeft,
    MessagePosted,
    ReactionAdded,
    RuleContext,
    SendDirectMessage,
    SendMessage,
    StoreError,
)
from communitykit.store import MemoryStore
from communitykit.testing import HookRecorder, memory_app

from .doubles import ScriptedAdapter

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

LADDER = """
[community]
name = "t"
timezone = "Asia/Shanghai"

[[groups]]
key = "main"
platform = "console"
id = "main"

[points]
message = 2
message_daily_cap = 20
reaction_received = 1

[tiers]
grace_days = 7

[[tiers.ladder]]
name = "base"
threshold = 0

[[tiers.ladder]]
name = "gold"
threshold = 10
multiplier = "1.5"
titles = { console = "Gold" }
"""


def msg(n: int, user: str = "ana", at: datetime = T0, group: str = "main") -> MessagePosted:
    return MessagePosted(
        event_id=f"m{n}",
        platform="console",
        group=group,
        user=user,
        at=at,
        message_id=str(n),
        text=f"message {n}",
    )


async def test_the_same_event_twice_is_processed_once() -> None:
    app, _ = memory_app(config_text=LADDER, adapters={"console": ScriptedAdapter()})
    first = await app.feed([msg(1), msg(1)])  # twice in one batch
    again = await app.feed([msg(1)])  # and again later
    assert (first.recorded, first.duplicates) == (1, 1)
    assert (again.recorded, again.duplicates) == (0, 1)
    assert app.balance("console:ana") == 2
    assert app.store.count_events() == 1


async def test_daily_cap_applies_after_the_tier_multiplier() -> None:
    app, _ = memory_app(config_text=LADDER, adapters={"console": ScriptedAdapter()})
    # 5 messages x 2 = 10 points: ana reaches gold (x1.5) with the fifth
    await app.feed([msg(n, at=T0 + timedelta(minutes=n)) for n in range(5)])
    assert app.tier("console:ana") == "gold"
    await app.feed([msg(10, at=T0 + timedelta(minutes=10))])
    assert app.balance("console:ana") == 13  # 2 x 1.5 = 3
    await app.feed([msg(n, at=T0 + timedelta(minutes=n)) for n in range(11, 20)])
    assert app.balance("console:ana") == 20  # the cap holds whatever the multiplier
    # the next community day (Asia/Shanghai) starts at 16:00 UTC
    await app.feed([msg(30, at=datetime(2026, 3, 1, 16, 0, tzinfo=UTC))])
    assert app.balance("console:ana") == 23


async def test_upgrade_queues_the_tier_title_and_tells_plugins() -> None:
    app, _ = memory_app(config_text=LADDER, adapters={"console": ScriptedAdapter()})
    recorder = HookRecorder()
    app.register_plugin(recorder, name="recorder")
    await app.feed([msg(n, at=T0 + timedelta(minutes=n)) for n in range(5)])
    (change,) = recorder.calls("communitykit_tier_changed")
    assert (change["old_tier"], change["new_tier"]) == ("base", "gold")
    (item,) = list(app.store.outbox())
    assert item.action.TYPE == "set_title"
    assert (item.action.user, item.action.group, item.action.title) == ("ana", "main", "Gold")


async def test_reaction_points_go_to_the_author_once_per_reactor() -> None:
    app, _ = memory_app(config_text=LADDER, adapters={"console": ScriptedAdapter()})

    def react(n: int, user: str) -> ReactionAdded:
        return ReactionAdded(
            event_id=f"r{n}",
            platform="console",
            group="main",
            user=user,
            at=T0,
            message_id="1",
            emoji="👍",
            to_user="ana",
        )

    await app.feed([msg(1), react(1, "bo"), react(2, "bo"), react(3, "cy"), react(4, "ana")])
    assert app.balance("console:ana") == 2 + 1 + 1  # bo once (toggling pays nothing), cy once
    assert app.state("console:ana").reactions_received == 3  # ana's own reaction is not counted


class Rule:
    def __init__(self, name: str, decide: Any) -> None:
        self.name = name
        self._decide = decide

    def evaluate(self, ctx: RuleContext) -> Decision | None:
        return self._decide(ctx)  # type: ignore[no-any-return]


async def test_engine_never_queues_what_the_platform_cannot_do() -> None:
    adapter = ScriptedAdapter(actions=frozenset({"send_message"}), direct_messages=False)

    def decide(ctx: RuleContext) -> Decision:
        return Decision(
            source="rule:x",
            explanation="test",
            actions=[
                ctx.action(DeleteMessage, "rule:x", "spam", message_id="1"),
                ctx.action(SendDirectMessage, "rule:x", "hello", text="hi"),
                ctx.action(SendMessage, "rule:x", "reply", text="ok"),
            ],
        )

    app, _ = memory_app(
        config_text=LADDER, adapters={"console": adapter}, rules=[Rule("x", decide)]
    )
    await app.feed([msg(1)])
    assert [i.action.TYPE for i in app.store.outbox()] == ["send_message"]


async def test_a_failing_rule_is_logged_and_the_others_still_apply() -> None:
    def broken(ctx: RuleContext) -> Decision:
        raise ZeroDivisionError("rule bug")

    app, _ = memory_app(
        config_text=LADDER, adapters={"console": ScriptedAdapter()}, rules=[Rule("bad", broken)]
    )
    with capture_logs() as logs:
        result = await app.feed([msg(1)])
    assert result.recorded == 1
    assert app.balance("console:ana") == 2
    (failure,) = [log for log in logs if log["event"] == "rule.failed"]
    assert failure["rule"] == "bad" and "rule bug" in failure["error"]


async def test_action_ids_are_stable_across_replays() -> None:
    def decide(ctx: RuleContext) -> Decision:
        return Decision(
            source="rule:echo",
            explanation="echo",
            actions=[ctx.action(SendMessage, "rule:echo", "echo", text="seen")],
        )

    ids = []
    for _ in range(2):
        app, _ = memory_app(
            config_text=LADDER,
            adapters={"console": ScriptedAdapter()},
            rules=[Rule("echo", decide)],
        )
        await app.feed([msg(1), msg(2)])
        ids.append([i.action.action_id for i in app.store.outbox()])
    assert ids[0] == ids[1]
    assert len(set(ids[0])) == 2


class FailingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.fail = False

    def commit(self, batch: Any) -> None:
        if self.fail:
            raise StoreError("disk full")
        super().commit(batch)


def failing_app(*rules: Rule) -> tuple[Any, FailingStore]:
    """An app on a store whose commits fail while its ``fail`` is set."""
    from communitykit._clock import SimulatedClock
    from communitykit.app import CommunityApp
    from communitykit.config import parse_config

    store = FailingStore()
    store.open()
    app = CommunityApp(
        parse_config(LADDER),
        store=store,
        clock=SimulatedClock(T0),
        adapters={"console": ScriptedAdapter()},
        rules=list(rules),
    )
    return app, store


async def test_a_failed_commit_leaves_no_trace_and_the_batch_can_be_retried() -> None:
    app, store = failing_app()
    await app.feed([msg(1)])
    store.fail = True
    with pytest.raises(StoreError, match="disk full"):
        await app.feed([msg(2), msg(3)])
    assert app.balance("console:ana") == 2  # the in-memory state was rolled back
    assert len(app.engine.ledger) == 1
    store.fail = False
    result = await app.feed([msg(2), msg(3)])  # the adapter delivers the batch again
    assert result.recorded == 2
    assert app.balance("console:ana") == 6


@pytest.mark.parametrize("collecting", [True, False])
async def test_a_batch_leaves_the_collector_as_it_found_it(collecting: bool) -> None:
    """The engine holds collection back during a batch, also one whose commit fails,
    and never turns on a collector the host turned off."""
    import gc

    seen: list[bool] = []

    def decide(ctx: RuleContext) -> Decision | None:
        seen.append(gc.isenabled())
        return None

    app, store = failing_app(Rule("watch", decide))
    was = gc.isenabled()
    try:
        if collecting:
            gc.enable()
        else:
            gc.disable()
        await app.feed([msg(1)])
        assert gc.isenabled() is collecting
        store.fail = True
        with pytest.raises(StoreError):
            await app.feed([msg(2)])
        assert gc.isenabled() is collecting
    finally:
        if was:
            gc.enable()
        else:
            gc.disable()
    assert seen == [False, False]  # no collection in the middle of a batch


async def test_members_join_and_leave() -> None:
    app, _ = memory_app(config_text=LADDER, adapters={"console": ScriptedAdapter()})
    recorder = HookRecorder()
    app.register_plugin(recorder, name="recorder")
    joined = MemberJoined(
        event_id="j1", platform="console", group="main", user="ana", at=T0, display_name="Ana"
    )
    left = MemberLeft(
        event_id="l1",
        platform="console",
        group="main",
        user="ana",
        at=T0 + timedelta(days=3),
        reason="kicked",
    )
    await app.feed([joined])
    member = app.member("console", "ana")
    assert member is not None
    assert (member.display_name, member.joined_at, member.status.value) == ("Ana", T0, "active")
    await app.feed([left])
    member = app.member("console", "ana")
    assert member is not None
    assert (member.status.value, member.left_at) == ("left", T0 + timedelta(days=3))
    assert [c["member"].status.value for c in recorder.calls("communitykit_member_left")] == [
        "left"
    ]


async def test_operator_award_is_idempotent_by_key() -> None:
    app, _ = memory_app(config_text=LADDER, adapters={"console": ScriptedAdapter()})
    await app.feed([msg(1)])
    first = await app.award("console:ana", 7, reason="helped a newcomer", key="op-1")
    second = await app.award("console:ana", 7, reason="helped a newcomer", key="op-1")
    assert first == second
    assert app.balance("console:ana") == 9


async def test_custom_rule_decisions_award_with_multiplier_and_tags() -> None:
    def decide(ctx: RuleContext) -> Decision | None:
        if not isinstance(ctx.event, MessagePosted) or "#homework" not in ctx.event.text:
            return None
        return Decision(
            source="rule:homework",
            explanation="homework handed in",
            awards=[
                AwardPoints(
                    member=ctx.member.member_id,
                    points=5,
                    reason="homework",
                    key=ctx.award_key("homework"),
                )
            ],
            add_tags={"homework"},
        )

    app, _ = memory_app(
        config_text=LADDER,
        adapters={"console": ScriptedAdapter()},
        rules=[Rule("homework", decide)],
    )
    event = MessagePosted(
        event_id="h1",
        platform="console",
        group="main",
        user="ana",
        at=T0,
        message_id="9",
        text="done #homework",
    )
    await app.feed([event])
    assert app.balance("console:ana") == 2 + 5
    member = app.member("console", "ana")
    assert member is not None and member.tags == {"homework"}


async def test_an_unusable_event_is_rejected_and_the_rest_of_the_batch_goes_on() -> None:
    app, _ = memory_app(config_text=LADDER, adapters={"console": ScriptedAdapter()})
    nobody = MessagePosted(
        event_id="m9", platform="console", group="main", user="", at=T0, message_id="9", text="?"
    )
    with capture_logs() as logs:
        result = await app.feed([msg(1), nobody, msg(2)])
    assert (result.recorded, result.rejected) == (2, 1)
    assert app.balance("console:ana") == 4
    (rejected,) = [log for log in logs if log["event"] == "event.rejected"]
    assert (rejected["event_id"], rejected["problem"]) == ("m9", "no user")


async def test_a_rule_bug_that_escapes_leaves_the_state_as_stored() -> None:
    app, _ = memory_app(config_text=LADDER, adapters={"console": ScriptedAdapter()})
    await app.feed([msg(1)])

    award = app.engine._award_to

    def explode(*args: Any, **kwargs: Any) -> None:
        award(*args, **kwargs)  # msg(2)'s points are in the working ledger, then:
        raise MemoryError("simulated")

    app.engine._award_to = explode  # type: ignore[method-assign]
    with pytest.raises(MemoryError):
        await app.feed([msg(2), msg(3)])
    assert app.balance("console:ana") == 2  # the half-processed batch left no trace
    assert len(app.engine.ledger) == 1
    assert app.store.count_events() == 1


async def test_every_member_query_refuses_an_unknown_id_alike() -> None:
    from communitykit import UnknownMember

    app, _ = memory_app(config_text=LADDER, adapters={"console": ScriptedAdapter()})
    await app.feed([msg(1)])
    assert app.balance("console:ana") == 2
    for query in (app.balance, app.tier, app.history, app.state, app.get_member):
        with pytest.raises(UnknownMember, match="console:nobody"):
            query("console:nobody")
