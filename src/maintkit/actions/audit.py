"""``audit``: refuse to ship known-vulnerable or tampered code.

* ``tool: composer`` runs ``composer audit --format=json --locked`` and fails when an advisory
  reaches ``fail_on`` (``never``: report only, the step passes with a warning in its message).
  Why ``--locked``: what is audited is the lock that will be promoted, not whatever is in vendor/.
* ``tool: wordpress`` runs ``wp core verify-checksums`` and ``wp plugin verify-checksums --all``:
  files that differ from wordpress.org's are either tampering or local patches, and both must be
  looked at before an update overwrites (or keeps) them.

composer audit exits non-zero when it finds advisories; the exit status is therefore not the
verdict, the parsed JSON is (an audit that printed no JSON fails the step).
"""

from __future__ import annotations

import shlex
from typing import Literal

from pydantic import Field

from maintkit.actions.base import Action, ActionParams, EnvVars, StepContext
from maintkit.model.results import ActionResult
from maintkit.sources.script import host_path
from maintkit.transport.base import with_env
from maintkit.updates.audit import Threshold, at_or_above, parse_composer_audit, parse_wp_checksums


class AuditParams(ActionParams):
    tool: Literal["composer", "wordpress"] = Field("composer", description="composer | wordpress.")
    working_dir: str = Field(description="The project (composer) or WordPress root (wordpress).")
    fail_on: Threshold = Field(
        "high",
        description="composer: fail when an advisory is at least this severe (low, medium, high, critical), "
        "or never (only report). Advisories without a severity count as high.",
    )
    no_dev: bool = Field(True, description="composer: leave require-dev packages out of the audit.")
    plugins: bool = Field(True, description="wordpress: also verify every plugin's checksums.")
    strict: bool = Field(False, description="wordpress: fail on files added to plugins too (--strict).")
    env: EnvVars = Field(default_factory=dict, description="Environment for the commands.")
    composer: str = Field("composer", description="The composer program on the host.")
    wp: str = Field("wp", description="The wp-cli program on the host.")


def composer_audit_command(p: AuditParams) -> str:
    argv = [p.composer, "audit", "--format=json", "--locked", "--no-interaction", "--no-ansi"]
    if p.no_dev:
        argv.append("--no-dev")
    return with_env(f"cd {host_path(p.working_dir)} && {shlex.join(argv)}", p.env)


def wordpress_commands(p: AuditParams) -> list[str]:
    path = f"--path={p.working_dir}"
    commands = [with_env(shlex.join([p.wp, "core", "verify-checksums", path]), p.env)]
    if p.plugins:
        argv = [p.wp, "plugin", "verify-checksums", "--all", path]
        if p.strict:
            argv.append("--strict")
        commands.append(with_env(shlex.join(argv), p.env))
    return commands


class Audit(Action):
    name = "audit"
    summary = "composer audit (fail above a severity) or WordPress core/plugin checksum verification."
    idempotent = True  # it only reads the lock file or checksums
    Params = AuditParams

    def plan(self, params: AuditParams, ctx: StepContext) -> list[str]:
        if params.tool == "composer":
            return [
                composer_audit_command(params),
                f"(fail on advisories of severity {params.fail_on} or more)",
            ]
        return wordpress_commands(params)

    def run(self, params: AuditParams, ctx: StepContext) -> ActionResult:
        if params.tool == "wordpress":
            return self._wordpress(params, ctx)
        result = ctx.run(composer_audit_command(params))
        advisories, abandoned = parse_composer_audit(result.stdout)
        blocking = at_or_above(advisories, params.fail_on)
        listed = "; ".join(a.describe() for a in advisories)
        if blocking:
            msg = f"{len(blocking)} advisory(ies) at or above {params.fail_on}: {listed}"
        elif advisories:
            msg = f"warning: {len(advisories)} advisory(ies) below {params.fail_on}: {listed}"
        else:
            msg = "no security advisories"
        if abandoned:
            msg += f"; abandoned: {', '.join(abandoned)}"
        return ActionResult(
            failed=bool(blocking),
            rc=result.rc,
            stdout=result.stdout,
            stderr=result.stderr,
            msg=msg,
            data={
                "advisories": [a.__dict__ for a in advisories],
                "blocking": len(blocking),
                "abandoned": abandoned,
            },
        )

    def _wordpress(self, params: AuditParams, ctx: StepContext) -> ActionResult:
        failures = []
        outputs = []
        for command in wordpress_commands(params):
            result = ctx.run(command)
            outputs.append(result.stdout + result.stderr)
            if result.rc != 0:
                failures.append(f"{shlex.split(command.split('; ')[-1])[1:3]} exit {result.rc}")
        text = "\n".join(outputs)
        files = parse_wp_checksums(text)
        return ActionResult(
            failed=bool(failures),
            stdout=text[-8192:],
            msg="checksums differ: " + ", ".join(failures)
            if failures
            else "core and plugin checksums verified",
            data={"failures": failures, "files": files},
        )
