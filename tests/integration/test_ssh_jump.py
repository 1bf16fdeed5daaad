"""Ansible's ProxyJump in ``ansible_ssh_common_args`` / ``ansible_ssh_extra_args``: a real jump
through a second sshd on 127.0.0.1 (prod2's) to stage1, the CLI in a subprocess."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.helpers import run_cli, write_playbook
from tests.sshd import SSHHost, SSHServers, free_port

pytestmark = pytest.mark.integration


def accepted(servers: SSHServers, name: str) -> int:
    """How many logins the sshd of ``name`` accepted so far (its log)."""
    server = servers.servers[name]
    return server.log.read_text(errors="replace").count(f"Accepted publickey for {server.user}")


def jump_run(folder: Path, stage1: SSHHost, known_hosts: Path, **settings: Any) -> Any:
    host = {
        "ansible_host": stage1.address,
        "ansible_port": stage1.port,
        "ansible_user": stage1.user,
        "ansible_ssh_private_key_file": str(stage1.key_file),
        **settings,
    }
    inventory = folder / "behind.yml"
    inventory.write_text(
        yaml.safe_dump({"all": {"vars": {"known_hosts": str(known_hosts)}, "hosts": {"behind": host}}})
    )
    book = write_playbook(folder, {"name": "who", "steps": [{"shell": "whoami > ~/jumped-here"}]})
    return run_cli("run", book, "-i", inventory, "--journal-dir", folder / "j", cwd=folder)


@pytest.mark.parametrize(
    ("variable", "spelling"),
    [("ansible_ssh_common_args", "-o ProxyJump={hop}"), ("ansible_ssh_extra_args", "-J {hop}")],
)
def test_a_host_behind_a_proxyjump_is_reached_through_the_gateway(
    tmp_path: Path,
    ssh_servers: SSHServers,
    ssh_hosts: dict[str, SSHHost],
    known_hosts_file: Path,
    clean_homes: Any,
    variable: str,
    spelling: str,
) -> None:
    stage1, prod2 = ssh_hosts["stage1"], ssh_hosts["prod2"]
    before = accepted(ssh_servers, "prod2")
    hop = f"{prod2.user}@{prod2.address}:{prod2.port}"
    result = jump_run(tmp_path, stage1, known_hosts_file, **{variable: spelling.format(hop=hop)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert (Path(stage1.home) / "jumped-here").read_text() == f"{stage1.user}\n"  # ran on stage1
    assert accepted(ssh_servers, "prod2") == before + 1  # through one login on the gateway


def test_a_gateway_that_does_not_answer_is_named(
    tmp_path: Path, ssh_hosts: dict[str, SSHHost], known_hosts_file: Path, clean_homes: Any
) -> None:
    stage1 = ssh_hosts["stage1"]
    dead = f"nobody@127.0.0.1:{free_port()}"
    result = jump_run(tmp_path, stage1, known_hosts_file, ansible_ssh_common_args=f"-J {dead}")
    assert result.returncode != 0
    assert f"gateway {dead}" in result.stdout + result.stderr
    assert not (Path(stage1.home) / "jumped-here").exists()


def test_other_ssh_options_are_refused_at_their_line(
    tmp_path: Path, ssh_hosts: dict[str, SSHHost], known_hosts_file: Path
) -> None:
    stage1 = ssh_hosts["stage1"]
    args = "-o ProxyJump=gw -o StrictHostKeyChecking=no"
    result = jump_run(tmp_path, stage1, known_hosts_file, ansible_ssh_common_args=args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "behind.yml:" in result.stderr
    assert "'-o StrictHostKeyChecking=no' is not supported" in result.stderr
    assert "nothing ran" in result.stderr
