"""``prestashop``: the 1-click upgrade module's command line (autoupgrade v7 ``bin/console``).

* ``update:check`` — is an update available, which one;
* ``backup:create`` / ``update:start`` — with a JSON config (``channel``, ``PS_AUTOUP_BACKUP``,
  ``PS_AUTOUP_CUSTOM_MOD_DESACT``…) written to a 0600 temp file on the host from the step's
  ``config``, removed afterwards; ``update:start`` runs with ``--chain`` (every step in one go);
* ``backup:restore`` — with ``backup``: the module's own rollback (maintkit's rollback restores
  its own snapshot instead; see docs/updates.md for why that is preferred).

Commands run as ``php modules/autoupgrade/bin/console COMMAND … ADMIN_DIR`` in the shop's root.
"""

from __future__ import annotations

import json
import shlex
from typing import Any, Literal

from pydantic import Field

from maintkit.actions.base import Action, ActionParams, ActionResult, StepContext
from maintkit.sources.script import bash_command, heredoc, host_path

CONSOLE = "modules/autoupgrade/bin/console"


class PrestashopParams(ActionParams):
    command: Literal["update:check", "backup:create", "update:start", "backup:restore"] = Field(
        description="update:check | backup:create | update:start | backup:restore."
    )
    root: str = Field(description="The PrestaShop root.")
    admin_dir: str = Field(description="The admin folder's name (e.g. admin123xyz).")
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="update:start/backup:create: the autoupgrade JSON config "
        "({channel: online, PS_AUTOUP_BACKUP: 1, ...}).",
    )
    backup: str | None = Field(None, description="backup:restore: the backup's name.")
    php: str = Field("php", description="The PHP program on the host.")


def console_command(p: PrestashopParams) -> str:
    argv = [p.php, CONSOLE, p.command]
    if p.command == "backup:restore":
        if not p.backup:
            raise ValueError("backup:restore needs 'backup'")
        argv.append(f"--backup={p.backup}")
    if p.command in ("update:start", "backup:create") and p.config:
        argv.append('--config-file-path="$cfg"')
    if p.command == "update:start":
        argv.append("--chain")
    argv.append(p.admin_dir)
    line = " ".join(a if a.startswith("--config-file-path=") else shlex.quote(a) for a in argv)
    lines = ["set -o pipefail", f"cd {host_path(p.root)} || exit 3"]
    if '"$cfg"' in line:
        config = json.dumps(p.config, indent=2, sort_keys=True)
        lines += [
            "umask 077",
            "cfg=$(mktemp --suffix=.json) || exit 1",
            "trap 'rm -f \"$cfg\"' EXIT",
            'cat > "$cfg" ' + heredoc("MAINTKIT_JSON", config),
        ]
    lines.append(line)
    return bash_command("\n".join(lines))


class Prestashop(Action):
    name = "prestashop"
    summary = (
        "PrestaShop autoupgrade CLI: update:check, backup:create, update:start (config file), backup:restore."
    )
    Params = PrestashopParams

    def plan(self, params: PrestashopParams, ctx: StepContext) -> list[str]:
        return [console_command(params)]

    def run(self, params: PrestashopParams, ctx: StepContext) -> ActionResult:
        result = ctx.run(console_command(params))
        failed = result.rc != 0
        return ActionResult(
            failed=failed,
            changed=params.command != "update:check" and not failed,
            rc=result.rc,
            stdout=result.stdout,
            stderr=result.stderr,
            msg=f"autoupgrade {params.command}: exit status {result.rc}",
        )
