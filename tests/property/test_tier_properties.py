"""Tier invariants, property-tested."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from communitykit import (
    Ledger,
    ModelError,
    QualifyingFacts,
    Tier,
    TierLadder,
    TierState,
    apply_multiplier,
)

START = datetime(2026, 1, 1, tzinfo=UTC)


@st.composite
def ladders(draw: st.DrawFn) -> TierLadder:
    count = draw(st.integers(1, 5))
    steps = draw(st.lists(st.integers(1, 500), min_size=count - 1, max_size=count - 1))
    thresholds = [0]
    for step in steps:
        thresholds.append(thresholds[-1] + step)
    tiers = [Tier(name="base", threshold=0)]
    for index, threshold in enumerate(thresholds[1:], start=1):
        tiers.append(
            Tier(
                name=f"t{index}",
                threshold=threshold,
                multiplier=draw(st.sampled_from(["1", "1.2", "1.5", "2"])),
                min_tenure_days=draw(st.sampled_from([0, 0, 7, 30])),
                min_checkins=draw(st.sampled_from([0, 0, 5])),
                requires_paid=draw(st.booleans()),
            )
        )
    grace = timedelta(days=draw(st.integers(0, 60)))
    window = draw(st.sampled_from([None, timedelta(days=30), timedelta(days=90)]))
    return TierLadder(tiers=tiers, grace=grace, window=window)


facts_strategy = st.builds(
    QualifyingFacts,
    points=st.integers(0, 3000),
    tenure_days=st.integers(0, 400),
    checkins=st.integers(0, 50),
    paid=st.booleans(),
)


@given(ladder=ladders(), facts=facts_strategy, extra=st.integers(0, 3000))
def test_tier_is_monotone_in_qualifying_points(
    ladder: TierLadder, facts: QualifyingFacts, extra: int
) -> None:
    richer = QualifyingFacts(
        points=facts.points + extra,
        tenure_days=facts.tenure_days,
        checkins=facts.checkins,
        paid=facts.paid,
    )
    low = ladder.rank(ladder.qualifying_tier(facts).name)
    high = ladder.rank(ladder.qualifying_tier(richer).name)
    assert high >= low


@given(ladder=ladders(), facts=facts_strategy)
def test_qualifying_tier_is_the_highest_admitting_tier(
    ladder: TierLadder, facts: QualifyingFacts
) -> None:
    chosen = ladder.qualifying_tier(facts)
    assert chosen.admits(facts)
    higher = ladder.tiers[ladder.rank(chosen.name) + 1 :]
    assert not any(t.admits(facts) for t in higher)


@settings(max_examples=200)
@given(
    ladder=ladders(),
    steps=st.lists(
        st.tuples(st.integers(0, 20 * 24), facts_strategy),  # hours later, new facts
        min_size=1,
        max_size=40,
    ),
)
def test_no_tier_change_back_and_forth_inside_a_grace_period(
    ladder: TierLadder, steps: list[tuple[int, QualifyingFacts]]
) -> None:
    now = START
    state: TierState | None = None
    below_from: datetime | None = None  # since when the member is below their tier, per facts
    history: list[tuple[datetime, str]] = []
    for hours, facts in steps:
        now += timedelta(hours=hours)
        previous = state
        state = ladder.evaluate(state, facts, now)
        target_rank = ladder.rank(ladder.qualifying_tier(facts).name)
        if previous is not None:
            old_rank = ladder.rank(previous.tier)
            # the member has been below their tier since the first step that put them there
            below_from = (below_from or now) if target_rank < old_rank else None
            new_rank = ladder.rank(state.tier)
            if new_rank > old_rank:
                # upgrades are immediate, and go straight to the qualifying tier
                assert new_rank == target_rank
            if new_rank < old_rank:
                # a downgrade only after staying below for the whole grace period
                assert below_from is not None
                assert now - below_from >= ladder.grace
                assert new_rank == target_rank
            if target_rank < old_rank and new_rank == old_rank:
                assert state.below_since is not None
        if target_rank >= ladder.rank(state.tier):
            below_from = None
        if not history or history[-1][1] != state.tier:
            history.append((now, state.tier))
    # never up then down (or down then up-and-down) within less than the grace period
    for (t1, tier1), (t2, tier2) in itertools.pairwise(history):
        if ladder.rank(tier2) < ladder.rank(tier1):
            assert t2 - t1 >= ladder.grace


@given(
    ladder=ladders(),
    awards=st.lists(st.integers(1, 300), min_size=1, max_size=30),
    spends=st.lists(st.integers(1, 300), max_size=30),
)
def test_spending_never_changes_the_tier(
    ladder: TierLadder, awards: list[int], spends: list[int]
) -> None:
    ledger = Ledger("UTC")
    now = START
    for index, points in enumerate(awards):
        now += timedelta(hours=1)
        ledger.award("m", points, reason="activity", at=now, key=f"a{index}")
    window = ladder.window

    def tier_now() -> str:
        facts = QualifyingFacts(
            points=ledger.qualifying_points("m", now=now, window=window),
            tenure_days=400,
            checkins=50,
            paid=True,
        )
        return ladder.qualifying_tier(facts).name

    before = tier_now()
    for index, points in enumerate(spends):
        if points <= ledger.balance("m"):
            ledger.spend("m", points, reason="shop", at=now, key=f"s{index}")
        assert tier_now() == before


@given(points=st.integers(0, 10**9), multiplier=st.decimals(0, 100, places=3))
def test_multiplier_rounding_is_deterministic(points: int, multiplier: Decimal) -> None:
    first = apply_multiplier(points, multiplier)
    assert first == apply_multiplier(points, str(multiplier))
    assert first == apply_multiplier(points, Decimal(str(multiplier)))
    exact = Decimal(points) * multiplier
    # round half up: within half a point, and exact halves go up
    assert abs(Decimal(first) - exact) <= Decimal("0.5")
    if exact - int(exact) == Decimal("0.5"):
        assert first == int(exact) + 1


@given(
    a=st.integers(0, 10**6),
    b=st.integers(0, 10**6),
    multiplier=st.decimals(0, 10, places=2),
)
def test_multiplied_points_are_monotone(a: int, b: int, multiplier: Decimal) -> None:
    low, high = sorted((a, b))
    assert apply_multiplier(low, multiplier) <= apply_multiplier(high, multiplier)


@pytest.mark.parametrize(
    ("points", "multiplier", "expected"),
    [(5, "1.5", 8), (3, "1.25", 4), (1, "1.2", 1), (7, "1", 7), (10, "0.05", 1), (9, "0.05", 0)],
)
def test_multiplier_examples(points: int, multiplier: str, expected: int) -> None:
    assert apply_multiplier(points, multiplier) == expected
    assert (
        int((Decimal(points) * Decimal(multiplier)).quantize(Decimal(1), ROUND_HALF_UP)) == expected
    )


def test_ladder_rejects_a_base_tier_with_criteria() -> None:
    with pytest.raises(ModelError, match="lowest tier 'base' must have threshold 0"):
        TierLadder(tiers=[Tier(name="base", threshold=10)])


def test_ladder_rejects_thresholds_that_do_not_increase() -> None:
    with pytest.raises(ModelError, match="thresholds must increase"):
        TierLadder(
            tiers=[
                Tier(name="base", threshold=0),
                Tier(name="gold", threshold=100),
                Tier(name="silver", threshold=50),
            ]
        )


def test_bad_multiplier_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="multiplier"):
        Tier(name="gold", threshold=10, multiplier="lots")
    with pytest.raises(ModelError, match=">= 0"):
        Tier(name="gold", threshold=10, multiplier="-1")


def test_downgrade_waits_for_grace_then_happens() -> None:
    ladder = TierLadder(
        tiers=[Tier(name="base", threshold=0), Tier(name="gold", threshold=100)],
        grace=timedelta(days=7),
    )
    gold = ladder.evaluate(None, QualifyingFacts(points=150), START)
    assert gold.tier == "gold"
    day = timedelta(days=1)
    low = QualifyingFacts(points=10)
    s1 = ladder.evaluate(gold, low, START + day)
    assert (s1.tier, s1.below_since) == ("gold", START + day)
    s2 = ladder.evaluate(s1, low, START + 7 * day)
    assert s2.tier == "gold"
    s3 = ladder.evaluate(s2, low, START + 8 * day)
    assert s3.tier == "base"
    # recovering inside the grace period clears the countdown
    back = ladder.evaluate(s1, QualifyingFacts(points=120), START + 2 * day)
    assert (back.tier, back.below_since) == ("gold", None)
