"""Ansible INI inventories through the real CLI against real sshd hosts: same variables, same precedence.

The test hosts (``stage1`` in ``staging``; ``prod1``, ``prod2`` in ``production``) are written as an
agency's ``hosts`` file would have them: host lines with ``key=value``, ``[group:vars]``,
``[group:children]``, a file without a suffix.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.helpers import run_cli, write_playbook

pytestmark = pytest.mark.integration


def host_line(name: str, host, **extra: str) -> str:
    words = [
        name,
        f"ansible_host={host.address}",
        f"ansible_port={host.port}",
        f"ansible_user={host.user}",
        f"ansible_ssh_private_key_file={host.key_file}",
        *(f"{k}={v}" for k, v in extra.items()),
    ]
    return " ".join(words)


def ini_inventory(ssh_hosts, known_hosts: Path) -> str:
    return "\n".join(
        [
            "# an agency's hosts file",
            "[staging]",
            host_line("stage1", ssh_hosts["stage1"]),
            "",
            "[production]",
            host_line("prod1", ssh_hosts["prod1"]),
            host_line("prod2", ssh_hosts["prod2"], role="'host line'"),
            "",
            "[fleet:children]",
            "staging",
            "production",
            "",
            "[all:vars]",
            f"known_hosts={known_hosts}",
            "role=all",
            "",
            "[fleet:vars]",
            "role=fleet",
            "",
            "[production:vars]",
            "role=production",
            "",
        ]
    )


def test_an_ini_inventory_runs_with_ansible_s_variable_precedence(
    tmp_path: Path, ssh_hosts, known_hosts_file: Path, clean_homes
) -> None:
    (tmp_path / "hosts").write_text(ini_inventory(ssh_hosts, known_hosts_file))
    book = write_playbook(
        tmp_path, {"name": "role", "steps": [{"shell": "printf %s {{ role | quote }} > role"}]}
    )
    result = run_cli("run", book, "-i", "hosts", "--journal-dir", tmp_path / "j", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr

    def role(name: str) -> str:
        return (Path(ssh_hosts[name].home) / "role").read_text()

    # all < parent group (fleet) < child group (production) < host line
    assert (role("stage1"), role("prod1"), role("prod2")) == ("fleet", "production", "host line")


def test_env_finds_an_ini_inventory_and_limit_selects_its_groups(
    tmp_path: Path, ssh_hosts, known_hosts_file: Path
) -> None:
    (tmp_path / "inventories").mkdir()
    (tmp_path / "inventories" / "agency.ini").write_text(ini_inventory(ssh_hosts, known_hosts_file))
    book = write_playbook(tmp_path, {"name": "noop", "steps": [{"shell": "true"}]})
    result = run_cli("run", book, "--env", "agency", "--limit", "production", "--list-hosts", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[1:] == ["  hosts (2):", "    prod1", "    prod2"]


def test_host_ranges_and_host_port_are_read_as_ansible_reads_them(tmp_path: Path) -> None:
    (tmp_path / "hosts.ini").write_text("[web]\nweb[01:03] ansible_connection=local\ndb:2222\n")
    book = write_playbook(tmp_path, {"name": "noop", "steps": [{"shell": "true"}]})
    result = run_cli("run", book, "-i", "hosts.ini", "--list-hosts", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[2:] == ["    web01", "    web02", "    web03", "    db"]


@pytest.mark.parametrize(
    ("text", "where", "says"),
    [
        ("[web]\nweb1\n[web:hosts]\n", "hosts:3:1", "unknown section kind ':hosts'; use :vars or :children"),
        ("[web\nweb1\n", "hosts:1:1", "not a section header"),
        ("[web]\nweb1 ansible_port:22\n", "hosts:2:1", "word 2 is not key=value"),
        ("[web]\nweb1\n\n[web:vars]\nansible_port=22a\n", "hosts:5:1", "'ansible_port' must be an integer"),
        ("[web]\nweb1 ansible_become_method=su\n", "hosts:2:6", "must be 'sudo' (the only become method"),
        ("[web:children]\ndb\n", "hosts:2:1", "'db'"),
    ],
)
def test_ini_mistakes_are_reported_at_their_file_and_line(
    tmp_path: Path, text: str, where: str, says: str
) -> None:
    (tmp_path / "hosts").write_text(text)
    book = write_playbook(tmp_path, {"name": "noop", "steps": [{"shell": "true"}]})
    result = run_cli("run", book, "-i", "hosts", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert where in result.stderr and says in result.stderr, result.stderr
    assert "YAML" not in result.stderr
