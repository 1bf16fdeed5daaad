"""``promotable``: record what staging proved; on production, require it and install exactly it.

* ``op: record`` (staging, last step of an update): reads ``composer.lock`` and ``composer.json``
  from the release on the host (and/or takes ``versions`` for WordPress/PrestaShop) and writes them
  with the smoke results, the staging run id and the time to every storage target, ``record.json``
  last (:mod:`maintkit.updates.promotable`).
* ``op: check`` (production, first step of ``promote``): the newest record of ``from_env`` must
  exist, be younger than ``max_age`` and newer than the release production runs; otherwise the step
  fails with the reason, before anything changed.
* ``op: apply``: writes the record's files into a folder on the host (the new release), each
  checked against the SHA-256 in the record: production installs those bytes, never a new resolve.

Runs on the control node except for the few file reads and writes on the host.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, cast

from pydantic import Field, model_validator

from maintkit import __version__
from maintkit.actions.base import Action, ActionParams, StepContext, written_in
from maintkit.cms.base import CmsName
from maintkit.model.problems import StepFailed
from maintkit.model.results import ActionResult
from maintkit.storage.base import Target, parse_snapshot_id
from maintkit.storage.sites import site_name, site_targets
from maintkit.updates import promotable as prom
from maintkit.updates import releases as rel
from maintkit.updates.hostio import read_file, write_file

COMPOSER_FILES = ["composer.lock", "composer.json"]


class PromotableParams(ActionParams):
    op: Literal["record", "check", "apply"] = Field(description="record | check | apply.")
    path: str | None = Field(
        None, description="record: the folder holding the files (the release); apply: where to write them."
    )
    files: list[str] = Field(
        default_factory=lambda: list(COMPOSER_FILES),
        description="Files recorded / applied (relative to path).",
    )
    cms: CmsName = Field("magento", description="record: the CMS, for people reading the record.")
    release_id: str | None = Field(None, description="record: the staging release the record describes.")
    versions: dict[str, Any] = Field(
        default_factory=dict, description="record: versions to apply (WordPress...)."
    )
    moved: list[dict[str, Any]] = Field(
        default_factory=list, description="record: what moved (composer step's data)."
    )
    smoke: list[dict[str, Any]] = Field(
        default_factory=list, description="record: the smoke checks' results."
    )
    from_env: str = Field("staging", description="check/apply: the environment whose record to promote.")
    site: str | None = Field(
        None, description="check/apply: the site name in storage (default: this host's)."
    )
    max_age: str = Field("7d", description="check: the oldest record accepted (7d, 12h, 30m or seconds).")
    root: str | None = Field(
        None, description="check: production's site root, to compare with its current release."
    )
    record: str | None = Field(None, description="apply: the record id (from the check step's data).")
    targets: list[str] | None = Field(None, description="Storage targets (default: all).")

    @model_validator(mode="after")
    def _needs(self) -> PromotableParams:
        if self.op == "apply" and not (self.path and self.record):
            raise ValueError("op 'apply' needs 'path' and 'record'")
        if self.op == "record" and not (self.path or self.versions):
            raise ValueError("op 'record' needs 'path' (files to record) or 'versions'")
        prom.parse_age(self.max_age)
        return self


class Promotable(Action):
    name = "promotable"
    summary = "Record a staging release as promotable; on production require a fresh record and install it."
    Params = PromotableParams

    def changes_production(self, params: Mapping[str, Any]) -> bool:
        return written_in(params, "op", ("apply",))  # record (staging) and check only read production

    def plan(self, params: PromotableParams, ctx: StepContext) -> list[str]:
        site, env = params.site or site_name(ctx.vars), str(ctx.vars["maintkit_env"])
        if params.op == "record":
            return [
                f"(control node) read {', '.join(params.files)} from {params.path}; "
                f"write them and record.json "
                f"to {prom.records_prefix(site, env)}"
            ]
        if params.op == "check":
            return [
                f"(control node) require a record in {prom.records_prefix(site, params.from_env)} "
                f"younger than "
                f"{params.max_age} and newer than production's current release in {params.root}"
            ]
        return [
            f"(control node) write {', '.join(params.files)} of record {params.record} into {params.path} "
            "(SHA-256 checked)"
        ]

    def run(self, params: PromotableParams, ctx: StepContext) -> ActionResult:
        targets = site_targets(ctx.vars, params.targets, ctx.redactor)
        operation: Any = getattr(self, f"_{params.op}")
        return cast(ActionResult, operation(params, ctx, targets))

    def _record(self, params: PromotableParams, ctx: StepContext, targets: list[Target]) -> ActionResult:
        files: dict[str, bytes] = {}
        for name in params.files if params.path else []:
            data = read_file(ctx.run, f"{params.path.rstrip('/')}/{name}") if params.path else None
            if data is None:
                raise StepFailed(f"{params.path}/{name} does not exist: nothing to record")
            files[name] = data
        failed_smoke = [s for s in params.smoke if s.get("failed")]
        if failed_smoke:
            raise StepFailed(f"refusing to record: {len(failed_smoke)} smoke check(s) failed")
        now = prom.now_utc().replace(microsecond=0)
        record = prom.Record(
            record_id=params.release_id or now.strftime("%Y%m%dT%H%M%SZ"),
            site=site_name(ctx.vars),
            env=str(ctx.vars["maintkit_env"]),
            host=ctx.host.name,
            created=now.isoformat(),
            cms=params.cms,
            run_id=ctx.run_id,
            release_id=params.release_id,
            versions=params.versions,
            moved=params.moved,
            smoke=[_smoke_summary(s) for s in params.smoke],
            tool_version=__version__,
        )
        prom.write_record(targets, record, files)
        return ActionResult(
            changed=True,
            msg=f"promotable record {record.record_id} written to {', '.join(t.name for t in targets)}",
            data={"record_id": record.record_id, "files": record.files, "created": record.created},
        )

    def _check(self, params: PromotableParams, ctx: StepContext, targets: list[Target]) -> ActionResult:
        site = params.site or site_name(ctx.vars)
        record = prom.latest_record(targets[0], site, params.from_env)
        production = prom.Production(None, None, None)
        if params.root:
            state = rel.ReleaseRoot(ctx.run, params.root)
            current = state.state.current
            entry = state.history.get(current) if current else None
            production = prom.Production(
                current,
                (entry.created_at if entry else None) or (parse_snapshot_id(current) if current else None),
                entry.promoted_from if entry else None,
            )
        reason = prom.refusal(record, production, prom.parse_age(params.max_age), prom.now_utc())
        if reason:
            return ActionResult(failed=True, msg=f"refusing to promote: {reason}", data={"reason": reason})
        assert record is not None
        return ActionResult(
            msg=f"promotable record {record.record_id} from {record.host} ({record.created}), "
            f"run {record.run_id}",
            data={
                "record_id": record.record_id,
                "created": record.created,
                "host": record.host,
                "run_id": record.run_id,
                "versions": record.versions,
                "moved": record.moved,
                "files": record.files,
                "production_release": production.release_id,
            },
        )

    def _apply(self, params: PromotableParams, ctx: StepContext, targets: list[Target]) -> ActionResult:
        site = params.site or site_name(ctx.vars)
        assert params.record and params.path
        record = prom.read_record(targets[0], site, params.from_env, params.record)
        written = []
        for name in params.files:
            if name not in record.files:
                raise StepFailed(f"promotable record {record.record_id} holds no {name}")
            data = prom.read_file(targets[0], record, name)
            write_file(ctx.run, f"{params.path.rstrip('/')}/{name}", data)
            written.append(name)
        return ActionResult(
            changed=True,
            msg=f"wrote {', '.join(written)} of record {record.record_id} into {params.path}",
            data={"record_id": record.record_id, "files": record.files},
        )


def _smoke_summary(result: dict[str, Any]) -> dict[str, Any]:
    """The part of a registered http result worth keeping in a record."""
    keys = ("url", "status", "latency_ms", "msg", "failed")
    raw = result.get("data")
    data: dict[str, Any] = raw if isinstance(raw, dict) else {}
    return {k: result.get(k, data.get(k)) for k in keys}
