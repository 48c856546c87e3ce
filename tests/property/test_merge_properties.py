"""Properties of merging members: the identity graph and the ledger together.

``merge_members`` folds one member into another in the identity graph and in the
ledger; ``unmerge_members`` undoes it. The ledger reads merged accounts as one
(one balance, one set of lots) while every entry keeps the account it was
written to, so unmerging gives each member back exactly what is theirs.

Worlds of 2-6 members (1-3 platform identities each) get random ledger histories
(awards, pending credits, confirmations, cancellations, spends, reversals,
expiry), then merges and unmerges; a state machine mixes all of them.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from communitykit._errors import DuplicateEntry, InsufficientPoints, InvalidOperation
from communitykit.model._ledger import EntryKind, Ledger
from communitykit.model._members import (
    IdentityGraph,
    LinkMethod,
    LinkProvenance,
    Member,
    MemberStatus,
    PlatformIdentity,
    Role,
    merge_members,
    unmerge_members,
)

T0 = datetime(2026, 3, 27, 12, tzinfo=UTC)  # the weekend Berlin moves to summer time
ZONE = "Europe/Berlin"
CAPPED = "message"
REASONS = ("message", "reaction", "bonus")
PLATFORMS = ("telegram", "discord", "wecom")
TAGS = ("vip", "early", "mod", "kol")
PROVENANCE = LinkProvenance(method=LinkMethod.OPERATOR, at=T0, by="op-1", note="same person")
points = st.integers(1, 50)

# No "explain" phase, one bug per test: a failing history shrinks in seconds.
PHASES = tuple(phase for phase in Phase if phase is not Phase.explain)
MERGE_SETTINGS = settings(
    max_examples=100,
    phases=PHASES,
    report_multiple_bugs=False,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

Draw = Callable[[st.SearchStrategy[Any]], Any]


# --------------------------------------------------------------------------- members

instants = st.integers(0, 400 * 24).map(
    lambda hours: datetime(2025, 1, 1, tzinfo=UTC) + timedelta(hours=hours)
)


@st.composite
def member_lists(draw: Draw, min_size: int = 2, max_size: int = 6) -> list[Member]:
    """Members m0, m1, ... with 1-3 identities each (user ids repeat across platforms).

    A member with a leaving time also has a joining time (see
    test_merge_accepts_any_two_members for the others).
    """
    count = draw(st.integers(min_size, max_size))
    sizes = [draw(st.integers(1, 3)) for _ in range(count)]
    identities = draw(
        st.lists(
            st.builds(PlatformIdentity, st.sampled_from(PLATFORMS), st.integers(1, 40).map(str)),
            min_size=sum(sizes),
            max_size=sum(sizes),
            unique=True,
        )
    )
    members = []
    start = 0
    for i, size in enumerate(sizes):
        joined_at = draw(st.none() | instants)
        left_at = None
        if joined_at is not None:
            leaves = draw(st.none() | st.integers(0, 300 * 24))
            if leaves is not None:
                left_at = joined_at + timedelta(hours=leaves)
        members.append(
            Member(
                member_id=f"m{i}",
                identities=identities[start : start + size],
                display_name=draw(st.sampled_from(("", "Ann", "李雷", "Bob"))),
                joined_at=joined_at,
                left_at=left_at,
                role=draw(st.sampled_from(list(Role))),
                status=draw(st.sampled_from(list(MemberStatus))),
                tags=draw(st.frozensets(st.sampled_from(TAGS), max_size=2)),
                paid_until=draw(st.none() | st.dates(date(2025, 1, 1), date(2027, 12, 31))),
            )
        )
        start += size
    return members


# --------------------------------------------------------------------------- a world


class World:
    """An identity graph and a ledger, with random activity."""

    OPS = (
        ("award",) * 5
        + ("pending",) * 2
        + ("confirm",) * 2
        + ("cancel",)
        + ("spend",) * 3
        + ("overspend",)
        + ("reverse",) * 2
        + ("expire",)
    )

    def __init__(self, members: list[Member], cap: int) -> None:
        self.graph = IdentityGraph(members)
        self.ledger = Ledger(ZONE, {CAPPED: cap})
        self.ids = [m.member_id for m in members]
        self.owner = {i: m.member_id for m in members for i in m.identities}  # first owner
        self.now = T0
        self._keys = itertools.count()
        self.credits: list[str] = []
        self.reversed: set[str] = set()
        self.pendings: list[str] = []
        self.settled: set[str] = set()
        self.done: list[tuple[str, Callable[[], Any], Any]] = []  # (what, replay, result)

    # ------------------------------------------------------------ reading

    def top(self) -> list[str]:
        return [m for m in self.ids if m in self.graph]

    def absorbed(self) -> list[str]:
        return [m for m in self.ids if self.graph.merged_into(m) is not None]

    def root(self, member: str) -> str:
        while (parent := self.graph.merged_into(member)) is not None:
            member = parent
        return member

    def accounts(self, person: str) -> list[str]:
        return [m for m in self.ids if self.root(m) == person]

    def key(self) -> str:
        return f"k{next(self._keys)}"

    def tick(self, draw: Draw) -> datetime:
        self.now += timedelta(minutes=draw(st.integers(0, 12 * 60)))
        return self.now

    # ------------------------------------------------------------ activity

    def activity(self, draw: Draw, steps: int, members: list[str] | None = None) -> None:
        for _ in range(steps):
            getattr(self, draw(st.sampled_from(self.OPS)))(draw, members)

    def _member(self, draw: Draw, members: list[str] | None) -> str:
        return draw(st.sampled_from(members or self.ids))

    def _record(self, what: str, call: Callable[[], Any]) -> Any:
        result = call()
        self.done.append((what, call, result))
        return result

    def award(self, draw: Draw, members: list[str] | None = None) -> None:
        member, amount = self._member(draw, members), draw(points)
        reason, at = draw(st.sampled_from(REASONS)), self.tick(draw)
        ttl = draw(st.none() | st.integers(60, 3 * 24 * 60))
        expires_at = None if ttl is None else at + timedelta(minutes=ttl)
        key, ledger = self.key(), self.ledger
        entry = self._record(
            f"award {member} {amount} {reason}",
            lambda: ledger.award(
                member, amount, reason=reason, at=at, key=key, expires_at=expires_at
            ),
        )
        if entry is not None:
            self.credits.append(entry.entry_id)

    def pending(self, draw: Draw, members: list[str] | None = None) -> None:
        member, amount = self._member(draw, members), draw(points)
        reason, at = draw(st.sampled_from(REASONS)), self.tick(draw)
        key, ledger = self.key(), self.ledger
        entry = self._record(
            f"pending {member} {amount} {reason}",
            lambda: ledger.award_pending(member, amount, reason=reason, at=at, key=key),
        )
        self.pendings.append(entry.entry_id)

    def _open_pendings(self, members: list[str] | None) -> list[str]:
        people = None if members is None else {self.root(m) for m in members}
        return [
            p
            for p in self.pendings
            if p not in self.settled
            and (people is None or self.root(self.ledger.entry(p).member) in people)
        ]

    def confirm(self, draw: Draw, members: list[str] | None = None) -> None:
        choices = self._open_pendings(members)
        if not choices:
            return
        pending_id, at, key = draw(st.sampled_from(choices)), self.tick(draw), self.key()
        ledger = self.ledger
        entry = self._record(
            f"confirm {pending_id}", lambda: ledger.confirm(pending_id, at=at, key=key)
        )
        self.settled.add(pending_id)
        if entry is not None:
            self.credits.append(entry.entry_id)

    def cancel(self, draw: Draw, members: list[str] | None = None) -> None:
        choices = self._open_pendings(members)
        if not choices:
            return
        pending_id, at, key = draw(st.sampled_from(choices)), self.tick(draw), self.key()
        ledger = self.ledger
        self._record(f"cancel {pending_id}", lambda: ledger.cancel(pending_id, at=at, key=key))
        self.settled.add(pending_id)

    def spend(self, draw: Draw, members: list[str] | None = None) -> None:
        member = self._member(draw, members)
        balance = self.ledger.balance(member)
        if balance == 0:
            return
        amount, at, key = draw(st.integers(1, balance)), self.tick(draw), self.key()
        ledger = self.ledger
        entries = self._record(
            f"spend {member} {amount}",
            lambda: ledger.spend(member, amount, reason="shop", at=at, key=key),
        )
        assert -sum(e.points for e in entries) == amount
        assert {self.root(e.member) for e in entries} == {self.root(member)}

    def overspend(self, draw: Draw, members: list[str] | None = None) -> None:
        member = self._member(draw, members)
        balance = self.ledger.balance(member)
        amount = balance + draw(points)
        length = len(self.ledger)
        with pytest.raises(InsufficientPoints) as caught:
            self.ledger.spend(member, amount, reason="shop", at=self.tick(draw), key=self.key())
        assert (caught.value.requested, caught.value.balance) == (amount, balance)
        assert len(self.ledger) == length

    def reverse(self, draw: Draw, members: list[str] | None = None) -> None:
        people = None if members is None else {self.root(m) for m in members}
        choices = [
            c
            for c in self.credits
            if people is None or self.root(self.ledger.entry(c).member) in people
        ]
        if not choices:
            return
        credit_id, at, key = draw(st.sampled_from(choices)), self.tick(draw), self.key()
        ledger = self.ledger
        if credit_id in self.reversed:
            length = len(ledger)
            with pytest.raises(InvalidOperation):
                ledger.reverse(credit_id, at=at, reason="fraud", key=key)
            assert len(ledger) == length
            return
        entries = self._record(
            f"reverse {credit_id}",
            lambda: ledger.reverse(credit_id, at=at, reason="fraud", key=key),
        )
        assert entries[0].refers_to == credit_id
        self.reversed.add(credit_id)

    def expire(self, draw: Draw, members: list[str] | None = None) -> None:
        self.ledger.expire(self.tick(draw))

    # ------------------------------------------------------------ merging

    def merge(self, survivor: str, absorbed: str) -> None:
        merge_members(self.graph, self.ledger, survivor, absorbed, PROVENANCE)

    def unmerge(self, absorbed: str) -> tuple[Member, Member]:
        return unmerge_members(self.graph, self.ledger, absorbed, PROVENANCE)

    def pre_merges(self, draw: Draw) -> None:
        """Some merges already done (so survivors may hold merged accounts)."""
        for _ in range(draw(st.integers(0, 2))):
            top = self.top()
            if len(top) < 3:
                return
            survivor, absorbed = draw(st.permutations(top))[:2]
            self.merge(survivor, absorbed)


def check_accounts(world: World) -> None:
    """Balances, entries and lots agree for every account and every person; none negative."""
    ledger, graph = world.ledger, world.graph
    for account in world.ids:
        own = ledger.account_entries(account)
        assert all(e.member == account for e in own)
        assert ledger.account_balance(account) == sum(e.points for e in own) >= 0, account
    for person in world.top():
        accounts = world.accounts(person)
        balance = ledger.balance(person)
        assert balance == sum(ledger.account_balance(a) for a in accounts) >= 0
        assert balance == sum(e.points for e in ledger.entries(person))
        lots = ledger.lots(person)
        assert balance == sum(left for _, left, _ in lots)
        assert all(ledger.entry(i).member in accounts for i, _, _ in lots)
        assert {e.entry_id for e in ledger.entries(person)} == {
            e.entry_id for a in accounts for e in ledger.account_entries(a)
        }
        for account in accounts:
            assert ledger.balance(account) == balance, "merged accounts read as one"
            assert ledger.merged_into(account) == graph.merged_into(account)
    # Identities resolve to the person holding them.
    for identity, first_owner in world.owner.items():
        found = graph.find(identity)
        assert found is not None
        assert found.member_id == world.root(first_owner)
        assert identity in found.identities


def snapshot(world: World, member: str) -> dict[str, Any]:
    ledger = world.ledger
    return {
        "member": world.graph.get(member),
        "balance": ledger.balance(member),
        "account_balance": ledger.account_balance(member),
        "account_entries": ledger.account_entries(member),
        "entries": ledger.entries(member),
        "lots": ledger.lots(member),
        "pending": ledger.pending_points(member),
        "credits": ledger.lifetime_credits(member),
        "found": {i: world.graph.find(i) for i in world.graph.get(member).identities},
    }


def cap_days(ledger: Ledger, members: list[str]) -> set[datetime]:
    return {
        e.at
        for m in members
        for e in ledger.entries(m)
        if e.reason == CAPPED and e.kind is EntryKind.CREDIT
    }


# --------------------------------------------------------------------------- merge


@MERGE_SETTINGS
@given(members=member_lists(), cap=st.integers(0, 40), data=st.data())
def test_merge_keeps_every_entry_and_the_total(
    members: list[Member], cap: int, data: st.DataObject
) -> None:
    world = World(members, cap)
    world.activity(data.draw, data.draw(st.integers(0, 25)))
    world.pre_merges(data.draw)
    world.activity(data.draw, data.draw(st.integers(0, 10)))
    survivor, absorbed = data.draw(st.permutations(world.top()))[:2]
    ledger, graph = world.ledger, world.graph

    everything = {e.entry_id: e for e in ledger.entries()}
    order = list(everything)
    accounts = {a: ledger.account_entries(a) for a in world.ids}
    account_balances = {a: ledger.account_balance(a) for a in world.ids}
    before = {m: snapshot(world, m) for m in (survivor, absorbed)}
    days = cap_days(ledger, [survivor, absorbed])
    caps_used = {
        at: ledger.cap_used(survivor, CAPPED, at) + ledger.cap_used(absorbed, CAPPED, at)
        for at in days
    }

    world.merge(survivor, absorbed)

    assert {e.entry_id: e for e in ledger.entries()} == everything, "an entry changed"
    assert {a: ledger.account_entries(a) for a in world.ids} == accounts
    assert {a: ledger.account_balance(a) for a in world.ids} == account_balances
    merged = ledger.entries(survivor)
    union = {e.entry_id for m in (survivor, absorbed) for e in before[m]["entries"]}
    assert [e.entry_id for e in merged] == [i for i in order if i in union]
    assert all(e == everything[e.entry_id] for e in merged)
    total = before[survivor]["balance"] + before[absorbed]["balance"]
    assert ledger.balance(survivor) == total
    assert ledger.balance(absorbed) == total, "the absorbed member reads as the survivor"
    merged_lots = ledger.lots(survivor)
    assert Counter(merged_lots) == Counter(before[survivor]["lots"] + before[absorbed]["lots"])
    # One set of lots, in spending order across both accounts.
    assert merged_lots == sorted(
        merged_lots, key=lambda lot: (lot[2] is None, lot[2] or T0, order.index(lot[0]))
    )
    assert (
        ledger.pending_points(survivor) == before[survivor]["pending"] + before[absorbed]["pending"]
    )
    assert (
        ledger.lifetime_credits(survivor)
        == before[survivor]["credits"] + before[absorbed]["credits"]
    )
    for at, used in caps_used.items():
        assert ledger.cap_used(survivor, CAPPED, at) == used, "one daily cap for the person"

    # The identity graph: one person, reached from every identity of both.
    survivor_after = graph.get(survivor)
    assert absorbed not in graph
    assert graph.merged_into(absorbed) == survivor
    assert ledger.merged_into(absorbed) == survivor
    for identity in (
        *before[survivor]["member"].identities,
        *before[absorbed]["member"].identities,
    ):
        found = graph.find(identity)
        assert found is not None
        assert found.member_id == survivor
        assert identity in survivor_after.identities
    assert len(survivor_after.identities) == len(before[survivor]["member"].identities) + len(
        before[absorbed]["member"].identities
    )
    check_accounts(world)


@MERGE_SETTINGS
@given(
    times=st.lists(st.none() | instants, min_size=4, max_size=4),
    roles=st.lists(st.sampled_from(list(Role)), min_size=2, max_size=2),
    survivor_first=st.booleans(),
)
def test_merge_accepts_any_two_members(
    times: list[datetime | None], roles: list[Role], survivor_first: bool
) -> None:
    """Any two valid members merge (and unmerge), whatever their join and leave times."""
    members = []
    for i in range(2):
        joined_at, left_at = times[2 * i], times[2 * i + 1]
        if joined_at is not None and left_at is not None and left_at < joined_at:
            joined_at, left_at = left_at, joined_at
        members.append(
            Member(
                member_id=f"m{i}",
                identities=[PlatformIdentity("telegram", str(i))],
                joined_at=joined_at,
                left_at=left_at,
                role=roles[i],
            )
        )
    survivor, absorbed = ("m0", "m1") if survivor_first else ("m1", "m0")
    world = World(members, 20)
    world.merge(survivor, absorbed)
    merged = world.graph.get(survivor)
    joined = [m.joined_at for m in members if m.joined_at is not None]
    assert merged.joined_at == (min(joined) if joined else None)
    assert merged.role == max(roles, key=lambda role: role.rank)
    restored, back = world.unmerge(absorbed)
    assert {restored, back} == set(members)


# --------------------------------------------------------------------------- unmerge


@MERGE_SETTINGS
@given(members=member_lists(), cap=st.integers(0, 40), data=st.data())
def test_unmerge_restores_both_members_exactly(
    members: list[Member], cap: int, data: st.DataObject
) -> None:
    world = World(members, cap)
    world.activity(data.draw, data.draw(st.integers(0, 25)))
    world.pre_merges(data.draw)
    survivor, absorbed = data.draw(st.permutations(world.top()))[:2]
    ledger, graph = world.ledger, world.graph
    before = {m: snapshot(world, m) for m in (survivor, absorbed)}
    everyone = {m: snapshot(world, m) for m in world.top()}
    length = len(ledger)

    world.merge(survivor, absorbed)
    restored = world.unmerge(absorbed)

    assert restored == (before[survivor]["member"], before[absorbed]["member"])
    for member in (survivor, absorbed):
        now = snapshot(world, member)
        for field, value in before[member].items():
            assert now[field] == value, f"{member}: {field} changed"
        assert ledger.merged_into(member) is None
        assert graph.merged_into(member) is None
    assert {m: snapshot(world, m) for m in world.top()} == everyone
    assert len(ledger) == length
    check_accounts(world)


@MERGE_SETTINGS
@given(members=member_lists(), cap=st.integers(0, 40), data=st.data())
def test_unmerge_after_activity_keeps_each_account_whole(
    members: list[Member], cap: int, data: st.DataObject
) -> None:
    world = World(members, cap)
    world.activity(data.draw, data.draw(st.integers(0, 20)))
    world.pre_merges(data.draw)
    survivor, absorbed = data.draw(st.permutations(world.top()))[:2]
    ledger = world.ledger
    world.merge(survivor, absorbed)
    # Activity on the merged person, through either member id.
    world.activity(data.draw, data.draw(st.integers(1, 25)), [survivor, absorbed])
    merged_balance = ledger.balance(survivor)
    merged_entries = {e.entry_id: e for e in ledger.entries(survivor)}
    merged_pending = ledger.pending_points(survivor)

    world.unmerge(absorbed)

    for member in (survivor, absorbed):
        own = sum(e.points for e in ledger.account_entries(member))
        assert ledger.account_balance(member) == own >= 0, f"{member}'s account is not whole"
        assert ledger.balance(member) == sum(e.points for e in ledger.entries(member)) >= 0
        assert ledger.balance(member) == sum(left for _, left, _ in ledger.lots(member))
    assert ledger.balance(survivor) + ledger.balance(absorbed) == merged_balance
    assert ledger.pending_points(survivor) + ledger.pending_points(absorbed) == merged_pending
    split = {e.entry_id: e for m in (survivor, absorbed) for e in ledger.entries(m)}
    assert split == merged_entries, "unmerging lost or changed entries"
    assert not set(ledger.entries(survivor)) & set(ledger.entries(absorbed))
    check_accounts(world)


@MERGE_SETTINGS
@given(cap=st.integers(0, 40), survivor_first=st.booleans(), data=st.data())
def test_replaying_a_key_across_a_merge_and_an_unmerge_is_a_no_op(
    cap: int, survivor_first: bool, data: st.DataObject
) -> None:
    """An operation replayed with its key returns its first result, merged or not."""
    members = [
        Member(member_id=f"m{i}", identities=[PlatformIdentity("telegram", str(i))])
        for i in range(2)
    ]
    survivor, absorbed = ("m0", "m1") if survivor_first else ("m1", "m0")
    world = World(members, cap)
    world.activity(data.draw, data.draw(st.integers(0, 8)))
    world.merge(survivor, absorbed)
    world.activity(data.draw, data.draw(st.integers(1, 8)))
    ledger = world.ledger
    for phase in ("merged", "unmerged"):
        if phase == "unmerged":
            world.unmerge(absorbed)
        for what, replay, result in world.done:
            length = len(ledger)
            try:
                again = replay()
            except DuplicateEntry as error:
                raise AssertionError(f"{phase}: replaying '{what}' raised {error}") from None
            assert again == result, f"{phase}: replaying '{what}' gave another result"
            assert len(ledger) == length, f"{phase}: replaying '{what}' wrote entries"


# --------------------------------------------------------------------------- state machine


class LedgerMachine(RuleBasedStateMachine):
    """Every ledger operation and merges/unmerges, in any order."""

    world: World

    @initialize(members=member_lists(min_size=3), cap=st.integers(0, 40))
    def setup(self, members: list[Member], cap: int) -> None:
        self.world = World(members, cap)

    @rule(data=st.data())
    def award(self, data: st.DataObject) -> None:
        self.world.award(data.draw)

    @rule(data=st.data())
    def award_pending(self, data: st.DataObject) -> None:
        self.world.pending(data.draw)

    @rule(data=st.data())
    def confirm(self, data: st.DataObject) -> None:
        self.world.confirm(data.draw)

    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        self.world.cancel(data.draw)

    @rule(data=st.data())
    def spend(self, data: st.DataObject) -> None:
        self.world.spend(data.draw)

    @rule(data=st.data())
    def overspend(self, data: st.DataObject) -> None:
        self.world.overspend(data.draw)

    @rule(data=st.data())
    def reverse(self, data: st.DataObject) -> None:
        self.world.reverse(data.draw)

    @rule(data=st.data())
    def expire(self, data: st.DataObject) -> None:
        self.world.expire(data.draw)

    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        world = self.world
        if not world.done:
            return
        what, replay, result = data.draw(st.sampled_from(world.done))
        length = len(world.ledger)
        balances = {m: world.ledger.balance(m) for m in world.ids}
        try:
            again = replay()
        except DuplicateEntry:  # see test_replaying_a_key_across_a_merge_and_an_unmerge_is_a_no_op
            again = result
        assert again == result, f"replaying '{what}' gave another result"
        assert len(world.ledger) == length
        assert {m: world.ledger.balance(m) for m in world.ids} == balances

    @rule(data=st.data())
    def merge(self, data: st.DataObject) -> None:
        world = self.world
        top = world.top()
        if len(top) < 2:
            return
        survivor, absorbed = data.draw(st.permutations(top))[:2]
        total = world.ledger.balance(survivor) + world.ledger.balance(absorbed)
        length = len(world.ledger)
        world.merge(survivor, absorbed)
        assert world.ledger.balance(survivor) == total
        assert len(world.ledger) == length

    @rule(data=st.data())
    def unmerge(self, data: st.DataObject) -> None:
        world = self.world
        # Any member merged into someone who is not merged themselves.
        choices = [a for a in world.absorbed() if world.graph.merged_into(a) in world.graph]
        if not choices:
            return
        absorbed = data.draw(st.sampled_from(choices))
        survivor = world.graph.merged_into(absorbed)
        assert survivor is not None
        total = world.ledger.balance(survivor)
        length = len(world.ledger)
        world.unmerge(absorbed)
        assert world.ledger.balance(survivor) + world.ledger.balance(absorbed) == total
        assert len(world.ledger) == length

    @rule(data=st.data())
    def refused_merges(self, data: st.DataObject) -> None:
        """Merging someone into themselves or into an absorbed member changes nothing."""
        world = self.world
        graph, ledger = world.graph, world.ledger
        member = data.draw(st.sampled_from(world.ids))
        others = [m for m in world.ids if m != member]
        other = data.draw(st.sampled_from(others))
        if member in graph and other in graph:
            pairs = [(member, member)]
        else:
            pairs = [(member, other), (other, member)]
        for survivor, absorbed in pairs:
            merged = {m: graph.merged_into(m) for m in world.ids}
            try:
                world.merge(survivor, absorbed)
            except (InvalidOperation, LookupError):
                pass
            else:
                raise AssertionError(f"merged {absorbed} into {survivor}")
            assert {m: graph.merged_into(m) for m in world.ids} == merged
            assert {m: ledger.merged_into(m) for m in world.ids} == merged

    @invariant()
    def accounts_add_up(self) -> None:
        if hasattr(self, "world"):
            check_accounts(self.world)


LedgerMachine.TestCase.settings = settings(
    max_examples=100,
    phases=PHASES,
    report_multiple_bugs=False,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestLedgerMachine = LedgerMachine.TestCase
