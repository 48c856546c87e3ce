"""Lifecycle stages of every member at once, with numpy.

The definition is :func:`communitykit.model.stage_of` (with the last return of
:func:`communitykit.model.last_return`); this module computes the same thing for
a million members from columns: each member's join time and status, and every
activity (member index, time) before ``now``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from communitykit.analytics._facts import ACTIVITY, build_facts
from communitykit.model import LifecycleSettings, Stage
from communitykit.store import Store
from communitykit.store._common import to_us

__all__ = ["STAGES", "stage_codes", "stage_counts", "stages"]

#: stage codes: ``STAGES[code]``
STAGES = (Stage.NEW, Stage.ACTIVE, Stage.SILENT, Stage.CHURNED, Stage.RECALLED, Stage.LEFT)
_NEW, _ACTIVE, _SILENT, _CHURNED, _RECALLED, _LEFT = range(6)
_DAY_US = 86_400_000_000


def stage_codes(
    *,
    now_us: int,
    joined_us: npt.NDArray[np.int64],
    gone: npt.NDArray[np.bool_],
    act_member: npt.NDArray[np.int32],
    act_at: npt.NDArray[np.int64],
    settings: LifecycleSettings,
) -> npt.NDArray[np.int8]:
    """Each member's stage code at ``now_us``.

    ``joined_us`` is -1 where unknown; ``act_member``/``act_at`` list activity
    (any order; anything after ``now_us`` is ignored).
    """
    window = _Window.of(len(joined_us), joined_us, act_member, act_at, now_us, settings)
    prior = np.full(len(joined_us), -1, dtype=np.int64)
    return _codes(now_us, joined_us, gone, window, prior, settings)


class _Window:
    """Each member's activity in a window of time, summed up for :func:`_codes`:
    the first and the last activity in it (-1: none) and the last return among
    the activity after the first (a gap of more than ``active_days`` from the
    activity before it in the window; -1: none)."""

    def __init__(
        self,
        first: npt.NDArray[np.int64],
        last: npt.NDArray[np.int64],
        inner_return: npt.NDArray[np.int64],
    ) -> None:
        self.first = first
        self.last = last
        self.inner_return = inner_return

    @classmethod
    def of(
        cls,
        n: int,
        joined_us: npt.NDArray[np.int64],
        act_member: npt.NDArray[np.int32],
        act_at: npt.NDArray[np.int64],
        now_us: int,
        settings: LifecycleSettings,
    ) -> _Window:
        before = act_at <= now_us
        if not before.all():
            act_member, act_at = act_member[before], act_at[before]
        order = np.lexsort((act_at, act_member))
        member = act_member[order]
        at = act_at[order]
        del order
        starts = np.ones(len(member), dtype=np.bool_)
        starts[1:] = member[1:] != member[:-1]
        first = np.full(n, -1, dtype=np.int64)
        first[member[starts]] = at[starts]
        last = np.full(n, -1, dtype=np.int64)
        ends = np.flatnonzero(np.r_[starts[1:], True]) if len(member) else np.zeros(0, np.int64)
        last[member[ends]] = at[ends]
        # returns after the first activity: gaps from the activity before
        returned = np.zeros(len(member), dtype=np.bool_)
        returned[1:] = at[1:] - at[:-1] > settings.active_days * _DAY_US
        returned &= ~starts
        inner_return = np.full(n, -1, dtype=np.int64)
        picked = np.flatnonzero(returned)
        if len(picked):
            who = member[picked]
            ends = picked[np.r_[who[1:] != who[:-1], True]]
            inner_return[member[ends]] = at[ends]
        return cls(first, last, inner_return)


def _codes(
    now_us: int,
    joined_us: npt.NDArray[np.int64],
    gone: npt.NDArray[np.bool_],
    window: _Window,
    prior: npt.NDArray[np.int64],
    settings: LifecycleSettings,
) -> npt.NDArray[np.int8]:
    """Stage codes from the activity in a window and ``prior``: each member's last
    activity before the window (-1: none)."""
    n = len(joined_us)
    first, last = window.first, window.last
    # the first activity in the window is a return when it comes more than
    # active_days after the activity before it or, if none, after joining
    reference = np.where(prior >= 0, prior, joined_us)
    first_returned = (
        (first >= 0) & (reference >= 0) & (first - reference > settings.active_days * _DAY_US)
    )
    last_return = np.where(
        window.inner_return >= 0, window.inner_return, np.where(first_returned, first, -1)
    )
    last = np.where(last >= 0, last, prior)

    code = np.full(n, _SILENT, dtype=np.int8)
    has_last = last >= 0
    reference_all = np.where(has_last, last, joined_us)
    churned = (reference_all >= 0) & (now_us - reference_all > settings.churned_days * _DAY_US)
    code[churned] = _CHURNED
    active = has_last & (now_us - last <= settings.active_days * _DAY_US)
    code[active] = _ACTIVE
    recalled = (
        active & (last_return >= 0) & (now_us - last_return < settings.recalled_days * _DAY_US)
    )
    code[recalled] = _RECALLED
    new = (joined_us >= 0) & (now_us - joined_us < settings.new_days * _DAY_US)
    code[new] = _NEW
    code[gone] = _LEFT
    return code


_DEFAULT = LifecycleSettings()


def stages(
    store: Store, now: datetime, settings: LifecycleSettings = _DEFAULT
) -> Mapping[str, Stage]:
    """Every member's lifecycle stage at ``now`` (member id → stage), from one scan of
    the stored activity and the members' records."""
    facts = build_facts(store, now + timedelta(microseconds=1), activity_only=True)
    active = np.isin(facts.ev_type, ACTIVITY)
    codes = stage_codes(
        now_us=to_us(now),
        joined_us=facts.joined_us,
        gone=facts.gone,
        act_member=facts.ev_member[active],
        act_at=facts.ev_at[active],
        settings=settings,
    )
    return _StageMap(facts.member_ids, codes)


def stage_counts(found: Mapping[str, Stage]) -> dict[Stage, int]:
    """How many members are in each stage (every stage listed, zeros included)."""
    if isinstance(found, _StageMap):
        counts = np.bincount(found.codes, minlength=len(STAGES))
        return {stage: int(counts[n]) for n, stage in enumerate(STAGES)}
    out = dict.fromkeys(STAGES, 0)
    for stage in found.values():
        out[stage] += 1
    return out


class _StageMap(Mapping[str, Stage]):
    """member id → stage, kept as codes (a million members need no million objects)."""

    def __init__(self, member_ids: Sequence[str], codes: npt.NDArray[np.int8]) -> None:
        self.member_ids = member_ids
        self.codes = codes
        self._index: dict[str, int] | None = None

    def __getitem__(self, member_id: str) -> Stage:
        if self._index is None:
            self._index = {m: n for n, m in enumerate(self.member_ids)}
        return STAGES[int(self.codes[self._index[member_id]])]

    def __iter__(self) -> Iterator[str]:
        return iter(self.member_ids)

    def __len__(self) -> int:
        return len(self.member_ids)
