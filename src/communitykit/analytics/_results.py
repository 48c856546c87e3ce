"""What a metric returns, and what a report is made of.

Every metric answers with one :class:`MetricResult`. Its ``kind`` says how the
numbers are laid out, and so how the report draws them:

* ``series`` — values over ``x`` (ISO dates, weeks or labels), one tuple per
  named series, each as long as ``x``; ``chart`` is ``line``, ``bar`` or
  ``stacked``;
* ``funnel`` — ``x`` holds the steps in order, one series per funnel (a
  campaign, say), each value the number of members who reached that step;
* ``matrix`` — ``labels`` down the side, ``x`` labels across the top and
  ``values`` one row per label, ``None`` where there is no data (a retention
  cohort heat map: join week down, weeks since joining across, a share 0..1);
* ``table`` — ``columns`` and ``rows`` of plain values;
* ``value`` — headline figures in ``figures``, label to number.

Results are plain data: :meth:`MetricResult.to_json` gives what
``communitykit report --format json`` prints, and :meth:`MetricResult.from_json`
reads it back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any, Literal

import attrs

__all__ = ["Cell", "MetricResult", "Report"]

Kind = Literal["series", "funnel", "matrix", "table", "value"]
Chart = Literal["line", "bar", "stacked", "heatmap", "funnel", "table", "none"]
Cell = str | int | float | None

_KINDS = ("series", "funnel", "matrix", "table", "value")
_DEFAULT_CHART: dict[str, Chart] = {
    "series": "line",
    "funnel": "funnel",
    "matrix": "heatmap",
    "table": "table",
    "value": "none",
}


def _series(value: Mapping[str, Sequence[float | None]]) -> Mapping[str, tuple[float | None, ...]]:
    return {str(k): tuple(v) for k, v in value.items()}


def _rows(value: Sequence[Sequence[Cell]]) -> tuple[tuple[Cell, ...], ...]:
    return tuple(tuple(r) for r in value)


def _values(value: Sequence[Sequence[float | None]]) -> tuple[tuple[float | None, ...], ...]:
    return tuple(tuple(r) for r in value)


def _metrics(value: Sequence[MetricResult]) -> tuple[MetricResult, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class MetricResult:
    """One metric's numbers for a date range (see the module text for ``kind``)."""

    name: str
    title: str
    kind: Kind
    chart: Chart = attrs.field()
    unit: str = ""
    description: str = ""
    x: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    series: Mapping[str, tuple[float | None, ...]] = attrs.field(factory=dict, converter=_series)
    rows: tuple[tuple[Cell, ...], ...] = attrs.field(default=(), converter=_rows)
    columns: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    labels: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    values: tuple[tuple[float | None, ...], ...] = attrs.field(default=(), converter=_values)
    figures: Mapping[str, float | int | None] = attrs.field(factory=dict, converter=dict)

    @chart.default
    def _chart(self) -> Chart:
        return _DEFAULT_CHART.get(self.kind, "none")

    def __attrs_post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(
                f"metric {self.name!r}: kind must be one of {_KINDS}, got {self.kind!r}"
            )
        if self.kind in ("series", "funnel"):
            for label, values in self.series.items():
                if len(values) != len(self.x):
                    raise ValueError(
                        f"metric {self.name!r}: series {label!r} has {len(values)} values "
                        f"for {len(self.x)} x labels"
                    )
        if self.kind == "matrix":
            if len(self.values) != len(self.labels):
                raise ValueError(
                    f"metric {self.name!r}: {len(self.values)} rows for {len(self.labels)} labels"
                )
            for row in self.values:
                if len(row) != len(self.x):
                    raise ValueError(f"metric {self.name!r}: a matrix row is not as long as x")
        if self.kind == "table":
            for cells in self.rows:
                if len(cells) != len(self.columns):
                    raise ValueError(f"metric {self.name!r}: a table row is not as long as columns")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "title": self.title,
            "kind": self.kind,
            "chart": self.chart,
            "unit": self.unit,
            "description": self.description,
        }
        if self.kind in ("series", "funnel"):
            out["x"] = list(self.x)
            out["series"] = {k: list(v) for k, v in self.series.items()}
        elif self.kind == "matrix":
            out["x"] = list(self.x)
            out["labels"] = list(self.labels)
            out["values"] = [list(r) for r in self.values]
        elif self.kind == "table":
            out["columns"] = list(self.columns)
            out["rows"] = [list(r) for r in self.rows]
        else:
            out["figures"] = dict(self.figures)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MetricResult:
        kind = data["kind"]
        return cls(
            name=data["name"],
            title=data["title"],
            kind=kind,
            chart=data.get("chart", _DEFAULT_CHART.get(kind, "none")),
            unit=data.get("unit", ""),
            description=data.get("description", ""),
            x=data.get("x", ()),
            series=data.get("series", {}),
            rows=data.get("rows", ()),
            labels=data.get("labels", ()),
            columns=data.get("columns", ()),
            values=data.get("values", ()),
            figures=data.get("figures", {}),
        )


@attrs.frozen(kw_only=True)
class Report:
    """Every metric for one community and date range (inclusive, community days)."""

    community: str
    start: date
    end: date
    generated_at: datetime
    group: str | None = None
    platform: str | None = None
    metrics: tuple[MetricResult, ...] = attrs.field(default=(), converter=_metrics)

    def metric(self, name: str) -> MetricResult:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        return {
            "community": self.community,
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "generated_at": self.generated_at.isoformat(),
            "group": self.group,
            "platform": self.platform,
            "metrics": [m.to_json() for m in self.metrics],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Report:
        return cls(
            community=data["community"],
            start=date.fromisoformat(data["from"]),
            end=date.fromisoformat(data["to"]),
            generated_at=datetime.fromisoformat(data["generated_at"]),
            group=data.get("group"),
            platform=data.get("platform"),
            metrics=[MetricResult.from_json(m) for m in data.get("metrics", ())],
        )
