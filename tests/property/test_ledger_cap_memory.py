"""The ledger lets go of old days' cap use, and nothing it decides changes.

A ledger keeps how much of each daily cap a member used for the latest
``Ledger.CAP_DAYS_KEPT`` days only; an award for an older day (a late event)
counts that day again from the member's credits. These properties run the same
operations on a ledger that keeps no old day and on one that forgets nothing,
and hold them to the same results.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from communitykit.model import Ledger

START = datetime(2026, 3, 1, 9, tzinfo=UTC)
MEMBERS = ("a", "b", "c")
REASONS = ("message", "reaction", "bonus")  # the first two capped
CAPS = {"message": 5, "reaction": 3}


class Forgetful(Ledger):
    __slots__ = ()
    CAP_DAYS_KEPT = 0


class Elephant(Ledger):
    __slots__ = ()
    CAP_DAYS_KEPT = 10**6


awards = st.tuples(
    st.sampled_from(MEMBERS),
    st.integers(1, 4),
    st.sampled_from(REASONS),
    st.integers(0, 40),  # the day, in any order: late awards included
    st.integers(0, 23),  # the hour
)
operations = st.lists(
    st.one_of(
        awards.map(lambda a: ("award", *a)),
        st.tuples(st.just("merge"), st.sampled_from(MEMBERS[1:])),
        st.tuples(st.just("unmerge"), st.sampled_from(MEMBERS[1:])),
        st.tuples(st.just("pending"), awards),
        st.tuples(st.just("confirm"), st.integers(0, 10), st.integers(0, 40)),
    ),
    max_size=60,
)


def _apply(ledger: Ledger, op: tuple[Any, ...], n: int, pendings: list[str]) -> object:
    kind = op[0]
    try:
        if kind == "award":
            _, member, points, reason, day, hour = op
            at = START + timedelta(days=day, hours=hour)
            return ledger.award_seq(member, points, reason=reason, at=at, key=f"k{n}")
        if kind == "merge":
            ledger.merge_accounts("a", op[1])
            return None
        if kind == "unmerge":
            return ledger.unmerge_accounts(op[1])
        if kind == "pending":
            member, points, reason, day, hour = op[1]
            at = START + timedelta(days=day, hours=hour)
            entry = ledger.award_pending(member, points, reason=reason, at=at, key=f"k{n}")
            pendings.append(entry.entry_id)
            return entry
        if kind == "confirm":
            if not pendings:
                return None
            pending = pendings[op[1] % len(pendings)]
            return ledger.confirm(pending, at=START + timedelta(days=op[2]), key=f"k{n}")
    except Exception as exc:  # the same refusal from both is part of the same result
        return type(exc).__name__, str(exc)
    raise AssertionError(kind)


def _uses(ledger: Ledger) -> dict[tuple[str, str, int], int]:
    return {
        (member, reason, day): ledger.cap_used(member, reason, START + timedelta(days=day))
        for member in MEMBERS
        for reason in CAPS
        for day in range(41)
    }


@settings(max_examples=300, deadline=None)
@given(operations)
def test_forgetting_old_cap_use_changes_no_award(ops: list[tuple[Any, ...]]) -> None:
    short, full = Forgetful("Asia/Shanghai", CAPS), Elephant("Asia/Shanghai", CAPS)
    short_pendings: list[str] = []
    full_pendings: list[str] = []
    for n, op in enumerate(ops):
        assert _apply(short, op, n, short_pendings) == _apply(full, op, n, full_pendings), op
    assert short.entries() == full.entries()
    assert _uses(short) == _uses(full)
    for member in MEMBERS:
        assert short.balance(member) == full.balance(member)


@settings(max_examples=200, deadline=None)
@given(operations, operations)
def test_a_restored_ledger_that_forgets_awards_as_one_that_never_stopped(
    before: list[tuple[Any, ...]], after: list[tuple[Any, ...]]
) -> None:
    # a restart (restore from the entries) keeps only the latest days' use too
    full = Elephant("Asia/Shanghai", CAPS)
    full_pendings: list[str] = []
    for n, op in enumerate(before):
        _apply(full, op, n, full_pendings)
    restored = Forgetful.restore(full.entries(), "Asia/Shanghai", CAPS)
    for member in MEMBERS[1:]:  # merges are the identity graph's to restore
        if full.merged_into(member) is not None:
            restored.merge_accounts("a", member)
    assert _uses(restored) == _uses(full)
    pendings = list(full_pendings)
    for n, op in enumerate(after, start=len(before)):
        assert _apply(restored, op, n, pendings) == _apply(full, op, n, full_pendings), op
    assert restored.entries() == full.entries()
    assert _uses(restored) == _uses(full)


def test_an_account_keeps_the_use_of_its_latest_days_only() -> None:
    ledger = Ledger("UTC", {"message": 2})
    for day in range(365):
        at = START + timedelta(days=day)
        ledger.award_seq("a", 1, reason="message", at=at, key=f"m{day}")
    kept = ledger._accounts_by_id["a"].cap_used
    assert kept is not None
    assert len(kept) <= Ledger.CAP_DAYS_KEPT + 2  # not one slot per day of the year
    # a late award for an old day still meets that day's use: 1 of 2 left
    late = START + timedelta(days=3, hours=5)
    assert ledger.cap_remaining("a", "message", late) == 1
    seq = ledger.award_seq("a", 5, reason="message", at=late, key="late")
    assert ledger.entry_at(seq).points == 1
    assert ledger.award_seq("a", 5, reason="message", at=late, key="later") == -1
