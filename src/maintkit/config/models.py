"""The validated, plain-data form of inventories and playbooks that the engine consumes.

Why plain dataclasses and not the pydantic models used for parsing: the engine should not care how
input was checked, and these are cheap to build in tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class Position:
    """Where a value was written: file, 1-based line and column (line/column None when unknown)."""

    file: str
    line: int | None = None
    column: int | None = None


@dataclass
class Host:
    """One site instance of an inventory (several may share a server)."""

    name: str
    connection: Literal["ssh", "local"] = "ssh"
    address: str = ""  # ansible_host / host; defaults to the name
    port: int | None = None  # None: ~/.ssh/config or 22
    user: str | None = None  # None: ~/.ssh/config or the local user
    key_file: str | None = None
    known_hosts: str | None = None  # an extra known_hosts file (inventory var)
    accept_new_host_keys: bool = False
    #: SSH timeouts in seconds (inventory vars ssh_connect_timeout, ssh_banner_timeout,
    #: ssh_auth_timeout); None: the transport's defaults
    connect_timeout: float | None = None
    banner_timeout: float | None = None
    auth_timeout: float | None = None
    groups: list[str] = field(default_factory=list)  # every group it belongs to, nearest last
    vars: dict[str, Any] = field(default_factory=dict)  # merged: all < parents < children < host


@dataclass
class Inventory:
    """Hosts and groups of one environment."""

    name: str  # the environment name (``--env``), or the inventory file's stem
    path: str
    hosts: dict[str, Host]
    groups: dict[str, list[str]]  # group name -> host names (children expanded)
    secret_vars: list[str] = field(default_factory=list)

    def select(self, patterns: list[str]) -> list[Host]:
        """Return the hosts named by host or group names, in inventory order, without duplicates."""
        wanted: list[str] = []
        for pattern in patterns:
            names = self.groups.get(pattern) or ([pattern] if pattern in self.hosts else [])
            wanted.extend(n for n in names if n not in wanted)
        return [self.hosts[n] for n in self.hosts if n in wanted]


COMMON_STEP_KEYS = (
    "name",
    "when",
    "retries",
    "retry_delay",
    "timeout",
    "register",
    "ignore_errors",
    "run_once",
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

    @property
    def registers(self) -> list[str]:
        return [s.register for s in self.steps + self.rollback + self.always if s.register]
