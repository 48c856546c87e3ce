"""Invariants of the referral campaign type, on its own (no engine).

A small world feeds the campaign joins (with an inviter's code), claims,
messages, leaves and daily checks, applies its decisions the way the engine
does (state to the decision's member, an award key paid once, a pending award
counted once confirmed, settled at most once) and records every award paid.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from communitykit import (
    AwardPoints,
    CommandInvoked,
    Decision,
    Member,
    MemberJoined,
    MemberLeft,
    MemberState,
    MemberStatus,
    MessagePosted,
    RuleContext,
    TickContext,
)
from communitykit.builtins.campaigns.referral import ReferralCampaign, referral_code
from tests.campaigns.helpers import TIER
from tests.rules.membership_helpers import EVERYTHING, community, member

NAME = "referral"
T0 = datetime(2026, 3, 5, 14, 0, tzinfo=UTC)  # DST starts in New York on 2026-03-08
ZONE = "America/New_York"
PEOPLE = 8


@attrs.define
class World:
    campaign: ReferralCampaign
    now: datetime = T0
    members: dict[str, Member] = attrs.field(factory=dict)
    messages: dict[str, int] = attrs.field(factory=dict)
    states: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    paid: set[str] = attrs.field(factory=set)
    asked: list[AwardPoints] = attrs.field(factory=list)  # awards that count (confirmed)
    pending: dict[str, AwardPoints] = attrs.field(factory=dict)  # pending awards by key
    settled: dict[str, str] = attrs.field(factory=dict)  # award key -> confirm | cancel
    settles: list[tuple[str, str]] = attrs.field(factory=list)  # every (award, verb) asked
    decisions: list[Decision] = attrs.field(factory=list)
    inviters: dict[str, list[str]] = attrs.field(factory=dict)  # newcomer -> inviters seen
    before: set[str] = attrs.field(factory=set)  # newcomers who were members before
    events: int = 0
    last_run: datetime = T0

    # ------------------------------------------------------------ helpers

    def member_of(self, index: int) -> Member:
        member_id = f"tg:u{index}"
        found = self.members.get(member_id)
        return found or member(member_id, user=f"u{index}", joined_at=None)

    def _context(self, who: Member, event: Any) -> RuleContext:
        return RuleContext(
            event=event,
            member=who,
            state=MemberState(
                member_id=who.member_id,
                tier="member",
                tier_since=T0,
                messages=self.messages.get(who.member_id, 0),
            ),
            tier=TIER,
            balance=0,
            community=community(timezone=ZONE),
            capabilities=EVERYTHING,
            now=event.at,
            cap_remaining=lambda _r: None,
            member_of=lambda _p, _u: None,
            already_awarded=lambda key: key in self.paid,
            rule_state=lambda name: self.states.get(who.member_id, {}),
            rule_state_of=lambda name, other: self.states.get(other, {}),
        )

    def _apply(self, decision: Decision | None, default: str | None) -> None:
        if decision is None:
            return
        self.decisions.append(decision)
        target = decision.member or default
        if decision.state is not None and target is not None:
            self.states[target] = dict(decision.state)
        for award in decision.awards:
            if award.key in self.paid:
                continue
            self.paid.add(award.key)
            if award.pending:
                self.pending[award.key] = award
            else:
                self.asked.append(award)
        orders = [("confirm", c) for c in decision.confirms]
        orders += [("cancel", c) for c in decision.cancels]
        for verb, order in orders:
            self.settles.append((order.award, verb))
            found = self.pending.get(order.award)
            if found is None or order.award in self.settled:
                continue
            assert found.member == order.member
            self.settled[order.award] = verb
            if verb == "confirm":
                self.asked.append(found)
        for member_id, state in self.states.items():
            inviter = state.get("inviter")
            if isinstance(inviter, str):
                seen = self.inviters.setdefault(member_id, [])
                if not seen or seen[-1] != inviter:
                    seen.append(inviter)

    def _event(self, who: Member, cls: type[Any], **fields: Any) -> None:
        self.events += 1
        event = cls(
            event_id=f"e{self.events}",
            platform="tg",
            group="-1",
            user=who.identities[0].user_id,
            at=self.now,
            **fields,
        )
        self._apply(self.campaign.on_event(self._context(who, event)), who.member_id)

    # ---------------------------------------------------------- operations

    def invite(self, index: int) -> None:
        who = self.member_of(index)
        if who.member_id in self.members:
            self._event(who, CommandInvoked, command="invite", args=())

    def join(self, index: int, inviter: int | None) -> None:
        who = self.member_of(index)
        returning = who.joined_at is not None and who.left_at is not None
        joined_at = who.joined_at or self.now
        who = attrs.evolve(who, status=MemberStatus.ACTIVE, left_at=None, joined_at=joined_at)
        self.members[who.member_id] = who
        code = None if inviter is None else referral_code(f"tg:u{inviter}")
        if returning and who.member_id not in self.inviters:
            self.before.add(who.member_id)  # a member before: never rewarded from now on
        self._event(who, MemberJoined, invite=code)
        self.invite(index)  # every member knows their code from now on

    def claim(self, index: int, inviter: int) -> None:
        who = self.members.get(f"tg:u{index}")
        if who is not None:
            code = referral_code(f"tg:u{inviter}")
            self._event(who, CommandInvoked, command="joined_by", args=(code,))

    def say(self, index: int) -> None:
        who = self.members.get(f"tg:u{index}")
        if who is not None and who.left_at is None:
            self.messages[who.member_id] = self.messages.get(who.member_id, 0) + 1
            self._event(who, MessagePosted, message_id=str(self.events), text="你好")

    def leave(self, index: int) -> None:
        who = self.members.get(f"tg:u{index}")
        if who is not None and who.left_at is None:
            who = attrs.evolve(who, status=MemberStatus.LEFT, left_at=self.now)
            self.members[who.member_id] = who
            self._event(who, MemberLeft, reason="left")

    def rejoin(self, index: int, inviter: int, claim: bool) -> None:
        """Leave and join again: with the inviter's code, or telling it afterwards."""
        if f"tg:u{index}" not in self.members:
            self.join(index, None)
        self.leave(index)
        self.join(index, None if claim else inviter)
        if claim:
            self.claim(index, inviter)

    def wait(self, hours: int) -> None:
        until = self.now + timedelta(hours=hours)
        while True:
            moment = self.campaign.next_run(self.last_run)
            if moment is None or moment > until:
                break
            self.now = self.last_run = moment
            tick = TickContext(
                now=moment, community=community(timezone=ZONE), capabilities={}, source=Source(self)
            )
            for decision in self.campaign.on_schedule(tick):
                self._apply(decision, None)
        self.now = until


@attrs.define
class Source:
    world: World

    def members(self) -> Iterator[tuple[Member, MemberState]]:
        for member_id in sorted(self.world.members):
            state = self.state(member_id)
            assert state is not None
            yield self.world.members[member_id], state

    def member(self, member_id: str) -> Member | None:
        return self.world.members.get(member_id)

    def state(self, member_id: str) -> MemberState | None:
        return MemberState(
            member_id=member_id,
            tier="member",
            tier_since=T0,
            messages=self.world.messages.get(member_id, 0),
        )

    def rule_states(self, name: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
        return iter(sorted(self.world.states.items()))

    def groups_of(self, member_id: str) -> frozenset[str]:
        return frozenset({"main"})

    def group_size(self, key: str) -> int:
        return len(self.world.members)

    def warnings(self, member_id: str) -> int:
        return 0


person = st.integers(0, PEOPLE - 1)
inviter = st.integers(0, 1) | person  # mostly a founding member
newcomer = st.integers(2, PEOPLE - 1)
operation = st.one_of(
    st.tuples(st.just("join"), newcomer, inviter),
    st.tuples(st.just("join"), newcomer, inviter),
    st.tuples(st.just("join"), person, inviter),
    st.tuples(st.just("join"), person, st.none()),
    st.tuples(st.just("invite"), person),
    st.tuples(st.just("claim"), person, inviter),
    st.tuples(st.just("say"), newcomer),
    st.tuples(st.just("say"), newcomer),
    st.tuples(st.just("say"), person),
    st.tuples(st.just("leave"), person),
    st.tuples(st.just("rejoin"), newcomer, inviter, st.booleans()),
    st.tuples(st.just("wait"), st.integers(1, 80)),
)
scripts = st.lists(operation, max_size=80)
campaigns = st.builds(
    lambda cap, condition, second, messages: ReferralCampaign.from_settings(
        {
            "timezone": ZONE,
            "daily_cap": cap,
            "condition": condition,
            "second_level": second,
            "stay_days": 2,
            "min_messages": messages,
        }
    ),
    st.integers(1, 3),
    st.sampled_from(["both", "days", "messages"]),
    st.sampled_from([0, 5]),
    st.integers(0, 2),
)


def run(campaign: ReferralCampaign, script: list[tuple[Any, ...]]) -> World:
    world = World(campaign=campaign)
    for index in range(2):  # two founding members who can invite from the start
        world.join(index, None)
    for op, *args in script:
        getattr(world, op)(*args)
    world.wait(24 * 5)  # every pending referral settles
    return world


def rewards(world: World) -> list[AwardPoints]:
    return [a for a in world.asked if a.reason == "referral"]


def newcomer_of(award: AwardPoints) -> str:
    return award.key.split(":", 2)[2].removesuffix(":second")


PROPERTIES = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTIES
@given(campaigns, scripts)
def test_each_newcomer_is_attributed_to_at_most_one_inviter(
    campaign: ReferralCampaign, script: list[tuple[Any, ...]]
) -> None:
    world = run(campaign, script)
    for seen in world.inviters.values():
        assert len(seen) == 1
    for award in rewards(world):
        assert world.inviters[newcomer_of(award)] == [award.member]


@PROPERTIES
@given(campaigns, scripts)
def test_each_newcomer_is_rewarded_at_most_once(
    campaign: ReferralCampaign, script: list[tuple[Any, ...]]
) -> None:
    world = run(campaign, script)
    newcomers = [newcomer_of(a) for a in rewards(world)]
    assert len(newcomers) == len(set(newcomers))
    second = [a.key for a in world.asked if a.reason == "referral_second_level"]
    assert len(second) == len(set(second))


@PROPERTIES
@given(campaigns, scripts)
def test_a_self_referral_is_never_rewarded(
    campaign: ReferralCampaign, script: list[tuple[Any, ...]]
) -> None:
    world = run(campaign, script)
    for award in world.asked:
        assert award.member != newcomer_of(award)


@PROPERTIES
@given(campaigns, scripts)
def test_no_reward_for_a_rejoin(campaign: ReferralCampaign, script: list[tuple[Any, ...]]) -> None:
    world = run(campaign, script)
    for award in rewards(world):
        assert newcomer_of(award) not in world.before


@PROPERTIES
@given(campaigns, scripts)
def test_the_daily_cap_holds(campaign: ReferralCampaign, script: list[tuple[Any, ...]]) -> None:
    world = run(campaign, script)
    per_day: dict[tuple[str, str], int] = {}
    for state in world.states.values():
        for ref in state.get("refs", {}).values():
            assert ref["status"] in ("pending", "confirmed", "cancelled", "unrewarded")
    for member_id, state in world.states.items():
        for newcomer, ref in state.get("refs", {}).items():
            if ref["status"] == "confirmed":
                key = (member_id, ref["day"])
                per_day[key] = per_day.get(key, 0) + 1
                assert any(a.key == f"referral:{NAME}:{newcomer}" for a in rewards(world))
    assert all(count <= campaign.daily_cap for count in per_day.values())
    assert sum(per_day.values()) == len(rewards(world))


@PROPERTIES
@given(campaigns, scripts)
def test_evaluation_is_deterministic(
    campaign: ReferralCampaign, script: list[tuple[Any, ...]]
) -> None:
    first, second = run(campaign, script), run(campaign, script)
    assert first.decisions == second.decisions
    assert first.states == second.states


@PROPERTIES
@given(campaigns, scripts)
def test_a_pending_reward_is_confirmed_or_cancelled_never_both(
    campaign: ReferralCampaign, script: list[tuple[Any, ...]]
) -> None:
    world = run(campaign, script)
    verbs: dict[str, set[str]] = {}
    for award, verb in world.settles:
        verbs.setdefault(award, set()).add(verb)
    assert all(len(found) == 1 for found in verbs.values())
    assert set(verbs) <= set(world.pending)  # only pending awards are settled
    assert all(a.pending for a in world.pending.values())


@PROPERTIES
@given(campaigns, scripts)
def test_a_settled_referral_settles_its_pending_rewards_the_same_way(
    campaign: ReferralCampaign, script: list[tuple[Any, ...]]
) -> None:
    world = run(campaign, script)
    for newcomer, state in world.states.items():
        inviter = state.get("inviter")
        key = f"referral:{NAME}:{newcomer}"
        if not isinstance(inviter, str) or key not in world.pending:
            continue
        status = world.states.get(inviter, {}).get("refs", {}).get(newcomer, {}).get("status")
        expected = {"confirmed": "confirm", "cancelled": "cancel", "unrewarded": "cancel"}
        assert world.settled.get(key) == expected.get(status or state["status"])
        if f"{key}:second" in world.pending and world.settled.get(key) == "cancel":
            assert world.settled.get(f"{key}:second") == "cancel"


def test_a_cycle_is_never_credited() -> None:
    world = World(campaign=ReferralCampaign.from_settings({"timezone": ZONE, "min_messages": 1}))
    world.join(0, None)
    world.invite(0)
    world.join(1, 0)  # 0 invited 1
    world.invite(1)
    world.claim(0, 1)  # 1 cannot be credited for inviting 0
    world.say(0)
    world.say(1)
    world.wait(24 * 10)
    assert [(a.member, newcomer_of(a)) for a in rewards(world)] == [("tg:u0", "tg:u1")]


def test_the_inviters_inviter_earns_the_second_level_once() -> None:
    settings = {"timezone": ZONE, "min_messages": 1, "second_level": 10, "daily_cap": 0}
    world = World(campaign=ReferralCampaign.from_settings(settings))
    world.join(0, None)
    world.join(1, 0)  # 0 invited 1
    world.join(2, 1)  # 1 invited 2
    for index in (1, 2, 2):
        world.say(index)
    world.wait(24 * 10)
    paid = sorted((a.member, a.points, a.reason) for a in world.asked)
    assert paid == [
        ("tg:u0", 10, "referral_second_level"),
        ("tg:u0", 50, "referral"),
        ("tg:u1", 50, "referral"),
    ]


def test_a_claim_after_leaving_and_joining_again_is_never_rewarded() -> None:
    settings = {"timezone": ZONE, "condition": "messages", "min_messages": 1}
    world = World(campaign=ReferralCampaign.from_settings(settings))
    world.join(0, None)
    world.rejoin(1, 0, claim=True)  # joined fresh, left, joined again, then claims 0's code
    world.say(1)
    world.wait(24 * 10)
    assert world.states["tg:u1"]["status"] == "unrewarded"
    assert rewards(world) == []
