"""Snapshots end to end: a real MariaDB and site folder, pulled over real SSH into S3 and a local folder.

What cron users rely on, proven on real servers: the bytes in the bucket load into a fresh database
with the same rows and checksums; the files come back byte-identical; both targets hold the same
artifacts and manifest; a dump killed mid-stream leaves no manifest and no partial object; the
password shows in no process list and no log; ``snapshots verify`` catches a flipped byte.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
import zstandard

from tests.integration.helpers import events, run_cli, start_cli, wait_for
from tests.mariadb import (
    SHOP_DB,
    SHOP_PASSWORD,
    SHOP_USER,
    MariaDBServer,
    mariadb_fixture,
    scratch_database,
    table_lock,
)
from tests.s3server import MotoServer, use_fake_aws_credentials

pytestmark = pytest.mark.integration

mariadb = mariadb_fixture("mariadb", scope="module")


@pytest.fixture
def bucket(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    use_fake_aws_credentials(monkeypatch, tmp_path)  # the CLI subprocesses inherit them
    import boto3

    name = f"mk-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_server.endpoint_url, region_name="us-east-1").create_bucket(
        Bucket=name
    )
    return name


def s3_client(moto_server: MotoServer) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=moto_server.endpoint_url, region_name="us-east-1")


SITE_FILES = {
    "index.php": b"<?php echo 'shop';\n",
    "pub/media/catalog/mug.jpg": bytes(range(256)) * 300,
    "pub/media/name with spaces & 'quotes'.txt": "caf\u00e9 \U0001f600\n".encode(),
    "app/etc/config.php": b"<?php return ['modules' => []];\n",
    "var/cache/mage--0": b"cache entry, excluded by cms: magento\n",
}


@pytest.fixture
def site(clean_homes: Any, ssh_hosts: Any) -> Path:
    """A shop folder in prod1's home, owned by its user (as on a real server)."""
    host = ssh_hosts["prod1"]
    root = Path(host.home) / "shop"
    for name, data in SITE_FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    subprocess.run(["chown", "-R", f"{host.user}:{host.user}", str(root)], check=True)
    return root


@pytest.fixture
def inventory(
    tmp_path: Path, ssh_inventory: Path, mariadb: MariaDBServer, moto_server: MotoServer, bucket: str
) -> Path:
    """The test inventory, with prod1 holding a database, files and two storage targets."""
    data = yaml.safe_load(ssh_inventory.read_text())
    prod1 = data["all"]["children"]["production"]["hosts"]["prod1"]
    creds = mariadb.tcp()
    prod1.update(
        database={
            "name": SHOP_DB,
            "user": SHOP_USER,
            "password": SHOP_PASSWORD,
            "host": "127.0.0.1",
            "port": creds.port,
        },
        files={"root": "~/shop", "cms": "magento"},
        storage=[
            {"name": "local", "type": "local", "path": str(tmp_path / "backups")},
            {
                "name": "offsite",
                "type": "s3",
                "bucket": bucket,
                "region": "us-east-1",
                "endpoint_url": moto_server.endpoint_url,
            },
        ],
        retention={"keep_last": 1},
    )
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def backup(tmp_path: Path, inventory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "run",
        "nightly-backup",
        "-i",
        inventory,
        "--limit",
        "prod1",
        "--journal-dir",
        tmp_path / "journal",
        *args,
        cwd=tmp_path,
    )


def snapshot_ids(folder: Path) -> list[str]:
    base = folder / "prod1" / "inventory"
    return sorted(p.name for p in base.iterdir()) if base.is_dir() else []


def decompress(data: bytes) -> bytes:
    return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True).read()


def test_nightly_backup_restores_to_identical_rows_and_files(
    tmp_path, inventory, site, mariadb, moto_server, bucket
):
    assert (site / "index.php").exists()
    result = backup(tmp_path, inventory)
    assert result.returncode == 0, result.stdout + result.stderr
    [snapshot_id] = snapshot_ids(tmp_path / "backups")
    prefix = f"prod1/inventory/{snapshot_id}"
    local = tmp_path / "backups" / "prod1" / "inventory" / snapshot_id
    s3 = s3_client(moto_server)

    # both targets hold the same bytes, and the same manifest
    for name in ("db.sql.zst", "files.tar.zst", "manifest.json"):
        in_bucket = s3.get_object(Bucket=bucket, Key=f"{prefix}/{name}")["Body"].read()
        assert in_bucket == (local / name).read_bytes(), name
    manifest = json.loads((local / "manifest.json").read_text())
    by_name = {a["name"]: a for a in manifest["artifacts"]}
    for name, artifact in by_name.items():
        data = (local / name).read_bytes()
        assert artifact["size"] == len(data)
        assert artifact["sha256"] == hashlib.sha256(data).hexdigest()

    # the dump from the bucket loads into a fresh database with the same rows and checksums
    dump = decompress(s3.get_object(Bucket=bucket, Key=f"{prefix}/db.sql.zst")["Body"].read())
    assert dump.rstrip().splitlines()[-1].startswith(b"-- Dump completed")
    with scratch_database(mariadb, "shop_restored", owner=SHOP_USER) as restored:
        mariadb.load(restored, dump)
        assert mariadb.table_row_counts(restored) == mariadb.table_row_counts(SHOP_DB)
        assert mariadb.checksum_tables(restored) == mariadb.checksum_tables(SHOP_DB)
    recorded = {t["name"]: t["rows"] for t in manifest["database"]["tables"]}
    assert recorded == mariadb.table_row_counts(SHOP_DB)

    # the files come back byte-identical, caches left out
    archive = decompress((local / "files.tar.zst").read_bytes())
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = {m.name.removeprefix("./"): m for m in tar.getmembers() if m.isfile()}
        for name, data in SITE_FILES.items():
            if name.startswith("var/cache"):
                assert name not in members
            else:
                extracted = tar.extractfile(members[name])
                assert extracted is not None and extracted.read() == data

    # the password appears in no output and no journal
    journal = "".join(p.read_text() for p in (tmp_path / "journal").glob("*.jsonl"))
    assert SHOP_PASSWORD not in result.stdout + result.stderr + journal
    step = next(
        e for e in events(tmp_path / "journal") if e["event"] == "step_end" and e["action"] == "snapshot"
    )
    assert step["data"]["snapshot_id"] == snapshot_id and step["data"]["bytes"] > 0

    # verify from the CLI, then flip one byte in the local copy: verify names the artifact
    verified = run_cli("snapshots", "verify", "latest", "-i", inventory, "--limit", "prod1", cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    damaged = bytearray((local / "files.tar.zst").read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    (local / "files.tar.zst").write_bytes(bytes(damaged))
    failed = run_cli("snapshots", "verify", "latest", "-i", inventory, "--limit", "prod1", cwd=tmp_path)
    assert failed.returncode == 1
    assert "FAILED prod1 local" in failed.stdout and "files.tar.zst" in failed.stdout
    assert "ok prod1 offsite" in failed.stdout


def test_a_dump_killed_mid_stream_leaves_no_manifest_and_no_object(
    tmp_path, inventory, site, mariadb, moto_server, bucket
):
    with table_lock(mariadb, SHOP_DB, "store"):
        result = backup(tmp_path, inventory, "--var", "snapshot_timeout=2")
    assert result.returncode == 1, result.stdout
    assert "timed out" in result.stdout or "killed" in result.stdout
    ids = snapshot_ids(tmp_path / "backups")
    for snapshot_id in ids:
        folder = tmp_path / "backups" / "prod1" / "inventory" / snapshot_id
        assert not (folder / "manifest.json").exists()
        assert not list(folder.glob("db.sql*")) or all(p.suffix == ".part" for p in folder.iterdir())
    s3 = s3_client(moto_server)
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_the_password_never_shows_in_the_process_list(tmp_path, inventory, site, mariadb):
    with table_lock(mariadb, SHOP_DB, "store") as release:
        process = start_cli("run", "nightly-backup", "-i", inventory, "--limit", "prod1", "-q", cwd=tmp_path)
        try:
            listings = []

            def dump_running() -> bool:
                listing = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
                listings.append(listing)
                return "--defaults-file=/dev/fd/3" in listing  # the row count or the dump, logged in

            wait_for(dump_running, what="a database client to be running on the host")
            release()
            assert process.wait(timeout=60) == 0
        finally:
            if process.poll() is None:
                process.kill()
    assert not any(SHOP_PASSWORD in listing for listing in listings)
    assert not any("pa$$" in listing for listing in listings)


def test_prune_keeps_what_retention_says(tmp_path, inventory, site, mariadb):
    assert backup(tmp_path, inventory).returncode == 0
    first = snapshot_ids(tmp_path / "backups")
    wait_for(
        lambda: backup(tmp_path, inventory).returncode == 0 and len(snapshot_ids(tmp_path / "backups")) >= 1,
        what="a second backup",
    )
    remaining = snapshot_ids(tmp_path / "backups")
    assert len(remaining) == 1 and remaining != first  # keep_last: 1, the newest
    listed = run_cli(
        "snapshots", "list", "-i", inventory, "--limit", "prod1", "--output", "json", cwd=tmp_path
    )
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert {r["id"] for r in rows} == set(remaining)
    assert all(sorted(r["targets"]) == ["local", "offsite"] for r in rows)
