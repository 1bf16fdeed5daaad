"""The SSH connection dies while a step's command runs: the command never runs twice.

Real sshd (the test's own fixture): while the command sleeps on the host, the test kills the sshd
processes serving the connection (found by their parent, the fixture's sshd, by PID). The command
goes on without its connection on the host (sshd sends no signal to a session without a terminal);
maintkit must stop it on a new connection before it runs the step again, or not run it again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.helpers import events, start_cli, wait_for, write_playbook

pytestmark = pytest.mark.integration

SLEEP = "sleep 3.217"  # a pattern no other test's command has


def children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from /proc), depth first."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    stack = [pid]
    while stack:
        for child in parents.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def kill_connections(sshd_pid: int) -> list[int]:
    """SIGKILL the sshd processes serving connections of the sshd ``sshd_pid`` (not the listener,
    not the shells they started): the network side of every session dies at once."""
    killed = []
    for pid in children(sshd_pid):
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if comm.startswith("sshd"):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
    return killed


def sleepers(user: str) -> list[str]:
    return subprocess.run(["pgrep", "-u", user, "-f", SLEEP], capture_output=True, text=True).stdout.split()


def run_and_cut(tmp_path, ssh_inventory, ssh_servers, ssh_hosts, step: dict) -> tuple[int, str, Path]:
    home = Path(ssh_hosts["stage1"].home)
    book = write_playbook(tmp_path, {"name": "lost", "steps": [step]})
    process = start_cli(
        "run", book, "-i", ssh_inventory, "--limit", "stage1", "--journal-dir", tmp_path / "j", cwd=tmp_path
    )
    try:
        wait_for(lambda: (home / "started").exists(), what="the command to start on the host")
        wait_for(lambda: sleepers(ssh_hosts["stage1"].user), what="the remote sleep")
        server = ssh_servers.servers["stage1"].proc
        assert kill_connections(server.pid), "no sshd connection process found"
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert "Traceback" not in stdout + stderr
    # every copy of the command is over, so the count below is final
    wait_for(lambda: not sleepers(ssh_hosts["stage1"].user), what="no sleep left on the host")
    time.sleep(0.2)
    return process.returncode, stdout, home / "count"


@pytest.mark.parametrize("session", ["1", "0"], ids=["long-lived session", "channel per command"])
def test_a_retried_step_stops_the_orphaned_command_first_so_it_runs_once(
    tmp_path, ssh_inventory, ssh_servers, clean_homes, ssh_hosts, monkeypatch, session
):
    monkeypatch.setenv("MAINTKIT_SSH_SESSION", session)  # the CLI subprocess inherits it
    step = {"name": "count", "shell": f"touch started; {SLEEP}; echo ran >> count", "retries": 1}
    code, stdout, count = run_and_cut(tmp_path, ssh_inventory, ssh_servers, ssh_hosts, step)
    assert code == 0, stdout
    assert count.read_text() == "ran\n"  # once: the orphan was stopped before the retry
    retry = [e for e in events(tmp_path / "j") if e["event"] == "retry"]
    assert len(retry) == 1 and "was still running and was stopped on a new connection" in retry[0]["error"]


def test_a_step_not_marked_idempotent_is_not_run_again_without_retries(
    tmp_path, ssh_inventory, ssh_servers, clean_homes, ssh_hosts
):
    step = {"name": "count", "shell": f"touch started; {SLEEP}; echo ran >> count"}
    code, stdout, count = run_and_cut(tmp_path, ssh_inventory, ssh_servers, ssh_hosts, step)
    assert code == 1, stdout
    assert "connection lost while a command was running" in stdout
    assert "not retried: 'shell' is not idempotent (set retries on the step" in stdout
    assert not count.exists()  # stopped on the host, and not run again
