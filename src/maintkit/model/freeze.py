"""Freeze windows: the dates (peak season) when a site's production must not change.

Why in the leaf: the portfolio (config), the run's guard (cli) and ``status`` (history) all read
the same windows; a plain dataclass lets each layer take them as values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class FreezeWindow:
    """``start`` to ``end``, both days included, with why (``"Black Friday"``)."""

    start: date
    end: date
    reason: str = ""

    def covers(self, day: date) -> bool:
        return self.start <= day <= self.end

    def __str__(self) -> str:
        why = f" ({self.reason})" if self.reason else ""
        return f"{self.start.isoformat()} → {self.end.isoformat()}{why}"


def active_window(windows: Iterable[FreezeWindow], day: date) -> FreezeWindow | None:
    """The first window covering ``day``, or None."""
    return next((w for w in windows if w.covers(day)), None)


def next_window(windows: Iterable[FreezeWindow], day: date) -> FreezeWindow | None:
    """The window starting soonest after ``day`` (not yet begun), or None."""
    upcoming = [w for w in windows if w.start > day]
    return min(upcoming, key=lambda w: w.start) if upcoming else None
