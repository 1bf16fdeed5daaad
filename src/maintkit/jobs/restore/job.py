"""The restore job: bring a stored snapshot back onto one host, database and files, proven, then committed.

Two stages, so that a restore that fails leaves the target as it was (``docs/restore.md``):

* **stage**: each artifact streams from its storage target through the control node (size and
  SHA-256 checked on the fly, the last chunk held back until both match; the dump decompressed and
  its rows counted; every tar member checked) to the host, which decompresses it and loads the dump
  into a staging database ``TARGET_mkrestore`` / extracts the archive into a sibling folder. Then
  the staged tables are counted and compared with the dump, and URLs are rewritten if asked.
* **commit**, only when every artifact of the step staged and passed every check: the staged
  tables are renamed into the target database (views, triggers, routines and events re-created),
  and the extracted folder is swapped in place of the root. Both are metadata operations.

Anything failing before the commit drops the staging database and the extracted folder: the
target database and files are untouched. The snapshot is read from this environment's storage, or,
restoring into another environment, from the source given by ``source`` (``maintkit restore
--into`` / ``maintkit drill`` set it; see :mod:`maintkit.jobs.restore.source`).

The ``restore`` action (:mod:`maintkit.actions.restore`) owns the parameter model; the job reads
it through :class:`RestoreRequest`, so this package never imports the actions.
"""

from __future__ import annotations

import posixpath
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import asdict
from typing import Any, BinaryIO, Generic, Literal, Protocol, TypeVar, cast

from maintkit.cms.base import config_file
from maintkit.jobs.context import HostContext
from maintkit.jobs.progress import Progress, ProgressReader
from maintkit.jobs.restore import commands, sql
from maintkit.jobs.restore.copies import candidate_targets, no_snapshot_hint, pick_target
from maintkit.jobs.restore.engine import (
    EngineRefused,
    EngineSource,
    EngineTarStream,
    check_snapshot,
    engine_source,
    password_file,
)
from maintkit.jobs.restore.guard import identity_reasons, marked_production, place_of, production_reasons
from maintkit.jobs.restore.inspect import ArchiveInspector, DumpInspector
from maintkit.jobs.restore.parallel import run_together
from maintkit.jobs.restore.record import Cause, Phase, RestoreRecord, TableCheck, now_iso
from maintkit.jobs.restore.source import RestoreSource
from maintkit.jobs.restore.stream import IntegrityError, PrefixedReader, VerifyingReader
from maintkit.model.problems import MaintkitError, StepFailed
from maintkit.sources.appconfig import config_host, write_db_config_command
from maintkit.sources.compression import parse_markers, strip_markers
from maintkit.sources.database import DatabaseSource
from maintkit.sources.files import FilesSource
from maintkit.sources.identity import (
    DatabaseIdentity,
    FilesIdentity,
    database_identity_command,
    files_identity_command,
    parse_database_identity,
    parse_files_identity,
    same_database,
)
from maintkit.sources.probe import parse_probe, probe_command
from maintkit.sources.script import bash_command, host_path
from maintkit.storage.base import Target
from maintkit.storage.encryption import EncryptionError, Identity, load_identities
from maintkit.storage.manifest import Artifact, Manifest
from maintkit.storage.operations import resolve_snapshot
from maintkit.storage.sites import site_encryption, site_name
from maintkit.transport.base import CommandResult

T = TypeVar("T")

#: seconds for the short metadata commands (inspect, swap, drop)
META_TIMEOUT = 600.0
#: seconds for the cleanup of a failed restore
ABORT_TIMEOUT = 120.0


class UrlRewrite(Protocol):
    """Point the restored copy at its own URL (the action's ``rewrite_urls`` parameter)."""

    @property
    def app(self) -> str: ...

    @property
    def url(self) -> str: ...

    @property
    def secure_url(self) -> str | None: ...

    @property
    def table_prefix(self) -> str | None: ...


class RestoreRequest(Protocol):
    """What one restore is asked to do (the ``restore`` action's parameters, as the job reads them)."""

    @property
    def snapshot(self) -> str: ...

    @property
    def source(self) -> dict[str, Any] | None: ...

    @property
    def site(self) -> str | None: ...

    @property
    def target(self) -> str | None: ...

    @property
    def database(self) -> DatabaseSource | None: ...

    @property
    def files(self) -> FilesSource | None: ...

    @property
    def create_database(self) -> bool: ...

    @property
    def force(self) -> bool: ...

    @property
    def definers(self) -> Literal["keep", "current"]: ...

    @property
    def rewrite_urls(self) -> UrlRewrite | None: ...

    @property
    def count_rows(self) -> bool: ...

    @property
    def drill(self) -> bool: ...

    @property
    def timeout(self) -> float | None: ...

    def kept_paths(self) -> list[str]:
        """Paths under the root kept from the live folder."""
        ...


def definer_hint(stderr: str) -> str:
    """The flag that fixes a load refused for its DEFINER clauses, when the server said so; else "".

    Why: "you need (at least one of) the SUPER privilege(s)" names no fix; a dump taken as another
    user carries ``DEFINER=`other`@...`` on its views, routines and triggers, which only a privileged
    user may set. ``--definers current`` drops them, so the objects belong to the restoring user.
    """
    markers = ("SUPER", "SET USER", "SET_USER_ID", "SET_ANY_DEFINER", "ERROR 1227")
    if not any(marker in stderr for marker in markers):
        return ""
    return (
        " — the dump's DEFINER clauses name another user: restore with --definers current "
        "(definers: current in a playbook) to make this user the definer"
    )


class RestoreFailed(StepFailed):
    """A restore stopped before its commit (or its commit failed); ``cause`` says why."""

    def __init__(
        self, cause: Cause, message: str, artifact: str | None = None, *, before_write: bool = False
    ) -> None:
        self.cause = cause
        self.artifact = artifact
        #: refused before anything was written: the run may exit 2 (see ActionResult.refused)
        self.before_write = before_write
        super().__init__(message)


class RestoreJob:
    """One restore on one host (an object per run: one action instance serves hosts in parallel)."""

    def __init__(self, params: RestoreRequest, ctx: HostContext) -> None:
        self.params = params
        self.ctx = ctx
        self.record = RestoreRecord()
        self.staging_db: str | None = None
        self.staging_dir: str | None = None
        self.extracting = False  # an extraction began: its folder may exist before it is announced
        self.commit_db: str | None = None  # the commit script, once the database is staged and proven
        self.source: RestoreSource | None = None
        self.identities: list[Identity] | None = None
        self.manifest: Manifest | None = None
        self.target_db: DatabaseIdentity | None = None  # resolved by the guard
        self.config_mode: Literal["kept", "written"] | None = None  # how the copy gets its own config
        #: set when one of the parallel staging tasks failed: stops the other's host command
        self.cancel = threading.Event()
        self.engine: EngineSource | None = None  # the repository of an engine-kept file tree
        self._lock = threading.Lock()  # the record, written by both staging threads

    # -- the stages -------------------------------------------------------------------------------

    def run(self) -> None:
        target, manifest, source = self._snapshot()
        self.source, self.manifest = source, manifest
        db_artifact = self._artifact(manifest, ".sql") if self.params.database else None
        files_artifact = self._artifact(manifest, ".tar") if self.params.files else None
        # An engine's tree: its snapshot is found and proven in the repository (read-only, ~2 s of
        # restic: a key derivation, the snapshot list) while the host is inspected and the dump
        # starts; the files stage waits for it (see _engine_checked).
        check = None
        if files_artifact is not None and files_artifact.engine is not None:
            check = _Background(lambda: self._engine(target, files_artifact), "restore-engine-check")
        try:
            # Restoring into another environment (or site), or a drill: the copy must be another
            # place than the source and must get its own config. Everything up to the staging is
            # read-only.
            foreign = self.params.drill or self._foreign()
            self.config_mode = self._config_plan() if foreign else None
            self._probe(db_artifact, files_artifact)
            if foreign:
                self._guard(source, manifest)
            stages: list[Callable[[], None]] = []
            if db_artifact is not None:
                # refusals and the staging database first: a target that cannot be staged into
                # fails before the files start streaming
                state = self._check_database()
                self._create_staging(state)
                stages.append(lambda: self._stage_database(target, db_artifact, manifest, state))
            if files_artifact is not None:
                stages.append(lambda: self._stage_all_files(target, files_artifact, check))
            # The database and the files stage at the same time (see parallel.py); the first
            # failure cancels the other, and nothing is committed unless both staged and were proven.
            run_together(stages, self.cancel)
        finally:
            if check is not None:
                check.wait()  # never leave its restic behind (it ends by itself, bounded)
        self._commit()
        if self.config_mode is not None and self.params.files is not None:
            self._prove_config(self.params.files.root, "after the commit")

    def _run(
        self,
        command: str,
        *,
        stdin: bytes | BinaryIO | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        """A host command of this restore: stopped too when a parallel staging task failed."""
        return self.ctx.run(command, stdin=stdin, timeout=timeout, cancel=self.cancel)

    def _foreign(self) -> bool:
        """The snapshot comes through ``source`` (``--into``: even one naming this environment, the
        user asked for another place), or is another environment's or another site's."""
        own = (str(self.ctx.vars["maintkit_env"]), site_name(self.ctx.vars))
        return self.source is not None or (self.record.source_env, self.record.site) != own

    def _snapshot(self) -> tuple[Target, Manifest, RestoreSource | None]:
        ctx, params = self.ctx, self.params
        site = params.site or site_name(ctx.vars)
        source = RestoreSource.of_step(params.source, ctx.restore_source)
        env, targets = candidate_targets(source, site, ctx.vars, ctx.redactor)
        try:
            targets = pick_target(targets, params.target, site, env)
        except MaintkitError as error:
            raise RestoreFailed("error", str(error)) from None
        problems = []
        for target in targets:
            try:
                manifest = resolve_snapshot(target, site, env, params.snapshot)
            except MaintkitError as error:
                problems.append(str(error))
                continue
            self.record = RestoreRecord(
                snapshot_id=manifest.snapshot_id,
                site=site,
                source_env=env,
                storage_target=target.name,
                snapshot_created=manifest.created.isoformat(),
                snapshot_finished=manifest.finished.isoformat(),
            )
            return target, manifest, source
        if not problems:
            raise RestoreFailed("error", f"no storage target for {site}/{env}")
        raise RestoreFailed("error", "; ".join(problems) + no_snapshot_hint(env))

    def _artifact(self, manifest: Manifest, kind: str) -> Artifact:
        """The dump (``kind`` ".sql") or the file tree (".tar": a stored archive, or an engine's tree)."""
        artifact = next(
            (a for a in manifest.artifacts if kind in a.name or (kind == ".tar" and a.engine is not None)),
            None,
        )
        what = "database dump" if kind == ".sql" else "files archive"
        if artifact is None:
            raise RestoreFailed("error", f"snapshot {manifest.snapshot_id} holds no {what}")
        if artifact.engine is None and artifact.encryption != "none" and self.identities is None:
            self.identities = self._load_identities(artifact)
        return artifact

    def _engine(self, target: Target, artifact: Artifact) -> EngineSource:
        """The repository of an engine artifact, with the manifest's snapshot proven in it (tag and
        tree): refused (exit 2) before anything is written when it is not the manifest's."""
        record = self.record
        try:
            with record.phase("prepare", artifact.name, "engine snapshot: tag and tree checked") as phase:
                source = engine_source(target, artifact, password_file(record.site, record.source_env))
                snapshot = check_snapshot(source, artifact)
                phase.note = (
                    f"restic snapshot {snapshot.get('short_id')} in {target.name}: tag and tree are the "
                    "manifest's"
                )
        except EngineRefused as error:
            cause: Cause = "integrity" if error.integrity else "error"
            raise RestoreFailed(cause, str(error), artifact.name, before_write=True) from None
        return source

    def _load_identities(self, artifact: Artifact) -> list[Identity]:
        """The age identities of the source (its ``encryption.identity_file``), read on this node."""
        if self.source is not None:
            path = self.source.identity_file(self.record.site)
        else:
            encryption = site_encryption(self.ctx.vars, self.ctx.redactor)
            path = str(encryption.identity_file) if encryption and encryption.identity_file else None
        if path is None:
            raise RestoreFailed(
                "error",
                f"{artifact.name} is encrypted: set encryption.identity_file for the source environment",
                artifact.name,
            )
        try:
            return load_identities(path)
        except EncryptionError as error:
            raise RestoreFailed("error", str(error), artifact.name) from None

    def _config_plan(self) -> Literal["kept", "written"] | None:
        """How the copy will name its own database, decided before anything is written.

        The copy's config is the target's live one when it exists and is kept; else it is written
        from the target's explicit ``database:`` settings; with neither (``database: {from: APP}`` and
        no config to read it from) the copy would run with the source's config: refused."""
        files, params, host = self.params.files, self.params, self.ctx.host
        config = config_file(files.cms) if files is not None else None
        if files is None or config is None:
            return None
        if not _covers(files.paths, config):
            return None  # the restore does not replace the config
        live = f"{files.root.rstrip('/')}/{config}"
        exists = self._run(bash_command(f"[ -e {host_path(live)} ]"), timeout=60).rc == 0
        if exists and _covers(params.kept_paths(), config):
            return "kept"
        if params.database is not None and params.database.from_ is None:
            return "written"
        why = "does not exist" if not exists else "is not kept (keep)"
        raise RestoreFailed(
            "refused",
            f"{live} {why} on {host.name} and the target has no explicit database settings to write "
            "into it: the copy would run with the source's own config (its database!). Put the "
            "copy's own config there first (it is kept), or give the target explicit database settings",
            before_write=True,
        )

    def _guard(self, source: RestoreSource | None, manifest: Manifest) -> None:
        """Refuse a target that is the source (before the first write; docs/restore.md).

        What the inventories say (:func:`production_reasons`: for a drill also the environment's
        name and ``production: true``), then the identities: the target's resolved on this host
        through the restore's own credentials path, the source's from the manifest."""
        params, ctx, host = self.params, self.ctx, self.ctx.host
        place = place_of(
            host.name,
            host.address or host.name,
            host.port,
            host.user,
            params.files.model_dump() if params.files else None,
            params.database.model_dump(by_alias=True) if params.database else None,
        )
        places = source.places() if source else []
        reasons = []
        if params.drill:
            marked = marked_production(ctx.vars.get("production"))
            reasons += production_reasons(str(ctx.vars["maintkit_env"]), place, marked, places)
        elif places:
            reasons += production_reasons("", place, False, places)
        target_db = self._database_identity() if params.database else None
        target_files = self._files_identity() if params.files else None
        self.target_db = target_db
        self.record.identity = {
            "target": {
                "database": asdict(target_db) if target_db else None,
                "files": asdict(target_files) if target_files else None,
            },
            "source": asdict(manifest.identity) if manifest.identity else None,
        }
        names = [manifest.database.name] if manifest.database and manifest.database.name else []
        names += [p.db_name for p in places if p.db_name]
        label = f"{manifest.host} of {manifest.env}"
        root = params.files.root if params.files else None
        reasons += identity_reasons(target_db, target_files, manifest.identity, names, label, root)
        if reasons:
            verb = "drill" if params.drill else "restore"
            raise RestoreFailed(
                "production", f"refusing to {verb} into {host.name}: " + "; ".join(reasons), before_write=True
            )

    def _database_identity(self, database: DatabaseSource | None = None) -> DatabaseIdentity:
        """Ask the server behind ``database`` (default: the target's settings) who it is (read-only)."""
        database = database or self.params.database
        assert database is not None
        command, payload = database_identity_command(database)
        result = self._run(command, stdin=payload, timeout=META_TIMEOUT)
        try:
            if result.rc != 0:
                raise ValueError(f"exit {result.rc}: {_stderr(result)}")
            return parse_database_identity(result.stdout)
        except ValueError as error:
            raise RestoreFailed(
                "error", f"asking the database server of {database.describe()} who it is failed: {error}"
            ) from None

    def _files_identity(self) -> FilesIdentity:
        assert self.params.files is not None
        root = self.params.files.root
        result = self._run(files_identity_command(root), timeout=60)
        try:
            if result.rc != 0:
                raise ValueError(f"exit {result.rc}: {_stderr(result)}")
            return parse_files_identity(result.stdout)
        except ValueError as error:
            raise RestoreFailed("error", f"resolving {root} failed: {error}") from None

    def _probe(self, db: Artifact | None, files: Artifact | None) -> None:
        php = self.config_mode is not None or bool(self.params.database and self.params.database.from_)
        tools = parse_probe(self._run(probe_command(php=php), timeout=60).stdout)
        problems = []
        if php and not tools.php:
            problems.append("php is not installed (needed to read the application's config)")
        if db is not None and not tools.client_tool:
            problems.append("neither the mariadb nor the mysql client is installed")
        if files is not None and not tools.gnu_tar:
            problems.append("GNU tar is not installed")
        needs_zstd = any(a is not None and a.compression == "zstd" for a in (db, files))
        if needs_zstd and tools.compression != "zstd":
            problems.append("zstd is not installed (the snapshot is zstd-compressed)")
        if problems:
            raise RestoreFailed("error", f"{self.ctx.host.name} cannot restore: {'; '.join(problems)}")

    # -- database ---------------------------------------------------------------------------------

    def _sql(self, text: str, what: str) -> CommandResult:
        assert self.params.database is not None
        command, payload = commands.sql_command(self.params.database)
        result = self._run(command, stdin=payload + text.encode("utf-8") + b"\n", timeout=META_TIMEOUT)
        if result.rc != 0:
            raise RestoreFailed("error", f"{what} failed (exit {result.rc}): {_stderr(result)}")
        return result

    def _check_database(self) -> sql.TargetState:
        """Inspect the target database and refuse a missing one (without ``create_database``) or a
        non-empty one (without ``force``), before anything is staged."""
        params, record = self.params, self.record
        assert params.database is not None
        name = params.database.name if params.database.from_ is None else None
        state = sql.parse_target(self._sql(sql.inspect_target_sql(name), "inspecting the database").stdout)
        database = state.database
        record.database = {"name": database, "server": state.version, "existed": state.exists}
        if not state.exists and not params.create_database:
            raise RestoreFailed(
                "refused",
                f"database {database} does not exist: --create-database (create_database: true in a "
                "playbook) creates it",
            )
        if state.exists and state.objects and not params.force:
            raise RestoreFailed(
                "refused",
                f"database {database} is not empty ({state.objects} objects): refusing to replace it "
                "without --force (force: true in a playbook)",
            )
        return state

    def _create_staging(self, state: sql.TargetState) -> None:
        """(Re)create the empty staging database (with a drill's marker), before any stream starts."""
        staging = sql.staging_name(state.database)
        self.record.database["staging"] = staging
        stage = sql.stage_sql(staging, state.charset, state.collation)
        if self.params.drill:  # the marker lands in the target with the commit; the cleanup looks for it
            stage += "\n" + sql.marker_sql(staging, self.ctx.run_id)
        self.staging_db = staging
        try:
            self._sql(stage, f"creating the staging database {staging}")
        except RestoreFailed:
            raise
        except BaseException:
            self.record.staged = True  # it may exist: the cleanup may look
            raise
        self.record.staged = True

    def _stage_database(
        self, target: Target, artifact: Artifact, manifest: Manifest, state: sql.TargetState
    ) -> None:
        params, record = self.params, self.record
        assert params.database is not None and self.staging_db is not None
        database, staging = state.database, self.staging_db
        inspector = DumpInspector(artifact)
        command, payload = commands.import_command(
            params.database,
            staging,
            artifact.compression,  # type: ignore[arg-type]
            strip_definers=params.definers == "current",
        )
        result = self._staged(lambda: self._stream(target, artifact, inspector, command, payload, "import"))
        if result.rc != 0:
            hint = definer_hint(result.stderr) if params.definers != "current" else ""
            raise RestoreFailed(
                "error", f"loading the dump failed (exit {result.rc}): {_stderr(result)}{hint}"
            )
        inspector.finish()
        with record.phase("verify", artifact.name, "row counts of the staged tables") as phase:
            inspection = sql.inspect_sql(staging, database, count_rows=params.count_rows)
            staged = sql.parse_inspection(self._sql(inspection, "inspecting the staged database").stdout)
            self._check_tables(manifest, inspector, staged)
            phase.note = f"{len(record.tables)} tables checked"
        if params.rewrite_urls is not None:
            self._rewrite_urls(staging, staged)
        definitions = sql.parse_definitions(
            self._sql(sql.definitions_sql(staging, staged.staging), "reading the staged definitions").stdout,
            staging,
        )
        create = None if state.exists else f"{state.charset} {state.collation}"
        self.commit_db = sql.commit_sql(staging, database, staged, definitions, create)

    def _check_tables(self, manifest: Manifest, inspector: DumpInspector, staged: sql.Staged) -> None:
        """Every table of the dump (and of the manifest) must be staged, with the dump's row count."""
        recorded = {t.name: t.rows for t in manifest.database.tables} if manifest.database else {}
        in_dump = inspector.watcher.tables
        names = list(dict.fromkeys([*recorded, *in_dump]))
        staged_names = set(staged.staging.table)
        problems = []
        for table in names:
            dump_rows = inspector.rows.rows.get(table, 0) if table in in_dump else None
            restored = staged.rows.get(table) if self.params.count_rows else None
            problem = ""
            if table not in in_dump:
                problem = "listed in the manifest but not in the dump"
            elif table not in staged_names:
                problem = "missing after the import"
            elif self.params.count_rows and restored != dump_rows:
                problem = f"{restored} rows restored, the dump holds {dump_rows}"
            self.record.tables.append(
                TableCheck(table, recorded.get(table), dump_rows, restored, not problem, problem)
            )
            if problem:
                problems.append(f"{table}: {problem}")
        if problems:
            missing = [t.name for t in self.record.tables if t.problem and "rows" not in t.problem]
            what = f"missing table(s) {', '.join(missing)}" if missing else "row counts differ"
            raise RestoreFailed("tables", f"{what}: {'; '.join(problems)} (nothing was committed)")

    def _rewrite_urls(self, staging: str, staged: sql.Staged) -> None:
        rewrite = self.params.rewrite_urls
        assert rewrite is not None
        table = sql.url_table(rewrite.app, rewrite.table_prefix)
        if table not in staged.staging.table:
            raise RestoreFailed("error", f"cannot rewrite {rewrite.app} URLs: the dump has no table {table}")
        text = sql.rewrite_urls_sql(
            staging, rewrite.app, rewrite.url, rewrite.secure_url, rewrite.table_prefix
        )
        rows = sql.tagged_rows(self._sql(text, "rewriting the URLs").stdout)
        self.record.urls = {values[0]: int(values[1]) for values in rows.get("#rewritten", [])}

    # -- files ------------------------------------------------------------------------------------

    def _stage_all_files(
        self, target: Target, artifact: Artifact, check: _Background[EngineSource] | None = None
    ) -> None:
        """The files' staging task: (an engine's snapshot proven first) extract, prepare (kept
        paths, config), then make it durable."""
        if check is not None:
            self.engine = check.result()  # raises the refusal: cancels the database's staging
            if self.cancel.is_set():  # the database's staging failed meanwhile: its error is reported
                return
        self._stage_files(target, artifact)
        self._prepare_files()
        self._sync_files()

    def _sync_files(self) -> None:
        """Flush the staged tree to disk before it can be swapped in: one ``sync -f`` (syncfs of
        its filesystem) rather than an fsync per file (tar does none; per-file fsync of tens of
        thousands of files is what makes restore times vary). Timed: a phase and an event."""
        files = self.params.files
        if files is None or self.staging_dir is None:
            return
        with self.record.phase("sync", note="sync -f of the staged folder before the swap") as phase:
            result = self._run(commands.sync_command(files.root, self.staging_dir), timeout=META_TIMEOUT)
        if result.rc != 0:
            raise RestoreFailed("extract", f"flushing the restored files to disk failed: {_stderr(result)}")
        self.ctx.emit("synced", seconds=phase.seconds, root=files.root)

    def _stage_files(self, target: Target, artifact: Artifact) -> None:
        files = self.params.files
        assert files is not None
        self.extracting = True
        if self.engine is not None:
            return self._stage_engine_files(self.engine, artifact)
        inspector = ArchiveInspector(artifact)
        command = commands.extract_command(files.root, artifact.compression)  # type: ignore[arg-type]
        result = self._staged(lambda: self._stream(target, artifact, inspector, command, b"", "extract"))
        if result.rc != 0:
            raise RestoreFailed(
                "extract", f"extracting the files failed (exit {result.rc}): {_stderr(result)}", artifact.name
            )
        inspector.finish()
        self.record.files = {"root": files.root, "members": inspector.guard.members}

    def _stage_engine_files(self, source: EngineSource, artifact: Artifact) -> None:
        """An engine's tree: ``restic dump`` on this node, checked, zstd -1, extracted on the host
        exactly as a stored archive is (see engine.py); the end held back until restic exits 0."""
        files = self.params.files
        assert files is not None
        # restic keeps no metadata of the folder it ran in: the root keeps the live root's mode
        command = commands.extract_command(files.root, "zstd", root_mode="live")
        stream: EngineTarStream | None = None

        def run() -> CommandResult:
            nonlocal stream
            stream = EngineTarStream(source, artifact)
            made = stream
            started = now_iso()
            # bytes of the tree read from restic, rate, ETA against the manifest's tree size
            progress = Progress(self.ctx, artifact.name, expected_tar_bytes(artifact))
            counted = ProgressReader(made, progress, lambda: made.plain_bytes)
            try:
                return self._run(command, stdin=cast(BinaryIO, counted), timeout=self.params.timeout)
            finally:
                stream.close()
                self._engine_streamed(artifact, stream, started)

        result = self._staged(run)
        self.staging_dir = parse_markers(result.stderr).get("staging")
        assert stream is not None
        if result.rc != 0:
            raise RestoreFailed(
                "extract", f"extracting the files failed (exit {result.rc}): {_stderr(result)}", artifact.name
            )
        if not stream.finished:
            raise IntegrityError(
                artifact.name, "the host stopped reading before the end (nothing was committed)"
            )
        self.record.files = {
            "root": files.root,
            "members": stream.members,
            "engine": "restic",
            "engine_snapshot": source.snapshot,  # its id in the repository read (a copy's differs)
        }
        self.ctx.emit(
            "transferred",
            artifact=artifact.name,
            bytes=stream.sent,
            seconds=round(stream.elapsed, 3),
            rate=round(stream.sent / max(stream.elapsed, 1e-6)),
        )

    def _engine_streamed(self, artifact: Artifact, stream: EngineTarStream, started: str) -> None:
        seconds = round(stream.elapsed, 3)
        with self._lock:
            self.record.phases += [
                Phase(
                    "download",
                    started,
                    seconds,
                    artifact.name,
                    stream.plain_bytes,
                    f"restic dump of {self.engine.snapshot[:12] if self.engine else '?'} on the control "
                    f"node; {stream.dump_seconds:.2f} s waiting on it",
                ),
                Phase(
                    "decompress",
                    started,
                    seconds,
                    artifact.name,
                    stream.plain_bytes,
                    "zstd -1 here, -d on the host",
                ),
                Phase(
                    "extract", started, seconds, artifact.name, stream.plain_bytes, "into a sibling folder"
                ),
            ]
            self.record.bytes += stream.sent
            self.record.plain_bytes += stream.plain_bytes

    def _prepare_files(self) -> None:
        """Before the commit: the kept paths copied into the extracted tree (and a drill's marker
        written), then the copy's config made to name the target's database, and proven."""
        files, params = self.params.files, self.params
        if files is None or self.staging_dir is None:
            return
        marker = self.ctx.run_id if params.drill else None
        command = commands.prepare_command(files.root, self.staging_dir, params.kept_paths(), marker)
        result = self._run(command, timeout=META_TIMEOUT)
        if result.rc != 0:
            raise RestoreFailed("extract", f"preparing the restored files failed: {_stderr(result)}")
        self.record.files["kept"] = [v for k, v in _marker_lines(result.stderr) if k == "kept"]
        if self.config_mode == "written":
            self._write_config(self.staging_dir)
        if self.config_mode is not None:
            self._prove_config(self.staging_dir, "before the commit")

    def _write_config(self, root: str) -> None:
        """Point the copy's config (under ``root``, the extracted tree) at the target's database."""
        files, database = self.params.files, self.params.database
        assert files is not None and database is not None and database.name and database.user
        app = files.cms
        host, port = config_host(app, database.host, database.port, database.socket)
        password = database.password.get_secret_value() if database.password is not None else ""
        settings = {"host": host, "port": port, "name": database.name, "user": database.user}
        command, payload = write_db_config_command(app, root, {**settings, "password": password})
        result = self._run(command, stdin=payload, timeout=META_TIMEOUT)
        if result.rc != 0:
            raise RestoreFailed(
                "refused",
                f"pointing the copy's {config_file(app)} at the target database {database.name} "
                f"failed: {_stderr(result)} (nothing was committed)",
            )

    def _prove_config(self, root: str, when: str) -> None:
        """Read the copy's config under ``root`` back with the reader a restore uses, log in with it,
        and require the server to be the target's and the database the target's (not the source's).
        """
        files = self.params.files
        assert files is not None and self.manifest is not None
        app = files.cms
        config = config_file(app)
        committed = when == "after the commit"
        cause: Cause = "commit" if committed else "refused"
        reader = DatabaseSource.model_validate({"from": app, "root": root})
        try:
            got = self._database_identity(reader)
        except RestoreFailed as error:
            raise RestoreFailed(
                cause, f"the copy's {config} cannot be proven to name the target's database {when}: {error}"
            ) from None
        expected = self.target_db
        source = self.manifest.identity.database if self.manifest.identity else None
        if expected is not None:
            ok = same_database(got, expected)
            wanted = f"the target database {expected.describe()}"
        else:  # a files-only restore: at least not the source's database
            names = {self.manifest.database.name.lower()} if self.manifest.database else set()
            ok = not same_database(got, source) if source else got.name.lower() not in names
            wanted = "a database other than the source's"
        if not ok:
            after = "; fix it by hand now" if committed else "; nothing was committed"
            raise RestoreFailed(
                cause, f"the copy's {config} names {got.describe()}, not {wanted} ({when}){after}"
            )
        proof = self.record.config or {"file": config, "how": self.config_mode, "proven": []}
        proof.update(database=got.name, server=got.server())
        proof["proven"].append(when)
        self.record.config = proof

    def _staged(self, stream: Callable[[], CommandResult]) -> CommandResult:
        """Run a staging ``stream`` and note whether it created something of this restore's own (the
        extraction folder: its script names it; the staging database is created before, and noted).
        A stream that raised may have: counted as staged. Only then does a drill's cleanup run."""
        try:
            result = stream()
        except BaseException:
            with self._lock:
                self.record.staged = True
            raise
        created = self.staging_dir is not None
        with self._lock:
            self.record.staged = self.record.staged or created
        return result

    # -- streaming --------------------------------------------------------------------------------

    def _stream(
        self,
        target: Target,
        artifact: Artifact,
        inspector: DumpInspector | ArchiveInspector,
        command: str,
        payload: bytes,
        stage: str,
    ) -> CommandResult:
        """Run ``command`` with the artifact on its stdin (after ``payload``); integrity errors raise.

        The phases are recorded whatever happens, so a failed drill still shows how far it got."""
        with target.open_reader(artifact.key) as raw:
            reader = VerifyingReader(raw, artifact, inspector, identities=self.identities)
            started, clock = now_iso(), time.monotonic()
            try:
                # A kill (integrity error, refused member, timeout) lets the host script's trap remove
                # its extraction folder; a folder left by SIGKILL is swept by the next restore.
                progress = Progress(self.ctx, artifact.name, artifact.size)  # bytes, rate, ETA
                counted = ProgressReader(reader, progress, lambda: reader.size)
                stdin = cast(BinaryIO, PrefixedReader(payload, counted))
                result = self._run(command, stdin=stdin, timeout=self.params.timeout)
            finally:
                reader.close()
                seconds = time.monotonic() - clock
                self._streamed(artifact, reader, started, seconds, stage, inspector.plain_bytes)
            if ".tar" in artifact.name:
                self.staging_dir = parse_markers(result.stderr).get("staging")
        if result.rc == 0 and not reader.verified:
            raise IntegrityError(
                artifact.name, "the host stopped reading before the end (nothing was committed)"
            )
        self.ctx.emit(
            "transferred",
            artifact=artifact.name,
            bytes=reader.size,
            seconds=round(seconds, 3),
            rate=round(reader.size / max(seconds, 1e-6)),
        )
        return result

    def _streamed(
        self,
        artifact: Artifact,
        reader: VerifyingReader,
        started: str,
        seconds: float,
        stage: str,
        plain: int,
    ) -> None:
        """Record the overlapping phases of one streamed artifact."""
        with self._lock:
            self._record_streamed(artifact, reader, started, seconds, stage, plain)

    def _record_streamed(
        self,
        artifact: Artifact,
        reader: VerifyingReader,
        started: str,
        seconds: float,
        stage: str,
        plain: int,
    ) -> None:
        record = self.record
        opened = reader.opened_at.isoformat(timespec="milliseconds")
        rate = reader.size / max(reader.elapsed, 1e-6) / 2**20
        decrypt = (
            Phase(
                "decrypt",
                opened,
                round(reader.elapsed, 3),
                artifact.name,
                reader.plain_size,
                f"{artifact.encryption}, on the control node; {reader.decrypt_seconds:.2f} s waiting on it",
            )
            if reader.encrypted
            else Phase("decrypt", opened, 0.0, artifact.name, note="not encrypted")
        )
        record.phases += [
            Phase(
                "download",
                opened,
                round(reader.elapsed, 3),
                artifact.name,
                reader.size,
                f"{rate:.1f} MiB/s; {reader.read_seconds:.2f} s waiting on storage",
            ),
            decrypt,
            Phase(
                "decompress",
                opened,
                round(reader.elapsed, 3),
                artifact.name,
                plain,
                f"{artifact.compression}, streamed on the host; {reader.inspect_seconds:.2f} s to check "
                "it on the control node",
            ),
            Phase(
                stage,
                started,
                round(seconds, 3),
                artifact.name,
                plain,
                "into the staging database" if stage == "import" else "into a sibling folder",
            ),
        ]
        record.bytes += reader.size
        record.plain_bytes += plain

    # -- commit and abort -------------------------------------------------------------------------

    def _commit(self) -> None:
        """Swap everything staged into place: only reached when every artifact passed every check."""
        params, record = self.params, self.record
        parts = ["RENAME TABLE into the target"] if self.commit_db else []
        parts += ["folder swapped in place"] if params.files else []
        with record.phase("commit", note="; ".join(parts)):
            if self.commit_db is not None and self.staging_db is not None:
                assert params.database is not None
                # From here on the staging database is never dropped automatically: if the commit
                # stops half-way, it holds the restored tables.
                staging, self.staging_db = self.staging_db, None
                command, payload = commands.sql_command(params.database)
                stdin = payload + self.commit_db.encode("utf-8") + b"\n"
                result = self._run(command, stdin=stdin, timeout=META_TIMEOUT)
                if result.rc != 0 or "#committed" not in result.stdout:
                    raise RestoreFailed(
                        "commit",
                        f"the database commit failed (exit {result.rc}): {_stderr(result)}; the target "
                        f"database may be incomplete, the restored tables are in {staging}: restore again",
                    )
                record.database_created = not record.database.get("existed", True)
            if params.files is not None and self.staging_dir is not None:
                # the kept paths are already in the tree (_prepare_files)
                result = self._run(
                    commands.swap_command(params.files.root, self.staging_dir, params.files.paths, []),
                    timeout=META_TIMEOUT,
                )
                if result.rc != 0:
                    raise RestoreFailed("commit", f"swapping the files in failed: {_stderr(result)}")
                self.staging_dir = None
        record.committed = True

    def abort(self) -> None:
        """Best effort: drop what was staged; the target database and files were never touched.

        Runs on the transport directly, without the step's cancel event: after an interrupt the
        cleanup must still run (the host script's own trap removes an extraction folder anyway).
        """
        transport = self.ctx.transport
        if self.staging_db is not None and self.params.database is not None:
            command, payload = commands.sql_command(self.params.database)
            drop = f"DROP DATABASE IF EXISTS {sql.name(self.staging_db)};\n".encode()
            with suppress(Exception):
                transport.run(command, stdin=payload + drop, timeout=ABORT_TIMEOUT)
            self.staging_db = None
        if self.staging_dir is not None and self.params.files is not None:
            with suppress(Exception):
                transport.run(
                    commands.discard_command(self.params.files.root, self.staging_dir), timeout=ABORT_TIMEOUT
                )
            self.staging_dir = None
        elif self.extracting and self.params.files is not None:
            # the extraction was killed before its folder was known here: its own trap removes the
            # folder, but on the host's time (and not at all after a KILL); sweep it now, under the lock
            with suppress(Exception):
                transport.run(commands.sweep_command(self.params.files.root), timeout=ABORT_TIMEOUT)


class _Background(Generic[T]):
    """One call run in a thread now; :meth:`result` waits for it and returns or raises its outcome."""

    def __init__(self, call: Callable[[], T], name: str) -> None:
        self._call = call
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._call()
        except BaseException as error:
            self._error = error

    def wait(self) -> None:
        self._thread.join()

    def result(self) -> T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value


def expected_tar_bytes(artifact: Artifact) -> int | None:
    """About how many bytes ``restic dump`` will write for an engine artifact: the tree's bytes plus a
    512-byte header and half a block of padding per file (what a progress ETA aims at); None for a
    manifest that does not record the tree's size."""
    if artifact.tree_bytes is None:
        return None
    return artifact.tree_bytes + 768 * (artifact.files_count or 0)


def _covers(paths: Sequence[str], path: str) -> bool:
    """Whether one of ``paths`` (relative to a root; "." the whole root) is ``path`` or holds it."""
    for item in paths:
        norm = posixpath.normpath(item)
        if norm == "." or norm == path or path.startswith(norm.rstrip("/") + "/"):
            return True
    return False


def _marker_lines(stderr: str) -> list[tuple[str, str]]:
    out = []
    for line in stderr.splitlines():
        if line.startswith("maintkit:") and "=" in line:
            key, _, value = line[len("maintkit:") :].partition("=")
            out.append((key, value))
    return out


def _stderr(result: CommandResult) -> str:
    return strip_markers(result.stderr).strip()[-2000:] or "(no message)"
