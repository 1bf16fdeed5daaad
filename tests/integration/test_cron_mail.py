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


def test_snapshots_list_in_a_pipe_keeps_every_column_whole(tmp_path: Path) -> None:
    site = "a-rather-long-site-name-of-an-agency-client-shop-de"
    (tmp_path / "inv.yml").write_text(
        "all:\n  hosts:\n    shop:\n      connection: local\n      files: {root: ./site}\n"
        f"      site: {site}\n      lock_dir: {tmp_path / 'lock'}\n"
    )
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.php").write_text("<?php echo 'shop';\n")
    book = write_playbook(tmp_path, {"name": "snap", "steps": [{"snapshot": {"files": "{{ files }}"}}]})
    made = cron("run", book, "-i", "inv.yml", "-q", cwd=tmp_path)
    assert made.returncode == 0, made.stdout + made.stderr
    listed = cron("snapshots", "list", "-i", "inv.yml", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if site in line)
    assert "…" not in listed.stdout
    assert row.split()[0] == site and row.split()[-1] == "local" and len(row) > 80


def test_a_validation_message_in_a_pipe_is_one_unbroken_line(tmp_path: Path) -> None:
    folder = tmp_path / ("inventories-of-the-agency-for-client-shops" * 2)
    folder.mkdir()
    (folder / "inv.yml").write_text("all:\n  hosts:\n    shop:\n      ansible_port: 99999\n")
    book = write_playbook(tmp_path, {"name": "x", "steps": [{"shell": "true"}]})
    result = cron("run", book, "-i", folder / "inv.yml", cwd=tmp_path)
    assert result.returncode == 2
    line = next(line for line in result.stderr.splitlines() if "ansible_port" in line)
    assert line.startswith("error: ") and "'ansible_port' must be an integer from 1 to 65535" in line
    assert len(line) > 120


def test_actions_name_in_a_pipe_is_not_cut_at_80_columns_and_shows_plain_types(tmp_path: Path) -> None:
    result = cron("actions", "snapshot", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) > 80
    types = {
        cells[0].strip(): cells[1].strip()
        for cells in (line.split("│") for line in result.stdout.splitlines())
        if len(cells) > 2
    }
    assert types["database"] == "mapping | None" and types["files"] == "mapping | None"
    assert types["compression"] == "auto | zstd | gzip"
    assert "maintkit." not in result.stdout and "Literal" not in result.stdout


def test_runs_show_prints_commands_and_heredocs_only_with_v(tmp_path: Path) -> None:
    inventory = tmp_path / "inv.yml"
    inventory.write_text("all:\n  hosts:\n    shop: {connection: local}\n")
    step = {"name": "write a note", "shell": "cat > note <<'EOF'\nsecond line of the heredoc\nEOF"}
    path = write_playbook(tmp_path, {"name": "note", "steps": [step]})
    ran = cron("run", path, "-i", inventory, "--journal-dir", tmp_path / "j", cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    plain = cron("runs", "show", "latest", "--journal-dir", tmp_path / "j", cwd=tmp_path)
    assert plain.returncode == 0 and "write a note" in plain.stdout
    assert "second line of the heredoc" not in plain.stdout and " $ " not in plain.stdout
    verbose = cron("runs", "show", "latest", "-v", "--journal-dir", tmp_path / "j", cwd=tmp_path)
    assert "second line of the heredoc" in verbose.stdout
