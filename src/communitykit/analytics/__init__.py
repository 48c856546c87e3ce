"""Analytics: lifecycle stages, metrics and the report.

* :func:`build_report` computes every metric (built-in and plugin) for a date
  range, optionally for one group or platform, into a :class:`Report`;
* :class:`MetricContext` is what a metric's ``compute`` gets; its ``facts``
  (:class:`Facts`) are the stored events and ledger as numpy columns;
* :func:`stages` and :func:`stage_counts` give every member's lifecycle stage
  at once, by the definition of :func:`communitykit.model.stage_of`.
"""

from __future__ import annotations

from communitykit.analytics._context import MetricContext
from communitykit.analytics._facts import Facts, build_facts
from communitykit.analytics._report import ReportError, build_report
from communitykit.analytics._results import Cell, MetricResult, Report
from communitykit.analytics._stages import stage_counts, stages

__all__ = [
    "Cell",
    "Facts",
    "MetricContext",
    "MetricResult",
    "Report",
    "ReportError",
    "build_facts",
    "build_report",
    "stage_counts",
    "stages",
]
