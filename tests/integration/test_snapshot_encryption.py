"""Encrypted snapshots end to end: real MariaDB and site folder, over real SSH, into S3 and a folder.

What an operator relies on when ``encryption.recipients`` is set: every stored artifact is an age
file (nothing readable in the bucket); with the identity, the dump decrypts, decompresses and loads
into a fresh database with the same rows and checksums, and the files come back byte-identical;
``snapshots verify`` decrypts and runs the full checks; without the identity it says it could only
check sizes and hashes; a wrong identity fails verify with a clear reason; a bad recipient stops
the run before anything touches a host. The identity never shows in any output.
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

import pyrage
import pytest
import yaml
import zstandard

from maintkit.storage.encryption import AGE_MAGIC, decrypting_reader, recipient_fingerprint
from tests.integration.helpers import run_cli
from tests.integration.test_snapshot_e2e import SITE_FILES, backup, s3_client, snapshot_ids
from tests.mariadb import SHOP_DB, SHOP_PASSWORD, SHOP_USER, MariaDBServer, mariadb_fixture, scratch_database
from tests.s3server import MotoServer, use_fake_aws_credentials

pytestmark = pytest.mark.integration

mariadb = mariadb_fixture("mariadb", scope="module")


@pytest.fixture
def bucket(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    use_fake_aws_credentials(monkeypatch, tmp_path)  # the CLI subprocesses inherit them
    name = f"mk-{uuid.uuid4().hex[:12]}"
    s3_client(moto_server).create_bucket(Bucket=name)
    return name


@pytest.fixture
def site(clean_homes: Any, ssh_hosts: Any) -> Path:
    """The shop folder of test_snapshot_e2e, in prod1's home, owned by its user."""
    host = ssh_hosts["prod1"]
    root = Path(host.home) / "shop"
    for name, data in SITE_FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    subprocess.run(["chown", "-R", f"{host.user}:{host.user}", str(root)], check=True)
    return root


@pytest.fixture
def identity(tmp_path: Path) -> tuple[pyrage.x25519.Identity, Path]:
    """An age identity and its file, as ``age-keygen -o`` writes it (0600, comments first)."""
    key = pyrage.x25519.Identity.generate()
    path = tmp_path / "keys" / "backup-age.txt"
    path.parent.mkdir()
    path.write_text(f"# public key: {key.to_public()}\n{key}\n")
    path.chmod(0o600)
    return key, path


def write_inventory(
    tmp_path: Path,
    ssh_inventory: Path,
    mariadb: MariaDBServer,
    moto_server: MotoServer,
    bucket: str,
    encryption: dict[str, Any],
) -> Path:
    data = yaml.safe_load(ssh_inventory.read_text())
    prod1 = data["all"]["children"]["production"]["hosts"]["prod1"]
    prod1.update(
        database={
            "name": SHOP_DB,
            "user": SHOP_USER,
            "password": SHOP_PASSWORD,
            "host": "127.0.0.1",
            "port": mariadb.tcp().port,
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
        encryption=encryption,
    )
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def verify(tmp_path: Path, inventory: Path) -> Any:
    return run_cli("snapshots", "verify", "latest", "-i", inventory, "--limit", "prod1", cwd=tmp_path)


def test_encrypted_backup_stores_age_files_that_restore_and_verify(
    tmp_path, ssh_inventory, site, mariadb, moto_server, bucket, identity
):
    key, key_file = identity
    recipient = str(key.to_public())
    encryption = {"recipients": [recipient], "identity_file": "keys/backup-age.txt"}  # inventory-relative
    inventory = write_inventory(tmp_path, ssh_inventory, mariadb, moto_server, bucket, encryption)
    result = backup(tmp_path, inventory)
    assert result.returncode == 0, result.stdout + result.stderr
    [snapshot_id] = snapshot_ids(tmp_path / "backups")
    local = tmp_path / "backups" / "prod1" / "inventory" / snapshot_id
    prefix = f"prod1/inventory/{snapshot_id}"
    s3 = s3_client(moto_server)

    # the manifest says age, names the recipient by fingerprint, and hashes the stored ciphertext
    manifest = json.loads((local / "manifest.json").read_text())
    assert manifest["encrypted_to"] == [recipient_fingerprint(recipient)]
    assert recipient not in (local / "manifest.json").read_text()
    artifacts = {a["name"]: a for a in manifest["artifacts"]}
    assert set(artifacts) == {"db.sql.zst.age", "files.tar.zst.age"}
    for name, artifact in artifacts.items():
        stored = (local / name).read_bytes()
        assert artifact["encryption"] == "age" and artifact["compression"] == "zstd"
        assert stored.startswith(AGE_MAGIC), name
        assert s3.get_object(Bucket=bucket, Key=f"{prefix}/{name}")["Body"].read() == stored
        assert artifact["size"] == len(stored)
        assert artifact["sha256"] == hashlib.sha256(stored).hexdigest()
    assert b"CREATE TABLE" not in (local / "db.sql.zst.age").read_bytes()

    # the dump from the bucket, decrypted with the identity file, loads with the same rows
    body = s3.get_object(Bucket=bucket, Key=f"{prefix}/db.sql.zst.age")["Body"]
    with decrypting_reader(body, [key_file]) as plain:
        dump = zstandard.ZstdDecompressor().stream_reader(plain, read_across_frames=True).read()
    assert dump.rstrip().splitlines()[-1].startswith(b"-- Dump completed")
    with scratch_database(mariadb, "shop_restored_enc", owner=SHOP_USER) as restored:
        mariadb.load(restored, dump)
        assert mariadb.table_row_counts(restored) == mariadb.table_row_counts(SHOP_DB)
        assert mariadb.checksum_tables(restored) == mariadb.checksum_tables(SHOP_DB)

    # the files come back byte-identical
    with (local / "files.tar.zst.age").open("rb") as raw, decrypting_reader(raw, [key]) as plain:
        archive = zstandard.ZstdDecompressor().stream_reader(plain, read_across_frames=True).read()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = {m.name.removeprefix("./"): m for m in tar.getmembers() if m.isfile()}
        for name, data in SITE_FILES.items():
            if not name.startswith("var/cache"):
                extracted = tar.extractfile(members[name])
                assert extracted is not None and extracted.read() == data

    # verify decrypts and runs the full checks, in both targets
    verified = verify(tmp_path, inventory)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "ok prod1 local" in verified.stdout and "ok prod1 offsite" in verified.stdout
    record = json.loads((local / "verification.json").read_text())
    checks = {r["name"]: r["checks"] for r in record["results"]}
    assert checks["db.sql.zst.age"] == {
        "decompress": True,
        "dump_trailer": True,
        "decrypt": True,
        "size": True,
        "sha256": True,
    }
    assert checks["files.tar.zst.age"]["tar_listing"] and checks["files.tar.zst.age"]["decrypt"]
    playbook = run_cli("run", "verify-backup", "-i", inventory, "--limit", "prod1", cwd=tmp_path)
    assert playbook.returncode == 0, playbook.stdout + playbook.stderr  # the `verify` action too

    # the identity's secret appears in no output and no journal
    journal = "".join(p.read_text() for p in (tmp_path / "journal").glob("*.jsonl"))
    secret = str(key)
    outputs = (result, verified, playbook)
    assert not any(secret in out.stdout + out.stderr for out in outputs) and secret not in journal

    # without the identity: size and SHA-256 only, and the record says so
    write_inventory(tmp_path, ssh_inventory, mariadb, moto_server, bucket, {"recipients": [recipient]})
    blind = verify(tmp_path, inventory)
    assert blind.returncode == 0, blind.stdout + blind.stderr
    record = json.loads((local / "verification.json").read_text())
    assert all(r["checks"] == {"size": True, "sha256": True} for r in record["results"])
    assert all("only size and sha256" in r["message"] for r in record["results"])

    # with someone else's identity: verify fails and says why
    stranger = tmp_path / "keys" / "other.txt"
    stranger.write_text(f"{pyrage.x25519.Identity.generate()}\n")
    wrong = {"recipients": [recipient], "identity_file": str(stranger)}
    write_inventory(tmp_path, ssh_inventory, mariadb, moto_server, bucket, wrong)
    failed = verify(tmp_path, inventory)
    assert failed.returncode == 1
    assert "none of the configured identities can decrypt" in failed.stdout


def test_a_bad_recipient_stops_the_run_before_any_host_is_touched(
    tmp_path, ssh_inventory, site, mariadb, moto_server, bucket
):
    encryption = {"recipients": ["age1thisisnotakey"]}
    inventory = write_inventory(tmp_path, ssh_inventory, mariadb, moto_server, bucket, encryption)
    result = backup(tmp_path, inventory)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "encryption.recipients[0]" in result.stderr and "invalid recipient" in result.stderr
    assert snapshot_ids(tmp_path / "backups") == []
