"""Building a report: every metric for one date range, group and platform."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from communitykit._errors import CommunityKitError
from communitykit._plugin_types import MetricType
from communitykit.analytics._context import MetricContext
from communitykit.analytics._results import MetricResult, Report
from communitykit.model import Community, LifecycleSettings
from communitykit.store import Store

__all__ = ["FIRST_DAY", "LAST_DAY", "MAX_DAYS", "ReportError", "build_report"]

#: the earliest and latest days a report may cover: the metrics look a month
#: before the start and a day after the end, and a date has to exist there
FIRST_DAY = date.min + timedelta(days=31)
LAST_DAY = date.max - timedelta(days=2)
#: the longest range a report covers (ten years of days): each metric keeps a
#: value per day, so a mistyped year would otherwise cost minutes and gigabytes
MAX_DAYS = 3660


class ReportError(CommunityKitError):
    """A report cannot be built as asked (dates, group, platform, metric names)."""


def _parts(source: Any) -> tuple[Store, Any, Any]:
    """(store, engine or None, app or None) of an app, an engine or a store."""
    engine = getattr(source, "_engine", None)
    if hasattr(source, "config") and hasattr(source, "register_plugin"):  # a CommunityApp
        return source.engine.store, source.engine, source
    if hasattr(source, "store") and hasattr(source, "campaigns"):  # an Engine
        return source.store, source, None
    if engine is not None or hasattr(source, "iter_events"):  # a Store
        return source, None, None
    raise ReportError(f"build a report from a CommunityApp, an Engine or a Store, not {source!r}")


def build_report(
    source: Any,
    start: date,
    end: date,
    group: str | None = None,
    platform: str | None = None,
    metrics: Sequence[str] | None = None,
    *,
    community: Community | None = None,
    settings: LifecycleSettings | None = None,
    metric_types: Sequence[MetricType] | None = None,
    now: datetime | None = None,
) -> Report:
    """The report of ``start .. end`` (community days, inclusive), optionally for one
    group (its key) and/or platform, with every metric (or those named).

    ``source`` is a :class:`~communitykit.CommunityApp` (open), an engine, or a
    store; with a store, pass the ``community`` (for its time zone and groups).
    Raises :class:`ReportError` for a range that ends before it starts or reaches
    beyond :data:`FIRST_DAY` .. :data:`LAST_DAY` or is longer than
    :data:`MAX_DAYS`, an unknown
    group, platform or metric.
    """
    store, engine, app = _parts(source)
    if community is None:
        community = engine.community if engine is not None else Community(name="community")
    if start > end:
        raise ReportError(f"the report starts ({start}) after it ends ({end})")
    if start < FIRST_DAY or end > LAST_DAY:
        raise ReportError(
            f"a report covers days from {FIRST_DAY} to {LAST_DAY}, not {start} to {end}"
        )
    if (end - start).days + 1 > MAX_DAYS:
        raise ReportError(
            f"a report covers at most {MAX_DAYS} days; {start} to {end} is "
            f"{(end - start).days + 1} days"
        )
    if group is not None:
        keys = [g.key for g in community.groups]
        if group not in keys:
            known = ", ".join(keys) or "none are configured"
            raise ReportError(f"unknown group {group!r} (groups: {known})")
    if metric_types is None:
        plugins = app.plugins if app is not None else getattr(engine, "plugins", None)
        if plugins is None:
            from communitykit.plugins import make_plugin_manager

            plugins = make_plugin_manager()
        metric_types = list(plugins.metric_types().values())
    types = sorted(metric_types, key=lambda t: (t.order, t.name))
    if metrics is not None:
        by_name = {t.name: t for t in types}
        unknown = [m for m in metrics if m not in by_name]
        if unknown:
            raise ReportError(
                f"unknown metric(s) {', '.join(map(repr, unknown))}; known: {', '.join(by_name)}"
            )
        types = [by_name[m] for m in metrics]
    if settings is None:
        found = getattr(getattr(app, "config", None), "lifecycle", None)
        settings = found if isinstance(found, LifecycleSettings) else LifecycleSettings()
    ladder: tuple[str, ...] = ()
    campaigns: list[tuple[Any, list[tuple[str, Any]]]] = []
    if engine is not None:
        ladder = tuple(t.name for t in engine.ladder.tiers)
        states = engine.moderation.states
        campaigns = [(c, list(states.get(c.name, {}).items())) for c in engine.campaigns]
    ctx = MetricContext(
        start=start,
        end=end,
        tz=community.tz,
        community=community,
        store=store,
        group=group,
        platform=platform,
        settings=settings,
        ladder=ladder,
        campaigns=campaigns,
    )
    if platform is not None:
        configured = set(getattr(getattr(app, "config", None), "platforms", None) or ())
        seen = set(ctx.facts.platforms)
        if platform not in configured | seen:
            known = ", ".join(sorted(configured | seen)) or "none"
            raise ReportError(f"unknown platform {platform!r} (platforms: {known})")
    results: list[MetricResult] = []
    for metric_type in types:
        try:
            result = metric_type.compute(ctx)
        except CommunityKitError:
            raise
        except Exception as exc:
            raise ReportError(f"metric {metric_type.name!r} failed: {exc!r}") from exc
        if not isinstance(result, MetricResult):
            raise ReportError(
                f"metric {metric_type.name!r} returned {type(result).__name__}, not a MetricResult"
            )
        results.append(result)
    if now is None:
        clock = getattr(engine, "clock", None)
        now = clock.now() if clock is not None else datetime.now(UTC)
    return Report(
        community=community.name,
        start=start,
        end=end,
        generated_at=now,
        group=group,
        platform=platform,
        metrics=results,
    )
