"""Ansible's become with sudo: real sudoers rules for the test users, the CLI in a subprocess, real sshd.

stage1's SSH user may become prod2's user with its password; prod1's user may become prod2's user
without one (NOPASSWD). What a step writes must belong to the become user, the password must show
nowhere (output, journal), and a snapshot's stdin (the database credentials) must reach the dump
after sudo read its password line.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.helpers import run_cli, start_cli, wait_for, write_playbook
from tests.mariadb import SHOP_DB, SHOP_PASSWORD, SHOP_USER, MariaDBServer, mariadb_fixture
from tests.sshd import SSHHost

pytestmark = pytest.mark.integration

BECOME_PASSWORD = "sudo pa$$ 'w0rd' #1"

mariadb = mariadb_fixture("mariadb", scope="module")


@pytest.fixture
def sudoers(ssh_hosts: dict[str, SSHHost], clean_homes: Any) -> Iterator[dict[str, SSHHost]]:
    """A password for stage1's user and a sudoers rule for each case; both undone afterwards."""
    if subprocess.run(["which", "sudo"], capture_output=True).returncode != 0:
        pytest.skip("sudo is not installed (scripts/test installs it)")
    stage1, prod1, prod2 = ssh_hosts["stage1"], ssh_hosts["prod1"], ssh_hosts["prod2"]
    subprocess.run(["chpasswd"], input=f"{stage1.user}:{BECOME_PASSWORD}\n", text=True, check=True)
    rule = Path(f"/etc/sudoers.d/maintkit-test-{stage1.user}")
    rule.write_text(f"{stage1.user} ALL=({prod2.user}) ALL\n{prod1.user} ALL=({prod2.user}) NOPASSWD: ALL\n")
    rule.chmod(0o440)
    subprocess.run(["visudo", "-cqf", str(rule)], check=True)
    yield ssh_hosts
    rule.unlink(missing_ok=True)
    subprocess.run(["usermod", "-p", "*", stage1.user], check=True)  # as tests/sshd.py left it


def run_as(
    folder: Path, host: SSHHost, known_hosts: Path, steps: list[dict[str, Any]], *args: str, **settings: Any
) -> subprocess.CompletedProcess[str]:
    inventory = folder / "inv.yml"
    entry = {
        "ansible_host": host.address,
        "ansible_port": host.port,
        "ansible_user": host.user,
        "ansible_ssh_private_key_file": str(host.key_file),
        "storage": {"name": "local", "type": "local", "path": str(folder / "backups")},
        **settings,
    }
    inventory.write_text(
        yaml.safe_dump({"all": {"vars": {"known_hosts": str(known_hosts)}, "hosts": {"h": entry}}})
    )
    book = write_playbook(folder, {"name": "as-another", "steps": steps})
    return run_cli("run", book, "-i", inventory, "--journal-dir", folder / "j", *args, cwd=folder)


def journal_text(folder: Path) -> str:
    return "".join(p.read_text() for p in (folder / "j").glob("*.jsonl"))


def test_become_with_a_password_runs_the_steps_as_the_become_user(
    tmp_path: Path, sudoers: dict[str, SSHHost], known_hosts_file: Path
) -> None:
    stage1, prod2 = sudoers["stage1"], sudoers["prod2"]
    secrets = tmp_path / "vault.yml"
    secrets.write_text(yaml.safe_dump({"ansible_become_password": BECOME_PASSWORD}))
    steps = [{"shell": "id -un > ~/became; echo $HOME >> ~/became"}]
    result = run_as(
        tmp_path, stage1, known_hosts_file, steps, "-e", f"@{secrets}", become=True, become_user=prod2.user
    )
    assert result.returncode == 0, result.stdout + result.stderr
    written = Path(prod2.home) / "became"
    assert written.read_text() == f"{prod2.user}\n{prod2.home}\n"
    assert written.stat().st_uid == os.stat(prod2.home).st_uid  # owned by the become user
    assert (Path(prod2.home) / ".maintkit" / "lock").exists()  # the lock too is the become user's
    assert not (Path(stage1.home) / "became").exists()
    assert BECOME_PASSWORD not in result.stdout + result.stderr + journal_text(tmp_path)


def test_a_wrong_become_password_stops_before_any_step_and_is_not_shown(
    tmp_path: Path, sudoers: dict[str, SSHHost], known_hosts_file: Path
) -> None:
    stage1, prod2 = sudoers["stage1"], sudoers["prod2"]
    wrong = "not the password 42"
    result = run_as(
        tmp_path,
        stage1,
        known_hosts_file,
        [{"shell": "touch ~/became"}],
        ansible_become=True,
        ansible_become_user=prod2.user,
        ansible_become_password=wrong,
    )
    assert result.returncode != 0
    said = result.stdout + result.stderr
    assert f"sudo refused to run commands as {prod2.user} with the become password" in said
    assert wrong not in said + journal_text(tmp_path)
    assert not (Path(prod2.home) / "became").exists() and not (Path(stage1.home) / "became").exists()


def test_nopasswd_needs_no_password_and_a_missing_one_names_the_variable(
    tmp_path: Path, sudoers: dict[str, SSHHost], known_hosts_file: Path
) -> None:
    prod1, prod2 = sudoers["prod1"], sudoers["prod2"]
    ok = run_as(
        tmp_path,
        prod1,
        known_hosts_file,
        [{"shell": "id -un > ~/became"}],
        become=True,
        become_user=prod2.user,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert (Path(prod2.home) / "became").read_text() == f"{prod2.user}\n"

    root = run_as(tmp_path, prod1, known_hosts_file, [{"shell": "touch /became"}], become=True)
    assert root.returncode != 0
    assert "sudo asks for a password to become root: give the inventory variable ansible_become_password" in (
        root.stdout + root.stderr
    )
    assert not Path("/became").exists()


def test_a_snapshot_as_the_become_user_gets_its_stdin_after_sudo_read_the_password(
    tmp_path: Path, sudoers: dict[str, SSHHost], known_hosts_file: Path, mariadb: MariaDBServer
) -> None:
    stage1, prod2 = sudoers["stage1"], sudoers["prod2"]
    database = {
        "name": SHOP_DB,
        "user": SHOP_USER,
        "password": SHOP_PASSWORD,  # reaches the dump over stdin, behind sudo's password line
        "host": "127.0.0.1",
        "port": mariadb.tcp().port,
    }
    result = run_as(
        tmp_path,
        stage1,
        known_hosts_file,
        [{"snapshot": {"database": database}}],
        become=True,
        become_user=prod2.user,
        become_password=BECOME_PASSWORD,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [manifest] = (tmp_path / "backups" / "h" / "inv").glob("*/manifest.json")
    tables = {t["name"]: t["rows"] for t in json.loads(manifest.read_text())["database"]["tables"]}
    assert tables == mariadb.table_row_counts(SHOP_DB)
    said = result.stdout + result.stderr + journal_text(tmp_path)
    assert BECOME_PASSWORD not in said and SHOP_PASSWORD not in said


def test_the_become_password_is_in_no_process_list(
    tmp_path: Path, sudoers: dict[str, SSHHost], known_hosts_file: Path
) -> None:
    stage1, prod2 = sudoers["stage1"], sudoers["prod2"]
    inventory = tmp_path / "inv.yml"
    entry = {
        "ansible_host": stage1.address,
        "ansible_port": stage1.port,
        "ansible_user": stage1.user,
        "ansible_ssh_private_key_file": str(stage1.key_file),
        "become": True,
        "become_user": prod2.user,
        "become_password": BECOME_PASSWORD,
    }
    hosts = {"all": {"vars": {"known_hosts": str(known_hosts_file)}, "hosts": {"h": entry}}}
    inventory.write_text(yaml.safe_dump(hosts))
    book = write_playbook(tmp_path, {"name": "slow", "steps": [{"shell": "touch ~/sleeping; sleep 3"}]})
    process = start_cli("run", book, "-i", inventory, "--journal-dir", tmp_path / "j", cwd=tmp_path)
    try:
        wait_for(lambda: (Path(prod2.home) / "sleeping").exists(), what="the step to start")
        listing = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
        assert "sudo -S -k -p" in listing  # the become command is running now...
        assert BECOME_PASSWORD not in listing  # ...without its password on any command line
    finally:
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, out + err


def test_a_step_that_times_out_as_the_become_user_is_killed_on_the_host(
    tmp_path: Path, sudoers: dict[str, SSHHost], known_hosts_file: Path
) -> None:
    stage1, prod2 = sudoers["stage1"], sudoers["prod2"]
    marker = f"mk-become-sleep-{os.getpid()}"
    step = {"shell": f"exec -a {marker} sleep 60", "timeout": 2}
    result = run_as(
        tmp_path,
        stage1,
        known_hosts_file,
        [step],
        become=True,
        become_user=prod2.user,
        become_password=BECOME_PASSWORD,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "timed out" in result.stdout + result.stderr

    def gone() -> bool:
        listing = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
        return marker not in listing

    wait_for(gone, timeout=10, what="the become user's command to be killed")


def test_become_on_the_play_applies_to_hosts_whose_inventory_says_nothing(
    tmp_path: Path, sudoers: dict[str, SSHHost], known_hosts_file: Path
) -> None:
    prod1, prod2 = sudoers["prod1"], sudoers["prod2"]
    inventory = tmp_path / "inv.yml"
    entry = {
        "ansible_host": prod1.address,
        "ansible_port": prod1.port,
        "ansible_user": prod1.user,
        "ansible_ssh_private_key_file": str(prod1.key_file),
    }
    inventory.write_text(
        yaml.safe_dump({"all": {"vars": {"known_hosts": str(known_hosts_file)}, "hosts": {"h": entry}}})
    )
    play = {
        "name": "as-prod2",
        "become": True,
        "become_user": prod2.user,
        "steps": [{"shell": "id -un > ~/became"}],
    }
    result = run_cli(
        "run", write_playbook(tmp_path, play), "-i", inventory, "--journal-dir", tmp_path / "j", cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (Path(prod2.home) / "became").read_text() == f"{prod2.user}\n"

    # the inventory's own setting wins over the play's, as in Ansible
    entry["become"] = False
    inventory.write_text(
        yaml.safe_dump({"all": {"vars": {"known_hosts": str(known_hosts_file)}, "hosts": {"h": entry}}})
    )
    plain = run_cli(
        "run", write_playbook(tmp_path, play), "-i", inventory, "--journal-dir", tmp_path / "j", cwd=tmp_path
    )
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert (Path(prod1.home) / "became").read_text() == f"{prod1.user}\n"

    # become on a step is refused at its line, before anything runs
    play["steps"] = [{"shell": "touch ~/stepped", "become": True}]
    refused = run_cli("run", write_playbook(tmp_path, play), "-i", inventory, cwd=tmp_path)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert (
        "book.yml:" in refused.stderr
        and "'become' on a step is not supported: set become on the play" in (refused.stderr)
    )
    assert not (Path(prod1.home) / "stepped").exists()
