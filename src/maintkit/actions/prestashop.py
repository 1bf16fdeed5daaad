"""``prestashop``: the 1-click upgrade module's command line (autoupgrade v7 ``bin/console``).

* ``update:check`` — is an update available, which one;
* ``backup:create`` / ``update:start`` — with a JSON config (``channel``, ``PS_AUTOUP_BACKUP``,
  ``PS_AUTOUP_CUSTOM_MOD_DESACT``…) written to a 0600 temp file on the host from the step's
  ``config``, removed afterwards; ``update:start`` runs with ``--chain`` (every step in one go);
* ``backup:restore`` — with ``backup``: the module's own rollback (maintkit's rollback restores
  its own snapshot instead; see docs/updates.md for why that is preferred).

``version`` pins the update to one release (promotion installs exactly what staging proved): the
module can only do that with its ``local`` channel, from ``archive_zip`` and ``archive_xml`` (default
``prestashop_VERSION.zip`` / ``.xml``) in ``ADMIN_DIR/autoupgrade/download``. With ``version`` set,
``update:check`` and ``update:start`` first check that both files are there, that the XML describes
that version and that the shop runs an older one, and fail with the reason otherwise (before
``update:start`` changes anything); ``update:start`` then fails unless ``app/AppKernel.php`` names
exactly that version afterwards.

Configuration keys are autoupgrade v7's (``UpdateConfiguration::UPGRADE_CONST_KEYS``: ``channel``,
``archive_zip``, ``archive_xml``, ``disable_non_native_modules``, ``regenerate_email_templates``…);
v7 ignores other keys with a warning, so v6's ``PS_AUTOUP_BACKUP`` / ``PS_AUTOUP_CUSTOM_MOD_DESACT``
would silently do nothing.

Commands run as ``php modules/autoupgrade/bin/console COMMAND … ADMIN_DIR`` in the shop's root.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, model_validator

from maintkit.actions.base import Action, ActionParams, StepContext, written_in
from maintkit.model.results import ActionResult
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
    version: str | None = Field(
        None,
        description="update:check/update:start: update to exactly this version (local channel), "
        "or fail with the reason.",
    )
    archive_zip: str | None = Field(
        None, description="With version: the release archive in ADMIN_DIR/autoupgrade/download."
    )
    archive_xml: str | None = Field(
        None, description="With version: the release's checksum XML in ADMIN_DIR/autoupgrade/download."
    )

    @model_validator(mode="after")
    def _pin(self) -> PrestashopParams:
        if self.version is None:
            return self
        if not re.fullmatch(r"[0-9]+(\.[0-9]+){1,3}", self.version):
            raise ValueError(f"version {self.version!r} is not a PrestaShop version (8.1.6)")
        if self.command not in ("update:check", "update:start"):
            raise ValueError("version is for update:check and update:start")
        channel = self.config.get("channel", "local")
        if channel != "local":
            raise ValueError(
                f"version {self.version} can only be pinned with the local channel, not {channel!r}"
            )
        self.archive_zip = self.archive_zip or f"prestashop_{self.version}.zip"
        self.archive_xml = self.archive_xml or f"prestashop_{self.version}.xml"
        for name in (self.archive_zip, self.archive_xml):
            if "/" in name or name.startswith("."):
                raise ValueError(f"{name!r}: a file name in ADMIN_DIR/autoupgrade/download, not a path")
        if self.command == "update:start":
            self.config = {
                **self.config,
                "channel": "local",
                "archive_zip": self.archive_zip,
                "archive_xml": self.archive_xml,
            }
        return self

    @property
    def download_dir(self) -> str:
        return f"{self.admin_dir}/autoupgrade/download"


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


#: Prints ``current=VERSION`` (app/AppKernel.php), then ``zip=yes|no``, ``xml=yes|no`` and
#: ``xml_version=VERSION`` (``<ps_root_dir version="…">``, what the module compares with the archive).
PIN_PROBE = r"""
v=$(sed -n "s/.*const VERSION = '\([^']*\)'.*/\1/p" app/AppKernel.php | head -n 1)
echo "current=$v"
if [ -f "$dir/$zip" ]; then echo zip=yes; else echo zip=no; fi
if [ -f "$dir/$xml" ]; then
  echo xml=yes
  echo "xml_version=$(sed -n 's/.*<ps_root_dir[^>]*version="\([^"]*\)".*/\1/p' "$dir/$xml" | head -n 1)"
else
  echo xml=no
fi
"""


def pin_probe_command(p: PrestashopParams) -> str:
    """Read-only: the installed version and what the download folder holds for ``p.version``."""
    assert p.archive_zip and p.archive_xml
    lines = [
        f"cd {host_path(p.root)} || exit 3",
        f"dir={shlex.quote(p.download_dir)}",
        f"zip={shlex.quote(p.archive_zip)} xml={shlex.quote(p.archive_xml)}",
        PIN_PROBE.strip(),
    ]
    return bash_command("\n".join(lines))


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"[0-9]+", version))


def pin_refusal(p: PrestashopParams, probe: dict[str, str]) -> str | None:
    """Why ``p.version`` cannot be installed with the local channel, or None."""
    where = f"{p.root.rstrip('/')}/{p.download_dir}"
    missing = [
        name for name, key in ((p.archive_zip, "zip"), (p.archive_xml, "xml")) if probe.get(key) != "yes"
    ]
    if missing:
        return (
            f"cannot pin PrestaShop {p.version}: {', '.join(f'{where}/{m}' for m in missing)} "
            f"missing (put the release archive and its checksum XML for {p.version} there: "
            "the module installs an exact version only from its local channel)"
        )
    if probe.get("xml_version") != p.version:
        return (
            f"cannot pin PrestaShop {p.version}: {where}/{p.archive_xml} describes version "
            f"{probe.get('xml_version') or '(none)'}"
        )
    current = probe.get("current") or ""
    assert p.version is not None
    if not current:
        return f"cannot read the installed version from {p.root}/app/AppKernel.php"
    if version_key(current) >= version_key(p.version):
        return f"the shop already runs PrestaShop {current}: nothing to update to {p.version}"
    return None


def parse_probe(stdout: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)


class Prestashop(Action):
    name = "prestashop"
    summary = (
        "PrestaShop autoupgrade CLI: update:check, backup:create, update:start (config file), backup:restore."
    )
    Params = PrestashopParams

    def changes_production(self, params: Mapping[str, Any]) -> bool:
        return written_in(params, "command", ("update:start",))  # backup:restore is the rollback

    def plan(self, params: PrestashopParams, ctx: StepContext) -> list[str]:
        pin = [pin_probe_command(params)] if params.version else []
        return [*pin, console_command(params)]

    def run(self, params: PrestashopParams, ctx: StepContext) -> ActionResult:
        data: dict[str, Any] = {}
        if params.version:
            probe = ctx.run(pin_probe_command(params))
            if probe.rc != 0:
                return ActionResult(
                    failed=True,
                    rc=probe.rc,
                    stderr=probe.stderr,
                    msg=f"cannot read {params.root}: exit {probe.rc}",
                )
            found = parse_probe(probe.stdout)
            data = {"version_before": found.get("current"), "version_wanted": params.version}
            reason = pin_refusal(params, found)
            if reason:
                return ActionResult(failed=True, msg=reason, data={**data, "reason": reason})
        result = ctx.run(console_command(params))
        failed = result.rc != 0
        msg = f"autoupgrade {params.command}: exit status {result.rc}"
        if params.version and params.command == "update:start" and not failed:
            # the module reports success per task; what counts is the version the shop now runs
            after = parse_probe(ctx.run(pin_probe_command(params)).stdout).get("current")
            data["version"] = after
            if after != params.version:
                failed = True
                msg = (
                    "autoupgrade update:start exited 0 but the shop runs "
                    f"{after or '(unknown)'}, not {params.version}"
                )
            else:
                msg = f"PrestaShop {data['version_before']} -> {after}"
        return ActionResult(
            failed=failed,
            changed=params.command != "update:check" and result.rc == 0,
            rc=result.rc,
            stdout=result.stdout,
            stderr=result.stderr,
            msg=msg,
            data=data,
        )
