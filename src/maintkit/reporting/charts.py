"""Small inline SVG charts for the activity report: bars (backup sizes) and a line (response time).

Why our own and not a charting library: the report must be one self-contained file that renders
the same in a browser, in Chromium's PDF and in an e-mail client, without JavaScript; two chart
kinds of a few dozen points are a page of arithmetic. Every text is XML-escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT = 640, 200
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 14, 30


def bar_chart(labels: Sequence[str], values: Sequence[float], unit: str, title: str) -> str:
    """Vertical bars, one per label; ``unit`` after the axis maximum (``MiB``)."""
    return _frame(title, labels, values, unit, _bars(values))


def line_chart(
    labels: Sequence[str], values: Sequence[float | None], unit: str, title: str, limit: float | None = None
) -> str:
    """A polyline through the values (gaps where None); ``limit`` a dashed horizontal line."""
    known = [v for v in values if v is not None]
    top = max([*known, limit or 0, 1.0])
    body = _line(values, top)
    if limit is not None:
        y = _y(limit, top)
        body += f'<line class="limit" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
    return _frame(title, labels, known, unit, body, top)


def _plot_width() -> float:
    return WIDTH - LEFT - RIGHT


def _plot_height() -> float:
    return HEIGHT - TOP - BOTTOM


def _y(value: float, top: float) -> float:
    return TOP + _plot_height() * (1 - value / top)


def _bars(values: Sequence[float]) -> str:
    if not values:
        return ""
    top = max([*values, 1.0])
    step = _plot_width() / len(values)
    width = max(1.0, step * 0.7)
    parts = []
    for index, value in enumerate(values):
        x = LEFT + index * step + (step - width) / 2
        y = _y(value, top)
        height = TOP + _plot_height() - y
        parts.append(f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height:.1f}"/>')
    return "".join(parts)


def _line(values: Sequence[float | None], top: float) -> str:
    if not values:
        return ""
    step = _plot_width() / max(1, len(values) - 1) if len(values) > 1 else 0
    segments: list[list[str]] = [[]]
    for index, value in enumerate(values):
        if value is None:
            segments.append([])
            continue
        segments[-1].append(f"{LEFT + index * step:.1f},{_y(value, top):.1f}")
    parts = []
    for points in segments:
        if len(points) == 1:
            x, y = points[0].split(",")
            parts.append(f'<circle class="point" cx="{x}" cy="{y}" r="3"/>')
        elif points:
            parts.append(f'<polyline class="line" points="{" ".join(points)}"/>')
    return "".join(parts)


def _frame(
    title: str, labels: Sequence[str], values: Sequence[float], unit: str, body: str, top: float | None = None
) -> str:
    top = top if top is not None else max([*values, 1.0])
    first, last = (labels[0], labels[-1]) if labels else ("", "")
    bottom = TOP + _plot_height()
    return (
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="100%" preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>"
        f'<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{bottom}"/>'
        f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{bottom}" y2="{bottom}"/>'
        f'<text class="tick" x="{LEFT - 6}" y="{TOP + 4}" text-anchor="end">{_number(top)}</text>'
        f'<text class="tick" x="{LEFT - 6}" y="{bottom}" text-anchor="end">0</text>'
        f'<text class="tick" x="{LEFT - 6}" y="{TOP + 16}" text-anchor="end">{escape(unit)}</text>'
        f'<text class="tick" x="{LEFT}" y="{HEIGHT - 8}">{escape(first)}</text>'
        f'<text class="tick" x="{WIDTH - RIGHT}" y="{HEIGHT - 8}" text-anchor="end">{escape(last)}</text>'
        f"{body}</svg>"
    )


def _number(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"
