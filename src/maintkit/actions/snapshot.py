"""``snapshot``: pull a site's database and files from its host into every storage target at once.

The adapter: the parameter model, the plan ``--check`` prints, a call into
:func:`~maintkit.jobs.snapshot.take_snapshot` (the pull, the fan-out to every target, the manifest
written last, the discard on any failure), and the mapping of its manifest to an ``ActionResult``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from maintkit.actions.base import Action, ActionParams, StepContext
from maintkit.jobs.hashlist import HashList
from maintkit.jobs.snapshot import reads_app_config, take_snapshot
from maintkit.model.results import ActionResult
from maintkit.sources.codehashes import DEFAULT_EXCLUDE, start_command
from maintkit.sources.database import DatabaseSource, dump_command
from maintkit.sources.diskspace import DiskReading, disk_command, disk_paths, parse_disk
from maintkit.sources.files import FilesSource, tar_command
from maintkit.sources.identity import (
    SourceIdentity,
    database_identity_command,
    files_identity_command,
    identity_and_tables_command,
)
from maintkit.sources.probe import probe_command
from maintkit.storage.base import snapshot_prefix
from maintkit.storage.restic import backup_command
from maintkit.storage.sites import site_encryption, site_files_engine, site_targets


class SnapshotParams(ActionParams):
    database: DatabaseSource | None = Field(
        None, description="The database to dump: {name, user, password, host, port} or {from: magento, root}."
    )
    files: FilesSource | None = Field(None, description="The files to archive: {root, paths, exclude, cms}.")
    targets: list[str] | None = Field(
        None, description="Names of the storage targets to write (default: all)."
    )
    compression: Literal["auto", "zstd", "gzip"] = Field(
        "auto", description="Compression on the host: zstd where installed, else gzip (auto)."
    )
    count_rows: bool = Field(True, description="Record every table's exact row count in the manifest.")
    timeout: float | None = Field(None, description="Seconds each transfer may take (default: the step's).")
    integrity: bool = Field(
        False,
        description="Integrity watch: make the SHA-256 list of the site's code files on the host while "
        "the snapshot streams; compared after the run with the previous list (files changed outside "
        "an update run are warned).",
    )
    integrity_exclude: list[str] = Field(
        default_factory=lambda: list(DEFAULT_EXCLUDE),
        description="find -path patterns (from ./) the hash list leaves out: media, caches, generated files.",
    )

    @model_validator(mode="after")
    def _something(self) -> SnapshotParams:
        if self.database is None and self.files is None:
            raise ValueError("give 'database', 'files' or both")
        if self.integrity and self.files is None:
            raise ValueError("integrity hashes the files' root: give 'files' too")
        return self


class Snapshot(Action):
    name = "snapshot"
    summary = "Stream the site's database dump and files from the host to every storage target."
    idempotent = True  # a retry takes a new snapshot; the failed one is removed from every target
    Params = SnapshotParams

    def plan(self, params: SnapshotParams, ctx: StepContext) -> list[str]:
        plan = [probe_command(php=reads_app_config(params))]
        if params.integrity and params.files:
            plan.append(start_command(params.files.root, params.integrity_exclude))
        if params.database:
            facts = identity_and_tables_command if params.count_rows else database_identity_command
            plan.append(facts(params.database)[0])
            plan.append(dump_command(params.database, params.compression)[0])
        targets = ", ".join(t.describe() for t in site_targets(ctx.vars, params.targets, ctx.redactor))
        if params.files:
            plan.append(files_identity_command(params.files.root))
            if site_files_engine(ctx.vars, ctx.redactor) == "restic":
                plan += _restic_plan(params.files, targets)
            else:
                plan.append(tar_command(params.files, params.compression))
        encryption = site_encryption(ctx.vars, ctx.redactor)
        encrypt = f", encrypt with age to {len(encryption.recipients)} recipient(s)" if encryption else ""
        plan.append(
            f"(control node) stream{encrypt}, hash and write each artifact to: {targets}; manifest last"
        )
        if params.integrity:
            plan.append("read the hash list back from the host once the snapshot is stored (and remove it)")
        plan.append("df -P -B1 of the files' and the (local) database's filesystems: the disk trend")
        return plan

    def run(self, params: SnapshotParams, ctx: StepContext) -> ActionResult:
        targets = site_targets(ctx.vars, params.targets, ctx.redactor)
        hashes = (
            HashList.start(ctx, params.files.root, params.integrity_exclude)
            if (params.integrity and params.files)
            else None
        )
        try:
            manifest = take_snapshot(params, ctx, targets)
        except BaseException:
            if isinstance(hashes, HashList):
                hashes.stop()
            raise
        integrity = _hash_list(hashes)
        disk = read_disk(ctx, manifest.identity)
        msg = (
            f"snapshot {manifest.snapshot_id}: {len(manifest.artifacts)} artifact(s), "
            f"{manifest.size} bytes, to {', '.join(t.name for t in targets)}"
        )
        if integrity is not None:
            msg += (
                f"; {integrity['count']} files hashed"
                if "files" in integrity
                else f"; warning: {integrity['error']}"
            )
        return ActionResult(
            changed=True,
            msg=msg,
            data={
                "snapshot_id": manifest.snapshot_id,
                "bytes": manifest.size,
                "targets": {
                    t.name: snapshot_prefix(manifest.site, manifest.env, manifest.snapshot_id)
                    for t in targets
                },
                "artifacts": {a.name: {"size": a.size, "sha256": a.sha256} for a in manifest.artifacts},
                "disk": [reading.as_json() for reading in disk],
                **({"integrity": integrity} if integrity is not None else {}),
            },
        )


def _hash_list(hashes: HashList | str | None) -> dict[str, object] | None:
    """The list read back (``files``), or why there is none (``error``); None when not asked for."""
    if hashes is None:
        return None
    if isinstance(hashes, str):
        return {"error": hashes}
    return hashes.collect()


def read_disk(ctx: StepContext, identity: SourceIdentity | None) -> list[DiskReading]:
    """Free space of the snapshot's filesystems (the disk trend), read once the snapshot is complete.

    Why never an error: the snapshot is stored by now; a ``df`` that fails (or a connection lost
    at this point) costs one point of a trend, not the night's backup.
    """
    paths = disk_paths(identity)
    if not paths:
        return []
    try:
        result = ctx.run(disk_command(paths), timeout=30)
    except Exception:  # a missing point, never a failed backup (see the docstring)
        return []
    return parse_disk(result.stdout, identity) if result.rc == 0 else []


def _restic_plan(files: FilesSource, targets: str) -> list[str]:
    """What ``files_engine: restic`` runs (jobs/engine_files.py), secrets left out."""
    backup = backup_command(files.root, files.paths, tag="maintkit-SNAPSHOT_ID", exclude=files.all_excludes())
    return [
        "restic version",
        "(control node) rclone serve restic --append-only on 127.0.0.1 for the site's repository in the "
        "first target, forwarded to the host's 127.0.0.1 over its SSH connection",
        f"(RESTIC_REPOSITORY, RESTIC_PASSWORD sent with the command) {backup}",
        f"(control node) restic copy of that engine snapshot into the site's repository in: {targets}",
    ]
