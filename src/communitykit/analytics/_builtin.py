"""The built-in metrics, computed from :class:`~communitykit.analytics.Facts`.

Definitions (community days, ``d`` from ``start`` to ``end``):

* a member **is in** the community (or the group, or on the platform, when the
  report is narrowed) after a ``member_joined`` and out after a ``member_left``;
  someone first seen through anything else (a message, say) is in from then on,
  and someone first seen asking to join is not in until they join. ``joined`` and
  ``left`` count the moves in and out on a day; ``total`` the members in at its end;
* **active** on a day: posted a message, added a reaction or used a command;
  DAU, WAU and MAU count the members active on the day, in the 7 days and in
  the 30 days ending with it;
* **retention**: members who first came in on a day of the range, by the week
  (Monday) of that day; the share of them active in week ``k`` after their day
  (days ``7k .. 7k + 6`` counted from it), for complete weeks inside the range.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from communitykit.analytics._context import LOOKBACK, MetricContext
from communitykit.analytics._facts import (
    ACTIVITY,
    JOINED,
    LEFT,
    MESSAGE,
    REQUESTED,
    Facts,
    LedgerKind,
)
from communitykit.analytics._results import MetricResult
from communitykit.analytics._stages import STAGES, stage_codes
from communitykit.model import Stage
from communitykit.store._common import to_us

__all__ = ["BUILTIN_METRICS", "FUNNEL_STEPS"]

I64 = npt.NDArray[np.int64]

#: the steps of a campaign funnel, in order
FUNNEL_STEPS = ("reached", "responded", "signed up", "took part", "completed")


def _result(**fields: Any) -> MetricResult:
    """A MetricResult (its converters take any sequence; the checker sees them narrowly)."""
    return MetricResult(**fields)


def _n(ctx: MetricContext) -> int:
    return (ctx.end - ctx.start).days + 1


def _x(ctx: MetricContext) -> list[str]:
    return [d.isoformat() for d in ctx.days]


def _ratio(top: I64, bottom: I64) -> list[float | None]:
    return [
        None if b == 0 else round(float(t) / float(b), 6) for t, b in zip(top, bottom, strict=True)
    ]


def _cached(ctx: MetricContext, key: str, make: Callable[[], Any]) -> Any:
    found = ctx.cache.get(key)
    if found is None:
        found = ctx.cache[key] = make()
    return found


# --------------------------------------------------------------------- derived


class Membership:
    """Moves in and out (times), and each member's record as of the range's end."""

    def __init__(self, facts: Facts) -> None:
        ty, member = facts.ev_type, facts.ev_member
        order = np.argsort(member, kind="stable")
        m, t, at = member[order], ty[order], facts.ev_at[order]
        count = len(m)
        first = np.ones(count, dtype=np.bool_)
        first[1:] = m[1:] != m[:-1]
        op = np.full(count, -1, dtype=np.int8)
        op[t == JOINED] = 1
        op[t == LEFT] = 0
        seen = first & (t != JOINED) & (t != LEFT)
        op[seen] = np.where(t[seen] == REQUESTED, 0, 1)
        where = np.where(op >= 0, np.arange(count), 0)
        np.maximum.accumulate(where, out=where)
        state = op[where] if count else op
        prev = np.zeros(count, dtype=np.int8)
        prev[1:] = state[:-1]
        prev[first] = 0
        self.up_at: I64 = at[(state == 1) & (prev == 0)]
        self.down_at: I64 = at[(state == 0) & (prev == 1)]
        up = (state == 1) & (prev == 0)
        firsts = up.copy()
        # the first move in of each member
        upm = m[up]
        keep = np.ones(len(upm), dtype=np.bool_)
        keep[1:] = upm[1:] != upm[:-1]
        self.first_in_member = upm[keep]
        self.first_in_at: I64 = at[up][keep]
        del firsts
        # the member's record as the engine keeps it: joined_at is the first join,
        # the status follows the last join or leave
        n = facts.n_members
        self.joined_us = np.full(n, -1, dtype=np.int64)
        joins = np.flatnonzero(t == JOINED)
        if len(joins):
            jm = m[joins]
            firstj = joins[np.r_[True, jm[1:] != jm[:-1]]]
            self.joined_us[m[firstj]] = at[firstj]
        self.gone = np.zeros(n, dtype=np.bool_)
        moves = np.flatnonzero((t == JOINED) | (t == LEFT))
        if len(moves):
            mm = m[moves]
            lastmv = moves[np.r_[mm[1:] != mm[:-1], True]]
            self.gone[m[lastmv]] = t[lastmv] == LEFT
        self.known = np.zeros(n, dtype=np.bool_)
        self.known[m] = True


def membership(ctx: MetricContext) -> Membership:
    return _cached(ctx, "membership", lambda: Membership(ctx.facts))  # type: ignore[no-any-return]


def _per_day(ctx: MetricContext, days: I64, weights: I64 | None = None) -> I64:
    n = _n(ctx)
    inside = (days >= 0) & (days < n)
    w = None if weights is None else weights[inside]
    return np.bincount(days[inside], weights=w, minlength=n)[:n].astype(np.int64)


def totals(ctx: MetricContext) -> tuple[I64, I64, I64]:
    """joined, left and total per day."""

    def make() -> tuple[I64, I64, I64]:
        ms = membership(ctx)
        up, down = ctx.day_of(ms.up_at), ctx.day_of(ms.down_at)
        joined, left = _per_day(ctx, up), _per_day(ctx, down)
        before = int((up < 0).sum()) - int((down < 0).sum())
        return joined, left, before + np.cumsum(joined - left)

    return _cached(ctx, "totals", make)  # type: ignore[no-any-return]


def active_pairs(ctx: MetricContext) -> tuple[I64, I64]:
    """Distinct (member, day) with activity, days from ``-LOOKBACK`` to ``n - 1``,
    sorted by member then day."""

    def make() -> tuple[I64, I64]:
        f = ctx.facts
        act = np.isin(f.ev_type, ACTIVITY)
        days = ctx.day_of(f.ev_at[act])
        inside = days >= -LOOKBACK
        span = _n(ctx) + LOOKBACK
        code = f.ev_member[act][inside].astype(np.int64) * span + (days[inside] + LOOKBACK)
        code = np.unique(code)
        return code // span, code % span - LOOKBACK

    return _cached(ctx, "active_pairs", make)  # type: ignore[no-any-return]


def _cover(members: I64, days: I64, width: int, n: int) -> I64:
    """Per day 0..n-1, the members with an active day in the ``width`` days ending there."""
    begin = days.copy()
    same = np.zeros(len(members), dtype=np.bool_)
    same[1:] = members[1:] == members[:-1]
    prev_end = np.zeros(len(days), dtype=np.int64)
    prev_end[1:] = days[:-1] + width
    begin[same] = np.maximum(days[same], prev_end[same])
    end = days + width
    begin, end = np.clip(begin, 0, n), np.clip(end, 0, n)
    ok = begin < end
    diff = np.bincount(begin[ok], minlength=n + 1) - np.bincount(end[ok], minlength=n + 1)
    return np.cumsum(diff)[:n].astype(np.int64)


def dau_wau_mau(ctx: MetricContext) -> tuple[I64, I64, I64]:
    def make() -> tuple[I64, I64, I64]:
        members, days = active_pairs(ctx)
        n = _n(ctx)
        return (
            _cover(members, days, 1, n),
            _cover(members, days, 7, n),
            _cover(members, days, 30, n),
        )

    return _cached(ctx, "dau", make)  # type: ignore[no-any-return]


def stage_at_end(ctx: MetricContext) -> npt.NDArray[np.int8]:
    def make() -> npt.NDArray[np.int8]:
        f = ctx.facts
        ms = membership(ctx)
        act = np.isin(f.ev_type, ACTIVITY)
        codes = stage_codes(
            now_us=to_us(ctx.until) - 1,
            joined_us=ms.joined_us,
            gone=ms.gone,
            act_member=f.ev_member[act],
            act_at=f.ev_at[act],
            settings=ctx.settings,
        )
        return codes[ms.known]

    return _cached(ctx, "stages", make)  # type: ignore[no-any-return]


# --------------------------------------------------------------------- metrics


def members_metric(ctx: MetricContext) -> MetricResult:
    joined, left, total = totals(ctx)
    return _result(
        name="members",
        title="Members",
        kind="series",
        chart="line",
        unit="members",
        description="Per day: members who joined, who left, the difference, and the total.",
        x=_x(ctx),
        series={
            "joined": joined.tolist(),
            "left": left.tolist(),
            "net": (joined - left).tolist(),
            "total": total.tolist(),
        },
    )


def stages_metric(ctx: MetricContext) -> MetricResult:
    counts = np.bincount(stage_at_end(ctx), minlength=len(STAGES))
    return _result(
        name="stages",
        title="Lifecycle stages",
        kind="series",
        chart="stacked",
        unit="members",
        description="Members in each lifecycle stage at the end of the range.",
        x=[ctx.end.isoformat()],
        series={str(s): [int(counts[n])] for n, s in enumerate(STAGES)},
    )


def active_members_metric(ctx: MetricContext) -> MetricResult:
    dau, wau, mau = dau_wau_mau(ctx)
    return _result(
        name="active_members",
        title="Active members",
        kind="series",
        chart="line",
        unit="members",
        description="Members active on the day (DAU), in the last 7 days (WAU) and 30 days (MAU).",
        x=_x(ctx),
        series={"DAU": dau.tolist(), "WAU": wau.tolist(), "MAU": mau.tolist()},
    )


def stickiness_metric(ctx: MetricContext) -> MetricResult:
    dau, _wau, mau = dau_wau_mau(ctx)
    return _result(
        name="stickiness",
        title="Stickiness",
        kind="series",
        chart="line",
        unit="share",
        description="DAU ÷ MAU: how many of the month's active members came that day.",
        x=_x(ctx),
        series={"DAU/MAU": _ratio(dau, mau)},
    )


def participation_metric(ctx: MetricContext) -> MetricResult:
    dau = dau_wau_mau(ctx)[0]
    total = totals(ctx)[2]
    return _result(
        name="participation",
        title="Participation",
        kind="series",
        chart="line",
        unit="share",
        description="Active members (DAU) ÷ members at the end of the day.",
        x=_x(ctx),
        series={"participation": _ratio(dau, total)},
    )


def messages_per_active_metric(ctx: MetricContext) -> MetricResult:
    f = ctx.facts
    messages = _per_day(ctx, ctx.day_of(f.ev_at[f.ev_type == MESSAGE]))
    dau = dau_wau_mau(ctx)[0]
    return _result(
        name="messages_per_active",
        title="Messages per active member",
        kind="series",
        chart="bar",
        unit="messages",
        description="Messages posted ÷ active members (DAU), per day.",
        x=_x(ctx),
        series={"messages per active member": _ratio(messages, dau)},
    )


def checkin_rate_metric(ctx: MetricContext) -> MetricResult:
    f = ctx.facts
    picked = f.lg_checkin & (f.lg_kind == LedgerKind.CREDIT)
    days = ctx.day_of(f.lg_at[picked])
    n = _n(ctx)
    inside = (days >= 0) & (days < n)
    code = np.unique(f.lg_member[picked][inside].astype(np.int64) * n + days[inside])
    checkins = np.bincount(code % n, minlength=n)[:n].astype(np.int64)
    return _result(
        name="checkin_rate",
        title="Check-in rate",
        kind="series",
        chart="bar",
        unit="share",
        description="Members who checked in (a 'checkin' credit) ÷ members, per day.",
        x=_x(ctx),
        series={"check-in rate": _ratio(checkins, totals(ctx)[2])},
    )


def points_by_day(ctx: MetricContext) -> tuple[I64, I64, I64]:
    def make() -> tuple[I64, I64, I64]:
        f = ctx.facts
        days = ctx.day_of(f.lg_at)

        def total(kind: int, sign: int) -> I64:
            picked = f.lg_kind == kind
            return _per_day(ctx, days[picked], sign * f.lg_points[picked])

        return (
            total(LedgerKind.CREDIT, 1),
            total(LedgerKind.DEBIT, -1),
            total(LedgerKind.EXPIRY, -1),
        )

    return _cached(ctx, "points", make)  # type: ignore[no-any-return]


def points_metric(ctx: MetricContext) -> MetricResult:
    issued, spent, expired = points_by_day(ctx)
    return _result(
        name="points",
        title="Points",
        kind="series",
        chart="stacked",
        unit="points",
        description="Points issued (credits), spent (debits) and expired, per day.",
        x=_x(ctx),
        series={"issued": issued.tolist(), "spent": spent.tolist(), "expired": expired.tolist()},
    )


def retention_metric(ctx: MetricContext) -> MetricResult:
    ms = membership(ctx)
    n = _n(ctx)
    join_day = ctx.day_of(ms.first_in_at)
    inside = (join_day >= 0) & (join_day < n)
    cohort_members = ms.first_in_member[inside].astype(np.int64)
    cohort_day = join_day[inside]
    weekday0 = ctx.start.weekday()
    cohort_week = (cohort_day + weekday0) // 7  # week number of the range, weeks from Monday
    weeks = int(cohort_week.max()) + 1 if len(cohort_week) else 0
    columns = max(0, (n - 7) // 7 + 1)
    # how many of each cohort have week k complete inside the range
    eligible = np.zeros((weeks, columns), dtype=np.int64)
    for k in range(columns):
        ok = cohort_day + 7 * k + 6 <= n - 1
        eligible[:, k] = np.bincount(cohort_week[ok], minlength=weeks)[:weeks]
    active = np.zeros((weeks, columns), dtype=np.int64)
    if len(cohort_members) and columns:
        day_of_member = np.full(ctx.facts.n_members, -1, dtype=np.int64)
        week_of_member = np.zeros(ctx.facts.n_members, dtype=np.int64)
        day_of_member[cohort_members] = cohort_day
        week_of_member[cohort_members] = cohort_week
        members, days = active_pairs(ctx)
        j = day_of_member[members]
        since = days - j
        ok = (j >= 0) & (since >= 0)
        week = since[ok] // 7
        m = members[ok]
        complete = j[ok] + 7 * week + 6 <= n - 1
        week, m = week[complete], m[complete]
        pairs = np.unique(m * (columns + 1) + week)
        pm, pk = pairs // (columns + 1), pairs % (columns + 1)
        np.add.at(active, (week_of_member[pm], pk), 1)
    labels = []
    for w in range(weeks):
        monday = ctx.start - timedelta(days=weekday0) + timedelta(weeks=w)
        labels.append(monday.isoformat())
    values = [
        [
            None if eligible[w, k] == 0 else round(active[w, k] / eligible[w, k], 6)
            for k in range(columns)
        ]
        for w in range(weeks)
    ]
    present = [w for w in range(weeks) if eligible[w].sum() or (cohort_week == w).any()]
    return _result(
        name="retention",
        title="Retention by join week",
        kind="matrix",
        chart="heatmap",
        unit="share",
        description=(
            "Members who joined in a week (the Monday shown), and the share of them "
            "active in each week after the day they joined (complete weeks only)."
        ),
        x=[f"week {k}" for k in range(columns)],
        labels=[labels[w] for w in present],
        values=[values[w] for w in present],
    )


def tiers_metric(ctx: MetricContext) -> MetricResult:
    f = ctx.facts
    ms = membership(ctx)
    now_in = f.in_scope & ~f.gone & (f.tier >= 0)
    del ms
    counts = np.bincount(f.tier[now_in], minlength=len(f.tiers))
    whole = int(counts.sum())
    rows = [
        (tier, int(counts[n]), None if whole == 0 else round(int(counts[n]) / whole, 6))
        for n, tier in enumerate(f.tiers)
    ]
    return _result(
        name="tiers",
        title="Tiers",
        kind="table",
        description="Members (not gone) in each tier now, and their share.",
        columns=("tier", "members", "share"),
        rows=rows,
    )


def tier_funnel_metric(ctx: MetricContext) -> MetricResult:
    f = ctx.facts
    # the highest tier each member ever held: now, or by the stored tier history
    best = np.where(f.in_scope & ~f.gone, f.tier, -1).astype(np.int64)
    if len(f.tc_member):
        np.maximum.at(best, f.tc_member, f.tc_new.astype(np.int64))
        np.maximum.at(best, f.tc_member, f.tc_old.astype(np.int64))
    counts = np.bincount(best[best >= 0], minlength=len(f.tiers))
    reached = np.cumsum(counts[::-1])[::-1]
    return _result(
        name="tier_funnel",
        title="Tier funnel",
        kind="funnel",
        description=(
            "Members who reached each tier (now, or earlier by the tier history), "
            "in ladder order; members who left count only by their history."
        ),
        x=list(f.tiers),
        series={"members": [int(v) for v in reached]},
    )


def rule_actions_metric(ctx: MetricContext) -> MetricResult:
    a = ctx.facts.audit
    days = ctx.day_of(a.at_us)
    kinds = sorted(set(a.action))
    series = {}
    for kind in kinds:
        picked = np.array([x == kind for x in a.action], dtype=np.bool_)
        series[kind] = _per_day(ctx, days[picked]).tolist()
    return _result(
        name="rule_actions",
        title="Rule actions",
        kind="series",
        chart="stacked",
        unit="actions",
        description="Actions the rules decided (the audit trail's verdicts), per day and type.",
        x=_x(ctx),
        series=series,
    )


def rule_actions_by_rule_metric(ctx: MetricContext) -> MetricResult:
    a = ctx.facts.audit
    days = ctx.day_of(a.at_us)
    n = _n(ctx)
    counted: dict[tuple[str, str], int] = {}
    for d, rule, kind in zip(days.tolist(), a.rule, a.action, strict=True):
        if 0 <= d < n:
            counted[rule, kind] = counted.get((rule, kind), 0) + 1
    return _result(
        name="rule_actions_by_rule",
        title="Rule actions by rule",
        kind="table",
        description="Actions each rule decided in the range.",
        columns=("rule", "action", "count"),
        rows=[(r, k, c) for (r, k), c in sorted(counted.items())],
    )


def campaign_funnels_metric(ctx: MetricContext) -> MetricResult:
    series: dict[str, list[float | None]] = {}
    for campaign, states in ctx.campaigns:
        funnel = getattr(campaign, "funnel", None)
        if not callable(funnel):
            continue
        found = funnel(states, ctx.days)
        if not found:  # a campaign that counts no step has no funnel
            continue
        series[str(campaign.name)] = [
            None if found.get(step) is None else float(found[step]) for step in FUNNEL_STEPS
        ]
    return _result(
        name="campaign_funnels",
        title="Campaign funnels",
        kind="funnel",
        description=(
            "Per campaign: members reached → responded → signed up → took part → completed."
        ),
        x=list(FUNNEL_STEPS),
        series=series,
    )


def tier_movements_metric(ctx: MetricContext) -> MetricResult:
    f = ctx.facts
    weekday0 = ctx.start.weekday()
    n = _n(ctx)
    weeks = (n - 1 + weekday0) // 7 + 1
    days = ctx.day_of(f.tc_at)
    inside = (days >= 0) & (days < n)
    week = (days[inside] + weekday0) // 7
    up = f.tc_new[inside] > f.tc_old[inside]
    promotions = np.bincount(week[up], minlength=weeks)[:weeks]
    demotions = np.bincount(week[~up], minlength=weeks)[:weeks]
    monday = ctx.start - timedelta(days=weekday0)
    return _result(
        name="tier_movements",
        title="Tier movements",
        kind="series",
        chart="stacked",
        unit="members",
        description="Promotions (to a higher tier) and demotions per week (the Monday shown).",
        x=[(monday + timedelta(weeks=w)).isoformat() for w in range(weeks)],
        series={"promotions": promotions.tolist(), "demotions": demotions.tolist()},
    )


def headline_metric(ctx: MetricContext) -> MetricResult:
    joined, _left, total = totals(ctx)
    counts = np.bincount(stage_at_end(ctx), minlength=len(STAGES))
    code = {stage: n for n, stage in enumerate(STAGES)}
    issued = points_by_day(ctx)[0]
    return _result(
        name="headline",
        title="Headline",
        kind="value",
        description="At the end of the range: members, active (active or recalled), churned; "
        "over the range: members who joined and points issued.",
        figures={
            "members": int(total[-1]) if len(total) else 0,
            "active": int(counts[code[Stage.ACTIVE]] + counts[code[Stage.RECALLED]]),
            "joined": int(joined.sum()),
            "churned": int(counts[code[Stage.CHURNED]]),
            "points issued": int(issued.sum()),
        },
    )


#: name → (compute, description), in report order
BUILTIN_METRICS: dict[str, tuple[Callable[[MetricContext], MetricResult], str]] = {
    "headline": (headline_metric, "members, active, joined, churned, points issued"),
    "members": (members_metric, "members per day: joined, left, net, total"),
    "stages": (stages_metric, "members per lifecycle stage at the end of the range"),
    "active_members": (active_members_metric, "DAU, WAU and MAU per day"),
    "stickiness": (stickiness_metric, "DAU ÷ MAU per day"),
    "participation": (participation_metric, "active members ÷ members per day"),
    "messages_per_active": (messages_per_active_metric, "messages ÷ active members per day"),
    "checkin_rate": (checkin_rate_metric, "members who checked in ÷ members per day"),
    "retention": (retention_metric, "share active by join-week cohort and week since joining"),
    "tiers": (tiers_metric, "members per tier"),
    "tier_funnel": (tier_funnel_metric, "members at or above each tier"),
    "tier_movements": (tier_movements_metric, "promotions and demotions per week"),
    "points": (points_metric, "points issued, spent and expired per day"),
    "campaign_funnels": (campaign_funnels_metric, "each campaign's funnel"),
    "rule_actions": (rule_actions_metric, "rule actions per day and action type"),
    "rule_actions_by_rule": (rule_actions_by_rule_metric, "rule actions per rule and type"),
}
