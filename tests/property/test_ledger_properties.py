"""Properties of the points ledger (``communitykit.model._ledger``).

Random programs of ledger operations (awards with and without expiry, pending
credits, confirmations, cancellations, spends, reversals, expiry with advancing
time, replays of earlier keys) run against a :class:`Ledger` and, side by side,
against a small reference model of lots written here from the module
documentation: a debit takes the lots that expire first (by instant), lots that
never expire last, older lots first on a tie; expiry takes what is left of a lot;
a reversal takes what is left of its own lot first, then the member's other
points, never more than the balance.

Each test names the invariant it checks. Times are drawn around the 2026 DST
transitions of zones with odd rules (30-minute DST, DST at midnight, +12:45).
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from communitykit._errors import (
    DuplicateEntry,
    InsufficientPoints,
    InvalidOperation,
    ModelError,
)
from communitykit.model._ledger import MAX_POINTS, Award, Entry, EntryKind, Ledger

# --------------------------------------------------------------------------- time

DST_ZONES = (
    "America/New_York",
    "Europe/Berlin",
    "Australia/Lord_Howe",  # 30-minute DST
    "America/Santiago",  # DST changes at midnight
    "Asia/Shanghai",  # no DST
    "Pacific/Chatham",  # +12:45 / +13:45
    "UTC",
)


def _transitions(zone: str, year: int = 2026) -> list[tuple[datetime, timedelta, timedelta]]:
    """Every UTC offset change of ``zone`` in ``year``: (instant, offset before, after)."""
    tz = ZoneInfo(zone)
    found = []
    t = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    previous = t.astimezone(tz).utcoffset()
    while t < end:
        following = t + timedelta(hours=1)
        offset = following.astimezone(tz).utcoffset()
        if offset != previous:
            minute = 1
            while (t + timedelta(minutes=minute)).astimezone(tz).utcoffset() == previous:
                minute += 1
            assert previous is not None
            assert offset is not None
            found.append((t + timedelta(minutes=minute), previous, offset))
            previous = offset
        t = following
    return found


TRANSITIONS = {zone: _transitions(zone) for zone in DST_ZONES}


def _anchors() -> list[datetime]:
    """DST transitions, and local midnights around them, of every zone, in UTC."""
    found: set[datetime] = set()
    for zone, changes in TRANSITIONS.items():
        tz = ZoneInfo(zone)
        for instant, _, _ in changes:
            found.add(instant)
            local_day = instant.astimezone(tz).date()
            for shift in (-1, 0, 1, 2):
                day = local_day + timedelta(days=shift)
                for fold in (0, 1):
                    midnight = datetime(day.year, day.month, day.day, tzinfo=tz, fold=fold)
                    found.add(midnight.astimezone(UTC))
    return sorted(found)


ANCHORS = _anchors()

#: Repeated wall-clock hours (folds): (zone, first UTC instant, end), from the transitions.
FOLDS = [
    (zone, instant - (before - after), instant + (before - after))
    for zone, changes in TRANSITIONS.items()
    for instant, before, after in changes
    if after < before
]

# Offsets a caller may hand its times in. Fixed offsets never have a fold, so two
# times in the same one compare correctly whatever Python does with equal tzinfos.
SAFE_ZONES: tuple[tzinfo, ...] = (
    UTC,
    ZoneInfo("UTC"),
    timezone(timedelta(hours=-3)),
    timezone(timedelta(hours=5, minutes=45)),
    timezone(timedelta(hours=-9, minutes=-30)),
    timezone(timedelta(hours=13, minutes=45)),
)
# ... and real zones, whose datetimes may sit in a fold (fold=1).
ANY_ZONES: tuple[tzinfo, ...] = SAFE_ZONES + tuple(ZoneInfo(z) for z in DST_ZONES)

near_anchor = st.builds(
    lambda anchor, seconds: anchor + timedelta(seconds=seconds),
    st.sampled_from(ANCHORS),
    st.one_of(st.integers(-180, 180), st.integers(-36 * 3600, 36 * 3600)),
)
# Wall-clock times in a zone, imaginary ones (in a DST gap) included.
wall_clock = st.one_of(
    st.datetimes(
        min_value=datetime(2026, 3, 1),
        max_value=datetime(2026, 4, 30, 23, 59),
        timezones=st.sampled_from(tuple(ZoneInfo(z) for z in DST_ZONES)),
    ),
    st.datetimes(
        min_value=datetime(2026, 9, 1),
        max_value=datetime(2026, 11, 30, 23, 59),
        timezones=st.sampled_from(tuple(ZoneInfo(z) for z in DST_ZONES)),
    ),
)
instants = st.one_of(near_anchor, wall_clock).map(lambda at: at.astimezone(UTC))
random_offsets = st.integers(-12 * 4, 14 * 4).map(lambda q: timezone(timedelta(minutes=15 * q)))


def _utc(at: datetime | None) -> datetime | None:
    return None if at is None else at.astimezone(UTC)


# --------------------------------------------------------------------------- data

MEMBERS = tuple(f"m{i}" for i in range(6))
REASONS = ("message", "reaction", "bonus")
CAPPED = "message"
points = st.integers(1, 50)
caps = st.integers(0, 40)

# Failing programs are long: no "explain" phase (it re-runs them many times for
# little news) and one bug per test (each distinct bug would be shrunk on its own).
PHASES = tuple(phase for phase in Phase if phase is not Phase.explain)
LEDGER_SETTINGS = settings(
    max_examples=100,
    phases=PHASES,
    report_multiple_bugs=False,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --------------------------------------------------------------------------- reference model


@attrs.define
class Lot:
    """A credit as the reference model sees it."""

    credit_id: str
    member: str
    points: int
    left: int
    expires_at: datetime | None  # UTC
    order: int  # creation order
    expired: int = 0
    reversed: bool = False

    def spending_key(self) -> tuple[bool, datetime, int]:
        return (
            self.expires_at is None,
            self.expires_at or datetime.min.replace(tzinfo=UTC),
            self.order,
        )


@attrs.define
class Pending:
    entry_id: str
    member: str
    amount: int
    reason: str
    expires_at: datetime | None  # UTC
    state: str = "open"  # open, confirmed, cancelled
    default_keys_used: set[str] = attrs.Factory(set)


@attrs.define
class Done:
    """A keyed operation that ran, kept to be replayed or contradicted."""

    kind: str
    key: str | None  # None: the ledger derived the key (confirm/cancel)
    call: Callable[[str | None], Any]
    result: Any
    member: str
    points: int
    reason: str
    pending_id: str | None = None
    credit_id: str | None = None


@attrs.define
class Step:
    """One operation of a program and what the ledger did with it."""

    op: str
    member: str | None
    result: Any = None
    error: BaseException | None = None
    expected_error: type[BaseException] | None = None
    written: list[Entry] = attrs.Factory(list)
    balances_before: dict[str, int] = attrs.Factory(dict)
    balances_after: dict[str, int] = attrs.Factory(dict)
    pending_before: dict[str, int] = attrs.Factory(dict)
    pending_after: dict[str, int] = attrs.Factory(dict)
    length_before: int = 0
    length_after: int = 0
    at: datetime | None = None  # UTC
    points: int = 0
    expected_take: list[tuple[str, int]] | None = None
    expected_grant: int | None = None
    expected_unrecovered: int | None = None
    lot: Lot | None = None  # the credit a reversal undoes
    pending: Pending | None = None
    original: Done | None = None  # what a replay repeats or a conflict contradicts
    lots_mismatch: str | None = None

    @property
    def taken(self) -> list[tuple[str, int]]:
        entries = self.result if isinstance(self.result, tuple) else ()
        return [part for entry in entries for part in entry.lots]


ALL_OPS = {
    "award": 6,
    "pending": 2,
    "confirm": 2,
    "cancel": 1,
    "spend": 4,
    "overspend": 1,
    "reverse": 2,
    "expire": 2,
    "replay": 2,
}


class Program:
    """Draws and runs ledger operations, keeping the reference model in step."""

    def __init__(
        self,
        data: st.DataObject,
        *,
        timezone_name: str = "UTC",
        daily_caps: dict[str, int] | None = None,
        members: int = 4,
        zones: tuple[tzinfo, ...] = SAFE_ZONES,
        reasons: tuple[str, ...] = REASONS,
    ) -> None:
        self.data = data
        self.zone = ZoneInfo(timezone_name)
        self.caps = dict(daily_caps or {})
        self.ledger = Ledger(timezone_name, self.caps)
        self.members = MEMBERS[:members]
        self.zones = zones
        self.reasons = reasons
        self.now = data.draw(st.sampled_from(ANCHORS), label="start") - timedelta(days=1)
        self.lots: dict[str, Lot] = {}
        self.pendings: dict[str, Pending] = {}
        self.done: list[Done] = []
        self.steps: list[Step] = []
        self._keys = itertools.count()
        self._order = itertools.count()

    # ------------------------------------------------------------ drawing

    def draw(self, strategy: st.SearchStrategy[Any], label: str | None = None) -> Any:
        return self.data.draw(strategy, label=label)

    def pick(self, items: list[Any] | tuple[Any, ...]) -> Any:
        """One of ``items`` (drawn by index: cheap to draw and to shrink)."""
        return items[self.draw(st.integers(0, len(items) - 1))]

    def new_key(self) -> str:
        return f"k{next(self._keys)}"

    def tick(self) -> datetime:
        self.now += timedelta(minutes=self.draw(st.integers(0, 30 * 60)))
        return self.now

    def when(self) -> datetime:
        """Mostly now; sometimes earlier than operations already applied."""
        now = self.tick()
        if self.draw(st.integers(0, 3)) == 0:
            return now - timedelta(minutes=self.draw(st.integers(1, 3 * 24 * 60)))
        return now

    def expiry(self, at: datetime) -> datetime | None:
        choice = self.draw(st.sampled_from(("never", "later", "later", "tie")))
        if choice == "never":
            return None
        existing = sorted(
            {lot.expires_at for lot in self.lots.values() if lot.expires_at is not None}
        )
        existing = [e for e in existing if e > at]
        if choice == "tie" and existing:
            return self.pick(existing)
        return at + timedelta(minutes=self.draw(st.integers(1, 4 * 24 * 60)))

    def dress(self, instant: datetime) -> datetime:
        return instant.astimezone(self.draw(st.sampled_from(self.zones)))

    # ------------------------------------------------------------ reference

    def day(self, at: datetime) -> date:
        return at.astimezone(self.zone).date()

    def credited(self, member: str, reason: str, day: date) -> int:
        return sum(
            e.points
            for e in self.ledger.entries(member)
            if e.kind is EntryKind.CREDIT and e.reason == reason and self.day(e.at) == day
        )

    def expected_grant(self, member: str, reason: str, at: datetime, asked: int) -> int:
        cap = self.caps.get(reason)
        if cap is None:
            return asked
        return max(0, min(asked, cap - self.credited(member, reason, self.day(at))))

    def spending_order(self, member: str) -> list[Lot]:
        lots = [lot for lot in self.lots.values() if lot.member == member and lot.left > 0]
        return sorted(lots, key=Lot.spending_key)

    def ref_balance(self, member: str) -> int:
        return sum(lot.left for lot in self.lots.values() if lot.member == member)

    def plan(self, member: str, amount: int, first: Lot | None = None) -> list[tuple[str, int]]:
        order = self.spending_order(member)
        if first is not None:
            order = [first] + [lot for lot in order if lot is not first]
        taken = []
        for lot in order:
            if amount == 0:
                break
            part = min(amount, lot.left)
            if part:
                taken.append((lot.credit_id, part))
                amount -= part
        return taken

    def apply(self, taken: list[tuple[str, int]]) -> None:
        for credit_id, part in taken:
            self.lots[credit_id].left -= part

    def add_lot(self, entry: Entry) -> None:
        self.lots[entry.entry_id] = Lot(
            entry.entry_id,
            entry.member,
            entry.points,
            entry.points,
            _utc(entry.expires_at),
            next(self._order),
        )

    def sync(self, step: Step) -> None:
        """Compare the reference lots with the ledger's; on a difference, note it and resync."""
        for member in self.members:
            actual = [(i, left, _utc(exp)) for i, left, exp in self.ledger.lots(member)]
            expected = [
                (lot.credit_id, lot.left, lot.expires_at) for lot in self.spending_order(member)
            ]
            if actual != expected and step.lots_mismatch is None:
                step.lots_mismatch = f"{member}: ledger lots {actual} != reference {expected}"
        if step.lots_mismatch is None:
            return
        entries = self.ledger.entries()
        for entry in entries:
            if entry.kind is EntryKind.CREDIT and entry.entry_id not in self.lots:
                self.add_lot(entry)
        open_left = {i: left for m in self.members for i, left, _ in self.ledger.lots(m)}
        for lot in self.lots.values():
            lot.left = open_left.get(lot.credit_id, 0)
            lot.expired = sum(
                -e.points
                for e in entries
                if e.kind is EntryKind.EXPIRY and e.refers_to == lot.credit_id
            )

    # ------------------------------------------------------------ running

    def snapshot(self) -> tuple[dict[str, int], dict[str, int]]:
        ledger = self.ledger
        return (
            {m: ledger.balance(m) for m in self.members},
            {m: ledger.pending_points(m) for m in self.members},
        )

    def execute(
        self,
        op: str,
        member: str | None,
        call: Callable[[], Any],
        expected_error: type[BaseException] | None = None,
    ) -> Step:
        step = Step(op, member, expected_error=expected_error)
        step.length_before = len(self.ledger)
        step.balances_before, step.pending_before = self.snapshot()
        try:
            step.result = call()
        except Exception as exc:  # recorded; each test decides what it may be
            step.error = exc
        step.length_after = len(self.ledger)
        step.written = self.ledger.entries_from(step.length_before)
        step.balances_after, step.pending_after = self.snapshot()
        return step

    def run(
        self,
        ops: dict[str, int],
        check: Callable[[Program, Step], None] | None = None,
        max_steps: int = 25,
    ) -> None:
        choices = tuple(op for op, weight in ops.items() for _ in range(weight))
        for _ in range(self.draw(st.integers(1, max_steps), label="steps")):
            op = self.draw(st.sampled_from(choices), label="op")
            step = getattr(self, f"op_{op}")()
            if step is None:
                continue
            self.sync(step)
            self.steps.append(step)
            check_valid_operations_accepted(self, step)
            if check is not None:
                check(self, step)

    # ------------------------------------------------------------ operations

    def op_award(self) -> Step:
        member = self.draw(st.sampled_from(self.members))
        asked = self.draw(points)
        reason = self.draw(st.sampled_from(self.reasons))
        at = self.when()
        expires_at = self.expiry(at)
        at_, expires_ = self.dress(at), None if expires_at is None else self.dress(expires_at)
        key = self.new_key()

        def call(k: str | None) -> Entry | None:
            return self.ledger.award(
                member, asked, reason=reason, at=at_, key=k or "", expires_at=expires_
            )

        grant = self.expected_grant(member, reason, at, asked)
        step = self.execute("award", member, lambda: call(key))
        step.at, step.points, step.expected_grant = at, asked, grant
        if step.error is None:
            if step.result is not None:
                self.add_lot(step.result)
            self.done.append(Done("award", key, call, step.result, member, asked, reason))
        return step

    def op_pending(self) -> Step:
        member = self.draw(st.sampled_from(self.members))
        asked = self.draw(points)
        reason = self.draw(st.sampled_from(self.reasons))
        at = self.when()
        expires_at = self.expiry(at)
        at_, expires_ = self.dress(at), None if expires_at is None else self.dress(expires_at)
        key = self.new_key()

        def call(k: str | None) -> Entry:
            return self.ledger.award_pending(
                member, asked, reason=reason, at=at_, key=k or "", expires_at=expires_
            )

        step = self.execute("pending", member, lambda: call(key))
        step.at, step.points = at, asked
        if step.error is None:
            entry = step.result
            self.pendings[entry.entry_id] = Pending(
                entry.entry_id, member, asked, reason, expires_at
            )
            self.done.append(Done("pending", key, call, entry, member, asked, reason))
        return step

    def _settle(self, op: str) -> Step | None:
        if not self.pendings:
            return None
        pending = self.pick(list(self.pendings.values()))
        key = self.draw(st.sampled_from((None, self.new_key())))
        if key is None and op in pending.default_keys_used:
            return None  # that would be a replay; op_replay does those
        at = self.when()
        at_ = self.dress(at)

        def call(k: str | None) -> Any:
            method = self.ledger.confirm if op == "confirm" else self.ledger.cancel
            return method(pending.entry_id, at=at_, key=k)

        is_open = pending.state == "open"
        grant = 0
        if op == "confirm" and is_open:
            expired = pending.expires_at is not None and pending.expires_at <= at
            grant = (
                0
                if expired
                else self.expected_grant(pending.member, pending.reason, at, pending.amount)
            )
        step = self.execute(
            op, pending.member, lambda: call(key), None if is_open else InvalidOperation
        )
        step.at, step.points, step.pending = at, pending.amount, pending
        step.expected_grant = grant if op == "confirm" else 0
        if step.error is None:
            if is_open:
                pending.state = "confirmed" if op == "confirm" else "cancelled"
            if key is None:
                pending.default_keys_used.add(op)
            if op == "confirm" and step.result is not None:
                self.add_lot(step.result)
            self.done.append(
                Done(
                    op,
                    key,
                    call,
                    step.result,
                    pending.member,
                    pending.amount,
                    pending.reason,
                    pending_id=pending.entry_id,
                )
            )
        return step

    def op_confirm(self) -> Step | None:
        return self._settle("confirm")

    def op_cancel(self) -> Step | None:
        return self._settle("cancel")

    def _spend(self, over: bool) -> Step:
        member = self.draw(st.sampled_from(self.members))
        balance = self.ledger.balance(member)
        amount = balance + self.draw(points) if over else self.draw(points)
        reason = self.draw(st.sampled_from(("shop", "raffle")))
        at = self.when()
        at_ = self.dress(at)
        key = self.new_key()

        def call(k: str | None) -> tuple[Entry, ...]:
            return self.ledger.spend(member, amount, reason=reason, at=at_, key=k or "")

        enough = amount <= balance
        taken = self.plan(member, amount) if enough else None
        step = self.execute(
            "spend", member, lambda: call(key), None if enough else InsufficientPoints
        )
        step.at, step.points, step.expected_take = at, amount, taken
        if step.error is None:
            self.apply(taken or [])
            self.done.append(Done("spend", key, call, step.result, member, amount, reason))
        return step

    def op_spend(self) -> Step:
        return self._spend(over=False)

    def op_overspend(self) -> Step:
        return self._spend(over=True)

    def op_reverse(self) -> Step | None:
        if not self.lots:
            return None
        lot = self.pick(list(self.lots.values()))
        at = self.when()
        at_ = self.dress(at)
        key = self.new_key()
        reason = "fraud"

        def call(k: str | None) -> tuple[Entry, ...]:
            return self.ledger.reverse(lot.credit_id, at=at_, reason=reason, key=k or "")

        taken: list[tuple[str, int]] | None = None
        unrecovered = None
        if not lot.reversed:
            target = lot.points - lot.expired
            recoverable = min(target, self.ref_balance(lot.member))
            taken = self.plan(lot.member, recoverable, first=lot)
            unrecovered = target - recoverable
        step = self.execute(
            "reverse",
            lot.member,
            lambda: call(key),
            InvalidOperation if lot.reversed else None,
        )
        step.at, step.lot = at, lot
        step.expected_take, step.expected_unrecovered = taken, unrecovered
        if step.error is None:
            self.apply(taken or [])
            lot.reversed = True
            self.done.append(
                Done(
                    "reverse",
                    key,
                    call,
                    step.result,
                    lot.member,
                    lot.points,
                    reason,
                    credit_id=lot.credit_id,
                )
            )
        return step

    def op_expire(self) -> Step:
        now = self.tick()
        now_ = self.dress(now)
        due = [
            (lot.credit_id, lot.left)
            for lot in self.lots.values()
            if lot.expires_at is not None and lot.expires_at <= now and lot.left > 0
        ]
        step = self.execute("expire", None, lambda: self.ledger.expire(now_))
        step.at, step.expected_take = now, due
        if step.error is None:
            for credit_id, left in due:
                self.lots[credit_id].left -= left
                self.lots[credit_id].expired += left
        return step

    def op_replay(self) -> Step | None:
        if not self.done:
            return None
        done = self.pick(self.done)
        step = self.execute("replay", done.member, lambda: done.call(done.key))
        step.original = done
        return step

    def op_conflict(self) -> Step | None:
        """Use an earlier key for a different operation.

        Half of the time the twin of the earlier operation: the same member, points
        and reason (or the same pending credit) but another kind of operation.
        """
        candidates = [d for d in self.done if d.key is not None]
        if not candidates:
            return None
        if self.draw(st.booleans(), label="recent"):
            candidates = candidates[-2:]
        done = self.pick(candidates)
        key = done.key
        assert key is not None
        twin = self.draw(st.booleans(), label="twin")
        kinds = ("award", "pending", "spend", "confirm", "cancel", "reverse")
        if twin:
            kinds = tuple(k for k in kinds if k != done.kind and k != "reverse")
            if done.pending_id is None:
                kinds = tuple(k for k in kinds if k not in ("confirm", "cancel"))
        kind = self.draw(st.sampled_from(kinds))
        at_ = self.dress(self.tick())
        call: Callable[[], Any]
        if kind in ("award", "pending", "spend"):
            member, amount, reason = done.member, done.points, done.reason
            change = (
                "none"
                if twin
                else self.draw(
                    st.sampled_from(
                        ("member", "points", "reason")
                        if kind == done.kind
                        else ("none", "member", "points", "reason")
                    )
                )
            )
            if change == "member":
                member = self.pick([m for m in MEMBERS if m != member])
            elif change == "points":
                amount += self.draw(points)
            elif change == "reason":
                reason += "-other"
            method = {
                "award": self.ledger.award,
                "pending": self.ledger.award_pending,
                "spend": self.ledger.spend,
            }[kind]
            call = partial(method, member, amount, reason=reason, at=at_, key=key)
        elif kind in ("confirm", "cancel"):
            if twin:
                pending_id = done.pending_id
            else:
                pendings = [
                    p
                    for p in self.pendings.values()
                    if kind != done.kind or p.entry_id != done.pending_id
                ]
                if not pendings:
                    return None
                pending_id = self.pick(pendings).entry_id
            assert pending_id is not None
            settle = self.ledger.confirm if kind == "confirm" else self.ledger.cancel
            call = partial(settle, pending_id, at=at_, key=key)
        else:
            lots = [
                lot
                for lot in self.lots.values()
                if kind != done.kind or lot.credit_id != done.credit_id
            ]
            if not lots:
                return None
            credit_id = self.pick(lots).credit_id
            call = partial(self.ledger.reverse, credit_id, at=at_, reason="fraud", key=key)
        step = self.execute(f"conflict:{kind}", done.member, call, DuplicateEntry)
        step.original = done
        return step


def check_valid_operations_accepted(program: Program, step: Step) -> None:
    """Every operation the rules allow is applied, whatever test runs the program."""
    if step.op in ("replay",) or step.op.startswith("conflict"):
        return
    if step.expected_error is None:
        assert step.error is None, f"{step.op} was refused: {step.error!r}"


def _account_totals(ledger: Ledger, member: str) -> tuple[int, int, int]:
    return (
        ledger.balance(member),
        sum(e.points for e in ledger.entries(member)),
        sum(left for _, left, _ in ledger.lots(member)),
    )


# --------------------------------------------------------------------------- balance


@LEDGER_SETTINGS
@given(data=st.data(), cap=caps)
def test_balance_equals_sum_of_entries(data: st.DataObject, cap: int) -> None:
    program = Program(data, daily_caps={CAPPED: cap})

    def check(program: Program, step: Step) -> None:
        ledger = program.ledger
        for member in program.members:
            balance, by_entries, by_lots = _account_totals(ledger, member)
            assert balance == by_entries, f"{member}: balance {balance} != entries {by_entries}"
            assert balance == by_lots, f"{member}: balance {balance} != lots {by_lots}"
            assert all(left > 0 for _, left, _ in ledger.lots(member))
        assert sum(len(ledger.entries(m)) for m in ledger.members()) == len(ledger)
        assert sum(e.points for e in step.written) == sum(step.balances_after.values()) - sum(
            step.balances_before.values()
        )

    program.run(ALL_OPS, check)


@LEDGER_SETTINGS
@given(data=st.data(), cap=caps)
def test_balance_never_negative(data: st.DataObject, cap: int) -> None:
    program = Program(data, daily_caps={CAPPED: cap})

    def check(program: Program, step: Step) -> None:
        for member, balance in step.balances_after.items():
            assert balance >= 0, f"{member} has a negative balance {balance}"
        if step.op != "spend":
            return
        before = step.balances_before[step.member or ""]
        if step.points > before:
            error = step.error
            assert isinstance(error, InsufficientPoints), f"overspend gave {error!r}"
            assert error.requested == step.points
            assert error.balance == before
            assert error.member == step.member
            assert step.length_after == step.length_before, "a refused spend wrote entries"
            assert step.balances_after == step.balances_before
        else:
            assert step.error is None
            assert -sum(e.points for e in step.result) == step.points
            assert step.balances_after[step.member or ""] == before - step.points

    program.run({**ALL_OPS, "overspend": 3}, check)


# --------------------------------------------------------------------------- idempotency


@settings(LEDGER_SETTINGS, max_examples=200)
@given(data=st.data(), cap=st.integers(0, 12))
def test_replaying_an_idempotency_key_is_a_no_op(data: st.DataObject, cap: int) -> None:
    # Mostly the capped reason: awards capped to nothing have keys too.
    program = Program(data, daily_caps={CAPPED: cap}, reasons=(CAPPED, CAPPED, "bonus"))

    def check(program: Program, step: Step) -> None:
        if step.op == "replay":
            original = step.original
            assert original is not None
            assert step.error is None, f"replaying {original.kind} raised {step.error!r}"
            assert step.result == original.result, f"replaying {original.kind} gave another result"
        elif step.op.startswith("conflict"):
            original = step.original
            assert original is not None
            assert isinstance(step.error, DuplicateEntry), (
                f"key {original.key!r} of a {original.kind} reused for a {step.op[9:]} "
                f"gave {step.error!r} / {step.result!r}, not DuplicateEntry"
            )
        else:
            return
        assert step.length_after == step.length_before, f"{step.op} wrote {step.written}"
        assert step.balances_after == step.balances_before
        assert step.pending_after == step.pending_before

    program.run({**ALL_OPS, "pending": 4, "confirm": 4, "replay": 5, "conflict": 5}, check)


OPERATIONS = ("award", "pending", "spend", "confirm", "cancel", "reverse")


@LEDGER_SETTINGS
@given(
    operations=st.permutations(OPERATIONS).map(lambda kinds: kinds[:2]),
    member=st.sampled_from(MEMBERS),
    amount=points,
    reason=st.sampled_from(REASONS),
    cap=st.sampled_from((0, 1, 20, 40)),
)
def test_a_key_used_for_one_operation_refuses_every_other(
    operations: list[str], member: str, amount: int, reason: str, cap: int
) -> None:
    """Each kind of operation after another with the same key and subject: DuplicateEntry.

    The two operations share everything they can (member, points, reason, the
    pending credit), so only the key says they are different operations.
    """
    first, second = operations
    at = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    ledger = Ledger("Europe/Berlin", {CAPPED: cap})
    ledger.award(member, 500, reason="seed", at=at, key="seed")
    pending = ledger.award_pending(member, amount, reason=reason, at=at, key="p")
    credit = ledger.award(member, amount, reason="bonus", at=at, key="c")
    assert credit is not None

    def run(kind: str, key: str) -> Any:
        if kind == "award":
            return ledger.award(member, amount, reason=reason, at=at, key=key)
        if kind == "pending":
            return ledger.award_pending(member, amount, reason=reason, at=at, key=key)
        if kind == "spend":
            return ledger.spend(member, amount, reason=reason, at=at, key=key)
        if kind == "confirm":
            return ledger.confirm(pending.entry_id, at=at, key=key)
        if kind == "cancel":
            return ledger.cancel(pending.entry_id, at=at, key=key)
        return ledger.reverse(credit.entry_id, at=at, reason=reason, key=key)

    key = "K"
    result = run(first, key)
    entries, balance = ledger.entries(), ledger.balance(member)
    pending_points = ledger.pending_points(member)
    try:
        other = run(second, key)
    except DuplicateEntry:
        pass
    else:
        raise AssertionError(
            f"key {key!r} of a {first} ({result!r}) was accepted for a {second}: {other!r}"
        )
    assert ledger.entries() == entries
    assert ledger.balance(member) == balance
    assert ledger.pending_points(member) == pending_points
    assert run(first, key) == result, f"the {first} is no longer replayed"


# --------------------------------------------------------------------------- commutativity


award_specs = st.lists(
    st.tuples(
        st.sampled_from(MEMBERS),
        points,
        st.sampled_from(REASONS),
        instants,
        st.none() | st.integers(1, 10 * 24 * 60),
    ),
    min_size=1,
    max_size=25,
)


@LEDGER_SETTINGS
@given(specs=award_specs, data=st.data())
def test_credits_commute(
    specs: list[tuple[str, int, str, datetime, int | None]], data: st.DataObject
) -> None:
    awards = [
        (member, amount, reason, at, f"a{i}", None if ttl is None else at + timedelta(minutes=ttl))
        for i, (member, amount, reason, at, ttl) in enumerate(specs)
    ]
    shuffled = data.draw(st.permutations(awards), label="order")
    tz = data.draw(st.sampled_from(DST_ZONES))
    results = []
    for order in (awards, shuffled):
        ledger = Ledger(tz)
        for member, amount, reason, at, key, expires_at in order:
            entry = ledger.award(
                member, amount, reason=reason, at=at, key=key, expires_at=expires_at
            )
            assert entry is not None
            assert entry.points == amount
        results.append(
            (
                {m: ledger.balance(m) for m in MEMBERS},
                Counter((e.member, e.points) for e in ledger if e.kind is EntryKind.CREDIT),
                Counter((m, left, _utc(exp)) for m in MEMBERS for _, left, exp in ledger.lots(m)),
            )
        )
    assert results[0] == results[1]
    expected = defaultdict(int)
    for member, amount, *_ in awards:
        expected[member] += amount
    assert results[0][0] == {m: expected[m] for m in MEMBERS}


@LEDGER_SETTINGS
@given(data=st.data(), cap=st.integers(0, 30))
def test_award_many_agrees_with_award(data: st.DataObject, cap: int) -> None:
    """``award_many`` with plain tuples writes exactly what ``award`` one by one writes."""
    tz = data.draw(st.sampled_from(DST_ZONES))
    specs = data.draw(award_specs)
    base: list[tuple[str, int, str, datetime, str, datetime | None]] = []
    for i, (member, amount, reason, at, ttl) in enumerate(specs):
        zone = data.draw(st.sampled_from(SAFE_ZONES) | random_offsets)
        expires_at = None if ttl is None else (at + timedelta(minutes=ttl)).astimezone(zone)
        base.append((member, amount, reason, at.astimezone(zone), f"b{i}", expires_at))
    # Replays of earlier awards, anywhere in the batch.
    batch = list(base)
    for _ in range(data.draw(st.integers(0, 5))):
        batch.insert(data.draw(st.integers(0, len(batch))), data.draw(st.sampled_from(base)))
    batch = [t if data.draw(st.booleans()) else Award(*t) for t in batch]

    one_by_one = Ledger(tz, {CAPPED: cap})
    singles = [
        one_by_one.award(m, p, reason=r, at=at, key=k, expires_at=e) for m, p, r, at, k, e in batch
    ]
    many = Ledger(tz, {CAPPED: cap})
    positions = many.award_many(batch)

    assert len(positions) == len(batch)
    assert list(one_by_one) == list(many)
    assert [None if pos < 0 else many.entry_at(pos) for pos in positions] == singles
    for member in MEMBERS:
        assert one_by_one.balance(member) == many.balance(member)
        assert one_by_one.lots(member) == many.lots(member)

    # The same key for another award: both refuse it, and write nothing.
    member, amount, reason, at, key, _ = base[0]
    other = (member, amount + 1, reason, at, key, None)
    for ledger, apply in (
        (one_by_one, lambda: one_by_one.award(*other[:2], reason=reason, at=at, key=key)),
        (many, lambda: many.award_many([other])),
    ):
        length = len(ledger)
        try:
            apply()
        except DuplicateEntry:
            pass
        else:
            raise AssertionError("a reused key for another award was accepted")
        assert len(ledger) == length


# --------------------------------------------------------------------------- lots and expiry


@LEDGER_SETTINGS
@given(data=st.data(), cap=caps)
def test_expiry_never_takes_spent_points(data: st.DataObject, cap: int) -> None:
    program = Program(data, daily_caps={CAPPED: cap}, zones=ANY_ZONES)

    def check(program: Program, step: Step) -> None:
        if step.error is not None:
            return
        if step.op == "expire":
            assert step.expected_take is not None
            actual = [(e.refers_to, -e.points) for e in step.result]
            assert all(e.kind is EntryKind.EXPIRY for e in step.result)
            assert all(e.lots == ((e.refers_to, -e.points),) for e in step.result)
            assert Counter(actual) == Counter(step.expected_take), (
                f"expire at {step.at} took {actual}; what was left of the due lots: "
                f"{step.expected_take}"
            )
        elif step.op in ("spend", "reverse"):
            assert step.taken == step.expected_take, (
                f"{step.op} took {step.taken}, the spending order says {step.expected_take}"
            )
        assert step.lots_mismatch is None, step.lots_mismatch

    program.run({**ALL_OPS, "expire": 4}, check)

    # Every point credited is spent, reversed, expired or still there.
    entries = program.ledger.entries()
    taken: Counter[str] = Counter()
    expired: Counter[str] = Counter()
    for entry in entries:
        for credit_id, part in entry.lots:
            (expired if entry.kind is EntryKind.EXPIRY else taken)[credit_id] += part
    left = {i: n for m in program.members for i, n, _ in program.ledger.lots(m)}
    credits = [e for e in entries if e.kind is EntryKind.CREDIT]
    for credit in credits:
        i = credit.entry_id
        assert taken[i] + expired[i] + left.get(i, 0) == credit.points, f"lot {i} does not add up"
    debited = -sum(e.points for e in entries if e.kind in (EntryKind.DEBIT, EntryKind.REVERSAL))
    assert sum(expired.values()) + debited + sum(left.values()) == sum(c.points for c in credits)


def _in_fold(data: st.DataObject) -> tuple[ZoneInfo, st.SearchStrategy[datetime], int]:
    zone_name, start, end = data.draw(st.sampled_from(FOLDS), label="fold")
    span = int((end - start).total_seconds())
    in_fold = st.integers(0, span - 1).map(lambda s: start + timedelta(seconds=s))
    return ZoneInfo(zone_name), in_fold, span


@LEDGER_SETTINGS
@given(data=st.data())
def test_lots_are_spent_and_expired_in_order_of_their_instant_in_any_zone(
    data: st.DataObject,
) -> None:
    """Expiry times handed in a zone's own tzinfo, inside a repeated (DST fold) hour."""
    zone, in_fold, span = _in_fold(data)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    ledger = Ledger(zone.key)
    lots = []
    for i in range(data.draw(st.integers(2, 6))):
        expires_at = data.draw(in_fold)
        entry = ledger.award(
            "m0", 10, reason="bonus", at=at, key=f"f{i}", expires_at=expires_at.astimezone(zone)
        )
        assert entry is not None
        lots.append((expires_at, i, entry.entry_id))
    order = [entry_id for _, _, entry_id in sorted(lots)]
    assert [i for i, _, _ in ledger.lots("m0")] == order, "lots not in order of expiry"
    spent = ledger.spend("m0", 10, reason="shop", at=at, key="s")
    assert spent[0].lots == ((order[0], 10),), "the spend did not take the first lot to expire"

    now = data.draw(in_fold) + timedelta(seconds=data.draw(st.integers(0, span)))
    expired = {e.refers_to for e in ledger.expire(now.astimezone(zone))}
    due = {entry_id for expires_at, _, entry_id in lots if expires_at <= now}
    assert expired == due - {order[0]}, f"expire({now.astimezone(zone)!r})"


@LEDGER_SETTINGS
@given(data=st.data())
def test_an_expiry_later_than_the_award_is_accepted_in_any_zone(data: st.DataObject) -> None:
    """``at`` and ``expires_at`` in the same zone, in a fold: compared as instants."""
    zone, in_fold, span = _in_fold(data)
    at = data.draw(in_fold)
    expires_at = at + timedelta(seconds=data.draw(st.integers(1, span)))
    ledger = Ledger("UTC")
    entry = ledger.award(
        "m0",
        10,
        reason="bonus",
        at=at.astimezone(zone),
        key="a",
        expires_at=expires_at.astimezone(zone),
    )
    assert entry is not None
    assert _utc(ledger.next_expiry()) == expires_at
    assert ledger.expire(at.astimezone(zone)) == []
    assert ledger.balance("m0") == 10


@LEDGER_SETTINGS
@given(data=st.data(), cap=caps)
def test_reversal_never_drives_balance_negative(data: st.DataObject, cap: int) -> None:
    program = Program(data, daily_caps={CAPPED: cap})

    def check(program: Program, step: Step) -> None:
        for member, balance in step.balances_after.items():
            assert balance >= 0, f"{member} has a negative balance {balance}"
        if step.op != "reverse":
            return
        lot = step.lot
        assert lot is not None
        if step.expected_error is not None:
            assert isinstance(step.error, InvalidOperation), (
                f"reversing {lot.credit_id} twice gave {step.error!r} / {step.result!r}"
            )
            assert step.length_after == step.length_before
            return
        entries = step.result
        assert entries, "a reversal wrote nothing"
        assert entries[0].refers_to == lot.credit_id
        assert all(e.kind is EntryKind.REVERSAL for e in entries)
        credit = program.ledger.entry(lot.credit_id)
        expired = -sum(
            e.points
            for e in program.ledger.entries()
            if e.kind is EntryKind.EXPIRY and e.refers_to == lot.credit_id
        )
        recovered = -sum(e.points for e in entries)
        assert recovered + entries[0].unrecovered + expired == credit.points
        # What it takes back: all it can, never more than the balance.
        balance_before = step.balances_before[lot.member]
        assert recovered == min(credit.points - expired, balance_before)
        assert step.taken == step.expected_take

    program.run({**ALL_OPS, "reverse": 6, "expire": 3}, check)


# --------------------------------------------------------------------------- restore


@LEDGER_SETTINGS
@given(data=st.data(), cap=caps, tz=st.sampled_from(DST_ZONES))
def test_a_restored_ledger_behaves_as_the_original(data: st.DataObject, cap: int, tz: str) -> None:
    """``Ledger.restore(ledger.entries())`` gives back balances, lots, caps, keys and state."""
    program = Program(
        data, timezone_name=tz, daily_caps={CAPPED: cap}, reasons=(CAPPED, CAPPED, "bonus")
    )
    program.run({**ALL_OPS, "pending": 4, "confirm": 4}, max_steps=15)
    live = program.ledger
    restored = Ledger.restore(live.entries(), tz, {CAPPED: cap})
    assert list(restored) == list(live)
    for member in program.members:
        assert restored.balance(member) == live.balance(member)
        assert restored.lots(member) == live.lots(member)
        assert restored.pending_points(member) == live.pending_points(member)
        assert restored.lifetime_credits(member) == live.lifetime_credits(member)
    for entry in live:
        assert restored.cap_used(entry.member, CAPPED, entry.at) == live.cap_used(
            entry.member, CAPPED, entry.at
        ), f"cap used on {program.day(entry.at)} differs"
    assert restored.next_expiry() == live.next_expiry()

    # Every earlier operation replays on the restored ledger as it did on the live one.
    program.ledger = restored
    for done in program.done:
        length = len(restored)
        assert done.call(done.key) == done.result, f"replaying {done.kind} {done.key}"
        assert len(restored) == length, f"replaying {done.kind} {done.key} wrote entries"
    # Settled pending credits and reversed credits stay settled and reversed.
    end = program.now + timedelta(days=30)
    for ledger in (live, restored):
        for pending in program.pendings.values():
            if pending.state != "open":
                with pytest.raises(InvalidOperation):
                    ledger.confirm(pending.entry_id, at=end, key=f"again-{pending.entry_id}")
        for lot in program.lots.values():
            if lot.reversed:
                with pytest.raises(InvalidOperation):
                    ledger.reverse(lot.credit_id, at=end, reason="x", key=f"again-{lot.credit_id}")
    # And both go on alike: expire everything, spend what is left, award again.
    for ledger in (live, restored):
        ledger.expire(end)
        for member in program.members:
            if ledger.balance(member):
                ledger.spend(
                    member, ledger.balance(member), reason="all", at=end, key=f"z-{member}"
                )
            ledger.award(member, 50, reason=CAPPED, at=program.now, key=f"y-{member}")
    assert list(restored) == list(live)


# --------------------------------------------------------------------------- pending credits


@LEDGER_SETTINGS
@given(data=st.data(), cap=st.integers(1, 40))
def test_pending_credits_count_only_once_confirmed(data: st.DataObject, cap: int) -> None:
    program = Program(data, daily_caps={CAPPED: cap}, members=3, reasons=(CAPPED, CAPPED, "bonus"))

    def check(program: Program, step: Step) -> None:
        ledger = program.ledger
        for member in program.members:
            open_points = sum(
                p.amount
                for p in program.pendings.values()
                if p.member == member and p.state == "open"
            )
            assert ledger.pending_points(member) == open_points
        # Daily caps count what was credited, nothing else.
        if step.at is not None and step.member is not None:
            for reason in program.caps:
                day = program.day(step.at)
                assert ledger.cap_used(step.member, reason, step.at) == program.credited(
                    step.member, reason, day
                ), f"cap used for {reason} on {day} is not what was credited"
        member = step.member or ""
        gained = step.balances_after.get(member, 0) - step.balances_before.get(member, 0)
        if step.op == "pending":
            assert step.result.kind is EntryKind.PENDING
            assert step.result.points == 0
            assert gained == 0
            assert step.pending_after[member] - step.pending_before[member] == step.points
        elif step.op in ("confirm", "cancel"):
            pending = step.pending
            assert pending is not None
            if step.expected_error is not None:
                assert isinstance(step.error, InvalidOperation), (
                    f"{step.op} of a settled pending credit gave {step.error!r} / {step.result!r}"
                )
                assert step.length_after == step.length_before
                return
            assert step.pending_before[member] - step.pending_after[member] == pending.amount
            if step.op == "cancel":
                assert gained == 0
                assert step.result.kind is EntryKind.CANCELLATION
            elif step.expected_grant == 0:
                assert step.result is None
                assert gained == 0
            else:
                assert step.result is not None
                assert step.result.refers_to == pending.entry_id
                assert gained == step.result.points == step.expected_grant
        elif step.op == "award" and step.error is None:
            granted = 0 if step.result is None else step.result.points
            assert granted == step.expected_grant

    program.run(
        {**ALL_OPS, "pending": 6, "confirm": 5, "cancel": 3, "reverse": 1},
        check,
        max_steps=20,
    )


# --------------------------------------------------------------------------- daily caps


@settings(
    max_examples=250,
    phases=PHASES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    data=st.data(),
    tz=st.sampled_from(DST_ZONES),
    cap=st.integers(0, 40),
    in_time_order=st.booleans(),
)
def test_daily_cap_never_exceeded_across_time_zones_and_dst(
    data: st.DataObject, tz: str, cap: int, in_time_order: bool
) -> None:
    zone = ZoneInfo(tz)
    awards = data.draw(
        st.lists(
            st.tuples(
                st.sampled_from(MEMBERS[:3]),
                points,
                st.sampled_from((CAPPED, CAPPED, "bonus")),
                instants,
                st.sampled_from(("community", "utc", "offset", "other zone")),
            ),
            min_size=1,
            max_size=40,
        ),
        label="awards",
    )
    if in_time_order:
        awards.sort(key=lambda award: award[3])
    ledger = Ledger(tz, {CAPPED: cap})
    requested: Counter[tuple[str, str, date]] = Counter()
    credited: Counter[tuple[str, str, date]] = Counter()
    for i, (member, amount, reason, instant, given_in) in enumerate(awards):
        if given_in == "community":
            at = instant.astimezone(zone)
        elif given_in == "utc":
            at = instant
        elif given_in == "offset":
            at = instant.astimezone(data.draw(random_offsets))
        else:
            at = instant.astimezone(ZoneInfo(data.draw(st.sampled_from(DST_ZONES))))
        day = at.astimezone(ZoneInfo(tz)).date()
        assert ledger.day_of(at) == day, f"{at.isoformat()} is on {day} in {tz}"
        slot = (member, reason, day)
        left = cap - credited[slot]
        length = len(ledger)
        entry = ledger.award(member, amount, reason=reason, at=at, key=f"c{i}")
        granted = 0 if entry is None else entry.points
        expected = amount if reason != CAPPED else min(amount, left)
        assert granted == expected, (
            f"award #{i} of {amount} on {day} ({at.isoformat()}) got {granted}, "
            f"{credited[slot]} of the cap {cap} were used"
        )
        assert (entry is None) == (expected == 0)
        assert len(ledger) == length + (entry is not None)
        if entry is not None:
            assert entry.amount == amount
        requested[slot] += amount
        credited[slot] += granted
        if reason == CAPPED:
            assert ledger.cap_used(member, reason, at) == credited[slot]
            assert ledger.cap_remaining(member, reason, at) == cap - credited[slot]
        else:
            assert ledger.cap_remaining(member, reason, at) is None

    for (member, reason, day), asked in requested.items():
        got = credited[(member, reason, day)]
        if reason == CAPPED:
            assert got <= cap
            assert got == min(cap, asked)
        else:
            assert got == asked
    # The ledger's own entries, read back and bucketed independently, say the same.
    from_entries: Counter[tuple[str, str, date]] = Counter()
    for entry in ledger:
        from_entries[(entry.member, entry.reason, entry.at.astimezone(zone).date())] += entry.points
    assert from_entries == +credited


@settings(LEDGER_SETTINGS, max_examples=100)
@given(
    amount=st.one_of(st.integers(1, MAX_POINTS), st.integers(MAX_POINTS + 1, 2**80)),
    operation=st.sampled_from(["award", "award_seq", "award_pending", "spend"]),
)
def test_no_entry_moves_more_than_max_points(amount: int, operation: str) -> None:
    """Every store keeps amounts in 64 bits: the ledger refuses more, alike for each
    way points move, and a refused operation leaves the ledger as it was."""
    at = datetime(2026, 3, 1, tzinfo=UTC)
    ledger = Ledger("UTC")
    ledger.award("m", MAX_POINTS, reason="seed", at=at, key="seed")
    before = (len(ledger), ledger.balance("m"), ledger.pending_points("m"))
    do = getattr(ledger, operation)
    call = partial(do, "m", amount, reason="x", at=at, key="k")
    if amount > MAX_POINTS:
        with pytest.raises(ModelError, match="at most 1,000,000,000,000"):
            call()
        assert (len(ledger), ledger.balance("m"), ledger.pending_points("m")) == before
        assert not ledger.has_key("k")
    else:
        call()
        assert ledger.has_key("k")
