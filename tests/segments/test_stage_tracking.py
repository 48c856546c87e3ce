"""The engine keeps each member's lifecycle stage and tells hooks and campaigns."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from communitykit import Decision, Kick, Member, MemberStatus, Stage, TickContext, stage_of
from communitykit._segments import member_stage
from communitykit.app import CommunityApp
from communitykit.engine import LIFECYCLE_STATE
from communitykit.model import last_return
from communitykit.testing import HookRecorder, memory_app
from tests.segments.helpers import joined, left, posted

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
DAY = timedelta(days=1)


def changes(recorder: HookRecorder, who: str) -> list[tuple[Stage | None, Stage]]:
    return [
        (call["old"], call["new"])
        for call in recorder.calls("communitykit_stage_changed")
        if call["member"].member_id == who
    ]


async def tracked() -> tuple[CommunityApp, Any, HookRecorder]:
    app, clock = memory_app(start=T0)
    recorder = HookRecorder()
    app.register_plugin(recorder, name="recorder")
    app.open(with_adapters=False)
    return app, clock, recorder


async def test_the_hook_fires_once_per_change_through_a_members_whole_life() -> None:
    app, clock, recorder = await tracked()
    await app.feed([joined("ana", T0)])
    await app.feed([posted("ana", T0 + timedelta(hours=1))])  # still new: no change
    # time passes: the daily sweep finds her active (new no more), then silent, churned
    await app.engine.advance_to(T0 + 60 * DAY, clock.set)
    back = T0 + 60 * DAY + timedelta(hours=1)
    await app.feed([posted("ana", back)])
    await app.feed([posted("ana", back + timedelta(minutes=5))])  # no change: once only
    await app.engine.advance_to(back + 10 * DAY, clock.set)
    await app.feed([posted("ana", back + 10 * DAY)])  # keeps her active past the recall
    await app.engine.advance_to(back + 20 * DAY, clock.set)
    await app.feed([left("ana", back + 20 * DAY + timedelta(hours=1))])
    await app.engine.advance_to(back + 30 * DAY, clock.set)  # left stays left
    assert changes(recorder, "console:ana") == [
        (None, Stage.NEW),
        (Stage.NEW, Stage.ACTIVE),
        (Stage.ACTIVE, Stage.SILENT),
        (Stage.SILENT, Stage.CHURNED),
        (Stage.CHURNED, Stage.RECALLED),
        (Stage.RECALLED, Stage.ACTIVE),
        (Stage.ACTIVE, Stage.LEFT),
    ]
    calls = recorder.calls("communitykit_stage_changed")
    recalled = next(c for c in calls if c["new"] is Stage.RECALLED)
    assert recalled["at"] == back
    # sweeps happen at midnight in the community's time zone
    swept = [c["at"] for c in calls if c["new"] in (Stage.SILENT, Stage.CHURNED)]
    assert all((moment.hour, moment.minute) == (0, 0) for moment in swept)


async def test_a_member_back_after_a_long_silence_is_in_the_recalled_segment() -> None:
    app, clock, _ = await tracked()
    await app.feed([joined("ana", T0), joined("bo", T0)])
    await app.feed([posted("ana", T0 + DAY), posted("bo", T0 + DAY)])
    later = T0 + 30 * DAY
    clock.set(later)
    await app.feed([posted("bo", T0 + 12 * DAY), posted("bo", T0 + 24 * DAY)])  # short gaps
    await app.feed([posted("ana", later)])
    assert app.segment("recalled") == {"console:ana"}
    assert app.segment("active") == {"console:bo"}
    assert app.engine.stage_record("console:ana") == (Stage.RECALLED, later)
    stored = {(rule, member): state for rule, member, state in app.store.load_rule_states()}
    assert stored[(LIFECYCLE_STATE, "console:ana")] == {
        "stage": "recalled",
        "returned": later.isoformat(),
    }
    app.engine.load()  # what was stored comes back
    assert app.engine.stage_record("console:ana") == (Stage.RECALLED, later)
    assert app.engine.stage_record("console:bo") == (Stage.ACTIVE, None)


class Watcher:
    """A campaign that greets members who come back."""

    name = "watcher"
    event_types: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self.seen: list[tuple[str, Stage | None, Stage]] = []

    def on_event(self, ctx: Any) -> None:
        return None

    def next_run(self, after: datetime | None) -> None:
        return None

    def on_schedule(self, ctx: TickContext) -> Iterable[Decision]:
        return ()

    def on_stage_changed(
        self, ctx: TickContext, member: Member, old: Stage | None, new: Stage
    ) -> Decision | None:
        self.seen.append((member.member_id, old, new))
        if new is Stage.RECALLED:
            return Decision(
                source="campaign:watcher",
                explanation="welcome back",
                member=member.member_id,
                add_tags=frozenset({"came-back"}),
            )
        return None


async def test_campaigns_that_watch_stage_changes_are_told_and_their_decisions_apply() -> None:
    watcher = Watcher()
    app, clock = memory_app(start=T0, campaigns=[watcher])
    app.open(with_adapters=False)
    await app.feed([joined("ana", T0)])
    later = T0 + 20 * DAY
    clock.set(later)
    await app.feed([posted("ana", later)])
    assert watcher.seen == [
        ("console:ana", None, Stage.NEW),
        ("console:ana", Stage.NEW, Stage.RECALLED),
    ]
    assert "came-back" in app.get_member("console:ana").tags
    assert app.segment("tag:came-back") == {"console:ana"}


# ----------------------------------------------------------------- agreement

USERS = ["u0", "u1", "u2"]
steps = st.lists(
    st.tuples(
        st.sampled_from(USERS),
        st.sampled_from(["join", "post", "post", "post", "leave"]),
        st.integers(1, 24 * 25),  # hours after the previous event
    ),
    max_size=14,
)


@settings(max_examples=40, deadline=None)
@given(steps, st.integers(0, 40))
def test_live_stage_tracking_agrees_with_the_pure_function_after_random_events(
    script: list[tuple[str, str, int]], idle_days: int
) -> None:
    async def run() -> None:
        app, clock = memory_app(start=T0)
        app.open(with_adapters=False)
        at = T0
        activity: dict[str, list[datetime]] = {}
        for user, kind, hours in script:
            at += timedelta(hours=hours)
            clock.set(at)
            await app.engine.run_due()
            if kind == "join":
                event: Any = joined(user, at)
            elif kind == "leave":
                event = left(user, at)
            else:
                event = posted(user, at)
                activity.setdefault(f"console:{user}", []).append(at)
            await app.feed([event])
            await app.engine.run_due()
        end = at + timedelta(days=idle_days)
        await app.engine.advance_to(end, clock.set)
        engine = app.engine
        for member in engine.graph:
            mine = activity.get(member.member_id, [])
            returned = last_return(member.joined_at, mine, engine.lifecycle)
            expected = stage_of(
                now=end,
                joined_at=member.joined_at,
                status=member.status,
                last_active_at=mine[-1] if mine else None,
                returned_at=returned,
                settings=engine.lifecycle,
            )
            assert member_stage(engine, member.member_id, end, engine.lifecycle) is expected
            # what the engine stored is the stage at its last look (an event or a sweep)
            stored_stage, _ = engine.stage_record(member.member_id)
            stored = {"stage": stored_stage.value if stored_stage else None}
            last_look = max(
                [m for m in [*mine, member.joined_at, member.left_at] if m is not None]
                + [_last_midnight(end)]
            )
            if last_look <= end:
                assert (
                    stored["stage"]
                    == stage_of(
                        now=last_look,
                        joined_at=member.joined_at,
                        status=member.status,
                        last_active_at=mine[-1] if mine else None,
                        returned_at=returned,
                        settings=engine.lifecycle,
                    ).value
                )
            if member.status in (MemberStatus.LEFT, MemberStatus.BANNED):
                assert stored["stage"] == "left"

    asyncio.run(run())


def _last_midnight(moment: datetime) -> datetime:
    day = moment.astimezone(UTC).date()
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


class Bouncer:
    """A rule that kicks whoever posts a message whose id says "spam"."""

    name = "bouncer"
    event_types = frozenset({"message_posted"})

    def evaluate(self, ctx: Any) -> Decision | None:
        if not getattr(ctx.event, "message_id", "").startswith("spam"):
            return None
        kick = ctx.action(Kick, "rule:bouncer", "spam")
        return Decision(source="rule:bouncer", explanation="spam", actions=(kick,))


CONFIG_ONE_GROUP = """
[community]
name = "one group"
timezone = "UTC"

[[groups]]
key = "main"
platform = "console"
id = "g1"
"""


@pytest.mark.parametrize("first_stage", [Stage.NEW, Stage.ACTIVE, Stage.RECALLED])
async def test_a_member_kicked_out_of_their_last_group_is_left_at_once(
    first_stage: Stage,
) -> None:
    app, clock = memory_app(start=T0, rules=[Bouncer()], config_text=CONFIG_ONE_GROUP)
    recorder = HookRecorder()
    app.register_plugin(recorder, name="recorder")
    app.open(with_adapters=False)
    await app.feed([joined("ana", T0)])
    at = T0 + timedelta(hours=1)
    if first_stage is not Stage.NEW:
        await app.engine.advance_to(T0 + 40 * DAY, clock.set)  # silent by now
        at = T0 + 40 * DAY + timedelta(hours=1)
        await app.feed([posted("ana", at)])  # back: recalled
        if first_stage is Stage.ACTIVE:
            await app.feed([posted("ana", at + 10 * DAY)])  # no return: still recalled
            await app.engine.advance_to(at + 15 * DAY, clock.set)  # recalled no more
            at += 15 * DAY + timedelta(hours=1)
            await app.feed([posted("ana", at)])
    assert app.engine.stage_record("console:ana")[0] is first_stage
    kicked_at = at + timedelta(minutes=5)
    clock.set(kicked_at)
    # within active_days of her last activity, in the same stage as before: the
    # stage is only right if the kick itself moved it
    await app.feed([posted("ana", kicked_at, message_id="spam-1")])
    member = app.engine.graph.get("console:ana")
    assert member.status is MemberStatus.LEFT
    assert app.engine.stage_record("console:ana")[0] is Stage.LEFT
    assert changes(recorder, "console:ana")[-1] == (first_stage, Stage.LEFT)
    # and what stage_of says from the stored facts agrees
    state = app.engine.states["console:ana"]
    assert (
        stage_of(
            now=kicked_at,
            joined_at=member.joined_at,
            status=member.status,
            last_active_at=state.last_active_at,
        )
        is Stage.LEFT
    )
