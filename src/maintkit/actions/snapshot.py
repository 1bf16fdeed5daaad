"""``snapshot``: pull a site's database and files from its host into every storage target at once.

Pull model (DESIGN.md): the host runs ``mariadb-dump … | zstd`` and ``tar … | zstd``; the bytes
cross the SSH channel once and are hashed, counted, checked and written to every target while they
stream. Servers never hold storage credentials. Nothing becomes visible before it is complete: each
artifact is committed only when its command succeeded (and, for a dump, its ``-- Dump completed``
trailer arrived); the manifest is written last, so a folder without one is an unfinished snapshot.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from maintkit import __version__
from maintkit.actions.base import Action, ActionParams, ActionResult, StepContext
from maintkit.errors import StepFailed
from maintkit.sources.appconfig import fingerprint_command, parse_fingerprint
from maintkit.sources.compression import SUFFIX, Compression, strip_markers
from maintkit.sources.database import DatabaseSource, dump_command, parse_tables, tables_command
from maintkit.sources.files import FilesSource, tar_command
from maintkit.sources.probe import parse_probe, probe_command
from maintkit.sources.trailer import DumpTrailerWatcher
from maintkit.storage.base import FanOut, Target, new_snapshot_id, snapshot_key, snapshot_prefix
from maintkit.storage.manifest import Artifact, DatabaseInfo, Manifest, Table, write_manifest
from maintkit.storage.sites import site_name, site_targets
from maintkit.transport.base import CommandResult


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

    @model_validator(mode="after")
    def _something(self) -> SnapshotParams:
        if self.database is None and self.files is None:
            raise ValueError("give 'database', 'files' or both")
        return self


class Tee:
    """A sink that writes every chunk to several sinks (the targets' fan-out and the trailer check)."""

    def __init__(self, *sinks: Any) -> None:
        self.sinks = sinks

    def write(self, data: bytes) -> int:
        for sink in self.sinks:
            sink.write(data)
        return len(data)


class Progress:
    """Emit ``progress`` events (bytes, rate) at most once a second while an artifact streams."""

    def __init__(self, ctx: StepContext, artifact: str) -> None:
        self.ctx, self.artifact = ctx, artifact
        self.started = self.last = time.monotonic()

    def __call__(self, size: int) -> None:
        now = time.monotonic()
        if now - self.last >= 1.0:
            self.last = now
            rate = size / max(now - self.started, 1e-6)
            self.ctx.emit("progress", artifact=self.artifact, bytes=size, rate=round(rate))


class Snapshot(Action):
    name = "snapshot"
    summary = "Stream the site's database dump and files from the host to every storage target."
    Params = SnapshotParams

    def plan(self, params: SnapshotParams, ctx: StepContext) -> list[str]:
        plan = [probe_command()]
        if params.database:
            plan += [tables_command(params.database)[0]] if params.count_rows else []
            plan.append(dump_command(params.database, params.compression)[0])
        if params.files:
            plan.append(tar_command(params.files, params.compression))
        targets = ", ".join(t.describe() for t in site_targets(ctx.vars, params.targets))
        plan.append(f"(control node) stream, hash and write each artifact to: {targets}; manifest last")
        return plan

    def run(self, params: SnapshotParams, ctx: StepContext) -> ActionResult:
        targets = site_targets(ctx.vars, params.targets)
        for target in targets:
            target.check()  # a missing bucket or Object Lock fails before the host does any work
        site, env = site_name(ctx.vars), str(ctx.vars["maintkit_env"])
        created = datetime.now(UTC)
        existing = targets[0].list_dir(snapshot_prefix(site, env))
        snapshot_id = new_snapshot_id(created, existing)
        compression = self._compression(params, ctx)
        manifest = Manifest(
            snapshot_id=snapshot_id,
            site=site,
            env=env,
            host=ctx.host.name,
            run_id=ctx.run_id,
            tool_version=__version__,
            created=created,
            finished=created,
        )
        if params.database:
            self._database(params, ctx, targets, manifest, compression)
        if params.files:
            self._files(params, ctx, targets, manifest, compression)
            manifest.fingerprint = self._fingerprint(params.files, ctx)
        manifest.finished = datetime.now(UTC)
        for target in targets:
            write_manifest(target, manifest)
        size = manifest.size
        return ActionResult(
            changed=True,
            msg=f"snapshot {snapshot_id}: {len(manifest.artifacts)} artifact(s), {size} bytes, "
            f"to {', '.join(t.name for t in targets)}",
            data={
                "snapshot_id": snapshot_id,
                "bytes": size,
                "targets": {t.name: snapshot_prefix(site, env, snapshot_id) for t in targets},
                "artifacts": {a.name: {"size": a.size, "sha256": a.sha256} for a in manifest.artifacts},
            },
        )

    # -- phases ------------------------------------------------------------------------------------

    def _compression(self, params: SnapshotParams, ctx: StepContext) -> Compression:
        """Ask the host what it has (one round trip); fail before any upload opens if it can't work."""
        probe = ctx.run(probe_command(), timeout=60)
        tools = parse_probe(probe.stdout)
        problems = tools.problems(
            database=params.database is not None,
            files=params.files is not None,
            app_config=bool(params.database and params.database.from_),
        )
        if problems:
            raise StepFailed(f"{ctx.host.name} cannot take this snapshot: {'; '.join(problems)}")
        if params.compression != "auto":
            return params.compression
        return tools.compression

    def _database(
        self,
        params: SnapshotParams,
        ctx: StepContext,
        targets: list[Target],
        manifest: Manifest,
        compression: Compression,
    ) -> None:
        assert params.database is not None
        source = params.database
        counts: dict[str, int] = {}
        started = time.monotonic()
        if params.count_rows:
            command, stdin = tables_command(source)
            listed = ctx.run(command, stdin=stdin, timeout=params.timeout)
            _require(listed, "counting the database's rows")
            listing = parse_tables(listed.stdout)
            counts = listing.tables
            manifest.timings["count_rows"] = round(time.monotonic() - started, 3)
        name = f"db.sql{SUFFIX[compression]}"
        watcher = DumpTrailerWatcher(compression)
        command, stdin = dump_command(source, compression)
        result, fan = self._stream(ctx, targets, manifest, name, command, stdin, params.timeout, watcher)
        watcher.close()
        if result.rc != 0 or not watcher.ok:
            fan.abort()
            why = f"exit status {result.rc}" if result.rc != 0 else watcher.reason
            raise StepFailed(f"database dump failed ({why}); nothing was kept. {_stderr(result)}")
        fan.commit()
        manifest.artifacts.append(
            Artifact(
                name,
                fan.writers[0].key,
                fan.size,
                fan.sha256,
                compression,
                "none",
                f"dump of {source.describe()} on {ctx.host.name}",
            )
        )
        database = listing.database if params.count_rows else source.name or ""
        manifest.database = DatabaseInfo(database, [Table(t, counts.get(t)) for t in watcher.tables])

    def _files(
        self,
        params: SnapshotParams,
        ctx: StepContext,
        targets: list[Target],
        manifest: Manifest,
        compression: Compression,
    ) -> None:
        assert params.files is not None
        name = f"files.tar{SUFFIX[compression]}"
        result, fan = self._stream(
            ctx, targets, manifest, name, tar_command(params.files, compression), None, params.timeout
        )
        if result.rc != 0:
            fan.abort()
            raise StepFailed(
                f"archiving {params.files.root} failed (exit status {result.rc}); nothing was kept. "
                f"{_stderr(result)}"
            )
        fan.commit()
        paths = " ".join(params.files.paths)
        manifest.artifacts.append(
            Artifact(
                name,
                fan.writers[0].key,
                fan.size,
                fan.sha256,
                compression,
                "none",
                f"tar of {paths} under {params.files.root} on {ctx.host.name}",
            )
        )

    def _stream(
        self,
        ctx: StepContext,
        targets: list[Target],
        manifest: Manifest,
        name: str,
        command: str,
        stdin: bytes | None,
        timeout: float | None,
        *extra: Any,
    ) -> tuple[CommandResult, FanOut]:
        """Run ``command`` with its stdout streamed into every target; abort the uploads on any error."""
        key = snapshot_key(manifest.site, manifest.env, manifest.snapshot_id, name)
        fan = FanOut.open(targets, key, progress=Progress(ctx, name))
        started = time.monotonic()
        try:
            result = ctx.run(command, stdin=stdin, stdout=Tee(fan, *extra), timeout=timeout)
        except BaseException:
            fan.abort()
            raise
        elapsed = time.monotonic() - started
        manifest.timings[name] = round(elapsed, 3)
        ctx.emit(
            "transferred",
            artifact=name,
            bytes=fan.size,
            seconds=round(elapsed, 3),
            rate=round(fan.size / max(elapsed, 1e-6)),
        )
        return result, fan

    def _fingerprint(self, files: FilesSource, ctx: StepContext) -> dict[str, Any]:
        result = ctx.run(fingerprint_command(files.cms, files.root), timeout=60)
        return parse_fingerprint(result.stdout) if result.rc == 0 else {}


def _require(result: CommandResult, what: str) -> None:
    if result.rc != 0:
        raise StepFailed(f"{what} failed (exit status {result.rc}): {_stderr(result)}")


def _stderr(result: CommandResult) -> str:
    return strip_markers(result.stderr).strip()[-2000:]
