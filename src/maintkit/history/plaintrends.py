"""The trends of the sites one run touched, read from the embedded SQLite history with ``sqlite3``.

Why not :mod:`.trendquery` (SQLAlchemy) after every run: the check after a run is two range
queries, and importing SQLAlchemy's ORM for them cost each run 0.3 CPU-seconds and 20 MB
(docs/performance.md, "Recording without SQLAlchemy"): a fleet of small sites pays it hundreds of
times a night. The rules stay :mod:`.trends`' (pure); only the reading is done here, for the run's
own sites (``status`` over every site keeps :mod:`.trendquery`). The same series as
:func:`maintkit.history.trendquery.trend_warnings` (without a window: no duration rule), which a
unit test checks on one database.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from maintkit.history.schema import HEAD
from maintkit.history.sqlitewriter import BUSY_SECONDS
from maintkit.history.trends import Trend, disk_series, disk_trend, latency_trend, size_trend

Key = tuple[str, str]  # (site, env)

#: how far back the series go: :data:`maintkit.history.trendquery.LOOKBACK` (a unit test keeps them equal)
LOOKBACK = timedelta(days=35)


def _stored(value: datetime) -> str:
    """A datetime as SQLite holds it (UTC wall time, as the writers store it)."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _read(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def updated_since(path: Path, site: str, env: str, since: datetime) -> bool:
    """Whether the history holds an update or a release of (site, env) from ``since`` on
    (:data:`maintkit.history.integrity.UpdatedSince`, as its SQLAlchemy twin reads it)."""
    connection = _open(path)
    if connection is None:
        return False
    try:
        for table in ("updates", "releases"):
            sql = f"SELECT 1 FROM {table} WHERE site = ? AND env = ? AND at >= ? LIMIT 1"  # noqa: S608
            if connection.execute(sql, (site, env, _stored(since))).fetchone() is not None:
                return True
        return False
    finally:
        connection.close()


def _open(path: Path) -> sqlite3.Connection | None:
    """A read-only connection to ``path``; None when it is not a history at the newest schema."""
    if not path.is_file():
        return None
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_SECONDS)
    try:
        found = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError:
        found = None
    if found is None or found[0] != HEAD:
        connection.close()
        return None
    return connection


def trend_warnings(path: Path, sites: list[str], env: str, now: datetime) -> dict[Key, list[Trend]] | None:
    """Each site's trend warnings at ``now``; None when the file is not a history at the newest schema."""
    connection = _open(path)
    if connection is None:
        return None
    try:
        since, until = _stored(now - LOOKBACK), _stored(now)
        marks = ", ".join("?" for _ in sites)
        latencies: dict[Key, list[tuple[datetime, float]]] = defaultdict(list)
        where = f"env = ? AND site IN ({marks})"  # only "?" marks are formatted into the queries
        latency_sql = f"SELECT site, at, latency_ms FROM smoke_checks WHERE {where} AND at >= ? AND at <= ?"  # noqa: S608
        for site, at, ms in connection.execute(latency_sql, [env, *sites, since, until]):
            if ms is not None:
                latencies[(site, env)].append((_read(at), float(ms)))
        sizes: dict[Key, list[tuple[datetime, int]]] = defaultdict(list)
        size_sql = f"SELECT site, taken, size FROM snapshots WHERE {where} AND taken >= ? AND taken <= ?"  # noqa: S608
        size_sql += " ORDER BY taken"
        for site, taken, size in connection.execute(size_sql, [env, *sites, since, until]):
            sizes[(site, env)].append((_read(taken), int(size or 0)))
        disks = _disks(connection, where, [env, *sites, since, until], env)
    finally:
        connection.close()
    out: dict[Key, list[Trend]] = {}
    for site in sites:
        key = (site, env)
        trends = [latency_trend(latencies.get(key, []), now), size_trend(sizes.get(key, []))]
        trends += [disk_trend(series, now, label) for label, series in disks.get(key, {}).items()]
        out[key] = [t for t in trends if t is not None]
    return out


def _disks(
    connection: sqlite3.Connection, where: str, params: list[str], env: str
) -> dict[Key, dict[str, list[tuple[datetime, int, int]]]]:
    """Free space per site and filesystem, named by :func:`.trends.disk_series` (as trendquery does)."""
    sql = (
        f"SELECT site, host, mount, what, at, free_bytes, total_bytes FROM disk_space WHERE {where} "  # noqa: S608
        "AND at >= ? AND at <= ? ORDER BY at"
    )
    rows = connection.execute(sql, params)
    return disk_series(
        (site, env, host, mount, what, _read(at), free, total)
        for site, host, mount, what, at, free, total in rows
    )
