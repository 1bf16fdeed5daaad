"""The series the trend rules need (:mod:`maintkit.history.trends`), read from the history.

Why apart from the rules: the rules are pure and unit-tested on made-up series; this module only
reads the last five weeks of one site environment (indexed by time) and hands them over.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from maintkit.history.mapping import as_utc
from maintkit.history.models import Run, SmokeCheck, Snapshot
from maintkit.history.trends import Trend, duration_trend, latency_trend, size_trend
from maintkit.model.portfolio import MaintenanceWindow

LOOKBACK = timedelta(days=35)


def trend_warnings(
    session: Session, site: str, env: str, now: datetime, window: MaintenanceWindow | None = None
) -> list[Trend]:
    """Every trend warning of one site environment at ``now``."""
    since = now - LOOKBACK
    latencies = [
        (as_utc(at), float(ms or 0))
        for at, ms in session.execute(
            select(SmokeCheck.at, SmokeCheck.latency_ms).where(
                SmokeCheck.site == site,
                SmokeCheck.env == env,
                SmokeCheck.at >= since,
                SmokeCheck.latency_ms.is_not(None),
            )
        )
    ]
    snapshots = list(
        session.execute(
            select(Snapshot.taken, Snapshot.size, Snapshot.run_id)
            .where(Snapshot.site == site, Snapshot.env == env, Snapshot.taken >= since)
            .order_by(Snapshot.taken)
        )
    )
    sizes = [(as_utc(taken), int(size or 0)) for taken, size, _ in snapshots]
    run_ids = {run_id for _, _, run_id in snapshots}
    durations = []
    if run_ids:
        for started, finished in session.execute(
            select(Run.started, Run.finished)
            .where(Run.id.in_(run_ids), Run.finished.is_not(None))
            .order_by(Run.started)
        ):
            if finished is not None:
                durations.append((as_utc(started), (as_utc(finished) - as_utc(started)).total_seconds()))
    found = [
        latency_trend(latencies, now),
        size_trend(sizes),
        duration_trend(durations, window_length(window), now),
    ]
    return [t for t in found if t is not None]


def window_length(window: MaintenanceWindow | None) -> float | None:
    """The nightly window's length in seconds (it may cross midnight), None without one."""
    if window is None:
        return None
    day = datetime(2000, 1, 1)
    start, end = datetime.combine(day, window.start), datetime.combine(day, window.end)
    if end <= start:
        end += timedelta(days=1)
    return (end - start).total_seconds()
