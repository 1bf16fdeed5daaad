"""Under ``umask 000`` every folder maintkit creates is 0700 and its private files 0600.

The real CLI in a subprocess whose umask is 000 (as some cron jobs and containers run): a snapshot on
a local-connection host into the default local target, the default journal folder, a lock folder
whose parents do not exist yet (created by the lock command on the "host", a shell that inherits the
umask), and a known_hosts file written in a folder that does not exist yet.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import paramiko
import pytest
import yaml

from maintkit.transport.hostkeys import append_known_host
from tests.integration.helpers import maintkit_cmd, write_playbook

pytestmark = pytest.mark.integration


def modes(root: Path) -> dict[str, str]:
    """Every folder and file below ``root`` with its permission bits in octal."""
    found = {}
    for path in sorted(root.rglob("*")):
        found[str(path.relative_to(root))] = oct(stat.S_IMODE(path.lstat().st_mode))
    return found


def test_umask_000_leaves_no_folder_open_and_no_private_file_readable(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "site").mkdir()
    (work / "site" / "index.php").write_text("<?php echo 'shop';\n")
    lock_dir = work / "hostside" / "deep" / "lock"
    inventory = {
        "all": {
            "hosts": {"shop": {"connection": "local", "files": {"root": "./site"}, "lock_dir": str(lock_dir)}}
        }
    }
    (work / "inv.yml").write_text(yaml.safe_dump(inventory))
    book = write_playbook(
        work,
        {
            "name": "snap",
            "steps": [
                {"snapshot": {"files": "{{ files }}"}},
                # the lock is held while the steps run: look at its folders from inside the run
                {
                    "shell": f"stat -c '%a %n' {lock_dir.parent.parent} {lock_dir.parent} {lock_dir} >modes"
                },
            ],
        },
    )
    result = subprocess.run(
        maintkit_cmd("run", book, "-i", "inv.yml"),
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=lambda: os.umask(0),
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    created = modes(work / ".maintkit")
    folders = {k: v for k, v in created.items() if (work / ".maintkit" / k).is_dir()}
    files = {k: v for k, v in created.items() if (work / ".maintkit" / k).is_file()}
    assert oct(stat.S_IMODE((work / ".maintkit").stat().st_mode)) == "0o700"
    assert {"runs", "snapshots", "snapshots/shop/inv"} <= set(folders)
    assert set(folders.values()) == {"0o700"}, folders
    assert any(k.endswith(".jsonl") for k in files) and any(k.endswith("manifest.json") for k in files)
    assert set(files.values()) == {"0o600"}, files
    lock_modes = (work / "modes").read_text().split()
    assert lock_modes[0::2] == ["700", "700", "700"], lock_modes


def test_a_known_hosts_file_written_under_umask_000_is_private_with_its_new_folders(tmp_path):
    target = tmp_path / "a" / "b" / "known_hosts"
    previous = os.umask(0)
    try:
        append_known_host(target, "[127.0.0.1]:2222", paramiko.RSAKey.generate(1024))
    finally:
        os.umask(previous)
    assert modes(tmp_path) == {"a": "0o700", "a/b": "0o700", "a/b/known_hosts": "0o600"}


def test_the_release_history_folder_on_a_host_is_private_under_umask_000(tmp_path):
    from maintkit.updates.hostio import write_command

    history = tmp_path / "shop" / ".maintkit" / "releases.json"
    command = write_command(str(history), 2, private_dir=True)
    result = subprocess.run(
        ["sh", "-c", command],
        input=b"{}",
        preexec_fn=lambda: os.umask(0),
        check=False,
    )
    assert result.returncode == 0
    assert history.read_bytes() == b"{}"
    assert modes(tmp_path)["shop"] == "0o700" and modes(tmp_path)["shop/.maintkit"] == "0o700"
