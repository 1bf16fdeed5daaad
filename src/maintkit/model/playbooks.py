"""Playbooks and their steps in the plain-data form the engine consumes (unrendered parameters).

Why here and not in ``config``: the engine, the actions and the reports read these; only ``config``
builds them. No third-party import: this is the leaf.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from maintkit.model.problems import Position

COMMON_STEP_KEYS = (
    "name",
    "when",
    "retries",
    "retry_delay",
    "timeout",
    "register",
    "ignore_errors",
    "run_once",
    "tags",
)


@dataclass
class Step:
    """One step: an action with its (unrendered) parameters and the common keys."""

    name: str
    action: str
    params: dict[str, Any]
    position: Position
    when: str | bool | None = None
    retries: int = 0
    retry_delay: float = 1.0
    timeout: float | None = None
    register: str | None = None
    ignore_errors: bool = False
    run_once: bool = False
    tags: list[str] = field(default_factory=list)
    #: why this run skips the step whatever ``when`` says (``--tags``/``--skip-tags``); None: it runs
    skip: str | None = None


@dataclass
class Playbook:
    name: str
    path: str
    description: str = ""
    hosts: list[str] = field(default_factory=lambda: ["all"])
    serial: int | str | None = None  # N hosts per batch, or "30%"
    max_parallel: int = 10
    vars: dict[str, Any] = field(default_factory=dict)
    secret_vars: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    rollback: list[Step] = field(default_factory=list)
    always: list[Step] = field(default_factory=list)
    #: Ansible's play keywords ``become``/``become_user``: the default for hosts whose inventory says
    #: neither (None: not given)
    become: bool | None = None
    become_user: str | None = None

    @property
    def registers(self) -> list[str]:
        return [s.register for s in self.steps + self.rollback + self.always if s.register]
