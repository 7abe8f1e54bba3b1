"""Static charts as inline SVG (no script, no network): histograms, a log-log curve, a lineage graph."""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

import numpy as np

W, H, PAD_L, PAD_B, PAD_T, PAD_R = 520, 220, 56, 34, 14, 12
_AXIS = 'stroke="#888" stroke-width="1"'
_TEXT = 'font-size="11" fill="#444"'


def _frame(body: str, title: str, x_label: str, y_label: str) -> str:
    return (f'<svg class="chart" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
            f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
            f'<line x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}" {_AXIS}/>'
            f'<line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{H - PAD_B}" {_AXIS}/>{body}'
            f'<text x="{(W + PAD_L) / 2}" y="{H - 4}" text-anchor="middle" {_TEXT}>{escape(x_label)}</text>'
            f'<text x="12" y="{(H - PAD_B + PAD_T) / 2}" text-anchor="middle" {_TEXT} '
            f'transform="rotate(-90 12 {(H - PAD_B + PAD_T) / 2})">{escape(y_label)}</text></svg>')


def _nice(value: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.3g}"


def histogram(values: Sequence[float], title: str, x_label: str, bins: int = 30,
              fmt: Callable[[float], str] = _nice) -> str:
    """Bars of how many values fall in each of ``bins`` equal bins."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return f'<p class="empty">{escape(title)}: no data</p>'
    lo, hi = float(data.min()), float(data.max())
    if hi == lo:
        hi = lo + 1
    counts, edges = np.histogram(data, bins=bins, range=(lo, hi))
    top = max(int(counts.max()), 1)
    span_w, span_h = W - PAD_L - PAD_R, H - PAD_B - PAD_T
    bar_w = span_w / bins
    bars = []
    for i, c in enumerate(counts.tolist()):
        h = span_h * c / top
        bars.append(f'<rect x="{PAD_L + i * bar_w + 1:.1f}" y="{H - PAD_B - h:.1f}" width="{max(bar_w - 2, 1):.1f}" '
                    f'height="{h:.1f}" fill="#4c78a8"><title>{fmt(edges[i])}–{fmt(edges[i + 1])}: {c}</title></rect>')
    ticks = (f'<text x="{PAD_L}" y="{H - PAD_B + 14}" {_TEXT}>{fmt(lo)}</text>'
             f'<text x="{W - PAD_R}" y="{H - PAD_B + 14}" text-anchor="end" {_TEXT}>{fmt(hi)}</text>'
             f'<text x="{PAD_L - 4}" y="{PAD_T + 8}" text-anchor="end" {_TEXT}>{top}</text>')
    return _frame("".join(bars) + ticks, title, x_label, "count")


def loglog_curve(counts: Sequence[int], title: str, points: int = 400) -> str:
    """Sorted class sizes (largest first) against rank, both on log axes: the long tail at a glance."""
    data = np.sort(np.asarray([c for c in counts if c > 0], dtype=np.float64))[::-1]
    if data.size == 0:
        return f'<p class="empty">{escape(title)}: no data</p>'
    n = data.size
    ranks = np.unique(np.round(np.logspace(0, math.log10(n), num=min(points, n))).astype(np.int64))
    x_max, y_lo, y_hi = math.log10(max(n, 2)), math.log10(data[-1]), math.log10(data[0])
    y_span = max(y_hi - y_lo, 1e-9)
    span_w, span_h = W - PAD_L - PAD_R, H - PAD_B - PAD_T

    def xy(rank: int, value: float) -> str:
        x = PAD_L + span_w * math.log10(rank) / x_max
        y = H - PAD_B - span_h * (math.log10(value) - y_lo) / y_span
        return f"{x:.1f},{y:.1f}"

    line = " ".join(xy(int(r), data[int(r) - 1]) for r in ranks)
    ticks = (f'<text x="{PAD_L}" y="{H - PAD_B + 14}" {_TEXT}>1</text>'
             f'<text x="{W - PAD_R}" y="{H - PAD_B + 14}" text-anchor="end" {_TEXT}>{n:,}</text>'
             f'<text x="{PAD_L - 4}" y="{PAD_T + 8}" text-anchor="end" {_TEXT}>{_nice(data[0])}</text>'
             f'<text x="{PAD_L - 4}" y="{H - PAD_B}" text-anchor="end" {_TEXT}>{_nice(data[-1])}</text>')
    body = f'<polyline points="{line}" fill="none" stroke="#e45756" stroke-width="2"/>'
    return _frame(body + ticks, title, "class rank (log)", "images (log)")


def lineage_graph(steps: Sequence[tuple[str, str]]) -> str:
    """Versions as boxes left to right, each arrow labelled with what the step removed.
    ``steps``: ``(version label, what changed to reach it)``; the first one's change is ignored."""
    if not steps:
        return ""
    box_w, box_h, gap = 150, 44, 70
    width = len(steps) * box_w + (len(steps) - 1) * gap + 20
    parts = ['<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" markerHeight="8" '
             'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#666"/></marker></defs>']
    for i, (label, change) in enumerate(steps):
        x = 10 + i * (box_w + gap)
        parts.append(f'<rect x="{x}" y="30" width="{box_w}" height="{box_h}" rx="6" fill="#eef3fb" stroke="#4c78a8"/>'
                     f'<text x="{x + box_w / 2}" y="57" text-anchor="middle" font-size="12">{escape(label[:24])}'
                     f'</text>')
        if i:
            x0 = x - gap
            parts.append(f'<line x1="{x0 + 2}" y1="52" x2="{x - 2}" y2="52" stroke="#666" marker-end="url(#arrow)"/>'
                         f'<text x="{x0 + gap / 2}" y="22" text-anchor="middle" {_TEXT}>{escape(change[:28])}'
                         f'<title>{escape(change)}</title></text>')
    return (f'<svg class="lineage" viewBox="0 0 {width} 90" width="{width}" height="90" role="img" '
            f'aria-label="version lineage">{"".join(parts)}</svg>')


__all__ = ["histogram", "lineage_graph", "loglog_curve"]
