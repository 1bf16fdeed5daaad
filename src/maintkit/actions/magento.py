"""``magento``: run ``bin/magento`` commands in a release, and tell whether an upgrade is needed.

``command: upgrade-status`` runs ``setup:db:status`` and ``app:config:status`` (each exits 2 when
the database schema or the config must be upgraded: Magento's own signal, as Deployer and
capistrano-magento2 read it) and returns ``upgrade_needed``, ``db_status_rc``, ``config_status_rc``;
playbooks run ``setup:upgrade`` ``when: status.upgrade_needed or force_upgrade``. Any other command
is passed to ``bin/magento`` with ``--no-interaction``.

Why the status commands and not always ``setup:upgrade``: an upgrade is the step that moves the
database schema; skipping it when nothing changed keeps the maintenance window short and means a
rollback has no database to restore. ``force_upgrade`` covers Magento versions whose status is
unreliable (magento/magento2#19597).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from maintkit.actions.base import Action, ActionParams, EnvVars, StepContext
from maintkit.model.problems import MaintkitError
from maintkit.model.results import ActionResult
from maintkit.sources.script import host_path
from maintkit.transport.base import with_env

UPGRADE_STATUS = "upgrade-status"
NEEDS_UPGRADE_RC = 2


#: bin/magento commands that leave the code and the schema as they are (allowed during a freeze)
UNCHANGING = ("upgrade-status", "setup:db:status", "module:status", "deploy:mode:show")
UNCHANGING_PREFIXES = ("cache:", "indexer:", "maintenance:", "info:", "cron:run", "queue:consumers:list")


class MagentoParams(ActionParams):
    command: str = Field(
        description="A bin/magento command (setup:upgrade, cache:flush...) or 'upgrade-status'."
    )
    root: str = Field(description="The Magento root (a release folder, or ROOT/current).")
    args: list[str] = Field(default_factory=list, description="Arguments after the command, each quoted.")
    php: str = Field("php", description="The PHP program on the host.")
    env: EnvVars = Field(default_factory=dict, description="Environment for the command.")
    expect_rc: list[int] = Field(default_factory=lambda: [0], description="Exit codes that count as success.")


def magento_command(p: MagentoParams, command: str | None = None, args: list[str] | None = None) -> str:
    argv = [
        p.php,
        "bin/magento",
        command or p.command,
        *(p.args if args is None else args),
        "--no-interaction",
    ]
    return with_env(f"cd {host_path(p.root)} && {shlex.join(argv)}", p.env)


class Magento(Action):
    name = "magento"
    summary = (
        "bin/magento commands (--no-interaction); 'upgrade-status' says whether setup:upgrade is needed."
    )
    Params = MagentoParams
    shorthand = "command"

    def changes_production(self, params: Mapping[str, Any]) -> bool:
        """Every bin/magento command but those that only read, clean caches, reindex or toggle
        maintenance (a rollback flushes the cache): ``setup:upgrade``, ``module:enable``,
        ``deploy:mode:set``, ``config:set``... are refused during a freeze."""
        from maintkit.text.templating import has_template

        command = params.get("command")
        if has_template(command) or not isinstance(command, str):
            return True
        return not (command in UNCHANGING or command.startswith(UNCHANGING_PREFIXES))

    def plan(self, params: MagentoParams, ctx: StepContext) -> list[str]:
        if params.command != UPGRADE_STATUS:
            return [magento_command(params)]
        plan = [
            magento_command(params, "setup:db:status", []),
            magento_command(params, "app:config:status", []),
        ]
        if ctx.check and ctx.vars.get("check_probe", True):
            try:
                status = self._status(params, ctx)
            except MaintkitError as error:
                return [*plan, f"(probe failed: {error})"]
            plan.append(f"now, in {params.root}: {status.msg}")
        return plan

    def run(self, params: MagentoParams, ctx: StepContext) -> ActionResult:
        if params.command == UPGRADE_STATUS:
            return self._status(params, ctx)
        result = ctx.run(magento_command(params))
        failed = result.rc not in params.expect_rc
        return ActionResult(
            failed=failed,
            changed=not failed,
            rc=result.rc,
            stdout=result.stdout,
            stderr=result.stderr,
            msg=f"bin/magento {params.command}: exit status {result.rc}"
            + (f", expected {params.expect_rc}" if failed else ""),
        )

    def _status(self, params: MagentoParams, ctx: StepContext) -> ActionResult:
        db = ctx.run(magento_command(params, "setup:db:status", []))
        config = ctx.run(magento_command(params, "app:config:status", []))
        problems = [
            f"{name} exit status {r.rc}: {(r.stderr or r.stdout).strip()[-300:]}"
            for name, r in (("setup:db:status", db), ("app:config:status", config))
            if r.rc not in (0, NEEDS_UPGRADE_RC)
        ]
        needed = NEEDS_UPGRADE_RC in (db.rc, config.rc)
        reasons = [n for n, r in (("database schema", db), ("config", config)) if r.rc == NEEDS_UPGRADE_RC]
        msg = f"setup:upgrade needed ({' and '.join(reasons)})" if needed else "setup:upgrade not needed"
        return ActionResult(
            failed=bool(problems),
            stdout=(db.stdout + config.stdout)[-8192:],
            stderr=(db.stderr + config.stderr)[-8192:],
            msg="; ".join(problems) if problems else msg,
            data={"upgrade_needed": needed, "db_status_rc": db.rc, "config_status_rc": config.rc},
        )
