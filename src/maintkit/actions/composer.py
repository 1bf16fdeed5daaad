"""``composer``: install, update or require packages in a folder on the host; report what moved.

The result lists every package that moved (``data.moved``: package, old, new), found by comparing
``composer.lock`` before and after (update/require) or ``vendor/composer/installed.json`` (install):
the lock is the contract that promotion installs on production, so that is what is compared.

``--check``: the plan shows the command. With ``dry_run: true`` (the update playbooks' preview
step) and the ``check_probe`` variable set, the plan also *runs* ``composer update --dry-run`` on
the host, which writes nothing, and lists the packages that would move from which version to which.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, field_validator

from maintkit.actions.base import Action, ActionParams, EnvVars, StepContext
from maintkit.model.problems import MaintkitError
from maintkit.model.results import ActionResult
from maintkit.sources.script import host_path
from maintkit.transport.base import with_env
from maintkit.updates.composerlock import Move, diff_versions, lock_versions, parse_dry_run
from maintkit.updates.hostio import read_file


class ComposerParams(ActionParams):
    command: Literal["install", "update", "require"] = Field(description="install | update | require.")
    working_dir: str = Field(description="The project folder (holds composer.json).")
    packages: list[str] = Field(
        default_factory=list,
        description="Packages (update: names, optionally name:constraint; require: name:constraint). "
        "Empty with update: everything.",
    )
    no_dev: bool = Field(False, description="--no-dev: leave require-dev packages out.")
    with_dependencies: bool = Field(
        True, description="update/require: also update the packages' dependencies (-W)."
    )
    optimize_autoloader: bool = Field(False, description="--optimize-autoloader.")
    dry_run: bool = Field(
        False, description="Only report what would move (composer --dry-run); change nothing."
    )
    args: list[str] = Field(default_factory=list, description="More composer arguments, each quoted.")
    env: EnvVars = Field(default_factory=dict, description="Environment (COMPOSER_HOME, COMPOSER_AUTH...).")
    composer: str = Field("composer", description="The composer program on the host.")

    _words = field_validator("packages", mode="before")(classmethod(lambda cls, v: package_words(v)))


def package_words(value: object) -> object:
    """``--var packages=a/b:1.1.*,c/d`` arrives as one string: split it on commas and spaces."""
    if isinstance(value, str):
        return [word for word in value.replace(",", " ").split() if word]
    return value


def composer_command(p: ComposerParams, *, dry_run: bool | None = None) -> str:
    """The composer command line for ``p`` (run in ``working_dir``), every value quoted."""
    argv = [p.composer, p.command, "--no-interaction", "--no-progress", "--no-ansi"]
    if p.no_dev:
        argv.append("--no-dev")
    if p.optimize_autoloader:
        argv.append("--optimize-autoloader")
    if p.command in ("update", "require") and p.with_dependencies and p.packages:
        argv.append("--with-all-dependencies" if p.command == "update" else "--update-with-all-dependencies")
    if p.dry_run if dry_run is None else dry_run:
        argv.append("--dry-run")
    argv += p.args
    if p.command != "install":
        argv += p.packages
    command = f"cd {host_path(p.working_dir)} && " + " ".join(shlex.quote(a) for a in argv)
    return with_env(command, p.env)


def _state_file(p: ComposerParams) -> str:
    name = "vendor/composer/installed.json" if p.command == "install" else "composer.lock"
    return f"{p.working_dir.rstrip('/')}/{name}"


class Composer(Action):
    name = "composer"
    summary = "composer install/update/require on the host; reports each package moved (old → new)."
    Params = ComposerParams

    def changes_production(self, params: Mapping[str, Any]) -> bool:
        from maintkit.text.templating import has_template

        dry_run = params.get("dry_run", False)  # install, update, require all change the code that runs
        return has_template(dry_run) or dry_run is not True  # unless only reporting what would move

    def plan(self, params: ComposerParams, ctx: StepContext) -> list[str]:
        plan = [composer_command(params)]
        if not (params.dry_run and ctx.check and ctx.vars.get("check_probe", True)):
            return plan
        try:
            result = ctx.run(composer_command(params, dry_run=True))
        except MaintkitError as error:
            return [*plan, f"(probe failed: {error})"]
        if result.rc != 0:
            return [*plan, f"(probe: composer exited {result.rc}: {result.stderr.strip()[-500:]})"]
        moves = parse_dry_run(result.stdout + "\n" + result.stderr)
        lines = [f"would move: {m.describe()}" for m in moves] or ["would move: nothing"]
        return [*plan, *lines]

    def run(self, params: ComposerParams, ctx: StepContext) -> ActionResult:
        state = _state_file(params)
        before = lock_versions(read_file(ctx.run, state), dev=not params.no_dev)
        result = ctx.run(composer_command(params))
        output = result.stdout + "\n" + result.stderr
        if result.rc != 0:
            return ActionResult(
                failed=True,
                rc=result.rc,
                stdout=result.stdout,
                stderr=result.stderr,
                msg=f"composer {params.command} failed (exit status {result.rc})",
            )
        moves: list[Move]
        if params.dry_run:
            moves = parse_dry_run(output)
        else:
            moves = diff_versions(before, lock_versions(read_file(ctx.run, state), dev=not params.no_dev))
        summary = ", ".join(m.describe() for m in moves) or "nothing moved"
        verb = "would move" if params.dry_run else "moved"
        return ActionResult(
            changed=bool(moves) and not params.dry_run,
            rc=result.rc,
            stdout=result.stdout,
            stderr=result.stderr,
            msg=f"{verb}: {summary}",
            data={"moved": [m.as_dict() for m in moves], "count": len(moves)},
        )
