"""What cron mails: ``-q`` output of a failed run, read from a pipe as cron reads it (COLUMNS=80)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.integration.helpers import maintkit_cmd, write_playbook

pytestmark = pytest.mark.integration


def cron(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run maintkit as cron does: stdout and stderr are pipes, no terminal, an 80-column default."""
    env = {**os.environ, "COLUMNS": "80", "NO_COLOR": "1"}
    env.pop("FORCE_COLOR", None)
    return subprocess.run(maintkit_cmd(*args), cwd=cwd, capture_output=True, text=True, env=env, check=False)


def test_a_quiet_failure_opens_with_what_failed_where_and_ends_with_the_journal(
    tmp_path: Path, ssh_inventory: Path, clean_homes
) -> None:
    book = {
        "name": "nightly-backup",
        "steps": [
            {"name": "check disk", "shell": "true"},
            {"name": "dump the database", "shell": "echo 'mysqldump: access denied' >&2; exit 3"},
        ],
    }
    path = write_playbook(tmp_path, book)
    result = cron(
        "run", path, "-i", ssh_inventory, "-l", "stage1", "-q", "--journal-dir", tmp_path / "j", cwd=tmp_path
    )
    assert result.returncode == 1
    lines = result.stdout.rstrip("\n").splitlines()
    journal = next((tmp_path / "j").glob("*.jsonl"))
    first = lines[0]
    assert first.startswith(
        "maintkit: FAILED (exit 1): playbook nightly-backup · env inventory · host stage1"
    )
    assert "step 'dump the database' (rc 3)" in first and f"run {journal.stem}" in first
    assert lines[-1] == f"journal: {journal}"
    detail = next(n for n, line in enumerate(lines) if "mysqldump: access denied" in line)
    table = next(n for n, line in enumerate(lines) if line.startswith("host ") and "status" in line)
    assert 0 < detail < table < len(lines) - 1  # the detail before the summary table


def test_a_quiet_success_prints_nothing(tmp_path: Path) -> None:
    inventory = tmp_path / "inv.yml"
    inventory.write_text("all:\n  hosts:\n    shop: {connection: local}\n")
    path = write_playbook(tmp_path, {"name": "ok", "steps": [{"shell": "true"}]})
    result = cron("run", path, "-i", inventory, "-q", "--journal-dir", tmp_path / "j", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout == "" and result.stderr == ""
