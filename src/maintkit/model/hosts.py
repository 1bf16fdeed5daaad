"""Hosts and inventories in the plain-data form the engine consumes.

Why plain dataclasses and not the pydantic models used for parsing: the engine should not care how
input was checked, and these are cheap to build in tests. No third-party import: this is the leaf.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class JumpHop:
    """One ProxyJump hop (``[user@]host[:port]``): a gateway the SSH connection goes through."""

    address: str
    port: int | None = None
    user: str | None = None

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user else ""
        address = f"[{self.address}]" if ":" in self.address else self.address
        return f"{user}{address}" + (f":{self.port}" if self.port else "")


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
    #: gateways, first hop first (``-J``/``ProxyJump`` of ansible_ssh_common_args); empty: none
    #: (``~/.ssh/config``'s ProxyJump still applies then)
    proxy_jump: list[JumpHop] = field(default_factory=list)
    #: run every command as ``become_user`` (default root) through sudo (Ansible's become)
    become: bool = False
    become_user: str | None = None
    #: sudo's password, rendered from the inventory's become password variable (a secret): sent to
    #: sudo on stdin, never in a command line; never shown (repr=False)
    become_password: str | None = field(default=None, repr=False)
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
