"""Lifecycle stages: new, active, silent, churned, recalled, left.

A member's stage at a moment follows from their record and activity
("activity" is what sets :attr:`MemberState.last_active_at`: posting a message,
adding a reaction, using a command). The first rule that holds wins:

* ``left`` — they left the community or were banned;
* ``new`` — they joined less than ``new_days`` ago;
* ``recalled`` — they are active (below) and their most recent *return* — the
  first activity after a gap of more than ``active_days`` without any, measured
  from the activity before it or, if there was none, from joining — happened
  less than ``recalled_days`` ago;
* ``active`` — they did something in the last ``active_days``;
* ``churned`` — nothing for more than ``churned_days`` (counted from the last
  activity or, if there was none, from joining);
* ``silent`` — everyone else: quiet, but not gone.

:func:`stage_of` is the one definition: it needs only the join time, the
status, the last activity and the last return. :func:`next_return` folds one
activity into "the last return", so a live engine (one event at a time) and a
batch computation (:func:`last_return` over a whole history) agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from enum import StrEnum

import attrs

from communitykit._errors import ModelError
from communitykit.model._decisions import MemberState
from communitykit.model._members import Member, MemberStatus

__all__ = [
    "LifecycleSettings",
    "Stage",
    "last_return",
    "lifecycle_stage",
    "next_return",
    "stage_of",
]


class Stage(StrEnum):
    NEW = "new"
    ACTIVE = "active"
    SILENT = "silent"
    CHURNED = "churned"
    RECALLED = "recalled"
    LEFT = "left"


_GONE = frozenset({MemberStatus.LEFT, MemberStatus.BANNED})


@attrs.frozen(kw_only=True)
class LifecycleSettings:
    new_days: int = 7
    active_days: int = 14
    churned_days: int = 45
    recalled_days: int = 14

    def __attrs_post_init__(self) -> None:
        if not 0 < self.active_days <= self.churned_days:
            raise ModelError(
                "lifecycle thresholds must satisfy 0 < active_days <= churned_days, got "
                f"active_days={self.active_days}, churned_days={self.churned_days}"
            )
        if self.new_days < 0:
            raise ModelError(f"new_days must be >= 0, got {self.new_days}")
        if self.recalled_days < 0:
            raise ModelError(f"recalled_days must be >= 0, got {self.recalled_days}")


def next_return(
    *,
    joined_at: datetime | None,
    last_active_at: datetime | None,
    returned_at: datetime | None,
    activity_at: datetime,
    settings: LifecycleSettings = LifecycleSettings(),
) -> datetime | None:
    """The member's last return once they are active at ``activity_at``.

    ``last_active_at`` and ``returned_at`` are the values before this activity.
    The activity is a return when more than ``active_days`` passed since the
    previous activity (or since joining, if there was none); otherwise the last
    return stays what it was.
    """
    reference = last_active_at if last_active_at is not None else joined_at
    if reference is not None and activity_at - reference > timedelta(days=settings.active_days):
        return activity_at
    return returned_at


def last_return(
    joined_at: datetime | None,
    activity: Iterable[datetime],
    settings: LifecycleSettings = LifecycleSettings(),
) -> datetime | None:
    """The last return in a whole history of activity times (in time order)."""
    last: datetime | None = None
    returned: datetime | None = None
    for at in activity:
        returned = next_return(
            joined_at=joined_at,
            last_active_at=last,
            returned_at=returned,
            activity_at=at,
            settings=settings,
        )
        last = at
    return returned


def stage_of(
    *,
    now: datetime,
    joined_at: datetime | None,
    status: MemberStatus,
    last_active_at: datetime | None,
    returned_at: datetime | None = None,
    settings: LifecycleSettings = LifecycleSettings(),
) -> Stage:
    """The stage at ``now`` of a member with these facts (see the module text)."""
    if status in _GONE:
        return Stage.LEFT
    if joined_at is not None and now - joined_at < timedelta(days=settings.new_days):
        return Stage.NEW
    if last_active_at is not None and now - last_active_at <= timedelta(days=settings.active_days):
        if returned_at is not None and now - returned_at < timedelta(days=settings.recalled_days):
            return Stage.RECALLED
        return Stage.ACTIVE
    reference = last_active_at if last_active_at is not None else joined_at
    if reference is not None and now - reference > timedelta(days=settings.churned_days):
        return Stage.CHURNED
    return Stage.SILENT


def lifecycle_stage(
    member: Member,
    state: MemberState | None,
    now: datetime,
    settings: LifecycleSettings = LifecycleSettings(),
    returned_at: datetime | None = None,
) -> Stage:
    """The member's stage at ``now``; ``recalled`` needs their last return."""
    return stage_of(
        now=now,
        joined_at=member.joined_at,
        status=member.status,
        last_active_at=state.last_active_at if state is not None else None,
        returned_at=returned_at,
        settings=settings,
    )
