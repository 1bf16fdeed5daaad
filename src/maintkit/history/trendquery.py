"""The series the trend rules need (:mod:`maintkit.history.trends`), read from the history.

Why apart from the rules: the rules are pure and unit-tested on made-up series; this module only
reads the last five weeks and hands them over. Why one query per kind of series for all the sites
at once: ``status`` over 500 sites paid 0.4 s for a query per site and kind; three range queries on
the ``(env, time)`` indexes cost about what one site does (benchmarks/status_history.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from maintkit.history.mapping import as_utc
from maintkit.history.models import DiskSpace, Run, SmokeCheck, Snapshot
from maintkit.history.trends import Trend, disk_series, disk_trend, duration_trend, latency_trend, size_trend
from maintkit.model.portfolio import MaintenanceWindow

LOOKBACK = timedelta(days=35)
Key = tuple[str, str]  # (site, env)


def trend_warnings(
    session: Session, site: str, env: str, now: datetime, window: MaintenanceWindow | None = None
) -> list[Trend]:
    """Every trend warning of one site environment at ``now``."""
    return trend_warnings_of(session, {(site, env): window}, now)[(site, env)]


def trend_warnings_of(
    session: Session, windows: dict[Key, MaintenanceWindow | None], now: datetime
) -> dict[Key, list[Trend]]:
    """Every trend warning of each site environment (its nightly window, None: no duration rule)."""
    since = now - LOOKBACK
    envs = sorted({env for _, env in windows})
    latencies: dict[Key, list[tuple[datetime, float]]] = defaultdict(list)
    for site, env, at, ms in session.execute(
        select(SmokeCheck.site, SmokeCheck.env, SmokeCheck.at, SmokeCheck.latency_ms).where(
            SmokeCheck.env.in_(envs), SmokeCheck.at >= since, SmokeCheck.at <= now
        )
    ):
        if ms is not None and (site, env) in windows:
            latencies[(site, env)].append((as_utc(at), float(ms)))
    sizes: dict[Key, list[tuple[datetime, int]]] = defaultdict(list)
    run_keys: dict[str, Key] = {}
    for site, env, taken, size, run_id in session.execute(
        select(Snapshot.site, Snapshot.env, Snapshot.taken, Snapshot.size, Snapshot.run_id)
        .where(Snapshot.env.in_(envs), Snapshot.taken >= since, Snapshot.taken <= now)
        .order_by(Snapshot.taken)
    ):
        if (site, env) in windows:
            sizes[(site, env)].append((as_utc(taken), int(size or 0)))
            run_keys[run_id] = (site, env)
    durations = _durations(session, run_keys, since) if any(windows.values()) else {}
    disks = _disks(session, windows, envs, since, now)
    found: dict[Key, list[Trend]] = {}
    for key, window in windows.items():
        trends = [
            latency_trend(latencies.get(key, []), now),
            size_trend(sizes.get(key, [])),
            duration_trend(durations.get(key, []), window_length(window), now),
        ]
        trends += [disk_trend(series, now, label) for label, series in disks.get(key, {}).items()]
        found[key] = [t for t in trends if t is not None]
    return found


def _disks(
    session: Session, windows: Mapping[Key, object], envs: list[str], since: datetime, now: datetime
) -> dict[Key, dict[str, list[tuple[datetime, int, int]]]]:
    """Free space per site environment and filesystem, named by :func:`.trends.disk_series`."""
    query = (
        select(
            DiskSpace.site,
            DiskSpace.env,
            DiskSpace.host,
            DiskSpace.mount,
            DiskSpace.what,
            DiskSpace.at,
            DiskSpace.free_bytes,
            DiskSpace.total_bytes,
        )
        .where(DiskSpace.env.in_(envs), DiskSpace.at >= since, DiskSpace.at <= now)
        .order_by(DiskSpace.at)
    )
    rows = (
        (site, env, host, mount, what, as_utc(at), free, total)
        for site, env, host, mount, what, at, free, total in session.execute(query)
        if (site, env) in windows
    )
    return disk_series(rows)


def _durations(
    session: Session, run_keys: dict[str, Key], since: datetime
) -> dict[Key, list[tuple[datetime, float]]]:
    """Backup run durations (start, seconds) per site environment, oldest first."""
    out: dict[Key, list[tuple[datetime, float]]] = defaultdict(list)
    rows: Iterable[tuple[str, datetime, datetime | None]] = session.execute(
        select(Run.id, Run.started, Run.finished)
        .where(Run.started >= since - timedelta(days=1))
        .order_by(Run.started)
    ).tuples()
    for run_id, started, finished in rows:
        key = run_keys.get(run_id)
        if key is not None and finished is not None:
            out[key].append((as_utc(started), (as_utc(finished) - as_utc(started)).total_seconds()))
    return out


def window_length(window: MaintenanceWindow | None) -> float | None:
    """The nightly window's length in seconds (it may cross midnight), None without one."""
    if window is None:
        return None
    day = datetime(2000, 1, 1)
    start, end = datetime.combine(day, window.start), datetime.combine(day, window.end)
    if end <= start:
        end += timedelta(days=1)
    return (end - start).total_seconds()
