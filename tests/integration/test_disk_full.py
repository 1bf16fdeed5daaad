"""Disk full during snapshot and restore: a clear message, exit 1, nothing committed, no debris.

Small tmpfs mounts (this suite runs as root in its sandbox) stand for the full disks: the local
storage target's, the host's temporary folder (``TMPDIR``) where the dump's credentials file goes,
and the host's site folder where a restore stages its files beside the live ones. The host is this
machine through the local connection; the real CLI runs in a subprocess.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.helpers import maintkit_cmd, write_playbook
from tests.mariadb import SHOP_DB, SHOP_PASSWORD, SHOP_USER, mariadb_fixture

pytestmark = pytest.mark.integration

mariadb = mariadb_fixture("mariadb", scope="module")
MiB = 1024 * 1024


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str, int], Path]]:
    """Mount small tmpfs file systems under tmp_path (unmounted after the test); skip if impossible."""
    mounted: list[Path] = []

    def mount(name: str, size: int) -> Path:
        point = tmp_path / name
        point.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(point)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}): no way to fill a disk")
        mounted.append(point)
        return point

    yield mount
    for point in reversed(mounted):
        subprocess.run(["umount", str(point)], check=False)


def files_in(folder: Path) -> list[str]:
    return (
        sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        if folder.exists()
        else []
    )


def cli(work: Path, *args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        maintkit_cmd(*args),
        cwd=work,
        env={**os.environ, "COLUMNS": "300", "NO_COLOR": "1", **(env or {})},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def write_inventory(work: Path, **host: object) -> Path:
    host = {"connection": "local", "lock_dir": str(work / "lock"), **host}
    path = work / "inv.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": {"shop": host}}}))
    return path


def make_site(root: Path, size: int) -> str:
    root.mkdir()
    (root / "index.php").write_text("<?php echo 'shop';\n")
    data = os.urandom(size)  # random bytes do not compress: the archive is as large
    (root / "media.bin").write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def assert_clear_failure(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "No space left on device" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_a_full_local_target_fails_the_snapshot_and_leaves_nothing_in_any_target(tmp_path, tmpfs):
    small = tmpfs("small-target", 1 * MiB)
    make_site(tmp_path / "site", 3 * MiB)
    write_inventory(
        tmp_path,
        files={"root": str(tmp_path / "site")},
        storage=[
            {"name": "roomy", "type": "local", "path": str(tmp_path / "roomy")},
            {"name": "small", "type": "local", "path": str(small / "snapshots")},
        ],
    )
    book = write_playbook(tmp_path, {"name": "snap", "steps": [{"snapshot": {"files": "{{ files }}"}}]})
    result = cli(tmp_path, "run", book, "-i", "inv.yml")
    assert_clear_failure(result)
    assert f"storage target 'small': cannot write {small / 'snapshots'}" in result.stdout  # names where
    assert "nothing was kept in any target" in result.stdout
    assert files_in(tmp_path / "roomy") == [] and files_in(small) == []


def test_a_full_temporary_folder_on_the_host_fails_the_dump_clearly_and_stores_nothing(
    tmp_path, tmpfs, mariadb
):
    full = tmpfs("host-tmp", 64 * 1024)
    # fill it to the last block (dd stops at "No space left on device")
    subprocess.run(["dd", "if=/dev/zero", f"of={full / 'filler'}", "bs=4k"], capture_output=True, check=False)
    creds = mariadb.tcp()
    database = {
        "name": SHOP_DB,
        "user": SHOP_USER,
        "password": SHOP_PASSWORD,
        "host": "127.0.0.1",
        "port": creds.port,
    }
    write_inventory(tmp_path, database=database, storage=[{"name": "here", "type": "local", "path": "snaps"}])
    book = write_playbook(
        tmp_path,
        {"name": "snap", "steps": [{"snapshot": {"database": "{{ database }}", "count_rows": False}}]},
    )
    result = cli(tmp_path, "run", book, "-i", "inv.yml", env={"TMPDIR": str(full)})
    assert_clear_failure(result)
    assert f"cannot write the database credentials file in {full}" in result.stdout
    assert SHOP_PASSWORD not in result.stdout + result.stderr
    assert files_in(tmp_path / "snaps") == []
    assert sorted(p.name for p in full.iterdir()) == ["filler"]  # the trap removed its temp file


def test_a_full_disk_while_a_restore_stages_the_files_leaves_the_live_site_as_it_was(tmp_path, tmpfs):
    disk = tmpfs("host-disk", 4 * MiB)
    root = disk / "site"
    digest = make_site(root, 3 * MiB)
    write_inventory(
        tmp_path,
        files={"root": str(root)},
        storage=[{"name": "here", "type": "local", "path": str(tmp_path / "snaps")}],
    )
    book = write_playbook(tmp_path, {"name": "snap", "steps": [{"snapshot": {"files": "{{ files }}"}}]})
    taken = cli(tmp_path, "run", book, "-i", "inv.yml")
    assert taken.returncode == 0, taken.stdout + taken.stderr
    (root / "index.php").write_text("<?php echo 'live, changed after the snapshot';\n")

    result = cli(tmp_path, "restore", "latest", "-i", "inv.yml", "--force")
    assert_clear_failure(result)
    # nothing committed: the live files are the ones from before the restore
    assert (root / "index.php").read_text() == "<?php echo 'live, changed after the snapshot';\n"
    assert hashlib.sha256((root / "media.bin").read_bytes()).hexdigest() == digest
    assert sorted(p.name for p in disk.iterdir()) == ["site"]  # no staging folder left beside it
