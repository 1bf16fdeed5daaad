"""Restoring an engine (restic) snapshot through real sshd: `maintkit restore --into` reads the
repository on the control node, checks the manifest's tag and tree, and streams the tree to the host.

The engine snapshot is made for real (restic on prod2 writing through the append-only forward, as
the nightly job does: tests/integration/test_restic_engine.py); the manifest beside it is written
here with the engine fields the snapshot job records. Proven: the tree restores byte-identical
(content, modes, symlinks, file mtimes) into another host's folder; a manifest whose tag is not the
engine snapshot's is refused with exit 2 before anything is written; a restic that fails half-way
(a damaged pack) leaves the target folder as it was and no staging folder behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from maintkit.storage.manifest import Artifact, Manifest
from maintkit.storage.restic import Repository, ensure_password_file, read_password
from maintkit.transport.ssh.transport import SSHTransport
from tests.integration.helpers import run_cli
from tests.integration.test_restic_engine import chown, night, tree
from tests.s3server import MotoServer, use_fake_aws_credentials
from tests.sshd import SSHHost, open_transport, skip_or_fail

pytestmark = pytest.mark.integration

SITE, ENV, SNAPSHOT_ID = "shop", "production", "20261205T030000Z"


@pytest.fixture
def transport(
    clean_homes: dict[str, SSHHost], known_hosts_file: Path, tmp_path: Path
) -> Iterator[SSHTransport]:
    for tool in ("restic", "rclone"):
        if shutil.which(tool) is None:
            skip_or_fail(f"{tool} is needed (apt-get install restic rclone)")
    with open_transport(clean_homes["prod2"], known_hosts_file, tmp_path) as made:
        yield made


@pytest.fixture
def world(
    transport: SSHTransport,
    clean_homes: dict[str, SSHHost],
    known_hosts_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Any]:
    """One engine snapshot of prod2's ~/site in a local target, its manifest, and the inventories."""
    source, target = clean_homes["prod2"], clean_homes["stage1"]
    site = source.home / "site"
    (site / "pub" / "media").mkdir(parents=True)
    for i in range(30):
        (site / "pub" / "media" / f"img{i:02d}.jpg").write_bytes(os.urandom(200_000))
    (site / "bin").mkdir()
    (site / "bin" / "magento").write_text("#!/bin/sh\necho hi\n")
    (site / "bin" / "magento").chmod(0o750)
    (site / "app" / "etc").mkdir(parents=True)
    (site / "app" / "etc" / "config.php").write_text("<?php return [];\n")
    (site / "app" / "etc" / "config.php").chmod(0o600)
    (site / "current").symlink_to("pub/media")
    (site / "empty").mkdir(mode=0o700)
    os.utime(site / "bin" / "magento", (1_600_000_000, 1_600_000_000))
    chown(source, site)

    keys = tmp_path / "keys"
    monkeypatch.setenv("MAINTKIT_KEYS_DIR", str(keys))
    password_file = ensure_password_file(keys / SITE / ENV / "restic.password")
    storage = tmp_path / "backups"
    repo = Repository(str(storage / SITE / ENV / "restic"), password_file)
    summary = night(transport, repo, site, read_password(password_file), tag=f"maintkit-{SNAPSHOT_ID}")
    [made] = [s for s in repo.snapshots() if s["short_id"] == summary.snapshot_id]
    artifact = Artifact(
        name="files.restic",
        key=f"{SITE}/{ENV}/restic",
        size=summary.data_added,
        sha256="",
        compression="zstd",
        encryption="restic",
        source=f"restic backup of . under {site} on prod2",
        engine="restic",
        engine_snapshot=made["id"],
        engine_tag=f"maintkit-{SNAPSHOT_ID}",
        engine_tree=made["tree"],
    )
    write_manifest(storage, artifact)

    def host(h: SSHHost, **more: Any) -> dict[str, Any]:
        return {"ansible_host": h.address, "ansible_port": h.port, "ansible_user": h.user,
                "ansible_ssh_private_key_file": str(h.key_file), **more}  # fmt: skip

    common = {
        "known_hosts": str(known_hosts_file),
        "storage": [{"name": "local", "type": "local", "path": str(storage)}],
    }
    inventories = {
        "production": {"all": {"vars": common, "children": {ENV: {"hosts": {
            SITE: host(source, files={"root": "~/site"})}}}}},
        "drill": {"all": {"vars": {"known_hosts": str(known_hosts_file)}, "children": {"drill": {"hosts": {
            "drill1": host(target, site=SITE, files={"root": "~/shop"})}}}}},
    }  # fmt: skip
    (tmp_path / "inventories").mkdir()
    for name, data in inventories.items():
        (tmp_path / "inventories" / f"{name}.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    drill_root = target.home / "shop"
    drill_root.mkdir()
    (drill_root / "live.txt").write_text("the drill copy's own file\n")
    chown(target, drill_root)
    return {"work": tmp_path, "storage": storage, "artifact": artifact, "expected": tree(site),
            "drill_root": drill_root, "repo": repo}  # fmt: skip


def write_manifest(storage: Path, artifact: Artifact) -> None:
    now = datetime.now(UTC)
    manifest = Manifest(
        snapshot_id=SNAPSHOT_ID, site=SITE, env=ENV, host="prod2", run_id="test", tool_version="test",
        created=now, finished=now, artifacts=[artifact],
    )  # fmt: skip
    folder = storage / SITE / ENV / SNAPSHOT_ID
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(manifest.to_json().decode())


def restore(world: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "restore", SNAPSHOT_ID, "--env", ENV, "--into", "drill", "--force",
        "--journal-dir", str(world["work"] / "journal"), cwd=world["work"],
    )  # fmt: skip


def without_mtimes(files: dict[str, tuple[str, int, bytes, int]]) -> dict[str, tuple[str, int, bytes]]:
    return {path: (kind, mode, data) for path, (kind, mode, data, _mtime) in files.items()}


def staging_leftovers(root: Path) -> list[str]:
    return [p.name for p in root.parent.iterdir() if ".mk" in p.name]


def test_an_engine_snapshot_restores_byte_identical_into_another_host(world: dict[str, Any]) -> None:
    result = restore(world)
    assert result.returncode == 0, result.stdout + result.stderr
    # content, modes, symlinks, file mtimes: to the nearest second (restic dump writes ustar headers,
    # whose mtimes are whole seconds, as GNU tar's are for a stored files.tar.zst: docs/restore.md)
    restored, expected = tree(world["drill_root"]), world["expected"]
    assert without_mtimes(restored) == without_mtimes(expected)
    assert all(abs(restored[p][3] - expected[p][3]) <= 5 * 10**8 for p in expected), "mtimes"
    assert tree(world["drill_root"])["bin/magento"][3] == 1_600_000_000 * 10**9
    assert (world["drill_root"] / "empty").stat().st_mode & 0o777 == 0o700
    assert staging_leftovers(world["drill_root"]) == []


def test_an_engine_snapshot_in_an_s3_target_restores_through_rclone_with_the_control_node_s_keys(
    world: dict[str, Any], moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    use_fake_aws_credentials(monkeypatch, world["work"])
    s3 = boto3.client("s3", endpoint_url=moto_server.endpoint_url, region_name="us-east-1")
    bucket = f"mk-engine-{os.getpid()}"
    s3.create_bucket(Bucket=bucket)
    storage: Path = world["storage"]
    for path in storage.rglob("*"):  # the repository and the manifest, as the engine stores them
        if path.is_file():
            s3.upload_file(str(path), bucket, f"backups/{path.relative_to(storage)}")
    inventory = world["work"] / "inventories" / "production.yml"
    data = yaml.safe_load(inventory.read_text())
    target = {"name": "offsite", "type": "s3", "bucket": bucket, "prefix": "backups", "region": "us-east-1"}
    data["all"]["vars"]["storage"] = [{**target, "endpoint_url": moto_server.endpoint_url}]
    inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    shutil.rmtree(storage)  # only the bucket holds the snapshot now

    result = restore(world)
    assert result.returncode == 0, result.stdout + result.stderr
    restored, expected = tree(world["drill_root"]), world["expected"]
    assert without_mtimes(restored) == without_mtimes(expected)
    journal = "".join(p.read_text() for p in (world["work"] / "journal").iterdir())
    # the keys lived in restic's and rclone's environment only: no command, event or output has them
    assert "RCLONE_CONFIG" not in journal + result.stdout and "SECRET_ACCESS_KEY" not in journal


def test_a_manifest_whose_tag_is_not_the_engine_snapshot_s_is_refused(world: dict[str, Any]) -> None:
    tampered = Artifact(**{**world["artifact"].__dict__, "engine_tag": "maintkit-20201231T000000Z"})
    write_manifest(world["storage"], tampered)
    before = tree(world["drill_root"])
    result = restore(world)
    assert tree(world["drill_root"]) == before
    assert result.returncode == 2, result.stdout + result.stderr
    assert "is not tagged maintkit-20201231T000000Z" in result.stdout + result.stderr
    assert [*tree(world["drill_root"])] == ["live.txt"]  # nothing written, nothing replaced
    assert staging_leftovers(world["drill_root"]) == []


def test_a_restic_failing_half_way_leaves_the_target_untouched(world: dict[str, Any]) -> None:
    packs = sorted(
        (world["storage"] / SITE / ENV / "restic" / "data").rglob("*"), key=lambda p: p.stat().st_size
    )
    pack = [p for p in packs if p.is_file()][-1]  # the largest: the media
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in a blob half-way through the pack
    pack.chmod(0o644)
    pack.write_bytes(bytes(data))
    before = tree(world["drill_root"])
    result = restore(world)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "restic dump failed" in result.stdout
    assert tree(world["drill_root"]) == before
    assert staging_leftovers(world["drill_root"]) == []
