"""A host without zstd or mariadb-dump: a message naming the missing program, exit 1, nothing stored.

The "host" is this machine through the local connection, with a PATH whose folder holds every
program of /usr/bin and /bin except the ones taken away: the real probe and the real CLI decide.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.integration.helpers import events, maintkit_cmd, write_playbook

pytestmark = pytest.mark.integration


def path_without(folder: Path, *missing: str) -> str:
    """A PATH of one folder of links to every program of /usr/bin and /bin except ``missing``."""
    folder.mkdir()
    for source in (Path("/usr/bin"), Path("/bin")):
        for program in source.iterdir():
            link = folder / program.name
            if program.name in missing or link.exists() or link.is_symlink():
                continue
            link.symlink_to(program)
    return str(folder)


def snapshot_without(
    work: Path, missing: tuple[str, ...], snapshot: dict
) -> subprocess.CompletedProcess[str]:
    (work / "site").mkdir()
    (work / "site" / "index.php").write_text("<?php echo 'shop';\n")
    host = {
        "connection": "local",
        "lock_dir": str(work / "lock"),
        "files": {"root": str(work / "site")},
        # never reached: the probe stops the snapshot before any connection to the database
        "database": {"name": "shop", "user": "shop", "password": "not-used-1234", "host": "127.0.0.1"},
    }
    (work / "inv.yml").write_text(yaml.safe_dump({"all": {"hosts": {"shop": host}}}))
    book = write_playbook(work, {"name": "snap", "steps": [{"snapshot": snapshot}]})
    env = {**os.environ, "PATH": path_without(work / "bin", *missing), "COLUMNS": "300", "NO_COLOR": "1"}
    return subprocess.run(
        maintkit_cmd("run", book, "-i", "inv.yml", "--journal-dir", work / "journal"),
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def stored(work: Path) -> list[Path]:
    return [p for p in (work / ".maintkit" / "snapshots").rglob("*") if p.is_file()]


def test_a_host_without_a_dump_program_names_it_and_stores_nothing(tmp_path):
    result = snapshot_without(
        tmp_path, ("mariadb-dump", "mysqldump"), {"database": "{{ database }}", "files": "{{ files }}"}
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "neither mariadb-dump nor mysqldump is installed" in result.stdout
    assert "nothing was stored" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert stored(tmp_path) == []
    failed = next(e for e in events(tmp_path / "journal") if e["event"] == "step_end")
    assert failed["status"] == "failed" and "mariadb-dump" in failed["msg"]


def test_a_host_without_zstd_when_zstd_is_asked_for_names_it_and_stores_nothing(tmp_path):
    result = snapshot_without(tmp_path, ("zstd",), {"files": "{{ files }}", "compression": "zstd"})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "zstd is not installed (compression: zstd" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert stored(tmp_path) == []


def test_a_host_without_zstd_falls_back_to_gzip_under_auto(tmp_path):
    result = snapshot_without(tmp_path, ("zstd",), {"files": "{{ files }}"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in stored(tmp_path)) == ["files.tar.gz", "manifest.json"]
