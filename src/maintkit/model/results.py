"""What a step produced, per-step, per-host and per-run outcomes, and the exit code they add up to.

Why one type carried everywhere (fabric's GroupResult idea): the engine, the journal, the console and
the exit code all read the same record, so a partial failure is never lost between them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Literal

StepStatus = Literal["ok", "changed", "skipped", "failed", "ignored", "planned"]
RunStatus = Literal["done", "failed", "interrupted", "rollback_failed", "locked", "invalid"]
HostStatus = Literal["ok", "failed", "rolled_back", "rollback_failed", "not_run"]


@dataclass
class ActionResult:
    """What a step produced. Registered results are exposed to templates as attributes and keys."""

    failed: bool = False
    changed: bool = False
    rc: int | None = None
    stdout: str = ""
    stderr: str = ""
    msg: str = ""
    skipped: bool = False
    data: dict[str, Any] = field(default_factory=dict)
    #: a failure that is a refusal before anything was written (a safety check said no): when it is
    #: the only kind of failure of a run that changed nothing, the run exits 2, not 1
    refused: bool = False

    def as_vars(self) -> dict[str, Any]:
        """The mapping a ``register`` name is bound to: ``r.rc``, ``r.stdout``, ``r.data.x``...

        ``stdout``/``stderr`` lose their trailing newlines as in Ansible's command module, so that
        ``when: r.stdout == 'ok'`` after ``echo ok`` is true; ``stdout_lines`` is the lines of the
        output as it came. The journal and the console keep the output unchanged.
        """
        out: dict[str, Any] = {
            "failed": self.failed,
            "changed": self.changed,
            "rc": self.rc,
            "stdout": self.stdout.rstrip("\r\n"),
            "stderr": self.stderr.rstrip("\r\n"),
            "stdout_lines": self.stdout.splitlines(),
            "msg": self.msg,
            "skipped": self.skipped,
            "refused": self.refused,
            "data": self.data,
        }
        out.update({k: v for k, v in self.data.items() if k not in out})
        return out


class ExitCode(IntEnum):
    """The contract with cron (DESIGN.md): never renumber."""

    DONE = 0
    FAILED_ROLLED_BACK = 1
    INVALID_INPUT = 2
    ROLLBACK_FAILED = 3
    LOCKED = 4


@dataclass
class StepOutcome:
    name: str
    action: str
    section: Literal["steps", "rollback", "always"]
    status: StepStatus
    result: ActionResult
    duration: float = 0.0
    attempts: int = 0
    commands: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.status == "failed"


@dataclass
class HostOutcome:
    host: str
    steps: list[StepOutcome] = field(default_factory=list)
    failed_step: str | None = None
    rollback_ran: bool = False
    rollback_failed: bool = False
    always_failed: bool = False
    interrupted: bool = False
    started: bool = False
    duration: float = 0.0

    @property
    def status(self) -> HostStatus:
        if not self.started:
            return "not_run"
        if self.rollback_failed:
            return "rollback_failed"
        if self.failed_step or self.interrupted:
            return "rolled_back" if self.rollback_ran else "failed"
        return "failed" if self.always_failed else "ok"

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def refused(self) -> bool:
        """The host failed only on refusals (``ActionResult.refused``) and no step changed anything."""
        failed = [s for s in self.steps if s.failed]
        return (
            bool(failed)
            and all(s.result.refused for s in failed)
            and not any(s.status == "changed" for s in self.steps)
        )

    def count(self, status: StepStatus) -> int:
        return sum(1 for s in self.steps if s.status == status and s.section == "steps")


@dataclass
class RunOutcome:
    run_id: str
    hosts: list[HostOutcome]
    interrupted: bool = False
    error: str | None = None  # a run-level failure before any step (lock, connection)
    exit_code_override: ExitCode | None = None

    @property
    def exit_code(self) -> ExitCode:
        if self.exit_code_override is not None:
            return self.exit_code_override
        if any(h.rollback_failed for h in self.hosts):
            return ExitCode.ROLLBACK_FAILED
        if self._only_refused():
            return ExitCode.INVALID_INPUT
        if self.error or self.interrupted or any(not h.ok for h in self.hosts):
            return ExitCode.FAILED_ROLLED_BACK
        return ExitCode.DONE

    def _only_refused(self) -> bool:
        """Every failed host was refused (a safety check, before any write) and no host changed
        anything: nothing ran that matters, as with invalid input (exit 2)."""
        bad = [h for h in self.hosts if h.started and not h.ok]
        return (
            bool(bad)
            and not self.error
            and not self.interrupted
            and all(h.refused for h in bad)
            and not any(s.status == "changed" for h in self.hosts for s in h.steps)
        )

    @property
    def status(self) -> RunStatus:
        """The run's status word (journal ``run_end``, console, monitoring).

        Why ``interrupted`` is its own word although it shares exit code 1 with ``failed``: a run
        stopped by SIGINT/SIGTERM/SIGHUP did not find anything wrong with the site, and whoever reads
        the journal or the alert must not go looking for a failure. A rollback that failed stays
        ``rollback_failed`` (exit 3) whatever stopped the run: a human must look either way.
        """
        code = self.exit_code
        if code == ExitCode.FAILED_ROLLED_BACK and self.interrupted:
            return "interrupted"
        names: dict[ExitCode, RunStatus] = {
            ExitCode.DONE: "done",
            ExitCode.FAILED_ROLLED_BACK: "failed",
            ExitCode.ROLLBACK_FAILED: "rollback_failed",
            ExitCode.LOCKED: "locked",
            ExitCode.INVALID_INPUT: "invalid",
        }
        return names[code]
