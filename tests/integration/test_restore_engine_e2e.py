"""``files_engine: restic`` from the nightly run to the restore and the drill, end to end (issue 16).

Real everything: ``maintkit run nightly-backup --env production`` over sshd (prod1) of a Magento
site whose database credentials the snapshot reads from the site's own ``app/etc/env.php``, into
TWO targets: a local folder (first: restic backs up into it through the append-only forward) and
moto's S3 server (second: ``restic copy`` gives the copy another engine id there). Three nights,
files added, changed, deleted, a mode and a symlink changed, rows added. Then, with the CLI in a
subprocess, the middle night is restored from EACH target (``--target``) and drilled, into
environments on stage1 whose folder and database do not exist yet: byte-identical tree (content,
modes, symlinks, file mtimes to restic's whole seconds) and the night's rows. Refused with exit 2:
a manifest whose tag or tree the repository does not hold. A damaged pack in the first target: the
restore names the other target and the command it prints works as printed.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from maintkit.jobs.restore.commands import MARKER_FILE
from maintkit.jobs.restore.sql import MARKER_TABLE
from maintkit.storage.config import targets_from_vars
from maintkit.storage.manifest import Manifest, write_manifest
from tests.integration.helpers import events, run_cli
from tests.integration.test_restic_engine import tree
from tests.integration.test_restore_drill import magento_env_php
from tests.mariadb import SHOP_DB, SHOP_PASSWORD, SHOP_USER, MariaDBServer, mariadb_fixture, seed_shop
from tests.s3server import AWS_ENV_TO_CLEAR, FAKE_AWS_ENV, FaultProxy, MotoServer
from tests.sshd import SSHHost, skip_or_fail

pytestmark = pytest.mark.integration

ENV, SITE = "production", "prod1"
COPY_DB, DRILL_DB = "drill_copy", "drill_drill"
COPY_USER, COPY_PASSWORD = "mk_copy", "copy pw 'q' $x"
NIGHTS = 3
MIDDLE = 1  # the night restored: index into the nights


def seed(server: MariaDBServer) -> None:
    seed_shop(server, products=200, customers=100, orders=150, bulk_bytes=32 * 1024)
    server.sql("CREATE TABLE mk_nights (night INT PRIMARY KEY, note VARCHAR(40)) ENGINE=InnoDB;", SHOP_DB)
    server.create_user(COPY_USER, COPY_PASSWORD)
    server.sql(f"GRANT ALL PRIVILEGES ON `drill\\_%`.* TO '{COPY_USER}'@'%';")


mariadb = mariadb_fixture("mariadb", scope="module", seed=seed)


@pytest.fixture(scope="module")
def aws_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Fake AWS credentials and this module's restic keys folder, for the CLI subprocesses."""
    keys = tmp_path_factory.mktemp("keys")
    names = [
        *FAKE_AWS_ENV,
        *AWS_ENV_TO_CLEAR,
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "MAINTKIT_KEYS_DIR",
    ]
    saved = {k: os.environ.get(k) for k in names}
    for name in AWS_ENV_TO_CLEAR:  # AWS_CA_BUNDLE among them: rclone 1.60 fails on it (S3 over HTTP)
        os.environ.pop(name, None)
    os.environ.update(FAKE_AWS_ENV)
    os.environ["AWS_CONFIG_FILE"] = os.environ["AWS_SHARED_CREDENTIALS_FILE"] = "/nonexistent"
    os.environ["MAINTKIT_KEYS_DIR"] = str(keys)
    yield keys
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def smoke_port(ssh_hosts: dict[str, SSHHost]) -> Iterator[int]:
    """HTTP on 127.0.0.1 serving stage1's ~/drillcopy: what the drill's smoke check reads."""
    handler = functools.partial(_Quiet, directory=str(Path(ssh_hosts["stage1"].home) / "drillcopy"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def chown(host: SSHHost, path: Path) -> None:
    subprocess.run(["chown", "-hR", f"{host.user}:{host.user}", str(path)], check=True)


def host_entry(h: SSHHost, **more: Any) -> dict[str, Any]:
    return {"ansible_host": h.address, "ansible_port": h.port, "ansible_user": h.user,
            "ansible_ssh_private_key_file": str(h.key_file), **more}  # fmt: skip


@pytest.fixture(scope="module")
def nights(
    tmp_path_factory: pytest.TempPathFactory,
    ssh_hosts: dict[str, SSHHost],
    known_hosts_file: Path,
    mariadb: MariaDBServer,
    moto_server: MotoServer,
    aws_env: Path,
    smoke_port: int,
) -> Iterator[dict[str, Any]]:
    """Three nightly runs of prod1 with files_engine restic into local + S3; what each night held."""
    for tool in ("restic", "rclone", "php"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode:
            skip_or_fail(f"{tool} is needed (apt-get install restic rclone php-cli)")
    import boto3

    work = tmp_path_factory.mktemp("engine-e2e")
    os.chmod(mariadb.workdir, 0o711)
    bucket = f"mk-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_server.endpoint_url, region_name="us-east-1").create_bucket(
        Bucket=bucket
    )
    prod1, stage1 = ssh_hosts["prod1"], ssh_hosts["stage1"]
    site = Path(prod1.home) / "site"
    subprocess.run(["rm", "-rf", str(site)], check=True)
    for name in ("copy", "drillcopy"):
        subprocess.run(["rm", "-rf", str(Path(stage1.home) / name)], check=True)
    (site / "app" / "etc").mkdir(parents=True)
    (site / "app" / "etc" / "env.php").write_bytes(
        magento_env_php(mariadb.port, SHOP_DB, SHOP_USER, SHOP_PASSWORD)
    )
    (site / "app" / "etc" / "env.php").chmod(0o600)
    media = site / "pub" / "media"
    media.mkdir(parents=True)
    for i in range(20):
        (media / f"img{i:02d}.jpg").write_bytes(os.urandom(60_000 + i * 1000))
    (site / "index.php").write_text("<?php echo 'welcome to the shop';\n")
    (site / "bin").mkdir()
    (site / "bin" / "magento").write_text("#!/bin/sh\necho hi\n")
    (site / "bin" / "magento").chmod(0o750)
    (site / "private").mkdir(mode=0o700)
    (site / "private" / "notes.txt").write_text("caf\u00e9 \U0001f600\n")
    (site / "var" / "cache").mkdir(parents=True)
    (site / "var" / "cache" / "mage--0").write_bytes(b"a cache entry: excluded by cms: magento\n")
    (site / "current").symlink_to("pub/media")
    os.utime(site / "bin" / "magento", (1_600_000_000, 1_600_000_000))
    chown(prod1, site)

    storage = [
        {"name": "local", "type": "local", "path": str(work / "backups")},
        {"name": "offsite", "type": "s3", "bucket": bucket, "region": "us-east-1",
         "endpoint_url": moto_server.endpoint_url},
    ]  # fmt: skip
    production = {"all": {"vars": {"known_hosts": str(known_hosts_file), "storage": storage},
                          "children": {ENV: {"hosts": {SITE: host_entry(
                              prod1, files_engine="restic",
                              database={"from": "magento", "root": "~/site"},
                              files={"root": "~/site", "cms": "magento"})}}}}}  # fmt: skip

    def target(name: str, root: str, database: str, **more: Any) -> dict[str, Any]:
        settings = {"name": database, "user": COPY_USER, "password": COPY_PASSWORD,
                    "host": "127.0.0.1", "port": mariadb.port}  # fmt: skip
        entry = host_entry(
            stage1, site=SITE, database=settings, files={"root": root, "cms": "magento"}, **more
        )
        return {"all": {"vars": {"known_hosts": str(known_hosts_file)},
                        "children": {name: {"hosts": {f"{name}1": entry}}}}}  # fmt: skip

    smoke = [{"name": "home page", "url": f"http://127.0.0.1:{smoke_port}/index.php", "contains": "welcome"}]
    (work / "inventories").mkdir()
    for name, data in {
        "production": production,
        "copy": target("copy", "~/copy", COPY_DB),
        "drill": target("drill", "~/drillcopy", DRILL_DB, smoke=smoke),
    }.items():
        (work / "inventories" / f"{name}.yml").write_text(yaml.safe_dump(data, sort_keys=False))

    ids: list[str] = []
    trees: list[dict[str, Any]] = []
    rows: list[dict[str, int]] = []
    for n in range(NIGHTS):
        if n == 1:  # added, changed, deleted, a mode changed
            (media / "new.jpg").write_bytes(os.urandom(40_000))
            (media / "img00.jpg").write_bytes(os.urandom(70_000))
            (media / "img01.jpg").unlink()
            (site / "bin" / "magento").chmod(0o700)
        if n == 2:  # renamed, a symlink changed, more deleted
            (media / "img02.jpg").rename(media / "renamed.jpg")
            (site / "current").unlink()
            (site / "current").symlink_to("bin")
            (site / "private" / "notes.txt").unlink()
        chown(prod1, site)
        mariadb.sql(f"INSERT INTO mk_nights VALUES ({n + 1}, 'night {n + 1}');", SHOP_DB)
        trees.append({k: v for k, v in tree(site).items() if not k.startswith("var/cache")})
        rows.append(mariadb.table_row_counts(SHOP_DB))
        result = run_cli(
            "run", "nightly-backup", "--env", ENV, "--journal-dir", work / "journal", cwd=work, timeout=300
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        snapshots = [
            e for e in events(work / "journal") if e["event"] == "step_end" and e.get("action") == "snapshot"
        ]
        [end] = [e for e in snapshots if e["data"]["snapshot_id"] not in ids]
        ids.append(end["data"]["snapshot_id"])
    targets = targets_from_vars(storage, work)
    copy_root, drill_root = Path(stage1.home) / "copy", Path(stage1.home) / "drillcopy"
    yield {
        "work": work, "ids": ids, "trees": trees, "rows": rows, "targets": targets, "bucket": bucket,
        "stage1": stage1, "copy_root": copy_root, "drill_root": drill_root,
        "repo": work / "backups" / SITE / ENV / "restic", "keys": aws_env,
    }  # fmt: skip
    subprocess.run(["rm", "-rf", str(site), str(copy_root), str(drill_root)], check=False)


@pytest.fixture
def fresh(nights: dict[str, Any], mariadb: MariaDBServer) -> dict[str, Any]:
    """Before each test: the target folders and databases do not exist."""
    for root in (nights["copy_root"], nights["drill_root"]):
        subprocess.run(["rm", "-rf", str(root)], check=True)
        for stale in root.parent.glob(f".{root.name}*"):
            subprocess.run(["rm", "-rf", str(stale)], check=True)
    for database in (COPY_DB, DRILL_DB):
        mariadb.drop_database(database)
        mariadb.drop_database(database + "_mkrestore")
    return nights


def cli(world: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, "--journal-dir", str(world["work"] / "journal"), cwd=world["work"], timeout=300)


def restore_args(snapshot: str, *more: str) -> list[str]:
    return [
        "restore",
        snapshot,
        "--env",
        ENV,
        "--into",
        "copy",
        "--create-database",
        "--definers",
        "current",
        *more,
    ]


def last_restore(world: dict[str, Any]) -> dict[str, Any]:
    ends = [
        e
        for e in events(world["work"] / "journal")
        if e["event"] == "step_end" and e.get("action") == "restore"
    ]
    data: dict[str, Any] = ends[-1]["data"]
    return data


def same_tree(restored: dict[str, Any], expected: dict[str, Any], *, drill: bool = False) -> None:
    """Content, kind and mode exactly; file mtimes to the second (restic dump's tar headers hold
    whole seconds, rounded); the copy's env.php is its own (it names the copy's database), and a
    drill's copy carries the drill's marker (what its cleanup looks for)."""
    skip = {"app/etc/env.php"}
    if drill:
        assert restored.pop(MARKER_FILE)[0] == "file"
    assert {p: v[:3] for p, v in restored.items() if p not in skip} == {
        p: v[:3] for p, v in expected.items() if p not in skip
    }
    late = [p for p in expected if p not in skip and abs(restored[p][3] - expected[p][3]) > 5 * 10**8]
    assert not late, late
    assert restored["app/etc/env.php"][1] == expected["app/etc/env.php"][1]  # its mode


def copy_config(root: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["php", "-r", "echo json_encode(include $argv[1]);", str(root / "app/etc/env.php")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    settings: dict[str, Any] = json.loads(out)["db"]["connection"]["default"]
    return settings


def test_the_nights_are_engine_snapshots_whose_copy_has_another_id_in_the_second_target(
    nights: dict[str, Any],
) -> None:
    local, offsite = nights["targets"]
    for snapshot_id in nights["ids"]:
        [artifact] = [a for a in _manifest(local, snapshot_id).artifacts if a.engine]
        assert artifact.engine_tag == f"maintkit-{snapshot_id}"
        assert _manifest(offsite, snapshot_id).to_json() == _manifest(local, snapshot_id).to_json()
    # what the restore must cope with: the S3 repository holds the same tags and trees under other ids
    from maintkit.storage.engine import repository

    password = nights["keys"] / SITE / ENV / "restic.password"
    first = {s["tags"][0]: s for s in repository(local, f"{SITE}/{ENV}/restic", password).snapshots()}
    second = {s["tags"][0]: s for s in repository(offsite, f"{SITE}/{ENV}/restic", password).snapshots()}
    assert first.keys() == second.keys() == {f"maintkit-{i}" for i in nights["ids"]}
    for tag, made in first.items():
        assert second[tag]["tree"] == made["tree"] and second[tag]["id"] != made["id"]
        assert second[tag]["original"] == made["id"]


@pytest.mark.parametrize("target", ["local", "offsite"])
def test_the_middle_night_restores_byte_identical_from_each_target_into_a_new_folder_and_database(
    fresh: dict[str, Any], mariadb: MariaDBServer, target: str
) -> None:
    world = fresh
    snapshot_id = world["ids"][MIDDLE]
    assert not world["copy_root"].exists() and COPY_DB not in _databases(mariadb)
    result = cli(world, *restore_args(snapshot_id, "--target", target))
    assert result.returncode == 0, result.stdout + result.stderr
    same_tree(tree(world["copy_root"]), world["trees"][MIDDLE])
    assert mariadb.table_row_counts(COPY_DB) == world["rows"][MIDDLE]
    assert mariadb.sql("SELECT night FROM mk_nights ORDER BY night;", COPY_DB) == [("1",), ("2",)]
    assert copy_config(world["copy_root"])["dbname"] == COPY_DB  # the copy names its own database
    data = last_restore(world)
    assert data["storage_target"] == target and data["files"]["engine"] == "restic"
    local = world["targets"][0]
    [artifact] = [a for a in _manifest(local, snapshot_id).artifacts if a.engine]
    # from the first target the manifest's id; from S3 the copy's own id, found by tag and tree
    assert (data["files"]["engine_snapshot"] == artifact.engine_snapshot) == (target == "local")
    assert f"in {target}: tag and tree are the manifest's" in json.dumps(data["phases"])


def test_a_drill_of_the_middle_night_from_s3_proves_it_into_a_new_folder_and_database(
    fresh: dict[str, Any], mariadb: MariaDBServer
) -> None:
    world = fresh
    snapshot_id = world["ids"][MIDDLE]
    result = cli(world, "drill", "--env", ENV, "--into", "drill", "--snapshot", snapshot_id,
                 "--target", "offsite", "--keep")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("report: "))
    report = json.loads(Path(line.removeprefix("report: ").replace(".html", ".json")).read_text())
    assert "drill passed" in result.stdout
    assert report["verdict"]["passed"] and report["verdict"]["causes"] == [], report["verdict"]
    [host] = report["hosts"]
    assert host["snapshot_id"] == snapshot_id and [c["ok"] for c in host["smoke"]] == [True]
    assert {"prepare", "import", "extract", "sync", "commit"} <= {p["name"] for p in host["phases"]}
    assert all(t["ok"] for t in host["tables"]) and len(host["tables"]) == len(world["rows"][MIDDLE])
    same_tree(tree(world["drill_root"]), world["trees"][MIDDLE], drill=True)
    assert mariadb.table_row_counts(DRILL_DB) == {**world["rows"][MIDDLE], MARKER_TABLE: 1}  # + its marker
    assert last_restore(world)["storage_target"] == "offsite"


@pytest.mark.parametrize("target", ["local", "offsite"])
@pytest.mark.parametrize("wrong", ["tree", "tag"])
def test_a_manifest_whose_tag_or_tree_the_repository_does_not_hold_is_refused(
    fresh: dict[str, Any], mariadb: MariaDBServer, wrong: str, target: str
) -> None:
    world = fresh
    base = _manifest(world["targets"][0], world["ids"][MIDDLE])
    crafted = Manifest.from_json(base.to_json())
    crafted.snapshot_id = f"{base.snapshot_id}-{wrong}"
    [artifact] = [a for a in crafted.artifacts if a.engine]
    other = next(a for a in _manifest(world["targets"][0], world["ids"][0]).artifacts if a.engine)
    if wrong == "tree":  # the middle night's tag, the first night's tree
        artifact.engine_tree = other.engine_tree
    else:  # a night the repository never held
        artifact.engine_tag = "maintkit-20200101T000000Z"
    for t in world["targets"]:  # the dump stays the middle night's (same key)
        write_manifest(t, crafted)
    result = cli(world, *restore_args(crafted.snapshot_id, "--target", target))
    assert result.returncode == 2, result.stdout + result.stderr
    said = result.stdout + result.stderr
    assert f"files.restic: the repository {SITE}/{ENV}/restic of target {target}: " in said
    if wrong == "tree":
        assert (
            f"the snapshot tagged maintkit-{base.snapshot_id} has tree {base_tree(base)[:12]}, "
            f"the manifest says {other.engine_tree[:12]}" in said
        )
    else:  # the manifest's snapshot (or its copy) is there, under another tag
        assert "is not the manifest's: it is not tagged maintkit-20200101T000000Z (tags: maintkit-" in said
    assert "(refusing to restore it)" in said
    assert not world["copy_root"].exists() and COPY_DB not in _databases(mariadb)


def test_a_damaged_pack_in_the_first_target_names_the_other_and_the_printed_command_restores(
    fresh: dict[str, Any], mariadb: MariaDBServer
) -> None:
    world = fresh
    snapshot_id = world["ids"][MIDDLE]
    packs = [p for p in (world["repo"] / "data").rglob("*") if p.is_file()]
    pack = max(packs, key=lambda p: p.stat().st_size)  # the first night's media: the middle night's too
    original = pack.read_bytes()
    damaged = bytearray(original)
    damaged[len(damaged) // 2] ^= 0xFF
    pack.chmod(0o600)
    pack.write_bytes(bytes(damaged))
    try:
        failed = cli(world, *restore_args(snapshot_id))
        assert failed.returncode == 1, failed.stdout + failed.stderr
        assert "files.restic: restic dump failed" in failed.stdout
        assert (
            f"snapshot {snapshot_id} is also in target offsite: restore from there with --target offsite"
            in (failed.stdout)
        )
        assert not world["copy_root"].exists()  # nothing committed, nothing left beside it
        assert not [p for p in world["copy_root"].parent.iterdir() if ".copy" in p.name]
        lines = failed.stderr.splitlines()
        index = next(i for i, line in enumerate(lines) if "the copy in target local is damaged" in line)
        command = lines[index + 1].strip()
        assert (
            command.startswith("maintkit restore ")
            and "--target offsite" in command
            and snapshot_id in command
        )

        # run as printed, by a shell, maintkit on the PATH as an installed one is
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "NO_COLOR": "1"}
        fixed = subprocess.run(
            command, shell=True, cwd=world["work"], capture_output=True, text=True, env=env, timeout=300
        )
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
        assert last_restore(world)["storage_target"] == "offsite"
        same_tree(tree(world["copy_root"]), world["trees"][MIDDLE])
        assert mariadb.table_row_counts(COPY_DB) == world["rows"][MIDDLE]
    finally:
        pack.write_bytes(original)


def base_tree(manifest: Manifest) -> str:
    return next(a for a in manifest.artifacts if a.engine).engine_tree


def _manifest(target: Any, snapshot_id: str) -> Manifest:
    return Manifest.from_json(target.get_bytes(f"{SITE}/{ENV}/{snapshot_id}/manifest.json"))


def _databases(mariadb: MariaDBServer) -> set[str]:
    return {row[0] for row in mariadb.sql("SHOW DATABASES;")}


def test_a_slow_engine_restore_shows_the_tree_s_bytes_rate_and_eta(
    fresh: dict[str, Any], mariadb: MariaDBServer, moto_server: MotoServer
) -> None:
    world = fresh
    snapshot_id = world["ids"][MIDDLE]
    expected_bytes = sum(len(v[2]) for v in world["trees"][MIDDLE].values() if v[0] == "file")
    # S3 behind a slow link: restic dump reads the middle night's ~1.3 MB of packs in ~10 s
    port = int(moto_server.endpoint_url.rsplit(":", 1)[1])
    with FaultProxy(port, down_rate=150_000) as proxy:
        source = yaml.safe_load((world["work"] / "inventories" / "production.yml").read_text())
        source["all"]["vars"]["storage"][1]["endpoint_url"] = proxy.endpoint_url
        slow = world["work"] / "slow"
        slow.mkdir(exist_ok=True)
        (slow / "production.yml").write_text(yaml.safe_dump(source))
        args = restore_args(snapshot_id, "--target", "offsite")  # with -i instead of --env
        result = cli(world, *args[:2], "-i", str(slow / "production.yml"), *args[4:])
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if "⇣ copy1 files.restic:" in line]
    shape = r"⇣ copy1 files\.restic: [\d.]+ [KMG]?i?B at [\d.]+ [KMG]?i?B/s, ETA \d+ s"
    assert lines and re.search(shape, lines[0]), result.stdout
    journal = events(world["work"] / "journal")
    progress = [e for e in journal if e["event"] == "progress" and e["artifact"] == "files.restic"]
    assert progress and all(0 < e["bytes"] < expected_bytes + 768 * 40 for e in progress)
    assert progress[0]["eta"] > 0 and progress[0]["rate"] > 0
    same_tree(tree(world["copy_root"]), world["trees"][MIDDLE])
