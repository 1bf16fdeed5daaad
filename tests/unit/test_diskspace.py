"""Reading the host's free space: the command quotes its paths; the database's counts only when local."""

from __future__ import annotations

import subprocess

from maintkit.sources.diskspace import disk_command, disk_paths, parse_disk
from maintkit.sources.identity import DatabaseIdentity, FilesIdentity, SourceIdentity


def _identity(server: str, datadir: str = "/var/lib/mysql") -> SourceIdentity:
    return SourceIdentity(
        DatabaseIdentity("shop", server, datadir), FilesIdentity("m1", "/srv/shop it's/current")
    )


def test_the_command_quotes_every_path_and_always_exits_0() -> None:
    command = disk_command([("files", "/srv/a b; rm -rf /"), ("database", "/nowhere")])
    assert "'/srv/a b; rm -rf /'" in command
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout.startswith("node=") and "disk=" not in done.stdout


def test_the_database_s_filesystem_counts_only_when_its_server_is_this_host(tmp_path) -> None:
    identity = _identity("web1", str(tmp_path))
    assert disk_paths(identity) == [("files", "/srv/shop it's/current"), ("database", str(tmp_path))]
    out = (
        "node=web1\n"
        "disk=files\t/dev/sda1 105089261568 60000000000 40000000000 60% /srv/my shop\n"
        "disk=database\t/dev/sdb1 2000 1000 1000 50% /var/lib/mysql\n"
    )
    readings = parse_disk(out, identity)
    assert [(r.what, r.mount, r.total, r.free) for r in readings] == [
        ("files", "/srv/my shop", 105089261568, 40000000000),
        ("database", "/var/lib/mysql", 2000, 1000),
    ]
    assert [r.what for r in parse_disk(out, _identity("db-server", str(tmp_path)))] == ["files"]
    real = subprocess.run(
        ["bash", "-c", disk_command([("files", str(tmp_path))])], capture_output=True, text=True, check=True
    ).stdout
    [reading] = parse_disk(real, SourceIdentity(None, FilesIdentity("m", str(tmp_path))))
    assert reading.total > reading.free > 0 and reading.path == str(tmp_path)
