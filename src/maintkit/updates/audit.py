"""Reading audit results: ``composer audit --format=json``, severities, thresholds.

Composer prints ``{"advisories": {PACKAGE: [ADVISORY, ...]}}`` (an empty list when there are
none: PHP encodes an empty array as ``[]``); composer 2.6+ adds ``severity`` to each advisory and an
``abandoned`` map. An advisory without a severity (composer before 2.6, or a source that does not
say) counts as ``high``: unknown must not pass a gate meant to stop dangerous updates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from maintkit.model.problems import StepFailed

Severity = Literal["low", "medium", "high", "critical"]
Threshold = Literal["low", "medium", "high", "critical", "never"]
RANK = {"low": 1, "medium": 2, "moderate": 2, "high": 3, "critical": 4}
UNKNOWN_SEVERITY = "high"


@dataclass(frozen=True)
class Advisory:
    package: str
    title: str
    severity: str
    cve: str | None
    link: str | None
    affected: str | None

    def describe(self) -> str:
        ident = f" ({self.cve})" if self.cve else ""
        return f"{self.package}: {self.title}{ident} [{self.severity}]"


def parse_composer_audit(stdout: str) -> tuple[list[Advisory], list[str]]:
    """Return (advisories, abandoned package names) from ``composer audit --format=json`` output."""
    start = stdout.find("{")
    try:
        document: Any = json.loads(stdout[start:]) if start >= 0 else None
    except ValueError as error:
        raise StepFailed(f"composer audit printed no JSON: {error}") from error
    if not isinstance(document, dict):
        raise StepFailed("composer audit printed no JSON object")
    advisories: list[Advisory] = []
    raw = document.get("advisories") or {}
    groups = raw.values() if isinstance(raw, dict) else [raw]
    for group in groups:
        for item in group if isinstance(group, list) else list(group.values()):
            if not isinstance(item, dict):
                continue
            severity = str(item.get("severity") or UNKNOWN_SEVERITY).lower()
            advisories.append(
                Advisory(
                    package=str(item.get("packageName", "?")),
                    title=str(item.get("title", "")),
                    severity=severity if severity in RANK else UNKNOWN_SEVERITY,
                    cve=item.get("cve") or None,
                    link=item.get("link") or None,
                    affected=item.get("affectedVersions") or None,
                )
            )
    abandoned = document.get("abandoned") or {}
    return advisories, sorted(abandoned) if isinstance(abandoned, dict) else []


def at_or_above(advisories: list[Advisory], threshold: Threshold) -> list[Advisory]:
    """The advisories whose severity reaches ``threshold`` (none for ``never``)."""
    if threshold == "never":
        return []
    floor = RANK[threshold]
    return [a for a in advisories if RANK.get(a.severity, RANK[UNKNOWN_SEVERITY]) >= floor]
