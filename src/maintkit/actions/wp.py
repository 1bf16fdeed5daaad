"""``wp``: WordPress updates with wp-cli: core, database, plugins, themes; versions for promotion.

Commands (each runs ``wp … --path=ROOT``):

* ``core-update`` (``version``: exact, or ``minor`` for ``--minor``), ``core-update-db``;
* ``plugin-update`` / ``theme-update``: ``--all`` unless ``names`` are given, ``exclude`` honoured,
  ``--format=json`` read back into ``data.updated`` (name, old → new);
* ``versions``: core, plugins and themes with their versions (``data``), what staging records as
  promotable and what production then installs exactly (``apply_versions``);
* ``apply-versions``: install exactly ``versions`` (``core update --version=X --force``,
  ``plugin install NAME --version=V --force``...), the promotion of a WordPress site.
"""

from __future__ import annotations

import json
import shlex
from typing import Any, Literal

from pydantic import Field

from maintkit.actions.base import Action, ActionParams, ActionResult, StepContext
from maintkit.transport.base import with_env

Command = Literal[
    "core-update", "core-update-db", "plugin-update", "theme-update", "versions", "apply-versions"
]


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
    wp: str = Field("wp", description="The wp-cli program on the host.")
    env: dict[str, str] = Field(default_factory=dict, description="Environment for the commands.")


def _wp(p: WpParams, *args: str) -> str:
    return with_env(shlex.join([p.wp, *args, f"--path={p.root}"]), p.env)


def commands(p: WpParams) -> list[str]:
    """Every wp-cli command the step runs, in order."""
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
        return [
            _wp(p, "core", "version"),
            _wp(p, "plugin", "list", "--fields=name,version,status", "--format=json"),
            _wp(p, "theme", "list", "--fields=name,version,status", "--format=json"),
        ]
    out = []
    if p.versions.get("core"):
        out.append(_wp(p, "core", "update", f"--version={p.versions['core']}", "--force"))
    for kind in ("plugin", "theme"):
        for name, version in sorted((p.versions.get(f"{kind}s") or {}).items()):
            out.append(_wp(p, kind, "install", name, f"--version={version}", "--force"))
    out.append(_wp(p, "core", "update-db"))
    return out


def _json(text: str) -> Any:
    start = min((i for i in (text.find("["), text.find("{")) if i >= 0), default=-1)
    try:
        return json.loads(text[start:]) if start >= 0 else None
    except ValueError:
        return None


class Wp(Action):
    name = "wp"
    summary = "wp-cli: core/plugin/theme updates (with exclusions), update-db, versions for promotion."
    Params = WpParams

    def plan(self, params: WpParams, ctx: StepContext) -> list[str]:
        return commands(params)

    def run(self, params: WpParams, ctx: StepContext) -> ActionResult:
        outputs = []
        for command in commands(params):
            result = ctx.run(command)
            outputs.append(result.stdout)
            if result.rc != 0:
                return ActionResult(
                    failed=True,
                    rc=result.rc,
                    stdout=result.stdout,
                    stderr=result.stderr,
                    msg=f"{command.split('; ')[-1]}: exit status {result.rc}",
                )
        data: dict[str, Any] = {}
        msg = f"wp {params.command}: done"
        if params.command == "versions":
            plugins, themes = _json(outputs[1]) or [], _json(outputs[2]) or []
            data = {
                "core": outputs[0].strip(),
                "plugins": {p["name"]: p["version"] for p in plugins if isinstance(p, dict)},
                "themes": {t["name"]: t["version"] for t in themes if isinstance(t, dict)},
            }
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
            data = {"updated": updated}
            msg = "updated: " + (
                ", ".join(f"{u['name']} {u['old']} → {u['new']}" for u in updated) or "nothing"
            )
        return ActionResult(
            changed=params.command != "versions", stdout="\n".join(outputs)[-8192:], msg=msg, data=data
        )
