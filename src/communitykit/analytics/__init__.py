"""Analytics: lifecycle stages, segments, metrics and the report."""

from __future__ import annotations

from communitykit.analytics._results import Cell, MetricResult, Report

__all__ = ["Cell", "MetricResult", "Report"]
