"""What a client's activity report says about one period, read from the history: plain data.

Why here, as data, and not in the HTML template: the report exists twice (HTML/PDF for the shop
owner, JSON for tools) and both must say the same; the template only lays this record out. The
numbers are computed once here (availability, p95, sizes), the wording of the recommended actions
too, so that the JSON twin carries them.

Availability is the share of smoke checks of the period that passed (each check is one sample:
maintkit has no probe of its own between runs, so the figure says "of the times we looked").
"""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from maintkit.history.integrity import findings
from maintkit.history.mapping import as_utc
from maintkit.history.models import (
    AuditFinding,
    Drill,
    Rollback,
    Run,
    SmokeCheck,
    Snapshot,
    Update,
    Verification,
)
from maintkit.history.trendquery import trend_warnings
from maintkit.model.portfolio import MaintenanceWindow

#: the availability a site is measured against when the portfolio sets none
DEFAULT_SLA = 99.9


@dataclass(frozen=True)
class Period:
    """A calendar month, ``start`` included, ``end`` excluded, in UTC."""

    label: str
    start: datetime
    end: datetime

    @classmethod
    def month(cls, text: str) -> Period:
        """``2026-11`` -> November 2026. Raise ValueError for anything else."""
        first = datetime.strptime(text, "%Y-%m").replace(tzinfo=UTC)
        following = (first + timedelta(days=32)).replace(day=1)
        return cls(text, first, following)


@dataclass(frozen=True)
class SiteRef:
    """One site environment of the report: how the portfolio and the history name it."""

    site: str  # the site's name in the history (its name in the inventory)
    env: str
    title: str  # how the report shows it
    rto_minutes: float | None = None
    rpo_hours: float | None = None
    window: MaintenanceWindow | None = None
    availability_percent: float | None = None  # the SLA target; DEFAULT_SLA when the portfolio sets none


def site_report(
    session: Session, ref: SiteRef, period: Period, now: datetime, integrity_base: Path | None = None
) -> dict[str, Any]:
    """The report's data of one site environment over ``period`` (``integrity_base``: where the
    integrity watch keeps its lists, beside the journals)."""
    key = (ref.site, ref.env)
    snapshots = _rows(session, Snapshot, Snapshot.taken, key, period)
    verifications = _rows(session, Verification, Verification.checked, key, period)
    drills = _rows(session, Drill, Drill.finished, key, period)
    updates = _rows(session, Update, Update.at, key, period)
    advisories = _rows(session, AuditFinding, AuditFinding.at, key, period)
    smoke = _rows(session, SmokeCheck, SmokeCheck.at, key, period)
    rollbacks = _rows(session, Rollback, Rollback.started, key, period)
    runs = _runs(session, ref, period)
    known = {r.id for r in runs}
    referenced = {row.run_id for rows in (snapshots, verifications, drills, updates, smoke) for row in rows}
    # a drill runs in its own environment (``--into``), yet it is this site's: its run belongs here
    runs += [run for rid in sorted(referenced - known) if (run := session.get(Run, rid)) is not None]
    runs.sort(key=lambda r: as_utc(r.started))
    verified = {v.snapshot_id for v in verifications if v.ok}
    data = {
        "site": ref.title,
        "site_name": ref.site,
        "env": ref.env,
        "backups": {
            "taken": len(snapshots),
            "verified": sum(1 for s in snapshots if s.snapshot_id in verified),
            "failed_verifications": sum(1 for v in verifications if not v.ok),
            "where": sorted({t for s in snapshots for t in (s.targets or {})}),
            "total_bytes": sum(s.size or 0 for s in snapshots),
            "snapshots": [
                {
                    "id": s.snapshot_id,
                    "taken": _iso(s.taken),
                    "size": s.size,
                    "verified": s.snapshot_id in verified,
                    "targets": sorted(s.targets or {}),
                    "run_id": s.run_id,
                }
                for s in snapshots
            ],
        },
        "drills": [
            {
                "finished": _iso(d.finished),
                "rto_seconds": d.rto_seconds,
                "rto_objective_seconds": d.rto_objective_seconds
                or (ref.rto_minutes * 60 if ref.rto_minutes else None),
                "data_loss_window_seconds": d.data_loss_window_seconds,
                "verdict": "passed" if d.passed else "failed",
                "snapshot_id": d.snapshot_id,
                "run_id": d.run_id,
            }
            for d in drills
        ],
        "updates": [
            {
                "at": _iso(u.at),
                "package": u.package,
                "old": u.old_version,
                "new": u.new_version,
                "run_id": u.run_id,
            }
            for u in updates
        ],
        "advisories": [
            {
                "at": _iso(a.at),
                "package": a.package,
                "severity": a.severity,
                "title": a.title,
                "run_id": a.run_id,
            }
            for a in advisories
        ],
        "incidents": _incidents(runs, rollbacks),
        "freeze_overrides": _overrides(runs),
        "availability": _availability(smoke, ref.availability_percent or DEFAULT_SLA),
        "runs": [
            {
                "id": r.id,
                "command": r.command,
                "playbook": r.playbook,
                "started": _iso(r.started),
                "status": r.status,
            }
            for r in runs
        ],
    }
    if integrity_base is not None:
        data["integrity"] = findings(integrity_base, ref.site, ref.env, period.start, period.end)
    else:
        data["integrity"] = []
    trends = trend_warnings(session, ref.site, ref.env, min(now, period.end), ref.window)
    data["trends"] = [t.as_json() for t in trends]
    data["next_actions"] = [f"Coming: {t.message}." for t in trends] + next_actions(data, ref, period, now)
    return data


def _rows(session: Session, model: Any, column: Any, key: tuple[str, str], period: Period) -> list[Any]:
    query = (
        select(model)
        .where(model.site == key[0], model.env == key[1], column >= period.start, column < period.end)
        .order_by(column)
    )
    return list(session.scalars(query))


def _runs(session: Session, ref: SiteRef, period: Period) -> list[Run]:
    query = (
        select(Run)
        .where(
            Run.env == ref.env, Run.started >= period.start, Run.started < period.end, Run.check.is_(False)
        )
        .order_by(Run.started)
    )
    return [r for r in session.scalars(query) if ref.site in (r.sites or [])]


def _incidents(runs: list[Run], rollbacks: list[Rollback]) -> list[dict[str, Any]]:
    """Failed and interrupted runs, with what was done about them (the rollback and its result)."""
    by_run = {r.run_id: r for r in rollbacks}
    found = []
    for run in runs:
        if run.status in ("ok", "done", "success", "unfinished") and run.id not in by_run:
            continue
        rollback = by_run.get(run.id)
        if rollback is not None:
            done = "rolled back" if rollback.finished else "rollback did not finish: an engineer took over"
        elif run.status == "interrupted":
            done = "stopped; the hosts were left as they were before the run"
        else:
            done = "nothing had changed; retried at the next run"
        found.append(
            {
                "at": _iso(run.started),
                "what": f"{run.command or 'run'} {run.playbook or ''}".strip(),
                "status": run.status,
                "error": run.error,
                "done": done,
                "run_id": run.id,
            }
        )
    return found


def _overrides(runs: Iterable[Run]) -> list[dict[str, Any]]:
    """``--override-freeze`` runs: read from their journal's ``run_start`` (the history keeps the path)."""
    found = []
    for run in runs:
        start = _first_event(run.journal_path)
        override = (start or {}).get("freeze_override")
        if isinstance(override, dict):
            found.append({"run_id": run.id, "at": _iso(run.started), **override})
    return found


def _first_event(path: str | None) -> dict[str, Any] | None:
    if not path or not Path(path).is_file():
        return None
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                event = json.loads(line)
            except ValueError:
                return None
            if isinstance(event, dict) and event.get("event") == "run_start":
                return event
    return None


def _availability(checks: list[SmokeCheck], target: float) -> dict[str, Any]:
    latencies = sorted(c.latency_ms for c in checks if c.latency_ms is not None)
    daily: dict[str, list[float]] = {}
    for check in checks:
        if check.latency_ms is not None:
            daily.setdefault(as_utc(check.at).date().isoformat(), []).append(check.latency_ms)
    passed = sum(1 for c in checks if c.ok)
    return {
        "checks": len(checks),
        "passed": passed,
        "percent": round(100 * passed / len(checks), 3) if checks else None,
        "sla_percent": target,
        "p95_ms": percentile(latencies, 95),
        "median_ms": percentile(latencies, 50),
        "daily_p95_ms": [{"day": d, "p95_ms": percentile(sorted(v), 95)} for d, v in sorted(daily.items())],
        "failures": [
            {"at": _iso(c.at), "url": c.url, "status": c.status, "run_id": c.run_id}
            for c in checks
            if not c.ok
        ],
    }


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of sorted ``values`` (None when empty)."""
    if not values:
        return None
    rank = max(1, math.ceil(pct / 100 * len(values)))
    return round(values[rank - 1], 1)


def next_actions(data: dict[str, Any], ref: SiteRef, period: Period, now: datetime) -> list[str]:
    """Plain-language recommendations from what the period shows (most urgent first)."""
    actions = []
    backups = data["backups"]
    if backups["taken"] == 0:
        actions.append("No backup was taken this month: check the nightly backup schedule.")
    elif backups["verified"] < backups["taken"]:
        missing = backups["taken"] - backups["verified"]
        verify = f"maintkit snapshots verify --env {shlex.quote(ref.env)}"
        actions.append(f"{missing} backup(s) were not verified: run `{verify}`.")
    if backups["failed_verifications"]:
        actions.append("A backup failed its verification: take a new backup and look into the failed one.")
    if not data["drills"]:
        actions.append("No restore drill this month: schedule one to prove the backups can be restored.")
    elif any(d["verdict"] == "failed" for d in data["drills"]):
        actions.append("A restore drill failed: fix what it found and drill again.")
    slow = [
        d
        for d in data["drills"]
        if d["rto_objective_seconds"] and (d["rto_seconds"] or 0) > d["rto_objective_seconds"]
    ]
    if slow:
        actions.append("A restore took longer than promised (RTO): review the restore path or the objective.")
    availability = data["availability"]
    if availability["percent"] is not None and availability["percent"] < availability["sla_percent"]:
        actions.append(
            f"Availability was {availability['percent']:.2f} %, below the {availability['sla_percent']} % "
            "target: review the failed checks in the appendix."
        )
    if data["advisories"]:
        actions.append(
            f"{len(data['advisories'])} security advisory(ies) reported: plan the updates that fix them."
        )
    kinds = {finding.get("kind", "files") for finding in data.get("integrity") or []}
    if "files" in kinds:
        actions.append("Files changed outside an update run (see Incidents): an engineer must check them.")
    if "wordpress-checksums" in kinds:
        actions.append(
            "WordPress files differ from wordpress.org's (see Incidents): an engineer must check them "
            "before the next update overwrites or keeps them."
        )
    if any(i["done"].startswith("rollback did not finish") for i in data["incidents"]):
        actions.append("A rollback did not finish: an engineer must check the site.")
    if not actions:
        actions.append("Nothing to do: keep the nightly backups and the monthly drill going.")
    return actions


def _iso(value: datetime | None) -> str | None:
    return None if value is None else as_utc(value).isoformat()


def period_days(period: Period) -> list[date]:
    """Every day of the period (the charts' x axis)."""
    days, day = [], period.start.date()
    while day < period.end.date():
        days.append(day)
        day += timedelta(days=1)
    return days
