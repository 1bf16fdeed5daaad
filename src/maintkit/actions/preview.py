"""``preview``: what an update would do, found by doing it on a throw-away copy of the live release.

Why a copy and not ``composer update --dry-run`` plus ``setup:db:status`` on ``current``: the
status commands answer for the code that is installed, so on ``current`` they say "not needed"
for an update whose new module version carries a schema change, and the real run then runs
``setup:upgrade`` (and the maintenance window it implies). Only the new code can tell. So
``--check`` makes the copy a real update would make (``release`` ``op: prepare``'s script: hard
links, real copies of what composer rewrites, shared paths linked), in
``ROOT/releases/.maintkit-check-RUN`` (beside the releases, so relative composer path repositories
resolve as they will; a dot name, so the release listing and ``cleanup`` never see it), runs the
real ``composer update`` there, then ``setup:db:status`` and ``app:config:status`` in it, and
removes it whatever happened.

What it touches: the copy only. ``current``, the release history and the database are not written
(the status commands only read the database). Magento may write logs into the shared ``var/log``.
It takes no lock (``--check`` never does); a copy left by a killed check is removed by the next
preview after a day.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from maintkit.actions.base import Action, ActionParams, StepContext
from maintkit.actions.composer import ComposerParams, composer_command, package_words
from maintkit.actions.magento import NEEDS_UPGRADE_RC, MagentoParams, magento_command
from maintkit.cms.base import ReleaseCms, release_layout
from maintkit.model.problems import MaintkitError
from maintkit.model.results import ActionResult
from maintkit.updates import releases as rel
from maintkit.updates.composerlock import diff_versions, lock_versions
from maintkit.updates.hostio import read_file


class PreviewParams(ActionParams):
    root: str = Field(description="The site's root on the host (holds current, releases/, shared/).")
    cms: ReleaseCms = Field(
        "magento",
        description="Whose release layout; a CMS whose layout has setup status commands (magento) "
        "also runs them.",
    )
    packages: list[str] = Field(
        default_factory=list, description="What composer update would update (empty: everything)."
    )
    env: dict[str, str] = Field(
        default_factory=dict, description="Composer's environment (COMPOSER_HOME...)."
    )
    composer: str = Field("composer", description="The composer program on the host.")
    php: str = Field("php", description="The PHP program on the host.")
    force_upgrade: bool = Field(False, description="The update forces setup:upgrade (force_upgrade).")

    _words = field_validator("packages", mode="before")(classmethod(lambda cls, v: package_words(v)))


class Preview(Action):
    name = "preview"
    summary = "--check: run the update on a throw-away copy of current; say if setup:upgrade will run."
    Params = PreviewParams

    def _commands(self, params: PreviewParams, folder: str) -> tuple[str, str, str, str, str]:
        layout = release_layout(params.cms)
        shared, copy, clear = list(layout.shared), list(layout.copy), list(layout.clear)
        path = f"{params.root.rstrip('/')}/releases/{folder}"
        composer = ComposerParams.model_validate(
            {
                "command": "update",
                "working_dir": path,
                "packages": params.packages,
                "env": params.env,
                "composer": params.composer,
            }
        )
        magento = MagentoParams.model_validate(
            {"command": "setup:db:status", "root": path, "php": params.php}
        )
        return (
            rel.prepare_command(params.root, folder, shared=shared, copy=copy, clear=clear),
            composer_command(composer),
            magento_command(magento, "setup:db:status", []),
            magento_command(magento, "app:config:status", []),
            rel.remove_preview_command(params.root, folder),
        )

    def plan(self, params: PreviewParams, ctx: StepContext) -> list[str]:
        folder = rel.preview_folder(ctx.run_id)
        prepare, composer, db, config, remove = self._commands(params, folder)
        status = [db, config] if release_layout(params.cms).setup_status else []
        plan = [prepare, composer, *status, remove]
        if not (ctx.check and ctx.vars.get("check_probe", True)):
            return plan
        try:
            result = self.run(params, ctx)
        except MaintkitError as error:
            return [*plan, f"(preview failed: {error})"]
        return [*plan, *(result.data.get("lines") or [result.msg])]

    def run(self, params: PreviewParams, ctx: StepContext) -> ActionResult:
        folder = rel.preview_folder(ctx.run_id)
        prepare, composer, db, config, remove = self._commands(params, folder)
        path = f"{params.root.rstrip('/')}/releases/{folder}"
        try:
            made = ctx.run(prepare)
            if made.rc != 0:
                return ActionResult(
                    failed=True,
                    rc=made.rc,
                    msg=f"preparing the preview copy failed: {made.stderr.strip()[-500:]}",
                )
            before = lock_versions(read_file(ctx.run, f"{path}/composer.lock"))
            updated = ctx.run(composer)
            if updated.rc != 0:
                return ActionResult(
                    failed=True,
                    rc=updated.rc,
                    stderr=updated.stderr,
                    msg=f"composer update would fail (exit status {updated.rc}): "
                    f"{updated.stderr.strip()[-500:]}",
                )
            moves = diff_versions(before, lock_versions(read_file(ctx.run, f"{path}/composer.lock")))
            lines = [f"would move: {m.describe()}" for m in moves] or ["would move: nothing"]
            data: dict[str, object] = {"moved": [m.as_dict() for m in moves], "upgrade_needed": None}
            if release_layout(params.cms).setup_status:
                verdict, needed, failed = self._status(ctx, db, config, params.force_upgrade)
                lines.append(verdict)
                data["upgrade_needed"] = needed
                if failed:
                    return ActionResult(failed=True, msg=verdict, data={**data, "lines": lines})
            data["lines"] = lines
            return ActionResult(msg="; ".join(lines), data=data)
        finally:
            ctx.run(remove)

    def _status(self, ctx: StepContext, db: str, config: str, forced: bool) -> tuple[str, bool, bool]:
        """(the verdict line, whether setup:upgrade will run, whether a status command failed)."""
        results = {"database schema": ctx.run(db), "config": ctx.run(config)}
        broken = [
            f"{what}: exit status {r.rc}" for what, r in results.items() if r.rc not in (0, NEEDS_UPGRADE_RC)
        ]
        if broken:
            return f"the status commands failed on the updated copy ({', '.join(broken)})", False, True
        reasons = [what for what, r in results.items() if r.rc == NEEDS_UPGRADE_RC]
        if reasons:
            return (
                f"setup:upgrade WILL run after the update ({' and '.join(reasons)} of the new code): "
                "the shop goes into maintenance for it",
                True,
                False,
            )
        if forced:
            return "setup:upgrade WILL run (force_upgrade), though the new code does not need it", True, False
        return "setup:upgrade not needed after the update (no maintenance window for it)", False, False
