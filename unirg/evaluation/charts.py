"""Inline SVG charts for the HTML report: no plotting library, nothing fetched when the file opens."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

#: One colour per system (colour-blind-safe palette, Okabe and Ito).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
FONT = 'font-family="system-ui, sans-serif"'

Interval = Mapping[str, float | None]


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        top = step * 10**exponent
        if top >= value:
            return top
    return 10 ** (exponent + 1)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def bars(
    title: str, values: Mapping[str, Interval], systems: Sequence[str], higher_is_better: bool = True
) -> str:
    """One metric: a bar per system with its 95% interval as a whisker."""
    width, height, left, bottom, top = 220, 150, 34, 22, 24
    present = [v for v in values.values() if v.get("value") is not None]
    if not present:
        return ""
    peak = max(max(v["value"] or 0, v.get("high") or 0) for v in present)
    floor = min(min(v["value"] or 0, v.get("low") or 0) for v in present)
    low_edge = -_nice_max(-floor) if floor < 0 else 0.0
    high_edge = _nice_max(peak) if peak > 0 else 0.0
    span = (high_edge - low_edge) or 1.0
    plot_h = height - top - bottom

    def y(value: float) -> float:
        return top + plot_h * (high_edge - value) / span

    slot = (width - left - 8) / max(1, len(systems))
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" {FONT} font-size="10">',
        f"<title>{escape(title)}</title>",
        f'<text x="{width / 2}" y="12" text-anchor="middle" font-size="11" font-weight="600">{escape(title)}'
        f"{'' if higher_is_better else ' ↓'}</text>",
    ]
    for tick in (low_edge, (low_edge + high_edge) / 2, high_edge):
        parts.append(
            f'<line x1="{left}" x2="{width - 4}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#ddd"/>'
        )
        parts.append(
            f'<text x="{left - 3}" y="{y(tick) + 3:.1f}" text-anchor="end" fill="#555">{tick:.3g}</text>'
        )
    for index, system in enumerate(systems):
        interval = values.get(system)
        value = interval.get("value") if interval else None
        if not interval or value is None:
            continue
        x = left + index * slot + slot * 0.2
        bar_w = slot * 0.6
        y0, y1 = y(max(0.0, low_edge)), y(value)
        parts.append(
            f'<rect x="{x:.1f}" y="{min(y0, y1):.1f}" width="{bar_w:.1f}" height="{abs(y0 - y1):.1f}" fill="{colour(index)}" opacity="0.85">'
            f"<title>{escape(system)}: {_fmt(value)} [{_fmt(interval.get('low'))}, {_fmt(interval.get('high'))}]</title></rect>"
        )
        low, high = interval.get("low"), interval.get("high")
        if low is not None and high is not None:
            cx = x + bar_w / 2
            ylo, yhi = y(low), y(high)
            parts.append(
                f'<path d="M{cx:.1f} {ylo:.1f}V{yhi:.1f}M{cx - 5:.1f} {ylo:.1f}h10M{cx - 5:.1f} {yhi:.1f}h10" stroke="#222" stroke-width="1.2"/>'
            )
        parts.append(
            f'<text x="{x + bar_w / 2:.1f}" y="{height - 8}" text-anchor="middle" fill="#333">{escape(_short(system))}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _short(text: str, length: int = 14) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


def heatmap(
    rows: Sequence[str],
    columns: Sequence[str],
    values: Mapping[tuple[str, str], float | None],
    support: Mapping[str, int],
) -> str:
    """Per-observation F1 (rows) of each system (columns), white 0 to blue 1."""
    cell_w, cell_h, left, top = 92, 20, 250, 40
    width = left + cell_w * len(columns) + 10
    height = top + cell_h * len(rows) + 10
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" {FONT} font-size="11">'
    ]
    for j, column in enumerate(columns):
        parts.append(
            f'<text x="{left + cell_w * j + cell_w / 2}" y="{top - 8}" text-anchor="middle" font-weight="600">{escape(_short(column, 16))}</text>'
        )
    for i, row in enumerate(rows):
        y = top + cell_h * i
        parts.append(
            f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">{escape(row)} (n={support.get(row, 0)})</text>'
        )
        for j, column in enumerate(columns):
            value = values.get((row, column))
            fill = "#eee" if value is None else _blue(value)
            text_fill = "#fff" if value is not None and value > 0.55 else "#111"
            x = left + cell_w * j
            parts.append(
                f'<rect x="{x}" y="{y}" width="{cell_w - 2}" height="{cell_h - 2}" fill="{fill}"><title>{escape(row)} · {escape(column)}: F1 {_fmt(value)}</title></rect>'
                f'<text x="{x + cell_w / 2 - 1}" y="{y + 14}" text-anchor="middle" fill="{text_fill}">{_fmt(value, 2)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _blue(value: float) -> str:
    value = min(1.0, max(0.0, value))
    r, g, b = (int(255 + (target - 255) * value) for target in (8, 69, 148))
    return f"rgb({r},{g},{b})"


def forest(title: str, groups: Sequence[Mapping[str, Any]], metric: str, systems: Sequence[str]) -> str:
    """One breakdown: each group's value of ``metric`` with its 95% interval, one line per system."""
    row_h, left, right, top = 16 * max(1, len(systems)) + 8, 230, 70, 28
    width = 720
    height = top + row_h * len(groups) + 26
    points = [
        group["systems"][system]["metrics"][metric]
        for group in groups
        for system in systems
        if system in group["systems"]
    ]
    finite = [v for p in points for v in (p.get("low"), p.get("high"), p.get("value")) if v is not None]
    if not finite:
        return ""
    low, high = min(finite), max(finite)
    pad = (high - low) * 0.05 or 0.05
    low, high = low - pad, high + pad
    plot_w = width - left - right

    def x(value: float) -> float:
        return left + plot_w * (value - low) / (high - low)

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" {FONT} font-size="11">',
        f'<text x="4" y="14" font-weight="600">{escape(title)}</text>',
    ]
    for tick in (low + pad, (low + high) / 2, high - pad):
        parts.append(
            f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{top - 4}" y2="{height - 22}" stroke="#e3e3e3"/>'
        )
        parts.append(
            f'<text x="{x(tick):.1f}" y="{height - 8}" text-anchor="middle" fill="#555">{tick:.3g}</text>'
        )
    for i, group in enumerate(groups):
        y0 = top + row_h * i
        small = group.get("small")
        label = f"{group['label']} (n={group['n']}{', too small' if small else ''})"
        parts.append(
            f'<text x="{left - 8}" y="{y0 + row_h / 2 + 4:.1f}" text-anchor="end" fill="{"#999" if small else "#111"}">{escape(label)}</text>'
        )
        for j, system in enumerate(systems):
            entry = group["systems"].get(system)
            if not entry:
                continue
            interval = entry["metrics"][metric]
            if interval.get("value") is None:
                continue
            y = y0 + 10 + 16 * j
            opacity = "0.45" if small else "1"
            if interval.get("low") is not None and interval.get("high") is not None:
                parts.append(
                    f'<line x1="{x(interval["low"]):.1f}" x2="{x(interval["high"]):.1f}" y1="{y}" y2="{y}" stroke="{colour(j)}" stroke-width="2" opacity="{opacity}"/>'
                )
            parts.append(
                f'<circle cx="{x(interval["value"]):.1f}" cy="{y}" r="4" fill="{colour(j)}" opacity="{opacity}">'
                f"<title>{escape(system)} · {escape(str(group['label']))}: {_fmt(interval['value'])} [{_fmt(interval.get('low'))}, {_fmt(interval.get('high'))}]</title></circle>"
            )
            parts.append(
                f'<text x="{width - right + 6}" y="{y + 4}" fill="#444">{_fmt(interval["value"])}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def histogram(
    title: str, histograms: Mapping[str, Mapping[str, Sequence[float]]], systems: Sequence[str]
) -> str:
    """Score distribution of one metric: a step line per system (share of studies per bin)."""
    width, height, left, bottom, top = 340, 170, 38, 24, 22
    shares = {}
    for system in systems:
        data = histograms.get(system)
        if data:
            total = sum(data["counts"]) or 1
            shares[system] = ([c / total for c in data["counts"]], data["edges"])
    if not shares:
        return ""
    peak = _nice_max(max(max(s) for s, _ in shares.values()))
    plot_w, plot_h = width - left - 8, height - top - bottom
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" {FONT} font-size="10">',
        f'<text x="{width / 2}" y="13" text-anchor="middle" font-size="11" font-weight="600">{escape(title)}</text>',
    ]
    for tick in (0.0, 0.5, 1.0):
        tx = left + plot_w * tick
        parts.append(f'<text x="{tx:.1f}" y="{height - 8}" text-anchor="middle" fill="#555">{tick:g}</text>')
    parts.append(f'<text x="{left - 4}" y="{top + 4}" text-anchor="end" fill="#555">{peak:.0%}</text>')
    parts.append(
        f'<line x1="{left}" x2="{width - 8}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#999"/>'
    )
    for index, system in enumerate(systems):
        if system not in shares:
            continue
        values, edges = shares[system]
        path = [f"M{left:.1f} {top + plot_h:.1f}"]
        for value, start, end in zip(values, edges, edges[1:], strict=False):
            yv = top + plot_h * (1 - value / peak)
            path.append(f"L{left + plot_w * start:.1f} {yv:.1f}L{left + plot_w * end:.1f} {yv:.1f}")
        path.append(f"L{left + plot_w:.1f} {top + plot_h:.1f}")
        parts.append(
            f'<path d="{"".join(path)}" fill="none" stroke="{colour(index)}" stroke-width="1.6"><title>{escape(system)}</title></path>'
        )
    parts.append("</svg>")
    return "".join(parts)


def legend(systems: Sequence[str]) -> str:
    items = "".join(
        f'<span class="key"><span class="swatch" style="background:{colour(i)}"></span>{escape(s)}</span>'
        for i, s in enumerate(systems)
    )
    return f'<div class="legend">{items}</div>'
