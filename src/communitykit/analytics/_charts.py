"""Charts for the report page: matplotlib figures written as inline SVG.

Every function here draws one chart and returns the ``<svg>`` element as text,
ready to be placed in an HTML page: text is drawn as paths (no font files), ids
are prefixed so many charts can share one page, the metadata is dropped, and
the output is the same for the same numbers (a fixed hash salt, no date).

No pyplot: figures are plain :class:`matplotlib.figure.Figure` objects drawn by
the SVG backend, so no GUI backend is ever touched and nothing is left open.
"""

from __future__ import annotations

import html
import io
import math
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date
from functools import cache
from typing import Any

__all__ = [
    "PALETTE",
    "bars_svg",
    "esc",
    "format_value",
    "funnel_svg",
    "heatmap_svg",
    "is_share",
    "series_svg",
    "tick_label",
]

PALETTE = (
    "#4C78A8",
    "#F58518",
    "#54A24B",
    "#E45756",
    "#72B7B2",
    "#B279A2",
    "#EECA3B",
    "#9D755D",
    "#FF9DA6",
    "#BAB0AC",
)
INK = "#202124"
MUTED = "#5f6368"
GRID = "#e8eaed"
SHARE_UNITS = frozenset({"share", "ratio", "fraction", "rate"})
_CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Droid Sans Fallback",
)
_WIDTH = 7.2  # inches, for a card half the page wide; the page scales the SVG to its card
_WIDE = 15.0  # inches, for a card the whole page wide: the text comes out the same size
_HEIGHT = 3.0

Values = Sequence[float | None]


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def esc(text: str) -> str:
    """Text made safe for HTML and SVG: escaped, control characters replaced."""
    return html.escape(_CONTROL.sub("\ufffd", text))


def is_share(unit: str) -> bool:
    """Whether values in ``unit`` are shares 0..1, shown as percentages."""
    return unit.strip().lower() in SHARE_UNITS


def format_value(value: float | int | None, unit: str = "") -> str:
    """A number as a person reads it: ``1,234``, ``12.5``, ``42.0%``; ``–`` for none."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if is_share(unit):
        return f"{value * 100:.1f}%"
    if float(value).is_integer():
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def _iso_date(text: str) -> date | None:
    if len(text) != 10:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def tick_label(text: str) -> str:
    """ISO dates as ``Mar 3``; anything else as it is."""
    day = _iso_date(text)
    if day is None:
        return text
    return f"{day.strftime('%b')} {day.day}"


@cache
def _font_family() -> tuple[str, ...]:
    from matplotlib import font_manager

    present = {f.name for f in font_manager.fontManager.ttflist}
    return ("DejaVu Sans", *(f for f in _CJK_FONTS if f in present))


def _rc() -> dict[str, Any]:
    from cycler import cycler

    return {
        "svg.fonttype": "path",
        "svg.hashsalt": "communitykit-report",
        "svg.image_inline": True,
        "text.parse_math": False,
        "text.usetex": False,
        "font.family": "sans-serif",
        "font.sans-serif": list(_font_family()),
        "font.size": 11,
        "axes.prop_cycle": cycler(color=list(PALETTE)),
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.spines.left": False,
        "axes.edgecolor": "#bdc1c6",
        "axes.labelcolor": MUTED,
        "axes.titlesize": 10,
        "axes.grid": True,
        "axes.grid.axis": "y",
        "axes.axisbelow": True,
        "grid.color": GRID,
        "grid.linewidth": 0.8,
        "xtick.color": MUTED,
        "ytick.color": MUTED,
        "xtick.major.size": 0,
        "ytick.major.size": 0,
        "xtick.major.pad": 5,
        "ytick.major.pad": 4,
        "legend.frameon": False,
        "legend.fontsize": 10,
        "figure.facecolor": "white",
        "axes.facecolor": "white",
        "path.simplify": True,
    }


@contextmanager
def _style() -> Iterator[None]:
    import matplotlib

    rc: Any = _rc()
    with matplotlib.rc_context(rc), warnings.catch_warnings():
        # Names from members may hold characters no installed font has: drawn as boxes.
        warnings.filterwarnings("ignore", message=r"Glyph .*missing from")
        # A very long label can leave no room for the axes: the chart is cramped, not wrong.
        warnings.filterwarnings("ignore", message=r"constrained_layout not applied")
        yield


_ID = re.compile(r'\bid="([^"]+)"')
_HREF = re.compile(r'href="#([^"]+)"')
_URL = re.compile(r"url\(#([^)]+)\)")
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)
# matplotlib writes each text as a comment; the text is in the aria-label and the data table.
_COMMENT = re.compile(r"<!--.*?-->\s*", re.S)


def _to_svg(fig: Any, uid: str, label: str, *, max_width: bool = False) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = _METADATA.sub("", text)
    text = _COMMENT.sub("", text)
    text = _ID.sub(lambda m: f'id="{uid}-{m.group(1)}"', text)
    text = _HREF.sub(lambda m: f'href="#{uid}-{m.group(1)}"', text)
    text = _URL.sub(lambda m: f"url(#{uid}-{m.group(1)})", text)
    width_in = fig.get_figwidth()
    style = f' style="max-width:{width_in * 96:.0f}px"' if max_width else ""
    head_end = text.index(">") + 1
    attrs = f' class="chart" role="img" aria-label="{esc(label)}"{style}'
    head = text[: head_end - 1] + attrs + ">"
    return head + f"\n<title>{esc(label)}</title>" + text[head_end:].rstrip() + "\n"


def _figure(width: float = _WIDTH, height: float = _HEIGHT, rows: int = 1, **kw: Any) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(rows, 1, squeeze=False, **kw)
    return fig, [a[0] for a in axes]


def _nums(values: Values) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]


def _set_x(ax: Any, x: Sequence[str], *, bars: bool) -> None:
    n = len(x)
    step = max(1, math.ceil(n / 8))
    ticks = list(range(0, n, step))
    ax.set_xticks(ticks, [tick_label(x[i]) for i in ticks])
    pad = 0.6 if bars else 0.3
    ax.set_xlim(-pad, n - 1 + pad)


def _set_y(ax: Any, unit: str) -> None:
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(nbins=5, integer=not is_share(unit), min_n_ticks=3))
    if is_share(unit):
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v * 100:.0f}%"))
    else:
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: format_value(v)))


def _legend(ax: Any, count: int, *, always: bool = False) -> None:
    if count > 1 or (always and count):
        ax.legend(
            loc="lower left",
            bbox_to_anchor=(0, 1.0),
            ncols=min(count, 6),
            handlelength=1.2,
            columnspacing=1.4,
            borderaxespad=0.2,
        )


def _scale_groups(series: Mapping[str, Values]) -> list[list[str]]:
    """Split series whose sizes differ tenfold or more into two panels (big ones on top)."""
    peaks = {
        k: max((abs(v) for v in vs if v is not None and math.isfinite(v)), default=0.0)
        for k, vs in series.items()
    }
    if len(peaks) < 2:
        return [list(series)]
    top = max(peaks.values())
    big = [k for k, p in peaks.items() if p * 10 > top]
    small = [k for k in series if k not in big]
    if not small or max(peaks[k] for k in small) == 0:
        return [list(series)]
    return [big, small]


def series_svg(
    x: Sequence[str],
    series: Mapping[str, Values],
    *,
    chart: str,
    unit: str,
    uid: str,
    label: str,
    wide: bool = False,
) -> str:
    """A line, bar or stacked-bar chart of named series over ``x``."""
    with _style():
        colours = {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(series)}
        groups = _scale_groups(series) if chart == "line" else [list(series)]
        height = _HEIGHT if len(groups) == 1 else _HEIGHT * 1.55
        fig, axes = _figure(
            width=_WIDE if wide else _WIDTH,
            height=height,
            rows=len(groups),
            sharex=True,
            gridspec_kw={"height_ratios": [1] * len(groups)},
        )
        xs = list(range(len(x)))
        for ax, names in zip(axes, groups, strict=True):
            if chart == "stacked":
                _draw_stacked(ax, xs, {k: series[k] for k in names}, colours)
            elif chart == "bar":
                _draw_bars(ax, xs, {k: series[k] for k in names}, colours)
            else:
                for k in names:
                    marker = "o" if len(x) <= 31 else None
                    ax.plot(
                        xs,
                        _nums(series[k]),
                        label=k,
                        color=colours[k],
                        linewidth=2,
                        marker=marker,
                        markersize=3,
                    )
                if is_share(unit):
                    ax.set_ylim(bottom=0)
            _set_y(ax, unit)
            _legend(ax, len(names), always=len(groups) > 1)
        _set_x(axes[-1], x, bars=chart != "line")
        if chart != "line":
            axes[-1].axhline(0, color="#9aa0a6", linewidth=0.8)
        return _to_svg(fig, uid, label)


def _draw_bars(
    ax: Any, xs: list[int], series: Mapping[str, Values], colours: dict[str, str]
) -> None:
    k = len(series)
    width = 0.8 / max(k, 1)
    for i, (name, values) in enumerate(series.items()):
        offset = (i - (k - 1) / 2) * width
        ax.bar(
            [x + offset for x in xs],
            [0.0 if v is None else v for v in values],
            width=width * 0.92,
            label=name,
            color=colours[name],
        )


def _draw_stacked(
    ax: Any, xs: list[int], series: Mapping[str, Values], colours: dict[str, str]
) -> None:
    up = [0.0] * len(xs)
    down = [0.0] * len(xs)
    for name, values in series.items():
        heights = [0.0 if v is None else float(v) for v in values]
        bottoms = [d if h < 0 else u for h, u, d in zip(heights, up, down, strict=True)]
        ax.bar(xs, heights, bottom=bottoms, width=0.78, label=name, color=colours[name])
        up = [u + max(h, 0.0) for u, h in zip(up, heights, strict=True)]
        down = [d + min(h, 0.0) for d, h in zip(down, heights, strict=True)]


def bars_svg(categories: Sequence[str], values: Values, *, unit: str, uid: str, label: str) -> str:
    """Horizontal bars, one per category, each labelled with its value (a single day's mix)."""
    with _style():
        n = len(categories)
        fig, (ax,) = _figure(height=0.9 + 0.36 * n)
        nums = [0.0 if v is None else float(v) for v in values]
        ys = list(range(n))
        colours = [PALETTE[i % len(PALETTE)] for i in ys]
        ax.barh(ys, nums, color=colours, height=0.68)
        ax.set_yticks(ys, list(categories))
        ax.invert_yaxis()
        ax.grid(False)
        ax.grid(True, axis="x")
        ax.spines["left"].set_visible(True)
        total = sum(nums)
        top = max([*nums, 0.0]) or 1.0
        low = min([*nums, 0.0])
        for y, v in zip(ys, nums, strict=True):
            share = ""
            if total > 0 and low == 0 and not is_share(unit):
                share = f"  ({v / total * 100:.0f}%)"
            ax.text(max(v, 0.0) + top * 0.01, y, format_value(v, unit) + share, va="center")
        ax.set_xlim(low * 1.1, top * 1.22)
        ax.xaxis.set_major_formatter(_formatter(unit))
        return _to_svg(fig, uid, label)


def _formatter(unit: str) -> Any:
    from matplotlib.ticker import FuncFormatter

    if is_share(unit):
        return FuncFormatter(lambda v, _pos: f"{v * 100:.0f}%")
    return FuncFormatter(lambda v, _pos: format_value(v))


def funnel_svg(steps: Sequence[str], values: Values, *, uid: str, label: str, colour: str) -> str:
    """One funnel: a bar per step, top to bottom, with the share kept from step to step.

    Steps without a value (``None``: the campaign does not count that step) are
    left out, so the shares compare steps that were counted."""
    kept = [(step, v) for step, v in zip(steps, values, strict=True) if v is not None]
    steps, values = [step for step, _ in kept], [v for _, v in kept]
    with _style():
        n = len(steps)
        fig, (ax,) = _figure(height=0.7 + 0.42 * n)
        nums = [0.0 if v is None else max(float(v), 0.0) for v in values]
        top = max(nums, default=0.0) or 1.0
        ys = list(range(n))
        # Centred bars: the funnel's shape, widest step on top.
        lefts = [(top - v) / 2 for v in nums]
        ax.barh(ys, nums, left=lefts, color=colour, height=0.72)
        ax.barh(ys, [top] * n, color="#f1f3f4", height=0.72, zorder=0)
        ax.set_yticks(ys, list(steps))
        ax.invert_yaxis()
        ax.set_xticks([])
        ax.grid(False)
        ax.spines["bottom"].set_visible(False)
        ax.set_xlim(0, top * 1.34)
        for i, v in enumerate(nums):
            text = format_value(v)
            if i > 0:
                prev = nums[i - 1]
                text += f"   {v / prev * 100:.0f}% of previous" if prev else ""
            ax.text(top * 1.02, i, text, va="center", color=INK)
        return _to_svg(fig, uid, label)


def heatmap_svg(
    rows: Sequence[str],
    columns: Sequence[str],
    values: Sequence[Values],
    *,
    unit: str,
    uid: str,
    label: str,
) -> str:
    """A heat map with each cell labelled (a retention cohort table)."""
    import numpy as np
    from matplotlib.colors import LinearSegmentedColormap

    with _style():
        n_rows, n_cols = len(rows), len(columns)
        raw = np.array([_nums(r) for r in values], dtype=float)
        missing = ~np.isfinite(raw)
        data = np.ma.masked_array(raw, mask=missing)
        share = is_share(unit)
        finite = raw[~missing]
        vmax = 1.0 if share else float(finite.max()) if finite.size else 1.0
        vmax = vmax or 1.0
        cmap = LinearSegmentedColormap.from_list(
            "ck", ["#f7fbff", "#9ecae1", "#2b6aa6", "#08306b"]
        ).with_extremes(bad="white")
        width = min(_WIDTH * 1.4, 1.6 + 0.62 * n_cols)
        fig, (ax,) = _figure(width=width, height=0.9 + 0.3 * n_rows)
        ax.pcolormesh(data, cmap=cmap, vmin=0.0, vmax=vmax, edgecolors="white", linewidth=1.2)
        ax.set_xlim(0, n_cols)
        ax.set_ylim(n_rows, 0)
        ax.grid(False)
        for side in ("top", "right", "bottom", "left"):
            ax.spines[side].set_visible(False)
        ax.xaxis.tick_top()
        ax.set_xticks([c + 0.5 for c in range(n_cols)], [tick_label(c) for c in columns])
        ax.set_yticks([r + 0.5 for r in range(n_rows)], [tick_label(r) for r in rows])
        small = n_cols > 14
        if n_cols > 24:  # too narrow for a label: the numbers are in the data table
            n_rows = 0
        for r in range(n_rows):
            for c in range(n_cols):
                if missing[r, c]:
                    continue
                v = float(raw[r, c])
                text = f"{v * 100:.0f}%" if share else format_value(v)
                ax.text(
                    c + 0.5,
                    r + 0.5,
                    text,
                    ha="center",
                    va="center",
                    fontsize=7 if small else 8.5,
                    color="white" if v / vmax > 0.5 else INK,
                )
        return _to_svg(fig, uid, label, max_width=True)
