"""``wp``: WordPress updates with wp-cli: core, database, plugins, themes; versions for promotion.

Commands (each runs ``wp … --path=ROOT``):

* ``core-update`` (``version``: exact, or ``minor`` for ``--minor``), ``core-update-db``;
* ``plugin-update`` / ``theme-update``: ``--all`` unless ``names`` are given, ``exclude`` honoured
  (``--exclude=a,b``), ``--format=json`` read back into ``data.updated`` (name, old → new);
* ``versions``: core, plugins and themes with their versions (``data``), what staging records as
  promotable and what production then installs exactly (``apply-versions``). Must-use plugins and
  drop-ins are listed apart (``data.unmanaged``): wp-cli cannot install them by name;
* ``apply-versions``: make the site run exactly ``versions``: reads what is installed, then
  ``core update --version=X --force`` and ``plugin|theme install NAME --version=V --force`` only
  for what differs, ``core update-db``, and reads the versions again: any difference fails the
  step (the promotion of a WordPress site).

Facts of the real wp-cli this relies on (wp-cli/extension-command ``CommandWithUpgrade``):

* with ``--format=json`` an update prints only the JSON rows ``{name, old_version, new_version,
  status}`` (its Quiet logger), and *nothing* when there is nothing to update; a failed item makes
  it exit 1. The JSON is decoded from the first ``[`` with trailing text ignored;
* WordPress's upgrader removes ``.maintenance`` at the end of a core update, and of a plugin or
  theme update touching an active plugin or the active theme, whoever had created it. So with
  ``hold_maintenance`` (default), when the site was in maintenance before an update command,
  maintenance is activated again right after it: the site must not serve half-updated code
  between the update steps (the gap left is the instant between wp-cli's exit and the next
  command).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from maintkit.actions.base import Action, ActionParams, EnvVars, StepContext, written_in
from maintkit.model.results import ActionResult
from maintkit.transport.base import with_env

Command = Literal[
    "core-update", "core-update-db", "plugin-update", "theme-update", "versions", "apply-versions"
]

#: commands after which WordPress may have removed .maintenance
UPDATES = ("core-update", "plugin-update", "theme-update", "apply-versions")
#: plugin statuses wp-cli can install by name (must-use plugins and drop-ins it cannot)
INSTALLABLE = ("active", "inactive", "active-network")


class WpParams(ActionParams):
    command: Command = Field(
        description="core-update | core-update-db | plugin-update | theme-update | versions | apply-versions."
    )
    root: str = Field(description="The WordPress root (--path).")
    names: list[str] = Field(
        default_factory=list, description="plugin/theme-update: only these (default: --all)."
    )
    exclude: list[str] = Field(default_factory=list, description="plugin/theme-update: never these.")
    version: str | None = Field(None, description="core-update: an exact version, or 'minor'.")
    versions: dict[str, Any] = Field(
        default_factory=dict, description="apply-versions: {core: X, plugins: {name: v}, themes: {name: v}}."
    )
    dry_run: bool = Field(False, description="plugin/theme-update: --dry-run.")
    hold_maintenance: bool = Field(
        True,
        description="Updates: when the site was in maintenance, activate it again after each wp-cli "
        "update (WordPress's upgrader removes .maintenance when it finishes).",
    )
    wp: str = Field("wp", description="The wp-cli program on the host.")
    env: EnvVars = Field(default_factory=dict, description="Environment for the commands.")


def _wp(p: WpParams, *args: str) -> str:
    return with_env(shlex.join([p.wp, *args, f"--path={p.root}"]), p.env)


def read_commands(p: WpParams) -> list[str]:
    """The three reads behind ``versions``: core version, plugin list, theme list (JSON)."""
    return [
        _wp(p, "core", "version"),
        _wp(p, "plugin", "list", "--fields=name,version,status", "--format=json"),
        _wp(p, "theme", "list", "--fields=name,version,status", "--format=json"),
    ]


def apply_commands(p: WpParams, installed: dict[str, Any] | None) -> list[str]:
    """``apply-versions``: the installs making the site run ``p.versions`` (all of them when what is
    installed is unknown, as in ``--check``), then ``core update-db``."""
    have = installed or {}
    out = []
    core = p.versions.get("core")
    if core and core != have.get("core"):
        out.append(_wp(p, "core", "update", f"--version={core}", "--force"))
    for kind in ("plugin", "theme"):
        current = have.get(f"{kind}s") or {}
        for name, version in sorted((p.versions.get(f"{kind}s") or {}).items()):
            if current.get(name) != version:
                out.append(_wp(p, kind, "install", name, f"--version={version}", "--force"))
    out.append(_wp(p, "core", "update-db"))
    return out


def commands(p: WpParams) -> list[str]:
    """Every wp-cli command the step runs, in order (``apply-versions``: at most these)."""
    if p.command == "core-update":
        extra = ["--minor"] if p.version == "minor" else ([f"--version={p.version}"] if p.version else [])
        return [_wp(p, "core", "update", *extra)]
    if p.command == "core-update-db":
        return [_wp(p, "core", "update-db")]
    if p.command in ("plugin-update", "theme-update"):
        kind = p.command.split("-")[0]
        targets = list(p.names) or ["--all"]
        extra = [f"--exclude={','.join(p.exclude)}"] if p.exclude and not p.names else []
        extra += ["--dry-run"] if p.dry_run else []
        return [_wp(p, kind, "update", *targets, *extra, "--format=json")]
    if p.command == "versions":
        return read_commands(p)
    return apply_commands(p, None)


def reactivate_command(p: WpParams) -> str:
    """Maintenance on again unless it still is (``activate`` alone fails when it is active)."""
    return f"{_wp(p, 'maintenance-mode', 'is-active')} || {_wp(p, 'maintenance-mode', 'activate')}"


def _json(text: str) -> Any:
    """The JSON value wp-cli printed: from the first ``[`` or ``{``, ignoring anything after it."""
    start = min((i for i in (text.find("["), text.find("{")) if i >= 0), default=-1)
    if start < 0:
        return None
    try:
        return json.JSONDecoder().raw_decode(text[start:])[0]
    except ValueError:
        return None


def parse_versions(core: str, plugins_json: str, themes_json: str) -> dict[str, Any]:
    """``versions`` data from the three reads; must-use plugins and drop-ins go to ``unmanaged``."""
    plugins = [p for p in _json(plugins_json) or [] if isinstance(p, dict)]
    themes = [t for t in _json(themes_json) or [] if isinstance(t, dict)]
    return {
        "core": core.strip(),
        "plugins": {p["name"]: p["version"] for p in plugins if p.get("status") in INSTALLABLE},
        "themes": {t["name"]: t["version"] for t in themes},
        "unmanaged": sorted(p["name"] for p in plugins if p.get("status") not in INSTALLABLE),
    }


def differences(wanted: dict[str, Any], have: dict[str, Any]) -> list[str]:
    """What ``have`` (versions data) lacks of ``wanted``: ``"plugin x: 1.0 (wanted 1.1)"``..."""
    out = []
    if wanted.get("core") and wanted["core"] != have.get("core"):
        out.append(f"core: {have.get('core')} (wanted {wanted['core']})")
    for kind in ("plugins", "themes"):
        for name, version in sorted((wanted.get(kind) or {}).items()):
            got = (have.get(kind) or {}).get(name)
            if got != version:
                out.append(f"{kind[:-1]} {name}: {got or 'not installed'} (wanted {version})")
    return out


class Wp(Action):
    name = "wp"
    summary = "wp-cli: core/plugin/theme updates (with exclusions), update-db, versions for promotion."
    Params = WpParams

    def changes_production(self, params: Mapping[str, Any]) -> bool:
        return written_in(params, "command", (*UPDATES, "core-update-db"))  # versions only reads

    def plan(self, params: WpParams, ctx: StepContext) -> list[str]:
        plan = commands(params)
        if params.command == "apply-versions":
            plan = [*read_commands(params), "(install only what differs:)", *plan, *read_commands(params)]
        if params.command in UPDATES and params.hold_maintenance:
            plan.append(f"(when the site was in maintenance, after each update) {reactivate_command(params)}")
        return plan

    def run(self, params: WpParams, ctx: StepContext) -> ActionResult:
        held = False
        if params.command in UPDATES and params.hold_maintenance and not params.dry_run:
            held = ctx.run(_wp(params, "maintenance-mode", "is-active")).rc == 0
        before: dict[str, Any] | None = None
        if params.command == "apply-versions":
            reads = self._run_all(ctx, read_commands(params), held=False, params=params)
            if isinstance(reads, ActionResult):
                return reads
            before = parse_versions(*reads)
            todo = apply_commands(params, before)
        else:
            todo = commands(params)
        outputs = self._run_all(ctx, todo, held=held, params=params)
        if isinstance(outputs, ActionResult):
            return outputs
        data: dict[str, Any] = {"maintenance_held": held} if held else {}
        msg = f"wp {params.command}: done"
        if params.command == "versions":
            data = parse_versions(*outputs)
            msg = (
                f"WordPress {data['core']}, {len(data['plugins'])} plugin(s), {len(data['themes'])} theme(s)"
            )
        elif params.command in ("plugin-update", "theme-update"):
            rows = _json(outputs[0]) or []
            updated = [
                {"name": r.get("name"), "old": r.get("old_version"), "new": r.get("new_version")}
                for r in rows
                if isinstance(r, dict) and r.get("status") != "Error"
            ]
            data["updated"] = updated
            msg = "updated: " + (
                ", ".join(f"{u['name']} {u['old']} → {u['new']}" for u in updated) or "nothing"
            )
        elif params.command == "apply-versions":
            reads = self._run_all(ctx, read_commands(params), held=False, params=params)
            if isinstance(reads, ActionResult):
                return reads
            after = parse_versions(*reads)
            missing = differences(params.versions, after)
            data.update(before=before, after=after, installed=len(todo) - 1)
            if missing:
                return ActionResult(
                    failed=True,
                    changed=True,
                    msg="the site does not run the promotable versions: " + "; ".join(missing),
                    data=data,
                )
            msg = f"runs exactly the promotable versions ({len(todo) - 1} install(s))"
        return ActionResult(
            changed=params.command != "versions" and not params.dry_run,
            stdout="\n".join(outputs)[-8192:],
            msg=msg,
            data=data,
        )

    def _run_all(
        self, ctx: StepContext, todo: list[str], *, held: bool, params: WpParams
    ) -> list[str] | ActionResult:
        """Run ``todo`` in order; their stdouts, or the failed result of the first that failed."""
        outputs = []
        for command in todo:
            result = ctx.run(command)
            outputs.append(result.stdout)
            again = ctx.run(reactivate_command(params)) if held else None
            if result.rc != 0 or (again is not None and again.rc != 0):
                bad = result if result.rc != 0 else again
                assert bad is not None
                return ActionResult(
                    failed=True,
                    rc=bad.rc,
                    stdout=bad.stdout,
                    stderr=bad.stderr,
                    msg=f"{bad.command.split('; ')[-1]}: exit status {bad.rc}: {bad.stderr.strip()[-500:]}",
                )
        return outputs
