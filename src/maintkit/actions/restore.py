"""``restore``: bring a stored snapshot back onto a host: database and files, proven, then committed.

The adapter: the parameter model, the plan ``--check`` prints, a call into
:class:`~maintkit.jobs.restore.job.RestoreJob` (where the stages, the guard and the commit live),
and the mapping of its record or its failure to an :class:`ActionResult`.
"""

from __future__ import annotations

import posixpath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from maintkit.actions.base import Action, ActionParams, StepContext
from maintkit.cms.base import UrlRewriteCms, config_file
from maintkit.jobs.restore.copies import candidate_targets, fallback_hint, other_copies, pick_target
from maintkit.jobs.restore.job import RestoreFailed, RestoreJob
from maintkit.jobs.restore.record import Cause, RestoreRecord
from maintkit.jobs.restore.source import RestoreSource
from maintkit.jobs.restore.stream import IntegrityError, UnsafeContent
from maintkit.model.problems import MaintkitError
from maintkit.model.results import ActionResult
from maintkit.sources.database import DatabaseSource
from maintkit.sources.files import FilesSource
from maintkit.storage.base import StorageError
from maintkit.storage.sites import site_name


class RewriteUrls(BaseModel):
    """Point the restored copy at its own URL (so it never links to, or redirects to, the source)."""

    model_config = ConfigDict(extra="forbid")

    app: UrlRewriteCms = Field(
        description="Whose settings (a CMS whose profile can rewrite URLs: magento, wordpress)."
    )
    url: str = Field(
        description="The copy's base URL (Magento: unsecure and secure; WordPress: siteurl/home)."
    )
    secure_url: str | None = Field(None, description="Magento's secure base URL, when it differs.")
    table_prefix: str | None = Field(None, description="Table prefix (default: none / 'wp_').")

    @field_validator("url", "secure_url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value


class RestoreParams(ActionParams):
    snapshot: str = Field(
        "latest",
        description="Snapshot id, 'latest' (the newest complete one), or 'before:ID' (the newest "
        "complete one older than ID).",
    )
    source: dict[str, Any] | None = Field(
        None,
        description="Where the snapshot comes from when restoring into another environment "
        "(default: the source 'maintkit restore --into' and 'maintkit drill' give the run, else this "
        "environment's storage). A target that is the source's database or folder is then refused.",
    )
    site: str | None = Field(
        None, description="The site whose snapshot to restore (default: this host's site)."
    )
    target: str | None = Field(None, description="Storage target to read (default: the first holding it).")
    database: DatabaseSource | None = Field(
        None,
        description="Where to load the dump: {name, user, password, host, port} or {from: magento, root}.",
    )
    files: FilesSource | None = Field(None, description="Where to extract the files: {root, paths, cms}.")
    create_database: bool = Field(False, description="Create the database when it does not exist.")
    force: bool = Field(False, description="Replace a database that is not empty (else refused).")
    definers: Literal["keep", "current"] = Field(
        "keep",
        description="DEFINER of views, triggers, routines: as dumped (keep), or the restoring user "
        "(current).",
    )
    rewrite_urls: RewriteUrls | None = Field(None, description="Rewrite the shop's base URLs in the copy.")
    keep: list[str] | None = Field(
        None,
        description="Paths under root kept from the live folder (default: the cms's config file, "
        "e.g. app/etc/env.php).",
    )
    count_rows: bool = Field(True, description="Count the restored rows and compare them with the dump.")
    drill: bool = Field(
        False,
        description="A drill: also refuse environments named production and hosts marked production, "
        "and mark what it restores (run id) for drill_cleanup (see docs/restore.md).",
    )
    timeout: float | None = Field(None, description="Seconds each transfer may take (default: the step's).")

    @field_validator("keep")
    @classmethod
    def _relative(cls, value: list[str] | None) -> list[str] | None:
        for path in value or []:
            norm = posixpath.normpath(path)
            if not path or path.startswith("/") or norm == "." or norm.startswith(".."):
                raise ValueError(f"keep path {path!r} must be a relative path under root")
        return value

    @model_validator(mode="after")
    def _something(self) -> RestoreParams:
        if self.database is None and self.files is None:
            raise ValueError("give 'database', 'files' or both")
        return self

    def kept_paths(self) -> list[str]:
        if self.keep is not None:
            return self.keep
        config = config_file(self.files.cms) if self.files is not None else None
        return [config] if config else []


class Restore(Action):
    name = "restore"
    summary = "Restore a snapshot's database and files onto the host: verified, staged, then swapped in."
    Params = RestoreParams

    def plan(self, params: RestoreParams, ctx: StepContext) -> list[str]:
        given = RestoreSource.of_step(params.source, ctx.restore_source)
        plan = [_plan_source(params, ctx, given)]
        if given is not None or params.drill:
            plan.append(
                "(read-only) resolve the target's database server and name and its real folder on the "
                "host; refuse when they are the source's (the manifest's identity)"
            )
        if params.database:
            plan.append(
                f"load the dump into a staging database beside {params.database.describe()} "
                f"on {ctx.host.name}"
            )
            plan.append("count the staged rows; commit: RENAME TABLE into the target, re-create views etc.")
        if params.files:
            plan.append(
                f"extract the files beside {params.files.root} on {ctx.host.name}; commit: swap the folder "
                "in place"
            )
            config = config_file(params.files.cms)
            if (given is not None or params.drill) and config:
                plan.append(
                    f"keep (or write) the copy's own {config}; prove it names the "
                    "target's database before and after the commit"
                )
        return plan

    def run(self, params: RestoreParams, ctx: StepContext) -> ActionResult:
        job = RestoreJob(params, ctx)
        try:
            job.run()
        except RestoreFailed as error:
            job.abort()
            failed = _failed(job.record, error.cause, str(error), error.artifact)
            failed.refused = error.before_write
            return failed
        except (IntegrityError, UnsafeContent) as error:
            job.abort()
            cause: Cause = "integrity" if isinstance(error, IntegrityError) else "unsafe_archive"
            message = str(error)
            if cause == "integrity":  # this copy is damaged; an unsafe archive is so in every copy
                message += _elsewhere(job.record, params, ctx)
            return _failed(job.record, cause, message, error.artifact)
        except StorageError as error:  # the copy could not be read (gone, truncated, unreachable)
            job.abort()
            if not job.record.storage_target:
                raise
            return _failed(job.record, "error", str(error) + _elsewhere(job.record, params, ctx), None)
        except BaseException:
            job.abort()
            raise
        record = job.record
        return ActionResult(
            changed=True,
            msg=f"restored snapshot {record.snapshot_id} of {record.site} ({record.source_env}): "
            + ", ".join(filter(None, [_db_summary(record), _files_summary(record)])),
            data=record.as_dict(),
        )


def _plan_source(params: RestoreParams, ctx: StepContext, given: RestoreSource | None) -> str:
    """Where the snapshot is read from, as ``--check`` says it: the targets in the order tried.

    Read from the run's settings only (no storage, no host is contacted by a plan); a target that
    does not exist is said as the restore would say it.
    """
    site = params.site or site_name(ctx.vars)
    try:
        env, targets = candidate_targets(given, site, ctx.vars, ctx.redactor)
        targets = pick_target(targets, params.target, site, env)
    except MaintkitError as error:
        return f"(control node) cannot read the snapshot: {error}"
    if not targets:
        return f"(control node) cannot read the snapshot: no storage target for {site}/{env}"
    first, *others = targets
    where = f"target {first.name} ({first.describe()})"
    if others:
        where += ", else " + ", ".join(t.name for t in others) + " (the first holding it)"
    return (
        f"(control node) read snapshot {params.snapshot} of {site}/{env} from {where}; "
        "check each artifact's size and SHA-256 as it streams"
    )


def _db_summary(record: RestoreRecord) -> str:
    if not record.database:
        return ""
    rows = sum(t.restored_rows or 0 for t in record.tables)
    return f"database {record.database.get('name')} ({len(record.tables)} tables, {rows} rows)"


def _files_summary(record: RestoreRecord) -> str:
    if not record.files:
        return ""
    return f"files {record.files.get('root')} ({record.files.get('members')} entries)"


def _elsewhere(record: RestoreRecord, params: RestoreParams, ctx: StepContext) -> str:
    """The other targets holding the snapshot whose copy failed (recorded), as a sentence for the message."""
    source = RestoreSource.of_step(params.source, ctx.restore_source)
    try:
        _, targets = candidate_targets(source, record.site, ctx.vars, ctx.redactor)
    except MaintkitError:
        return ""
    record.other_targets = other_copies(
        targets, record.storage_target, record.site, record.source_env, record.snapshot_id
    )
    return fallback_hint(record.other_targets, record.snapshot_id)


def _failed(record: RestoreRecord, cause: Cause, message: str, artifact: str | None) -> ActionResult:
    """A failed restore: the record says how far it got (a drill's report shows it)."""
    record.cause = cause
    record.artifact = artifact
    record.error = message
    return ActionResult(failed=True, msg=message, data=record.as_dict())
