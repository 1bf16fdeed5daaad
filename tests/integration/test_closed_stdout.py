"""A closed stdout (``maintkit … | head -3``) changes nothing: exit code, journal, no error flood, no hang.

The CLI runs in a subprocess on a local-connection inventory; its stdout is a pipe that the test
closes, either after reading the first bytes (``head``) or before the command writes anything.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.helpers import events, maintkit_cmd, run_cli, write_playbook

#: the test fails (instead of hanging) past this; no timing is asserted
LIMIT = 90


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "inventory.yml").write_text(
        "all:\n  hosts:\n    box:\n      connection: local\n      site_root: ./site\n"
        f"      files: {{root: ./site}}\n      lock_dir: {tmp_path / 'lock'}\n"  # not the shared ~/.maintkit
    )
    return tmp_path


def book(work: Path, fail: bool) -> Path:
    """Events keep coming after the first line: a pause, then many steps (and a rollback when failing)."""
    steps: list[dict[str, Any]] = [
        {"name": "first", "shell": "echo first"},
        {"name": "pause", "shell": "sleep 0.5"},
    ]
    steps += [{"name": f"step {n}", "shell": f"echo {n}"} for n in range(30)]
    if fail:
        steps.append({"name": "breaks", "shell": "exit 3"})
    playbook: dict[str, Any] = {"name": "piped", "steps": steps}
    if fail:
        playbook["rollback"] = [{"name": "undo", "shell": "echo undo"}]
    return write_playbook(work, playbook)


def env() -> dict[str, str]:
    return {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}


def run_into_head(work: Path, args: list[str], read: int) -> tuple[int, str]:
    """Run maintkit with stdout a pipe closed after ``read`` bytes (0: closed before it starts)."""
    read_end, write_end = os.pipe()
    if read == 0:
        os.close(read_end)
    process = subprocess.Popen(
        maintkit_cmd(*args), cwd=work, stdout=write_end, stderr=subprocess.PIPE, text=True, env=env()
    )
    os.close(write_end)
    if read:
        received = b""
        while len(received) < read:
            chunk = os.read(read_end, read - len(received))
            assert chunk, "stdout ended before the test could close it"
            received += chunk
        os.close(read_end)
    _out, err = process.communicate(timeout=LIMIT)
    return process.returncode, err


def assert_quiet_stderr(stderr: str) -> None:
    for text in ("Traceback", "Broken pipe", "BrokenPipeError", "Exception ignored", "could not write"):
        assert text not in stderr, stderr


def signature(journal: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (e["event"], e.get("host"), e.get("step"), e.get("status"), e.get("exit_code"))
        for e in journal
        if e["event"] != "stdout_closed"
    ]


@pytest.mark.parametrize("output", ["text", "json"])
@pytest.mark.parametrize(("fail", "code"), [(False, 0), (True, 1)])
def test_a_run_piped_into_head_keeps_its_exit_code_and_its_whole_journal(work, output, fail, code):
    playbook = book(work, fail)
    args = ["run", str(playbook), "-i", "inventory.yml", "--output", output]
    reference = run_cli(*args, "--journal-dir", "ref", cwd=work, timeout=LIMIT)
    assert reference.returncode == code, reference.stderr

    returncode, stderr = run_into_head(work, [*args, "--journal-dir", "piped"], read=40)

    assert returncode == code
    assert_quiet_stderr(stderr)
    journal = events(work / "piped")
    assert [e["event"] for e in journal].count("stdout_closed") == 1
    assert signature(journal) == signature(events(work / "ref"))
    assert journal[-1]["event"] == "run_end" and journal[-1]["exit_code"] == code


@pytest.mark.parametrize("output", ["text", "json"])
def test_a_run_whose_stdout_is_closed_from_the_start_still_runs_and_journals(work, output):
    playbook = book(work, fail=False)
    args = ["run", str(playbook), "-i", "inventory.yml", "--output", output, "--journal-dir", "j"]
    returncode, stderr = run_into_head(work, args, read=0)
    assert returncode == 0
    assert_quiet_stderr(stderr)
    journal = events(work / "j")
    assert [e["step"] for e in journal if e["event"] == "step_end"][-1] == "step 29"
    assert journal[-1]["event"] == "run_end" and journal[-1]["exit_code"] == 0


def test_list_commands_into_a_closed_pipe_exit_0_without_a_traceback(work):
    snapshot_book = write_playbook(
        work,
        {
            "name": "snap",
            "steps": [{"shell": "mkdir -p site && echo x > site/a"}, {"snapshot": {"files": "{{ files }}"}}],
        },
    )
    assert run_cli("run", snapshot_book, "-i", "inventory.yml", cwd=work, timeout=LIMIT).returncode == 0
    for args in (
        ["snapshots", "list", "-i", "inventory.yml"],
        ["snapshots", "list", "-i", "inventory.yml", "--output", "json"],
        ["runs", "list"],
        ["runs", "list", "--output", "json"],
        ["runs", "show", "latest"],
    ):
        returncode, stderr = run_into_head(work, args, read=0)
        assert returncode == 0, (args, stderr)
        assert_quiet_stderr(stderr)
