"""Facts: the stored events, ledger and members as numpy columns, read once.

Every built-in metric reads :class:`Facts`, never the store. Building them scans
the events table ONCE (only ``type, at_us, platform, user_id, group_id``; the
JSON payload is never read), maps each event's identity to a dense member index
and each group id to a configured group, and reads the ledger, the members and
their tiers alongside. :meth:`Facts.scoped` narrows them to one group and/or
one platform.

Members are numbered ``0 .. n-1`` (``member_ids[i]`` is the member id). Events
keep the order they were stored in (the order the engine processed them).
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from communitykit.model import Community
from communitykit.store import Store
from communitykit.store._common import to_us

__all__ = ["ACTIVITY", "EVENT_TYPES", "Facts", "LedgerKind", "build_facts", "day_starts"]

I8 = npt.NDArray[np.int8]
I16 = npt.NDArray[np.int16]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

#: event types by code; anything else is code ``len(EVENT_TYPES)`` ("other")
EVENT_TYPES = (
    "message_posted",
    "reaction_added",
    "command_invoked",
    "member_joined",
    "member_left",
    "join_requested",
    "member_paid",
    "message_edited",
)
MESSAGE, REACTION, COMMAND, JOINED, LEFT, REQUESTED, PAID, EDITED = range(8)
OTHER = len(EVENT_TYPES)
#: the event codes that count as a member's activity (what sets ``last_active_at``)
ACTIVITY = (MESSAGE, REACTION, COMMAND)
_TYPE_CODE = {name: code for code, name in enumerate(EVENT_TYPES)}

#: ledger kinds by code
LEDGER_KINDS = ("credit", "debit", "expiry", "reversal", "pending", "cancellation")
_KIND_CODE = {name: code for code, name in enumerate(LEDGER_KINDS)}


class LedgerKind:
    CREDIT, DEBIT, EXPIRY, REVERSAL, PENDING, CANCELLATION = range(6)


_CHUNK = 200_000
_GONE = ("left", "banned")


def day_starts(first: date, last: date, tz: tzinfo) -> I64:
    """The UTC epoch microseconds at which each community day ``first .. last + 1`` begins."""
    days = (last - first).days + 2
    return np.array(
        [to_us(datetime.combine(first + timedelta(days=n), time(), tz)) for n in range(days)],
        dtype=np.int64,
    )


@attrs.frozen(kw_only=True, eq=False)
class AuditFacts:
    """The audit trail's verdicts: one row per action decided."""

    at_us: I64
    member: I32  # -1: no member
    rule: tuple[str, ...]
    action: tuple[str, ...]


@attrs.frozen(kw_only=True, eq=False)
class Facts:
    """Columns of everything a metric may count, up to (not including) ``until_us``."""

    until_us: int
    member_ids: Sequence[str]
    joined_us: I64  # the member's record: joined_at (-1 when unknown)
    gone: B  # the member's record: status left or banned
    tier: I16  # index into ``tiers`` (-1 when unknown)
    tiers: tuple[str, ...]
    in_scope: B  # members with an event in scope (all members when unscoped)
    # events, in the order stored
    ev_type: I8
    ev_at: I64
    ev_member: I32
    ev_group: I16  # index into ``group_keys``, -1 for none or an unconfigured group
    ev_platform: I8  # index into ``platforms``
    group_keys: tuple[str, ...]
    platforms: tuple[str, ...]
    # ledger, in ledger order
    lg_member: I32
    lg_kind: I8
    lg_points: I64
    lg_checkin: B
    lg_at: I64
    audit: AuditFacts
    # tier changes the engine kept (rule state ``tier_history``), in time order;
    # old and new are indexes into ``tiers``
    tc_member: I32 = attrs.field(factory=lambda: np.zeros(0, dtype=np.int32))
    tc_at: I64 = attrs.field(factory=lambda: np.zeros(0, dtype=np.int64))
    tc_old: I16 = attrs.field(factory=lambda: np.zeros(0, dtype=np.int16))
    tc_new: I16 = attrs.field(factory=lambda: np.zeros(0, dtype=np.int16))
    scope: tuple[str | None, str | None] = (None, None)

    @property
    def n_members(self) -> int:
        return len(self.member_ids)

    def scoped(self, *, group: str | None = None, platform: str | None = None) -> Facts:
        """These facts for the events of one group and/or one platform.

        Members in scope are those with at least one event in scope; ledger
        entries and audit rows count for them only.
        """
        if group is None and platform is None:
            return self
        keep = np.ones(len(self.ev_type), dtype=np.bool_)
        if group is not None:
            if group not in self.group_keys:
                raise KeyError(group)
            keep &= self.ev_group == self.group_keys.index(group)
        if platform is not None:
            if platform not in self.platforms:
                keep &= False
            else:
                keep &= self.ev_platform == self.platforms.index(platform)
        members = self.ev_member[keep]
        in_scope = np.zeros(self.n_members, dtype=np.bool_)
        in_scope[members] = True
        ledger = in_scope[self.lg_member]
        audited = np.zeros(len(self.audit.member), dtype=np.bool_)
        has = self.audit.member >= 0
        audited[has] = in_scope[self.audit.member[has]]
        picked = np.flatnonzero(audited).tolist()
        changes = in_scope[self.tc_member]
        return attrs.evolve(
            self,
            tc_member=self.tc_member[changes],
            tc_at=self.tc_at[changes],
            tc_old=self.tc_old[changes],
            tc_new=self.tc_new[changes],
            in_scope=in_scope,
            ev_type=self.ev_type[keep],
            ev_at=self.ev_at[keep],
            ev_member=self.ev_member[keep],
            ev_group=self.ev_group[keep],
            ev_platform=self.ev_platform[keep],
            lg_member=self.lg_member[ledger],
            lg_kind=self.lg_kind[ledger],
            lg_points=self.lg_points[ledger],
            lg_checkin=self.lg_checkin[ledger],
            lg_at=self.lg_at[ledger],
            audit=AuditFacts(
                at_us=self.audit.at_us[audited],
                member=self.audit.member[audited],
                rule=tuple(self.audit.rule[i] for i in picked),
                action=tuple(self.audit.action[i] for i in picked),
            ),
            scope=(group, platform),
        )


# ---------------------------------------------------------------------- building


class _Columns:
    """Grows numpy columns chunk by chunk (no Python list of 10M rows)."""

    def __init__(self, dtypes: Sequence[Any]) -> None:
        self.dtypes = dtypes
        self.parts: list[list[npt.NDArray[Any]]] = [[] for _ in dtypes]

    def add(self, *columns: Iterable[Any]) -> None:
        for part, column, dtype in zip(self.parts, columns, self.dtypes, strict=True):
            part.append(np.fromiter(column, dtype=dtype))

    def done(self) -> list[npt.NDArray[Any]]:
        return [
            np.concatenate(p) if p else np.zeros(0, dtype=d)
            for p, d in zip(self.parts, self.dtypes, strict=True)
        ]


class _Groups:
    """(platform, group id) → index of the configured group key (-1: none)."""

    def __init__(self, community: Community | None) -> None:
        self.community = community
        self.keys: tuple[str, ...] = (
            tuple(g.key for g in community.groups) if community is not None else ()
        )
        self.cache: dict[tuple[str, str | None], int] = {}

    def code(self, platform: str, group_id: str | None) -> int:
        key = (platform, group_id)
        found = self.cache.get(key)
        if found is None:
            group = (
                self.community.group(platform, group_id)
                if self.community is not None and group_id is not None
                else None
            )
            found = self.cache[key] = -1 if group is None else self.keys.index(group.key)
        return found


def build_facts(
    store: Store,
    until: datetime,
    community: Community | None = None,
    ladder: Sequence[str] = (),
    *,
    activity_only: bool = False,
) -> Facts:
    """Read the store's events, ledger and members before ``until`` into :class:`Facts`.

    ``community`` maps group ids to its groups' keys; ``ladder`` lists the tier
    names in ladder order (tiers found in the store but not in it come after).
    With ``activity_only`` only the members and their activity are read (for
    lifecycle stages): no ledger, tiers or audit trail.
    """
    until_us = to_us(until)
    engine = getattr(store, "_engine", None)
    # millions of short-lived row tuples and nothing cyclic: the cycle collector
    # would walk every live object again and again for nothing
    collecting = gc.isenabled()
    gc.disable()
    try:
        if engine is not None and engine.dialect.name == "sqlite":
            return _from_sqlite(engine, until_us, community, tuple(ladder), activity_only)
        return _from_objects(store, until_us, community, tuple(ladder), activity_only)
    finally:
        if collecting:
            gc.enable()


def _finish(
    *,
    until_us: int,
    member_ids: list[str],
    joined_us: I64,
    gone: B,
    tier_names: Sequence[str | None],
    ladder: Sequence[str],
    events: list[npt.NDArray[Any]],
    groups: _Groups,
    platforms: dict[str, int],
    ledger: list[npt.NDArray[Any]],
    audit: AuditFacts,
    changes: Sequence[tuple[int, int, str, str]] = (),
) -> Facts:
    names = [t for t in tier_names if t is not None]
    names += [t for _m, _at, old, new in changes for t in (old, new)]
    tiers = tuple(dict.fromkeys([*ladder, *names]))
    tier_code = {t: n for n, t in enumerate(tiers)}
    tier = np.fromiter(
        (tier_code.get(t, -1) if t is not None else -1 for t in tier_names),
        dtype=np.int16,
        count=len(tier_names),
    )
    ev_type, ev_at, ev_member, ev_group, ev_platform = events
    known = ev_member >= 0
    if not known.all():
        ev_type, ev_at, ev_member, ev_group, ev_platform = (
            c[known] for c in (ev_type, ev_at, ev_member, ev_group, ev_platform)
        )
    lg_member, lg_kind, lg_points, lg_checkin, lg_at = ledger
    known = lg_member >= 0
    if not known.all():
        lg_member, lg_kind, lg_points, lg_checkin, lg_at = (
            c[known] for c in (lg_member, lg_kind, lg_points, lg_checkin, lg_at)
        )
    changes = sorted(c for c in changes if c[1] < until_us and c[0] >= 0)
    return Facts(
        tc_member=np.array([c[0] for c in changes], dtype=np.int32),
        tc_at=np.array([c[1] for c in changes], dtype=np.int64),
        tc_old=np.array([tier_code[c[2]] for c in changes], dtype=np.int16),
        tc_new=np.array([tier_code[c[3]] for c in changes], dtype=np.int16),
        until_us=until_us,
        member_ids=member_ids,
        joined_us=joined_us,
        gone=gone,
        tier=tier,
        tiers=tiers,
        in_scope=np.ones(len(member_ids), dtype=np.bool_),
        ev_type=ev_type,
        ev_at=ev_at,
        ev_member=ev_member,
        ev_group=ev_group,
        ev_platform=ev_platform,
        group_keys=groups.keys,
        platforms=tuple(platforms),
        lg_member=lg_member,
        lg_kind=lg_kind,
        lg_points=lg_points,
        lg_checkin=lg_checkin,
        lg_at=lg_at,
        audit=audit,
    )


def _iso_us(text: str | None) -> int:
    if not text:
        return -1
    return to_us(datetime.fromisoformat(text))


#: the rule-state name of the engine's tier history (see ``Engine``)
TIER_HISTORY = "tier_history"


def _tier_changes(member: int, state: Any) -> list[tuple[int, int, str, str]]:
    """``(member, at_us, old, new)`` of a member's ``tier_history`` state."""
    found = []
    changes = state.get("changes", ()) if isinstance(state, dict) else ()
    for change in changes if isinstance(changes, list) else ():
        try:
            at, old, new = change
            found.append((member, to_us(datetime.fromisoformat(at)), str(old), str(new)))
        except (TypeError, ValueError):
            continue
    return found


def _action_types(text: str) -> list[str]:
    try:
        actions = json.loads(text)
    except ValueError:
        return []
    return [str(a.get("type", "?")) for a in actions if isinstance(a, dict)]


def _from_sqlite(
    engine: Any,
    until_us: int,
    community: Community | None,
    ladder: tuple[str, ...],
    activity_only: bool,
) -> Facts:
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        # members, numbered by their row order
        member_ids: list[str] = []
        joined: list[int] = []
        gone: list[bool] = []
        for member_id, joined_at, status in cur.execute(
            "SELECT member_id, joined_at, status FROM ck_members ORDER BY rowid"
        ):
            member_ids.append(member_id)
            joined.append(_iso_us(joined_at))
            gone.append(status in _GONE)
        index = {m: n for n, m in enumerate(member_ids)}
        tier_of: list[str | None] = [None] * len(member_ids)
        if not activity_only:
            for member_id, tier in cur.execute("SELECT member_id, tier FROM ck_member_states"):
                n = index.get(member_id)
                if n is not None:
                    tier_of[n] = tier
        by_platform: dict[str, dict[str, int]] = {}
        for platform, user_id, member_id in cur.execute(
            "SELECT platform, user_id, member_id FROM ck_identities"
        ):
            n = index.get(member_id)
            if n is not None:
                by_platform.setdefault(platform, {})[user_id] = n
        # the ledger
        ledger = _Columns((np.int32, np.int8, np.int64, np.bool_, np.int64))
        cur.execute(
            "SELECT member, kind, points, reason, at_us FROM ck_ledger WHERE at_us < ? "
            "ORDER BY seq",
            (-1 if activity_only else until_us,),
        )
        get = index.get
        while rows := cur.fetchmany(_CHUNK):
            members, kinds, points, reasons, ats = zip(*rows, strict=True)
            ledger.add(
                (get(m, -1) for m in members),
                (_KIND_CODE.get(k, -1) for k in kinds),
                points,
                (r == "checkin" for r in reasons),
                ats,
            )
        audit = _audit_sqlite(cur, -1 if activity_only else until_us, index)
        changes: list[tuple[int, int, str, str]] = []
        if not activity_only:
            for member_id, text in cur.execute(
                "SELECT member_id, state FROM ck_rule_states WHERE rule = ?", (TIER_HISTORY,)
            ):
                changes += _tier_changes(index.get(member_id, -1), json.loads(text))
        del index
        # the events: one scan, in stored order. SQLite packs the type, the group
        # and the platform into one integer per row (Python touches three values
        # a row, not five); the member comes from the identity.
        groups = _Groups(community)
        platforms = {p: n for n, p in enumerate(sorted(by_platform))}
        params: list[Any] = []
        type_case = " ".join(f"WHEN '{name}' THEN {code}" for name, code in _TYPE_CODE.items())
        group_case = ""
        for code, group in enumerate(community.groups if community is not None else ()):
            for gid in group.known_ids():
                group_case += f" WHEN platform = ? AND group_id = ? THEN {code + 1}"
                params += [group.platform, gid]
        group_sql = f"(CASE{group_case} ELSE 0 END)" if group_case else "0"
        platform_case = " ".join(f"WHEN ? THEN {code}" for code in platforms.values())
        params += list(platforms)
        platform_sql = f"(CASE platform {platform_case} ELSE 0 END)" if platforms else "0"
        single = len(platforms) <= 1
        key_sql = "user_id" if single else "platform || char(31) || user_id"
        lookup: dict[str, int] = (
            next(iter(by_platform.values()), {})
            if single
            else {f"{p}\x1f{u}": n for p, users in by_platform.items() for u, n in users.items()}
        )
        del by_platform
        wanted = " AND type IN ('message_posted', 'reaction_added', 'command_invoked')"
        cur.execute(
            f"SELECT (CASE type {type_case} ELSE {OTHER} END) + 16 * {group_sql} "
            f"+ 65536 * {platform_sql}, at_us, {key_sql} FROM ck_events NOT INDEXED "
            f"WHERE at_us < ?{wanted if activity_only else ''} ORDER BY seq",
            (*params, until_us),
        )
        get = lookup.get
        parts: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], I32]] = []
        while rows := cur.fetchmany(_CHUNK):
            codes, ats, keys = zip(*rows, strict=True)
            count = len(codes)
            parts.append(
                (
                    np.fromiter(codes, dtype=np.int64, count=count),
                    np.fromiter(ats, dtype=np.int64, count=count),
                    np.fromiter([get(k, -1) for k in keys], dtype=np.int32, count=count),
                )
            )
        del rows, lookup
        packed = np.concatenate([c for c, _, _ in parts]) if parts else np.zeros(0, np.int64)
        at = np.concatenate([a for _, a, _ in parts]) if parts else np.zeros(0, np.int64)
        member = np.concatenate([m for _, _, m in parts]) if parts else np.zeros(0, np.int32)
        del parts
        events = [
            (packed & 15).astype(np.int8),
            at,
            member,
            (((packed >> 4) & 4095) - 1).astype(np.int16),
            (packed >> 16).astype(np.int8),
        ]
        del packed
        return _finish(
            until_us=until_us,
            member_ids=member_ids,
            joined_us=np.array(joined, dtype=np.int64),
            gone=np.array(gone, dtype=np.bool_),
            tier_names=tier_of,
            ladder=ladder,
            events=events,
            groups=groups,
            platforms=platforms,
            ledger=ledger.done(),
            audit=audit,
            changes=changes,
        )
    finally:
        raw.close()


def _audit_sqlite(cur: Any, until_us: int, index: dict[str, int]) -> AuditFacts:
    at: list[int] = []
    member: list[int] = []
    rule: list[str] = []
    action: list[str] = []
    cur.execute(
        "SELECT at_us, rule, member_id, actions FROM ck_audit "
        "WHERE at_us < ? AND kind = 'verdict' ORDER BY seq",
        (until_us,),
    )
    for at_us, rule_name, member_id, actions in cur:
        for kind in _action_types(actions):
            at.append(at_us)
            member.append(index.get(member_id, -1) if member_id is not None else -1)
            rule.append(rule_name)
            action.append(kind)
    return AuditFacts(
        at_us=np.array(at, dtype=np.int64),
        member=np.array(member, dtype=np.int32),
        rule=tuple(rule),
        action=tuple(action),
    )


def _from_objects(
    store: Store,
    until_us: int,
    community: Community | None,
    ladder: tuple[str, ...],
    activity_only: bool,
) -> Facts:
    members = list(store.load_members())
    member_ids = [m.member_id for m in members]
    index = {m: n for n, m in enumerate(member_ids)}
    by_identity = {
        (i.platform, i.user_id): index[m.member_id] for m in members for i in m.identities
    }
    tier_of: list[str | None] = [None] * len(member_ids)
    for state in store.load_states():
        n = index.get(state.member_id)
        if n is not None:
            tier_of[n] = state.tier
    ledger = _Columns((np.int32, np.int8, np.int64, np.bool_, np.int64))
    entries = [e for e in store.load_entries() if to_us(e.at) < until_us]
    ledger.add(
        (index.get(e.member, -1) for e in entries),
        (_KIND_CODE.get(e.kind.value, -1) for e in entries),
        (e.points for e in entries),
        (e.reason == "checkin" for e in entries),
        (to_us(e.at) for e in entries),
    )
    groups = _Groups(community)
    platforms: dict[str, int] = {}
    events = [e for e in store.iter_events() if to_us(e.at) < until_us]
    for e in events:
        platforms.setdefault(e.platform, len(platforms))
    columns = _Columns((np.int8, np.int64, np.int32, np.int16, np.int8))
    columns.add(
        (_TYPE_CODE.get(e.TYPE, OTHER) for e in events),
        (to_us(e.at) for e in events),
        (by_identity.get((e.platform, e.user), -1) for e in events),
        (groups.code(e.platform, e.group) for e in events),
        (platforms[e.platform] for e in events),
    )
    at: list[int] = []
    who: list[int] = []
    rule: list[str] = []
    action: list[str] = []
    for record in store.audit_trail():
        if record.kind.value != "verdict" or to_us(record.at) >= until_us:
            continue
        for a in record.actions:
            at.append(to_us(record.at))
            who.append(index.get(record.member_id, -1) if record.member_id else -1)
            rule.append(record.rule)
            action.append(a.TYPE)
    changes: list[tuple[int, int, str, str]] = []
    for rule_name, owner, remembered in store.load_rule_states():
        if rule_name == TIER_HISTORY:
            changes += _tier_changes(index.get(owner, -1), dict(remembered))
    return _finish(
        changes=changes,
        until_us=until_us,
        member_ids=member_ids,
        joined_us=np.array(
            [-1 if m.joined_at is None else to_us(m.joined_at) for m in members], dtype=np.int64
        ),
        gone=np.array([m.status.value in _GONE for m in members], dtype=np.bool_),
        tier_names=tier_of,
        ladder=ladder,
        events=columns.done(),
        groups=groups,
        platforms=platforms,
        ledger=ledger.done(),
        audit=AuditFacts(
            at_us=np.array(at, dtype=np.int64),
            member=np.array(who, dtype=np.int32),
            rule=tuple(rule),
            action=tuple(action),
        ),
    )
