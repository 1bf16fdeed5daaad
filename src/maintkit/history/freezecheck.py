""" "A successful restore drill within N days before a freeze starts": due, approaching, or breached.

Why: during a freeze (peak season) nobody may change production, so the last chance to prove the
backups restore is the days before it. ``status`` warns from a week before the drill becomes due,
and marks a breach once the freeze has started without one. Pure: facts, objectives, time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from maintkit.model.freeze import FreezeWindow, active_window, next_window
from maintkit.model.portfolio import Objectives

#: how long before the drill is due ``status`` starts saying so
NOTICE_DAYS = 7


@dataclass(frozen=True)
class FreezeFinding:
    """One finding: ``breach`` (exit 1 in ``status``) or a warning."""

    kind: str  # "freeze-drill"
    message: str
    breach: bool


def freeze_drill_finding(
    objectives: Objectives, last_drill: datetime | None, now: datetime
) -> FreezeFinding | None:
    """Given the newest passed drill's end (None: none), the finding for the freeze nearest ``now``."""
    days = objectives.drill_before_freeze_days
    if days is None or not objectives.freeze:
        return None
    today = now.date()
    window = active_window(objectives.freeze, today) or next_window(objectives.freeze, today)
    if window is None:
        return None
    due_from = window.start - timedelta(days=days)
    drilled = last_drill is not None and last_drill.date() >= due_from
    if drilled:
        return None
    if today >= window.start:
        return FreezeFinding(
            "freeze-drill",
            f"freeze {window} started with no passed restore drill in the {days} d before it",
            breach=True,
        )
    if today >= due_from - timedelta(days=NOTICE_DAYS):
        return FreezeFinding("freeze-drill", _due(window, due_from, today), breach=False)
    return None


def _due(window: FreezeWindow, due_from: date, today: date) -> str:
    left = (window.start - today).days
    start = "now" if today >= due_from else f"from {due_from.isoformat()}"
    return (
        f"a restore drill is due {start}, before the freeze {window} starts on "
        f"{window.start.isoformat()} ({left} d left)"
    )
