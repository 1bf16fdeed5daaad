"""Which steps run again when the connection died under their command (engine.steps policy)."""

from __future__ import annotations

from typing import Any

import pytest

from maintkit.engine.steps import HostState, run_step
from maintkit.model.hosts import Host
from maintkit.model.playbooks import Step
from maintkit.model.problems import CommandLost, Position
from maintkit.secrets import Redactor
from maintkit.transport.base import CommandResult, Transport


class LosingTransport(Transport):
    """Loses the connection under the first ``losses`` commands (saying what it found after)."""

    name = "web1"

    def __init__(self, outcome: str, losses: int = 1) -> None:
        self.outcome = outcome
        self.losses = losses
        self.commands: list[str] = []

    def connect(self) -> None:
        pass

    def run(self, command: str, **_kwargs: Any) -> CommandResult:
        self.commands.append(command)
        if len(self.commands) <= self.losses:
            raise CommandLost(
                f"web1: connection lost while a command was running ({self.outcome})", self.outcome
            )
        return CommandResult(command=command, rc=0, stdout="", stderr="", duration=0.0)

    def close(self) -> None:
        pass


def attempts(outcome: str, retries: int) -> tuple[int, str, str]:
    transport = LosingTransport(outcome)
    state = HostState(Host("web1"), transport, {}, Redactor(), "run-1", lambda *a, **k: None)
    step = Step(
        "count",
        "shell",
        {"cmd": "echo ran >> count"},
        Position("book.yml", 3, 5),
        retries=retries,
        retry_delay=0.01,
    )
    outcome_ = run_step(step, "steps", state, cancel=None)
    return len(transport.commands), outcome_.status, outcome_.result.msg


@pytest.mark.parametrize("retries", [0, 2])
def test_a_command_that_may_have_finished_is_never_run_again(retries):
    for outcome in ("ended", "unknown"):
        count, status, message = attempts(outcome, retries)
        assert (count, status) == (1, "failed")
        assert "not retried: 'shell' is not idempotent and the command may have finished" in message


def test_a_stopped_command_runs_again_only_when_the_step_sets_retries():
    count, status, message = attempts("stopped", retries=0)
    assert (count, status) == (1, "failed")
    assert "set retries on the step to run it again" in message
    count, status, _ = attempts("stopped", retries=1)
    assert (count, status) == (2, "changed")
