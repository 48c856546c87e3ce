"""Lifecycle stages of every member at once, with numpy.

The definition is :func:`communitykit.model.stage_of` (with the last return of
:func:`communitykit.model.last_return`); this module computes the same thing for
a million members from columns: each member's join time and status, and every
activity (member index, time) before ``now``.
"""

from __future__ import annotations

import gc
import json
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


_ACTIVITY_SQL = "(type = 'message_posted' OR type = 'reaction_added' OR type = 'command_invoked')"
_SEP = "\x1e"  # between the strings of a column read as one
_TAIL = 32  # zero bytes after a column's text: a word or an instant is read from any start
_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(9)], dtype=np.uint64)  # the first k bytes
_MIX = np.uint64(0x9E3779B97F4A7C15)
_MIX2 = np.uint64(0xBF58476D1CE4E5B9)
U64 = npt.NDArray[np.uint64]


class _Unreadable(Exception):
    """A column read as one string could not be split (a value holds the separator),
    or two of the values one column is matched against share a hash."""


class _Column:
    """A column of strings read from SQLite as one (``group_concat(x, char(30))``),
    kept as UTF-8 bytes, with no Python object per value: value ``i`` is
    ``raw[starts[i] : starts[i] + lengths[i]]``."""

    def __init__(self, text: str | None, n: int) -> None:
        try:
            self.raw = (text or "").encode()
        except UnicodeEncodeError as error:
            raise _Unreadable from error
        self.buf = np.frombuffer(self.raw + bytes(_TAIL), dtype=np.uint8)
        seps = np.flatnonzero(self.buf[: len(self.raw)] == ord(_SEP))
        if len(seps) != max(n - 1, 0) or (n == 0 and self.raw):
            raise _Unreadable
        self.starts = np.zeros(n, dtype=np.int64)
        self.starts[1:] = seps + 1
        ends = np.full(n, len(self.raw), dtype=np.int64)
        ends[:-1] = seps
        self.lengths = ends - self.starts

    def __len__(self) -> int:
        return len(self.starts)

    def at(self, dtype: str, offsets: I64) -> npt.NDArray[Any]:
        """The ``dtype`` values (words, fixed-width strings) at these byte offsets."""
        view: npt.NDArray[Any] = np.ndarray(
            (len(self.raw) + 1,), dtype=dtype, buffer=self.buf, strides=(1,)
        )
        return view[offsets]

    def value(self, i: int) -> str:
        start = int(self.starts[i])
        return self.raw[start : start + int(self.lengths[i])].decode()

    def word(self, w: int) -> U64:
        """Bytes ``8w`` to ``8w + 8`` of each value, zeros past its end, as an integer."""
        offsets = np.minimum(self.starts + 8 * w, len(self.raw))
        kept = np.maximum(np.minimum(self.lengths - 8 * w, 8), 0)  # (np.clip is slower)
        found: U64 = self.at("<u8", offsets) & _MASKS[kept]
        return found


def _words(lengths: I64) -> int:
    return (int(lengths.max()) + 7) // 8 if len(lengths) else 0


def _hashes(words: list[U64], lengths: I64) -> U64:
    found = _mixed(lengths.astype(np.uint64))
    for word in words:
        found ^= word
        found = _mixed(found)
    return found


def _mixed(values: U64) -> U64:
    """``values`` scrambled, one to one (in place, with one scratch array)."""
    scratch = np.empty_like(values)
    for shift, factor in ((31, _MIX), (29, _MIX2), (32, None)):
        np.right_shift(values, np.uint64(shift), out=scratch)
        values ^= scratch
        if factor is not None:
            values *= factor  # (wrapping around)
    return values


class _Index:
    """The distinct values of a column in a hash table (open addressing, built and
    searched by numpy), to find the values of another column among them."""

    def __init__(self, column: _Column) -> None:
        self.column = column
        self.words = [column.word(w) for w in range(_words(column.lengths))]
        hashes = _hashes(self.words, column.lengths)
        if len(hashes) > 1:
            ordered = np.sort(hashes)
            if (ordered[1:] == ordered[:-1]).any():
                raise _Unreadable  # two values, one hash
            del ordered
        bits = (2 * len(column)).bit_length()  # at most half full
        self.shift = np.uint64(64 - bits)
        self.mask = (1 << bits) - 1
        self.rows = np.full(1 << bits, -1, dtype=np.int64)  # slot → row (-1: free)
        slot = (hashes >> self.shift).view(np.int64)
        pending = np.arange(len(column))
        while len(pending):  # each in the first free slot from its own
            at = slot[pending]
            free = self.rows[at] < 0
            claim, at = pending[free], at[free]
            self.rows[at] = claim
            won = self.rows[at] == claim
            pending = np.concatenate((pending[~free], claim[~won]))
            slot[pending] = (slot[pending] + 1) & self.mask
        self.hashes = np.zeros(1 << bits, dtype=np.uint64)
        self.hashes[slot] = hashes

    def find(self, query: _Column) -> I64:
        """For each value of ``query``, the row of the equal value (-1: none)."""
        # (hashed on as many words as the longest value here: a longer one is no match)
        words = [query.word(w) for w in range(len(self.words))]
        hashes = _hashes(words, query.lengths)
        slot = (hashes >> self.shift).view(np.int64)
        row = self.rows[slot]
        found = np.where(self.hashes[slot] == hashes, row, -1)  # (a free slot: row -1)
        pending = np.flatnonzero((found < 0) & (row >= 0))  # the slot holds another value
        del row
        while len(pending):
            at = (slot[pending] + 1) & self.mask
            slot[pending] = at
            row = self.rows[at]
            hit = self.hashes[at] == hashes[pending]
            found[pending[hit]] = row[hit]
            pending = pending[~hit & (row >= 0)]
        del slot, hashes
        # the same hash: the same value, unless two values share one; compare
        rows = np.flatnonzero(found >= 0)
        candidates = found[rows]
        same = self.column.lengths[candidates] == query.lengths[rows]
        for mine, theirs in zip(self.words, words, strict=True):
            same &= mine[candidates] == theirs[rows]
        found[rows[~same]] = -1
        return found


def _instants(column: _Column) -> I64:
    """Epoch microseconds of the instants of a column (-1 for an empty value). numpy
    parses the UTC forms the store writes (``...T12:00:00.123456+00:00`` and
    ``...T12:00:00+00:00``); Python the rest."""
    starts, lengths = column.starts, column.lengths
    found = np.full(len(column), -1, dtype=np.int64)
    done = lengths == 0
    try:
        for width in (26, 19):
            rows = np.flatnonzero(lengths == width + 6)
            rows = rows[column.at("S6", starts[rows] + width) == b"+00:00"]
            stamps = column.at(f"S{width}", starts[rows]).astype("datetime64[us]")
            found[rows] = stamps.astype(np.int64)
            done[rows] = True
    except ValueError as error:
        raise _Unreadable from error
    for i in np.flatnonzero(~done).tolist():
        found[i] = to_us(datetime.fromisoformat(column.value(i)))
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


def _keys_of(wanted: npt.NDArray[np.bool_], identities: _Column, owner: I64) -> dict[str, int]:
    """The identities of the ``wanted`` members: key → member number."""
    rows = np.flatnonzero(owner >= 0)
    rows = rows[wanted[owner[rows]]]
    return {
        identities.value(i): n for i, n in zip(rows.tolist(), owner[rows].tolist(), strict=True)
    }


def _seen_since(
    cur: Any,
    wanted: npt.NDArray[np.bool_],
    lookup: Mapping[str, int],
    key_sql: str,
    platform_sql: str,
    platform_args: tuple[str, ...],
    start_us: int,
) -> npt.NDArray[np.bool_]:
    """Of the ``wanted`` members (``lookup``: their identities), those whose every
    identity was first seen (its earliest link, made when it showed up: ``joined``)
    at or after ``start_us``: they have no activity before it."""
    first: dict[str, tuple[int, str]] = {}  # identity → its earliest link (time, method)
    cur.execute(
        f"SELECT {key_sql}, at_us, method FROM ck_links "
        f"WHERE {platform_sql}{key_sql} IN (SELECT value FROM json_each(?))",
        (*platform_args, json.dumps(list(lookup))),
    )
    for key, at, method in cur:
        if key not in first or at < first[key][0]:
            first[key] = (at, method)
    seen = np.zeros(len(wanted), dtype=np.bool_)
    late = np.zeros(len(wanted), dtype=np.bool_)  # an identity seen earlier, or never linked
    for key, i in lookup.items():
        link = first.get(key)
        seen[i] = True
        if link is None or link[0] < start_us or link[1] != "joined":
            late[i] = True
    return seen & ~late


def _stages_sqlite(engine: Any, now_us: int, settings: LifecycleSettings) -> _StageMap:
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()

        # the members, numbered in the order read: each column comes as one string
        # (and no Python object per value but the ids)
        n, ids_s, gone_s, joined_s = cur.execute(
            "SELECT count(*), group_concat(member_id, char(30)), "
            "group_concat(status IN ('left', 'banned'), ''), "
            "group_concat(coalesce(joined_at, ''), char(30)) FROM ck_members"
        ).fetchone()
        members = _Column(ids_s, n)
        member_ids = _strings(ids_s, n)
        gone = np.frombuffer((gone_s or "").encode("ascii"), dtype=np.uint8) == ord("1")
        if len(gone) != n:
            raise _Unreadable
        joined_us = _instants(_Column(joined_s, n))
        del ids_s, gone_s, joined_s
        # each member's latest activity, from the member states (matched to the
        # members by numpy: no join, no dict)
        count, ids_s, last_s = cur.execute(
            "SELECT count(*), group_concat(member_id, char(30)), "
            "group_concat(coalesce(last_active_at, ''), char(30)) FROM ck_member_states"
        ).fetchone()
        members_index = _Index(members)
        whose = members_index.find(_Column(ids_s, count))
        state_last = _instants(_Column(last_s, count))
        del ids_s, last_s
        last_active = np.full(n, -1, dtype=np.int64)
        kept = whose >= 0
        last_active[whose[kept]] = state_last[kept]
        del whose, state_last, kept
        # the identities and the member number of each
        platforms = [p for (p,) in cur.execute("SELECT DISTINCT platform FROM ck_identities")]
        single = len(platforms) <= 1
        key_sql = "user_id" if single else "platform || char(31) || user_id"
        count, keys_s, owners_s = cur.execute(
            f"SELECT count(*), group_concat({key_sql}, char(30)), "
            "group_concat(member_id, char(30)) FROM ck_identities"
        ).fetchone()
        identities = _Column(keys_s, count)
        owner = members_index.find(_Column(owners_s, count))
        del keys_s, owners_s, members, members_index
        if single and platforms:
            platform_sql = "+platform = ? AND "  # (not through the key index)
            platform_args: tuple[str, ...] = (platforms[0],)
        else:
            platform_sql, platform_args = "", ()
        # the activity in the window, through the index on the event time
        start_us = now_us - (settings.recalled_days + settings.active_days + 1) * _DAY_US
        count, at_s, keys_s = cur.execute(
            f"SELECT count(*), group_concat(at_us - ?), group_concat(key, char(30)) FROM "
            f"(SELECT at_us, {key_sql} AS key FROM ck_events WHERE at_us >= ? AND at_us <= ? "
            f"AND {platform_sql}{_ACTIVITY_SQL})",
            (start_us, start_us, now_us, *platform_args),
        ).fetchone()
        act_at = _integers(at_s, count) + start_us
        del at_s
        identity = _Index(identities).find(_Column(keys_s, count))
        del keys_s
        known = np.flatnonzero(identity >= 0)
        act_member = owner[identity[known]].astype(np.int32)
        act_at = act_at[known]
        del identity, known
        known_member = act_member >= 0
        if not known_member.all():
            act_at, act_member = act_at[known_member], act_member[known_member]
        window = _Window.of(n, joined_us, act_member, act_at, now_us, settings)
        del act_at, act_member, known_member
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
                    cur,
                    open_,
                    _keys_of(open_, identities, owner),
                    key_sql,
                    platform_sql,
                    platform_args,
                    start_us,
                )
            if open_.any():
                lookup = _keys_of(open_, identities, owner)
                cur.execute(
                    f"SELECT {key_sql}, MAX(at_us) FROM ck_events NOT INDEXED "
                    f"WHERE at_us < ? AND {platform_sql}{_ACTIVITY_SQL} "
                    f"AND {key_sql} IN (SELECT value FROM json_each(?)) GROUP BY 1",
                    (start_us, *platform_args, json.dumps(list(lookup))),
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
