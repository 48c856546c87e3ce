"""Tiers: an ordered ladder over qualifying points and a few criteria.

* A member qualifies for a tier when their qualifying points reach its
  ``threshold`` and they meet its criteria (tenure, check-ins, paid
  membership). Their tier is the highest they qualify for.
* **Upgrade is immediate. Downgrade waits**: a member who falls below their tier
  keeps it until they have stayed below for the ladder's ``grace`` period, then
  drops to the highest tier they qualify for at that moment.
* Qualifying points are credits minus reversed credits over a rolling window or
  the whole membership (see :meth:`communitykit.model.Ledger.qualifying_points`):
  spending points never changes a tier.
* **Multipliers.** A tier may multiply the points its members earn. The rounding
  rule, one for the whole SDK: *multiply exactly, then round half up to a whole
  point* (``5 × 1.5 = 7.5 → 8``, ``3 × 1.25 = 3.75 → 4``, ``1 × 1.2 = 1.2 → 1``).
  See :func:`apply_multiplier`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from decimal import InvalidOperation as DecimalError
from types import MappingProxyType
from typing import Any

import attrs

from communitykit._errors import ModelError
from communitykit.model._time import aware_validator

__all__ = ["QualifyingFacts", "Tier", "TierLadder", "TierState", "apply_multiplier"]


def _to_decimal(value: Decimal | int | str | float) -> Decimal:
    try:
        # floats go through str() so that 1.1 means 1.1, not 1.100000000000000088...
        result = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except (DecimalError, ValueError, TypeError) as exc:
        raise ModelError(f"a multiplier must be a decimal number, got {value!r}") from exc
    if not result.is_finite() or result < 0:
        raise ModelError(f"a multiplier must be a finite number >= 0, got {value!r}")
    return result


def apply_multiplier(points: int, multiplier: Decimal | int | str) -> int:
    """``points × multiplier``, rounded half up to a whole point (see the module docs)."""
    factor = multiplier if isinstance(multiplier, Decimal) else _to_decimal(multiplier)
    if factor == 1:
        return points
    return int((Decimal(points) * factor).to_integral_value(rounding=ROUND_HALF_UP))


def _non_negative(_instance: Any, attribute: Any, value: int) -> None:
    if type(value) is not int or value < 0:
        raise ModelError(f"{attribute.name} must be a whole number >= 0, got {value!r}")


def _freeze_titles(value: Mapping[str, str] | None) -> Mapping[str, str]:
    return MappingProxyType(dict(value or {}))


@attrs.frozen(kw_only=True)
class Tier:
    """One rung of the ladder.

    ``titles`` maps a platform name to the title (badge) members of this tier get
    there, e.g. ``{"telegram": "⭐ Gold"}``.
    """

    name: str = attrs.field()
    threshold: int = attrs.field(validator=_non_negative)
    multiplier: Decimal = attrs.field(default=Decimal(1), converter=_to_decimal)
    titles: Mapping[str, str] = attrs.field(
        factory=dict, converter=_freeze_titles, eq=False, hash=False
    )
    min_tenure_days: int = attrs.field(default=0, validator=_non_negative)
    min_checkins: int = attrs.field(default=0, validator=_non_negative)
    requires_paid: bool = False

    @name.validator
    def _check_name(self, _attribute: Any, value: str) -> None:
        if not isinstance(value, str) or not value.strip():
            raise ModelError(f"a tier needs a name, got {value!r}")

    def title_on(self, platform: str) -> str | None:
        return self.titles.get(platform)

    def admits(self, facts: QualifyingFacts) -> bool:
        """Whether ``facts`` meet this tier's threshold and criteria."""
        return (
            facts.points >= self.threshold
            and facts.tenure_days >= self.min_tenure_days
            and facts.checkins >= self.min_checkins
            and (facts.paid or not self.requires_paid)
        )


@attrs.frozen(kw_only=True)
class QualifyingFacts:
    """What a tier decision looks at, gathered by the caller at one moment."""

    points: int = 0
    tenure_days: int = 0
    checkins: int = 0
    paid: bool = False


@attrs.frozen(kw_only=True)
class TierState:
    """A member's tier, since when, and since when they have been below it (if they are)."""

    tier: str
    since: datetime = attrs.field(validator=aware_validator)
    below_since: datetime | None = attrs.field(default=None, validator=aware_validator)


def _tiers_converter(tiers: Iterable[Tier]) -> tuple[Tier, ...]:
    return tuple(tiers)


@attrs.frozen(kw_only=True)
class TierLadder:
    """The ordered tiers of a community, lowest first.

    The lowest tier must have threshold 0 and no criteria, so everyone has a tier.
    ``window`` is the rolling window qualifying points are counted over (``None``:
    the whole membership); ``grace`` is how long a member may stay below their tier
    before they lose it.
    """

    tiers: tuple[Tier, ...] = attrs.field(converter=_tiers_converter)
    window: timedelta | None = attrs.field(default=None)
    grace: timedelta = attrs.field(default=timedelta(days=30))

    @tiers.validator
    def _check_tiers(self, _attribute: Any, tiers: tuple[Tier, ...]) -> None:
        if not tiers:
            raise ModelError("a tier ladder needs at least one tier")
        base = tiers[0]
        if base.threshold != 0 or base.min_tenure_days or base.min_checkins or base.requires_paid:
            raise ModelError(
                f"the lowest tier {base.name!r} must have threshold 0 and no criteria, "
                "so that every member has a tier"
            )
        names: set[str] = set()
        for lower, upper in itertools.pairwise(tiers):
            if upper.threshold <= lower.threshold:
                raise ModelError(
                    f"tier thresholds must increase: {upper.name!r} ({upper.threshold}) "
                    f"comes after {lower.name!r} ({lower.threshold})"
                )
        for tier in tiers:
            if tier.name in names:
                raise ModelError(f"two tiers are named {tier.name!r}")
            names.add(tier.name)

    @window.validator
    def _check_window(self, _attribute: Any, value: timedelta | None) -> None:
        if value is not None and value <= timedelta(0):
            raise ModelError(f"the qualifying window must be positive, got {value}")

    @grace.validator
    def _check_grace(self, _attribute: Any, value: timedelta) -> None:
        if value < timedelta(0):
            raise ModelError(f"the downgrade grace period cannot be negative, got {value}")

    @property
    def base(self) -> Tier:
        return self.tiers[0]

    def tier(self, name: str) -> Tier:
        for tier in self.tiers:
            if tier.name == name:
                return tier
        raise ModelError(
            f"no tier named {name!r}; the tiers are {', '.join(t.name for t in self.tiers)}"
        )

    def rank(self, name: str) -> int:
        """0 for the lowest tier, 1 for the next, ..."""
        for index, tier in enumerate(self.tiers):
            if tier.name == name:
                return index
        raise ModelError(f"no tier named {name!r}")

    def qualifying_tier(self, facts: QualifyingFacts) -> Tier:
        """The highest tier ``facts`` qualify for."""
        best = self.tiers[0]
        for tier in self.tiers[1:]:
            if tier.admits(facts):
                best = tier
        return best

    def initial_state(self, facts: QualifyingFacts, now: datetime) -> TierState:
        return TierState(tier=self.qualifying_tier(facts).name, since=now)

    def evaluate(self, state: TierState | None, facts: QualifyingFacts, now: datetime) -> TierState:
        """The member's tier state at ``now`` given what they qualify for now.

        Pure: returns ``state`` itself when nothing changes. Call it whenever the
        facts change and on a schedule (so a grace period can run out).
        """
        if state is None:
            return self.initial_state(facts, now)
        target = self.qualifying_tier(facts)
        current_rank = self.rank(state.tier)
        target_rank = self.rank(target.name)
        if target_rank > current_rank:  # upgrade: immediate
            return TierState(tier=target.name, since=now)
        if target_rank == current_rank:
            if state.below_since is None:
                return state
            return TierState(tier=state.tier, since=state.since)
        # below the current tier: downgrade only once the grace period has passed
        if state.below_since is None:
            if self.grace == timedelta(0):
                return TierState(tier=target.name, since=now)
            return TierState(tier=state.tier, since=state.since, below_since=now)
        if now - state.below_since >= self.grace:
            return TierState(tier=target.name, since=now)
        return state

    def multiplier_for(self, name: str) -> Decimal:
        return self.tier(name).multiplier
