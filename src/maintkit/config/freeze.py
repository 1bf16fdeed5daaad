"""Reading freeze windows as a user writes them (portfolio key or inventory variable ``freeze``).

The format, in ``portfolio.yml`` (defaults, site or environment) or as a host/group variable::

    freeze:
      - {from: 2026-11-20, to: 2027-01-05, reason: "Black Friday to the January sales"}

Dates are calendar days (both included), compared with today's date in UTC: a freeze is a
business decision taken in days, and one rule for every host keeps the run's answer the same
wherever the control node is.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from maintkit.model.freeze import FreezeWindow
from maintkit.text.yamlload import type_name

KEYS = ("from", "to", "reason")
SHAPE = "{from: DATE, to: DATE, reason: TEXT}"


def parse_freeze(value: Any) -> tuple[list[FreezeWindow], str | None]:
    """Given the written value, return its windows and the first problem (None when it is valid)."""
    if value is None:
        return [], None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        return (
            [],
            f"'freeze' must be a list of {SHAPE}, not {type_name(value)}",
        )
    windows: list[FreezeWindow] = []
    for index, item in enumerate(value):
        where = f"'freeze' item {index + 1}"
        if not isinstance(item, dict):
            return (
                [],
                f"{where} must be a mapping {SHAPE}, not {type_name(item)}",
            )
        unknown = [str(k) for k in item if k not in KEYS]
        if unknown:
            return [], f"{where}: unknown key '{unknown[0]}' (a window holds only from, to, reason)"
        start, end = _day(item.get("from")), _day(item.get("to"))
        if start is None or end is None:
            bad = "from" if start is None else "to"
            return [], f"{where}: '{bad}' must be a date YYYY-MM-DD, not {item.get(bad)!r}"
        if end < start:
            return [], f"{where}: 'to' ({end.isoformat()}) is before 'from' ({start.isoformat()})"
        reason = item.get("reason", "")
        if not isinstance(reason, str | int | float) or isinstance(reason, bool):
            return [], f"{where}: 'reason' must be text, not {type_name(reason)}"
        windows.append(FreezeWindow(start, end, str(reason)))
    return windows, None


def freeze_problem(value: Any) -> str | None:
    """The problem of a ``freeze`` variable's value, or None (the run's settings check)."""
    return parse_freeze(value)[1]


def _day(value: Any) -> date | None:
    if isinstance(value, date):  # YAML reads an unquoted 2026-11-20 as a date
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            return None
    return None
