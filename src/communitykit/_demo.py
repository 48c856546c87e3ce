"""A simulated community run on the domain model alone (no store, no platform).

Deterministic for a given seed: members post messages, react, and spend points;
the ledger applies daily caps and tier multipliers; tiers are evaluated every
simulated day with a downgrade grace period.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import attrs

from communitykit._errors import InsufficientPoints
from communitykit.model import (
    Ledger,
    QualifyingFacts,
    Tier,
    TierLadder,
    TierState,
    apply_multiplier,
)

__all__ = ["DemoResult", "run_model_demo"]

LADDER = TierLadder(
    tiers=[
        Tier(name="newcomer", threshold=0),
        Tier(name="regular", threshold=60, multiplier="1.1"),
        Tier(name="core", threshold=200, multiplier="1.25", min_tenure_days=7),
        Tier(name="star", threshold=450, multiplier="1.5", min_tenure_days=14),
    ],
    window=timedelta(days=30),
    grace=timedelta(days=7),
)
DAILY_CAPS = {"message": 20, "reaction_received": 10}


@attrs.frozen
class DemoResult:
    members: int
    days: int
    events: int
    points_issued: int
    points_spent: int
    points_capped: int
    tiers: dict[str, int]
    top: list[tuple[str, int, str]]  # member, balance, tier


def run_model_demo(members: int = 500, days: int = 30, seed: int = 7) -> DemoResult:
    """Simulate ``members`` over ``days`` and return what happened."""
    if members < 1 or days < 1:
        raise ValueError("members and days must be at least 1")
    rng = random.Random(seed)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    ledger = Ledger("Asia/Shanghai", DAILY_CAPS)
    ids = [f"m{i:05d}" for i in range(members)]
    # a few very active members, many quiet ones (a long tail, as in real groups)
    activity = {m: rng.paretovariate(1.2) for m in ids}
    states: dict[str, TierState] = {}
    events = issued = spent = capped = 0
    for day in range(days):
        today = start + timedelta(days=day)
        for member in ids:
            tier = states[member].tier if member in states else LADDER.base.name
            factor = LADDER.multiplier_for(tier)
            posts = min(int(rng.expovariate(1.0 / activity[member])), 60)
            for n in range(posts):
                events += 1
                at = today + timedelta(minutes=rng.randrange(24 * 60))
                asked = apply_multiplier(2, factor)
                entry = ledger.award(
                    member, asked, reason="message", at=at, key=f"msg:{member}:{day}:{n}"
                )
                got = 0 if entry is None else entry.points
                issued += got
                capped += asked - got
            if posts and rng.random() < 0.3:
                events += 1
                fan = rng.choice(ids)
                at = today + timedelta(hours=20)
                entry = ledger.award(
                    member, 1, reason="reaction_received", at=at, key=f"react:{member}:{day}:{fan}"
                )
                issued += 0 if entry is None else entry.points
            balance = ledger.balance(member)
            if balance >= 80 and rng.random() < 0.05:
                try:
                    ledger.spend(
                        member, 50, reason="reward shop", at=today, key=f"shop:{member}:{day}"
                    )
                    spent += 50
                except InsufficientPoints:  # pragma: no cover - checked just above
                    pass
        end_of_day = today + timedelta(days=1)
        for member in ids:
            facts = QualifyingFacts(
                points=ledger.qualifying_points(member, now=end_of_day, window=LADDER.window),
                tenure_days=day + 1,
            )
            states[member] = LADDER.evaluate(states.get(member), facts, end_of_day)
    tiers = Counter(state.tier for state in states.values())
    ranking = sorted(ids, key=lambda m: (-ledger.balance(m), m))[:5]
    return DemoResult(
        members=members,
        days=days,
        events=events,
        points_issued=issued,
        points_spent=spent,
        points_capped=capped,
        tiers={t.name: tiers.get(t.name, 0) for t in LADDER.tiers},
        top=[(m, ledger.balance(m), states[m].tier) for m in ranking],
    )
