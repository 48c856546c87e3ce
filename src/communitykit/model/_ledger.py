"""The points ledger: append-only, idempotent, reversible, expiring.

A :class:`Ledger` holds the entries of one community. Every change is a new
:class:`Entry`; nothing is ever rewritten. The rules it enforces:

* **Idempotency.** Every operation carries an idempotency key unique in the
  community. The same operation with the same key again returns the original
  result and changes nothing. The same key for a *different* operation raises
  :class:`~communitykit.DuplicateEntry`.
* **Balance.** A member's balance is the sum of the ``points`` of their entries
  and never goes below zero: a debit beyond it raises
  :class:`~communitykit.InsufficientPoints`.
* **Lots and expiry.** Each credit is a lot. A debit consumes the
  earliest-expiring lots first (lots that never expire last, older lots before
  newer ones on a tie). Expiry removes only what is left of a lot.
* **Reversal.** Reversing a credit takes back what is left of its lot, then
  whatever else the member holds, never more than the balance. The part that was
  already spent and could not be taken back is recorded as ``unrecovered``.
* **Pending credits** count for nothing until confirmed; they can be cancelled.
* **Daily caps** per reason (``{"message": 20}``) limit the points credited per
  member per day, the day taken in the community's time zone (DST included). An
  award beyond the cap is cut to what is left of it; an award cut to nothing
  writes no entry and returns ``None``.
* **Merged members.** When two members are merged (see
  :func:`communitykit.model.merge_members`), their accounts are read as one:
  one balance, one set of lots, one daily cap. Entries keep the account they were
  written to, so unmerging gives each member back exactly what is theirs.

The ledger never reads the clock: every operation is given its time.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Any, ClassVar, NamedTuple

import attrs

from communitykit._errors import (
    DuplicateEntry,
    InsufficientPoints,
    InvalidOperation,
    ModelError,
    UnknownEntry,
)
from communitykit.model._time import resolve_timezone

__all__ = ["MAX_POINTS", "RESERVED_KEY_PREFIX", "Award", "Entry", "EntryKind", "Ledger"]

#: The most points one entry may move (a trillion): every store keeps amounts and
#: balances as 64-bit integers, which millions of the largest entries still fit.
MAX_POINTS = 10**12

#: Idempotency keys starting with this prefix are written by the ledger itself.
RESERVED_KEY_PREFIX = "ledger:"


class EntryKind(StrEnum):
    """What a ledger entry records."""

    CREDIT = "credit"
    DEBIT = "debit"
    EXPIRY = "expiry"
    REVERSAL = "reversal"
    PENDING = "pending"
    CANCELLATION = "cancellation"


@attrs.frozen(slots=True)
class Entry:
    """One ledger entry. Built by the :class:`Ledger`, never by hand.

    ``points`` is the signed effect on the balance (``+`` for a credit, ``-`` for
    a debit, an expiry or a reversal, ``0`` for a pending credit and a
    cancellation). ``amount`` is what was asked for: the award before a daily cap,
    the points a pending credit will give once confirmed, the points of the
    credit a reversal undoes. ``lots`` lists the credits a debit, an expiry or a
    reversal took points from, as ``(credit entry id, points)`` pairs.
    """

    entry_id: str
    member: str
    kind: EntryKind
    points: int
    reason: str
    at: datetime
    idempotency_key: str
    amount: int = 0
    expires_at: datetime | None = None
    refers_to: str | None = None
    unrecovered: int = 0
    lots: tuple[tuple[str, int], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON form used by ``ledger.jsonl`` (optional fields only when set)."""
        data: dict[str, Any] = {
            "entry_id": self.entry_id,
            "member": self.member,
            "kind": self.kind.value,
            "points": self.points,
            "reason": self.reason,
            "at": self.at.isoformat(),
            "idempotency_key": self.idempotency_key,
        }
        if self.amount != abs(self.points):
            data["amount"] = self.amount
        if self.expires_at is not None:
            data["expires_at"] = self.expires_at.isoformat()
        if self.refers_to is not None:
            data["refers_to"] = self.refers_to
        if self.unrecovered:
            data["unrecovered"] = self.unrecovered
        if self.lots:
            data["lots"] = [[lot, points] for lot, points in self.lots]
        return data


class Award(NamedTuple):
    """One award for :meth:`Ledger.award_many`."""

    member: str
    points: int
    reason: str
    at: datetime
    key: str
    expires_at: datetime | None = None


AwardTuple = tuple[str, int, str, datetime, str, datetime | None]

# A row is the compact form an entry is stored in: a tuple of plain values, which
# the garbage collector stops tracking, so a million entries cost little.
# (member, kind, points, reason, at, key, amount, expires_at)
_Row = tuple[str, str, int, str, datetime, str, int, datetime | None]
# refers_to, unrecovered, lots: rare, kept aside
_Aux = tuple[str | None, int, tuple[tuple[str, int], ...]]

_CREDIT = EntryKind.CREDIT.value
_PENDING = EntryKind.PENDING.value
_CANCELLATION = EntryKind.CANCELLATION.value
# the reason of the cancellation a confirm writes when nothing could be credited
_NOT_CONFIRMED = "not confirmed: "
_REVERSAL = EntryKind.REVERSAL.value
_KINDS = {kind.value: kind for kind in EntryKind}
_NO_AUX: _Aux = (None, 0, ())


def _utc(moment: datetime) -> datetime:
    """``moment`` in UTC. Datetimes sharing a tzinfo compare by wall clock, ignoring
    ``fold``; in UTC there are no folds, so instants compare as instants."""
    return moment.astimezone(UTC)


def _check_points(points: int) -> None:
    if type(points) is not int or points <= 0:
        raise ModelError(f"points must be a positive whole number, got {points!r}")
    if points > MAX_POINTS:
        raise ModelError(f"points must be at most {MAX_POINTS:,}, got {points:,}")


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not key:
        raise ModelError("an idempotency key must be a non-empty string")
    if key.startswith(RESERVED_KEY_PREFIX):
        raise ModelError(
            f"idempotency keys starting with {RESERVED_KEY_PREFIX!r} are reserved for the ledger"
        )


def _check_at(name: str, at: datetime) -> None:
    if not isinstance(at, datetime):
        raise ModelError(f"{name} must be a datetime, got {type(at).__name__}")
    if at.tzinfo is None or at.utcoffset() is None:
        raise ModelError(f"{name} must be a timezone-aware datetime, got naive {at.isoformat()}")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _DayCache:
    """Maps instants to community days, remembering the bounds of the last day seen.

    ``at.astimezone(tz).date()`` is the truth; this only avoids recomputing it for
    the many events that fall on the same day as the previous one. ``start`` and
    ``end`` bound the cached ``current`` day: ``start <= at < end``.
    """

    __slots__ = ("_tz", "current", "end", "ordinal", "start")

    def __init__(self, tz: tzinfo) -> None:
        self._tz = tz
        self.start = _EPOCH
        self.end = _EPOCH
        self.current = date.min
        self.ordinal = self.current.toordinal()

    def day(self, at: datetime) -> date:
        if self.start <= at < self.end:
            return self.current
        day = at.astimezone(self._tz).date()
        # Local midnight of this day and of the next. A midnight that falls in a DST
        # gap resolves (fold=0) to the instant the day really starts.
        # Kept in UTC: comparing with a ZoneInfo datetime costs a utcoffset() look-up.
        start = datetime(day.year, day.month, day.day, tzinfo=self._tz).astimezone(UTC)
        following = day + timedelta(days=1)
        end = datetime(following.year, following.month, following.day, tzinfo=self._tz)
        end = end.astimezone(UTC)
        if start <= at < end:
            self.start, self.end, self.current = start, end, day
            self.ordinal = day.toordinal()
        return day

    def ordinal_of(self, at: datetime) -> int:
        """The ordinal (``date.toordinal()``) of the community day of ``at``."""
        if self.start <= at < self.end:
            return self.ordinal
        return self.day(at).toordinal()


class _Account:
    """Everything the ledger keeps per account, behind one dictionary look-up."""

    __slots__ = ("balance", "cap_used", "credited", "open", "seqs")

    def __init__(self) -> None:
        self.balance = 0
        self.credited = 0  # every credit ever, an upper bound of qualifying points
        # positions of this account's entries: most accounts have one, kept as a
        # bare int (a list costs 64 B more); see _positions and _add_position
        self.seqs: int | list[int] | None = None
        self.open: list[int] | None = None  # credits that may have points left, once needed
        # points credited per capped reason and day, once a cap applies; keyed by
        # an int (see Ledger._slot) so the dict holds no tuple and the collector
        # never has to walk it
        self.cap_used: dict[int, int] | None = None


def _positions(record: _Account) -> Sequence[int]:
    seqs = record.seqs
    if seqs is None:
        return ()
    return (seqs,) if isinstance(seqs, int) else seqs


def _add_position(record: _Account, seq: int) -> None:
    seqs = record.seqs
    if seqs is None:
        record.seqs = seq
    elif isinstance(seqs, int):
        record.seqs = [seqs, seq]
    else:
        seqs.append(seq)


class Ledger:
    """The points ledger of one community (see the module documentation).

    ``timezone`` is the community's IANA zone name (or a ``tzinfo``); it decides
    where a day starts for daily caps. ``daily_caps`` maps a reason to the most
    points a member may be credited for it per day.
    """

    #: How many community days back from the latest capped award a daily cap's use
    #: stays in memory; an award for an older day counts that day again.
    CAP_DAYS_KEPT: ClassVar[int] = 7

    __slots__ = (
        "_accounts_by_id",
        "_aux",
        "_cap_floor",
        "_cap_index",
        "_cap_kept",
        "_cap_stride",
        "_cap_top",
        "_capped",
        "_capped_at",
        "_caps",
        "_children",
        "_consumed",
        "_days",
        "_expired",
        "_expiry_heap",
        "_keys",
        "_multi",
        "_parent",
        "_pending_state",
        "_requested",
        "_reversed",
        "_rows",
        "_tz",
    )

    def __init__(
        self, timezone: str | tzinfo = "UTC", daily_caps: Mapping[str, int] | None = None
    ) -> None:
        self._tz: tzinfo = resolve_timezone(timezone) if isinstance(timezone, str) else timezone
        caps = dict(daily_caps or {})
        for reason, cap in caps.items():
            if type(cap) is not int or cap < 0:
                raise ModelError(
                    f"daily cap for {reason!r} must be a whole number >= 0, got {cap!r}"
                )
        self._caps: dict[str, int] = caps
        # a capped reason's index, and how many there are: (day, reason) as one int
        self._cap_index: dict[str, int] = {reason: i for i, reason in enumerate(caps)}
        self._cap_stride = max(1, len(caps))
        # Cap use is kept for the latest CAP_DAYS_KEPT days a capped award fell
        # on (up to _cap_top, the latest day's ordinal); older days' slots at or
        # below _cap_floor (a slot number) may be let go, and are counted again
        # from the account's credits when an award for such a day comes late.
        # Without this an account would keep a slot for every day it ever earned.
        self._cap_top = 0
        self._cap_floor = 0
        self._cap_kept = (self.CAP_DAYS_KEPT + 1) * self._cap_stride
        self._days = _DayCache(self._tz)
        self._rows: list[_Row] = []
        self._aux: dict[int, _Aux] = {}
        self._consumed: dict[int, int] = {}  # credit seq -> points taken from it
        self._expired: dict[int, int] = {}  # credit seq -> points that expired
        # idempotency key -> seq of the (first) entry; for an award capped to
        # nothing, -1 - n where _capped[n] is its (kind, member, points, reason):
        # one shared tuple for all of a member's capped awards of one kind, so a
        # capped award costs its key alone
        self._keys: dict[str, int] = {}
        self._capped: list[tuple[str, str, int, str]] = []
        self._capped_at: dict[tuple[str, str, int, str], int] = {}  # tuple -> n
        self._multi: dict[str, tuple[int, ...]] = {}  # key -> every entry of one operation
        # entry -> the member the operation named, where the entry went to another
        # account (a merged member's survivor): a replay after an unmerge is a replay
        self._requested: dict[int, str] = {}
        self._accounts_by_id: dict[str, _Account] = {}
        self._expiry_heap: list[tuple[datetime, int]] = []
        self._pending_state: dict[int, int] = {}  # pending seq -> confirming/cancelling seq
        self._reversed: dict[int, int] = {}  # credit seq -> reversal seq
        self._parent: dict[str, str] = {}  # absorbed account -> the account it was merged into
        self._children: dict[str, list[str]] = {}

    @classmethod
    def restore(
        cls,
        entries: Iterable[Entry],
        timezone: str | tzinfo = "UTC",
        daily_caps: Mapping[str, int] | None = None,
        *,
        name: Callable[[str], str] | None = None,
    ) -> Ledger:
        """Rebuild a ledger from its entries (as a store gives them back), in order.

        Balances, lots, caps used, pending and reversal state, and idempotency keys
        come back as they were. Entry ids must run ``e0, e1, ...``. ``name`` maps
        an entry's member id to an equal string to keep (the one the member
        record holds), so a million accounts do not hold a second copy of each id.
        """
        ledger = cls(timezone, daily_caps)
        for entry in entries:
            ledger._restore_one(entry, entry.member if name is None else name(entry.member))
        return ledger

    def _restore_one(self, entry: Entry, member: str) -> None:
        seq = len(self._rows)
        if entry.entry_id != f"e{seq}":
            raise ModelError(
                f"entries must be restored in order: expected e{seq}, got {entry.entry_id}"
            )
        kind = entry.kind.value
        aux: _Aux = (
            (entry.refers_to, entry.unrecovered, entry.lots)
            if (entry.refers_to is not None or entry.unrecovered or entry.lots)
            else _NO_AUX
        )
        self._append(
            member,
            kind,
            entry.points,
            entry.reason,
            entry.at,
            entry.idempotency_key,
            entry.amount,
            entry.expires_at,
            aux,
        )
        key = entry.idempotency_key
        self._keys[key] = seq
        if key.startswith(RESERVED_KEY_PREFIX) and "#" in key:
            base = key[len(RESERVED_KEY_PREFIX) :].rsplit("#", 1)[0]
            first = self._keys.get(base)
            if first is not None:
                self._multi[base] = (*self._multi.get(base, (first,)), seq)
        consumed = self._consumed
        for lot_id, part in entry.lots:
            lot = self._seq(lot_id)
            consumed[lot] = consumed.get(lot, 0) + part
        refers = None if entry.refers_to is None else self._seq(entry.refers_to)
        if kind == _CREDIT:
            self._accounts_by_id[member].credited += entry.points
            if entry.expires_at is not None:
                heapq.heappush(self._expiry_heap, (_utc(entry.expires_at), seq))
            cap = self._caps.get(entry.reason)
            if cap is not None:
                slot = self._slot(entry.reason, entry.at)
                record = self._accounts_by_id[member]
                used_map = record.cap_used
                if slot >= self._cap_floor:
                    if used_map is None:
                        used_map = record.cap_used = {}
                    used = used_map.get(slot)
                    if used is None:
                        used = self._uses(record, slot, used_map)
                    used_map[slot] = used + entry.points
                elif used_map is not None:  # an older day is counted again when needed
                    used_map.pop(slot, None)
            if refers is not None:
                self._pending_state[refers] = seq
        elif kind == EntryKind.CANCELLATION.value and refers is not None:
            self._pending_state[refers] = seq
        elif kind == EntryKind.EXPIRY.value and refers is not None:
            self._expired[refers] = self._expired.get(refers, 0) + entry.amount
        elif kind == _REVERSAL and refers is not None and refers not in self._reversed:
            self._reversed[refers] = seq

    # ------------------------------------------------------------------ reading

    @property
    def timezone(self) -> tzinfo:
        return self._tz

    @property
    def daily_caps(self) -> Mapping[str, int]:
        return dict(self._caps)

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[Entry]:
        return (self._entry(seq) for seq in range(len(self._rows)))

    def __repr__(self) -> str:
        return f"<Ledger entries={len(self._rows)} members={len(self._accounts_by_id)}>"

    def entry(self, entry_id: str) -> Entry:
        """The entry with id ``entry_id``; :class:`UnknownEntry` if there is none."""
        return self._entry(self._seq(entry_id))

    def entries(self, member: str | None = None) -> list[Entry]:
        """Every entry, or those of ``member`` (all its merged accounts), in order written."""
        if member is None:
            return list(self)
        return [self._entry(seq) for seq in self._person_seqs(self._root(member))]

    @property
    def size(self) -> int:
        """How many entries the ledger holds (``len(ledger)``)."""
        return len(self._rows)

    def entries_from(self, position: int) -> list[Entry]:
        """The entries written since the ledger held ``position`` of them."""
        return [self._entry(seq) for seq in range(position, len(self._rows))]

    def account_entries(self, account: str) -> list[Entry]:
        """The entries written to ``account`` itself, not to accounts merged into it."""
        record = self._accounts_by_id.get(account)
        return [] if record is None else [self._entry(seq) for seq in _positions(record)]

    def members(self) -> list[str]:
        """Every account that has at least one entry."""
        return list(self._accounts_by_id)

    def balance(self, member: str) -> int:
        """The member's spendable points (across merged accounts)."""
        return sum(self.account_balance(a) for a in self._accounts(self._root(member)))

    def lifetime_credits(self, member: str) -> int:
        """Every point ever credited to ``member``: an upper bound of qualifying points."""
        records = self._accounts_by_id
        if member not in self._parent and member not in self._children:  # no merge
            record = records.get(member)
            return 0 if record is None else record.credited
        return sum(records[a].credited for a in self._accounts(self._root(member)) if a in records)

    def account_balance(self, account: str) -> int:
        """The points held by ``account`` itself, ignoring merges."""
        record = self._accounts_by_id.get(account)
        return 0 if record is None else record.balance

    def pending_points(self, member: str) -> int:
        """Points in pending credits not yet confirmed or cancelled."""
        rows = self._rows
        return sum(
            rows[seq][6]
            for seq in self._person_seqs(self._root(member))
            if rows[seq][1] == _PENDING and seq not in self._pending_state
        )

    def settled_by(self, pending_id: str) -> str | None:
        """The entry that confirmed or cancelled pending credit ``pending_id``
        (``None``: it is still pending)."""
        settled = self._pending_state.get(self._pending(pending_id))
        return None if settled is None else f"e{settled}"

    def account_of(self, member: str) -> str:
        """The member whose account holds ``member``'s points (itself unless merged)."""
        return self._root(member)

    def lots(self, member: str) -> list[tuple[str, int, datetime | None]]:
        """Open lots as ``(credit entry id, points left, expires_at)``, in spending order."""
        return [
            (f"e{seq}", self._left(seq), self._rows[seq][7])
            for seq in self._open_lots(self._root(member))
        ]

    def result_for(self, key: str) -> Entry | tuple[Entry, ...] | None:
        """What the operation with idempotency ``key`` wrote; ``KeyError`` if none ran."""
        seq = self._keys[key]
        if seq < 0:
            return None
        many = self._multi.get(key)
        if many is not None:
            return tuple(self._entry(s) for s in many)
        return self._entry(seq)

    def has_key(self, key: str) -> bool:
        """Whether an operation with this idempotency key was already applied."""
        return key in self._keys

    def day_of(self, at: datetime) -> date:
        """The community day ``at`` falls on."""
        return self._days.day(at)

    def cap_used(self, member: str, reason: str, at: datetime) -> int:
        """Points credited to ``member`` for ``reason`` on the community day of ``at``."""
        if reason not in self._cap_index:
            return 0  # only capped reasons are counted, and a cap never changes
        slot = self._slot(reason, at)
        records = self._accounts_by_id
        total = 0
        for account in self._accounts(self._root(member)):
            record = records.get(account)
            if record is not None:
                total += self._use(record, slot)
        return total

    def cap_remaining(self, member: str, reason: str, at: datetime) -> int | None:
        """How many more points ``reason`` may credit today, or ``None`` when uncapped."""
        cap = self._caps.get(reason)
        if cap is None:
            return None
        return max(0, cap - self.cap_used(member, reason, at))

    def qualifying_points(
        self, member: str, *, now: datetime, window: timedelta | None = None
    ) -> int:
        """Credits minus reversed credits since ``now - window`` (or over the whole life).

        Debits and expiry do not count: spending points never changes what a member
        qualified for. A reversed credit counts for nothing. Credits stamped later
        than ``now`` count too (a platform's clock may run a little ahead of ours).
        """
        _check_at("now", now)
        start = None if window is None else _utc(now) - window
        rows = self._rows
        reversed_ = self._reversed
        total = 0
        for seq in self._person_seqs(self._root(member)):
            row = rows[seq]
            if row[1] != _CREDIT or seq in reversed_:
                continue
            if start is None or _utc(row[4]) > start:
                total += row[2]
        return total

    def count_credits(
        self, member: str, reason: str, *, now: datetime, window: timedelta | None = None
    ) -> int:
        """How many credits for ``reason`` (not reversed) the member had since
        ``now - window`` (or ever): the check-ins a tier asks for, say."""
        _check_at("now", now)
        start = None if window is None else _utc(now) - window
        rows = self._rows
        reversed_ = self._reversed
        count = 0
        for seq in self._person_seqs(self._root(member)):
            row = rows[seq]
            if row[1] != _CREDIT or row[3] != reason or seq in reversed_:
                continue
            if start is None or _utc(row[4]) > start:
                count += 1
        return count

    # ----------------------------------------------------------------- writing

    def award(
        self,
        member: str,
        points: int,
        *,
        reason: str,
        at: datetime,
        key: str,
        expires_at: datetime | None = None,
    ) -> Entry | None:
        """Credit ``points`` to ``member``; returns the entry, or ``None`` when capped to 0."""
        seq = self.award_seq(member, points, reason=reason, at=at, key=key, expires_at=expires_at)
        return None if seq < 0 else self._entry(seq)

    def award_seq(
        self,
        member: str,
        points: int,
        *,
        reason: str,
        at: datetime,
        key: str,
        expires_at: datetime | None = None,
    ) -> int:
        """:meth:`award`, returning the entry's position (``-1`` when capped to 0).

        Read the entry with :meth:`entry_at` when it is needed.
        """
        return self._credit(member, points, reason, at, key, expires_at)

    def award_many(self, awards: Iterable[Award | AwardTuple]) -> list[int]:
        """Apply many awards in order; returns each one's entry position (-1: capped to 0).

        Each item is an :class:`Award` or a plain ``(member, points, reason, at,
        key, expires_at)`` tuple. Every award is checked and applied on its own, with
        the same rules as :meth:`award`: when one is refused, the error is raised and
        the awards before it stay applied (run the batch again: those are replays).
        This is the fast path for bulk work; it builds no :class:`Entry`.
        """
        credit = self._credit
        return [credit(*award) for award in awards]

    def _credit(
        self,
        member: str,
        points: int,
        reason: str,
        at: datetime,
        key: str,
        expires_at: datetime | None,
    ) -> int:
        """One award (see :meth:`award_seq`): the path every credit takes."""
        keys = self._keys
        known = keys.get(key)
        if known is not None:
            self._check_replay(key, known, _CREDIT, member, points, reason)
            return known if known >= 0 else -1
        if type(points) is not int or not 0 < points <= MAX_POINTS:
            _check_points(points)
        if type(key) is not str or not key or key.startswith(RESERVED_KEY_PREFIX):
            _check_key(key)
        if type(at) is not datetime or at.tzinfo is None:
            _check_at("at", at)
        expires_utc = None
        if expires_at is not None:
            _check_at("expires_at", expires_at)
            expires_utc = _utc(expires_at)
            # UTC against any zone compares instants (only same-tzinfo pairs
            # compare wall clocks)
            if expires_utc <= at:
                raise ModelError("expires_at must be later than the time of the award")
        account = member
        if account in self._parent:
            account = self._root(account)
        records = self._accounts_by_id
        record = records.get(account)
        if record is None:
            record = records[account] = _Account()
        granted = points
        cap = self._caps.get(reason)
        if cap is not None:
            if account in self._children:
                granted = self._apply_cap(record, account, reason, at, points, cap)
            else:  # _apply_cap, inlined for the common case
                days = self._days
                ordinal = days.ordinal if days.start <= at < days.end else days.ordinal_of(at)
                if ordinal > self._cap_top:
                    self._cap_advance(ordinal)
                slot = ordinal * self._cap_stride + self._cap_index[reason]
                used_map = record.cap_used
                if used_map is None:
                    used_map = record.cap_used = {}
                used = used_map.get(slot)
                if used is None:
                    used = self._uses(record, slot, used_map)
                granted = cap - used
                if granted > points:
                    granted = points
                if granted > 0:
                    used_map[slot] = used + granted
            if granted <= 0:
                keys[key] = -1 - self._capped_index((_CREDIT, member, points, reason))
                return -1
        rows = self._rows
        seq = len(rows)
        rows.append((account, _CREDIT, granted, reason, at, key, points, expires_at))
        _add_position(record, seq)
        record.balance += granted
        record.credited += granted
        if record.open is not None:
            record.open.append(seq)
        if expires_utc is not None:
            heapq.heappush(self._expiry_heap, (expires_utc, seq))
        keys[key] = seq
        if account != member:
            self._requested[seq] = member
        return seq

    def entry_at(self, seq: int) -> Entry:
        """The entry at position ``seq`` (see :meth:`award_seq`)."""
        if not 0 <= seq < len(self._rows):
            raise UnknownEntry(f"no ledger entry at position {seq}")
        return self._entry(seq)

    def award_pending(
        self,
        member: str,
        points: int,
        *,
        reason: str,
        at: datetime,
        key: str,
        expires_at: datetime | None = None,
    ) -> Entry:
        """Record a credit that counts for nothing until :meth:`confirm`-ed."""
        known = self._keys.get(key)
        if known is not None:
            self._check_replay(key, known, _PENDING, member, points, reason)
            return self._entry(known)
        _check_key(key)
        _check_points(points)
        _check_at("at", at)
        if expires_at is not None:
            _check_at("expires_at", expires_at)
        account = self._root(member)
        seq = self._append(account, _PENDING, 0, reason, at, key, points, expires_at, _NO_AUX)
        self._keys[key] = seq
        if account != member:
            self._requested[seq] = member
        return self._entry(seq)

    def confirm(
        self,
        pending_id: str,
        *,
        at: datetime,
        key: str | None = None,
        expires_at: datetime | None = None,
    ) -> Entry | None:
        """Turn a pending credit into a real one (daily caps apply on the day confirmed).

        The credit expires when the pending credit said, or at ``expires_at`` when
        the pending credit said nothing (points that expire some time after they
        are earned: counted from the confirmation). Returns the credit, or ``None``
        when a daily cap or the credit's expiry left nothing to give (a
        cancellation is recorded then).
        """
        pseq = self._pending(pending_id)
        member, _, _, reason, _, pkey, amount, expires_at_pending = self._rows[pseq]
        if expires_at_pending is not None or expires_at is None:
            expires_at = expires_at_pending
        else:
            _check_at("expires_at", expires_at)
        key = key if key is not None else f"{pkey}:confirm"
        known = self._keys.get(key)
        if known is not None:
            self._check_replay(key, known, "confirm", pending_id, 0, "")
            return None if self._rows[known][1] != _CREDIT else self._entry(known)
        _check_key(key)
        _check_at("at", at)
        self._check_pending_open(pseq)
        account = self._root(member)
        granted = amount
        why = ""
        if expires_at is not None and _utc(expires_at) <= _utc(at):
            granted = 0  # it would expire the moment it exists
            why = "expired before it was confirmed"
        else:
            cap = self._caps.get(reason)
            if cap is not None:
                granted = self._apply_cap(self._record(account), account, reason, at, amount, cap)
                why = f"the daily cap for {reason} is reached"
        if granted == 0:
            seq = self._append(
                account,
                _CANCELLATION,
                0,
                _NOT_CONFIRMED + why,
                at,
                key,
                amount,
                None,
                (pending_id, 0, ()),
            )
            self._keys[key] = seq
        else:
            seq = self._write_credit(
                account, granted, amount, reason, at, key, expires_at, pending_id
            )
        self._pending_state[pseq] = seq
        return self._entry(seq) if granted else None

    def cancel(
        self, pending_id: str, *, at: datetime, reason: str | None = None, key: str | None = None
    ) -> Entry:
        """Cancel a pending credit: it will never count."""
        pseq = self._pending(pending_id)
        member, _, _, preason, _, pkey, amount, _ = self._rows[pseq]
        key = key if key is not None else f"{pkey}:cancel"
        known = self._keys.get(key)
        if known is not None:
            self._check_replay(key, known, "cancel", pending_id, 0, "")
            return self._entry(known)
        _check_key(key)
        _check_at("at", at)
        self._check_pending_open(pseq)
        seq = self._append(
            member,
            EntryKind.CANCELLATION.value,
            0,
            reason if reason is not None else preason,
            at,
            key,
            amount,
            None,
            (pending_id, 0, ()),
        )
        self._keys[key] = seq
        self._pending_state[pseq] = seq
        return self._entry(seq)

    def spend(
        self, member: str, points: int, *, reason: str, at: datetime, key: str
    ) -> tuple[Entry, ...]:
        """Debit ``points`` from ``member``, earliest-expiring lots first.

        Returns one entry per account that paid (one, unless members were merged).
        Raises :class:`InsufficientPoints` when the balance is too small; nothing is
        written then.
        """
        known = self._keys.get(key)
        if known is not None:
            self._check_replay(key, known, EntryKind.DEBIT.value, member, points, reason)
            return self._results(key, known)
        _check_key(key)
        _check_points(points)
        _check_at("at", at)
        person = self._root(member)
        balance = self.balance(person)
        if points > balance:
            raise InsufficientPoints(member, points, balance)
        plan = self._take(person, points, first=None)
        entries = self._write_takes(
            EntryKind.DEBIT.value, plan, reason, at, key, None, 0, amount=points, primary=None
        )
        if entries[0].member != member:
            self._requested[self._keys[key]] = member
        return entries

    def reverse(self, credit_id: str, *, at: datetime, reason: str, key: str) -> tuple[Entry, ...]:
        """Undo a credit: take back what is left of it, then other points, never below 0.

        The first entry returned refers to the credit and records in
        ``unrecovered`` the points that were already spent and could not be taken
        back. Points that had already expired are not taken twice.
        """
        known = self._keys.get(key)
        if known is not None:
            self._check_replay(key, known, _REVERSAL, credit_id, 0, reason)
            return self._results(key, known)
        _check_key(key)
        _check_at("at", at)
        cseq = self._seq(credit_id)
        credit = self._rows[cseq]
        if credit[1] != _CREDIT:
            hint = " (cancel a pending credit instead)" if credit[1] == _PENDING else ""
            raise InvalidOperation(
                f"entry {credit_id} is a {credit[1]}, only credits can be reversed{hint}"
            )
        if cseq in self._reversed:
            raise InvalidOperation(
                f"credit {credit_id} was already reversed by entry e{self._reversed[cseq]}"
            )
        person = self._root(credit[0])
        target = credit[2] - self._expired.get(cseq, 0)
        recoverable = min(target, self.balance(person))
        plan = self._take(person, recoverable, first=cseq) if recoverable > 0 else {}
        if not plan:
            plan = {credit[0]: []}
        entries = self._write_takes(
            _REVERSAL,
            plan,
            reason,
            at,
            key,
            credit_id,
            target - recoverable,
            amount=credit[2],
            primary=credit[0] if credit[0] in plan else None,
        )
        self._reversed[cseq] = self._keys[key]
        return entries

    def expire(self, now: datetime) -> list[Entry]:
        """Expire what is left of every lot whose ``expires_at`` is at or before ``now``."""
        _check_at("now", now)
        written: list[Entry] = []
        heap = self._expiry_heap
        limit = _utc(now)
        while heap and heap[0][0] <= limit:
            _, cseq = heapq.heappop(heap)
            left = self._left(cseq)
            if left == 0:
                continue
            self._consumed[cseq] = self._consumed.get(cseq, 0) + left
            self._expired[cseq] = left
            account, _, _, reason, _, _, _, expires_at = self._rows[cseq]
            assert expires_at is not None
            credit_id = f"e{cseq}"
            key = f"{RESERVED_KEY_PREFIX}expiry:{credit_id}"
            seq = self._append(
                account,
                EntryKind.EXPIRY.value,
                -left,
                reason,
                expires_at,
                key,
                left,
                None,
                (credit_id, 0, ((credit_id, left),)),
            )
            self._keys[key] = seq
            written.append(self._entry(seq))
        return written

    def next_expiry(self) -> datetime | None:
        """When the next lot expires, so a scheduler knows when to call :meth:`expire`."""
        heap = self._expiry_heap
        while heap:
            seq = heap[0][1]
            if self._left(seq) > 0:
                expires_at = self._rows[seq][7]
                assert expires_at is not None
                return expires_at
            heapq.heappop(heap)
        return None

    # ------------------------------------------------------------------ merging

    def merge_accounts(self, survivor: str, absorbed: str) -> None:
        """Read ``absorbed``'s account as part of ``survivor`` from now on.

        Both must be top-level members (not merged into another). Entries are not
        touched; see :meth:`unmerge_accounts`.
        """
        if survivor == absorbed:
            raise InvalidOperation(f"cannot merge member {survivor!r} into itself")
        for who in (survivor, absorbed):
            if who in self._parent:
                raise InvalidOperation(
                    f"member {who!r} is merged into {self._parent[who]!r}; "
                    "merge into that member instead"
                )
        self._parent[absorbed] = survivor
        self._children.setdefault(survivor, []).append(absorbed)

    def unmerge_accounts(self, absorbed: str) -> str:
        """Undo :meth:`merge_accounts`; returns the member ``absorbed`` was merged into."""
        survivor = self._parent.pop(absorbed, None)
        if survivor is None:
            raise InvalidOperation(f"member {absorbed!r} is not merged into another member")
        children = self._children[survivor]
        children.remove(absorbed)
        if not children:
            del self._children[survivor]
        return survivor

    def merged_into(self, member: str) -> str | None:
        """The member ``member`` was merged into, if any."""
        return self._parent.get(member)

    # ---------------------------------------------------------------- internals

    def _entry(self, seq: int) -> Entry:
        member, kind, points, reason, at, key, amount, expires_at = self._rows[seq]
        refers_to, unrecovered, lots = self._aux.get(seq, _NO_AUX)
        return Entry(
            f"e{seq}",
            member,
            _KINDS[kind],
            points,
            reason,
            at,
            key,
            amount,
            expires_at,
            refers_to,
            unrecovered,
            lots,
        )

    def _results(self, key: str, seq: int) -> tuple[Entry, ...]:
        many = self._multi.get(key)
        return tuple(self._entry(s) for s in (many if many is not None else (seq,)))

    def _seq(self, entry_id: str) -> int:
        if isinstance(entry_id, str) and entry_id[:1] == "e" and entry_id[1:].isdigit():
            seq = int(entry_id[1:])
            if seq < len(self._rows):
                return seq
        raise UnknownEntry(f"no ledger entry with id {entry_id!r}")

    def _root(self, member: str) -> str:
        parent = self._parent
        while member in parent:
            member = parent[member]
        return member

    def _accounts(self, person: str) -> list[str]:
        if person not in self._children:
            return [person]
        found = [person]
        stack = list(self._children[person])
        while stack:
            account = stack.pop()
            found.append(account)
            stack.extend(self._children.get(account, ()))
        return found

    def _record(self, account: str) -> _Account:
        record = self._accounts_by_id.get(account)
        if record is None:
            record = self._accounts_by_id[account] = _Account()
        return record

    def _left(self, seq: int) -> int:
        """Points left in the credit at ``seq``."""
        return self._rows[seq][2] - self._consumed.get(seq, 0)

    def _person_seqs(self, person: str) -> list[int]:
        records = self._accounts_by_id
        accounts = self._accounts(person)
        if len(accounts) == 1:
            record = records.get(person)
            return [] if record is None else list(_positions(record))
        return sorted(seq for a in accounts if a in records for seq in _positions(records[a]))

    def _check_replay(
        self, key: str, seq: int, kind: str, subject: str, points: int, reason: str
    ) -> None:
        """Raise :class:`DuplicateEntry` when ``key`` was used for another operation."""
        if seq < 0:
            same = self._capped[-1 - seq] == (kind, subject, points, reason)
            what = "capped award"
        else:
            row = self._rows[seq]
            refers_to = self._aux.get(seq, _NO_AUX)[0]
            row_kind = row[1]
            unconfirmed = row_kind == _CANCELLATION and row[3].startswith(_NOT_CONFIRMED)
            if kind == "confirm":
                same = refers_to == subject and (row_kind == _CREDIT or unconfirmed)
            elif kind == "cancel":
                same = refers_to == subject and row_kind == _CANCELLATION and not unconfirmed
            elif kind == _REVERSAL:
                same = row_kind == _REVERSAL and refers_to == subject
            else:
                requested = self._requested.get(seq, row[0])
                same = (
                    row_kind == kind
                    and (kind != _CREDIT or refers_to is None)
                    and row[6] == points
                    and row[3] == reason
                    and (requested == subject or self._root(requested) == self._root(subject))
                )
            what = "confirmation" if row_kind == _CREDIT and refers_to else row_kind
        if not same:
            raise DuplicateEntry(
                f"idempotency key {key!r} was already used for another operation (a {what}); "
                "use a new key for a new operation"
            )

    def _capped_index(self, what: tuple[str, str, int, str]) -> int:
        """The position of a capped award's ``(kind, member, points, reason)`` in ``_capped``."""
        n = self._capped_at.get(what)
        if n is None:
            n = self._capped_at[what] = len(self._capped)
            self._capped.append(what)
        return n

    def _slot(self, reason: str, at: datetime) -> int:
        """The key of a capped ``reason`` on the community day of ``at`` in ``cap_used``
        (the latest day of capped awards moves on with it)."""
        ordinal = self._days.ordinal_of(at)
        if ordinal > self._cap_top:
            self._cap_advance(ordinal)
        return ordinal * self._cap_stride + self._cap_index[reason]

    def _cap_advance(self, ordinal: int) -> None:
        """A capped award on a later day than any before: older days may be let go."""
        self._cap_top = ordinal
        self._cap_floor = (ordinal - self.CAP_DAYS_KEPT) * self._cap_stride

    def _use(self, record: _Account, slot: int) -> int:
        """Points credited to ``record``'s account in cap slot ``slot``."""
        used_map = record.cap_used
        if used_map is not None:
            used = used_map.get(slot)
            if used is not None:
                return used
        return 0 if slot >= self._cap_floor else self._recount(record, slot)

    def _uses(self, record: _Account, slot: int, used_map: dict[int, int]) -> int:
        """The use of a slot ``used_map`` (``record``'s) does not hold yet: 0 for a day
        still kept, else counted again. Makes room first when the map is full."""
        if len(used_map) >= self._cap_kept:
            floor = self._cap_floor
            for old in [old for old in used_map if old < floor]:
                del used_map[old]
        if slot >= self._cap_floor:
            return 0
        used = used_map[slot] = self._recount(record, slot)  # counted once while it is kept
        return used

    def _recount(self, record: _Account, slot: int) -> int:
        """Points credited to ``record``'s account in cap slot ``slot``, from its entries
        (a day whose use was let go): what :meth:`restore` counts for a day."""
        ordinal, index = divmod(slot, self._cap_stride)
        reason = list(self._caps)[index]  # _cap_index numbers the reasons in this order
        rows, ordinal_of = self._rows, self._days.ordinal_of
        total = 0
        for seq in _positions(record):
            row = rows[seq]
            if row[1] == _CREDIT and row[3] == reason and ordinal_of(row[4]) == ordinal:
                total += row[2]
        return total

    def _apply_cap(
        self, record: _Account, account: str, reason: str, at: datetime, points: int, cap: int
    ) -> int:
        slot = self._slot(reason, at)
        used_map = record.cap_used
        if used_map is None:
            used_map = record.cap_used = {}
        own = used_map.get(slot)
        if own is None:
            own = self._uses(record, slot, used_map)
        used = self.cap_used(account, reason, at) if account in self._children else own
        granted = cap - used
        if granted <= 0:
            return 0
        if points < granted:
            granted = points
        used_map[slot] = own + granted
        return granted

    def _append(
        self,
        account: str,
        kind: str,
        points: int,
        reason: str,
        at: datetime,
        key: str,
        amount: int,
        expires_at: datetime | None,
        aux: _Aux,
    ) -> int:
        rows = self._rows
        seq = len(rows)
        rows.append((account, kind, points, reason, at, key, amount, expires_at))
        if aux is not _NO_AUX:
            self._aux[seq] = aux
        record = self._record(account)
        _add_position(record, seq)
        record.balance += points
        return seq

    def _write_credit(
        self,
        account: str,
        granted: int,
        asked: int,
        reason: str,
        at: datetime,
        key: str,
        expires_at: datetime | None,
        refers_to: str | None,
    ) -> int:
        # award_seq writes its credits inline; keep the two in step.
        seq = self._append(
            account,
            _CREDIT,
            granted,
            reason,
            at,
            key,
            asked,
            expires_at,
            _NO_AUX if refers_to is None else (refers_to, 0, ()),
        )
        record = self._accounts_by_id[account]
        record.credited += granted
        if record.open is not None:
            record.open.append(seq)
        if expires_at is not None:
            heapq.heappush(self._expiry_heap, (_utc(expires_at), seq))
        self._keys[key] = seq
        return seq

    def _open_lots(self, person: str) -> list[int]:
        """Credits of ``person`` with points left, in spending order."""
        rows = self._rows
        left = self._left
        found: list[int] = []
        for account in self._accounts(person):
            record = self._accounts_by_id.get(account)
            if record is None:
                continue
            candidates = _positions(record) if record.open is None else record.open
            lots = [s for s in candidates if rows[s][1] == _CREDIT and left(s) > 0]
            record.open = lots
            found.extend(lots)

        def order(seq: int) -> tuple[bool, datetime | None, int]:
            expires_at = rows[seq][7]
            return (expires_at is None, None if expires_at is None else _utc(expires_at), seq)

        found.sort(key=order)
        return found

    def _take(
        self, person: str, points: int, first: int | None
    ) -> dict[str, list[tuple[int, int]]]:
        """Plan which lots pay ``points`` (the caller checked the balance)."""
        candidates = [seq for seq in self._open_lots(person) if seq != first]
        if first is not None and self._left(first) > 0:
            candidates.insert(0, first)
        plan: dict[str, list[tuple[int, int]]] = {}
        left = points
        for seq in candidates:
            if left == 0:
                break
            part = min(left, self._left(seq))
            plan.setdefault(self._rows[seq][0], []).append((seq, part))
            left -= part
        if left:  # pragma: no cover - the balance check makes this impossible
            raise AssertionError("ledger lots do not add up to the balance")
        return plan

    def _write_takes(
        self,
        kind: str,
        plan: Mapping[str, list[tuple[int, int]]],
        reason: str,
        at: datetime,
        key: str,
        refers_to: str | None,
        unrecovered: int,
        *,
        amount: int,
        primary: str | None,
    ) -> tuple[Entry, ...]:
        accounts = list(plan)
        if primary is not None:
            accounts.remove(primary)
            accounts.insert(0, primary)
        seqs: list[int] = []
        consumed = self._consumed
        for index, account in enumerate(accounts):
            parts = plan[account]
            total = 0
            for lot, part in parts:
                consumed[lot] = consumed.get(lot, 0) + part
                total += part
            own_key = key if index == 0 else f"{RESERVED_KEY_PREFIX}{key}#{index + 1}"
            seq = self._append(
                account,
                kind,
                -total,
                reason,
                at,
                own_key,
                amount if index == 0 else total,
                None,
                (
                    refers_to,
                    unrecovered if index == 0 else 0,
                    tuple((f"e{lot}", part) for lot, part in parts),
                ),
            )
            self._keys[own_key] = seq
            seqs.append(seq)
        if len(seqs) > 1:
            self._multi[key] = tuple(seqs)
        return tuple(self._entry(seq) for seq in seqs)

    def _pending(self, pending_id: str) -> int:
        seq = self._seq(pending_id)
        kind = self._rows[seq][1]
        if kind != _PENDING:
            raise InvalidOperation(f"entry {pending_id} is a {kind}, not a pending credit")
        return seq

    def _check_pending_open(self, pseq: int) -> None:
        settled = self._pending_state.get(pseq)
        if settled is not None:
            what = "confirmed" if self._rows[settled][1] == _CREDIT else "cancelled"
            raise InvalidOperation(f"pending credit e{pseq} was already {what} by entry e{settled}")


def total_points(entries: Iterable[Entry]) -> int:
    """The sum of the ``points`` of ``entries`` (what a balance must equal)."""
    return sum(e.points for e in entries)
