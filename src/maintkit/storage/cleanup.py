"""Leaving nothing behind: discard a failed snapshot everywhere, sweep what an earlier failure left.

Why a module of its own: DESIGN.md says one snapshot is the same artifacts in every target, and a
folder without manifest is unfinished. A snapshot that fails after one artifact was committed (the
dump went through, the files upload broke) would otherwise leave a committed ``db.sql.zst`` in every
target that took it, and a broken S3 connection leaves an incomplete multipart upload (invisible in
listings, billed). So a failed snapshot is removed from every target at once; what cannot be removed
then (the store is unreachable) is remembered and removed by the next snapshot of the same site and
environment (a step retry or the next run), which holds the environment lock, before it writes.

What a sweep may touch, and why it is safe: only folders of ``SITE/ENV/`` without manifest whose
snapshot id is older than the run that sweeps (or that this process failed to discard), and S3
multipart uploads under ``SITE/ENV/`` started before that run. The environment lock keeps every other
run of the environment out; snapshots being taken by this run (another host of the same site) are
newer than its start and are left alone.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime

from maintkit.storage.base import Target, parse_snapshot_id, snapshot_prefix
from maintkit.storage.manifest import MANIFEST_NAME

log = logging.getLogger(__name__)

_left_over: set[tuple[str, str]] = set()  # (target description, prefix) a discard could not remove
_left_over_lock = threading.Lock()


@dataclass
class Discarded:
    """What discarding a failed snapshot did: the targets cleaned, and those it could not reach."""

    cleaned: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # names of the targets that could not be cleaned

    def describe(self) -> str:
        """One sentence for the step's error message."""
        if not self.failed:
            return "nothing was kept in any target"
        return (
            f"what was written so far could not be removed from {', '.join(self.failed)} (it did not "
            "answer); it has no manifest, so it is never listed as a snapshot, and the next snapshot "
            "of this site removes it"
        )


def discard_snapshot(targets: list[Target], site: str, env: str, snapshot_id: str) -> Discarded:
    """Remove every object and unfinished upload of one snapshot from every target; never raise."""
    prefix = snapshot_prefix(site, env, snapshot_id)
    result = Discarded()
    for target in targets:
        try:
            target.delete_prefix(prefix)
            target.abort_unfinished_uploads(prefix)
        except Exception as error:  # the store may be down: that is why the snapshot failed
            log.info("could not discard %s from %s: %s", prefix, target.describe(), error)
            result.failed.append(target.name)
            with _left_over_lock:
                _left_over.add((target.describe(), prefix))
            continue
        result.cleaned.append(target.name)
    return result


def sweep_debris(targets: list[Target], site: str, env: str, run_started: datetime | None) -> list[str]:
    """Remove unfinished snapshots an earlier failure left in ``SITE/ENV/``; return what was removed.

    Called by a snapshot before it writes, under the environment lock (see the module's docstring).
    A failure to sweep is logged and does not stop the snapshot: the debris is no worse for it.
    """
    base = snapshot_prefix(site, env)
    removed: list[str] = []
    for target in targets:
        try:
            with _left_over_lock:
                remembered = {
                    p for where, p in _left_over if where == target.describe() and p.startswith(base)
                }
            complete: set[str] = set()
            seen = set(target.list_dir(base))  # also folders holding only local .part files
            for key, _size, _modified in target.list_keys(base):  # one listing, not a HEAD per id
                snapshot_id, _, rest = key[len(base) :].partition("/")
                seen.add(snapshot_id)
                if rest == MANIFEST_NAME:
                    complete.add(snapshot_id)
            for snapshot_id in sorted(seen - complete):
                prefix = snapshot_prefix(site, env, snapshot_id)
                taken = parse_snapshot_id(snapshot_id)
                older = run_started is not None and taken is not None and taken < run_started
                if (prefix in remembered or older) and target.delete_prefix(prefix):
                    removed.append(f"{target.name}:{prefix}")
            for prefix in remembered:
                target.abort_unfinished_uploads(prefix)
                with _left_over_lock:
                    _left_over.discard((target.describe(), prefix))
            if run_started is not None and target.abort_unfinished_uploads(base, before=run_started):
                removed.append(f"{target.name}:{base} (incomplete uploads)")
        except Exception as error:
            log.warning("could not sweep unfinished snapshots in %s: %s", target.describe(), error)
    return removed
