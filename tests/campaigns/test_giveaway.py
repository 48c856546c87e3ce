"""The ``giveaway`` campaign type: the draw, its commitment, entries, the schedule."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from communitykit import (
    Action,
    Capabilities,
    CommandInvoked,
    MemberJoined,
    MemberState,
    MemberStatus,
    Role,
    Secret,
    SendDirectMessage,
    SendMessage,
    TickContext,
)
from communitykit._errors import ModelError
from communitykit.builtins.campaigns.giveaway import (
    RESULT_KEY,
    GiveawayCampaign,
    draw,
    verify,
    verify_draw,
)
from communitykit.model._draws import commitment
from communitykit.testing import memory_app
from tests.engine.doubles import ScriptedAdapter
from tests.rules.membership_helpers import EVERYTHING, FakeSource, community, member

from .helpers import context

SEED = "一个足够长的秘密种子-giveaway-2026"
OPENS = datetime(2026, 3, 7, 20, 0, tzinfo=UTC)
DRAWS = datetime(2026, 3, 8, 20, 0, tzinfo=UTC)


def giveaway(**settings: Any) -> GiveawayCampaign:
    base: dict[str, Any] = {
        "opens": OPENS.isoformat(),
        "draws": DRAWS.isoformat(),
        "seed": SEED,
        "group": "main",
    }
    base.update(settings)
    return GiveawayCampaign.from_settings({k: v for k, v in base.items() if v is not None})


def enter(n: int, user: str, at: datetime, command: str = "join_giveaway") -> CommandInvoked:
    return CommandInvoked(
        event_id=f"c{n}", platform="tg", group="-1", user=user, at=at, command=command, args=()
    )


def text(action: Action) -> str:
    assert isinstance(action, SendMessage | SendDirectMessage)
    return action.text


ids = st.lists(st.text("abcdefgh0123", min_size=1, max_size=6), unique=True, max_size=30)


# ----------------------------------------------------------------- the draw


@given(seed=st.text(min_size=1), eligible=ids, k=st.integers(0, 40))
def test_a_draw_is_reproducible_from_its_seed(seed: str, eligible: list[str], k: int) -> None:
    first = draw(seed, eligible, k)
    assert draw(seed, list(reversed(eligible)), k) == first  # the order given does not matter
    assert verify(seed, commitment(seed), eligible, first)
    assert verify_draw(seed, commitment(seed), eligible, first)[0]


@given(seed=st.text(min_size=1), eligible=ids, k=st.integers(0, 40))
def test_a_draw_never_picks_an_ineligible_member_or_the_same_member_twice(
    seed: str, eligible: list[str], k: int
) -> None:
    winners = draw(seed, eligible + eligible[:3], k)  # duplicates count once
    assert set(winners) <= set(eligible)
    assert len(winners) == len(set(winners)) == min(k, len(eligible))


def test_a_draw_is_uniform_enough() -> None:
    people = ["m1", "m2", "m3", "m4", "m5"]
    wins = Counter(draw(f"seed-{i}", people, 1)[0] for i in range(200))
    assert set(wins) == set(people)
    assert min(wins.values()) >= 20  # 40 expected each; far from any bias


def test_a_draw_is_pinned_so_its_algorithm_never_changes_silently() -> None:
    assert draw("seed", ["a", "b", "c", "d", "e"], 5) == draw("seed", ["e", "d", "c", "b", "a"], 5)
    assert (
        draw("seed", ["a", "b", "c", "d", "e"], 2) == draw("seed", ["a", "b", "c", "d", "e"], 5)[:2]
    )
    assert draw("seed", [], 3) == []


def test_verify_refuses_a_wrong_seed_wrong_winners_or_a_wrong_order() -> None:
    eligible = ["m1", "m2", "m3", "m4", "m5", "m6"]
    winners = draw(SEED, eligible, 3)
    assert not verify("another seed entirely", commitment(SEED), eligible, winners)
    assert not verify(SEED, commitment(SEED), eligible, [*winners[:2], "m9"])
    assert not verify(SEED, commitment(SEED), eligible, list(reversed(winners)))
    assert verify(SEED, commitment(SEED).upper(), eligible, winners)


def test_verify_draw_reads_an_eligible_file_and_says_why() -> None:
    eligible = ["m1", "m2", "m3", "m4"]
    winners = draw(SEED, eligible, 2)
    lines = ["# eligible members\n", "m3\n", "\n", "m1\n", "m4\n", "m2\n"]
    ok, why = verify_draw(SEED, commitment(SEED), lines, winners)
    assert ok and "verified" in why and "4 eligible" in why
    ok, why = verify_draw("wrong seed of some length", commitment(SEED), lines, winners)
    assert not ok and "commitment" in why
    ok, why = verify_draw(SEED, commitment(SEED), lines, ["m9"])
    assert not ok and "m9" in why
    other = next(m for m in eligible if m not in winners)
    ok, why = verify_draw(SEED, commitment(SEED), lines, [winners[0], other])
    assert not ok and "gives" in why


# ------------------------------------------------------------------ settings


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"opens": "tomorrow"}, ["opens", "ISO time", "tomorrow"]),
        ({"opens": "2026-03-07T20:00:00"}, ["opens", "offset"]),
        ({"draws": OPENS.isoformat()}, ["draws must come after opens"]),
        ({"seed": None}, ["seed is required"]),
        ({"seed": "short"}, ["seed", "at least 16"]),
        ({"seed": 12345678901234567890}, ["seed", "must be a text"]),
        ({"group": None}, ["group"]),
        ({"winners": 0}, ["winners"]),
        ({"entry": "lottery"}, ["entry", "lottery"]),
        ({"entry": "segment", "eligible": "vip"}, ["eligible", "tier:<name>", "vip"]),
        ({"eligible": "tag:vip"}, ["eligible applies to entry = 'segment'"]),
        ({"command": "/join"}, ["command", "/join"]),
        ({"announce": "{seed}"}, ["announce", "unknown: seed"]),
        ({"prize_points": -1}, ["prize_points"]),
        ({"colour": "red"}, ["unknown settings: colour"]),
    ],
)
def test_bad_settings_name_the_key_and_never_show_the_seed(
    settings: Mapping[str, Any], words: list[str]
) -> None:
    with pytest.raises(ModelError) as caught:
        giveaway(**settings)
    message = str(caught.value)
    assert "giveaway" in message
    for word in words:
        assert word in message
    assert SEED not in message and "short" not in message.replace("shorter", "")


def test_the_seed_is_accepted_as_a_secret_and_never_shown_in_a_repr() -> None:
    campaign = giveaway(seed=Secret(SEED))
    assert campaign.commitment == hashlib.sha256(SEED.encode()).hexdigest()
    assert SEED not in repr(campaign)
    assert giveaway().commitment == campaign.commitment
    with pytest.raises(ModelError) as caught:
        giveaway(seed=Secret("tiny"))
    assert "tiny" not in str(caught.value)


# ------------------------------------------------------------------ entries


def test_entries_are_remembered_once_with_polite_replies() -> None:
    campaign = giveaway(prize="红包封面")
    at = OPENS + timedelta(hours=1)
    first = campaign.on_event(context(enter(1, "42", at)))
    assert first is not None and first.state == {"entered": at.isoformat()}
    (reply,) = first.actions
    assert isinstance(reply, SendMessage) and "红包封面" in reply.text
    again = campaign.on_event(
        context(enter(2, "42", at), rule_state={"giveaway": {"entered": at.isoformat()}})
    )
    assert again is not None and again.state is None and not again.awards
    (polite,) = again.actions
    assert isinstance(polite, SendMessage) and "already entered" in polite.text


def test_entries_outside_the_window_are_refused_politely() -> None:
    campaign = giveaway()
    early = campaign.on_event(context(enter(1, "42", OPENS - timedelta(seconds=1))))
    late = campaign.on_event(context(enter(2, "42", DRAWS)))
    assert early is not None and early.state is None and "opens at" in text(early.actions[0])
    assert late is not None and late.state is None and "closed" in text(late.actions[0])
    other = campaign.on_event(context(enter(3, "42", OPENS, command="checkin")))
    assert other is None


def test_an_entry_by_direct_message_is_answered_privately() -> None:
    event = CommandInvoked(
        event_id="d1", platform="tg", user="42", at=OPENS, command="join_giveaway", args=()
    )
    decision = giveaway().on_event(context(event))
    assert decision is not None and isinstance(decision.actions[0], SendDirectMessage)


def test_a_segment_giveaway_takes_no_entries() -> None:
    campaign = giveaway(entry="segment", eligible="tag:vip")
    assert campaign.event_types == frozenset()
    assert campaign.on_event(context(enter(1, "42", OPENS))) is None


# ----------------------------------------------------------------- schedule


def tick(now: datetime, source: FakeSource | None = None) -> TickContext:
    return TickContext(
        now=now, community=community(), capabilities={"tg": EVERYTHING}, source=source
    )


def test_the_schedule_is_the_opening_then_the_draw() -> None:
    campaign = giveaway()
    assert campaign.next_run(None) == OPENS
    assert campaign.next_run(OPENS - timedelta(days=3)) == OPENS
    assert campaign.next_run(OPENS) == DRAWS
    assert campaign.next_run(DRAWS) is None


def test_the_opening_announces_the_commitment_and_not_the_seed() -> None:
    (decision,) = giveaway().on_schedule(tick(OPENS))
    (post,) = decision.actions
    assert isinstance(post, SendMessage) and post.group == "-1" and post.platform == "tg"
    assert commitment(SEED) in post.text and SEED not in post.text
    assert "/join_giveaway" in post.text


def people(*specs: tuple[str, str, frozenset[str], str]) -> dict[str, Any]:
    found = {}
    for member_id, user, tags, tier in specs:
        who = member(member_id, user=user, name=f"用户{user}").with_tags(*tags)
        state = MemberState(member_id=member_id, tier=tier, tier_since=OPENS)
        found[member_id] = (who, state)
    return found


def test_the_draw_publishes_the_seed_and_winners_anyone_can_verify() -> None:
    everyone = people(
        ("m1", "1", frozenset(), "member"),
        ("m2", "2", frozenset(), "member"),
        ("m3", "3", frozenset(), "member"),
        ("m4", "4", frozenset(), "member"),
    )
    left = member("m5", user="5", status=MemberStatus.LEFT)
    everyone["m5"] = (left, MemberState(member_id="m5", tier="member", tier_since=OPENS))
    entered = {m: {"entered": OPENS.isoformat()} for m in ("m1", "m2", "m4", "m5")}
    source = FakeSource(members=everyone, rule_states={"giveaway": entered})
    campaign = giveaway(winners=2, prize_points=30)
    published, *prizes = campaign.on_schedule(tick(DRAWS, source))
    assert published.member == RESULT_KEY and published.state is not None
    state = published.state
    assert state["eligible"] == ["m1", "m2", "m4"]  # m3 never entered, m5 left
    assert state["seed"] == SEED and state["commitment"] == commitment(SEED)
    assert verify(SEED, commitment(SEED), state["eligible"], state["winners"])
    (post,) = published.actions
    assert SEED in text(post)
    for winner in state["winners"]:
        assert f"@用户{winner[1]}" in text(post)
    assert [d.member for d in prizes] == state["winners"]
    assert all(d.awards[0].points == 30 for d in prizes)


WON = {
    "won": "🎉 {name} 恭喜你在抽奖{prize}中获得第 {place} 名",
    "won_in_group": "🎉 {mention} 中奖了",
}


def test_winners_are_told_by_direct_message_with_a_mention_in_the_group_as_fallback() -> None:
    everyone = people(("m1", "1", frozenset(), "member"), ("m2", "2", frozenset(), "member"))
    campaign = giveaway(entry="segment", winners=2, prize="红包封面", **WON)
    published, *told = campaign.on_schedule(tick(DRAWS, FakeSource(members=everyone)))
    assert published.state is not None
    winners = published.state["winners"]
    for place, (decision, winner) in enumerate(zip(told, winners, strict=True), start=1):
        assert decision.member == winner and not decision.awards
        (dm,) = decision.actions
        assert isinstance(dm, SendDirectMessage)
        assert (dm.platform, dm.user) == ("tg", winner[1])
        assert dm.text == f"🎉 用户{winner[1]} 恭喜你在抽奖 (红包封面)中获得第 {place} 名"
        (mention,) = decision.fallbacks[dm.action_id]
        assert isinstance(mention, SendMessage) and mention.group == "-1"
        assert mention.text == f"🎉 @用户{winner[1]} 中奖了"


def test_where_the_platform_has_no_direct_messages_winners_are_mentioned_in_the_group() -> None:
    everyone = people(("m1", "1", frozenset(), "member"))
    no_dms = Capabilities(actions={"send_message"}, direct_messages=False)
    now = TickContext(
        now=DRAWS,
        community=community(),
        capabilities={"tg": no_dms},
        source=FakeSource(members=everyone),
    )
    _published, told = giveaway(entry="segment", winners=1, **WON).on_schedule(now)
    (mention,) = told.actions
    assert isinstance(mention, SendMessage) and mention.text == "🎉 @用户1 中奖了"
    assert not told.fallbacks and "no direct messages" in told.explanation


def test_winners_are_not_told_when_notify_winners_is_off() -> None:
    everyone = people(("m1", "1", frozenset(), "member"))
    quiet = giveaway(entry="segment", winners=1, notify_winners=False)
    (published,) = quiet.on_schedule(tick(DRAWS, FakeSource(members=everyone)))
    assert published.state is not None and published.state["winners"] == ["m1"]
    with pytest.raises(ModelError, match="won may use the placeholders"):
        giveaway(won="{seed}")


def test_a_segment_draw_is_over_the_active_members_of_the_segment() -> None:
    everyone = people(
        ("m1", "1", frozenset({"vip"}), "gold"),
        ("m2", "2", frozenset(), "gold"),
        ("m3", "3", frozenset({"vip"}), "member"),
    )
    source = FakeSource(members=everyone)
    by_tag = giveaway(entry="segment", eligible="tag:vip", winners=5)
    assert by_tag.eligible_members(tick(DRAWS, source)) == ["m1", "m3"]
    by_tier = giveaway(entry="segment", eligible="tier:gold")
    assert by_tier.eligible_members(tick(DRAWS, source)) == ["m1", "m2"]
    everybody = giveaway(entry="segment")
    assert everybody.eligible_members(tick(DRAWS, source)) == ["m1", "m2", "m3"]
    published, *told = by_tag.on_schedule(tick(DRAWS, source))
    assert published.state is not None and sorted(published.state["winners"]) == ["m1", "m3"]
    assert sorted(d.member or "" for d in told) == ["m1", "m3"]


# ------------------------------------------------------------ through the engine

CONFIG = """
[community]
name = "测试社区"
timezone = "America/New_York"

[[groups]]
key = "main"
platform = "console"
id = "main"

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
prize = "红包封面"
prize_points = 50
announce = "🎁 抽奖{prize} 在 {draws} 之前发送 /{command} 参加。承诺 {commitment}"
"""


@pytest.mark.anyio
async def test_a_giveaway_through_the_engine_across_the_dst_change() -> None:
    start = datetime(2026, 3, 7, 12, 0, tzinfo=UTC)
    app, clock = memory_app(
        config_text=CONFIG, adapters={"console": ScriptedAdapter()}, start=start
    )
    app.open()
    users = ["ana", "bo", "cy", "di", "ed"]
    await app.feed(
        [
            MemberJoined(event_id=f"j{i}", platform="console", group="main", user=u, at=start)
            for i, u in enumerate(users)
        ]
    )
    await app.set_role("console:ed", Role.ADMIN)
    opens = datetime(2026, 3, 8, 1, 0, tzinfo=UTC)  # 20:00 EST
    await app.engine.advance_to(opens, clock.set)
    texts = [a.text for a in (i.action for i in app.store.outbox()) if isinstance(a, SendMessage)]
    seed = "春节抽奖-一个很长的秘密种子-2026"
    (announcement,) = [t for t in texts if "承诺" in t]
    assert commitment(seed) in announcement and seed not in announcement
    assert "2026-03-08 20:00 EDT" in announcement  # the draw, in the community's zone

    at = opens + timedelta(hours=2)
    entries = [
        CommandInvoked(
            event_id=f"e{i}",
            platform="console",
            group="main",
            user=u,
            at=at,
            command="join_giveaway",
            args=(),
        )
        for i, u in enumerate(["ana", "bo", "cy", "di", "ana"])
    ]
    await app.feed(entries)
    entered = {
        m for m in (f"console:{u}" for u in users) if app.engine.moderation.state("spring", m)
    }
    assert entered == {"console:ana", "console:bo", "console:cy", "console:di"}
    texts = [i.action.text for i in app.store.outbox() if isinstance(i.action, SendMessage)]
    assert sum("already entered" in t for t in texts) == 1

    draws = datetime(2026, 3, 9, 0, 0, tzinfo=UTC)  # 20:00 EDT, after the change
    await app.engine.advance_to(draws - timedelta(minutes=1), clock.set)
    assert not app.engine.moderation.state("spring", RESULT_KEY)
    await app.engine.advance_to(draws + timedelta(hours=1), clock.set)
    result = app.engine.moderation.state("spring", RESULT_KEY)
    assert result["drawn"] == draws.isoformat()
    assert result["eligible"] == ["console:ana", "console:bo", "console:cy", "console:di"]
    assert verify(seed, commitment(seed), result["eligible"], result["winners"])
    assert len(result["winners"]) == 2
    for m in entered:
        assert app.balance(m) == (50 if m in result["winners"] else 0)
    texts = [i.action.text for i in app.store.outbox() if isinstance(i.action, SendMessage)]
    assert any(seed in t and "winners" in t for t in texts)
    told = [i.action for i in app.store.outbox() if isinstance(i.action, SendDirectMessage)]
    assert sorted(f"console:{a.user}" for a in told if "won" in a.text) == sorted(result["winners"])
    app.close()


def test_bad_settings_speak_of_a_campaign_and_refuse_rule_scope_keys() -> None:
    with pytest.raises(ModelError, match=r"^giveaway campaign: winners must be"):
        giveaway(winners="three")
    with pytest.raises(ModelError, match=r"^giveaway campaign: announce may use"):
        giveaway(announce="{secret}")
    with pytest.raises(ModelError, match=r"unknown settings: exempt_roles"):
        giveaway(exempt_roles=["admin"])


def test_a_giveaway_in_an_unknown_group_still_draws_and_remembers_the_result() -> None:
    everyone = people(("m1", "1", frozenset(), "member"), ("m2", "2", frozenset(), "member"))
    campaign = giveaway(group="nowhere", entry="segment", winners=1)
    (opening,) = campaign.on_schedule(tick(OPENS))
    assert opening.empty  # nothing to announce, nowhere to announce it
    published, told = campaign.on_schedule(tick(DRAWS, FakeSource(members=everyone)))
    assert not published.actions and "not announced" in published.explanation
    # the winner is still told privately (no group to fall back to)
    (dm,) = told.actions
    assert isinstance(dm, SendDirectMessage) and not told.fallbacks
    assert published.state is not None and len(published.state["winners"]) == 1


def test_a_giveaway_can_be_hashed_although_its_seed_cannot() -> None:
    assert hash(giveaway()) == hash(giveaway(seed=Secret(SEED)))
