"""The console and ``runs show`` say which snapshot a run made (id, sizes, targets) and what prune
kept and deleted: real sshd, MariaDB, S3 (moto's server) and a local folder, the CLI in a subprocess.

The inventory, site and database are test_snapshot_e2e's (prod1, ``retention: keep_last: 1``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration import test_snapshot_e2e as shared
from tests.integration.helpers import run_cli
from tests.integration.test_snapshot_e2e import backup, snapshot_ids

pytestmark = pytest.mark.integration

mariadb, bucket, site, inventory = shared.mariadb, shared.bucket, shared.site, shared.inventory


def size_line(folder: Path) -> str:
    """What the console should say of a stored snapshot folder's artifacts (``human_size`` rules)."""
    from maintkit.reporting.facts import human_size

    sizes = {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.name != "manifest.json"}
    parts = ", ".join(f"{name} {human_size(size)}" for name, size in sizes.items())
    return f"snapshot {folder.name}: {human_size(sum(sizes.values()))} ({parts}) in local, offsite"


def test_the_console_and_runs_show_name_the_snapshot_made_and_what_prune_deleted(
    tmp_path: Path, inventory: Path, site: Path
) -> None:
    first_run = backup(tmp_path, inventory)
    assert first_run.returncode == 0, first_run.stdout + first_run.stderr
    [first] = snapshot_ids(tmp_path / "backups")
    base = tmp_path / "backups" / "prod1" / "inventory"
    assert size_line(base / first) in first_run.stdout
    assert f"prune local: deleted none; kept 1 (newest {first})" in first_run.stdout

    second_run = backup(tmp_path, inventory)
    assert second_run.returncode == 0, second_run.stdout + second_run.stderr
    [second] = snapshot_ids(tmp_path / "backups")  # keep_last: 1 deleted the first, for real
    assert second != first
    assert size_line(base / second) in second_run.stdout
    for target in ("local", "offsite"):
        assert f"prune {target}: deleted 1: {first}; kept 1 (newest {second})" in second_run.stdout

    # the journal replayed says the same, without -v (no commands, no heredocs)
    shown = run_cli("runs", "show", "latest", "--journal-dir", tmp_path / "journal", cwd=tmp_path)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert size_line(base / second) in shown.stdout
    assert f"prune offsite: deleted 1: {first}; kept 1 (newest {second})" in shown.stdout
    assert "mysqldump" not in shown.stdout and "$ " not in shown.stdout

    quiet = backup(tmp_path, inventory, "-q")  # cron: nothing on success
    assert quiet.returncode == 0 and quiet.stdout == "", quiet.stdout + quiet.stderr
