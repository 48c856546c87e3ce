"""The report page: one self-contained HTML file for a :class:`Report`.

:func:`render` lays the metrics out in sections (Headline, Growth, Activity,
Retention, Tiers, Points, Campaigns, Rules, then More for any other metric, in
report order) and draws each by its kind: headline figures as cards, series as
line or bar charts, funnels as bars step by step, matrices as heat maps, tables
as tables. Charts are inline SVG drawn with matplotlib; the CSS is inline; the
page loads nothing, so it opens offline, and a Content-Security-Policy says so
to the browser. Every chart carries a title for screen readers and its numbers
in a table under "Data". The same report gives the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from communitykit._version import __version__
from communitykit.analytics import _charts
from communitykit.analytics._results import Cell, MetricResult, Report

escape = _charts.esc

__all__ = ["SECTIONS", "render", "section_of"]

SECTIONS: tuple[tuple[str, str], ...] = (
    ("headline", "Headline"),
    ("growth", "Growth"),
    ("activity", "Activity"),
    ("retention", "Retention"),
    ("tiers", "Tiers"),
    ("points", "Points"),
    ("campaigns", "Campaigns"),
    ("rules", "Rules"),
    ("more", "More"),
)

# The built-in metrics, in the order the page shows them.
_PLACES: tuple[tuple[str, str], ...] = (
    ("headline", "headline"),
    ("members", "growth"),
    ("stages", "growth"),
    ("active_members", "activity"),
    ("stickiness", "activity"),
    ("participation", "activity"),
    ("messages_per_active", "activity"),
    ("checkin_rate", "activity"),
    ("retention", "retention"),
    ("tiers", "tiers"),
    ("tier_funnel", "tiers"),
    ("tier_movements", "tiers"),
    ("points", "points"),
    ("campaign_funnels", "campaigns"),
    ("rule_actions", "rules"),
    ("rule_actions_by_rule", "rules"),
)
_SECTION = dict(_PLACES)
_ORDER = {name: i for i, (name, _) in enumerate(_PLACES)}
_WIDE = frozenset({"members", "active_members", "retention", "points", "rule_actions"})

NO_DATA = "No data in this range."


def section_of(name: str) -> str:
    """The section a metric goes to: its place among the built-ins, else ``more``."""
    return _SECTION.get(name, "more")


def render(report: Report) -> str:
    """The report as one HTML page (a string), self-contained and deterministic."""
    placed: dict[str, list[MetricResult]] = {key: [] for key, _ in SECTIONS}
    for metric in report.metrics:
        placed[section_of(metric.name)].append(metric)
    for key in placed:
        if key != "more":
            placed[key].sort(key=lambda m: _ORDER.get(m.name, len(_ORDER)))
    page = _Page()
    body: list[str] = []
    for key, heading in SECTIONS:
        metrics = placed[key]
        if not metrics:
            continue
        parts = [page.metric(m) for m in metrics]
        body.append(
            f'<section id="{key}" aria-labelledby="h-{key}">\n'
            f'<h2 id="h-{key}">{escape(heading)}</h2>\n'
            f'<div class="grid">\n{"".join(parts)}</div>\n</section>\n'
        )
    if not body:
        body.append(f'<p class="empty">{NO_DATA} The report has no metrics.</p>\n')
    nav = "".join(
        f'<a href="#{key}">{escape(heading)}</a>' for key, heading in SECTIONS if placed[key]
    )
    return _document(report, nav, "".join(body))


class _Page:
    """Numbers the charts of one page so their ids never collide."""

    def __init__(self) -> None:
        self._count = 0

    def uid(self) -> str:
        self._count += 1
        return f"c{self._count}"

    def metric(self, m: MetricResult) -> str:
        if m.kind == "value":
            return _cards(m)
        wide = " wide" if m.name in _WIDE or m.kind == "matrix" else ""
        if m.kind == "series":
            inner = self._series(m, wide=bool(wide))
        elif m.kind == "funnel":
            inner = self._funnels(m)
        elif m.kind == "matrix":
            inner = self._matrix(m)
        else:
            inner = _table_block(m)
        head = f'<h3 id="m-{escape(m.name)}">{escape(m.title or m.name)}</h3>\n'
        desc = f'<p class="desc">{escape(m.description)}</p>\n' if m.description else ""
        return (
            f'<figure class="card{wide}" data-metric="{escape(m.name)}">\n{head}{desc}{inner}'
            "</figure>\n"
        )

    def _series(self, m: MetricResult, *, wide: bool) -> str:
        if not _has_data(v for vs in m.series.values() for v in vs):
            return _no_data()
        label = f"{m.title or m.name}: {_chart_words(m.chart)} of " + ", ".join(m.series)
        if len(m.x) == 1 and m.chart in ("stacked", "bar"):
            # One day's mix (members per stage on the end date): a bar per series.
            label += f" on {m.x[0]}"
            svg = _charts.bars_svg(
                list(m.series),
                [vs[0] for vs in m.series.values()],
                unit=m.unit,
                uid=self.uid(),
                label=label,
            )
            note = f'<p class="note">On {escape(_charts.tick_label(m.x[0]))}.</p>\n'
            return svg + note + _data(_series_table(m))
        svg = _charts.series_svg(
            m.x, m.series, chart=m.chart, unit=m.unit, uid=self.uid(), label=label, wide=wide
        )
        return svg + _data(_series_table(m))

    def _funnels(self, m: MetricResult) -> str:
        if not m.x or not _has_data(v for vs in m.series.values() for v in vs):
            return _no_data()
        parts = []
        for i, (name, values) in enumerate(m.series.items()):
            colour = _charts.PALETTE[i % len(_charts.PALETTE)]
            heading = ""
            if len(m.series) > 1 or section_of(m.name) == "campaigns":
                heading = f'<h4 class="funnel-name">{escape(name)}</h4>\n'
            if not _has_data(values):
                parts.append(f'<div class="funnel">{heading}{_no_data()}</div>\n')
                continue
            label = f"{m.title or m.name}: {name}, " + ", ".join(
                f"{step} {_charts.format_value(v)}"
                for step, v in zip(m.x, values, strict=True)
                if v is not None
            )
            svg = _charts.funnel_svg(m.x, values, uid=self.uid(), label=label, colour=colour)
            parts.append(f'<div class="funnel">{heading}{svg}</div>\n')
        return f'<div class="funnels">\n{"".join(parts)}</div>\n' + _data(_funnel_table(m))

    def _matrix(self, m: MetricResult) -> str:
        if not m.labels or not m.x or not _has_data(v for row in m.values for v in row):
            return _no_data()
        label = f"{m.title or m.name}: heat map, {len(m.labels)} rows by {len(m.x)} columns"
        svg = _charts.heatmap_svg(m.labels, m.x, m.values, unit=m.unit, uid=self.uid(), label=label)
        return f'<div class="scroll">{svg}</div>\n' + _data(_matrix_table(m))


def _chart_words(chart: str) -> str:
    return {"line": "line chart", "bar": "bar chart", "stacked": "stacked bar chart"}.get(
        chart, "chart"
    )


def _has_data(values: Iterable[Cell]) -> bool:
    """Anything but nothing: at least one number that is there and not zero."""
    return any(isinstance(v, int | float) and math.isfinite(v) and v != 0 for v in values)


def _no_data() -> str:
    return f'<p class="empty">{NO_DATA}</p>\n'


def _cards(m: MetricResult) -> str:
    head = ""
    if m.name != "headline":
        head = f'<h3 id="m-{escape(m.name)}">{escape(m.title or m.name)}</h3>\n'
    if not m.figures:
        block = f'<div class="cards-block wide" data-metric="{escape(m.name)}">'
        return f"{block}{head}{_no_data()}</div>\n"
    cards = "".join(
        f'<div class="figure"><div class="num">{escape(_charts.format_value(v, m.unit))}</div>'
        f'<div class="lbl">{escape(str(k))}</div></div>\n'
        for k, v in m.figures.items()
    )
    return (
        f'<div class="cards-block wide" data-metric="{escape(m.name)}">{head}'
        f'<div class="cards">\n{cards}</div></div>\n'
    )


def _table_block(m: MetricResult) -> str:
    if not m.rows:
        return _no_data()
    return _html_table(m.columns, m.rows, unit=m.unit, caption=None)


def _shares(column: str, unit: str) -> bool:
    return _charts.is_share(unit) or column.strip().lower() in ("share", "rate", "conversion")


def _cell(value: Cell, unit: str) -> str:
    if isinstance(value, str):
        return escape(value)
    return escape(_charts.format_value(value, unit))


def _html_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Cell]],
    *,
    unit: str,
    caption: str | None,
    row_headers: bool = True,
) -> str:
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    head = "".join(f'<th scope="col">{escape(str(c))}</th>' for c in columns)
    lines = []
    for row in rows:
        cells = []
        for i, (col, value) in enumerate(zip(columns, row, strict=False)):
            text = _cell(value, "share" if _shares(str(col), unit) else "")
            num = "" if isinstance(value, str) or value is None else ' class="n"'
            if i == 0 and row_headers:
                cells.append(f'<th scope="row"{num}>{text}</th>')
            else:
                cells.append(f"<td{num}>{text}</td>")
        lines.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<div class="scroll"><table>{cap}<thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(lines)}</tbody></table></div>\n"
    )


def _data(table: str) -> str:
    return f"<details><summary>Data</summary>\n{table}</details>\n"


def _series_table(m: MetricResult) -> str:
    columns = ["", *m.series]
    rows = [[x, *(vs[i] for vs in m.series.values())] for i, x in enumerate(m.x)]
    return _html_table(columns, rows, unit=m.unit, caption=None)


def _funnel_table(m: MetricResult) -> str:
    columns = ["step"]
    for name in m.series:
        columns += [name, f"{name}: of previous"]
    rows: list[list[Cell]] = []
    for i, step in enumerate(m.x):
        row: list[Cell] = [step]
        for values in m.series.values():
            v = values[i]
            prev = values[i - 1] if i else None
            row.append(v)
            row.append(f"{v / prev * 100:.0f}%" if v is not None and prev else "")
        rows.append(row)
    return _html_table(columns, rows, unit="", caption=None)


def _matrix_table(m: MetricResult) -> str:
    columns = ["", *m.x]
    rows = [[label, *row] for label, row in zip(m.labels, m.values, strict=True)]
    return _html_table(columns, rows, unit=m.unit, caption=None)


_CSS = """
:root{--ink:#202124;--muted:#5f6368;--line:#e3e5e8;--bg:#f6f7f9;--card:#fff;--accent:#4C78A8}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--ink);
font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",Arial,sans-serif}
header{background:#1f2a37;color:#fff;padding:28px 32px 20px}
header h1{margin:0;font-size:26px;font-weight:650;letter-spacing:-.01em}
header .meta{margin:6px 0 0;color:#c9d1db;font-size:14px}
header .meta b{color:#fff;font-weight:600}
nav{position:sticky;top:0;z-index:1;background:#fff;border-bottom:1px solid var(--line);
padding:8px 28px;display:flex;flex-wrap:wrap;gap:4px 6px}
nav a{color:var(--muted);text-decoration:none;font-size:14px;padding:4px 10px;border-radius:14px}
nav a:hover,nav a:focus{background:#eef2f7;color:var(--ink)}
main{max-width:1240px;margin:0 auto;padding:8px 24px 40px}
section{margin-top:28px;scroll-margin-top:52px}
h2{font-size:19px;margin:0 0 12px;font-weight:650}
h3{font-size:15px;margin:0 0 4px;font-weight:600}
h4{font-size:13px;margin:10px 0 0;font-weight:600;color:var(--muted)}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:16px}
.wide{grid-column:1/-1}
.card{margin:0;background:var(--card);border:1px solid var(--line);border-radius:10px;
padding:16px 18px 12px;min-width:0}
.desc{margin:0 0 6px;color:var(--muted);font-size:13.5px}
.note{margin:2px 0 0;color:var(--muted);font-size:13px}
.empty{margin:18px 0;padding:18px;text-align:center;color:var(--muted);background:#f8f9fa;
border:1px dashed #d5d9de;border-radius:8px;font-size:14px}
svg.chart{display:block;width:100%;height:auto;margin:4px 0 2px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:16px}
.figure{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:16px 18px;
border-top:4px solid var(--accent)}
.figure:nth-child(5n+2){border-top-color:#F58518}.figure:nth-child(5n+3){border-top-color:#54A24B}
.figure:nth-child(5n+4){border-top-color:#E45756}.figure:nth-child(5n+5){border-top-color:#72B7B2}
.figure .num{font-size:30px;font-weight:650;line-height:1.15;font-variant-numeric:tabular-nums}
.figure .lbl{color:var(--muted);font-size:14px;margin-top:2px}
.funnels{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:4px 24px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:13.5px;margin:6px 0;font-variant-numeric:tabular-nums}
th,td{padding:5px 12px 5px 0;text-align:left;border-bottom:1px solid var(--line);white-space:nowrap}
thead th{color:var(--muted);font-weight:600;border-bottom:1px solid #c9cdd2}
tbody th{font-weight:500}
.n{text-align:right}
details{margin-top:6px;font-size:13.5px}
summary{cursor:pointer;color:var(--muted);width:max-content}
summary:focus-visible,a:focus-visible{outline:2px solid var(--accent);outline-offset:2px}
footer{max-width:1240px;margin:0 auto;padding:0 24px 32px;color:var(--muted);font-size:13px}
@media (max-width:560px){.grid,.funnels{grid-template-columns:1fr}header,nav{padding-left:16px}
main{padding:8px 12px 32px}}
@media print{nav{display:none}body{background:#fff}.card,.figure{break-inside:avoid}}
"""

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _document(report: Report, nav: str, body: str) -> str:
    span = f"{report.start.isoformat()} to {report.end.isoformat()}"
    days = (report.end - report.start).days + 1
    scope = []
    if report.group:
        scope.append(f"group <b>{escape(report.group)}</b>")
    if report.platform:
        scope.append(f"platform <b>{escape(report.platform)}</b>")
    where = " · " + ", ".join(scope) if scope else ""
    title = f"{report.community} — report {span}"
    generated = report.generated_at.isoformat(sep=" ", timespec="minutes")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta name="generator" content="communitykit {escape(__version__)}">\n'
        f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<header>\n<h1>{escape(report.community)}</h1>\n"
        f'<p class="meta"><b>{escape(span)}</b> ({days} day{"s" if days != 1 else ""})'
        f"{where} · generated {escape(generated)}</p>\n</header>\n"
        f'<nav aria-label="Sections">{nav}</nav>\n'
        f"<main>\n{body}</main>\n"
        f"<footer>Made with communitykit {escape(__version__)}. Every chart's numbers are "
        "under its “Data”.</footer>\n</body>\n</html>\n"
    )
