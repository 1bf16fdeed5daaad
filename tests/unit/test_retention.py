"""Retention: which snapshots ``prune`` keeps, table-driven over synthetic snapshot ids and times.

The expected sets are written out by hand from the documented rules (restic/borg semantics), not
computed by a second implementation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from maintkit.storage.base import new_snapshot_id
from maintkit.storage.retention import Decision, RetentionPolicy, SnapshotInfo, select_to_keep


def at(text: str) -> datetime:
    """``"2026-11-22 03:15"`` as an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def snap(text: str, *, complete: bool = True, verified: bool = False) -> SnapshotInfo:
    time = at(text)
    return SnapshotInfo(new_snapshot_id(time), time, complete, verified, size=1000)


def sid(text: str) -> str:
    return new_snapshot_id(at(text))


def every(start: str, end: str, step: timedelta) -> list[SnapshotInfo]:
    """Complete snapshots from ``start`` to ``end`` inclusive, every ``step``."""
    times, current, last = [], at(start), at(end)
    while current <= last:
        times.append(current)
        current += step
    return [SnapshotInfo(new_snapshot_id(t), t, True, False, 1000) for t in times]


def days(start: str, end: str, hour: str = "03:00") -> list[SnapshotInfo]:
    return every(f"{start} {hour}", f"{end} {hour}", timedelta(days=1))


def ids(decisions: list[Decision]) -> list[str]:
    return [d.snapshot.id for d in decisions]


def reasons(decisions: list[Decision]) -> dict[str, tuple[str, ...]]:
    return {d.snapshot.id: d.reasons for d in decisions}


def run(
    snapshots: list[SnapshotInfo], policy: RetentionPolicy, now: str
) -> tuple[list[Decision], list[Decision]]:
    """select_to_keep, plus the invariants that hold for every input."""
    keep, prune = select_to_keep(snapshots, policy, at(now))
    assert sorted(ids(keep) + ids(prune)) == sorted(s.id for s in snapshots), "each snapshot exactly once"
    for decisions in (keep, prune):
        times = [d.snapshot.time for d in decisions]
        assert times == sorted(times, reverse=True), "newest first"
        assert all(d.reasons for d in decisions), "every decision says why"
    return keep, prune


@dataclass
class Case:
    name: str
    snapshots: list[SnapshotInfo]
    policy: RetentionPolicy
    keep: list[str]  # expected kept ids, newest first
    now: str = "2027-06-01 00:00"


CASES = [
    Case(
        "keep_last keeps the N newest",
        days("2026-11-01", "2026-11-05"),
        RetentionPolicy(keep_last=3),
        [sid("2026-11-05 03:00"), sid("2026-11-04 03:00"), sid("2026-11-03 03:00")],
    ),
    Case(
        "keep_daily over a month of snapshots taken 4 times a day: the last one of each of 7 days",
        every("2026-11-01 00:00", "2026-11-30 18:00", timedelta(hours=6)),
        RetentionPolicy(keep_daily=7),
        [sid(f"2026-11-{day} 18:00") for day in range(30, 23, -1)],
    ),
    Case(
        "keep_daily counts days that have a snapshot, not calendar days",
        [
            snap("2026-11-30 03:00"),
            snap("2026-11-20 03:00"),
            snap("2026-11-10 03:00"),
            snap("2026-11-01 03:00"),
        ],
        RetentionPolicy(keep_daily=3),
        [sid("2026-11-30 03:00"), sid("2026-11-20 03:00"), sid("2026-11-10 03:00")],
    ),
    Case(
        "keep_hourly: the newest of each hour",
        every("2026-11-22 00:00", "2026-11-22 04:40", timedelta(minutes=20)),
        RetentionPolicy(keep_hourly=3),
        [sid("2026-11-22 04:40"), sid("2026-11-22 03:40"), sid("2026-11-22 02:40")],
    ),
    Case(
        # 2026-12-28 (Mon) .. 2027-01-03 (Sun) is ISO week 2026-W53: 31 Dec and 1 Jan are one week
        "keep_weekly across a year boundary uses ISO weeks",
        days("2026-12-20", "2027-01-12"),
        RetentionPolicy(keep_weekly=4),
        [
            sid("2027-01-12 03:00"),  # 2027-W02
            sid("2027-01-10 03:00"),  # 2027-W01 (Sunday)
            sid("2027-01-03 03:00"),  # 2026-W53, not 2026-12-31 nor 2027-01-01
            sid("2026-12-27 03:00"),  # 2026-W52
        ],
    ),
    Case(
        "keep_monthly: the last snapshot of each month",
        days("2026-01-01", "2026-12-31", "02:00"),
        RetentionPolicy(keep_monthly=4),
        [sid("2026-12-31 02:00"), sid("2026-11-30 02:00"), sid("2026-10-31 02:00"), sid("2026-09-30 02:00")],
    ),
    Case(
        "keep_yearly: the last snapshot of each year",
        days("2024-12-30", "2026-01-02"),
        RetentionPolicy(keep_yearly=5),
        [sid("2026-01-02 03:00"), sid("2025-12-31 03:00"), sid("2024-12-31 03:00")],
    ),
    Case(
        "combined rules keep the union",
        days("2026-01-01", "2026-12-31"),
        RetentionPolicy(keep_daily=7, keep_weekly=4, keep_monthly=6),
        [sid(f"2026-12-{day} 03:00") for day in range(31, 24, -1)]  # daily: Dec 31 .. Dec 25
        + [sid("2026-12-20 03:00"), sid("2026-12-13 03:00")]  # weekly W51, W50 (W53, W52 are daily)
        + [sid(f"2026-{m} 03:00") for m in ("11-30", "10-31", "09-30", "08-31", "07-31")],  # monthly
    ),
    Case(
        "a rule larger than the history keeps everything it can",
        days("2026-11-01", "2026-11-03"),
        RetentionPolicy(keep_daily=30),
        [sid("2026-11-03 03:00"), sid("2026-11-02 03:00"), sid("2026-11-01 03:00")],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_rules(case: Case) -> None:
    keep, prune = run(case.snapshots, case.policy, case.now)
    assert ids(keep) == case.keep
    assert all(d.reasons == ("kept by no rule",) for d in prune)


def test_reasons_name_every_rule_and_rank() -> None:
    keep, _ = run(
        days("2026-01-01", "2026-12-31"),
        RetentionPolicy(keep_daily=7, keep_weekly=4, keep_monthly=6),
        "2027-01-01 00:00",
    )
    why = reasons(keep)
    assert why[sid("2026-12-31 03:00")] == ("daily 1/7", "weekly 1/4", "monthly 1/6")
    assert why[sid("2026-12-27 03:00")] == ("daily 5/7", "weekly 2/4")
    assert why[sid("2026-12-13 03:00")] == ("weekly 4/4",)
    assert why[sid("2026-07-31 03:00")] == ("monthly 6/6",)


def test_same_second_ids_sort_after_the_first() -> None:
    first = snap("2026-11-22 03:15")
    second = replace(first, id=first.id + "-2")
    keep, prune = run([first, second], RetentionPolicy(keep_last=1), "2026-11-23 00:00")
    assert ids(keep) == [second.id]
    assert ids(prune) == [first.id]


def test_newest_verified_is_never_pruned() -> None:
    history = days("2026-11-01", "2026-11-05")
    history[0] = replace(history[0], verified=True)  # 11-01: an older verified one
    history[1] = replace(history[1], verified=True)  # 11-02: the newest verified one
    keep, prune = run(history, RetentionPolicy(keep_last=2), "2026-11-06 00:00")
    assert ids(keep) == [sid("2026-11-05 03:00"), sid("2026-11-04 03:00"), sid("2026-11-02 03:00")]
    assert reasons(keep)[sid("2026-11-02 03:00")] == ("newest verified",)
    assert ids(prune) == [sid("2026-11-03 03:00"), sid("2026-11-01 03:00")]


def test_newest_verified_also_kept_by_a_rule_says_both() -> None:
    history = [replace(s, verified=True) for s in days("2026-11-01", "2026-11-02")]
    keep, _ = run(history, RetentionPolicy(keep_last=1), "2026-11-03 00:00")
    assert reasons(keep) == {sid("2026-11-02 03:00"): ("last 1/1", "newest verified")}


@pytest.mark.parametrize(
    ("taken", "now", "kept"),
    [
        ("2026-11-22 00:00", "2026-11-22 12:00", True),  # 12 h: its run may still be writing it
        ("2026-11-21 12:00", "2026-11-22 12:00", True),  # exactly 24 h: not older than 24 h yet
        ("2026-11-21 11:59", "2026-11-22 12:00", False),  # older than 24 h: swept
        ("2026-10-01 00:00", "2026-11-22 12:00", False),
    ],
)
def test_unfinished_snapshots_are_swept_after_24_hours(taken: str, now: str, kept: bool) -> None:
    unfinished = snap(taken, complete=False)
    keep, prune = run([unfinished], RetentionPolicy(keep_last=5), now)
    if kept:
        assert reasons(keep) == {unfinished.id: ("unfinished (no manifest), younger than 24 h",)}
    else:
        assert reasons(prune) == {unfinished.id: ("unfinished (no manifest), older than 24 h",)}


def test_unfinished_snapshots_are_never_counted_as_good() -> None:
    good = snap("2026-11-20 03:00")
    older = snap("2026-11-19 03:00")
    unfinished = snap("2026-11-22 03:00", complete=False)
    keep, prune = run([older, good, unfinished], RetentionPolicy(keep_last=1), "2026-11-22 04:00")
    assert reasons(keep) == {
        unfinished.id: ("unfinished (no manifest), younger than 24 h",),
        good.id: ("last 1/1",),
    }
    assert ids(prune) == [older.id]


def test_unfinished_snapshots_are_swept_even_with_an_empty_policy() -> None:
    keep, prune = run(
        [snap("2026-11-01 03:00", complete=False), snap("2026-11-02 03:00")],
        RetentionPolicy(),
        "2026-11-22 00:00",
    )
    assert ids(keep) == [sid("2026-11-02 03:00")]
    assert ids(prune) == [sid("2026-11-01 03:00")]


def test_a_manifest_that_does_not_read_is_left_alone_and_not_counted() -> None:
    broken = replace(snap("2026-11-05 03:00"), problem="format 2, written by a newer maintkit")
    history = [*days("2026-11-01", "2026-11-04"), broken]
    keep, prune = run(history, RetentionPolicy(keep_last=1), "2026-12-01 00:00")
    assert ids(keep) == [broken.id, sid("2026-11-04 03:00")]
    assert reasons(keep)[broken.id][0].startswith("manifest does not read (format 2")
    assert len(prune) == 3


def test_a_snapshot_whose_verify_failed_is_left_alone_not_counted_and_not_the_newest_verified() -> None:
    verified = replace(snap("2026-11-03 03:00"), verified=True)
    failed = replace(snap("2026-11-05 03:00"), verify_problem="files.tar.zst: failed: sha256")
    history = [*days("2026-11-01", "2026-11-02"), verified, snap("2026-11-04 03:00"), failed]
    keep, prune = run(history, RetentionPolicy(keep_last=1), "2026-12-01 00:00")
    assert reasons(keep) == {
        failed.id: ("verify failed (files.tar.zst: failed: sha256): left for a person",),
        sid("2026-11-04 03:00"): ("last 1/1",),
        verified.id: ("newest verified",),
    }
    assert ids(prune) == [sid("2026-11-02 03:00"), sid("2026-11-01 03:00")]


@pytest.mark.parametrize("policy", [RetentionPolicy(), RetentionPolicy(keep_daily=0, keep_last=0)])
def test_an_empty_policy_keeps_everything(policy: RetentionPolicy) -> None:
    history = every("2025-01-01 00:00", "2026-11-22 00:00", timedelta(days=3))
    keep, prune = run(history, policy, "2026-11-23 00:00")
    assert prune == []
    assert len(keep) == len(history)
    assert {d.reasons for d in keep} == {("no retention rule: everything is kept",)}


def test_no_snapshots() -> None:
    assert select_to_keep([], RetentionPolicy(keep_last=3), at("2026-11-22 00:00")) == ([], [])


@pytest.mark.parametrize("bad", [{"keep_last": -1}, {"keep_daily": True}, {"keep_weekly": 1.5}])
def test_policy_rejects_nonsense(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="whole number"):
        RetentionPolicy(**bad)  # type: ignore[arg-type]
