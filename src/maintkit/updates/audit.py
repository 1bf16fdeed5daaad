"""Reading audit results: ``composer audit --format=json``, severities, thresholds.

Composer prints ``{"advisories": {PACKAGE: [ADVISORY, ...]}}`` (an empty list when there are
none: PHP encodes an empty array as ``[]``); composer 2.6+ adds ``severity`` to each advisory and an
``abandoned`` map. An advisory without a severity (composer before 2.6, or a source that does not
say) counts as ``high``: unknown must not pass a gate meant to stop dangerous updates.
"""

from __future__ import annotations

import json
import re
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


#: wp-cli's core verify-checksums warnings: which file, and what is wrong with it
_CORE_LINES = (
    (re.compile(r"File doesn't verify against checksum: (.+)$"), "changed"),
    (re.compile(r"File doesn't exist: (.+)$"), "missing"),
    (re.compile(r"File should not exist: (.+)$"), "added"),
)
#: the warning form of a plugin's mismatch: ``NAME: Checksum does not match (FILE)``
_PLUGIN_LINE = re.compile(
    r"^(?:Warning: )?([\w.-]+): (Checksum does not match|File is missing|File was added) \((.+)\)$"
)


def parse_wp_checksums(text: str) -> list[dict[str, str]]:
    """The files ``wp core verify-checksums`` and ``wp plugin verify-checksums`` name, each as
    ``{scope: core | plugin NAME, file, problem}``: the warning lines, and the rows of
    ``--format=json`` (``plugin_name``, ``file``, ``message``) when the output holds them."""
    found: list[dict[str, str]] = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            try:
                rows = json.loads(line)
            except ValueError:
                rows = []
            for row in rows if isinstance(rows, list) else []:
                if isinstance(row, dict) and row.get("file"):
                    found.append(
                        {
                            "scope": f"plugin {row.get('plugin_name', '?')}",
                            "file": str(row["file"]),
                            "problem": str(row.get("message", "")),
                        }
                    )
            continue
        plugin = _PLUGIN_LINE.match(line)
        if plugin:
            found.append(
                {"scope": f"plugin {plugin.group(1)}", "file": plugin.group(3), "problem": plugin.group(2)}
            )
            continue
        for pattern, problem in _CORE_LINES:
            core = pattern.search(line)
            if core:
                found.append({"scope": "core", "file": core.group(1).strip(), "problem": problem})
                break
    return found
