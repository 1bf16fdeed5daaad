"""``shell``: run a command on the host.

``cmd`` is a shell snippet whose ``{{ }}`` values are shell-quoted as they are rendered (use the
``raw`` filter to opt out); ``argv`` is a list whose items are quoted one by one. ``creates`` /
``removes`` make the step idempotent the way Ansible users expect.
"""

from __future__ import annotations

import shlex

from pydantic import Field, model_validator

from maintkit.actions.base import Action, ActionParams, EnvVars, StepContext
from maintkit.model.results import ActionResult


class ShellParams(ActionParams):
    cmd: str | None = Field(
        None,
        description="Shell command; every {{ value }} in it is shell-quoted ({{ x | raw }} is not).",
        json_schema_extra={"shell": True},
    )
    argv: list[str] | None = Field(None, description="Program and arguments; each item is quoted.")
    chdir: str | None = Field(None, description="Run in this directory.")
    env: EnvVars = Field(default_factory=dict, description="Environment variables for the command.")
    creates: str | None = Field(None, description="Skip the step when this path exists on the host.")
    removes: str | None = Field(None, description="Skip the step unless this path exists on the host.")
    expect_rc: list[int] = Field(default_factory=lambda: [0], description="Exit codes that count as success.")

    @model_validator(mode="after")
    def _one_command(self) -> ShellParams:
        if (self.cmd is None) == (self.argv is None):
            raise ValueError("give exactly one of 'cmd' and 'argv'")
        if self.argv is not None and not self.argv:
            raise ValueError("'argv' must not be empty")
        return self


def build_command(p: ShellParams) -> str:
    """Given shell parameters, return the one command line the host runs (guards included)."""
    body = p.cmd if p.cmd is not None else shlex.join(p.argv or [])
    if p.chdir:
        body = f"cd {shlex.quote(p.chdir)} && {{ {body}\n}}"
    guards = []
    if p.creates:
        guards.append(f"test -e {shlex.quote(p.creates)}")
    if p.removes:
        guards.append(f"! test -e {shlex.quote(p.removes)}")
    if guards:
        # Exit 0 with a marker line when a guard says there is nothing to do.
        return f"if {' || '.join(guards)}; then echo {SKIP_MARK}; exit 0; fi\n{body}"
    return body


SKIP_MARK = "maintkit:skipped-by-guard"


class Shell(Action):
    name = "shell"
    summary = "Run a shell command (or an argv list) on the host."
    Params = ShellParams
    shorthand = "cmd"

    def plan(self, params: ShellParams, ctx: StepContext) -> list[str]:
        return [build_command(params)]

    def run(self, params: ShellParams, ctx: StepContext) -> ActionResult:
        result = ctx.run(build_command(params), env=params.env or None)
        if result.rc == 0 and result.stdout.strip() == SKIP_MARK:
            why = f"{params.creates} exists" if params.creates else f"{params.removes} is absent"
            return ActionResult(skipped=True, rc=0, msg=f"skipped: {why}")
        failed = result.rc not in params.expect_rc
        return ActionResult(
            failed=failed,
            changed=not failed,
            rc=result.rc,
            stdout=result.stdout,
            stderr=result.stderr,
            msg=f"exit status {result.rc}, expected {params.expect_rc}" if failed else "",
        )
