"""Which snapshots to keep and which to prune: restic's and borgmatic's rules, plus maintkit's own.

Pure functions over :class:`SnapshotInfo` (no storage access), so that every rule is tested on
synthetic ids and ``prune --dry-run`` shows exactly what ``prune`` will do.

The rules, applied per site, environment and target:

* Only **complete** snapshots (with a readable manifest) are counted by the rules below.
* ``keep_last: N`` keeps the N newest snapshots.
* ``keep_hourly``, ``keep_daily``, ``keep_weekly``, ``keep_monthly``, ``keep_yearly: N`` each
  walk the snapshots from newest to oldest and keep the newest snapshot of each distinct period
  (hour, calendar day, ISO week, calendar month, year) until N periods are kept. Periods with no
  snapshot do not count: ``keep_daily: 7`` keeps the last 7 *days that have a snapshot*, which may
  span more than a week. This is restic's ``forget --keep-*`` and borg's ``prune`` (as borgmatic
  configures it). Weeks are ISO 8601 weeks (Monday first; 31 Dec 2026 and 1 Jan 2027 are both in
  week 2026-W53). Periods are UTC calendar periods: snapshot ids are UTC times.
* A snapshot is kept when **any** rule keeps it; the reasons name every rule that did, with its
  rank: ``daily 3/7`` is the third of the seven days kept.
* The **newest verified** snapshot is always kept, whatever the rules say: a snapshot proven to
  restore is worth more than a newer one nobody checked.
* A snapshot **without a manifest** is unfinished: never counted as good; kept while younger than
  24 h (its run may still be writing it), pruned ("swept") once older. This does not depend on
  the policy.
* A snapshot whose manifest exists but does not read (``problem``) is neither counted nor swept:
  it is kept for a person to look at.
* So is a snapshot whose **last verification failed** (``verify_problem``): it cannot be counted
  as one of the N kept (N broken snapshots would push the good ones out), and deleting it would
  destroy the evidence before anyone looked. "Verified" means the last verification passed: the
  same notion ``maintkit snapshots list`` shows.
* An **empty policy** (no rule, or every rule 0) keeps every complete snapshot: a missing or
  mistyped ``retention`` must never delete a backup.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta

#: how long a snapshot without manifest may be left alone (its run may still be writing it)
UNFINISHED_GRACE = timedelta(hours=24)


@dataclass(frozen=True)
class SnapshotInfo:
    """What retention knows of one snapshot folder."""

    id: str
    time: datetime  # when it was taken (from its id), aware
    complete: bool  # has a manifest
    verified: bool = False  # its last verification passed
    size: int = 0  # bytes, all its objects
    problem: str | None = None  # why its manifest does not read, if it does not
    verify_problem: str | None = None  # why its last verification failed, if it did


@dataclass(frozen=True)
class RetentionPolicy:
    """How many snapshots (``keep_last``) or periods (the others) to keep; 0 means the rule is off."""

    keep_last: int = 0
    keep_hourly: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{item.name} must be a whole number, 0 or more, not {value!r}")

    def describe(self) -> str:
        """The policy as a plan says it: ``keep_daily 7, keep_weekly 4`` (the rules in force)."""
        rules = [
            f"{item.name} {getattr(self, item.name)}" for item in fields(self) if getattr(self, item.name)
        ]
        return ", ".join(rules) if rules else "no rule (everything is kept)"

    @property
    def is_empty(self) -> bool:
        """True when no rule keeps anything: such a policy keeps everything instead."""
        return not any(getattr(self, item.name) for item in fields(self))


@dataclass(frozen=True)
class Decision:
    """A snapshot and why it is kept (the rules that keep it) or pruned."""

    snapshot: SnapshotInfo
    reasons: tuple[str, ...]


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _hour(t: datetime) -> Hashable:
    return (t.year, t.month, t.day, t.hour)


def _day(t: datetime) -> Hashable:
    return (t.year, t.month, t.day)


def _iso_week(t: datetime) -> Hashable:
    year, week, _weekday = t.isocalendar()
    return (year, week)


def _month(t: datetime) -> Hashable:
    return (t.year, t.month)


def _year(t: datetime) -> Hashable:
    return t.year


#: (policy field, name in reasons, period of a time; None: every snapshot is its own period)
RULES: tuple[tuple[str, str, Callable[[datetime], Hashable] | None], ...] = (
    ("keep_last", "last", None),
    ("keep_hourly", "hourly", _hour),
    ("keep_daily", "daily", _day),
    ("keep_weekly", "weekly", _iso_week),
    ("keep_monthly", "monthly", _month),
    ("keep_yearly", "yearly", _year),
)


def newest_first(snapshots: Sequence[SnapshotInfo]) -> list[SnapshotInfo]:
    """Sort by time, newest first; ids break ties (``...Z-2`` after ``...Z``)."""
    return sorted(snapshots, key=lambda s: (_utc(s.time), s.id), reverse=True)


def apply_rule(
    snapshots: Sequence[SnapshotInfo], count: int, period: Callable[[datetime], Hashable] | None
) -> list[SnapshotInfo]:
    """Return the snapshots one rule keeps: walking ``snapshots`` (newest first), the newest of each
    distinct period until ``count`` periods are kept."""
    kept: list[SnapshotInfo] = []
    last: object = object()
    for snapshot in snapshots:
        if len(kept) >= count:
            break
        current: object = snapshot.id if period is None else period(_utc(snapshot.time))
        if current != last:
            kept.append(snapshot)
            last = current
    return kept


def select_to_keep(
    snapshots: Sequence[SnapshotInfo], policy: RetentionPolicy, now: datetime
) -> tuple[list[Decision], list[Decision]]:
    """Split ``snapshots`` into (keep, prune), each newest first, with the reasons; see the module
    docstring for the rules."""
    now = _utc(now)
    reasons: dict[str, list[str]] = {s.id: [] for s in snapshots}
    pruned: dict[str, str] = {}
    good = newest_first(
        [s for s in snapshots if s.complete and s.problem is None and s.verify_problem is None]
    )
    for snapshot in snapshots:
        if snapshot.problem is not None:
            reasons[snapshot.id].append(f"manifest does not read ({snapshot.problem}): left for a person")
        elif snapshot.complete and snapshot.verify_problem is not None:
            reasons[snapshot.id].append(f"verify failed ({snapshot.verify_problem}): left for a person")
        elif not snapshot.complete:
            if now - _utc(snapshot.time) > UNFINISHED_GRACE:
                pruned[snapshot.id] = "unfinished (no manifest), older than 24 h"
            else:
                reasons[snapshot.id].append("unfinished (no manifest), younger than 24 h")
    if policy.is_empty:
        for snapshot in good:
            reasons[snapshot.id].append("no retention rule: everything is kept")
    for field_name, label, period in RULES:
        count = getattr(policy, field_name)
        if count:
            for rank, snapshot in enumerate(apply_rule(good, count, period), start=1):
                reasons[snapshot.id].append(f"{label} {rank}/{count}")
    newest_verified = next((s for s in good if s.verified), None)
    if newest_verified is not None:
        reasons[newest_verified.id].append("newest verified")
    keep: list[Decision] = []
    prune: list[Decision] = []
    for snapshot in newest_first(snapshots):
        if reasons[snapshot.id]:
            keep.append(Decision(snapshot, tuple(reasons[snapshot.id])))
        else:
            prune.append(Decision(snapshot, (pruned.get(snapshot.id, "kept by no rule"),)))
    return keep, prune
