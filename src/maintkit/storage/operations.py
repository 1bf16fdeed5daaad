"""Operations on stored snapshots shared by the actions and the ``maintkit snapshots`` commands."""

from __future__ import annotations

from datetime import UTC, datetime

from maintkit.errors import StepFailed
from maintkit.storage.base import Target, snapshot_prefix
from maintkit.storage.manifest import Manifest, list_snapshots, read_manifest
from maintkit.storage.retention import UNFINISHED_GRACE, Decision, RetentionPolicy, select_to_keep


def resolve_snapshot(target: Target, site: str, env: str, ref: str) -> Manifest:
    """Given ``latest`` or a snapshot id, return that complete snapshot's manifest in ``target``.

    Raise StepFailed naming what exists when there is no such complete snapshot.
    """
    if ref == "latest":
        complete = [s for s in list_snapshots(target, site, env) if s.complete and s.problem is None]
        if not complete:
            raise StepFailed(f"no complete snapshot of {site}/{env} in target {target.name}")
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
    now = now or datetime.now(UTC)
    keep, prune = select_to_keep(list_snapshots(target, site, env), policy, now)
    if not dry_run:
        for decision in prune:
            target.delete_prefix(snapshot_prefix(site, env, decision.snapshot.id))
        target.abort_unfinished_uploads(snapshot_prefix(site, env), before=now - UNFINISHED_GRACE)
    return keep, prune
