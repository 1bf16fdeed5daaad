"""The integrity watch: a site's code hash list against the previous one, kept on the control node.

Why on the control node (beside the journals, private files) and not on the host: whoever changed
the shop's files could change a list kept there too. Why "outside an update run": an update changes
code by design; the change is expected when this run changes production, or when the history holds
an update or a release of the site since the previous list. Otherwise it is a warning naming the
files; the new list becomes the baseline either way (one warning per change, not one per night),
and the finding is kept (``SITE-findings.jsonl``) for ``status`` and the report.

The same view takes what the ``audit`` step finds (:func:`check_audit`): WordPress core and plugin
files that differ from wordpress.org's checksums (``kind: wordpress-checksums``) and ``composer
audit`` advisories (``kind: composer-audit``). Those are warned whether or not an update runs (a
tampered core file is news either way), but only when they are **new** against the previous audit
of the site (its last result is kept in ``SITE-audit-KIND.json``): an advisory nobody has fixed
yet is reported once, not every night.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from maintkit.fsmodes import make_private_dirs, open_private
from maintkit.history.mapping import as_utc

#: whether the history holds an update or a release of (site, env) since a moment: read through
#: SQLAlchemy (:func:`updated_since_in_session`) or, after a run on the embedded SQLite, with
#: ``sqlite3`` (:func:`maintkit.history.plaintrends.updated_since`), so a nightly run's comparison
#: does not import SQLAlchemy (0.3 CPU-seconds a site)
UpdatedSince = Callable[[str, str, datetime], bool]

#: how long a finding shows on ``status``
SHOWN = timedelta(days=7)


def diff(before: dict[str, str], after: dict[str, str]) -> dict[str, list[str]]:
    """Files added, changed and removed from ``before`` to ``after`` (path -> hash), sorted."""
    return {
        "added": sorted(set(after) - set(before)),
        "changed": sorted(p for p in set(after) & set(before) if after[p] != before[p]),
        "removed": sorted(set(before) - set(after)),
    }


def folder(base: Path, env: str) -> Path:
    return base / "integrity" / env


def check(
    base: Path,
    updated_since: UpdatedSince | None,
    site: str,
    env: str,
    files: dict[str, str],
    run_id: str,
    now: datetime,
    updating: bool,
) -> dict[str, Any] | None:
    """Compare ``files`` with the site's previous list, store the new one; return the finding or None."""
    where = folder(base, env)
    make_private_dirs(where)
    baseline = where / f"{site}.json"
    previous = json.loads(baseline.read_text()) if baseline.is_file() else None
    _write(baseline, {"at": now.isoformat(), "run_id": run_id, "files": files})
    if previous is None:
        return None
    changes = diff(previous["files"], files)
    if not any(changes.values()) or updating:
        return None
    if updated_since is not None and updated_since(site, env, as_utc(datetime.fromisoformat(previous["at"]))):
        return None
    finding = {"at": now.isoformat(), "run_id": run_id, "since_run": previous["run_id"], **changes}
    descriptor = open_private(where / f"{site}-findings.jsonl")
    with os.fdopen(descriptor, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(finding) + "\n")
    return finding


#: the audit's findings kinds and how each names its items
AUDIT_KINDS = {
    "wordpress-checksums": "WordPress files differ from wordpress.org's checksums",
    "composer-audit": "composer audit reports security advisories",
}


def audit_items(data: dict[str, Any]) -> tuple[str, list[str]] | None:
    """An ``audit`` step's data as (kind, one line per file or advisory; empty when clean); None
    when it is no audit's data.
    A WordPress audit's data has ``files`` and ``failures``; composer's has ``advisories``."""
    if "files" in data or "failures" in data:
        rows = [r for r in data.get("files") or [] if isinstance(r, dict)]
        items = [f"{r.get('scope')}: {r.get('file')} ({r.get('problem')})" for r in rows]
        if not items and data.get("failures"):
            items = [str(f) for f in data["failures"]]  # a failure whose files could not be read
        return "wordpress-checksums", sorted(set(items))  # none: the next mismatch is news again
    if "advisories" not in data:
        return None
    advisories = [a for a in data.get("advisories") or [] if isinstance(a, dict)]
    items = [f"{a.get('package')}: {a.get('title')} [{a.get('severity')}]" for a in advisories]
    return "composer-audit", sorted(set(items))


def check_audit(
    base: Path, site: str, env: str, kind: str, items: list[str], run_id: str, now: datetime
) -> dict[str, Any] | None:
    """Keep this audit's items; return a finding with those not in the previous audit (or None)."""
    where = folder(base, env)
    make_private_dirs(where)
    state = where / f"{site}-audit-{kind}.json"
    previous = set(json.loads(state.read_text())["items"]) if state.is_file() else set()
    _write(state, {"at": now.isoformat(), "run_id": run_id, "items": items})
    new = [item for item in items if item not in previous]
    if not new:
        return None
    finding = {
        "kind": kind,
        "at": now.isoformat(),
        "run_id": run_id,
        "summary": AUDIT_KINDS[kind],
        "items": new,
    }
    descriptor = open_private(where / f"{site}-findings.jsonl")
    with os.fdopen(descriptor, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(finding) + "\n")
    return finding


def latest(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest finding of each kind (file changes, checksums, advisories), oldest first."""
    newest: dict[str, dict[str, Any]] = {}
    for finding in found:
        newest[finding.get("kind", "files")] = finding
    return sorted(newest.values(), key=lambda f: str(f["at"]))


def findings(
    base: Path, site: str, env: str, since: datetime, until: datetime | None = None
) -> list[dict[str, Any]]:
    """The findings of a site environment from ``since`` (to ``until``), oldest first."""
    path = folder(base, env) / f"{site}-findings.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        at = datetime.fromisoformat(item["at"])
        if at >= since and (until is None or at < until):
            out.append(item)
    return out


def describe(finding: dict[str, Any], limit: int = 10) -> str:
    """``files changed outside an update: added x.php; changed index.php`` (at most ``limit`` names each);
    an audit's finding: its summary and items."""
    if finding.get("kind") in AUDIT_KINDS:
        names = finding.get("items") or []
        more = f" and {len(names) - limit} more" if len(names) > limit else ""
        return f"{finding['summary']}: " + "; ".join(names[:limit]) + more
    parts = []
    for kind in ("added", "changed", "removed"):
        names = finding.get(kind) or []
        if names:
            shown = ", ".join(names[:limit]) + (
                f" and {len(names) - limit} more" if len(names) > limit else ""
            )
            parts.append(f"{kind} {shown}")
    return f"files changed outside an update run (since run {finding['since_run']}): " + "; ".join(parts)


def updated_since_in_session(session: Any) -> UpdatedSince:
    """:data:`UpdatedSince` read through a SQLAlchemy session (any history database)."""
    from sqlalchemy import select

    from maintkit.history.models import Release, Update

    def updated(site: str, env: str, since: datetime) -> bool:
        for model in (Update, Release):
            query = select(model.id).where(model.site == site, model.env == env, model.at >= since).limit(1)
            if session.execute(query).first() is not None:
                return True
        return False

    return updated


def _write(path: Path, data: dict[str, Any]) -> None:
    temporary = path.with_suffix(".tmp")
    descriptor = open_private(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    temporary.replace(path)
