"""Inline SVG charts rendered on the server: no JavaScript, readable without colour.

Each chart has a <title> and <desc> (announced through ``role="img"`` and ``aria-labelledby``);
the report page also shows the same numbers in a table for screen readers and copying.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

__all__ = ["Series", "bar_chart", "hbar_chart"]

_ids = itertools.count(1)


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float]
    css: str = "s1"  # a class in app.css: s1 dark blue, s2 orange, s3 teal (blue/orange is colour-blind safe)


def _nice_max(value: float) -> float:
    """The top of the y axis: four whole-number steps that cover ``value``."""
    if value <= 0:
        return 4.0
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000):
        if value <= step * 4:
            return float(step * 4)
    return float(value)


def _fmt(v: float) -> str:
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.1f}"


def bar_chart(
    labels: Sequence[str], series: Sequence[Series], *, title: str, width: int = 960, height: int = 220
) -> Markup:
    """Vertical grouped bars, one group per label (e.g. per day)."""
    uid = next(_ids)
    left, bottom, top = 40, 28, 12
    plot_w, plot_h = width - left - 8, height - bottom - top
    peak = _nice_max(max((v for s in series for v in s.values), default=0))
    n = max(1, len(labels))
    group_w = plot_w / n
    bar_w = max(1.0, (group_w * 0.8) / max(1, len(series)))
    parts = [
        f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="c{uid}t c{uid}d" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="c{uid}t">{escape(title)}</title>',
        f'<desc id="c{uid}d">{escape(_describe(labels, series))}</desc>',
    ]
    for i in range(5):  # grid lines and y labels
        y = top + plot_h - plot_h * i / 4
        parts.append(f'<line class="grid" x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(
            f'<text class="axis" x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{_fmt(peak * i / 4)}</text>'
        )
    every = max(1, -(-n // max(1, int(plot_w // 70))))  # at most one label per 70 px
    for gi, label in enumerate(labels):
        x0 = left + gi * group_w + group_w * 0.1
        for si, s in enumerate(series):
            v = s.values[gi] if gi < len(s.values) else 0
            h = plot_h * v / peak
            x = x0 + si * bar_w
            parts.append(
                f'<rect class="bar {s.css}" x="{x:.1f}" y="{top + plot_h - h:.1f}" '
                f'width="{bar_w:.1f}" height="{h:.1f}"><title>{escape(label)}: '
                f"{escape(s.name)} {_fmt(v)}</title></rect>"
            )
        if gi % every == 0:
            parts.append(
                f'<text class="axis" x="{left + gi * group_w + group_w / 2:.1f}" '
                f'y="{height - 10}" text-anchor="middle">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def hbar_chart(
    items: Sequence[tuple[str, float]], *, title: str, width: int = 400, css: str = "s1"
) -> Markup:
    """Horizontal bars with the value printed at the end: for categories (reasons, statuses)."""
    uid = next(_ids)
    row, label_w = 26, 150
    height = max(1, len(items)) * row + 8
    peak = max((v for _, v in items), default=0) or 1
    plot_w = width - label_w - 50
    parts = [
        f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="c{uid}t c{uid}d" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="c{uid}t">{escape(title)}</title>',
        f'<desc id="c{uid}d">{escape("; ".join(f"{k}: {_fmt(v)}" for k, v in items) or "no data")}</desc>',
    ]
    if not items:
        parts.append('<text class="axis" x="4" y="20">No data in this period</text>')
    for i, (label, value) in enumerate(items):
        y = 4 + i * row
        w = plot_w * value / peak
        short = label if len(label) <= 22 else label[:21] + "…"
        parts.append(
            f'<text class="axis" x="{label_w - 6}" y="{y + 16}" text-anchor="end">{escape(short)}</text>'
        )
        parts.append(
            f'<rect class="bar {css}" x="{label_w}" y="{y + 3}" width="{max(w, 1):.1f}" height="{row - 8}">'
            f"<title>{escape(label)}: {_fmt(value)}</title></rect>"
        )
        parts.append(f'<text class="value" x="{label_w + w + 6:.1f}" y="{y + 16}">{_fmt(value)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _describe(labels: Sequence[str], series: Sequence[Series]) -> str:
    totals = ", ".join(f"{s.name} total {_fmt(sum(s.values))}" for s in series)
    span = f"from {labels[0]} to {labels[-1]}" if labels else "no data"
    return f"{len(labels)} points {span}; {totals}."
