"""``verify``: prove a stored snapshot is whole by re-reading every artifact in every target.

Runs on the control node (the storage is read from here; the host is not involved).
"""

from __future__ import annotations

from pydantic import Field

from maintkit.actions.base import Action, ActionParams, StepContext
from maintkit.model.results import ActionResult
from maintkit.storage.operations import resolve_snapshot
from maintkit.storage.sites import site_encryption, site_name, site_targets
from maintkit.storage.verify import verify_snapshot


class VerifyParams(ActionParams):
    snapshot: str = Field("latest", description="Snapshot id, or 'latest' (the newest complete one).")
    targets: list[str] | None = Field(None, description="Storage targets to check (default: all).")


class Verify(Action):
    name = "verify"
    summary = "Re-read a stored snapshot: size, SHA-256, full decompression, tar listing, dump trailer."
    idempotent = True  # it only reads the stored snapshot
    Params = VerifyParams
    shorthand = "snapshot"
    local_only = True

    def plan(self, params: VerifyParams, ctx: StepContext) -> list[str]:
        names = ", ".join(t.name for t in site_targets(ctx.vars, params.targets, ctx.redactor))
        return [f"(control node) verify snapshot {params.snapshot} of {site_name(ctx.vars)} in: {names}"]

    def run(self, params: VerifyParams, ctx: StepContext) -> ActionResult:
        site, env = site_name(ctx.vars), str(ctx.vars["maintkit_env"])
        verdicts: dict[str, bool] = {}
        problems: list[str] = []
        snapshot_ids = set()
        encryption = site_encryption(ctx.vars, ctx.redactor)
        identities = encryption.load_identities() if encryption and encryption.identity_file else None
        for target in site_targets(ctx.vars, params.targets, ctx.redactor):
            manifest = resolve_snapshot(target, site, env, params.snapshot)
            snapshot_ids.add(manifest.snapshot_id)
            verification = verify_snapshot(target, manifest, emit=ctx.emit, identities=identities)
            verdicts[target.name] = verification.ok
            problems += [f"{target.name}: {r.name}: {r.message}" for r in verification.results if not r.ok]
        ids = ", ".join(sorted(snapshot_ids))
        return ActionResult(
            failed=bool(problems),
            msg="; ".join(problems) if problems else f"snapshot {ids} verified in {', '.join(verdicts)}",
            data={"snapshot_id": ids, "targets": verdicts},
        )
