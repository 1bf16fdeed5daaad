"""``maintkit status``: each site environment against its objectives, from the history's newest facts.

Why here and not in the CLI: the verdict (which problems are open) is a decision, and a pure one
given the facts, the objectives and the time; the CLI only selects the sites and renders the lines.

Open problems, each a breach (``status`` exits non-zero when any line has one):

- ``rpo``: no snapshot, or the newest is older than the RPO (``rpo_hours``)
- ``drill``: no passed drill within ``drill_every_days``
- ``rto``: the newest passed drill took longer than ``rto_minutes``
- ``verification``: the newest verification failed
- ``rollback``: the newest rollback did not finish (a human must look)
- ``freeze-drill``: a freeze window started with no passed drill in the ``drill_before_freeze_days``
  before it (from a week before the drill is due until it is done: a warning, not a breach)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from maintkit.history.facts import SiteFacts, age
from maintkit.history.freezecheck import freeze_drill_finding
from maintkit.history.mapping import as_utc
from maintkit.model.portfolio import Objectives


@dataclass
class SiteStatus:
    """One line of ``status``: the site environment, its newest facts summed up, its open problems."""

    client: str | None
    site: str
    env: str
    objectives: Objectives
    facts: SiteFacts
    problems: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self, now: datetime) -> dict[str, Any]:
        """The line as a JSON-ready mapping (``--output json``)."""
        f = self.facts
        snapshot = f.snapshot
        drill = f.drill
        return {
            "client": self.client,
            "site": self.site,
            "env": self.env,
            "verdict": "ok" if self.ok else "breach",
            "snapshot": None
            if snapshot is None
            else {
                "id": snapshot.snapshot_id,
                "taken": _iso(snapshot.taken),
                "age_seconds": round(age(snapshot.taken, now) or 0),
                "size": snapshot.size,
                "verified": f.snapshot_verified,
                "targets": sorted(snapshot.targets or {}),
            },
            "drill": None
            if drill is None
            else {
                "finished": _iso(drill.finished),
                "rto_seconds": drill.rto_seconds,
                "rto_objective_seconds": _rto_objective(self.objectives),
                "data_loss_window_seconds": drill.data_loss_window_seconds,
            },
            "update": None
            if f.update is None
            else {
                "at": _iso(f.update.at),
                "package": f.update.package,
                "old": f.update.old_version,
                "new": f.update.new_version,
            },
            "release": None if f.release is None else {"id": f.release.release, "at": _iso(f.release.at)},
            "lock_holders": [
                {
                    "run_id": r.id,
                    "command": r.command,
                    "control_host": r.control_host,
                    "pid": r.control_pid,
                    "started": _iso(r.started),
                }
                for r in f.running
            ],
            "objectives": {
                "rpo_hours": self.objectives.rpo_hours,
                "rto_minutes": self.objectives.rto_minutes,
                "drill_every_days": self.objectives.drill_every_days,
            },
            "problems": self.problems,
            "warnings": self.warnings,
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else as_utc(value).isoformat()


def _rto_objective(objectives: Objectives) -> float | None:
    return None if objectives.rto_minutes is None else objectives.rto_minutes * 60


def problems_of(facts: SiteFacts, objectives: Objectives, now: datetime) -> list[dict[str, str]]:
    """Given a site environment's newest facts, its objectives and the time, its open problems."""
    found: list[dict[str, str]] = []

    def add(kind: str, message: str) -> None:
        found.append({"kind": kind, "message": message})

    if objectives.rpo_hours is not None:
        snapshot_age = age(facts.snapshot.taken, now) if facts.snapshot else None
        if snapshot_age is None:
            add("rpo", f"no snapshot recorded (RPO {objectives.rpo_hours:g} h)")
        elif snapshot_age > objectives.rpo_hours * 3600:
            add("rpo", f"newest snapshot is {duration(snapshot_age)} old, RPO {objectives.rpo_hours:g} h")
    if objectives.drill_every_days is not None:
        drill_age = age(facts.drill.finished, now) if facts.drill else None
        if drill_age is None:
            add("drill", f"no passed restore drill recorded (one every {objectives.drill_every_days} d)")
        elif drill_age > objectives.drill_every_days * 86400:
            add(
                "drill",
                f"last passed drill {duration(drill_age)} ago, one every {objectives.drill_every_days} d",
            )
    rto = _rto_objective(objectives)
    drilled = facts.drill.rto_seconds if facts.drill is not None else None
    if rto is not None and drilled is not None and drilled > rto:
        add("rto", f"last drill restored in {duration(drilled)}, RTO {duration(rto)}")
    if facts.verification is not None and not facts.verification.ok:
        which = facts.verification.snapshot_id or "a snapshot"
        add("verification", f"verification of {which} failed: {facts.verification.message or 'see its run'}")
    finding = freeze_drill_finding(objectives, facts.drill.finished if facts.drill else None, now)
    if finding is not None and finding.breach:
        add(finding.kind, finding.message)
    if facts.rollback is not None and not facts.rollback.finished:
        add(
            "rollback",
            f"rollback on {facts.rollback.host} in run {facts.rollback.run_id} did not finish "
            f"({facts.rollback.detail}); a human must look",
        )
    return found


def evaluate(
    entries: Iterable[tuple[str | None, str, str, Objectives, SiteFacts]], now: datetime
) -> list[SiteStatus]:
    """One :class:`SiteStatus` per (client, site, env, objectives, facts)."""
    return [
        SiteStatus(
            client,
            site,
            env,
            objectives,
            facts,
            problems_of(facts, objectives, now),
            warnings_of(facts, objectives, now),
        )
        for client, site, env, objectives, facts in entries
    ]


def warnings_of(facts: SiteFacts, objectives: Objectives, now: datetime) -> list[dict[str, str]]:
    """What is coming but not yet a breach: a drill due before a freeze."""
    finding = freeze_drill_finding(objectives, facts.drill.finished if facts.drill else None, now)
    if finding is None or finding.breach:
        return []
    return [{"kind": finding.kind, "message": finding.message}]


def duration(seconds: float) -> str:
    """A short human duration: ``45 s``, ``12 min``, ``5 h``, ``3 d``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"
