"""Lifecycle stages of every member at once, with numpy.

The definition is :func:`communitykit.model.stage_of` (with the last return of
:func:`communitykit.model.last_return`); this module computes the same thing for
a million members from columns: each member's join time and status, and every
activity (member index, time) before ``now``.
"""

from __future__ import annotations

import gc
import json
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

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
I64 = npt.NDArray[np.int64]


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
    """Every member's lifecycle stage at ``now`` (member id → stage).

    On SQLite only the activity of the last ``recalled_days + active_days + 1``
    days before ``now`` is read (through the index on the event time); before
    that, each member's ``last_active_at`` (their latest activity, as the engine
    keeps it) tells what is needed, and the few members for whom it does not
    (their latest activity lies after the window start, and what came before the
    window would change their stage) are looked up in one more pass over the
    older events, in SQL. Other stores: one scan of the stored activity.
    """
    engine = getattr(store, "_engine", None)
    if engine is not None and engine.dialect.name == "sqlite":
        collecting = gc.isenabled()
        gc.disable()  # a million short-lived rows and nothing cyclic
        try:
            return _stages_sqlite(engine, to_us(now), settings)
        except _Unreadable:
            pass
        finally:
            if collecting:
                gc.enable()
    return _stages_scan(store, now, settings)


def _stages_scan(store: Store, now: datetime, settings: LifecycleSettings) -> _StageMap:
    """The stages from a scan of all the stored activity (any store)."""
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


_ACTIVITY_SQL = "type IN ('message_posted', 'reaction_added', 'command_invoked')"
_WIDTH = 40  # an ISO instant, padded with spaces (the store writes 25 or 32 characters)
_PAD = " " * _WIDTH
_SEP = "\x1e"  # between the strings of a column read as one


def _no_member() -> int:
    return -1


class _Unreadable(Exception):
    """A column read as one string could not be split (a value holds the separator)."""


def _instant_sql(column: str) -> str:
    """``column`` (an ISO instant or NULL) padded to ``_WIDTH`` characters."""
    return f"substr(coalesce({column}, '') || '{_PAD}', 1, {_WIDTH})"


def _instants(text: str | None, n: int) -> I64:
    """Epoch microseconds of ``n`` instants written by :func:`_instant_sql` one after
    another (-1 for none). numpy parses the UTC forms the store writes
    (``...T12:00:00.123456+00:00`` and ``...T12:00:00+00:00``); Python the rest."""
    try:
        raw = (text or "").encode("ascii")
    except UnicodeEncodeError as error:
        raise _Unreadable from error
    if len(raw) != n * _WIDTH:
        raise _Unreadable
    chars = np.frombuffer(raw, dtype=np.uint8).reshape(n, _WIDTH)
    space = ord(" ")
    if n and (chars[:, -1] != space).any():
        raise _Unreadable  # longer than any instant
    utc = np.frombuffer(b"+00:00", dtype=np.uint8)
    with_us = (chars[:, 26:32] == utc).all(axis=1) & (chars[:, 32] == space)
    whole = (chars[:, 19:25] == utc).all(axis=1) & (chars[:, 25] == space)
    found = np.full(n, -1, dtype=np.int64)
    try:
        for rows, width in ((with_us, 26), (whole, 19)):
            part = np.ascontiguousarray(chars[rows, :width]).view(f"S{width}").ravel()
            found[rows] = part.astype("datetime64[us]").astype(np.int64)
    except ValueError as error:
        raise _Unreadable from error
    for i in np.flatnonzero(~with_us & ~whole & (chars[:, 0] != space)).tolist():
        found[i] = to_us(
            datetime.fromisoformat(raw[i * _WIDTH : (i + 1) * _WIDTH].decode().rstrip())
        )
    return found


def _strings(text: str | None, n: int) -> list[str]:
    if n == 0:
        return []
    found = (text or "").split(_SEP)
    if len(found) != n:
        raise _Unreadable
    return found


def _integers(text: str | None, n: int) -> I64:
    found = np.fromstring(text or "", dtype=np.int64, sep=",") if n else np.zeros(0, np.int64)
    if len(found) != n:
        raise _Unreadable
    return found


def _seen_since(
    cur: Any,
    wanted: npt.NDArray[np.bool_],
    lookup: Mapping[str, int],
    key_sql: str,
    platform_sql: str,
    platform_args: tuple[str, ...],
    start_us: int,
) -> npt.NDArray[np.bool_]:
    """Of the ``wanted`` members, those whose every identity was first seen (its
    earliest link, made when it showed up: ``joined``) at or after ``start_us``:
    they have no activity before it."""
    keys = [k for k, i in lookup.items() if i >= 0 and wanted[i]]
    first: dict[str, tuple[int, str]] = {}  # identity → its earliest link (time, method)
    cur.execute(
        f"SELECT {key_sql}, at_us, method FROM ck_links "
        f"WHERE {platform_sql}{key_sql} IN (SELECT value FROM json_each(?))",
        (*platform_args, json.dumps(keys)),
    )
    for key, at, method in cur:
        if key not in first or at < first[key][0]:
            first[key] = (at, method)
    seen = np.zeros(len(wanted), dtype=np.bool_)
    late = np.zeros(len(wanted), dtype=np.bool_)  # an identity seen earlier, or never linked
    for key in keys:
        i = lookup[key]
        link = first.get(key)
        seen[i] = True
        if link is None or link[0] < start_us or link[1] != "joined":
            late[i] = True
    return seen & ~late


def _stages_sqlite(engine: Any, now_us: int, settings: LifecycleSettings) -> _StageMap:
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()

        # the members, numbered by row order, with their latest activity: each
        # column comes as one string (no Python object per value but the ids)
        n, rowid_s, ids_s, gone_s, joined_s, last_s = cur.execute(
            "SELECT count(*), group_concat(rowid), group_concat(member_id, char(30)), "
            "group_concat(gone, ''), group_concat(joined, ''), group_concat(last, '') FROM "
            "(SELECT m.rowid AS rowid, m.member_id AS member_id, "
            "m.status IN ('left', 'banned') AS gone, "
            f"{_instant_sql('m.joined_at')} AS joined, {_instant_sql('s.last_active_at')} AS last "
            "FROM ck_members m LEFT JOIN ck_member_states s ON s.member_id = m.member_id "
            "ORDER BY m.rowid)"
        ).fetchone()
        rowids = _integers(rowid_s, n)
        member_ids = _strings(ids_s, n)
        gone = np.frombuffer((gone_s or "").encode("ascii"), dtype=np.uint8) == ord("1")
        joined_us = _instants(joined_s, n)
        last_active = _instants(last_s, n)
        del rowid_s, ids_s, gone_s, joined_s, last_s
        if len(gone) != n:
            raise _Unreadable
        # identities → member numbers (the member's row, found by SQLite)
        platforms = [p for (p,) in cur.execute("SELECT DISTINCT platform FROM ck_identities")]
        single = len(platforms) <= 1
        key_sql = "user_id" if single else "platform || char(31) || user_id"
        count, keys_s, rows_s = cur.execute(
            "SELECT count(*), group_concat(key, char(30)), group_concat(member) FROM "
            f"(SELECT i.{key_sql} AS key, m.rowid AS member FROM ck_identities i "
            "JOIN ck_members m ON m.member_id = i.member_id)"
        ).fetchone()
        keys_t = _strings(keys_s, count)
        numbers = np.searchsorted(rowids, _integers(rows_s, count))
        del keys_s, rows_s
        # (a miss answers -1, so the window's keys map without a Python call each)
        lookup: defaultdict[str, int] = defaultdict(_no_member)
        lookup.update(zip(keys_t, numbers.tolist(), strict=True))
        del keys_t, numbers, rowids
        if single and platforms:
            platform_sql = "+platform = ? AND "  # (not through the key index)
            platform_args: tuple[str, ...] = (platforms[0],)
        else:
            platform_sql, platform_args = "", ()
        # the activity in the window, through the index on the event time
        start_us = now_us - (settings.recalled_days + settings.active_days + 1) * _DAY_US
        count, at_s, keys_s = cur.execute(
            f"SELECT count(*), group_concat(at_us), group_concat(key, char(30)) FROM "
            f"(SELECT at_us, {key_sql} AS key FROM ck_events WHERE at_us >= ? AND at_us <= ? "
            f"AND {platform_sql}{_ACTIVITY_SQL})",
            (start_us, now_us, *platform_args),
        ).fetchone()
        act_at = _integers(at_s, count)
        act_member = np.fromiter(
            map(lookup.__getitem__, _strings(keys_s, count)), dtype=np.int32, count=count
        )
        del at_s, keys_s
        known = act_member >= 0
        if not known.all():
            act_at, act_member = act_at[known], act_member[known]
        window = _Window.of(n, joined_us, act_member, act_at, now_us, settings)
        del act_at, act_member, known
        # before the window: last_active_at is the latest activity overall, so
        # when it is before the window start it is the last activity before the
        # window (and none is in it); otherwise only that there is activity from
        # the window start on is known
        prior = np.where(last_active < start_us, last_active, -1)
        unknown = (last_active >= start_us) | (window.last >= 0)
        if unknown.any():
            # a member's code changes with the last activity before the window
            # only monotonically (see _codes): if it is the same with none, the
            # earliest and the latest possible one, it is the same with any
            late = _codes(
                now_us, joined_us, gone, window, np.where(unknown, start_us - 1, prior), settings
            )
            early = _codes(now_us, joined_us, gone, window, np.where(unknown, 0, prior), settings)
            none = _codes(now_us, joined_us, gone, window, np.where(unknown, -1, prior), settings)
            open_ = unknown & ((late != none) | (early != none))
            del late, early, none
            prior = np.where(unknown, -1, prior)
            if open_.any():
                open_ &= ~_seen_since(
                    cur, open_, lookup, key_sql, platform_sql, platform_args, start_us
                )
            if open_.any():
                wanted = [k for k, i in lookup.items() if i >= 0 and open_[i]]
                cur.execute(
                    f"SELECT {key_sql}, MAX(at_us) FROM ck_events NOT INDEXED "
                    f"WHERE at_us < ? AND {platform_sql}{_ACTIVITY_SQL} "
                    f"AND {key_sql} IN (SELECT value FROM json_each(?)) GROUP BY 1",
                    (start_us, *platform_args, json.dumps(wanted)),
                )
                for key, at in cur:
                    i = lookup[key]
                    if at > prior[i]:
                        prior[i] = at
        codes = _codes(now_us, joined_us, gone, window, prior, settings)
        return _StageMap(member_ids, codes)
    finally:
        raw.close()


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
