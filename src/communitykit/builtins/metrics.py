"""The built-in metrics of the analytics and the report (see ``docs/analytics.md``)."""

from __future__ import annotations

from collections.abc import Iterable

from communitykit._plugin_types import MetricType
from communitykit.analytics._builtin import BUILTIN_METRICS
from communitykit.hookspecs import hookimpl

__all__ = ["communitykit_metric_types"]


@hookimpl
def communitykit_metric_types() -> Iterable[MetricType]:
    return [
        MetricType(name=name, compute=compute, description=description, order=10 * n)
        for n, (name, (compute, description)) in enumerate(BUILTIN_METRICS.items())
    ]
