"""The ``red_packet`` campaign type: the split, opening, grabbing once, funding."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from communitykit import (
    Action,
    CommandInvoked,
    Decision,
    MemberJoined,
    MemberState,
    Role,
    RuleContext,
    Secret,
    SendDirectMessage,
    SendMessage,
    TickContext,
)
from communitykit._errors import ModelError
from communitykit.builtins.campaigns.giveaway import RedPacketCampaign, split
from communitykit.testing import memory_app
from tests.engine.doubles import ScriptedAdapter
from tests.rules.membership_helpers import EVERYTHING, FakeSource, community, member

from .helpers import TIER, context

T0 = datetime(2026, 3, 8, 6, 30, tzinfo=UTC)
SECRET = "社区红包的签名密钥-abcdefghijklmnop"


def text(action: Action) -> str:
    assert isinstance(action, SendMessage | SendDirectMessage)
    return action.text


def command(
    n: int, user: str, name: str, *args: str, group: str | None = "-1", at: datetime = T0
) -> CommandInvoked:
    return CommandInvoked(
        event_id=f"c{n}", platform="tg", group=group, user=user, at=at, command=name, args=args
    )


ADMIN = member("admin", user="1", role=Role.ADMIN, name="管理员")


def packet(**settings: Any) -> RedPacketCampaign:
    return RedPacketCampaign.from_settings(settings)


class Ledger:
    """The keys paid so far, and what each member got (the engine's idempotency)."""

    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.paid: dict[str, int] = {}
        self.states: dict[str, Mapping[str, Any]] = {}

    def apply(self, decision: Decision | None, member_id: str) -> None:
        if decision is None:
            return
        for spend in decision.spends:
            self.keys.add(spend.key)
        for award in decision.awards:
            if award.key in self.keys:
                continue
            self.keys.add(award.key)
            self.paid[award.member] = self.paid.get(award.member, 0) + award.points
        if decision.state is not None:
            self.states[decision.member or member_id] = decision.state


def open_packet(campaign: RedPacketCampaign, ledger: Ledger, total: int, count: int) -> str:
    """Open a packet as the admin; returns its code."""
    decision = campaign.on_event(
        context(command(0, "1", "red_packet", str(total), str(count)), who=ADMIN, balance=total)
    )
    assert decision is not None
    ledger.apply(decision, "admin")
    post = text(decision.actions[0])
    return post.split(f"/{campaign.command} ")[1].split()[0]


def grab(
    campaign: RedPacketCampaign, ledger: Ledger, n: int, user: str, code: str
) -> Decision | None:
    who = member(f"m{user}", user=user, name=f"用户{user}")
    decision = campaign.on_event(
        context(
            command(n, user, "grab", code),
            who=who,
            rule_state={campaign.name: ledger.states.get(who.member_id, {})},
            paid=lambda key: key in ledger.keys,
        )
    )
    ledger.apply(decision, who.member_id)
    return decision


# ------------------------------------------------------------------ the split


@given(total=st.integers(1, 5000), data=st.data(), seed=st.text(max_size=20))
def test_red_packet_amounts_sum_to_the_total_and_each_is_at_least_one(
    total: int, data: st.DataObject, seed: str
) -> None:
    n = data.draw(st.integers(1, min(total, 200)))
    amounts = split(total, n, seed)
    assert len(amounts) == n
    assert sum(amounts) == total
    assert min(amounts) >= 1
    assert split(total, n, seed) == amounts


def test_a_split_depends_on_its_seed_and_refuses_impossible_packets() -> None:
    assert split(100, 5, "a") != split(100, 5, "b")
    assert split(5, 5, "x") == [1, 1, 1, 1, 1]
    assert split(7, 1, "x") == [7]
    for total, n in ((3, 4), (10, 0), (0, 0)):
        with pytest.raises(ValueError, match="split needs"):
            split(total, n, "x")


# ----------------------------------------------------------------- grabbing


@given(
    total=st.integers(1, 500),
    data=st.data(),
    grabs=st.lists(st.integers(0, 12), max_size=40),
)
def test_every_claim_is_paid_at_most_once(
    total: int, data: st.DataObject, grabs: list[int]
) -> None:
    count = data.draw(st.integers(1, min(total, 10)))
    campaign = packet()
    ledger = Ledger()
    code = open_packet(campaign, ledger, total, count)
    for n, who in enumerate(grabs):
        grab(campaign, ledger, n + 1, str(100 + who), code)
    assert sum(ledger.paid.values()) <= total
    assert len(ledger.paid) == min(count, len(set(grabs)))
    assert all(points >= 1 for points in ledger.paid.values())
    if len(set(grabs)) >= count:
        assert sum(ledger.paid.values()) == total  # every share went to someone


def test_the_first_claimers_get_the_shares_in_order_then_the_packet_is_empty() -> None:
    campaign = packet()
    ledger = Ledger()
    code = open_packet(campaign, ledger, 10, 3)
    amounts = split(10, 3, code.split("-")[1])
    for n, user in enumerate(("7", "8", "9")):
        decision = grab(campaign, ledger, n + 1, user, code)
        assert decision is not None
        (award,) = decision.awards
        assert award.points == amounts[n] and not award.multiply
        assert f"{amounts[n]} points" in text(decision.actions[0])
    late = grab(campaign, ledger, 9, "10", code)
    assert late is not None and not late.awards and late.state is None
    assert "empty" in text(late.actions[0])
    assert ledger.paid == {"m7": amounts[0], "m8": amounts[1], "m9": amounts[2]}


def test_a_second_grab_gets_nothing_and_a_polite_reply() -> None:
    campaign = packet()
    ledger = Ledger()
    code = open_packet(campaign, ledger, 100, 5)
    first = grab(campaign, ledger, 1, "7", code)
    second = grab(campaign, ledger, 2, "7", code)
    assert first is not None and first.awards
    assert second is not None and not second.awards and second.state is None
    assert "already grabbed" in text(second.actions[0])
    assert str(first.awards[0].points) in text(second.actions[0])


def test_a_made_up_code_pays_nothing() -> None:
    campaign = packet()
    ledger = Ledger()
    code = open_packet(campaign, ledger, 100, 5)
    rest = code.split("x", 1)[1]
    for forged in (f"1000x{rest}", code.replace("x5", "x1"), "100x5-0123456789", "hello", ""):
        decision = grab(campaign, ledger, 1, "7", forged)
        assert decision is not None and not decision.awards
        assert "not a red packet code" in text(decision.actions[0])
    assert ledger.paid == {}


# ------------------------------------------------------------------ opening


def test_opening_spends_the_openers_points_and_announces_a_code() -> None:
    campaign = packet()
    decision = campaign.on_event(
        context(command(1, "1", "red_packet", "88", "8"), who=ADMIN, balance=100)
    )
    assert decision is not None
    (spend,) = decision.spends
    assert (spend.member, spend.points) == ("admin", 88)
    post = text(decision.actions[0])
    assert "88 points" in post and "/grab 88x8-" in post
    assert decision.member is not None and decision.member.startswith("packet:")
    assert decision.state is not None and decision.state["opener"] == "admin"


@pytest.mark.parametrize(
    ("who", "args", "balance", "group", "words"),
    [
        (member("m7", user="7"), ("10", "2"), 100, "-1", "only admins and owners"),
        (ADMIN, ("10",), 100, "-1", "/red_packet TOTAL N"),
        (ADMIN, ("ten", "2"), 100, "-1", "/red_packet TOTAL N"),
        (ADMIN, ("2", "3"), 100, "-1", "/red_packet TOTAL N"),
        (ADMIN, ("10", "0"), 100, "-1", "/red_packet TOTAL N"),
        (ADMIN, ("10", "2"), 100, None, "/red_packet TOTAL N"),
        (ADMIN, ("200000", "2"), 10**6, "-1", "/red_packet TOTAL N"),
        (ADMIN, ("50", "2"), 49, "-1", "you have 49 points, not enough"),
    ],
)
def test_opening_is_refused_politely(
    who: Any, args: tuple[str, ...], balance: int, group: str | None, words: str
) -> None:
    event = command(1, who.identities[0].user_id, "red_packet", *args, group=group)
    decision = packet().on_event(context(event, who=who, balance=balance))
    assert decision is not None
    assert not decision.spends and not decision.awards and decision.state is None
    assert words in text(decision.actions[0])


def test_a_community_funded_packet_costs_the_opener_nothing_and_is_signed() -> None:
    campaign = packet(funded_by_community=True, secret=Secret(SECRET))
    ledger = Ledger()
    code = open_packet(campaign, ledger, 30, 3)
    assert ledger.keys == set()  # nothing spent
    assert len(code.split("-")[1]) == 18  # the packet id and its signature
    decision = grab(campaign, ledger, 1, "7", code)
    assert decision is not None and decision.awards
    forged = code[:-1] + ("0" if code[-1] != "0" else "1")
    assert not (
        grab(campaign, ledger, 2, "8", forged) or Decision(source="", explanation="")
    ).awards
    other = packet(funded_by_community=True, secret=SECRET + "-other")
    elsewhere = grab(other, ledger, 3, "9", code)
    assert elsewhere is not None and not elsewhere.awards


def test_the_secret_never_shows_in_a_repr() -> None:
    campaign = packet(funded_by_community=True, secret=SECRET)
    assert SECRET not in repr(campaign)


NEW_YORK = "America/New_York"  # daylight saving time starts on 2026-03-08
SCHEDULED = {
    "schedule": "0 20 * * *",
    "schedule_total": 30,
    "schedule_count": 3,
    "schedule_group": "main",
    "secret": SECRET,
    "timezone": NEW_YORK,
    "scheduled": "🧧 社区红包 {total} 积分 {count} 份 发送 /{command} {code}",
}


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"funded_by_community": True}, ["secret is required"]),
        ({"funded_by_community": True, "secret": "short"}, ["secret", "at least 16"]),
        ({"funded_by_community": "yes"}, ["funded_by_community", "true or false"]),
        ({"command": "red_packet"}, ["must differ"]),
        ({"command": "/grab"}, ["command", "/grab"]),
        ({"max_count": 0}, ["max_count"]),
        ({"grabbed": "{seed}"}, ["grabbed", "unknown: seed"]),
        ({"amount": 5}, ["unknown settings: amount"]),
        ({"schedule": "0 20 * * *"}, ["secret is required"]),
        ({"schedule": "0 25 * * *", "secret": SECRET}, ["schedule", "hour"]),
        ({**SCHEDULED, "schedule_count": 0}, ["schedule_count"]),
        ({**SCHEDULED, "schedule_total": 2}, ["schedule_total"]),
        ({**SCHEDULED, "schedule_group": ""}, ["schedule_group"]),
        ({**SCHEDULED, "missed": "later"}, ["missed", "'skip' or 'catch_up'"]),
        ({**SCHEDULED, "scheduled": "{seed}"}, ["scheduled", "unknown: seed"]),
        ({"schedule_total": 30}, ["schedule_total applies with schedule only"]),
        ({"expires_after": "0h"}, ["expires_after"]),
        ({"expires_after": "soon"}, ["expires_after"]),
        ({"timezone": "Beijing"}, ["timezone", "IANA"]),
    ],
)
def test_bad_settings_name_the_key(settings: Mapping[str, Any], words: list[str]) -> None:
    with pytest.raises(ModelError) as caught:
        packet(**settings)
    message = str(caught.value)
    assert "red_packet" in message
    for word in words:
        assert word in message
    assert "short" not in message


def test_red_packets_have_no_scheduled_work() -> None:
    campaign = packet()
    assert campaign.next_run(None) is None and campaign.next_run(T0) is None


# ------------------------------------------------------------ through the engine

CONFIG = """
[community]
name = "红包社区"
timezone = "Asia/Shanghai"

[[groups]]
key = "main"
platform = "console"
id = "main"

[points]
message = 0
reaction_received = 0

[[campaigns]]
type = "red_packet"
opened = "🧧 {name} 发了一个红包 {total} 积分 {count} 份 发送 /{command} {code} 抢红包"
grabbed = "{name} 抢到了 {amount} 积分"
again = "{name} 已经抢过这个红包了"
"""


def grab_event(n: int, user: str, code: str, at: datetime) -> CommandInvoked:
    return CommandInvoked(
        event_id=f"g{n}",
        platform="console",
        group="main",
        user=user,
        at=at,
        command="grab",
        args=(code,),
    )


@pytest.mark.anyio
async def test_a_red_packet_through_the_engine() -> None:
    app, _clock = memory_app(config_text=CONFIG, adapters={"console": ScriptedAdapter()}, start=T0)
    app.open()
    users = ["boss", "ana", "bo", "cy", "di"]
    await app.feed(
        [
            MemberJoined(event_id=f"j{i}", platform="console", group="main", user=u, at=T0)
            for i, u in enumerate(users)
        ]
    )
    await app.set_role("console:boss", Role.OWNER)
    await app.award("console:boss", 100, reason="seed money", key="seed-money")
    at = T0 + timedelta(minutes=5)
    opening = CommandInvoked(
        event_id="o1",
        platform="console",
        group="main",
        user="boss",
        at=at,
        command="red_packet",
        args=("60", "3"),
    )
    await app.feed([opening])
    assert app.balance("console:boss") == 40
    posts = [i.action.text for i in app.store.outbox() if isinstance(i.action, SendMessage)]
    (announcement,) = [p for p in posts if "发了一个红包" in p]
    code = announcement.split("/grab ")[1].split()[0]
    grabs = [grab_event(i, u, code, at + timedelta(seconds=i)) for i, u in enumerate(users[1:])]
    grabs.insert(2, grab_event(9, "ana", code, at + timedelta(seconds=1)))  # ana again
    await app.feed(grabs)
    got = {u: app.balance(f"console:{u}") for u in users[1:]}
    assert sum(got.values()) == 60
    assert got["di"] == 0  # the fourth claimer: the packet was empty
    assert all(got[u] >= 1 for u in ("ana", "bo", "cy"))
    assert [got[u] for u in ("ana", "bo", "cy")] == split(60, 3, code.split("-")[1])
    posts = [i.action.text for i in app.store.outbox() if isinstance(i.action, SendMessage)]
    assert sum("已经抢过" in p for p in posts) == 1
    assert sum("抢到了" in p for p in posts) == 3
    # a second opening the boss cannot pay for is refused politely, and costs nothing
    await app.feed(
        [
            CommandInvoked(
                event_id="o2",
                platform="console",
                group="main",
                user="boss",
                at=at + timedelta(minutes=1),
                command="red_packet",
                args=("50", "2"),
            )
        ]
    )
    assert app.balance("console:boss") == 40
    posts = [i.action.text for i in app.store.outbox() if isinstance(i.action, SendMessage)]
    assert any("not enough" in p for p in posts)
    app.close()


# ------------------------------------------------ scheduled packets and expiry


def ticked(
    campaign: RedPacketCampaign, ledger: Ledger, now: datetime, moment: datetime | None = None
) -> list[Decision]:
    """Run the campaign's scheduled work the way the engine does."""
    source = FakeSource(rule_states={campaign.name: dict(ledger.states)}, paid=ledger.keys)
    tick = TickContext(
        now=now,
        moment=moment,
        community=community(timezone=NEW_YORK),
        capabilities={"tg": EVERYTHING},
        source=source,
    )
    decisions = list(campaign.on_schedule(tick))
    for decision in decisions:
        ledger.apply(decision, "")
    return decisions


def test_a_scheduled_packet_opens_at_each_moment_once_across_the_dst_change() -> None:
    campaign = packet(**SCHEDULED)
    first = campaign.next_run(datetime(2026, 3, 7, 12, tzinfo=UTC))
    assert first == datetime(2026, 3, 8, 1, tzinfo=UTC)  # 20:00 EST
    assert campaign.next_run(first) == datetime(2026, 3, 9, 0, tzinfo=UTC)  # 20:00 EDT
    ledger = Ledger()
    (opened,) = ticked(campaign, ledger, first)
    (post,) = opened.actions
    assert isinstance(post, SendMessage) and post.group == "-1"
    assert post.text.startswith("🧧 社区红包 30 积分 3 份 发送 /grab 30x3-")
    assert opened.state is not None and opened.state["funded_by_community"] is True
    assert ticked(campaign, ledger, first) == []  # the same moment again: nothing
    code = post.text.rsplit(" ", 1)[1]
    for n, user in enumerate(["2", "3", "4", "5"]):
        grab(campaign, ledger, n, user, code)
    assert sorted(ledger.paid.values()) == sorted(split(30, 3, code.split("-")[1][:10]))
    assert "madmin" not in ledger.paid and "admin" not in ledger.paid  # nobody paid for it


def test_missed_scheduled_packets_are_skipped_or_caught_up_once() -> None:
    moment = datetime(2026, 3, 8, 1, tzinfo=UTC)
    late = moment + timedelta(days=2, hours=3)  # two moments missed while down
    assert ticked(packet(**SCHEDULED), Ledger(), late, moment) == []
    catch_up = packet(**SCHEDULED, missed="catch_up")
    ledger = Ledger()
    (opened,) = ticked(catch_up, ledger, late, moment)
    assert opened.state is not None
    assert opened.state["opened"] == datetime(2026, 3, 10, 0, tzinfo=UTC).isoformat()
    later = datetime(2026, 3, 9, 0, tzinfo=UTC)
    assert ticked(catch_up, ledger, late, later) == []  # the next missed moment: sent already


def test_unclaimed_shares_go_back_to_the_opener_once_the_packet_expires() -> None:
    campaign = packet(expires_after="2h")
    ledger = Ledger()
    code = open_packet(campaign, ledger, 60, 3)
    (record,) = (m for m in ledger.states if m.startswith("packet:"))
    grab(campaign, ledger, 1, "2", code)
    opened_at = T0
    expiry = opened_at + timedelta(hours=2)
    assert campaign.next_run(T0, tick_of(ledger, T0)) == expiry
    assert ticked(campaign, ledger, expiry - timedelta(seconds=1), expiry) == []
    (closed,) = ticked(campaign, ledger, expiry, expiry)
    amounts = split(60, 3, record.removeprefix("packet:"))
    (refund,) = closed.awards
    assert (refund.member, refund.points) == ("admin", amounts[1] + amounts[2])
    assert closed.state is not None and closed.state["unclaimed"] == 2
    assert ticked(campaign, ledger, expiry + timedelta(days=1), expiry) == []  # closed: once
    assert campaign.next_run(expiry, tick_of(ledger, expiry)) is None
    late = grab_at(campaign, ledger, "3", code, expiry + timedelta(minutes=1))
    assert late is not None and not late.awards and "expired" in text(late.actions[0])
    assert ledger.paid == {"m2": amounts[0], "admin": amounts[1] + amounts[2]}


def test_a_grab_after_the_expiry_moment_is_refused_before_the_packet_is_closed() -> None:
    campaign = packet(expires_after="30m")
    ledger = Ledger()
    code = open_packet(campaign, ledger, 10, 2)
    late = grab_at(campaign, ledger, "2", code, T0 + timedelta(minutes=30))
    assert late is not None and not late.awards


def test_an_expired_community_packet_records_its_unclaimed_shares() -> None:
    campaign = packet(**SCHEDULED, expires_after="1h")
    ledger = Ledger()
    first = datetime(2026, 3, 8, 1, tzinfo=UTC)
    (_opened,) = ticked(campaign, ledger, first, first)
    expiry = first + timedelta(hours=1)
    assert campaign.next_run(first, tick_of(ledger, first)) == expiry
    (closed,) = ticked(campaign, ledger, expiry, expiry)
    assert closed.awards == () and closed.state is not None
    assert (closed.state["unclaimed"], closed.state["unclaimed_points"]) == (3, 30)
    assert closed.state["refunded"] == 0


@given(
    count=st.integers(1, 6),
    extra=st.integers(0, 40),
    grabs=st.lists(st.tuples(st.integers(2, 9), st.integers(0, 180)), max_size=12),
    checks=st.lists(st.integers(0, 240), max_size=5),
)
def test_each_share_is_paid_once_to_a_grabber_or_back_to_the_opener(
    count: int, extra: int, grabs: list[tuple[int, int]], checks: list[int]
) -> None:
    total = count + extra
    campaign = packet(expires_after="2h")
    ledger = Ledger()
    code = open_packet(campaign, ledger, total, count)
    events = [(minutes, "grab", user) for user, minutes in grabs]
    events += [(minutes, "tick", 0) for minutes in checks]
    for n, (minutes, kind, user) in enumerate(sorted(events)):
        now = T0 + timedelta(minutes=minutes)
        if kind == "grab":
            grab_at(campaign, ledger, str(user), code, now, n)
        else:
            due = campaign.next_run(T0, tick_of(ledger, T0))
            if due is not None and due <= now:
                ticked(campaign, ledger, now, due)
    ticked(campaign, ledger, T0 + timedelta(hours=5), T0 + timedelta(hours=2))
    assert sum(ledger.paid.values()) == total  # every point: grabbed, or refunded
    grabbed = {m: p for m, p in ledger.paid.items() if m != "admin"}
    assert len(grabbed) <= count
    first: dict[str, int] = {}
    for user, minutes in grabs:
        first[f"m{user}"] = min(first.get(f"m{user}", minutes), minutes)
    assert all(first[m] < 120 for m in grabbed)  # nothing is grabbed once it expired


def tick_of(ledger: Ledger, now: datetime) -> TickContext:
    source = FakeSource(rule_states={"red_packet": dict(ledger.states)}, paid=ledger.keys)
    return TickContext(now=now, community=community(), capabilities={}, source=source)


def grab_at(
    campaign: RedPacketCampaign, ledger: Ledger, user: str, code: str, at: datetime, n: int = 0
) -> Decision | None:
    """A grab at ``at``, seeing the packet's record the way the engine shows it."""
    who = member(f"m{user}", user=user, name=f"用户{user}")
    event = command(100 + n, user, "grab", code, at=at)
    states = ledger.states
    ctx = RuleContext(
        event=event,
        member=who,
        state=MemberState(member_id=who.member_id, tier="member", tier_since=at),
        tier=TIER,
        balance=0,
        community=community(),
        capabilities=EVERYTHING,
        now=at,
        cap_remaining=lambda _reason: None,
        member_of=lambda _platform, _user: None,
        already_awarded=lambda key: key in ledger.keys,
        rule_state=lambda _name: states.get(who.member_id, {}),
        rule_state_of=lambda _name, other: states.get(other, {}),
    )
    decision = campaign.on_event(ctx)
    ledger.apply(decision, who.member_id)
    return decision


SCHEDULED_CONFIG = """
[community]
name = "红包社区"
timezone = "America/New_York"

[[groups]]
key = "main"
platform = "console"
id = "main"

[points]
message = 0
reaction_received = 0

[[campaigns]]
type = "red_packet"
secret = "社区红包的签名密钥-abcdefghijklmnop"
schedule = "0 20 * * *"
schedule_total = 30
schedule_count = 3
schedule_group = "main"
expires_after = "2h"
scheduled = "🧧 今晚的社区红包 {total} 积分 {count} 份 发送 /{command} {code}"
"""


@pytest.mark.anyio
async def test_scheduled_packets_and_refunds_through_the_engine_across_dst() -> None:
    start = datetime(2026, 3, 7, 12, tzinfo=UTC)
    app, clock = memory_app(
        config_text=SCHEDULED_CONFIG, adapters={"console": ScriptedAdapter()}, start=start
    )
    app.open()
    users = ["boss", "ana", "bo"]
    await app.feed(
        [
            MemberJoined(event_id=f"j{i}", platform="console", group="main", user=u, at=start)
            for i, u in enumerate(users)
        ]
    )
    await app.set_role("console:boss", Role.OWNER)
    await app.award("console:boss", 100, reason="seed money", key="seed-money")
    # the boss's own packet at 19:00 EST: two of four shares are never grabbed
    opening = CommandInvoked(
        event_id="o1",
        platform="console",
        group="main",
        user="boss",
        at=datetime(2026, 3, 8, 0, tzinfo=UTC),
        command="red_packet",
        args=("40", "4"),
    )
    await app.engine.advance_to(opening.at, clock.set)
    await app.feed([opening])
    assert app.balance("console:boss") == 60

    def codes(marker: str) -> list[str]:
        posts = [i.action.text for i in app.store.outbox() if isinstance(i.action, SendMessage)]
        return [p.split("/grab ")[1].split()[0] for p in posts if marker in p]

    (own,) = codes("opened a red packet")
    at = opening.at + timedelta(minutes=1)
    await app.feed([grab_event(1, "ana", own, at), grab_event(2, "bo", own, at)])
    grabbed = app.balance("console:ana") + app.balance("console:bo")
    # 20:00 EST the first scheduled packet, 22:00 the boss's packet closes
    await app.engine.advance_to(datetime(2026, 3, 8, 2, 30, tzinfo=UTC), clock.set)
    assert app.balance("console:boss") == 60 + (40 - grabbed)  # the unclaimed shares back
    (first,) = codes("今晚的社区红包")
    await app.feed([grab_event(3, "ana", first, datetime(2026, 3, 8, 1, 5, tzinfo=UTC))])
    # the next evening is EDT: 20:00 there is 00:00 UTC
    await app.engine.advance_to(datetime(2026, 3, 9, 3, tzinfo=UTC), clock.set)
    evening = [
        i.created_at
        for i in app.store.outbox()
        if "今晚的社区红包" in getattr(i.action, "text", "")
    ]
    assert [m.isoformat() for m in evening] == [
        "2026-03-08T01:00:00+00:00",
        "2026-03-09T00:00:00+00:00",
    ]
    states = app.engine.moderation.states["red_packet"]
    closed = [s for m, s in states.items() if m.startswith("packet:") and "closed" in s]
    assert len(closed) == 3  # the boss's packet and both evenings' packets
    # the boss's: 2 of 4 left; the first evening's: ana grabbed one; the second: none
    assert sorted(s["unclaimed"] for s in closed) == [2, 2, 3]
    assert sorted(s["refunded"] for s in closed) == [0, 0, 40 - grabbed]
    await app.feed([grab_event(4, "bo", first, datetime(2026, 3, 9, 3, 1, tzinfo=UTC))])
    posts = [i.action.text for i in app.store.outbox() if isinstance(i.action, SendMessage)]
    assert any("expired" in p for p in posts)
    app.close()


def test_a_member_never_grabs_twice_from_a_packet_however_many_they_grabbed_since() -> None:
    campaign = packet(max_count=100)
    ledger = Ledger()
    codes = []
    for n in range(52):
        opened = campaign.on_event(
            context(command(1000 + n, "1", "red_packet", "100", "100"), who=ADMIN, balance=100)
        )
        ledger.apply(opened, "admin")
        assert opened is not None
        codes.append(text(opened.actions[0]).split("/grab ")[1].split()[0])
    first = grab(campaign, ledger, 1, "7", codes[0])
    assert first is not None and first.awards
    for n, code in enumerate(codes[1:], start=2):
        grab(campaign, ledger, n, "7", code)
    again = grab(campaign, ledger, 99, "7", codes[0])
    assert again is not None and not again.awards  # "you already grabbed"
    assert ledger.paid["m7"] == 52
