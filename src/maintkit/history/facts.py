"""The newest facts of every site environment, read from the history in a few grouped queries.

Why grouped queries and not a query per site: ``status`` over an agency's hundreds of sites with a
year of nightly runs must answer within a second; one indexed ``max(...) GROUP BY site, env`` per
kind of fact costs the same for one site or five hundred (benchmarks/status_history.py).

Why a look-back first: grouping a year of nightly snapshots reads every one of them (a tenth of a
second per table at 500 sites); the newest snapshot of a site is nearly always from the last days.
So the frequent facts are looked for in the last :data:`LOOKBACK` first (an ``(env, time)`` index
range), and only the sites not found there are grouped over their whole history.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select, true
from sqlalchemy.orm import Session

from maintkit.history import liveness
from maintkit.history.mapping import as_utc
from maintkit.history.models import Drill, Release, Rollback, Run, Snapshot, Update, Verification
from maintkit.history.schema import FLEET_COMMAND

Key = tuple[str, str]  # (site, env) as the history names them

#: how far back the frequent facts (snapshots, verifications) are looked for first
LOOKBACK = timedelta(days=8)


@dataclass
class SiteFacts:
    """What the history knows of one site environment (None: never happened)."""

    snapshot: Snapshot | None = None
    snapshot_verified: bool | None = None  # its newest verification passed; None: never verified
    verification: Verification | None = None  # the newest one, of any snapshot
    drill: Drill | None = None  # the newest passed drill
    update: Update | None = None
    release: Release | None = None
    rollback: Rollback | None = None  # the newest one
    running: list[Run] = field(default_factory=list)  # runs started and not finished: the lock's holders
    #: runs the history holds as unfinished but known to be over (killed, or their end not recorded),
    #: with why (:mod:`maintkit.history.liveness`): not lock holders
    ended: list[tuple[Run, str]] = field(default_factory=list)


def _newest(
    session: Session, model: Any, at: Any, keys: set[Key], extra: Any = None, since: datetime | None = None
) -> dict[Key, Any]:
    """The newest row of ``model`` (by column ``at``) of every (site, env) in ``keys`` (after ``since``)."""
    envs = {env for _, env in keys}
    sites = {site for site, _ in keys}
    condition = and_(
        model.env.in_(envs),
        model.site.in_(sites),
        extra if extra is not None else true(),
        at >= since if since is not None else true(),
    )
    newest = (
        select(model.site, model.env, func.max(at).label("at"))
        .where(condition)
        .group_by(model.site, model.env)
        .subquery()
    )
    query = (
        select(model)
        .join(newest, and_(model.site == newest.c.site, model.env == newest.c.env, at == newest.c.at))
        .where(condition)
        .order_by(model.id)
    )
    found: dict[Key, Any] = {}
    for row in session.scalars(query):
        if (row.site, row.env) in keys:
            found[(row.site, row.env)] = row  # ties on the time: the last written wins
    return found


def _newest_recent_first(
    session: Session, model: Any, at: Any, keys: set[Key], now: datetime
) -> dict[Key, Any]:
    """:func:`_newest`, looking in the last :data:`LOOKBACK` first, then in everything for the rest."""
    found = _newest(session, model, at, keys, since=(now - LOOKBACK).astimezone(UTC))
    missing = keys - set(found)
    if missing:
        found.update(_newest(session, model, at, missing))
    return found


def gather(session: Session, keys: Iterable[Key], now: datetime | None = None) -> dict[Key, SiteFacts]:
    """The newest facts of each (site, env) of ``keys``."""
    wanted = set(keys)
    facts = {key: SiteFacts() for key in wanted}
    if not wanted:
        return facts
    now = now or datetime.now(UTC)
    frequent: list[tuple[str, Any, Any]] = [
        ("snapshot", Snapshot, Snapshot.taken),
        ("verification", Verification, Verification.checked),
    ]
    for name, model, at in frequent:
        for key, row in _newest_recent_first(session, model, at, wanted, now).items():
            setattr(facts[key], name, row)
    rare: list[tuple[str, Any, Any, Any]] = [
        ("drill", Drill, Drill.finished, Drill.passed.is_(True)),
        ("update", Update, Update.at, None),
        ("release", Release, Release.at, None),
        ("rollback", Rollback, Rollback.started, None),
    ]
    for name, model, at, extra in rare:
        for key, row in _newest(session, model, at, wanted, extra).items():
            setattr(facts[key], name, row)
    snapshot_ids = {f.snapshot.snapshot_id for f in facts.values() if f.snapshot is not None}
    if snapshot_ids:
        verdicts: dict[tuple[str, str, str | None], bool] = {}  # the newest verification of each snapshot
        rows = session.execute(
            select(Verification.site, Verification.env, Verification.snapshot_id, Verification.ok)
            .where(Verification.snapshot_id.in_(snapshot_ids))
            .order_by(Verification.checked, Verification.id)
        )
        for site, env, snapshot_id, ok in rows:
            verdicts[(site, env, snapshot_id)] = bool(ok)
        for (site, env), fact in facts.items():
            if fact.snapshot is not None:
                fact.snapshot_verified = verdicts.get((site, env, fact.snapshot.snapshot_id))
    # only ``finished IS NULL`` (its index): with ``env IN`` too, SQLite walks the env index instead
    for run in session.scalars(select(Run).where(Run.finished.is_(None))):
        if run.command == FLEET_COMMAND:  # the fleet holds no lock: its sites' runs do (each its own row)
            continue
        keys = [(site, str(run.env)) for site in run.sites or [] if (site, run.env) in facts]
        why = liveness.over(run) if keys else None
        for key in keys:
            if why is None:
                facts[key].running.append(run)
            else:
                facts[key].ended.append((run, why))
    return facts


def age(then: datetime | None, now: datetime) -> float | None:
    """Seconds from ``then`` (as the database returns it) to ``now``; None when ``then`` is None."""
    return None if then is None else (now - as_utc(then)).total_seconds()
