"""Moderation at its edges: schedules in a running community, exempt members with
something pending, removals the platform refuses, bad decisions, odd times, and
changes from the command line while the community runs."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest

from communitykit import (
    Decision,
    DeleteMessage,
    Kick,
    MemberJoined,
    MessageEdited,
    ModelError,
    RuleContext,
    parse_duration,
)
from communitykit.cli import main
from communitykit.testing import memory_app

from .doubles import PermanentFailure, ScriptedAdapter
from .test_moderation import T0, build, joined, outbox, say

pytestmark = pytest.mark.anyio

SCENARIOS = Path(__file__).parents[1] / "rules" / "scenarios"

CAPTCHA = """
[community]
name = "t"
timezone = "UTC"

[[groups]]
key = "main"
platform = "console"
id = "main"

[[rules]]
type = "captcha"
timeout = "1s"
"""


async def test_a_running_community_runs_scheduled_rules_on_its_own() -> None:
    from communitykit import CommunityApp, make_plugin_manager, parse_config
    from communitykit.store import MemoryStore

    config = parse_config(CAPTCHA)
    store = MemoryStore()
    store.open()
    adapter = ScriptedAdapter()
    app = CommunityApp(
        config, plugins=make_plugin_manager(), store=store, adapters={"console": adapter}
    )  # the wall clock: the deadline passes while the community runs
    async with app:
        now = app.clock.now()
        await app.feed(
            [MemberJoined(event_id="j", platform="console", group="main", user="ana", at=now)]
        )
        async with asyncio.timeout(15):
            while not any(isinstance(a, Kick) for a in adapter.performed):
                await asyncio.sleep(0.05)  # waiting for the outcome, not for luck
    kick = next(a for a in adapter.performed if isinstance(a, Kick))
    assert kick.user == "ana" and kick.source == "rule:captcha"


def test_a_member_exempted_while_a_captcha_is_pending_does_not_stall_the_others(
    capsys: pytest.CaptureFixture[str],
) -> None:
    config, events = SCENARIOS / "captcha_exempt.toml", SCENARIOS / "captcha_exempt.jsonl"
    assert main(["rules", "check", str(config), str(events)]) == 0
    verdicts = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    kicks = [(v["member"], v["at"]) for v in verdicts if v["actions"][0]["type"] == "kick"]
    # ana paid before her deadline (paid members are exempt): only bob is removed
    assert kicks == [("console:bob", "2026-03-01T10:07:00+00:00")]


async def test_a_removal_the_platform_refuses_leaves_the_member_in_the_group() -> None:
    app, _, adapter = build()
    await app.feed([joined(1, "ana")])
    for n in range(3):  # warn, mute, kick
        await app.feed([say(n, "bad", at=T0 + timedelta(minutes=n + 1))])
    assert app.engine.moderation.group_size("main") == 0  # out as soon as decided

    async def refuse_kicks(action: Any) -> Any:
        if isinstance(action, Kick):
            raise PermanentFailure("cannot remove an administrator of the chat")
        return await ScriptedAdapter.perform(adapter, action)

    adapter.perform = refuse_kicks  # type: ignore[method-assign]
    await app.dispatcher.drain()
    assert app.engine.moderation.group_size("main") == 1
    assert app.get_member("console:ana").status.value == "active"


class Broken:
    """Remembers something that is not JSON."""

    name = "broken"
    event_types: ClassVar[frozenset[str]] = frozenset({"message_posted"})

    def evaluate(self, ctx: RuleContext) -> Decision | None:
        return Decision(source="rule:broken", explanation="x", state={"when": object()})


async def test_a_bad_decision_is_the_rules_failure_and_the_batch_goes_on() -> None:
    app, _ = memory_app(adapters={"console": ScriptedAdapter()}, rules=[Broken()], start=T0)
    app.open()
    result = await app.feed([say(1, "a", user="ana"), say(2, "b", user="bo")])
    assert result.recorded == 2 and app.store.count_events() == 2
    assert app.engine.moderation.state("broken", "console:ana") == {}


class Strict:
    name = "strict"
    event_types: ClassVar[frozenset[str]] = frozenset({"message_posted"})

    def evaluate(self, ctx: RuleContext) -> Decision | None:
        return Decision(source="rule:strict", explanation="acted", strike=True)


async def test_rules_given_in_code_leave_owners_and_admins_alone() -> None:
    app, _ = memory_app(adapters={"console": ScriptedAdapter()}, rules=[Strict()], start=T0)
    app.open()
    await app.feed([joined(1, "boss"), joined(2, "ana")])
    await app.set_role("console:boss", "owner")
    await app.feed([say(1, "x", user="boss"), say(2, "y", user="ana")])
    assert {a.user for a in outbox(app)} == {"ana"}


async def test_events_from_before_1970_or_after_2200_are_refused() -> None:
    app, _, _ = build()
    far = say(1, "bad", at=datetime(9999, 1, 1, tzinfo=UTC))
    old = say(2, "bad", at=datetime(1026, 1, 1, tzinfo=UTC))
    result = await app.feed([far, old])
    assert (result.recorded, result.rejected) == (0, 2)


async def test_a_late_event_does_not_revive_decayed_warnings() -> None:
    app, clock, _ = build()  # warnings decay after 7 days
    await app.feed([say(1, "bad", at=T0), say(2, "bad", at=T0 + timedelta(days=1))])
    clock.set(T0 + timedelta(days=30))
    await app.feed([say(3, "bad, told late", at=T0 + timedelta(days=2))])
    steps = [type(a).__name__ for a in outbox(app) if not isinstance(a, DeleteMessage)]
    assert steps == ["Warn", "Mute", "Warn"]  # judged now: the first two have decayed


async def test_a_pardon_does_not_let_an_old_message_count_again() -> None:
    app, _, _ = build()
    await app.feed([say(1, "bad")])
    await app.pardon("console:ana")
    edit = MessageEdited(
        event_id="x1",
        platform="console",
        group="main",
        user="ana",
        at=T0 + timedelta(minutes=1),
        message_id="1",
        text="bad still",
    )
    await app.feed([edit])
    assert app.warnings("console:ana") == 0


def test_durations_beyond_a_hundred_years_are_refused() -> None:
    assert parse_duration("5200w") == timedelta(weeks=5200)
    for bad in ("9999999d", 10**12, "0s", -5, "1y"):
        with pytest.raises(ModelError):
            parse_duration(bad)


def test_a_line_that_is_not_utf8_is_reported_and_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "events.jsonl"
    good = (SCENARIOS / "content.jsonl").read_bytes().splitlines()[0]
    events.write_bytes(good + b"\n" + b'{"type": "\xff\xfe"}\n')
    assert main(["rules", "check", str(SCENARIOS / "content.toml"), str(events)]) == 0
    assert f"{events}:2: skipped" in capsys.readouterr().err


def test_changes_from_the_command_line_wait_for_a_running_community(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import time

    from communitykit import CommunityApp
    from communitykit.store import Batch

    config = tmp_path / "community.toml"
    config.write_text((SCENARIOS / "content.toml").read_text() + "\n[platforms.console]\n")
    app = CommunityApp.from_file(config)
    app.open(with_adapters=False)
    beat = {"pid": os.getpid() + 1, "host": "elsewhere", "at": time.time()}
    app.store.commit(Batch(meta={"runner": json.dumps(beat)}))
    app.close()
    for command in (
        ["members", "role", str(config), "console:ana", "admin"],
        ["rules", "pardon", str(config), "console:ana"],
        ["points", "award", str(config), "console:ana", "5", "--reason", "x"],
    ):
        assert main(command) == 1
        assert "the community is running" in capsys.readouterr().err


class MakeUpCard:
    """On /makeup, takes 10 points and gives a tag (a decision that spends)."""

    name = "makeup"
    event_types: ClassVar[frozenset[str]] = frozenset({"command_invoked"})

    def evaluate(self, ctx: RuleContext) -> Decision | None:
        from communitykit import SpendPoints

        key = ctx.award_key("makeup")
        return Decision(
            source="campaign:makeup",
            explanation="a make-up card",
            spends=(SpendPoints(member=ctx.member_id, points=10, reason="makeup", key=key),),
            add_tags={"made-up"},
        )


async def test_a_decision_that_spends_applies_only_when_paid_and_only_once() -> None:
    from communitykit import CommandInvoked

    app, _ = memory_app(adapters={"console": ScriptedAdapter()}, rules=[MakeUpCard()], start=T0)
    app.open()

    def makeup(n: int) -> CommandInvoked:
        return CommandInvoked(
            event_id=f"c{n}",
            platform="console",
            group="main",
            user="ana",
            at=T0 + timedelta(minutes=n),
            command="makeup",
            args=(),
        )

    await app.feed([joined(1, "ana")])
    await app.feed([makeup(1)])  # no points yet: nothing happens
    assert "made-up" not in app.get_member("console:ana").tags
    await app.award("console:ana", 15, reason="bonus", key="b1")
    await app.feed([makeup(2)])
    assert app.balance("console:ana") == 5
    assert "made-up" in app.get_member("console:ana").tags
    await app.feed([makeup(2)])  # the same event again: paid once
    assert app.balance("console:ana") == 5


class CheckinPays:
    """Pays 5 points with the check-in reason on /checkin, once a day."""

    name = "checkin-pays"
    event_types: ClassVar[frozenset[str]] = frozenset({"command_invoked"})

    def evaluate(self, ctx: RuleContext) -> Decision | None:
        from communitykit import AwardPoints

        day = ctx.event.at.date().isoformat()
        award = AwardPoints(
            member=ctx.member_id, points=5, reason="checkin", key=f"ci:{ctx.member_id}:{day}"
        )
        return Decision(source="campaign:checkin", explanation="checked in", awards=(award,))


async def test_a_tier_that_asks_for_checkins_counts_the_paid_checkins_in_its_window() -> None:
    from communitykit import CommandInvoked

    config = """
[community]
name = "t"
timezone = "UTC"

[points]
message = 0
reaction_received = 0

[tiers]
window_days = 30

[[tiers.ladder]]
name = "base"
threshold = 0

[[tiers.ladder]]
name = "regular"
threshold = 10
min_checkins = 3
"""
    app, _ = memory_app(
        config_text=config, adapters={"console": ScriptedAdapter()}, rules=[CheckinPays()], start=T0
    )
    app.open()
    await app.feed([joined(1, "ana")])
    for day in range(3):
        checkin = CommandInvoked(
            event_id=f"c{day}",
            platform="console",
            group="main",
            user="ana",
            at=T0 + timedelta(days=day),
            command="checkin",
            args=(),
        )
        await app.feed([checkin])
        expected = "regular" if day == 2 else "base"  # 10 points after two, 3 check-ins after three
        assert app.tier("console:ana") == expected
    ledger = app.engine.ledger
    later = T0 + timedelta(days=40)
    assert ledger.count_credits("console:ana", "checkin", now=later) == 3
    assert ledger.count_credits("console:ana", "checkin", now=later, window=timedelta(days=39)) == 1


class Deadlines:
    """A campaign whose moments come from what it remembers: /remind sets one."""

    name = "deadlines"
    event_types: ClassVar[frozenset[str]] = frozenset({"command_invoked"})

    def on_event(self, ctx: RuleContext) -> Decision | None:
        due = (ctx.event.at + timedelta(hours=2)).isoformat()
        inviter = ctx.rule_state(self.name, "console:ana")  # another member's memory
        return Decision(
            source="campaign:deadlines",
            explanation="noted",
            state={"due": due, "ana_had": bool(inviter)},
        )

    def next_run(self, after: datetime | None, tick: Any) -> datetime | None:
        dues = [datetime.fromisoformat(s["due"]) for _m, s in tick.rule_states(self.name)]
        later = [d for d in dues if after is None or d > after]
        return min(later, default=None)

    def on_schedule(self, tick: Any) -> list[Decision]:
        return [
            Decision(
                source="campaign:deadlines",
                explanation="due",
                member=member_id,
                add_tags={"was-reminded"},
            )
            for member_id, state in tick.rule_states(self.name)
            if datetime.fromisoformat(state["due"]) <= tick.now
        ]


async def test_a_campaign_finds_its_moments_in_what_it_remembers() -> None:
    from communitykit import CommandInvoked

    app, clock = memory_app(
        adapters={"console": ScriptedAdapter()}, campaigns=[Deadlines()], start=T0
    )
    app.open()

    def remind(n: int, user: str) -> CommandInvoked:
        return CommandInvoked(
            event_id=f"r{n}",
            platform="console",
            group="main",
            user=user,
            at=T0,
            command="remind",
            args=(),
        )

    await app.feed([remind(1, "ana")])
    await app.feed([remind(2, "bo")])
    assert app.engine.moderation.state("deadlines", "console:bo")["ana_had"] is True
    assert app.engine.next_due() == T0 + timedelta(hours=2)
    await app.engine.advance_to(T0 + timedelta(hours=3), clock.set)
    assert "was-reminded" in app.get_member("console:ana").tags
    assert "was-reminded" in app.get_member("console:bo").tags
