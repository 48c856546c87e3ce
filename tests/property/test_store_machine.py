"""A SQLite store keeps exactly what the pure model holds, whatever happens to it.

A hypothesis state machine runs random operations on the model (a
:class:`~communitykit.model.Ledger` with a daily cap, and an
:class:`~communitykit.model.IdentityGraph`): awards (capped and expiring),
spends, reversals, pending credits confirmed or cancelled, expiry as time
passes, members added, updated, merged and unmerged. After every step it commits
what changed, as the engine does (the ledger entries beyond those committed
before, the members changed, the links written), to a SQLite store, and checks
that the store reads back what the model holds: the same entries, the same
members, the same link history, and balances that add up.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import attrs
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from communitykit._errors import InsufficientPoints, InvalidOperation
from communitykit.model import (
    EntryKind,
    IdentityGraph,
    Ledger,
    LinkMethod,
    LinkProvenance,
    Member,
    PlatformIdentity,
    Role,
    merge_members,
    unmerge_members,
)
from communitykit.store import Batch, SQLiteStore

T0 = datetime(2026, 3, 28, 22, 0, tzinfo=UTC)
ZONES = (UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5)))
REASONS = ("message", "bonus")  # "message" is capped at 10 points a day

zones = st.sampled_from(ZONES)
picks = st.integers(min_value=0, max_value=1_000)
tags = st.frozensets(st.sampled_from(("vip", "camp", "早起", "silent")), max_size=3)


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.mkdtemp(prefix="ck-store-machine-")
        self.store = SQLiteStore(Path(self.tmp) / "community.db")
        self.store.open()
        self.ledger = Ledger("Asia/Shanghai", daily_caps={"message": 10})
        self.graph = IdentityGraph()
        self.now = T0
        self.keys = itertools.count()
        self.serial = itertools.count()
        self.absorbed: list[str] = []  # merged-away member ids, in merge order
        self.committed_entries = 0
        self.committed_links = 0
        self.changed: set[str] = set()
        self.removed: set[str] = set()
        # moderation: what rules remember, who is in which group, the audit trail
        self.rule_states: dict[tuple[str, str], dict[str, object]] = {}
        self.memberships: dict[tuple[str, str], datetime] = {}
        self.audit: list[tuple[str, str, str]] = []  # rule, member, explanation

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ------------------------------------------------------------------ helpers

    def at(self, zone: timezone) -> datetime:
        return self.now.astimezone(zone)

    def key(self) -> str:
        return f"op-{next(self.keys)}"

    def member_ids(self) -> list[str]:
        return sorted(member.member_id for member in self.graph)

    def pick(self, index: int) -> str:
        ids = self.member_ids()
        return ids[index % len(ids)]

    def entry_ids(self, kind: EntryKind) -> list[str]:
        return [e.entry_id for e in self.ledger.entries() if e.kind is kind]

    def provenance(self, method: LinkMethod, zone: timezone) -> LinkProvenance:
        return LinkProvenance(method=method, at=self.at(zone), by="op:test", note="machine")

    def commit(self) -> None:
        """Write what changed since the last commit, as the engine does."""
        entries = self.ledger.entries()[self.committed_entries :]
        links = self.graph.links()[self.committed_links :]
        members = {m: self.graph.get(m) for m in sorted(self.changed) if m in self.graph}
        removed = {m for m in self.removed if m not in self.graph}
        self.store.commit(
            Batch(entries=entries, links=links, members=members, removed_members=removed)
        )
        self.committed_entries += len(entries)
        self.committed_links += len(links)
        self.changed.clear()
        self.removed.clear()

    def short(self, credit_id: str) -> bool:
        """Whether the credit's owner holds fewer points than the credit gave."""
        credit = self.ledger.entry(credit_id)
        return self.ledger.balance(credit.member) < credit.points

    def root(self, account: str) -> str:
        while (parent := self.ledger.merged_into(account)) is not None:
            account = parent
        return account

    # ------------------------------------------------------------------ members

    @initialize(zone=zones)
    def two_members_with_points(self, zone: timezone) -> None:
        """Start where operations meet: two members holding lots, one of them expiring."""
        for _ in range(2):
            self.add_member(zone, discord=False, tags=frozenset(), paid=None)
        at = self.at(zone)
        self.ledger.award("m0", 10, reason="bonus", at=at, key=self.key())
        self.ledger.award(
            "m0", 5, reason="message", at=at, key=self.key(), expires_at=at + timedelta(hours=6)
        )
        self.ledger.award("m1", 8, reason="bonus", at=at, key=self.key())
        self.commit()

    @precondition(lambda self: len(self.graph) < 4)  # few members: operations meet
    @rule(
        zone=zones,
        discord=st.booleans(),
        tags=tags,
        paid=st.none() | st.dates(date(2026, 1, 1), date(2027, 12, 31)),
    )
    def add_member(
        self, zone: timezone, discord: bool, tags: frozenset[str], paid: date | None
    ) -> None:
        n = next(self.serial)
        identities = [PlatformIdentity("telegram", f"t{n}")]
        if discord:
            identities.insert(0, PlatformIdentity("discord", f"d{n}"))
        member = Member(
            member_id=f"m{n}",
            identities=identities,
            display_name=f"member {n}",
            joined_at=self.at(zone),
            tags=tags,
            paid_until=paid,
        )
        self.graph.add(member, self.provenance(LinkMethod.JOINED, zone))
        self.changed.add(member.member_id)
        self.commit()

    @precondition(lambda self: len(self.graph) > 0)
    @rule(
        index=picks,
        name=st.text(max_size=8),
        tags=tags,
        role=st.sampled_from(Role),
        paid=st.none() | st.dates(date(2026, 1, 1), date(2027, 12, 31)),
        zone=zones,
        left=st.booleans(),
    )
    def update_member(
        self,
        index: int,
        name: str,
        tags: frozenset[str],
        role: Role,
        paid: date | None,
        zone: timezone,
        left: bool,
    ) -> None:
        member = self.graph.get(self.pick(index))
        left_at = self.at(zone) if left and member.joined_at is not None else None
        self.graph.update(
            attrs.evolve(
                member, display_name=name, tags=tags, role=role, paid_until=paid, left_at=left_at
            )
        )
        self.changed.add(member.member_id)
        self.commit()

    @precondition(lambda self: len(self.graph) > 1)
    @rule(survivor=picks, absorbed=picks, spend_all=st.booleans(), zone=zones)
    def merge(self, survivor: int, absorbed: int, spend_all: bool, zone: timezone) -> None:
        ids = self.member_ids()
        kept, gone = ids[survivor % len(ids)], ids[absorbed % len(ids)]
        if kept == gone:
            return
        merge_members(
            self.graph, self.ledger, kept, gone, self.provenance(LinkMethod.OPERATOR, zone)
        )
        self.absorbed.append(gone)
        self.changed.add(kept)
        self.changed.discard(gone)
        self.removed.add(gone)
        balance = self.ledger.balance(kept)
        if spend_all and balance:  # one debit per account that pays
            self.ledger.spend(kept, balance, reason="shop", at=self.at(zone), key=self.key())
        self.commit()

    @precondition(lambda self: bool(self.absorbed))
    @rule(index=picks, zone=zones)
    def unmerge(self, index: int, zone: timezone) -> None:
        gone = self.absorbed[index % len(self.absorbed)]
        try:
            survivor, back = unmerge_members(
                self.graph, self.ledger, gone, self.provenance(LinkMethod.OPERATOR, zone)
            )
        except InvalidOperation:
            return  # its survivor was merged into another member since
        self.absorbed.remove(gone)
        self.removed.discard(back.member_id)
        self.changed.update((survivor.member_id, back.member_id))
        self.commit()

    # ------------------------------------------------------------------ points

    @precondition(lambda self: len(self.graph) > 0)
    @rule(
        index=picks,
        points=st.integers(1, 30),
        reason=st.sampled_from(REASONS),
        expires_in=st.none() | st.sampled_from((1, 6, 24, 72)),
        zone=zones,
    )
    def award(
        self, index: int, points: int, reason: str, expires_in: int | None, zone: timezone
    ) -> None:
        at = self.at(zone)
        expires_at = None if expires_in is None else at + timedelta(hours=expires_in)
        self.ledger.award(
            self.pick(index), points, reason=reason, at=at, key=self.key(), expires_at=expires_at
        )
        self.commit()

    @precondition(lambda self: len(self.graph) > 0)
    @rule(index=picks, points=st.integers(1, 40), all_in=st.booleans(), zone=zones)
    def spend(self, index: int, points: int, all_in: bool, zone: timezone) -> None:
        member = self.pick(index)
        if all_in:  # spend what there is, so that a later reversal finds its points gone
            points = self.ledger.balance(member)
            if points == 0:
                return
        try:
            self.ledger.spend(member, points, reason="shop", at=self.at(zone), key=self.key())
        except InsufficientPoints:
            return
        self.commit()

    @precondition(lambda self: any(e.kind is EntryKind.CREDIT for e in self.ledger.entries()))
    @rule(index=picks, spent=st.booleans(), zone=zones)
    def reverse(self, index: int, spent: bool, zone: timezone) -> None:
        credits = self.entry_ids(EntryKind.CREDIT)
        if spent:  # prefer credits whose points were spent: some stay unrecovered
            taken = [c for c in credits if self.short(c)]
            credits = taken or credits
        try:
            self.ledger.reverse(
                credits[index % len(credits)], at=self.at(zone), reason="fraud", key=self.key()
            )
        except InvalidOperation:
            return  # already reversed
        self.commit()

    @precondition(lambda self: len(self.graph) > 0)
    @rule(index=picks, points=st.integers(1, 30), zone=zones)
    def reverse_after_spending(self, index: int, points: int, zone: timezone) -> None:
        """A credit found fraudulent after the member spent it: points stay unrecovered."""
        member, at = self.pick(index), self.at(zone)
        credit = self.ledger.award(member, points, reason="bonus", at=at, key=self.key())
        assert credit is not None
        self.ledger.spend(member, self.ledger.balance(member), reason="shop", at=at, key=self.key())
        self.ledger.reverse(credit.entry_id, at=at, reason="fraud", key=self.key())
        self.commit()

    @precondition(lambda self: len(self.graph) > 0)
    @rule(index=picks, points=st.integers(1, 30), reason=st.sampled_from(REASONS), zone=zones)
    def award_pending(self, index: int, points: int, reason: str, zone: timezone) -> None:
        self.ledger.award_pending(
            self.pick(index), points, reason=reason, at=self.at(zone), key=self.key()
        )
        self.commit()

    @precondition(lambda self: any(e.kind is EntryKind.PENDING for e in self.ledger.entries()))
    @rule(index=picks, confirm=st.booleans(), zone=zones)
    def settle_pending(self, index: int, confirm: bool, zone: timezone) -> None:
        pending = self.entry_ids(EntryKind.PENDING)
        entry_id = pending[index % len(pending)]
        try:
            if confirm:
                self.ledger.confirm(entry_id, at=self.at(zone))
            else:
                self.ledger.cancel(entry_id, at=self.at(zone))
        except InvalidOperation:
            return  # already settled
        self.commit()

    @rule(minutes=st.sampled_from((5, 90, 12 * 60, 3 * 24 * 60)))
    def time_passes_and_points_expire(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)
        self.ledger.expire(self.now)
        self.commit()

    # ------------------------------------------------------------------ checks

    # --------------------------------------------------------------- moderation

    @rule(
        rule_name=st.sampled_from(("flood", "captcha", "warning_ladder")),
        index=picks,
        state=st.one_of(
            st.just({}),
            st.dictionaries(
                st.sampled_from(("warnings", "code", "n", "备注")),
                st.one_of(st.integers(-5, 5), st.text(max_size=6), st.lists(st.booleans())),
                min_size=1,
                max_size=3,
            ),
        ),
    )
    def a_rule_remembers_or_forgets(
        self, rule_name: str, index: int, state: dict[str, object]
    ) -> None:
        member_id = self.pick(index)
        key = (rule_name, member_id)
        if state:
            self.rule_states[key] = state
            self.store.commit(Batch(rule_states={key: state}))
        else:
            self.rule_states.pop(key, None)
            self.store.commit(Batch(rule_states={key: None}))

    @rule(group=st.sampled_from(("main", "side")), index=picks, joins=st.booleans(), zone=zones)
    def a_member_joins_or_leaves_a_group(
        self, group: str, index: int, joins: bool, zone: timezone
    ) -> None:
        key = (group, self.pick(index))
        if joins:
            self.memberships[key] = self.at(zone)
            self.store.commit(Batch(group_members={key: self.at(zone)}))
        else:
            self.memberships.pop(key, None)
            self.store.commit(Batch(group_members={key: None}))

    @rule(index=picks, rule_name=st.sampled_from(("links", "keywords")), zone=zones)
    def a_verdict_is_audited(self, index: int, rule_name: str, zone: timezone) -> None:
        from communitykit.model import AuditKind, AuditRecord

        member_id = self.pick(index)
        explanation = f"verdict {len(self.audit)} 说明"
        record = AuditRecord(
            at=self.at(zone),
            kind=AuditKind.VERDICT,
            rule=rule_name,
            member_id=member_id,
            explanation=explanation,
        )
        self.audit.append((rule_name, member_id, explanation))
        self.store.commit(Batch(audit=[record]))

    @invariant()
    def the_store_holds_what_rules_remember(self) -> None:
        assert list(self.store.load_rule_states()) == [
            (rule, member, state) for (rule, member), state in sorted(self.rule_states.items())
        ]
        assert list(self.store.load_group_members()) == [
            (group, member, since) for (group, member), since in sorted(self.memberships.items())
        ]
        trail = list(self.store.audit_trail())
        assert [(r.rule, r.member_id, r.explanation) for r in trail] == self.audit
        assert [r.seq for r in trail] == sorted({r.seq for r in trail})

    @invariant()
    def the_store_holds_what_the_model_holds(self) -> None:
        stored = list(self.store.load_entries())
        assert stored == self.ledger.entries()
        assert list(self.store.load_members()) == sorted(
            self.graph, key=lambda member: member.member_id
        )
        assert list(self.store.load_links()) == self.graph.links()

        per_account: defaultdict[str, int] = defaultdict(int)
        for entry in stored:
            per_account[entry.member] += entry.points
        for account in self.ledger.members():
            assert per_account[account] == self.ledger.account_balance(account)
        per_person: defaultdict[str, int] = defaultdict(int)
        for account, points in per_account.items():
            per_person[self.root(account)] += points
        for member_id in self.member_ids():
            assert per_person[member_id] == self.ledger.balance(member_id)


StoreMachine.TestCase.settings = settings(max_examples=30, stateful_step_count=25)
TestStoreMachine = StoreMachine.TestCase


class WriterStoreMachine(StoreMachine):
    """The same, with every commit written by the store's writer process."""

    def __init__(self) -> None:
        super().__init__()
        self.store._writer_rows = 1


WriterStoreMachine.TestCase.settings = settings(max_examples=15, stateful_step_count=25)
TestWriterStoreMachine = WriterStoreMachine.TestCase
