"""What a metric gets: the date range, the scope, and the facts to count."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta, tzinfo
from functools import cached_property
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from communitykit.analytics._facts import Facts, build_facts, day_starts
from communitykit.model import Community, LifecycleSettings
from communitykit.store import Store

__all__ = ["MetricContext"]

#: how many days before ``start`` the day numbers reach (for 30-day windows)
LOOKBACK = 29


@attrs.define(kw_only=True, eq=False)
class MetricContext:
    """Everything a metric may read for one report.

    ``start`` and ``end`` are community dates (inclusive) in ``tz``; ``group`` (a
    group key) and ``platform`` narrow what is counted. :attr:`facts` are the
    stored events and ledger as numpy columns, built on first use and shared by
    every metric of the report (already narrowed to the group and platform).
    ``campaigns`` holds each configured campaign with what it remembers per
    member (for campaign funnels); ``ladder`` the tier names in ladder order.
    """

    start: date
    end: date
    tz: tzinfo
    community: Community
    store: Store
    group: str | None = None
    platform: str | None = None
    settings: LifecycleSettings = attrs.field(factory=LifecycleSettings)
    ladder: Sequence[str] = ()
    campaigns: Sequence[tuple[Any, Sequence[tuple[str, Mapping[str, Any]]]]] = ()
    _facts: Facts | None = attrs.field(default=None, alias="facts")
    #: what several metrics derive from the facts, computed once per report
    cache: dict[str, Any] = attrs.field(factory=dict, repr=False)

    @property
    def days(self) -> list[date]:
        """The community days of the range, in order."""
        return [self.start + timedelta(days=n) for n in range((self.end - self.start).days + 1)]

    @property
    def until(self) -> datetime:
        """The first instant after the range (midnight after ``end`` in ``tz``)."""
        return datetime.combine(self.end + timedelta(days=1), time(), self.tz)

    @property
    def facts(self) -> Facts:
        if self._facts is None:
            facts = build_facts(self.store, self.until, self.community, self.ladder)
            self._facts = facts.scoped(group=self.group, platform=self.platform)
        return self._facts

    @cached_property
    def _starts(self) -> npt.NDArray[np.int64]:
        return day_starts(self.start - timedelta(days=LOOKBACK), self.end, self.tz)

    def day_of(self, at_us: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """The day number of each instant: 0 for ``start``, ``n - 1`` for ``end``;
        days before the look-back window are all ``-LOOKBACK - 1``."""
        found = np.searchsorted(self._starts, at_us, side="right").astype(np.int64)
        return found - 1 - LOOKBACK
