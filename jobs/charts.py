"""Charts drawn on the server as inline SVG: no JavaScript, no CDN, works offline.

Pure functions from numbers to markup. Every mark carries its series and value in
`data-` attributes and a <title> (the browser's tooltip), so what a chart shows can
be read back by people and by tests alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Callable

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 640, 200
LEFT, RIGHT, TOP, BOTTOM = 56, 8, 10, 26
# Colour-blind-safe (Okabe-Ito), in order; statuses keep fixed colours across charts.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
STATUS_COLOURS = {"finished": "#009E73", "started": "#0072B2", "queued": "#E69F00", "failed": "#D55E00",
                  "canceled": "#999999"}


@dataclass(frozen=True)
class Series:
    name: str
    values: list[float]  # one per bucket
    colour: str


def colours_for(names: list[str]) -> dict[str, str]:
    return {name: STATUS_COLOURS.get(name) or PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def _nice_max(value: float) -> float:
    """A round top for the axis (1, 2, 2.5, 5 x 10^n) at or above the largest value."""
    if value <= 0:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(value))
    return next(step * magnitude for step in (1, 2, 2.5, 5, 10) if step * magnitude >= value * (1 - 1e-9))


def seconds_axis(largest: float) -> tuple[float, Callable[[float], str]]:
    """The top of a time axis at or above `largest` seconds, and the format of its ticks: one unit (s, min
    or h) for every tick, four even steps of a round number of that unit, the same decimals each."""
    unit, size = ("h", 3600.0) if largest >= 2 * 3600 else ("min", 60.0) if largest >= 120 else ("s", 1.0)
    step = _nice_max(largest / size / 4)
    decimals = max(0, -Decimal(repr(step)).normalize().as_tuple().exponent)
    return step * 4 * size, lambda seconds: f"{seconds / size:.{decimals}f} {unit}"


def _label_every(count: int) -> int:
    return max(1, round(count / 8))


def _frame(*, kind: str, title: str, buckets: list[datetime], top: float, fmt: Callable[[float], str],
           bucket_label: Callable[[datetime], str], body: str, legend: list[tuple[str, str]], total: float,
           tick_fmt: Callable[[float], str] | None = None) -> SafeString:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = [f'<svg class="sr-chart" data-chart="{escape(kind)}" data-total="{total:g}" role="img" '
             f'xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" '
             f'preserveAspectRatio="xMidYMid meet" style="max-width:{WIDTH}px;font:11px sans-serif">',
             f"<title>{escape(title)}</title>"]
    for i in range(5):  # horizontal grid and y labels
        value = top * i / 4
        y = TOP + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
                     f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" fill="#555">'
                     f"{escape((tick_fmt or fmt)(value))}</text>")
    step = plot_w / max(1, len(buckets))
    for index in range(0, len(buckets), _label_every(len(buckets))):
        x = LEFT + step * (index + 0.5)
        parts.append(f'<text x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="middle" fill="#555">'
                     f"{escape(bucket_label(buckets[index]))}</text>")
    parts.append(body)
    if total == 0:
        parts.append(f'<text class="empty" x="{LEFT + plot_w / 2}" y="{TOP + plot_h / 2}" text-anchor="middle" '
                     'fill="#888">no data in this period</text>')
    parts.append("</svg>")
    legend_html = "".join(
        format_html('<span class="sr-legend-item"><span style="background:{}"></span>{}</span>', colour, name)
        for name, colour in legend)
    return mark_safe("".join(parts) + f'<div class="sr-legend">{legend_html}</div>')


def _count_max(value: float) -> float:
    """For counts: a top that is a multiple of the 4 grid steps, so every tick is a whole number."""
    return float(max(4, math.ceil(value / 4) * 4)) if value <= 20 else _nice_max(value / 4) * 4


def stacked_bars(*, kind: str, title: str, buckets: list[datetime], series: list[Series],
                 fmt: Callable[[float], str], bucket_label: Callable[[datetime], str],
                 counts: bool = False) -> SafeString:
    """One bar per bucket, stacked by series (`counts`: whole numbers, so whole-number ticks)."""
    totals = [sum(s.values[i] for s in series) for i in range(len(buckets))]
    top = (_count_max if counts else _nice_max)(max(totals, default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(1, len(buckets))
    bar_w = max(1.0, step * 0.8)
    marks = []
    for i, bucket in enumerate(buckets):
        y = TOP + plot_h
        for s in series:
            value = s.values[i]
            if value <= 0:
                continue
            h = plot_h * value / top
            y -= h
            x = LEFT + step * i + (step - bar_w) / 2
            marks.append(f'<rect class="bar" data-series="{escape(s.name)}" data-value="{value:g}" '
                         f'x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{s.colour}">'
                         f"<title>{escape(bucket_label(bucket))} · {escape(s.name)}: {escape(fmt(value))}</title></rect>")
    return _frame(kind=kind, title=title, buckets=buckets, top=top, fmt=fmt, bucket_label=bucket_label,
                  body="".join(marks), legend=[(s.name, s.colour) for s in series], total=sum(totals))


def lines(*, kind: str, title: str, buckets: list[datetime], series: list[Series], fmt: Callable[[float], str],
          bucket_label: Callable[[datetime], str], present: list[bool], seconds: bool = False) -> SafeString:
    """One line per series over the buckets where `present` (a bucket without data is a gap, not a zero);
    `seconds`: the values are durations, on a time axis (seconds_axis)."""
    largest = max((v for s in series for v, p in zip(s.values, present) if p), default=0)
    top, tick_fmt = seconds_axis(largest) if seconds else (_nice_max(largest), None)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(1, len(buckets))
    marks = []
    for s in series:
        points = [(LEFT + step * (i + 0.5), TOP + plot_h - plot_h * v / top, v, buckets[i])
                  for i, (v, p) in enumerate(zip(s.values, present)) if p]
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in points)
            marks.append(f'<polyline points="{path}" fill="none" stroke="{s.colour}" stroke-width="1.5"/>')
        for x, y, v, bucket in points:
            marks.append(f'<circle class="point" data-series="{escape(s.name)}" data-value="{v:g}" cx="{x:.1f}" '
                         f'cy="{y:.1f}" r="2.5" fill="{s.colour}"><title>{escape(bucket_label(bucket))} · '
                         f"{escape(s.name)}: {escape(fmt(v))}</title></circle>")
    total = sum(1 for p in present if p)
    return _frame(kind=kind, title=title, buckets=buckets, top=top, fmt=fmt, bucket_label=bucket_label,
                  body="".join(marks), legend=[(s.name, s.colour) for s in series], total=total, tick_fmt=tick_fmt)


BAR_ROW, BAR_LABEL_WIDTH, BAR_VALUE_WIDTH = 24, 150, 70


def horizontal_bars(*, kind: str, title: str, rows: list[tuple[str, float]], fmt: Callable[[float], str],
                    colours: dict[str, str]) -> SafeString:
    """One bar per labelled row (a speaker), longest value the full width, the value written after it."""
    top = max((value for _, value in rows), default=0) or 1.0
    plot_w = WIDTH - BAR_LABEL_WIDTH - BAR_VALUE_WIDTH
    height = TOP + BAR_ROW * len(rows) + 4
    parts = [f'<svg class="sr-chart" data-chart="{escape(kind)}" data-total="{sum(v for _, v in rows):g}" '
             f'role="img" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="100%" '
             f'preserveAspectRatio="xMinYMin meet" style="max-width:{WIDTH}px;font:12px sans-serif">',
             f"<title>{escape(title)}</title>"]
    for i, (label, value) in enumerate(rows):
        y = TOP + BAR_ROW * i
        w = max(1.0, plot_w * value / top) if value > 0 else 0.0
        shown = label if len(label) <= 22 else label[:21] + "…"
        parts.append(
            f'<text x="{BAR_LABEL_WIDTH - 6}" y="{y + 15}" text-anchor="end" fill="#333">{escape(shown)}</text>'
            f'<rect class="bar" data-series="{escape(label)}" data-value="{value:g}" x="{BAR_LABEL_WIDTH}" y="{y + 3}" '
            f'width="{w:.1f}" height="{BAR_ROW - 6}" fill="{colours.get(label, PALETTE[0])}">'
            f"<title>{escape(label)}: {escape(fmt(value))}</title></rect>"
            f'<text x="{BAR_LABEL_WIDTH + w + 4:.1f}" y="{y + 15}" fill="#555">{escape(fmt(value))}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))
