"""The snapshot job: pull a site's database and files from its host into every storage target at once.

Pull model (DESIGN.md): the host runs ``mariadb-dump … | zstd`` and ``tar … | zstd``; the bytes
cross the SSH channel once and are hashed, counted, checked and written to every target while they
stream. Servers never hold storage credentials. Nothing becomes visible before it is complete: each
artifact is committed only when its command succeeded (and, for a dump, its ``-- Dump completed``
trailer arrived); the manifest is written last, so a folder without one is an unfinished snapshot.

The ``snapshot`` action (:mod:`maintkit.actions.snapshot`) owns the parameter model; the job reads
it through :class:`SnapshotRequest`, so this module never imports the actions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from maintkit import __version__
from maintkit.jobs.context import HostContext
from maintkit.jobs.engine_files import EngineNight
from maintkit.jobs.progress import Progress
from maintkit.model.problems import MaintkitError, StepFailed
from maintkit.sources.appconfig import fingerprint_command, parse_fingerprint
from maintkit.sources.compression import SUFFIX, Compression, strip_markers
from maintkit.sources.database import DatabaseSource, dump_command
from maintkit.sources.files import FilesSource, tar_command
from maintkit.sources.identity import (
    DatabaseIdentity,
    SourceIdentity,
    database_identity_command,
    files_identity_command,
    identity_and_tables_command,
    parse_database_identity,
    parse_files_identity,
    parse_identity_and_tables,
)
from maintkit.sources.probe import parse_probe, probe_command
from maintkit.sources.trailer import DumpTrailerWatcher
from maintkit.storage.base import (
    StorageError,
    Target,
    new_snapshot_id,
    parse_snapshot_id,
    snapshot_key,
    snapshot_prefix,
)
from maintkit.storage.cleanup import discard_snapshot, sweep_debris
from maintkit.storage.encryption import AGE_SUFFIX, Encryptor, Recipient
from maintkit.storage.fanout import FanOut, Tee
from maintkit.storage.manifest import Artifact, DatabaseInfo, Encryption, Manifest, Table, write_manifest
from maintkit.storage.operations import resolve_snapshot
from maintkit.storage.sites import site_encryption, site_files_engine, site_name
from maintkit.transport.base import CommandResult


class SnapshotRequest(Protocol):
    """What one snapshot is asked to take (the ``snapshot`` action's parameters, as the job reads them)."""

    @property
    def database(self) -> DatabaseSource | None: ...

    @property
    def files(self) -> FilesSource | None: ...

    @property
    def compression(self) -> Literal["auto", "zstd", "gzip"]: ...

    @property
    def count_rows(self) -> bool: ...

    @property
    def timeout(self) -> float | None: ...


def take_snapshot(params: SnapshotRequest, ctx: HostContext, targets: list[Target]) -> Manifest:
    """Take one snapshot into ``targets``: all of it committed everywhere, or removed everywhere.

    A failure (the host's command, a storage error) raises :class:`StepFailed` naming what was
    removed; an interrupt, a timeout or a lost connection removes it too and is raised as it came.
    """
    for target in targets:
        target.check()  # a missing bucket or Object Lock fails before the host does any work
    job = SnapshotJob.start(params, ctx, targets)
    try:
        if params.database:
            job.database(params.database)
        if params.files:
            job.files(params.files)
        return job.finish()
    except (StepFailed, StorageError) as error:
        raise StepFailed(f"{error}; {job.discard()}") from error
    except BaseException:  # a timeout, an interrupt, a lost connection: failed everywhere all the same
        ctx.emit("snapshot_discarded", msg=job.discard())
        raise


@dataclass
class SnapshotJob:
    """One snapshot being taken: its targets, its manifest so far, what the host can do.

    Why an object per run and not state on the action: one action instance serves every host of a
    run, in parallel threads.
    """

    params: SnapshotRequest
    ctx: HostContext
    targets: list[Target]
    manifest: Manifest
    compression: Compression
    previous_sizes: dict[str, int]
    recipients: list[Recipient]  # empty: not encrypted
    files_engine: str = "tar"  # or "restic": the files go into the site's repository (engine_files)
    engine: EngineNight | None = None  # the restic night, once started (forgotten on failure)

    @classmethod
    def start(cls, params: SnapshotRequest, ctx: HostContext, targets: list[Target]) -> SnapshotJob:
        site, env = site_name(ctx.vars), str(ctx.vars["maintkit_env"])
        created = datetime.now(UTC)
        snapshot_id = new_snapshot_id(created, targets[0].list_dir(snapshot_prefix(site, env)))
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
        encryption = site_encryption(ctx.vars, ctx.redactor)  # a bad recipient fails before the dump
        recipients = encryption.load_recipients() if encryption else []
        manifest.encrypted_to = encryption.fingerprints if encryption else []
        compression = _compression(params, ctx)
        swept = sweep_debris(targets, site, env, parse_snapshot_id(ctx.run_id.split("-", 1)[0]))
        if swept:
            ctx.emit("debris_removed", removed=swept, msg="unfinished snapshots of a failed earlier attempt")
        previous = _previous_sizes(targets[0], site, env)
        engine = site_files_engine(ctx.vars, ctx.redactor)
        job = cls(params, ctx, targets, manifest, compression, previous, recipients, engine)
        if engine == "restic" and params.files:  # before the dump: a missing restic is found now
            job.engine = EngineNight(ctx, targets, site, env, snapshot_id)
            try:
                job.engine.find_restic()
            except MaintkitError as error:
                raise StepFailed(f"{error}; nothing was stored") from error
        return job

    def database(self, source: DatabaseSource) -> None:
        """Count rows, then stream the dump; commit it only when it exited 0 and its trailer arrived."""
        counts: dict[str, int] = {}
        database = source.name or ""
        if self.params.count_rows:  # who the server is and the rows, in one client session
            started = time.monotonic()
            command, stdin = identity_and_tables_command(source)
            listed = self.ctx.run(command, stdin=stdin, timeout=self.params.timeout)
            _require(listed, "asking the database server who it is and counting the database's rows")
            try:
                identity, listing = parse_identity_and_tables(listed.stdout)
            except ValueError as error:
                raise StepFailed(f"asking the database server who it is: {error}") from None
            self._set_database_identity(identity)
            counts, database = listing.tables, listing.database
            self.manifest.timings["count_rows"] = round(time.monotonic() - started, 3)
        else:
            self._identify_database(source)
        name = self._name(f"db.sql{SUFFIX[self.compression]}")
        watcher = DumpTrailerWatcher(self.compression)
        command, stdin = dump_command(source, self.compression)
        result, fan = self._stream(name, command, stdin, watcher)
        watcher.close()
        if result.rc != 0 or not watcher.ok:
            fan.abort()
            why = f"exit status {result.rc}" if result.rc != 0 else watcher.reason
            raise StepFailed(f"database dump failed ({why}): {_stderr(result)}".rstrip(": "))
        fan.commit()
        self._record(name, fan, f"dump of {source.describe()} on {self.ctx.host.name}")
        self.manifest.database = DatabaseInfo(database, [Table(t, counts.get(t)) for t in watcher.tables])

    def files(self, source: FilesSource) -> None:
        """Stream the tar of the site's files; commit it only when tar and the compressor succeeded.

        With ``files_engine: restic`` the files go into the site's repository instead (only the
        change crosses the link) and the manifest gets the engine artifact.
        """
        self._identify_files(source)
        if self.engine is not None:
            started = time.monotonic()
            try:
                artifact = self.engine.take(source, list(self.recipients), self.params.timeout)
            except StepFailed:
                raise
            except MaintkitError as error:  # restic, rclone, the host's engine: a failed step
                raise StepFailed(str(error)) from error
            self.manifest.artifacts.append(artifact)
            self.manifest.timings[artifact.name] = round(time.monotonic() - started, 3)
            self._fingerprint(source)
            return
        name = self._name(f"files.tar{SUFFIX[self.compression]}")
        result, fan = self._stream(name, tar_command(source, self.compression), None)
        if result.rc != 0:
            fan.abort()
            raise StepFailed(
                f"archiving {source.root} failed (exit status {result.rc}): {_stderr(result)}".rstrip(": ")
            )
        fan.commit()
        paths = " ".join(source.paths)
        self._record(name, fan, f"tar of {paths} under {source.root} on {self.ctx.host.name}")
        self._fingerprint(source)

    def _fingerprint(self, source: FilesSource) -> None:
        result = self.ctx.run(fingerprint_command(source.cms, source.root), timeout=60)
        self.manifest.fingerprint = parse_fingerprint(result.stdout) if result.rc == 0 else {}

    def _identify_database(self, source: DatabaseSource) -> None:
        """Record which server and database this is, as the server says (read-only, one round trip):
        a restore into another environment compares its target with it (docs/restore.md)."""
        command, stdin = database_identity_command(source)
        result = self.ctx.run(command, stdin=stdin, timeout=60)
        _require(result, "asking the database server who it is")
        try:
            identity = parse_database_identity(result.stdout)
        except ValueError as error:
            raise StepFailed(f"asking the database server who it is: {error}") from None
        self._set_database_identity(identity)

    def _set_database_identity(self, identity: DatabaseIdentity) -> None:
        current = self.manifest.identity or SourceIdentity()
        self.manifest.identity = SourceIdentity(identity, current.files)

    def _identify_files(self, source: FilesSource) -> None:
        """Record the real folder (and machine) the archive is read from."""
        result = self.ctx.run(files_identity_command(source.root), timeout=60)
        _require(result, f"resolving {source.root}")
        try:
            identity = parse_files_identity(result.stdout)
        except ValueError as error:
            raise StepFailed(f"resolving {source.root}: {error}") from None
        current = self.manifest.identity or SourceIdentity()
        self.manifest.identity = SourceIdentity(current.database, identity)

    def discard(self) -> str:
        """Remove this snapshot from every target (the artifacts committed so far, the manifests
        written so far, the unfinished uploads): one failing target fails the snapshot everywhere.
        Return what to tell the user."""
        m = self.manifest
        said = discard_snapshot(self.targets, m.site, m.env, m.snapshot_id).describe()
        forgotten = self.engine.forget() if self.engine else ""
        return f"{said}; {forgotten}" if forgotten else said

    def finish(self) -> Manifest:
        """Write the manifest to every target, last: only now is the snapshot complete."""
        self.manifest.finished = datetime.now(UTC)
        for target in self.targets:
            write_manifest(target, self.manifest)
        return self.manifest

    def _name(self, name: str) -> str:
        """An encrypted artifact says so in its name (``db.sql.zst.age``), as ``age`` users expect."""
        return name + AGE_SUFFIX if self.recipients else name

    def _record(self, name: str, fan: FanOut, source: str) -> None:
        key = fan.writers[0].key
        encryption: Encryption = "age" if self.recipients else "none"
        self.manifest.artifacts.append(
            Artifact(name, key, fan.size, fan.sha256, self.compression, encryption, source)
        )

    def _stream(
        self, name: str, command: str, stdin: bytes | None, *extra: Any
    ) -> tuple[CommandResult, FanOut]:
        """Run ``command`` with its stdout streamed into every target; abort the uploads on any error.

        With encryption, the ``extra`` sinks (the trailer check) still get the compressed plaintext
        and the targets get ciphertext: the manifest's size and SHA-256 are those of the stored bytes.
        """
        key = snapshot_key(self.manifest.site, self.manifest.env, self.manifest.snapshot_id, name)
        fan = FanOut.open(self.targets, key, progress=Progress(self.ctx, name, self.previous_sizes.get(name)))
        encryptor = Encryptor(fan, self.recipients) if self.recipients else None
        started = time.monotonic()
        try:
            stdout = Tee(encryptor or fan, *extra)
            result = self.ctx.run(command, stdin=stdin, stdout=stdout, timeout=self.params.timeout)
            if encryptor:
                encryptor.close()  # the age stream's last, authenticated chunk
        except BaseException:
            if encryptor:
                encryptor.abort()
            fan.abort()
            raise
        elapsed = time.monotonic() - started
        self.manifest.timings[name] = round(elapsed, 3)
        self.ctx.emit(
            "transferred",
            artifact=name,
            bytes=fan.size,
            seconds=round(elapsed, 3),
            rate=round(fan.size / max(elapsed, 1e-6)),
        )
        return result, fan


def _compression(params: SnapshotRequest, ctx: HostContext) -> Compression:
    """Ask the host what it has (one round trip); fail before any upload opens if it can't work."""
    app_config = reads_app_config(params)
    tools = parse_probe(ctx.run(probe_command(php=app_config), timeout=60).stdout)
    problems = tools.problems(
        database=params.database is not None,
        files=params.files is not None,
        app_config=app_config,
        compression=params.compression,
        count_rows=params.count_rows,
    )
    if problems:
        raise StepFailed(
            f"{ctx.host.name} cannot take this snapshot: {'; '.join(problems)}; nothing was stored"
        )
    return tools.compression if params.compression == "auto" else params.compression


def _previous_sizes(target: Target, site: str, env: str) -> dict[str, int]:
    """Artifact sizes of the newest complete snapshot (for the ETA); empty when there is none."""
    try:
        manifest = resolve_snapshot(target, site, env, "latest")
    except MaintkitError:
        return {}
    return {a.name: a.size for a in manifest.artifacts}


def _require(result: CommandResult, what: str) -> None:
    if result.rc != 0:
        raise StepFailed(f"{what} failed (exit status {result.rc}): {_stderr(result)}")


def _stderr(result: CommandResult) -> str:
    return strip_markers(result.stderr).strip()[-2000:]


def reads_app_config(params: SnapshotRequest) -> bool:
    """True when the dump's credentials come from the application's config (read by PHP)."""
    return bool(params.database and params.database.from_)
