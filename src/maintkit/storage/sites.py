"""Which site a host is and where its snapshots live: the bridge from host variables to storage.

Why one place: the ``snapshot``, ``verify`` and ``prune`` actions and the ``maintkit snapshots``
commands must agree on a site's name and targets, or one would write where another never looks.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from maintkit.config.templating import render
from maintkit.errors import StepFailed
from maintkit.secrets import Redactor
from maintkit.storage.base import Target
from maintkit.storage.config import retention_from_vars, targets_from_vars
from maintkit.storage.retention import RetentionPolicy


def site_name(variables: Mapping[str, Any]) -> str:
    """The site a host is an instance of: the ``site`` variable, else the inventory host name."""
    return str(_value(variables, "site") or variables["inventory_hostname"])


def site_targets(
    variables: Mapping[str, Any], names: list[str] | None = None, redactor: Redactor | None = None
) -> list[Target]:
    """The storage targets of a host (``storage`` variable; the local default when absent).

    ``names`` picks some of them; an unknown name is an error that lists the known ones.
    """
    base = Path(str(variables.get("inventory_dir") or "."))
    targets = targets_from_vars(_value(variables, "storage", redactor), base)
    if names is None:
        return targets
    known = {t.name: t for t in targets}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise StepFailed(f"unknown storage target(s) {', '.join(unknown)}; this host has: {', '.join(known)}")
    return [known[n] for n in names]


def site_retention(variables: Mapping[str, Any], redactor: Redactor | None = None) -> RetentionPolicy:
    """The host's retention policy (``retention`` variable; keep everything when absent)."""
    return retention_from_vars(_value(variables, "retention", redactor))


def _value(variables: Mapping[str, Any], name: str, redactor: Redactor | None = None) -> Any:
    value = variables.get(name)
    return render(value, variables, redactor or Redactor()) if value is not None else None
