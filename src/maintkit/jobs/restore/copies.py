"""Which storage targets a restore may read, and which other ones hold a snapshot whose copy failed.

Why: an environment streams every snapshot to several targets at once (``storage:`` lists them) so
that one damaged copy is not a lost backup. When the copy a restore read turns out damaged (a
flipped byte, a truncated object, an unreadable bucket), the operator's next question is "where
else is it?": the restore's failure answers it with the other targets holding a complete copy
(their manifest present), and ``maintkit restore``/``drill`` print the command that reads one of
them (``--target NAME``).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from maintkit.jobs.restore.source import RestoreSource
from maintkit.model.problems import MaintkitError
from maintkit.secrets import Redactor
from maintkit.storage.base import Target
from maintkit.storage.operations import resolve_snapshot
from maintkit.storage.sites import site_targets


def candidate_targets(
    source: RestoreSource | None, site: str, variables: Mapping[str, Any], redactor: Redactor | None
) -> tuple[str, list[Target]]:
    """The environment whose snapshots a restore reads, and its storage targets, in the order listed.

    From the run's (or the step's) source environment when restoring into another one, else from
    this host's own ``storage``.
    """
    if source is not None:
        return source.env, source.targets(site)
    return str(variables["maintkit_env"]), site_targets(variables, None, redactor)


def pick_target(targets: list[Target], name: str | None, site: str, env: str) -> list[Target]:
    """``targets``, or only the one named ``name`` (``--target``); an unknown name says which exist."""
    if name is None:
        return targets
    chosen = [t for t in targets if t.name == name]
    if not chosen:
        known = ", ".join(t.name for t in targets) or "none"
        raise MaintkitError(
            f"no storage target named {name!r} for {site}/{env} (its targets: {known}; "
            "--target NAME picks one)"
        )
    return chosen


def no_snapshot_hint(env: str) -> str:
    """What ends a "no such snapshot" failure: how to find one, and the flags that name it."""
    return (
        f" (maintkit snapshots list --env {shlex.quote(env)} lists the complete ones: give one as "
        "SNAPSHOT to maintkit restore, or as --snapshot ID to maintkit drill; --target NAME reads "
        "one target)"
    )


def other_copies(targets: list[Target], failed: str, site: str, env: str, snapshot_id: str) -> list[str]:
    """The names of the targets other than ``failed`` that hold a complete ``snapshot_id`` (manifest
    present), in the order listed; a target that cannot be read is left out."""
    names = []
    for target in targets:
        if target.name == failed:
            continue
        try:
            resolve_snapshot(target, site, env, snapshot_id)
        except MaintkitError:
            continue
        names.append(target.name)
    return names


def fallback_hint(names: list[str], snapshot_id: str) -> str:
    """The sentence a failed copy's message ends with (empty when no other target holds it)."""
    if not names:
        return ""
    where = ", ".join(names)
    return (
        f"; snapshot {snapshot_id} is also in target{'s' if len(names) > 1 else ''} {where}: "
        f"restore from there with --target {names[0]}"
    )
