""" "We saw it coming": warnings that name a number or a date, from a site's history.

Pure functions over plain series (``trend_warnings`` reads them from the database), each with a rule
that stays quiet on noise:

- **Response time** (smoke checks): this week's p95 against the previous four weeks'. It fires only
  when all of these hold, so one slow check, a quiet baseline or a handful of samples never do:
  at least :data:`MIN_WEEK` checks this week and :data:`MIN_BASELINE` in the four weeks before;
  this week's p95 is at least 1.5 times the baseline's p95 *and* 100 ms above it (a fast shop going
  from 20 to 35 ms is no news); and this week's **median** is above the baseline's p75 (the bulk of
  the answers moved, not a tail of outliers).
- **Backup size**: the newest snapshot against the one before it. Half or less is a data-loss signal
  (a table emptied, a folder gone); twice or more, a jump worth a look (a log or a dump left in the
  web root). Only snapshots of at least :data:`MIN_SIZE` bytes are compared.
- **Snapshot duration**: a least-squares line through the durations of the last 30 days' backup
  runs (at least :data:`MIN_RUNS`), projected forward: the date it reaches the nightly window's
  length; warned when that date is within :data:`HORIZON_DAYS` (or the last run did not fit).
- **Disk space** (read by each snapshot, per filesystem): a least-squares line through the last 30
  days' free bytes (at least :data:`MIN_RUNS` readings over at least :data:`MIN_SPAN_DAYS` days),
  projected to the day nothing is left; warned when that day is within :data:`HORIZON_DAYS`. The
  fall must be real, not noise: the slope's t statistic (slope over its standard error) must be at
  least :data:`MIN_T` — a disk that goes up and down by a few GB a night around a flat line never
  fires, whatever one unlucky pair of nights suggests.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

MIN_WEEK = 5
MIN_BASELINE = 10
MIN_SIZE = 1024
MIN_RUNS = 5
HORIZON_DAYS = 30
MIN_SPAN_DAYS = 3
MIN_T = 3.0


@dataclass(frozen=True)
class Trend:
    """One warning: ``kind`` (latency, backup-size, snapshot-duration), its message and numbers."""

    kind: str
    message: str
    value: float | None = None
    date: str | None = None

    def as_json(self) -> dict[str, object]:
        return {"kind": self.kind, "message": self.message, "value": self.value, "date": self.date}


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[index]


def latency_trend(samples: Sequence[tuple[datetime, float]], now: datetime) -> Trend | None:
    """Smoke latencies (time, ms): this week's p95 against the previous four weeks' (see the module)."""
    week_start, base_start = now - timedelta(days=7), now - timedelta(days=35)
    week = [ms for at, ms in samples if week_start <= at <= now]
    base = [ms for at, ms in samples if base_start <= at < week_start]
    if len(week) < MIN_WEEK or len(base) < MIN_BASELINE:
        return None
    p95_week, p95_base = _quantile(week, 0.95), _quantile(base, 0.95)
    if p95_week < 1.5 * p95_base or p95_week - p95_base < 100:
        return None
    if _quantile(week, 0.5) <= _quantile(base, 0.75):
        return None
    return Trend(
        "latency",
        f"response time is rising: p95 {p95_week:.0f} ms this week against {p95_base:.0f} ms "
        f"over the four weeks before ({p95_week / p95_base:.1f} times)",
        value=round(p95_week, 1),
    )


def size_trend(sizes: Sequence[tuple[datetime, int]]) -> Trend | None:
    """Snapshot sizes (time, bytes), oldest first: the newest against the one before it."""
    if len(sizes) < 2:
        return None
    (_, before), (at, newest) = sizes[-2], sizes[-1]
    if before < MIN_SIZE or newest < 0:
        return None
    ratio = newest / before
    day = at.date().isoformat()
    if ratio <= 0.5:
        return Trend(
            "backup-size",
            f"the backup of {day} is {ratio:.0%} of the one before ({_mib(newest)} against {_mib(before)}): "
            "check that no data was lost",
            value=round(ratio, 3),
            date=day,
        )
    if ratio >= 2:
        return Trend(
            "backup-size",
            f"the backup of {day} is {ratio:.1f} times the one before "
            f"({_mib(newest)} against {_mib(before)})",
            value=round(ratio, 3),
            date=day,
        )
    return None


def duration_trend(
    durations: Sequence[tuple[datetime, float]], window_seconds: float | None, now: datetime
) -> Trend | None:
    """Backup run durations (start, seconds): the date the line through them reaches the window."""
    if window_seconds is None:
        return None
    recent = [(at, s) for at, s in durations if at >= now - timedelta(days=30)]
    if len(recent) < MIN_RUNS:
        return None
    if recent[-1][1] > window_seconds:
        return Trend(
            "snapshot-duration",
            f"the last backup took {recent[-1][1] / 60:.0f} min, "
            f"longer than the {window_seconds / 60:.0f} min window",
            value=recent[-1][1],
            date=recent[-1][0].date().isoformat(),
        )
    origin = recent[0][0]
    xs = [(at - origin).total_seconds() / 86400 for at, _ in recent]
    ys = [s for _, s in recent]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        return None
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread  # s per day
    if slope <= 0:
        return None
    intercept = mean_y - slope * mean_x
    reach = origin + timedelta(days=(window_seconds - intercept) / slope)
    if reach - now > timedelta(days=HORIZON_DAYS):
        return None
    day = reach.date().isoformat()
    return Trend(
        "snapshot-duration",
        f"backups grow {slope:.0f} s longer a day: at this rate they no longer fit the "
        f"{window_seconds / 60:.0f} min window from {day}",
        value=round(slope, 1),
        date=day,
    )


def _line(points: Sequence[tuple[float, float]]) -> tuple[float, float, float] | None:
    """Least squares through (x, y): slope, intercept and the slope's t statistic (inf when exact)."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0 or n < 3:
        return None
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread
    intercept = mean_y - slope * mean_x
    residual = sum((y - intercept - slope * x) ** 2 for x, y in points)
    error = math.sqrt(residual / (n - 2) / spread)
    return slope, intercept, abs(slope) / error if error > 0 else math.inf


def disk_trend(
    readings: Sequence[tuple[datetime, int, int]], now: datetime, label: str = "the disk"
) -> Trend | None:
    """Free bytes of one filesystem (time, free, total), oldest first: the day it runs out."""
    recent = [(at, free, total) for at, free, total in readings if now - timedelta(days=30) <= at <= now]
    if len(recent) < MIN_RUNS:
        return None
    origin, (last_at, last_free, last_total) = recent[0][0], recent[-1]
    if (last_at - origin) < timedelta(days=MIN_SPAN_DAYS):
        return None
    fit = _line([((at - origin).total_seconds() / 86400, float(free)) for at, free, _ in recent])
    if fit is None:
        return None
    slope, _, t = fit
    if slope >= 0 or t < MIN_T:
        return None
    empty = last_at + timedelta(days=last_free / -slope)
    if empty - now > timedelta(days=HORIZON_DAYS):
        return None
    day = empty.date().isoformat()
    share = f", {last_free / last_total:.0%} of {_gib(last_total)}" if last_total else ""
    return Trend(
        "disk-space",
        f"{label} fills up: {_gib(last_free)} free{share}, {_gib(-slope)} less a day: "
        f"at this rate it is full on {day}",
        value=round(-slope),
        date=day,
    )


def _gib(size: float) -> str:
    if size >= 1024**3:
        return f"{size / 1024**3:.1f} GiB"
    return f"{size / 1024**2:.0f} MiB"


def _mib(size: float) -> str:
    return f"{size / 1024 / 1024:.1f} MiB"


#: one free-space reading as the readers give it: (site, env, host, mount, what, at, free, total)
DiskRow = tuple[str, str, str, "str | None", str, datetime, int, int]


def disk_series(rows: Iterable[DiskRow]) -> dict[tuple[str, str], dict[str, list[tuple[datetime, int, int]]]]:
    """Free space per site environment and filesystem (host and mount), oldest first as given, each
    series named as its warning names it: the files' and the database's readings of one filesystem
    are one series (one reading per snapshot, whoever asked). Shared by both history readers."""
    grouped: dict[tuple[str, str], dict[tuple[str, str], list[tuple[datetime, int, int, str]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for site, env, host, mount, what, at, free, total in rows:
        grouped[(site, env)][(host, mount or "?")].append((at, int(free), int(total or 0), what))
    out: dict[tuple[str, str], dict[str, list[tuple[datetime, int, int]]]] = {}
    for key, filesystems in grouped.items():
        named = {}
        for (host, mount), points in filesystems.items():
            whose = " and ".join(sorted({what for *_, what in points}))
            series = {at: (at, free, total) for at, free, total, _ in points}
            named[f"the disk of the {whose} on {host} ({mount})"] = list(series.values())
        out[key] = named
    return out
