"""What ``maintkit fleet run`` shows: a live view on a terminal, a summary table, JSON lines.

Why one module: the live view, the summary and the JSON lines read the same per-site results
(:class:`~maintkit.fleet.process.SiteResult`, passed in as plain objects), so a site's status or
byte count never reads differently in two places.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any, Protocol

from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

#: statuses that end a site's run
FINAL = ("done", "failed", "invalid", "rollback failed", "locked", "timeout", "cancelled")
STYLES = {"done": "green", "running": "cyan", "pending": "dim", "locked": "yellow", "cancelled": "yellow"}


class ResultLike(Protocol):
    """What the view reads of a site's result (``maintkit.fleet.process.SiteResult``)."""

    key: str
    hosts: list[str]
    status: str
    exit_code: int | None
    run_id: str | None
    duration: float
    bytes: int
    error: str | None
    worker: str | None

    def to_dict(self) -> dict[str, Any]: ...


def size(count: float) -> str:
    """Bytes for people: ``1.4 GB``."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if count < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"  # pragma: no cover


def counts_line(results: Sequence[ResultLike], started: float) -> Text:
    """``12 sites: 7 done · 2 running · 1 failed · 2 pending · 31.4 MB moved · 42 s``."""
    counts = Counter(r.status for r in results)
    failed = sum(n for status, n in counts.items() if status not in ("done", "running", "pending"))
    text = Text(f"{len(results)} sites: ")
    text.append(f"{counts['done']} done", style="green")
    text.append(" · ")
    text.append(f"{counts['running']} running", style="cyan")
    text.append(" · ")
    text.append(f"{failed} failed", style="red" if failed else "")
    text.append(f" · {counts['pending']} pending · {size(sum(r.bytes for r in results))} moved")
    text.append(f" · {time.monotonic() - started:.0f} s")
    return text


def live_view(results: Sequence[ResultLike], started: float, running_since: dict[str, float]) -> Group:
    """The live view: the counts, then one line per running site (elapsed time, bytes so far)."""
    table = Table(show_header=False, show_edge=False, box=None, padding=(0, 1))
    now = time.monotonic()
    for result in results:
        if result.status == "running":
            elapsed = now - running_since.get(result.key, now)
            where = f" on {result.worker}" if result.worker else ""
            table.add_row(
                f"[cyan]▶[/] {escape(result.key)}{escape(where)}", f"{elapsed:.0f} s", size(result.bytes)
            )
    return Group(counts_line(results, started), table)


def summary_table(results: Sequence[ResultLike], only_problems: bool = False) -> Table:
    """One row per site: status, exit code, duration, bytes, run id (its journal), the error if any."""
    workers = any(r.worker for r in results)  # a fleet on Celery: which worker ran each site
    columns = [
        "site",
        "hosts",
        "status",
        "exit",
        "duration",
        "moved",
        "run",
        *(["worker"] if workers else []),
    ]
    table = Table(*columns, "error", show_edge=False)
    for r in results:
        if only_problems and r.status == "done":
            continue
        style = STYLES.get(r.status, "red")
        cells = [
            escape(r.key),
            str(len(r.hosts)),
            f"[{style}]{escape(r.status)}[/]",
            "" if r.exit_code is None else str(r.exit_code),
            f"{r.duration:.1f}s",
            size(r.bytes),
            escape(r.run_id or ""),
        ]
        table.add_row(*cells, *([escape(r.worker or "")] if workers else []), escape(r.error or ""))
    return table


def print_json_line(console: Console, result: ResultLike) -> None:
    """One JSON line for a finished site (``--output json``), written as soon as the site ends."""
    console.file.write(json.dumps(result.to_dict(), sort_keys=False) + "\n")
    console.file.flush()
