"""What is wrong: where input was written, the problems found in it, and the exceptions maintkit
raises, grouped by what the caller should do about them.

Why in the leaf: the engine decides retry / fail / rollback by exception type, the CLI maps them to
exit codes, and every layer below raises them; all must agree on one vocabulary without importing
each other.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Position:
    """Where a value was written: file, 1-based line and column (line/column None when unknown)."""

    file: str
    line: int | None = None
    column: int | None = None


class MaintkitError(Exception):
    """Base of every error maintkit raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the user's input, located as precisely as we can."""

    file: str
    line: int | None
    column: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        key = f" {self.path}:" if self.path else ""
        return f"{where}:{key} {self.message}"


class InvalidInput(MaintkitError):
    """The playbook, inventory or command line is wrong; nothing ran. Carries every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class TransportError(MaintkitError):
    """The connection to a host failed or broke. Always worth retrying."""


class CommandLost(TransportError):
    """The connection died while a command ran on the host.

    ``outcome`` is what a fresh connection found of the command's process group: ``stopped`` (it
    was still running and was killed: it did not finish), ``ended`` (it had already ended: it may
    have done all its work) or ``unknown`` (no new connection could be opened; it is killed on the
    next one). The engine retries only what is safe: see ``maintkit.engine.steps``.
    """

    def __init__(self, message: str, outcome: str) -> None:
        super().__init__(message)
        self.outcome = outcome


class HostKeyError(MaintkitError):
    """A host key is unknown (and accepting new keys was not asked for) or has changed. Never retried."""


class CommandTimeout(MaintkitError):
    """A command ran past its timeout and was killed on the host."""


class Interrupted(MaintkitError):
    """The run was interrupted (SIGINT/SIGTERM) while a command was running; the command was killed."""


class StepFailed(MaintkitError):
    """An action reported failure (non-zero exit, failed check, ...)."""


class LockHeld(MaintkitError):
    """Another run holds the environment's lock."""
