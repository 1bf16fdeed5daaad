"""Operations on stored snapshots shared by the actions and the ``maintkit snapshots`` commands."""

from __future__ import annotations

from datetime import UTC, datetime

from maintkit.model.problems import StepFailed
from maintkit.storage.base import Target, snapshot_prefix
from maintkit.storage.engine_ops import EnginePrune, prune_engine
from maintkit.storage.manifest import Manifest, list_snapshots, read_manifest
from maintkit.storage.retention import UNFINISHED_GRACE, Decision, RetentionPolicy, select_to_keep

#: ``before:ID`` names the newest complete snapshot older than ID
BEFORE = "before:"


def resolve_snapshot(target: Target, site: str, env: str, ref: str) -> Manifest:
    """Given ``latest``, ``before:ID`` or a snapshot id, return that complete snapshot's manifest.

    Raise StepFailed naming what exists when there is no such complete snapshot.
    """
    if ref == "latest" or ref.startswith(BEFORE):
        # ``before:ID``: the newest complete snapshot older than ID (ids sort by time), whether or not
        # ID itself still exists: what to restore when a run's own pre-update snapshot is gone,
        # without picking up a snapshot taken after the run (of the database the run changed)
        limit = ref[len(BEFORE) :] if ref.startswith(BEFORE) else None
        complete = [
            s
            for s in list_snapshots(target, site, env)
            if s.complete and s.problem is None and (limit is None or s.id < limit)
        ]
        if not complete:
            older = f" older than {limit}" if limit is not None else ""
            raise StepFailed(f"no complete snapshot of {site}/{env}{older} in target {target.name}")
        ref = complete[-1].id
    manifest = read_manifest(target, site, env, ref)
    if manifest is None:
        raise StepFailed(
            f"no complete snapshot {ref} of {site}/{env} in target {target.name} "
            "(unknown id, or an unfinished snapshot without manifest)"
        )
    return manifest


def prune_target(
    target: Target,
    site: str,
    env: str,
    policy: RetentionPolicy,
    dry_run: bool = False,
    now: datetime | None = None,
) -> tuple[list[Decision], list[Decision]]:
    """Apply ``policy`` to the snapshots of ``site``/``env`` in ``target``; return (kept, pruned).

    With ``dry_run`` nothing is deleted: the same decisions are returned. Incomplete uploads (S3
    multipart uploads a failed snapshot could not abort, invisible in listings) older than the
    unfinished-snapshot grace are aborted too: prune holds no lock, so younger ones may be a
    snapshot being written.
    """
    keep, prune, _engine = prune_target_with_engine(target, site, env, policy, dry_run, now)
    return keep, prune


def prune_target_with_engine(
    target: Target,
    site: str,
    env: str,
    policy: RetentionPolicy,
    dry_run: bool = False,
    now: datetime | None = None,
) -> tuple[list[Decision], list[Decision], EnginePrune]:
    """:func:`prune_target`, also saying what the site's restic repository (if any) had forgotten.

    The engine snapshots of the pruned snapshots are forgotten after their folders are deleted:
    should the engine fail then, what it kept is debris (tagged, without manifest), which the next
    prune forgets. Old tar snapshots beside engine ones are pruned by the same rules.
    """
    now = now or datetime.now(UTC)
    snapshots = list_snapshots(target, site, env)
    keep, prune = select_to_keep(snapshots, policy, now)
    if not dry_run:
        for decision in prune:
            target.delete_prefix(snapshot_prefix(site, env, decision.snapshot.id))
        target.abort_unfinished_uploads(snapshot_prefix(site, env), before=now - UNFINISHED_GRACE)
    complete = [s.id for s in snapshots if s.complete]
    engine = prune_engine(target, site, env, [d.snapshot.id for d in prune], complete, now, dry_run=dry_run)
    return keep, prune, engine
