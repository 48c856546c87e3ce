"""Where the engine gets the time: the wall clock live, the events' own time in a replay."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from communitykit.model._time import require_aware

__all__ = ["Clock", "SimulatedClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware."""


class SystemClock:
    """The wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


class SimulatedClock:
    """A clock that only moves when told to, and never backwards.

    ``simulate`` sets it to each event's time, so scheduled work runs at the same
    simulated moments a live run would see.
    """

    def __init__(self, start: datetime) -> None:
        require_aware("start", start)
        self._now = start

    def now(self) -> datetime:
        return self._now

    def set(self, moment: datetime) -> None:
        """Move to ``moment`` if it is later than now (earlier moments are ignored)."""
        require_aware("moment", moment)
        if moment > self._now:
            self._now = moment

    def __repr__(self) -> str:
        return f"SimulatedClock({self._now.isoformat()})"
