"""``release``: prepare a new release from the current one, switch atomically, switch back, keep N.

One action with an ``op`` because the operations share the layout, the history file and its
rules (:mod:`maintkit.updates.releases`); a playbook reads like the procedure::

    - release: {op: prepare, root: /var/www/shop}          # register: release
    - ...composer, setup:upgrade in {{ release.path }}...
    - release: {op: switch, root: /var/www/shop, release: "{{ release.id }}"}
    rollback:
    - release: {op: rollback, root: /var/www/shop, release: "{{ release.id }}"}

``rollback`` is safe to run whatever point the run reached: when ``current`` never moved to the
failed release it only marks that release failed, so the failed release is never switched to again
by a later rollback (Deployer's ``BAD_RELEASE``). It never marks the live release failed unless it
switches away from it: with nowhere to go it fails and marks nothing, and ``to`` naming the release
already current changes nothing (the manual step after an unfinished rollback relies on both; the
rules are :meth:`maintkit.updates.releases.History.plan_rollback`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, cast

from pydantic import ConfigDict, Field, field_validator, model_validator

from maintkit.actions.base import Action, ActionParams, StepContext, written_in
from maintkit.cms.base import ReleaseCms, release_layout
from maintkit.model.problems import StepFailed
from maintkit.model.results import ActionResult
from maintkit.updates import releases as rel

Op = Literal["prepare", "switch", "rollback", "cleanup", "list"]


class ReleaseParams(ActionParams):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    op: Op = Field(description="prepare | switch | rollback | cleanup | list.")
    root: str = Field(description="The site's root on the host (holds current, releases/, shared/).")
    cms: ReleaseCms = Field(
        "magento", description="Whose release layout gives the defaults of shared, copy and clear."
    )
    shared: list[str] | None = Field(
        None, description="Paths linked to ROOT/shared in every release (default: the cms's list)."
    )
    copy_paths: list[str] | None = Field(
        None,
        alias="copy",
        description="Paths copied for real, not hard-linked, because tools rewrite them in place "
        "(default: vendor, composer.json, composer.lock, app/etc/config.php, generated, pub/static).",
    )
    clear: list[str] | None = Field(
        None, description="Paths that start empty in a new release (caches; default: the cms's list)."
    )
    release: str | None = Field(
        None,
        description="switch: the release to make current; rollback: the release that failed "
        "(default: current).",
    )
    to: str | None = Field(None, description="rollback: the release to go back to (default: the one before).")
    keep: int = Field(5, ge=1, description="cleanup: how many releases to keep (current included).")
    promoted_from: str | None = Field(
        None, description="prepare: the promotable record this release installs."
    )
    reason: str | None = Field(None, description="rollback: why the release failed (kept in the history).")

    @field_validator("shared", "copy_paths", "clear")
    @classmethod
    def _relative(cls, value: list[str] | None) -> list[str] | None:
        return [rel.check_relative(p) for p in value] if value is not None else None

    @model_validator(mode="after")
    def _needs_release(self) -> ReleaseParams:
        if self.op == "switch" and not self.release:
            raise ValueError("op 'switch' needs 'release' (the id to make current)")
        return self

    def lists(self) -> tuple[list[str], list[str], list[str]]:
        layout = release_layout(self.cms)
        shared, copy, clear = layout.shared, layout.copy, layout.clear
        return (
            self.shared if self.shared is not None else list(shared),
            self.copy_paths if self.copy_paths is not None else list(copy),
            self.clear if self.clear is not None else list(clear),
        )


class ReleaseAction(Action):
    name = "release"
    summary = "Releases: prepare from current (hard links + copies), switch atomically, roll back, keep N."
    Params = ReleaseParams

    def changes_production(self, params: Mapping[str, Any]) -> bool:
        return written_in(params, "op", ("prepare", "switch"))  # rollback, cleanup, list: allowed

    def plan(self, params: ReleaseParams, ctx: StepContext) -> list[str]:
        root = params.root
        if params.op == "prepare":
            shared, copy, clear = params.lists()
            return [
                rel.prepare_command(root, "NEW_RELEASE_ID", shared=shared, copy=copy, clear=clear),
                f"(control node) record the new release in {root}/{rel.HISTORY_FILE}",
            ]
        if params.op == "switch":
            return [rel.switch_command(root, params.release or "")]
        if params.op == "rollback":
            target = params.to or "the release before it in the history"
            return [
                f"if {root}/current is {params.release or '(any)'}: switch it to {target}:",
                rel.switch_command(root, params.to or "PREVIOUS_RELEASE_ID"),
                f"mark {params.release} failed in {root}/{rel.HISTORY_FILE}",
            ]
        if params.op == "cleanup":
            return [f"remove all but the newest {params.keep} releases of {root} (never current or previous)"]
        return [rel.state_command(root), f"cat {root}/{rel.HISTORY_FILE}"]

    def run(self, params: ReleaseParams, ctx: StepContext) -> ActionResult:
        site = rel.ReleaseRoot(ctx.run, params.root)
        operation: Any = getattr(self, f"_{params.op}")
        return cast(ActionResult, operation(params, ctx, site))

    def _prepare(self, params: ReleaseParams, ctx: StepContext, site: rel.ReleaseRoot) -> ActionResult:
        current = site.require_current()
        now = rel.now_utc()
        release_id = rel.new_release_id(site.history, site.state.folders, now)
        shared, copy, clear = params.lists()
        result = ctx.run(rel.prepare_command(site.root, release_id, shared=shared, copy=copy, clear=clear))
        if result.rc != 0:
            return ActionResult(
                failed=True,
                rc=result.rc,
                stderr=result.stderr,
                msg=f"preparing release {release_id} failed: {result.stderr.strip()[-1000:]}",
            )
        site.history.ensure(current)
        site.history.releases.append(
            rel.Release(
                release_id,
                now.isoformat(),
                run_id=ctx.run_id,
                playbook=str(ctx.vars.get("playbook_name") or ""),
                from_release=current,
                promoted_from=params.promoted_from,
            )
        )
        site.save()
        return ActionResult(
            changed=True,
            msg=f"release {release_id} prepared from {current}",
            data={
                "id": release_id,
                "path": site.path(release_id),
                "previous": current,
                "previous_path": site.path(current),
                "root": site.root,
                "current_path": f"{site.root}/current",
            },
        )

    def _switch(self, params: ReleaseParams, ctx: StepContext, site: rel.ReleaseRoot) -> ActionResult:
        release_id = rel.check_id(params.release or "")
        if release_id not in site.state.folders:
            raise StepFailed(f"there is no release {release_id} in {site.root}/releases")
        if site.state.current == release_id:
            return ActionResult(
                msg=f"current is already {release_id}", data={"id": release_id, "previous": None}
            )
        previous, lock_sha = site.switch(release_id, ctx.run_id)
        return ActionResult(
            changed=True,
            msg=f"current: {previous} → {release_id}",
            data={"id": release_id, "previous": previous, "composer_lock_sha256": lock_sha},
        )

    def _rollback(self, params: ReleaseParams, ctx: StepContext, site: rel.ReleaseRoot) -> ActionResult:
        current = site.require_current()
        failed = rel.check_id(params.release) if params.release else None
        plan = site.history.plan_rollback(current, failed, params.to)
        if plan.switch:
            if plan.target not in site.state.folders:
                raise StepFailed(
                    f"cannot go back to {plan.target}: {site.root}/releases/{plan.target} is gone"
                )
            site.switch(plan.target, ctx.run_id)
        if plan.mark_failed:
            entry = site.history.ensure(plan.abandoned)
            entry.state = "failed"
            entry.reason = params.reason or f"rolled back by run {ctx.run_id}"
        site.save()
        msg = f"current: {current} → {plan.target}" if plan.switch else f"current stays {current}"
        if plan.mark_failed:
            msg += f"; {plan.abandoned} marked failed"
        return ActionResult(
            changed=plan.switch,
            msg=msg,
            data={
                "current": site.state.current,
                "switched": plan.switch,
                "failed": plan.abandoned if plan.mark_failed else None,
                "previous": current,
            },
        )

    def _cleanup(self, params: ReleaseParams, ctx: StepContext, site: rel.ReleaseRoot) -> ActionResult:
        current = site.require_current()
        protected = {current, site.history.rollback_target(current)}
        ordered = sorted(
            site.state.folders, key=lambda i: ((site.history.get(i) or rel.Release(i, "")).created, i)
        )
        failed = [i for i in ordered if (site.history.get(i) or rel.Release(i, "")).state == "failed"]
        healthy = [i for i in ordered if i not in failed]
        excess = max(0, len(ordered) - params.keep)
        # failed releases go first, then the oldest healthy ones
        candidates = [i for i in failed + healthy if i not in protected][:excess]
        if not candidates:
            return ActionResult(msg=f"{len(ordered)} release(s), keeping {params.keep}: nothing to remove")
        result = ctx.run(rel.remove_command(site.root, candidates))
        if result.rc != 0:
            raise StepFailed(f"removing old releases failed: {result.stderr.strip()[-500:]}")
        for release_id in candidates:
            site.history.ensure(release_id).removed = True
        site.save()
        return ActionResult(
            changed=True,
            msg=f"removed {len(candidates)} release(s): {', '.join(candidates)}",
            data={"removed": candidates},
        )

    def _list(self, params: ReleaseParams, ctx: StepContext, site: rel.ReleaseRoot) -> ActionResult:
        rows = site.rows()
        return ActionResult(
            msg=f"{len(rows)} release(s), current {site.state.current}",
            data={"releases": rows, "current": site.state.current},
        )
