"""The incremental files engine over real sshd: restic on the host, append-only rclone on the control node.

What is proven here (issue 16, first slice; the snapshot job does not use the engine yet):
nights with files added, changed, deleted and renamed each restore byte-identical (content, modes,
symlinks, file mtimes); an unchanged night adds nothing and a small change adds little (restic's
and the repository's own figures); the host holds no repository password or storage path
afterwards, cannot delete or overwrite what it stored through the port it is given, and the port
is gone when the run ends.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from maintkit.storage.restic import (
    AppendOnlyServer,
    BackupSummary,
    Repository,
    backup_command,
    ensure_password_file,
    parse_backup,
    read_password,
)
from maintkit.transport.ssh.transport import SSHTransport
from tests.sshd import SSHHost, open_transport, skip_or_fail

pytestmark = pytest.mark.integration


@pytest.fixture
def host(clean_homes: dict[str, SSHHost]) -> SSHHost:
    for tool in ("restic", "rclone", "curl"):
        if shutil.which(tool) is None:
            skip_or_fail(f"{tool} is needed (apt-get install restic rclone curl)")
    return clean_homes["prod2"]


@pytest.fixture
def transport(host: SSHHost, known_hosts_file: Path, tmp_path: Path) -> Iterator[SSHTransport]:
    with open_transport(host, known_hosts_file, tmp_path) as made:
        yield made


def tree(root: Path) -> dict[str, tuple[str, int, bytes, int]]:
    """path -> (kind, mode bits, content or link target, file mtime ns): what "byte-identical" compares."""
    out: dict[str, tuple[str, int, bytes, int]] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            out[rel] = ("link", 0, os.readlink(path).encode(), 0)
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = ("dir", stat.S_IMODE(st.st_mode), b"", 0)
        else:
            out[rel] = ("file", stat.S_IMODE(st.st_mode), path.read_bytes(), st.st_mtime_ns)
    return out


def chown(host: SSHHost, path: Path) -> None:
    subprocess.run(["chown", "-hR", f"{host.user}:{host.user}", str(path)], check=True)


def night(
    transport: SSHTransport, repo: Repository, site: Path, password: str, tag: str = "mk-test"
) -> BackupSummary:
    """One nightly engine snapshot: server up, port forwarded, restic on the host, all torn down."""
    repo.init_if_missing()
    with AppendOnlyServer(repo.location) as server, transport.forward_remote(server.port) as port:
        result = transport.run(
            backup_command(str(site), ["."], tag=tag),
            env={"RESTIC_REPOSITORY": server.url(port), "RESTIC_PASSWORD": password},
            secret=True,
            timeout=120,
        )
    assert result.rc == 0, result.stderr
    return parse_backup(result.stdout)


def test_three_nights_restore_byte_identical_and_only_the_change_is_stored(
    transport: SSHTransport, host: SSHHost, tmp_path: Path
) -> None:
    site = host.home / "site"
    media = site / "pub" / "media"
    media.mkdir(parents=True)
    for i in range(40):
        (media / f"img{i:02d}.jpg").write_bytes(os.urandom(100_000))
    (site / "bin").mkdir()
    (site / "bin" / "magento").write_text("#!/bin/sh\necho hi\n")
    (site / "bin" / "magento").chmod(0o755)
    (site / "app" / "etc").mkdir(parents=True)
    (site / "app" / "etc" / "env.php").write_text("<?php return ['db' => 'x'];\n")
    (site / "app" / "etc" / "env.php").chmod(0o600)
    (site / "current").symlink_to("pub/media")
    chown(host, site)
    password_file = ensure_password_file(tmp_path / "control" / "restic.password")
    repo = Repository(str(tmp_path / "storage" / "restic"), password_file)
    password = read_password(password_file)

    expected: list[dict[str, tuple[str, int, bytes, int]]] = []
    summaries: list[BackupSummary] = []
    sizes: list[int] = []
    for n in range(3):
        if n == 1:
            pass  # night 2: unchanged
        if n == 2:  # night 3: added, changed, deleted, renamed, mode changed
            (media / "new.jpg").write_bytes(os.urandom(50_000))
            (media / "img00.jpg").write_bytes(os.urandom(100_000))
            (media / "img01.jpg").unlink()
            (media / "img02.jpg").rename(media / "renamed.jpg")
            (site / "bin" / "magento").chmod(0o700)
            (site / "current").unlink()
            (site / "current").symlink_to("app")
            chown(host, site)
        expected.append(tree(site))
        summaries.append(night(transport, repo, site, password))
        sizes.append(repo.stats_raw())

    ids = [s.snapshot_id for s in summaries]
    assert len(set(ids)) == 3
    assert {s["short_id"] for s in repo.snapshots()} == set(ids)  # restic 0.14 reports the short id
    for n, snapshot_id in enumerate(ids):
        restored = repo.restore(snapshot_id, tmp_path / f"restore{n}")
        assert tree(restored) == expected[n], f"night {n + 1} did not restore byte-identical"

    first, unchanged, changed = sizes[0], sizes[1] - sizes[0], sizes[2] - sizes[1]
    assert summaries[0].data_added >= 4_000_000
    assert summaries[1].data_added < 20_000 and summaries[1].files_new == 0
    assert unchanged < 0.02 * first, (first, unchanged)
    assert changed < 0.1 * first, (first, changed)  # 150 kB of new media in a 4 MB tree
    assert summaries[2].files_new == 2 and summaries[2].files_changed >= 1


def test_the_host_cannot_delete_what_it_stored_and_keeps_no_secret(
    transport: SSHTransport, host: SSHHost, tmp_path: Path
) -> None:
    site = host.home / "site"
    site.mkdir()
    (site / "a.txt").write_text("precious\n")
    chown(host, site)
    password_file = ensure_password_file(tmp_path / "control" / "restic.password")
    password = read_password(password_file)
    storage = tmp_path / "storage" / "restic"
    repo = Repository(str(storage), password_file)
    snapshot_id = night(transport, repo, site, password).snapshot_id
    stored_before = sorted(str(p.relative_to(storage)) for p in storage.rglob("*") if p.is_file())

    snapshot_file = next((storage / "snapshots").iterdir()).name
    pack = next(p for p in (storage / "data").rglob("*") if p.is_file()).relative_to(storage)
    key = next((storage / "keys").iterdir()).name
    with AppendOnlyServer(repo.location) as server, transport.forward_remote(server.port) as port:
        # what restic forget/prune would send, and an overwrite; restic itself retries a refused
        # DELETE for ~45 s before it gives up, so the requests go out directly
        base = f"http://127.0.0.1:{port}"
        login = f"{server.user}:{server.password}"
        answers = {
            what: transport.run(
                f"curl -s -o /dev/null -w '%{{http_code}}' -u {login} {request}", timeout=30
            ).stdout.strip()
            for what, request in {
                "delete snapshot": f"-X DELETE {base}/snapshots/{snapshot_file}",
                "delete pack": f"-X DELETE {base}/{pack}",
                "delete key": f"-X DELETE {base}/keys/{key}",
                "overwrite key": f"-X POST --data-binary junk {base}/keys/{key}",
                "read config": f"{base}/config",
            }.items()
        }
    after = transport.run(
        f"curl -s -o /dev/null -w '%{{http_code}}' http://127.0.0.1:{port}/config", timeout=30
    )
    assert after.stdout.strip() == "000", "the forward outlived its run"
    assert answers.pop("read config") == "200"  # the login works: the refusals are append-only's
    assert all(code == "403" for code in answers.values()), answers
    stored_after = sorted(str(p.relative_to(storage)) for p in storage.rglob("*") if p.is_file())
    assert set(stored_before) <= set(stored_after)
    assert {s["short_id"] for s in repo.snapshots()} == {snapshot_id}

    # nothing of the repository's secrets or location stayed on the host (its cache holds only
    # encrypted metadata, named by the repository id)
    stored_text = subprocess.run(
        ["grep", "-rlsF", "-e", password, "-e", str(storage), str(host.home)],
        capture_output=True,
        check=False,
    )
    assert stored_text.stdout == b"", stored_text.stdout
    env_dump = transport.run("env", timeout=30).stdout
    assert password not in env_dump and "RESTIC" not in env_dump and "AWS_" not in env_dump
