"""``prune``: apply the ``retention`` policy to the site's snapshots in every target.

Runs on the control node. The rules (restic/borgmatic ``keep_*``, the newest verified snapshot
always kept, unfinished snapshots swept after 24 h) live in :mod:`maintkit.storage.retention`.
"""

from __future__ import annotations

from pydantic import Field

from maintkit.actions.base import Action, ActionParams, StepContext
from maintkit.model.results import ActionResult
from maintkit.storage.operations import prune_target_with_engine
from maintkit.storage.sites import site_name, site_retention, site_targets


class PruneParams(ActionParams):
    targets: list[str] | None = Field(None, description="Storage targets to prune (default: all).")
    dry_run: bool = Field(False, description="Only report what would be pruned.")


class Prune(Action):
    name = "prune"
    summary = "Delete the snapshots the retention policy no longer keeps (keep_daily, keep_weekly, ...)."
    idempotent = True  # deleting what retention no longer keeps a second time deletes nothing more
    Params = PruneParams
    local_only = True

    def plan(self, params: PruneParams, ctx: StepContext) -> list[str]:
        policy = site_retention(ctx.vars, ctx.redactor)
        names = ", ".join(t.name for t in site_targets(ctx.vars, params.targets, ctx.redactor))
        return [
            f"(control node) prune snapshots of {site_name(ctx.vars)} in {names}, keeping "
            f"{policy.describe()}; the newest verified one is never pruned"
        ]

    def run(self, params: PruneParams, ctx: StepContext) -> ActionResult:
        site, env = site_name(ctx.vars), str(ctx.vars["maintkit_env"])
        policy = site_retention(ctx.vars, ctx.redactor)
        pruned: dict[str, list[str]] = {}
        kept: dict[str, list[str]] = {}
        for target in site_targets(ctx.vars, params.targets, ctx.redactor):
            keep, prune, engine = prune_target_with_engine(target, site, env, policy, dry_run=params.dry_run)
            if engine.forgotten:
                ctx.emit(
                    "engine_pruned",
                    target=target.name,
                    forgotten=engine.forgotten,
                    debris=engine.debris,
                    dry_run=params.dry_run,
                    msg="restic forget + prune" if engine.pruned else "restic forget (dry run)",
                )
            kept[target.name] = [d.snapshot.id for d in keep]
            pruned[target.name] = [d.snapshot.id for d in prune]
            for decision in prune:
                ctx.emit(
                    "snapshot_pruned",
                    target=target.name,
                    snapshot=decision.snapshot.id,
                    reasons=list(decision.reasons),
                    dry_run=params.dry_run,
                )
        count = sum(len(ids) for ids in pruned.values())
        verb = "would prune" if params.dry_run else "pruned"
        return ActionResult(
            changed=count > 0 and not params.dry_run,
            msg=f"{verb} {count} snapshot(s), kept {sum(len(ids) for ids in kept.values())}",
            data={"pruned": pruned, "kept": kept},
        )
