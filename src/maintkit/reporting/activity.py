"""The client's activity report: the history's data (``history.report``) as JSON, HTML and PDF.

Why one record rendered three ways: the JSON twin and the HTML say the same because the template
only lays out the record (plus its charts, drawn by :mod:`maintkit.reporting.charts`). The HTML is
self-contained (inline CSS and SVG, no script, no web font), so it opens anywhere and Chromium
prints it to PDF without fetching anything.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2

from maintkit.history.report import Period, period_days
from maintkit.reporting.charts import bar_chart, line_chart

MIB = 1024 * 1024


def build(
    client: str, client_title: str, period: Period, sites: list[dict[str, Any]], now: datetime
) -> dict[str, Any]:
    """The report's record (the JSON twin)."""
    return {
        "format": 1,
        "client": client,
        "client_title": client_title,
        "period": period.label,
        "period_title": f"{period.start:%B %Y}",
        "from": period.start.isoformat(),
        "to": period.end.isoformat(),
        "generated": now.isoformat(),
        "sites": sites,
    }


def render_html(report: dict[str, Any], period: Period) -> str:
    """The self-contained HTML page of ``report``."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("maintkit.reporting", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    sites = [_with_charts(site, period) for site in report["sites"]]
    return env.get_template("report.html.j2").render(report={**report, "sites": sites})


def _with_charts(site: dict[str, Any], period: Period) -> dict[str, Any]:
    days = period_days(period)
    labels = [d.isoformat() for d in days]
    sizes = {d: 0.0 for d in labels}
    for item in site["backups"]["snapshots"]:
        day = item["taken"][:10]
        if day in sizes:
            sizes[day] = max(sizes[day], item["size"] / MIB)
    latency = {row["day"]: row["p95_ms"] for row in site["availability"]["daily_p95_ms"]}
    drills = [
        {
            **d,
            "rto_text": _duration(d["rto_seconds"]),
            "objective_text": _duration(d["rto_objective_seconds"]),
            "loss_text": _duration(d["data_loss_window_seconds"]),
        }
        for d in site["drills"]
    ]
    return {
        **site,
        "drills": drills,
        "size_chart": bar_chart(labels, list(sizes.values()), "MiB", "Backup size per day (MiB)"),
        "latency_chart": line_chart(
            labels, [latency.get(d) for d in labels], "ms", "Response time per day, 95th percentile (ms)"
        ),
    }


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def write(report: dict[str, Any], period: Period, out: Path) -> tuple[Path, Path]:
    """Write ``CLIENT-PERIOD.json`` and ``.html`` into ``out``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{report['client']}-{report['period']}"
    json_path, html_path = out / f"{stem}.json", out / f"{stem}.html"
    json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    html_path.write_text(render_html(report, period), encoding="utf-8")
    return json_path, html_path
