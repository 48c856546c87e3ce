"""Lifecycle stages: new, active, silent, churned, left.

A member's stage at a moment follows from their record and activity:

* ``left`` — they left the community or were banned;
* ``new`` — they joined less than ``new_days`` ago;
* ``active`` — they did something (posted, reacted, used a command) in the last
  ``active_days``;
* ``churned`` — nothing for more than ``churned_days`` (or never anything, and
  joined that long ago);
* ``silent`` — everyone else: quiet, but not gone.

(``recalled`` — back after being silent or churned — needs the history of
stages; the engine tracks it when lifecycle tracking is on.)
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

import attrs

from communitykit._errors import ModelError
from communitykit.model._decisions import MemberState
from communitykit.model._members import Member, MemberStatus

__all__ = ["LifecycleSettings", "Stage", "lifecycle_stage"]


class Stage(StrEnum):
    NEW = "new"
    ACTIVE = "active"
    SILENT = "silent"
    CHURNED = "churned"
    RECALLED = "recalled"
    LEFT = "left"


@attrs.frozen(kw_only=True)
class LifecycleSettings:
    new_days: int = 7
    active_days: int = 14
    churned_days: int = 45

    def __attrs_post_init__(self) -> None:
        if not 0 < self.active_days <= self.churned_days:
            raise ModelError(
                "lifecycle thresholds must satisfy 0 < active_days <= churned_days, got "
                f"active_days={self.active_days}, churned_days={self.churned_days}"
            )
        if self.new_days < 0:
            raise ModelError(f"new_days must be >= 0, got {self.new_days}")


def lifecycle_stage(
    member: Member,
    state: MemberState | None,
    now: datetime,
    settings: LifecycleSettings = LifecycleSettings(),
) -> Stage:
    """The member's stage at ``now`` (never ``recalled``: that needs history)."""
    if member.status in (MemberStatus.LEFT, MemberStatus.BANNED):
        return Stage.LEFT
    if member.joined_at is not None and now - member.joined_at < timedelta(days=settings.new_days):
        return Stage.NEW
    last = state.last_active_at if state is not None else None
    if last is not None and now - last <= timedelta(days=settings.active_days):
        return Stage.ACTIVE
    reference = last if last is not None else member.joined_at
    if reference is not None and now - reference > timedelta(days=settings.churned_days):
        return Stage.CHURNED
    return Stage.SILENT
