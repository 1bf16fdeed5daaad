"""``files_engine: restic`` end to end: nightly runs over real sshd into a local folder and moto S3.

What is proven here (issue 16, storage side), through ``maintkit run nightly-backup`` as cron runs it:
a site first snapshotted as tar (the migration) switches to restic; nights with files added,
changed, deleted, renamed, a mode and a symlink changed each restore byte-identical from BOTH
targets' repositories (restic restore on the control node; the restore job is another slice);
an unchanged night adds < 2 % to the stored repository; manifests are format 2 with the engine
artifact; the host holds no storage credential or repository secret afterwards; verify passes,
then names a pack whose bytes were flipped; prune of the middle nights leaves the others
restorable with ``restic check`` green, old tar snapshots listable, verifiable and prunable beside.
Also: a failed copy leaves no manifest and forgets the engine snapshot; a compromised host cannot
delete or overwrite through the URL it is given; S3 as the first target; the dump beside the files.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from maintkit.storage.engine import repository
from maintkit.storage.restickey import LIGHT_N, key_params
from maintkit.storage.s3 import S3Target
from tests.integration.helpers import events, run_cli
from tests.integration.test_restic_engine import tree
from tests.mariadb import SHOP_DB, SHOP_PASSWORD, SHOP_USER, MariaDBServer, mariadb_fixture
from tests.s3server import FAKE_AWS_ENV, MotoServer, use_fake_aws_credentials
from tests.sshd import SSHHost, skip_or_fail

pytestmark = pytest.mark.integration

ENV = "inventory"  # the environment is named after the inventory file

mariadb = mariadb_fixture("mariadb", scope="module")


@pytest.fixture
def host(clean_homes: dict[str, SSHHost]) -> SSHHost:
    for tool in ("restic", "rclone"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode:
            skip_or_fail(f"{tool} is needed (apt-get install restic rclone)")
    return clean_homes["prod1"]


@pytest.fixture
def bucket(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    use_fake_aws_credentials(monkeypatch, tmp_path)  # the CLI subprocesses inherit them
    monkeypatch.setenv("MAINTKIT_KEYS_DIR", str(tmp_path / "keys"))
    import boto3

    name = f"mk-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_server.endpoint_url, region_name="us-east-1").create_bucket(
        Bucket=name
    )
    return name


@pytest.fixture
def site(host: SSHHost) -> Path:
    root = host.home / "site"
    media = root / "pub" / "media"
    media.mkdir(parents=True)
    for i in range(30):
        (media / f"img{i:02d}.jpg").write_bytes(os.urandom(100_000))
    (root / "bin").mkdir()
    (root / "bin" / "magento").write_text("#!/bin/sh\necho hi\n")
    (root / "bin" / "magento").chmod(0o755)
    (root / "var" / "cache").mkdir(parents=True)
    (root / "var" / "cache" / "mage--0").write_bytes(b"cache, excluded by cms: magento\n")
    (root / "current").symlink_to("pub/media")
    chown(host, root)
    return root


def chown(host: SSHHost, path: Path) -> None:
    subprocess.run(["chown", "-hR", f"{host.user}:{host.user}", str(path)], check=True)


def write_inventory(
    tmp_path: Path, ssh_inventory: Path, moto_server: MotoServer, bucket: str, **extra: Any
) -> Path:
    data = yaml.safe_load(ssh_inventory.read_text())
    prod1 = data["all"]["children"]["production"]["hosts"]["prod1"]
    prod1.update(
        files={"root": "~/site", "cms": "magento"},
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
        **extra,
    )
    ssh_inventory.write_text(yaml.safe_dump(data))
    return ssh_inventory


def night(tmp_path: Path, inventory: Path) -> dict[str, Any]:
    """One ``maintkit run nightly-backup``; return the snapshot step's data."""
    result = run_cli(
        "run", "nightly-backup", "-i", inventory, "--limit", "prod1",
        "--journal-dir", tmp_path / "journal", cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    step = [e for e in events(tmp_path / "journal") if e["event"] == "step_end" and e["action"] == "snapshot"]
    data: dict[str, Any] = step[-1]["data"]
    return data


def manifest(tmp_path: Path, snapshot_id: str) -> dict[str, Any]:
    path = tmp_path / "backups" / "prod1" / ENV / snapshot_id / "manifest.json"
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def s3_bytes(moto_server: MotoServer, bucket: str, prefix: str) -> int:
    import boto3

    client = boto3.client("s3", endpoint_url=moto_server.endpoint_url, region_name="us-east-1")
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sum(o["Size"] for page in pages for o in page.get("Contents", []))


def s3_object(moto_server: MotoServer, bucket: str, key: str) -> bytes:
    import boto3

    client = boto3.client("s3", endpoint_url=moto_server.endpoint_url, region_name="us-east-1")
    body: bytes = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


@pytest.mark.timeout(600)  # four nights, two restores from two targets, verify and prune: ~2 min alone
def test_restic_nights_restore_identical_from_both_targets_verify_and_prune(
    tmp_path: Path, ssh_inventory: Path, moto_server: MotoServer, bucket: str, site: Path, host: SSHHost
) -> None:
    # night 0: the site as it was snapshotted before (tar), then the switch to restic
    inventory = write_inventory(tmp_path, ssh_inventory, moto_server, bucket)
    tar_night = night(tmp_path, inventory)["snapshot_id"]
    assert manifest(tmp_path, tar_night)["format_version"] == 1
    inventory = write_inventory(tmp_path, ssh_inventory, moto_server, bucket, files_engine="restic")
    repo_dir = tmp_path / "backups" / "prod1" / ENV / "restic"

    expected: list[dict[str, Any]] = []
    ids: list[str] = []
    stored: list[int] = []
    forwards: list[str] = []
    for n in range(3):
        if n == 2:  # added, changed, deleted, renamed, a mode and a symlink changed
            media = site / "pub" / "media"
            (media / "new.jpg").write_bytes(os.urandom(50_000))
            (media / "img00.jpg").write_bytes(os.urandom(100_000))
            (media / "img01.jpg").unlink()
            (media / "img02.jpg").rename(media / "renamed.jpg")
            (site / "bin" / "magento").chmod(0o700)
            (site / "current").unlink()
            (site / "current").symlink_to("bin")
            chown(host, site)
        expected.append({k: v for k, v in tree(site).items() if not k.startswith("var/cache")})
        ids.append(night(tmp_path, inventory)["snapshot_id"])
        stored.append(folder_bytes(repo_dir))
        [made] = [e for e in events(tmp_path / "journal") if e["event"] == "engine_snapshot"]
        forwards.append(made["forward"])
    # the first night moves the whole tree through the system ssh -R; later nights the change only,
    # over the run's own connection (no second SSH handshake)
    assert forwards == ["ssh", "connection", "connection"]

    # the manifests: format 2, the engine artifact as the restore side reads it
    engine_ids: list[str] = []
    for snapshot_id in ids:
        written = manifest(tmp_path, snapshot_id)
        assert written["format_version"] == 2
        [artifact] = [a for a in written["artifacts"] if a.get("engine")]
        assert artifact["engine"] == "restic" and artifact["key"] == f"prod1/{ENV}/restic"
        assert artifact["engine_tag"] == f"maintkit-{snapshot_id}" and len(artifact["engine_snapshot"]) == 64
        assert artifact["encryption"] == "restic" and artifact["sha256"] == ""
        assert artifact["files_count"] >= 30 and artifact["tree_bytes"] >= 2_900_000
        engine_ids.append(artifact["engine_snapshot"])
    assert not list((tmp_path / "backups" / "prod1" / ENV / ids[0]).glob("files.tar*"))

    # storage grows with the change only
    first, unchanged, changed = stored[0], stored[1] - stored[0], stored[2] - stored[1]
    assert first >= 2_900_000  # 30 random images: nothing to compress
    assert unchanged <= 0.02 * first, (first, unchanged)
    assert changed <= 0.15 * first, (first, changed)  # 150 kB of new media in a 3 MB tree
    assert s3_bytes(moto_server, bucket, f"prod1/{ENV}/restic/") >= first

    # each repository opens with one light key (storage/restickey.py), in the folder and the bucket
    [local_key] = list((repo_dir / "keys").iterdir())
    assert key_params(local_key.read_bytes()) == (LIGHT_N, 8, 1)
    import boto3

    client = boto3.client("s3", endpoint_url=moto_server.endpoint_url, region_name="us-east-1")
    [s3_key] = client.list_objects_v2(Bucket=bucket, Prefix=f"prod1/{ENV}/restic/keys/")["Contents"]
    assert key_params(s3_object(moto_server, bucket, s3_key["Key"])) == (LIGHT_N, 8, 1)

    # every night restores byte-identical from both targets (restic restore on the control node)
    password = tmp_path / "keys" / "prod1" / ENV / "restic.password"
    assert password.stat().st_mode & 0o777 == 0o600
    s3 = S3Target("offsite", bucket, region="us-east-1", endpoint_url=moto_server.endpoint_url)
    from maintkit.storage.local import LocalTarget

    local = LocalTarget("local", tmp_path / "backups")
    for target in (local, s3):
        repo = repository(target, f"prod1/{ENV}/restic", password)
        for n, snapshot_id in enumerate(ids):
            [found] = repo.by_tag(f"maintkit-{snapshot_id}")
            restored = repo.restore(str(found["id"]), tmp_path / f"restore-{target.name}-{n}")
            assert tree(restored) == expected[n], f"night {n + 1} from {target.name}"

    # the host kept no storage credential, no repository password or location
    secret = password.read_text().strip()
    leaks = subprocess.run(
        ["grep", "-rlsF", "-e", secret, "-e", FAKE_AWS_ENV["AWS_SECRET_ACCESS_KEY"], "-e", str(repo_dir),
         "-e", bucket, str(host.home)],
        capture_output=True, check=False,
    )  # fmt: skip
    assert leaks.stdout == b"", leaks.stdout
    journal = "".join(p.read_text() for p in (tmp_path / "journal").glob("*.jsonl"))
    assert secret not in journal and FAKE_AWS_ENV["AWS_SECRET_ACCESS_KEY"] not in journal
    facts = [e for e in events(tmp_path / "journal") if e["event"] == "engine_snapshot"]
    assert (
        facts
        and facts[-1]["files_new"] == 2
        and facts[-1]["files_changed"] >= 1
        and facts[-1]["tag"] == f"maintkit-{ids[-1]}"
    )

    # verify: the tar night and the first restic night pass, in both targets
    for snapshot_id in (tar_night, ids[0]):
        verified = run_cli(
            "snapshots", "verify", snapshot_id, "-i", inventory, "--limit", "prod1", cwd=tmp_path
        )
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "ok prod1 local" in verified.stdout and "ok prod1 offsite" in verified.stdout

    # prune: keep_last 1 and the newest verified (restic night 1) stay; the tar night and restic
    # night 2 go, their engine snapshot forgotten and its packs pruned; the others still restore
    write_inventory(
        tmp_path, ssh_inventory, moto_server, bucket, files_engine="restic", retention={"keep_last": 1}
    )
    pruned = run_cli("snapshots", "prune", "-i", inventory, "--limit", "prod1", cwd=tmp_path, timeout=300)
    assert pruned.returncode == 0, pruned.stdout + pruned.stderr
    listed = run_cli(
        "snapshots", "list", "-i", inventory, "--limit", "prod1", "--output", "json", cwd=tmp_path
    )
    assert {json.loads(line)["id"] for line in listed.stdout.splitlines()} == {ids[0], ids[2]}
    for target in (local, s3):
        repo = repository(target, f"prod1/{ENV}/restic", password)
        assert {s["tags"][0] for s in repo.snapshots()} == {f"maintkit-{ids[0]}", f"maintkit-{ids[2]}"}
        assert repo.check(read_data=True).returncode == 0
        for n in (0, 2):
            [found] = repo.by_tag(f"maintkit-{ids[n]}")
            restored = repo.restore(str(found["id"]), tmp_path / f"after-prune-{target.name}-{n}")
            assert tree(restored) == expected[n]

    # a corrupted pack in the local repository is found by verify and named; S3 is still fine
    pack = max((p for p in (repo_dir / "data").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    pack.chmod(0o600)
    damaged = bytearray(pack.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    pack.write_bytes(bytes(damaged))
    failed = run_cli("snapshots", "verify", ids[2], "-i", inventory, "--limit", "prod1", cwd=tmp_path)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "FAILED prod1 local" in failed.stdout and f"data/{pack.name[:2]}/{pack.name}" in failed.stdout
    assert "ok prod1 offsite" in failed.stdout


def test_a_failed_copy_leaves_no_manifest_and_forgets_the_engine_snapshot(
    tmp_path: Path, ssh_inventory: Path, moto_server: MotoServer, bucket: str, site: Path
) -> None:
    inventory = write_inventory(tmp_path, ssh_inventory, moto_server, bucket, files_engine="restic")
    data = yaml.safe_load(inventory.read_text())
    prod1 = data["all"]["children"]["production"]["hosts"]["prod1"]
    broken = tmp_path / "second"
    prod1["storage"][1] = {"name": "second", "type": "local", "path": str(broken)}
    inventory.write_text(yaml.safe_dump(data))
    (broken / "prod1" / ENV).mkdir(parents=True)
    (broken / "prod1" / ENV / "restic").write_text("not a repository\n")  # restic init fails there

    checked = run_cli("run", "nightly-backup", "-i", inventory, "--limit", "prod1", "--check", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "rclone serve restic --append-only" in checked.stdout and "restic backup --json" in checked.stdout
    assert "tar -C" not in checked.stdout and not (tmp_path / "backups").exists()

    result = run_cli(
        "run", "nightly-backup", "-i", inventory, "--limit", "prod1",
        "--journal-dir", tmp_path / "journal", cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "restic init in second failed" in result.stdout
    assert "was forgotten" in result.stdout
    base = tmp_path / "backups" / "prod1" / ENV
    assert not list(base.glob("*/manifest.json")) and not list(broken.rglob("manifest.json"))
    from maintkit.storage.local import LocalTarget

    password = tmp_path / "keys" / "prod1" / ENV / "restic.password"
    repo = repository(LocalTarget("local", tmp_path / "backups"), f"prod1/{ENV}/restic", password)
    assert repo.snapshots() == []  # the night's engine snapshot was written, then forgotten


ATTACKER = r'''
"""A compromised host during a night: it finds the running restic, freezes it, reads the repository
URL (with the run's login) from its environment and tries to delete and overwrite what is stored."""
import base64, json, os, signal, sys, time, urllib.error, urllib.parse, urllib.request

def find():
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
        except OSError:
            continue
        for item in environ:
            if item.startswith(b"RESTIC_REPOSITORY=rest:"):
                return int(pid), item.split(b"=", 1)[1][5:].decode()
    return None

deadline = time.monotonic() + 120
found = None
while found is None and time.monotonic() < deadline:
    found = find()
    time.sleep(0.005)
pid, url = found
os.kill(pid, signal.SIGSTOP)
parts = urllib.parse.urlsplit(url)
base = f"{parts.scheme}://{parts.hostname}:{parts.port}"
login = base64.b64encode(f"{parts.username}:{parts.password}".encode()).decode()

def call(method, path, data=None, accept=None):
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Authorization", "Basic " + login)
    if accept:
        request.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, b""

codes = {}
for kind in ("keys", "snapshots", "index", "data"):
    status, body = call("GET", f"/{kind}/", accept="application/vnd.x.restic.rest.v2")
    names = [e["name"] for e in json.loads(body or b"[]")] if status == 200 else []
    for name in names[:3]:
        where = f"/{kind}/{name}" if kind != "data" else f"/data/{name}"
        codes[f"DELETE {where}"] = call("DELETE", where)[0]
        codes[f"POST {where}"] = call("POST", where, data=b"overwritten")[0]
codes["DELETE /config"] = call("DELETE", "/config")[0]
codes["POST /config"] = call("POST", "/config", data=b"overwritten")[0]
os.kill(pid, signal.SIGCONT)
json.dump(codes, open(sys.argv[1], "w"))
'''


def test_a_compromised_host_cannot_delete_or_overwrite_through_the_path_it_is_given(
    tmp_path: Path, ssh_inventory: Path, moto_server: MotoServer, bucket: str, site: Path, host: SSHHost
) -> None:
    import pyrage

    identity = pyrage.x25519.Identity.generate()
    encryption = {"recipients": [str(identity.to_public())]}
    inventory = write_inventory(
        tmp_path, ssh_inventory, moto_server, bucket, files_engine="restic", encryption=encryption
    )
    first = night(tmp_path, inventory)["snapshot_id"]
    password = tmp_path / "keys" / "prod1" / ENV / "restic.password"
    escrow = tmp_path / "backups" / "prod1" / ENV / "restic.password.age"
    assert pyrage.decrypt(escrow.read_bytes(), [identity]) == password.read_bytes()  # the escrow copy
    in_bucket = s3_object(moto_server, bucket, f"prod1/{ENV}/restic.password.age")
    assert pyrage.decrypt(in_bucket, [identity]) == password.read_bytes()
    repo_dir = tmp_path / "backups" / "prod1" / ENV / "restic"
    before = {str(p.relative_to(repo_dir)): p.read_bytes() for p in repo_dir.rglob("*") if p.is_file()}

    script, out = host.home / "attack.py", host.home / "attack.json"
    script.write_text(ATTACKER)
    chown(host, script)
    attacker = subprocess.Popen(["runuser", "-u", host.user, "--", "python3", str(script), str(out)])
    try:
        second = night(tmp_path, inventory)["snapshot_id"]  # the frozen restic resumes and finishes
        assert attacker.wait(timeout=60) == 0
    finally:
        if attacker.poll() is None:
            attacker.kill()
            attacker.wait()
    codes = json.loads(out.read_text())
    assert any(k.startswith("DELETE /data/") for k in codes) and any(
        k.startswith("DELETE /keys/") for k in codes
    )
    assert set(codes.values()) == {403}, codes
    after = {str(p.relative_to(repo_dir)): p.read_bytes() for p in repo_dir.rglob("*") if p.is_file()}
    assert all(after.get(name) == data for name, data in before.items() if not name.startswith("locks/"))
    from maintkit.storage.local import LocalTarget

    repo = repository(LocalTarget("local", tmp_path / "backups"), f"prod1/{ENV}/restic", password)
    assert {s["tags"][0] for s in repo.snapshots()} == {f"maintkit-{first}", f"maintkit-{second}"}
    assert repo.check(read_data=True).returncode == 0


def test_prune_forgets_engine_debris_older_than_a_day_and_keeps_a_younger_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that failed after its backup and could not forget it leaves a tagged engine snapshot
    without manifest: prune forgets it after 24 h (a younger one may be a run still writing)."""
    from datetime import UTC, datetime

    from maintkit.storage.local import LocalTarget
    from maintkit.storage.operations import prune_target_with_engine
    from maintkit.storage.restic import ensure_password_file
    from maintkit.storage.retention import RetentionPolicy

    if subprocess.run(["sh", "-c", "command -v restic"], capture_output=True).returncode:
        skip_or_fail("restic is needed (apt-get install restic)")
    monkeypatch.setenv("MAINTKIT_KEYS_DIR", str(tmp_path / "keys"))
    target = LocalTarget("local", tmp_path / "backups")
    password = ensure_password_file(tmp_path / "keys" / "shop" / "prod" / "restic.password")
    repo = repository(target, "shop/prod/restic", password)
    repo.init_if_missing()
    data = tmp_path / "data"
    data.mkdir()
    (data / "f").write_bytes(os.urandom(200_000))
    for snapshot_id in ("20261101T000000Z", "20261205T040000Z"):
        subprocess.run(
            ["restic", "-r", repo.location, "--password-file", str(password), "backup", "-q",
             "--tag", f"maintkit-{snapshot_id}", str(data)],
            check=True, capture_output=True,
        )  # fmt: skip
    now = datetime(2026, 12, 5, 5, 0, tzinfo=UTC)
    _keep, _prune, engine = prune_target_with_engine(
        target, "shop", "prod", RetentionPolicy(keep_last=1), now=now
    )
    assert engine.debris == ["maintkit-20261101T000000Z"] and engine.pruned
    assert [s["tags"] for s in repo.snapshots()] == [["maintkit-20261205T040000Z"]]
    assert repo.check(read_data=True).returncode == 0


def test_an_s3_first_target_is_served_to_the_host_with_the_control_nodes_credentials_only(
    tmp_path: Path, ssh_inventory: Path, moto_server: MotoServer, bucket: str, site: Path, host: SSHHost
) -> None:
    inventory = write_inventory(tmp_path, ssh_inventory, moto_server, bucket, files_engine="restic")
    data = yaml.safe_load(inventory.read_text())
    prod1 = data["all"]["children"]["production"]["hosts"]["prod1"]
    prod1["storage"].reverse()  # offsite (S3) first: rclone serves the bucket to the host
    inventory.write_text(yaml.safe_dump(data))
    expected = {k: v for k, v in tree(site).items() if not k.startswith("var/cache")}
    first = night(tmp_path, inventory)["snapshot_id"]
    (site / "pub" / "media" / "more.jpg").write_bytes(os.urandom(80_000))
    chown(host, site)
    second = night(tmp_path, inventory)["snapshot_id"]
    assert s3_bytes(moto_server, bucket, f"prod1/{ENV}/restic/data/") >= 2_900_000
    assert (
        json.loads(s3_object(moto_server, bucket, f"prod1/{ENV}/{second}/manifest.json"))["format_version"]
        == 2
    )

    from maintkit.storage.local import LocalTarget

    password = tmp_path / "keys" / "prod1" / ENV / "restic.password"
    s3 = S3Target("offsite", bucket, region="us-east-1", endpoint_url=moto_server.endpoint_url)
    for target in (s3, LocalTarget("local", tmp_path / "backups")):
        repo = repository(target, f"prod1/{ENV}/restic", password)
        assert {s["tags"][0] for s in repo.snapshots()} == {f"maintkit-{first}", f"maintkit-{second}"}
        [found] = repo.by_tag(f"maintkit-{first}")
        assert tree(repo.restore(str(found["id"]), tmp_path / f"restore-{target.name}")) == expected

    leaks = subprocess.run(
        ["grep", "-rlsF", "-e", FAKE_AWS_ENV["AWS_SECRET_ACCESS_KEY"], "-e", bucket,
         "-e", password.read_text().strip(), "-e", moto_server.endpoint_url, str(host.home)],
        capture_output=True, check=False,
    )  # fmt: skip
    assert leaks.stdout == b"", leaks.stdout
    verified = run_cli("snapshots", "verify", second, "-i", inventory, "--limit", "prod1", cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_the_dump_is_still_streamed_beside_the_restic_files_in_one_manifest(
    tmp_path: Path,
    ssh_inventory: Path,
    moto_server: MotoServer,
    bucket: str,
    site: Path,
    mariadb: MariaDBServer,
) -> None:
    database: dict[str, object] = {"name": SHOP_DB, "user": SHOP_USER, "password": SHOP_PASSWORD}
    database.update(host="127.0.0.1", port=mariadb.port)
    inventory = write_inventory(
        tmp_path, ssh_inventory, moto_server, bucket, files_engine="restic", database=database
    )
    snapshot_id = night(tmp_path, inventory)["snapshot_id"]
    written = manifest(tmp_path, snapshot_id)
    assert written["format_version"] == 2
    assert [a["name"] for a in written["artifacts"]] == ["db.sql.zst", "files.restic"]
    dump = tmp_path / "backups" / "prod1" / ENV / snapshot_id / "db.sql.zst"
    import hashlib

    assert written["artifacts"][0]["sha256"] == hashlib.sha256(dump.read_bytes()).hexdigest()
    assert s3_object(moto_server, bucket, f"prod1/{ENV}/{snapshot_id}/db.sql.zst") == dump.read_bytes()
    assert {t["name"] for t in written["database"]["tables"]} == set(mariadb.table_row_counts(SHOP_DB))
    verified = run_cli("snapshots", "verify", snapshot_id, "-i", inventory, "--limit", "prod1", cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    journal = "".join(p.read_text() for p in (tmp_path / "journal").glob("*.jsonl"))
    assert SHOP_PASSWORD not in journal


def test_a_night_reads_its_snapshot_and_its_retention_from_storage_not_through_restic(
    tmp_path: Path,
    ssh_inventory: Path,
    moto_server: MotoServer,
    bucket: str,
    site: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every restic run on the control node costs ~0.25 s (its lock wait, a process, an rclone for
    S3): the snapshot step reads back its snapshot, and the retention step the whole list, straight
    from each target (storage/resticread.py). A restic first on the control node's PATH logs each
    of its runs."""
    real = subprocess.run(["sh", "-c", "command -v restic"], capture_output=True, text=True).stdout.strip()
    wrapper = tmp_path / "bin" / "restic"
    wrapper.parent.mkdir()
    log = tmp_path / "restic-runs.log"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {real} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper.parent}:{os.environ['PATH']}")
    inventory = write_inventory(
        tmp_path, ssh_inventory, moto_server, bucket, files_engine="restic", retention={"keep_last": 1}
    )
    first = night(tmp_path, inventory)["snapshot_id"]
    log.write_text("")
    second = night(tmp_path, inventory)["snapshot_id"]
    runs = log.read_text().splitlines()
    listings = [line for line in runs if line.split(" --password-file ")[-1].split()[1:2] == ["snapshots"]]
    assert listings == [], runs  # neither target (the folder, S3) was listed by restic
    assert any(" forget " in f" {line} " for line in runs), runs  # keep_last 1: the first night goes
    remaining = [s["tags"] for s in repository_of(tmp_path).snapshots()]
    assert remaining == [[f"maintkit-{second}"]] and first != second


def repository_of(tmp_path: Path) -> Any:
    """The local target's repository of prod1, as the control node opens it."""
    from maintkit.storage.engine import existing_password
    from maintkit.storage.local import LocalTarget

    target = LocalTarget("local", tmp_path / "backups")
    return repository(target, f"prod1/{ENV}/restic", existing_password("prod1", ENV))
