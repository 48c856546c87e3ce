"""The report page: layout, every kind of chart, escaping, empty data, determinism."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from html.parser import HTMLParser

import matplotlib
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from communitykit.analytics import MetricResult, Report
from communitykit.analytics._charts import format_value, tick_label
from communitykit.analytics._html import NO_DATA, SECTIONS, render, section_of
from tests.analytics.fixtures import FUNNEL_STEPS, START, empty_report, sample_report

SERIES_CHARTS = {
    "members",
    "stages",
    "active_members",
    "stickiness",
    "participation",
    "messages_per_active",
    "checkin_rate",
    "tier_movements",
    "points",
    "rule_actions",
}
VOID = {"meta", "br", "hr", "img", "input", "link"}
SVG_RE = re.compile(r"<svg\b.*?</svg>", re.S)


@pytest.fixture(scope="module")
def report() -> Report:
    return sample_report()


@pytest.fixture(scope="module")
def page(report: Report) -> str:
    return render(report)


class _Outline(HTMLParser):
    """Sections with the metrics in each, and whether every tag closes."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.sections: list[tuple[str, list[str]]] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section":
            self.sections.append((a["id"] or "", []))
        if "data-metric" in a and self.sections:
            self.sections[-1][1].append(a["data-metric"] or "")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass  # <path ... /> inside SVG

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()


def _outline(page: str) -> _Outline:
    parser = _Outline()
    parser.feed(page)
    parser.close()
    return parser


def test_sections_come_in_order_with_each_metric_in_its_place(page: str) -> None:
    outline = _outline(page)
    assert outline.errors == []
    assert outline.stack == []
    order = [key for key, _ in SECTIONS]
    found = [key for key, _ in outline.sections]
    assert found == [k for k in order if k in found]
    assert found[:8] == order[:8]  # the sample has every built-in section, no "More"
    for key, metrics in outline.sections:
        for name in metrics:
            assert section_of(name) == key
    placed = [name for _, metrics in outline.sections for name in metrics]
    assert sorted(placed) == sorted(m.name for m in sample_report().metrics)
    assert placed.index("members") < placed.index("stages")
    assert placed.index("active_members") < placed.index("checkin_rate")


def test_every_chart_kind_is_drawn_as_inline_svg_with_a_title(page: str) -> None:
    svgs = SVG_RE.findall(page)
    # 10 series charts, the tier funnel, three campaign funnels, the retention heat map.
    assert len(svgs) == len(SERIES_CHARTS) + 1 + 3 + 1
    for svg in svgs:
        ET.fromstring(svg)  # well-formed
        assert 'role="img"' in svg
        label = re.search(r'aria-label="([^"]+)"', svg)
        assert label and label.group(1).strip()
        assert "<title>" in svg
        assert "<text" not in svg  # text drawn as paths: no font needed
    for name in SERIES_CHARTS | {"retention", "tier_funnel", "campaign_funnels"}:
        block = _block(page, name)
        assert "<svg" in block, name
        assert "<details><summary>Data</summary>" in block, name


def _block(page: str, name: str) -> str:
    start = page.index(f'data-metric="{name}"')
    end = page.find("data-metric=", start + 1)
    return page[start : end if end > 0 else len(page)]


def test_the_page_loads_nothing_from_anywhere(page: str) -> None:
    assert "<script" not in page.lower()
    assert "@import" not in page
    assert "<link" not in page
    assert re.search(r"\bsrc\s*=", page) is None
    assert re.search(r"url\((?!#)", page) is None
    hrefs = re.findall(r'href="([^"]*)"', page)
    assert hrefs
    assert all(h.startswith("#") for h in hrefs)
    assert "Content-Security-Policy" in page
    assert "default-src 'none'" in page


def test_ids_are_unique_across_the_page_and_every_reference_resolves(page: str) -> None:
    ids = re.findall(r'\bid="([^"]+)"', page)
    dupes = [i for i, n in Counter(ids).items() if n > 1]
    assert dupes == []
    refs = re.findall(r'href="#([^"]+)"', page) + re.findall(r"url\(#([^)]+)\)", page)
    assert set(refs) <= set(ids)


def test_rendering_the_same_report_twice_gives_the_same_page(report: Report, page: str) -> None:
    assert render(report) == page


def test_a_report_read_back_from_json_renders_the_same(report: Report, page: str) -> None:
    assert render(Report.from_json(report.to_json())) == page


def test_rendering_leaves_matplotlib_settings_alone(report: Report) -> None:
    before = dict(matplotlib.rcParams)
    render(Report(community="c", start=START, end=START, generated_at=report.generated_at,
                  metrics=[report.metric("stickiness")]))  # fmt: skip
    assert dict(matplotlib.rcParams) == before


def test_headline_figures_are_cards_at_the_top(report: Report, page: str) -> None:
    head = _block(page, "headline")
    figures = report.metric("headline").figures
    for label, value in figures.items():
        assert f'<div class="lbl">{label}</div>' in head
        assert f'<div class="num">{format_value(value)}</div>' in head
    assert page.index('id="headline"') < page.index('id="growth"')


def test_tables_show_shares_as_percentages(page: str) -> None:
    tiers = _block(page, "tiers")
    assert "<table>" in tiers
    assert ">newcomer<" in tiers
    assert re.search(r"<td class=\"n\">\d+\.\d%</td>", tiers)


def test_funnels_show_the_share_kept_from_step_to_step(report: Report, page: str) -> None:
    funnels = report.metric("campaign_funnels")
    block = _block(page, "campaign_funnels")
    for name, values in funnels.series.items():
        assert f'<h4 class="funnel-name">{name}</h4>' in block
        kept = f"{values[1] / values[0] * 100:.0f}%"
        assert kept in block  # in the data table
    assert "of previous" in block


def test_the_heat_map_table_marks_missing_cells(page: str) -> None:
    block = _block(page, "retention")
    assert "<td>–</td>" in block
    assert "100.0%" in block


def test_a_large_heat_map_draws_without_cell_labels_and_keeps_its_numbers() -> None:
    n = 30
    labels = [f"2026-W{k:02d}" for k in range(1, n + 1)]
    values = [[0.5 if k < n - i else None for k in range(n)] for i in range(n)]
    m = MetricResult(
        name="retention",
        title="Retention",
        kind="matrix",
        unit="share",
        labels=labels,
        x=[f"week {k}" for k in range(n)],
        values=values,
    )
    page = render(Report(community="c", start=START, end=START, generated_at=_AT, metrics=[m]))
    small = render(Report(community="c", start=START, end=START, generated_at=_AT,
                          metrics=[sample_report(days=7).metric("retention")]))  # fmt: skip
    (svg,) = SVG_RE.findall(page)
    ET.fromstring(svg)
    assert page.count("50.0%") == n * (n + 1) // 2  # every cell in the data table
    # matplotlib gives every text an id "text_N": tick labels only on the large map.
    assert len(re.findall(r'id="c1-text_', svg)) <= 2 * n
    small_m = sample_report(days=7).metric("retention")
    cells = sum(v is not None for row in small_m.values for v in row)
    ticks = len(small_m.labels) + len(small_m.x)
    assert len(re.findall(r'id="c1-text_', small)) >= ticks + cells


def test_a_single_day_mix_is_drawn_as_one_bar_per_series(page: str) -> None:
    block = _block(page, "stages")
    assert "On Mar 30." in block
    assert "<svg" in block


def test_metrics_with_nothing_in_range_say_so_instead_of_drawing() -> None:
    page = render(empty_report())
    for m in empty_report().metrics:
        block = _block(page, m.name)
        assert NO_DATA in block, m.name
        assert "<svg" not in block, m.name
    assert "<svg" not in page


def test_a_report_without_metrics_is_still_a_page() -> None:
    page = render(Report(community="Empty", start=START, end=START, generated_at=_AT))
    assert NO_DATA in page
    assert "<h1>Empty</h1>" in page
    assert "(1 day)" in page


_AT = sample_report(days=2).generated_at


def test_unknown_metrics_go_to_more_in_report_order() -> None:
    extra = (
        MetricResult(name="zeta", title="Zeta", kind="value", figures={"a": 1}),
        MetricResult(name="alpha", title="Alpha", kind="table", columns=("k",), rows=[("v",)]),
    )
    page = render(sample_report(days=3, extra=extra))
    outline = _outline(page)
    assert outline.sections[-1] == ("more", ["zeta", "alpha"])
    assert '<a href="#more">More</a>' in page


HOSTILE = '<script>alert("x")</script> & $\\frac{1}{2}$ 数据'


def test_every_text_from_the_report_is_escaped() -> None:
    hostile = MetricResult(
        name=HOSTILE,
        title=HOSTILE,
        kind="series",
        chart="bar",
        description=HOSTILE,
        x=(HOSTILE, "2026-03-02"),
        series={HOSTILE: [1.0, 2.0]},
    )
    funnel = MetricResult(
        name="campaign_funnels",
        title="Campaign funnels",
        kind="funnel",
        x=FUNNEL_STEPS,
        series={HOSTILE: [10, 5, 4, 3, 1], "plain": [10, 9, 8, 7, 6]},
    )
    table = MetricResult(
        name="tiers", title="Tiers", kind="table", columns=(HOSTILE,), rows=[(HOSTILE,)]
    )
    cards = MetricResult(name="headline", title="x", kind="value", figures={HOSTILE: 3})
    report = Report(
        community=HOSTILE,
        start=START,
        end=START,
        generated_at=_AT,
        group=HOSTILE,
        platform=HOSTILE,
        metrics=[hostile, funnel, table, cards],
    )
    page = render(report)
    assert "<script" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; $\\frac{1}{2}$ 数据" in page
    assert not _outline(page).errors
    for svg in SVG_RE.findall(page):
        ET.fromstring(svg)


@settings(max_examples=12)
@given(
    names=st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=3, unique=True),
    chart=st.sampled_from(["line", "bar", "stacked"]),
    unit=st.sampled_from(["", "share", "members"]),
    data=st.data(),
)
def test_any_series_renders_to_a_well_formed_escaped_chart(
    names: list[str], chart: str, unit: str, data: st.DataObject
) -> None:
    n = data.draw(st.integers(1, 12))
    value = st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False))
    series = {k: data.draw(st.lists(value, min_size=n, max_size=n)) for k in names}
    x = tuple(f"2026-03-{d:02d}" for d in range(1, n + 1))
    m = MetricResult(name="m", title="m", kind="series", chart=chart, unit=unit, x=x, series=series)  # type: ignore[arg-type]
    page = render(Report(community="c", start=START, end=START, generated_at=_AT, metrics=[m]))
    assert not _outline(page).errors
    svgs = SVG_RE.findall(page)
    has_data = any(v for vs in series.values() for v in vs)
    assert len(svgs) == (1 if has_data else 0)
    for svg in svgs:
        ET.fromstring(svg)
    if not has_data:
        assert NO_DATA in page


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (None, "", "–"),
        (float("nan"), "", "–"),
        (1234, "", "1,234"),
        (1234.0, "", "1,234"),
        (12.5, "", "12.5"),
        (0.333333, "", "0.33"),
        (1234.56, "", "1,235"),
        (0.425, "share", "42.5%"),
        (1, "share", "100.0%"),
    ],
)
def test_format_value(value: float | None, unit: str, text: str) -> None:
    assert format_value(value, unit) == text


def test_tick_labels_shorten_dates_only() -> None:
    assert tick_label("2026-03-05") == "Mar 5"
    assert tick_label("2026-W10") == "2026-W10"
    assert tick_label("2026-13-45") == "2026-13-45"


def test_a_funnel_leaves_out_the_steps_its_campaign_does_not_count() -> None:
    m = MetricResult(
        name="campaign_funnels",
        title="Campaign funnels",
        kind="funnel",
        x=["reached", "responded", "signed up", "took part", "completed"],
        series={"checkin": [None, None, 80, 40, 10]},
    )
    page = render(Report(community="c", start=START, end=START, generated_at=_AT, metrics=[m]))
    (svg,) = SVG_RE.findall(page)
    label = re.search(r'aria-label="([^"]*)"', svg)
    assert label is not None
    assert "reached" not in label.group(1)
    assert "signed up 80" in label.group(1)
    assert "<td>50%</td>" in page  # took part ÷ signed up, in the data table
