# ruff: noqa: RUF001
"""The ``recall`` campaign type: silent members are contacted a few times, opt-outs
are respected, returns are recorded; on its own and through the engine."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import attrs
import pytest

from communitykit import MemberJoined, SendDirectMessage, SendMessage
from communitykit._errors import ModelError
from communitykit.builtins.campaigns.cohorts import RecallCampaign, recall_numbers
from communitykit.testing import memory_app
from tests.campaigns.test_training_camp import NO_DMS, World, local, texts
from tests.engine.doubles import ScriptedAdapter

JOINED = local(date(2026, 2, 1), 10)


def recall(**settings: Any) -> RecallCampaign:
    return RecallCampaign.from_settings({"timezone": "America/New_York", **settings})


def evening(day: date) -> datetime:
    return local(day, 19)


@pytest.mark.parametrize(
    ("settings", "found"),
    [
        ({"silent_days": 0}, "silent_days must be a whole number >= 1"),
        ({"at": "七点"}, "at must be a local time"),
        ({"message": "{name} {weeks}"}, "unknown: weeks"),
        ({"stop_command": "stop recall"}, "stop_command must be a command name"),
        ({"timezone": "Mars/Base"}, "timezone must be an IANA time zone"),
        ({"often": 1}, "unknown settings: often"),
    ],
)
def test_bad_settings_are_refused_naming_the_campaign_and_key(
    settings: dict[str, Any], found: str
) -> None:
    with pytest.raises(ModelError, match="recall campaign") as caught:
        recall(**settings)
    assert found in str(caught.value)


def test_the_daily_moment_is_local_across_the_clock_change() -> None:
    r = recall()
    first = r.next_run(datetime(2026, 3, 7, 12, 0, tzinfo=UTC))
    assert first == datetime(2026, 3, 8, 0, 0, tzinfo=UTC)  # 19:00 EST
    assert r.next_run(first) == datetime(2026, 3, 8, 23, 0, tzinfo=UTC)  # 19:00 EDT
    assert r.next_run(None) is None


def test_a_silent_member_gets_a_direct_message_with_a_mention_as_fallback() -> None:
    world = World(recall())
    world.join("ana", "安娜", at=JOINED)
    world.join("bo", "博", at=JOINED)
    world.join("cy", "晨", at=JOINED, left=local(date(2026, 2, 20)))
    world.join("di", "迪", at=JOINED)
    world.people["console:di"] = attrs.evolve(world.people["console:di"], status="banned")
    world.feed(world.say("bo", local(date(2026, 3, 1), 9), "我还在"))
    decisions = world.tick(evening(date(2026, 3, 8)))
    assert [d.member for d in decisions] == ["console:ana"]
    (dm,) = decisions[0].actions
    assert isinstance(dm, SendDirectMessage) and dm.user == "ana"
    assert dm.text == "安娜，好久不见！你已经 35 天没来群里了，大家都很想你 😊"
    (mention,) = decisions[0].fallbacks[dm.action_id]
    assert isinstance(mention, SendMessage) and mention.group == "g1"
    assert world.states["console:ana"]["tries"] == 1
    only_mentions = World(recall(message="{mention} 回来看看吧"))
    only_mentions.join("ana", "安娜", at=JOINED)
    assert texts(only_mentions.tick(evening(date(2026, 3, 8)), NO_DMS)) == ["@安娜 回来看看吧"]


def test_contacts_are_spaced_and_limited() -> None:
    world = World(recall(every_days=7, max_tries=3))
    world.join("ana", at=JOINED)
    moments = [n for n in range(40) if world.tick(evening(date(2026, 3, 1) + timedelta(days=n)))]
    assert moments == [0, 7, 14]
    state = world.states["console:ana"]
    assert state["tries"] == 3 and state["gave_up"] is True
    assert recall_numbers(world.states.items())["gave_up"] == 1


def test_an_opt_out_is_final() -> None:
    world = World(recall())
    world.join("ana", "安娜", at=JOINED)
    assert texts(world.feed(world.command("ana", JOINED, "stop_recall"))) == [
        "安娜，好的，以后不会再打扰你了。"
    ]
    for n in range(30):
        assert world.tick(evening(date(2026, 3, 1) + timedelta(days=n))) == []
    assert recall_numbers(world.states.items())["opted_out"] == 1


def test_a_member_active_again_within_the_window_has_returned() -> None:
    world = World(recall(return_days=7))
    world.join("ana", at=JOINED)
    world.join("bo", at=JOINED)
    world.tick(evening(date(2026, 3, 1)))
    world.feed(world.say("ana", local(date(2026, 3, 3), 9), "我回来了"))
    world.feed(world.say("ana", local(date(2026, 3, 4), 9), "还在"))  # one return
    world.feed(world.say("bo", local(date(2026, 3, 9), 9), "晚了"))  # 8 days later
    assert world.states["console:ana"]["returns"] == 1
    assert "returned" not in world.states["console:bo"]
    # ana is active again: no second recall; bo was active too, within 14 days
    assert world.tick(evening(date(2026, 3, 10))) == []
    numbers = recall_numbers(world.states.items())
    assert numbers == {
        "contacted": 2,
        "returned": 1,
        "return_rate": 0.5,
        "opted_out": 0,
        "gave_up": 0,
        "messages": 2,
    }


def test_recall_numbers_of_nothing() -> None:
    empty: list[tuple[str, Mapping[str, Any]]] = []
    assert recall_numbers(empty)["return_rate"] == 0.0


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
type = "recall"
silent_days = 14
message = "{name}，{days} 天没见了，回来看看吧！"
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_through_the_engine_a_silent_member_is_recalled_and_returns() -> None:
    start = local(date(2026, 2, 20), 10)
    app, clock = memory_app(
        config_text=CONFIG, adapters={"console": ScriptedAdapter()}, start=start
    )
    app.open()
    world = World(recall())  # only to build events
    await app.feed(
        [
            MemberJoined(
                event_id=f"j-{u}", platform="console", group="g1", user=u, at=start, display_name=n
            )
            for u, n in (("ana", "安娜"), ("bo", "博"))
        ]
    )
    clock.set(local(date(2026, 3, 2), 9))
    await app.feed([world.say("ana", local(date(2026, 3, 2), 9), "大家早")])
    await app.engine.advance_to(local(date(2026, 3, 9), 20), clock.set)
    sent = [item.action for item in app.store.outbox()]
    said = [a for a in sent if isinstance(a, SendMessage | SendDirectMessage)]
    recalls = [(a.user, a.text) for a in said if a.reason == "recall a silent member"]
    # bo: silent since 2026-02-20, 14 days on 2026-03-06 (then every 7 days)
    assert recalls == [("bo", "博，14 天没见了，回来看看吧！")]
    state = app.engine.moderation.state("recall", "console:bo")
    assert state["tries"] == 1
    assert state["last"] == local(date(2026, 3, 6), 19).isoformat()
    clock.set(local(date(2026, 3, 9), 21))
    await app.feed([world.say("bo", local(date(2026, 3, 9), 21), "我回来了")])
    assert app.engine.moderation.state("recall", "console:bo")["returns"] == 1


def test_only_members_of_the_configured_groups_are_recalled() -> None:
    world = World(recall(groups=["elsewhere"]))
    world.join("ana", at=JOINED)  # in "main" only
    assert world.tick(evening(date(2026, 3, 8))) == []
    world = World(recall(groups=["main"]))
    world.join("ana", at=JOINED)
    assert [d.member for d in world.tick(evening(date(2026, 3, 8)))] == ["console:ana"]


SEGMENT_CONFIG = CONFIG.replace("silent_days = 14", 'segment = "churned and not tag:vip"').replace(
    "[points]", "[lifecycle]\nchurned_days = 20\n\n[points]"
)


@pytest.mark.anyio
async def test_through_the_engine_a_recall_by_segment_waits_for_the_members_to_enter_it() -> None:
    start = local(date(2026, 2, 20), 10)
    app, clock = memory_app(
        config_text=SEGMENT_CONFIG, adapters={"console": ScriptedAdapter()}, start=start
    )
    app.open()
    await app.feed(
        [
            MemberJoined(
                event_id=f"j-{u}", platform="console", group="g1", user=u, at=start, display_name=u
            )
            for u in ("ana", "bo", "cy")
        ]
    )
    await app.tag("console:cy", "vip")
    await app.engine.advance_to(local(date(2026, 3, 13), 20), clock.set)
    recalls = [
        (item.action.user, item.created_at.astimezone(start.tzinfo).date())
        for item in app.store.outbox()
        if getattr(item.action, "reason", "") == "recall a silent member"
    ]
    # silent from the 14th day on, churned after 20 days (2026-03-12 10:00): the
    # recall waits for the segment, and leaves the vip alone
    assert sorted(recalls) == [("ana", date(2026, 3, 12)), ("bo", date(2026, 3, 12))]
