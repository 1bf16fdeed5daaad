"""Fixtures for integration tests: three real SSH hosts (``stage1``; ``prod1``, ``prod2``) and inventories.

The servers are started once per session (a few hundred ms); each host is a dedicated Unix user with
its own home, so files a test creates "on prod1" are in prod1's home only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.s3server import MotoServer, require_moto
from tests.sshd import SSHHost, SSHServers, empty_home, write_known_hosts

#: Unix user names start with this; a second test session on the same machine (a developer running
#: one part of the suite while another runs) sets MAINTKIT_TEST_USER_PREFIX so the homes stay apart.
USER_PREFIX = os.environ.get("MAINTKIT_TEST_USER_PREFIX", "mk")

#: inventory name -> (Unix user, inventory group)
HOSTS: dict[str, tuple[str, str]] = {
    "stage1": (f"{USER_PREFIX}-stage1", "staging"),
    "prod1": (f"{USER_PREFIX}-prod1", "production"),
    "prod2": (f"{USER_PREFIX}-prod2", "production"),
}


@pytest.fixture(scope="session")
def ssh_servers() -> Iterator[SSHServers]:
    """The running sshd processes (for tests that need to look behind the hosts)."""
    with SSHServers((name, user) for name, (user, _group) in HOSTS.items()) as servers:
        yield servers


@pytest.fixture(scope="session")
def ssh_hosts(ssh_servers: SSHServers) -> dict[str, SSHHost]:
    """Host name -> :class:`~tests.sshd.SSHHost` for ``stage1``, ``prod1``, ``prod2``."""
    return ssh_servers.hosts


@pytest.fixture(scope="session")
def known_hosts_file(ssh_hosts: dict[str, SSHHost], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A known_hosts file trusting the three hosts' keys (tests must not copy it into ~/.ssh)."""
    return write_known_hosts(tmp_path_factory.mktemp("known_hosts") / "known_hosts", ssh_hosts.values())


def inventory_data(ssh_hosts: dict[str, SSHHost], known_hosts: Path) -> dict[str, Any]:
    """The Ansible-style inventory of the test hosts, as a dict (tests may tweak it before writing)."""
    children: dict[str, Any] = {}
    for name, (_user, group) in HOSTS.items():
        host = ssh_hosts[name]
        children.setdefault(group, {"hosts": {}})["hosts"][name] = {
            "ansible_host": host.address,
            "ansible_port": host.port,
            "ansible_user": host.user,
            "ansible_ssh_private_key_file": str(host.key_file),
        }
    return {"all": {"vars": {"known_hosts": str(known_hosts)}, "children": children}}


@pytest.fixture
def ssh_inventory(tmp_path: Path, ssh_hosts: dict[str, SSHHost], known_hosts_file: Path) -> Path:
    """Path of an inventory file (groups ``staging``: stage1; ``production``: prod1, prod2)."""
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory_data(ssh_hosts, known_hosts_file), sort_keys=False))
    return path


@pytest.fixture
def clean_homes(ssh_hosts: dict[str, SSHHost]) -> Iterator[dict[str, SSHHost]]:
    """Empty the test users' homes (non-dot files and ``~/.maintkit``) before and after the test."""
    for host in ssh_hosts.values():
        empty_home(host)
    yield ssh_hosts
    for host in ssh_hosts.values():
        empty_home(host)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """One real S3 endpoint (moto server on 127.0.0.1) for the session; each test uses its own bucket."""
    require_moto()
    with MotoServer() as server:
        yield server
