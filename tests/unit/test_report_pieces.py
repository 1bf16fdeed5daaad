"""The report's pure pieces: the month, percentiles, recommended actions, the SVG charts."""

from __future__ import annotations

from datetime import UTC, datetime
from xml.etree import ElementTree

import pytest

from maintkit.history.report import Period, percentile
from maintkit.reporting.charts import bar_chart, line_chart

SVG = "{http://www.w3.org/2000/svg}"


def test_a_period_is_a_calendar_month() -> None:
    period = Period.month("2026-12")
    assert period.start == datetime(2026, 12, 1, tzinfo=UTC) and period.end == datetime(
        2027, 1, 1, tzinfo=UTC
    )
    with pytest.raises(ValueError):
        Period.month("2026-13")


def test_nearest_rank_percentile() -> None:
    assert percentile([], 95) is None
    assert percentile([10.0], 95) == 10.0
    assert percentile([float(v) for v in range(1, 101)], 95) == 95.0
    assert percentile([1.0, 2.0, 3.0, 100.0], 50) == 2.0


def test_charts_are_well_formed_svg_with_escaped_text() -> None:
    bars = ElementTree.fromstring(bar_chart(["a", "b", "c"], [1.0, 0.0, 3.0], "MiB", "<sizes> & more"))
    assert bars.tag == f"{SVG}svg" and len(bars.findall(f"{SVG}rect")) == 3
    assert bars.find(f"{SVG}title").text == "<sizes> & more"  # escaped in the markup, intact once parsed
    heights = [float(r.get("height")) for r in bars.findall(f"{SVG}rect")]
    assert heights[2] > heights[0] > heights[1] == 0
    line = ElementTree.fromstring(
        line_chart(["1", "2", "3", "4"], [5.0, None, 6.0, 7.0], "ms", "t", limit=10)
    )
    assert len(line.findall(f"{SVG}polyline")) == 1 and len(line.findall(f"{SVG}circle")) == 1  # the gap
    assert line.find(f"{SVG}line[@class='limit']") is not None
    assert ElementTree.fromstring(line_chart([], [], "ms", "empty")).tag == f"{SVG}svg"
