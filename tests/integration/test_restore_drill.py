"""Restore and restore drills end to end: real sshd hosts, a real MariaDB, S3 (moto's server over HTTP).

The source is ``prod1`` (environment ``production``): a seeded shop database and a site folder,
snapshotted once for the module by ``maintkit run nightly-backup`` into S3 (the first target, the
one restores read) and a local folder. The drill environment ``drill`` is ``stage1`` with its own
database (``drill_stage1``, its own MariaDB user) and its own ``app/etc/env.php``. Every failure
case works on a crafted copy of that snapshot (a flipped byte, a dump without a table, an archive
with ``../``...), stored beside it under its own id.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import os
import stat
import subprocess
import sys
import tarfile
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
import zstandard

from maintkit.jobs.restore.commands import MARKER_FILE
from maintkit.jobs.restore.sql import MARKER_TABLE
from maintkit.storage.config import targets_from_vars
from maintkit.storage.manifest import Manifest, write_manifest
from tests.integration.helpers import (
    PingReceiver,
    events,
    ping_receiver,
    run_cli,
    step_statuses,
    write_playbook,
)
from tests.mariadb import SHOP_DB, SHOP_PASSWORD, SHOP_USER, MariaDBServer, mariadb_fixture, seed_shop
from tests.s3server import FAKE_AWS_ENV, MotoServer
from tests.shop import php_string
from tests.sshd import SSHHost

pytestmark = pytest.mark.integration

DRILL_DB = "drill_stage1"
DRILL_USER = "mk_drill"
DRILL_PASSWORD = "drill pa$$ 'w0rd'"
SOURCE_URL = "https://shop.example.com/"
DRILL_URL = "http://drill.shop.test/"
SITE_FILES = {
    "index.php": b"<?php echo 'welcome to the shop';\n",
    "app/etc/env.php": b"<?php return ['db' => ['connection' => ['default' => ['dbname' => 'shop']]]];\n",
    "pub/media/catalog/mug.jpg": bytes(range(256)) * 400,
    "pub/media/name with spaces & 'quotes'.txt": "caf\u00e9 \U0001f600\n".encode(),
    "var/cache/mage--0": b"a cache entry: excluded by cms: magento\n",
}


def magento_env_php(port: int, dbname: str, user: str, password: str, host: str = "127.0.0.1") -> bytes:
    """A Magento ``app/etc/env.php`` naming a database (with a key the restore must leave alone)."""
    settings = {"host": f"{host}:{port}" if port else host, "dbname": dbname, "username": user}
    settings["password"] = password
    pairs = ", ".join(f"{php_string(k)} => {php_string(v)}" for k, v in settings.items())
    db = f"'db' => ['connection' => ['default' => [{pairs}]]]"
    return f"<?php return ['crypt' => ['key' => 'k'], {db}];\n".encode()


def seed(server: MariaDBServer) -> None:
    """The shop, plus Magento's core_config_data (base URLs to rewrite) and the drill's own user."""
    seed_shop(server, products=500, customers=250, orders=400, bulk_bytes=128 * 1024)
    server.sql(
        "CREATE TABLE core_config_data (config_id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY, "
        "scope VARCHAR(8) NOT NULL DEFAULT 'default', scope_id INT NOT NULL DEFAULT 0, "
        "path VARCHAR(255) NOT NULL, value TEXT NULL) ENGINE=InnoDB;"
        "INSERT INTO core_config_data (path, value) VALUES "
        f"('web/unsecure/base_url', '{SOURCE_URL}'), ('web/secure/base_url', '{SOURCE_URL}'), "
        f"('web/secure/base_media_url', '{SOURCE_URL}media/'), "
        "('web/unsecure/base_static_url', '{{unsecure_base_url}}static/'), ('general/locale/code', 'fr_FR');",
        SHOP_DB,
    )
    server.create_user(DRILL_USER, DRILL_PASSWORD)
    server.sql(f"GRANT ALL PRIVILEGES ON `drill\\_%`.* TO '{DRILL_USER}'@'%';")


mariadb = mariadb_fixture("mariadb", scope="module", seed=seed)


# -- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def aws_env() -> Iterator[None]:
    """Fake credentials for this module (the CLI subprocesses inherit them); ~/.aws never read."""
    saved = {k: os.environ.get(k) for k in [*FAKE_AWS_ENV, "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"]}
    os.environ.update(FAKE_AWS_ENV)
    os.environ["AWS_CONFIG_FILE"] = os.environ["AWS_SHARED_CREDENTIALS_FILE"] = "/nonexistent"
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def s3(moto_server: MotoServer, aws_env: None) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=moto_server.endpoint_url, region_name="us-east-1")


@pytest.fixture(scope="module")
def smoke_server(ssh_hosts: dict[str, SSHHost]) -> Iterator[int]:
    """An HTTP server on 127.0.0.1 serving the drill copy (stage1's ~/shop): what the smoke checks hit."""
    root = Path(ssh_hosts["stage1"].home) / "shop"
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _write_tree(root: Path, files: dict[str, bytes], owner: str) -> None:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    subprocess.run(["chown", "-R", f"{owner}:{owner}", str(root)], check=True)


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory,
    ssh_hosts: dict[str, SSHHost],
    known_hosts_file: Path,
    mariadb: MariaDBServer,
    moto_server: MotoServer,
    s3: Any,
    smoke_server: int,
) -> Iterator[dict[str, Any]]:
    """Inventories for ``production`` (prod1) and ``drill`` (stage1), and one real snapshot of prod1."""
    work = tmp_path_factory.mktemp("restore")
    # the hosts' users may reach the server's socket (the folder is mkdtemp's 0700): the same server
    # spelled as a socket is what some tests need (nothing in the folder becomes readable)
    os.chmod(mariadb.workdir, 0o711)
    bucket = f"mk-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    prod1, stage1 = ssh_hosts["prod1"], ssh_hosts["stage1"]
    source_root = Path(prod1.home) / "shop"
    _write_tree(source_root, SITE_FILES, prod1.user)
    storage = [
        {
            "name": "offsite",
            "type": "s3",
            "bucket": bucket,
            "region": "us-east-1",
            "endpoint_url": moto_server.endpoint_url,
        },
        {"name": "local", "type": "local", "path": str(work / "backups")},
    ]

    def host(h: SSHHost, **more: Any) -> dict[str, Any]:
        return {
            "ansible_host": h.address,
            "ansible_port": h.port,
            "ansible_user": h.user,
            "ansible_ssh_private_key_file": str(h.key_file),
            **more,
        }

    production = {
        "all": {
            "vars": {"known_hosts": str(known_hosts_file), "storage": storage},
            "children": {
                "production": {
                    "hosts": {
                        "prod1": host(
                            prod1,
                            database={
                                "name": SHOP_DB,
                                "user": SHOP_USER,
                                "password": SHOP_PASSWORD,
                                "host": "127.0.0.1",
                                "port": mariadb.port,
                            },
                            files={"root": "~/shop", "cms": "magento"},
                        )
                    }
                }
            },
        }
    }
    drill_host = host(
        stage1,
        site="prod1",
        database={
            "name": DRILL_DB,
            "user": DRILL_USER,
            "password": DRILL_PASSWORD,
            "host": "127.0.0.1",
            "port": mariadb.port,
        },
        files={"root": "~/shop", "cms": "magento"},
        rewrite_urls={"app": "magento", "url": DRILL_URL},
        smoke=[
            {"name": "home page", "url": f"http://127.0.0.1:{smoke_server}/index.php", "contains": "welcome"},
            {"url": f"http://127.0.0.1:{smoke_server}/pub/media/catalog/mug.jpg"},
        ],
    )
    drill = {
        "all": {
            "vars": {"known_hosts": str(known_hosts_file)},
            "children": {"drill": {"hosts": {"drill1": drill_host}}},
        }
    }
    (work / "inventories").mkdir()
    (work / "inventories" / "production.yml").write_text(yaml.safe_dump(production, sort_keys=False))
    (work / "inventories" / "drill.yml").write_text(yaml.safe_dump(drill, sort_keys=False))

    backup = run_cli(
        "run", "nightly-backup", "--env", "production", "--journal-dir", work / "journal", cwd=work
    )
    assert backup.returncode == 0, backup.stdout + backup.stderr
    [snapshot_id] = sorted(p.name for p in (work / "backups" / "prod1" / "production").iterdir())
    targets = targets_from_vars(storage, work)
    manifest = Manifest.from_json(targets[0].get_bytes(f"prod1/production/{snapshot_id}/manifest.json"))
    yield {
        "work": work,
        "bucket": bucket,
        "snapshot_id": snapshot_id,
        "manifest": manifest,
        "targets": targets,
        "source_root": source_root,
        "drill_root": Path(stage1.home) / "shop",
        "drill_user": stage1.user,
        # the drill copy's own config, with its own credentials (as a real env.php has)
        "drill_env_php": magento_env_php(mariadb.port, DRILL_DB, DRILL_USER, DRILL_PASSWORD),
    }
    subprocess.run(["rm", "-rf", str(source_root), str(Path(stage1.home) / "shop")], check=False)


@pytest.fixture
def drill_env(world: dict[str, Any], mariadb: MariaDBServer) -> Iterator[dict[str, Any]]:
    """Before each test: stage1's ~/shop holds only the drill's env.php; the drill database is gone."""
    root = world["drill_root"]
    subprocess.run(["rm", "-rf", str(root)], check=True)
    _write_tree(root, {"app/etc/env.php": world["drill_env_php"]}, world["drill_user"])
    mariadb.drop_database(DRILL_DB)
    mariadb.drop_database(DRILL_DB + "_mkrestore")
    yield world


# -- helpers ----------------------------------------------------------------------------------------


def cli(world: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, "--journal-dir", str(world["work"] / "journal"), cwd=world["work"])


def drill(world: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return cli(world, "drill", "--env", "production", "--into", "drill", *args)


def run_id_of(result: subprocess.CompletedProcess[str]) -> str:
    line = next(x for x in result.stdout.splitlines() if x.startswith("report: "))
    return Path(line.removeprefix("report: ")).name.split(".")[0]


def report_of(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    line = next(x for x in result.stdout.splitlines() if x.startswith("report: "))
    html_path = Path(line.removeprefix("report: "))
    assert html_path.is_file()
    report: dict[str, Any] = json.loads(
        html_path.with_name(html_path.name.replace(".html", ".json")).read_text()
    )
    report["_html"] = html_path.read_text()
    return report


def tree(root: Path) -> dict[str, bytes]:
    """Relative path -> content of every file under ``root`` (symlinks as their target)."""
    out: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            out[str(path.relative_to(root))] = os.readlink(path).encode()
        elif stat.S_ISREG(path.lstat().st_mode):
            out[str(path.relative_to(root))] = path.read_bytes()
    return out


def craft(world: dict[str, Any], suffix: str, **artifacts: bytes) -> str:
    """Store a copy of the real snapshot under ``ID-suffix`` in S3 with some artifacts replaced (their
    manifest entries updated, so only what the test changed is wrong); return the new id."""
    base: Manifest = world["manifest"]
    new_id = f"{base.snapshot_id}-{suffix}"
    manifest = Manifest.from_json(base.to_json())
    manifest.snapshot_id = new_id
    s3_target = world["targets"][0]
    for artifact in manifest.artifacts:
        data = artifacts.get(artifact.name.split(".")[0]) or s3_target.get_bytes(artifact.key)
        artifact.key = f"prod1/production/{new_id}/{artifact.name}"
        artifact.size, artifact.sha256 = len(data), hashlib.sha256(data).hexdigest()
        s3_target.put_bytes(artifact.key, data)
    write_manifest(s3_target, manifest)
    return new_id


def zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)


def tar_of(members: list[tuple[str, bytes | None]]) -> bytes:
    """A tar holding (name, content) files, or directories when content is None."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                archive.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def sentinel(mariadb: MariaDBServer) -> None:
    """The drill database holds something a failed restore must not touch."""
    mariadb.create_database(DRILL_DB, owner=DRILL_USER)
    mariadb.sql("CREATE TABLE sentinel (id INT PRIMARY KEY); INSERT INTO sentinel VALUES (1), (2);", DRILL_DB)


def assert_untouched(mariadb: MariaDBServer, world: dict[str, Any]) -> None:
    assert mariadb.table_row_counts(DRILL_DB) == {"sentinel": 2}
    assert not mariadb.sql(f"SHOW DATABASES LIKE '{DRILL_DB}\\_mkrestore'")
    assert tree(world["drill_root"]) == {"app/etc/env.php": world["drill_env_php"]}
    leftovers = [p.name for p in world["drill_root"].parent.iterdir() if ".mkrestore." in p.name]
    assert leftovers == []


# -- the drill --------------------------------------------------------------------------------------


def test_drill_restores_identical_rows_checksums_and_files(
    drill_env: dict[str, Any], mariadb: MariaDBServer
) -> None:
    world = drill_env
    result = drill(world, "--keep", "--rto", "120")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "drill passed" in result.stdout
    report = report_of(result)
    assert report["verdict"]["passed"] and report["verdict"]["causes"] == []
    [host] = report["hosts"]
    assert host["snapshot_id"] == world["snapshot_id"]
    names = {p["name"] for p in host["phases"]}
    assert names == {
        "prepare",
        "download",
        "decrypt",
        "decompress",
        "import",
        "verify",
        "extract",
        "sync",
        "commit",
    } | {"smoke"}
    assert set(host["phase_totals"]) == names
    # the database and the files staged at the same time: the two streams' intervals overlap
    spans = {
        p["name"]: (datetime.fromisoformat(p["started"]).timestamp(), p["seconds"])
        for p in host["phases"]
        if p["name"] in ("import", "extract")
    }
    (imported, import_s), (extracted, extract_s) = spans["import"], spans["extract"]
    assert extracted < imported + import_s and imported < extracted + extract_s, spans
    assert 0 < report["rto_seconds"] < 120 and host["data_loss_window_seconds"] > 0
    assert [c["ok"] for c in host["smoke"]] == [True, True]
    page = report["_html"]  # self-contained: no script, no external resource
    assert "<svg" in page and "PASSED" in page and not any(x in page for x in ("<script", "src=", "href="))

    # every table of the dump, with the rows the source holds; same checksums and schema objects;
    # plus the drill's marker (its run id), which its cleanup looks for
    run_id = run_id_of(result)
    assert mariadb.sql(f"SELECT run_id FROM {MARKER_TABLE};", DRILL_DB) == [(run_id,)]
    source_rows = mariadb.table_row_counts(SHOP_DB)
    assert {t["name"]: t["restored_rows"] for t in host["tables"]} == source_rows
    assert {t["name"]: t["manifest_rows"] for t in host["tables"]} == source_rows
    assert mariadb.table_row_counts(DRILL_DB) == {**source_rows, MARKER_TABLE: 1}
    source_sums = mariadb.checksum_tables(SHOP_DB)
    drill_sums = mariadb.checksum_tables(DRILL_DB)
    drill_sums.pop(MARKER_TABLE)
    assert drill_sums.pop("core_config_data") != source_sums.pop("core_config_data")  # rewritten below
    assert drill_sums == source_sums
    assert mariadb.schema_objects(DRILL_DB) == mariadb.schema_objects(SHOP_DB)
    assert mariadb.sql("SELECT price_with_tax(100, 0.2);", DRILL_DB) == [("120.000000",)]
    urls = dict(mariadb.sql("SELECT path, value FROM core_config_data ORDER BY path;", DRILL_DB))
    assert urls["web/unsecure/base_url"] == urls["web/secure/base_url"] == DRILL_URL
    assert urls["web/secure/base_media_url"] == "http://drill.shop.test/media/"
    assert urls["web/unsecure/base_static_url"] == "{{unsecure_base_url}}static/"
    assert not mariadb.sql(f"SHOW DATABASES LIKE '{DRILL_DB}\\_mkrestore'")

    # the files, byte for byte, minus Magento's caches; the drill's own env.php kept (and proven
    # before and after the commit to lead to the drill database); the drill's marker file
    expected = {k: v for k, v in SITE_FILES.items() if not k.startswith("var/cache")}
    expected["app/etc/env.php"] = world["drill_env_php"]
    expected[MARKER_FILE] = f"{run_id}\n".encode()
    assert tree(world["drill_root"]) == expected
    config = host["restore"]["config"]
    assert config["how"] == "kept" and config["database"] == DRILL_DB
    assert config["proven"] == ["before the commit", "after the commit"]
    assert [p.name for p in world["drill_root"].parent.iterdir() if ".mk" in p.name] == []

    # no password in any output, journal or report (the source's never even reached the run)
    written = "".join(p.read_text() for p in (world["work"] / "journal").iterdir())
    for password in (DRILL_PASSWORD, SHOP_PASSWORD):
        assert password not in written + result.stdout + result.stderr

    # without --keep the drill cleans up: the database it created is dropped, the files reset
    result = drill(world)
    assert result.returncode == 0, result.stdout + result.stderr
    assert report_of(result)["hosts"][0]["cleanup"]["status"] == "done"
    assert mariadb.table_row_counts(DRILL_DB) == {}
    assert tree(world["drill_root"]) == {"app/etc/env.php": world["drill_env_php"]}


def test_rto_smaller_than_the_measured_time_fails_the_drill(drill_env: dict[str, Any]) -> None:
    result = drill(drill_env, "--rto", "0.01")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "took longer than the RTO" in result.stderr and "the objective is 0.01 s" in result.stderr
    report = report_of(result)
    assert [c["cause"] for c in report["verdict"]["causes"]] == ["rto"]
    assert report["hosts"][0]["restore"]["status"] == "changed"  # everything else passed
    assert "FAILED" in report["_html"]


def test_a_flipped_byte_in_the_bucket_fails_before_import_naming_the_artifact(
    drill_env: dict[str, Any], mariadb: MariaDBServer, s3: Any
) -> None:
    world = drill_env
    key = f"prod1/production/{world['snapshot_id']}/db.sql.zst"
    data = bytearray(s3.get_object(Bucket=world["bucket"], Key=key)["Body"].read())
    new_id = craft(world, "flipped")
    data[len(data) // 2] ^= 0x01
    s3.put_object(Bucket=world["bucket"], Key=f"prod1/production/{new_id}/db.sql.zst", Body=bytes(data))
    sentinel(mariadb)

    result = drill(world, "--snapshot", new_id, "--keep")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "snapshot integrity check failed" in result.stderr and "db.sql.zst" in result.stderr
    report = report_of(result)
    assert [c["cause"] for c in report["verdict"]["causes"]] == ["integrity"]
    assert report["hosts"][0]["restore"]["artifact"] == "db.sql.zst"
    assert not report["hosts"][0]["restore"]["committed"]
    assert_untouched(mariadb, world)


def test_a_missing_table_is_detected_and_named(drill_env: dict[str, Any], mariadb: MariaDBServer) -> None:
    # a dump made without one table; the manifest still lists it (as a dump that lost it would)
    dump = subprocess.run(
        [
            "mariadb-dump",
            f"--defaults-file={mariadb.defaults_file()}",
            "--single-transaction",
            "--routines",
            "--triggers",
            "--hex-blob",
            f"--ignore-table={SHOP_DB}.sales_order_item",
            SHOP_DB,
        ],
        capture_output=True,
        check=True,
    ).stdout
    new_id = craft(drill_env, "notable", db=zstd(dump))
    result = drill(drill_env, "--snapshot", new_id, "--keep")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "tables missing or incomplete" in result.stderr
    assert "sales_order_item: listed in the manifest but not in the dump" in result.stderr
    report = report_of(result)
    [bad] = [t for t in report["hosts"][0]["tables"] if not t["ok"]]
    assert bad["name"] == "sales_order_item" and bad["dump_rows"] is None
    assert mariadb.sql(f"SHOW DATABASES LIKE '{DRILL_DB}'") == []  # nothing committed, nothing created


def test_the_drill_refuses_production(drill_env: dict[str, Any]) -> None:
    world = drill_env
    result = cli(world, "drill", "--env", "production", "--into", "production")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "its environment is named 'production'" in result.stderr and "nothing ran" in result.stderr

    # a drill host whose database is the source's (same server, same name)
    inventory = yaml.safe_load((world["work"] / "inventories" / "drill.yml").read_text())
    drill1 = inventory["all"]["children"]["drill"]["hosts"]["drill1"]
    drill1["database"] = {**drill1["database"], "name": SHOP_DB}
    (world["work"] / "inventories" / "danger.yml").write_text(yaml.safe_dump(inventory))
    result = cli(world, "drill", "--env", "production", "--into", "danger")
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"its database is prod1's ({SHOP_DB} on 127.0.0.1)" in result.stderr


# -- restore ------------------------------------------------------------------------------------------


def restore(
    world: dict[str, Any], snapshot: str, *args: str, into: str = "drill"
) -> subprocess.CompletedProcess[str]:
    # the drill database's own user may not create objects DEFINER=shop: they become its own
    return cli(
        world,
        "restore",
        snapshot,
        "--env",
        "production",
        "--into",
        into,
        "--create-database",
        "--var",
        "definers=current",
        *args,
    )


def test_a_non_empty_database_is_refused_without_force(
    drill_env: dict[str, Any], mariadb: MariaDBServer
) -> None:
    sentinel(mariadb)
    result = restore(drill_env, "latest")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"database {DRILL_DB} is not empty" in result.stdout and "--force" in result.stdout
    assert_untouched(mariadb, drill_env)


def test_a_failed_extraction_leaves_the_previous_files_and_database(
    drill_env: dict[str, Any], mariadb: MariaDBServer
) -> None:
    # a safe archive the host cannot extract: a file, then a file "inside" it
    archive = tar_of([("./", None), ("./index.php", b"x"), ("./index.php/inside", b"y")])
    new_id = craft(drill_env, "badtar", files=zstd(archive))
    sentinel(mariadb)
    result = restore(drill_env, new_id, "--force")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "extracting the files failed" in result.stdout and "Not a directory" in result.stdout
    assert_untouched(mariadb, drill_env)  # the database staged fine, but nothing was committed


def test_a_tar_with_dotdot_members_is_refused(
    drill_env: dict[str, Any], mariadb: MariaDBServer, ssh_hosts: dict[str, SSHHost]
) -> None:
    archive = tar_of([("./", None), ("./index.php", b"x"), ("../escaped.txt", b"pwned")])
    new_id = craft(drill_env, "dotdot", files=zstd(archive))
    sentinel(mariadb)
    result = restore(drill_env, new_id, "--force")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "'../escaped.txt' would be written outside the restore root" in result.stdout
    assert not (Path(ssh_hosts["stage1"].home) / "escaped.txt").exists()
    assert_untouched(mariadb, drill_env)


def test_a_drill_reads_its_database_settings_from_the_drill_copys_env_php(
    drill_env: dict[str, Any], mariadb: MariaDBServer
) -> None:
    world = drill_env
    settings = {
        "host": f"127.0.0.1:{mariadb.port}",
        "dbname": DRILL_DB,
        "username": DRILL_USER,
        "password": DRILL_PASSWORD,
    }
    pairs = ", ".join(f"{php_string(k)} => {php_string(v)}" for k, v in settings.items())
    env_php = f"<?php return ['db' => ['connection' => ['default' => [{pairs}]]]];\n"
    _write_tree(world["drill_root"], {"app/etc/env.php": env_php.encode()}, world["drill_user"])
    inventory = yaml.safe_load((world["work"] / "inventories" / "drill.yml").read_text())
    drill1 = inventory["all"]["children"]["drill"]["hosts"]["drill1"]
    drill1["database"] = {"from": "magento", "root": "~/shop"}
    (world["work"] / "inventories" / "drillapp.yml").write_text(yaml.safe_dump(inventory))

    result = cli(world, "drill", "--env", "production", "--into", "drillapp")
    assert result.returncode == 0, result.stdout + result.stderr
    tables = report_of(result)["hosts"][0]["tables"]
    assert {t["name"]: t["restored_rows"] for t in tables} == mariadb.table_row_counts(SHOP_DB)
    assert (world["drill_root"] / "app" / "etc" / "env.php").read_bytes() == env_php.encode()  # kept
    assert mariadb.sql(f"SHOW DATABASES LIKE '{DRILL_DB}'") == []  # created by the drill, dropped after it


def test_an_encrypted_snapshot_is_decrypted_on_the_control_node(
    drill_env: dict[str, Any], mariadb: MariaDBServer
) -> None:
    import pyrage

    world = drill_env
    identity = pyrage.x25519.Identity.generate()
    key = world["work"] / "backup-age.txt"
    key.write_text(f"{identity}\n")
    key.chmod(0o600)
    inventory = yaml.safe_load((world["work"] / "inventories" / "production.yml").read_text())
    inventory["all"]["vars"]["encryption"] = {
        "recipients": [str(identity.to_public())],
        "identity_file": "../backup-age.txt",  # relative to the inventory's folder
    }
    (world["work"] / "inventories" / "sealed.yml").write_text(yaml.safe_dump(inventory))
    backup = cli(world, "run", "nightly-backup", "--env", "sealed")
    assert backup.returncode == 0, backup.stdout + backup.stderr

    result = cli(world, "drill", "--env", "sealed", "--into", "drill", "--keep")
    assert result.returncode == 0, result.stdout + result.stderr
    host = report_of(result)["hosts"][0]
    decrypt = {p["artifact"]: p for p in host["phases"] if p["name"] == "decrypt"}
    assert set(decrypt) == {"db.sql.zst.age", "files.tar.zst.age"}
    assert (
        decrypt["db.sql.zst.age"]["seconds"] > 0
        and "age, on the control node" in decrypt["db.sql.zst.age"]["note"]
    )
    assert mariadb.table_row_counts(DRILL_DB) == {**mariadb.table_row_counts(SHOP_DB), MARKER_TABLE: 1}
    assert str(identity) not in "".join(p.read_text() for p in (world["work"] / "journal").iterdir())


def test_wordpress_urls_are_rewritten_with_the_table_prefix(mariadb: MariaDBServer) -> None:
    from maintkit.jobs.restore.sql import rewrite_urls_sql

    mariadb.drop_database("drill_wp")
    mariadb.create_database("drill_wp")
    try:
        mariadb.sql(
            "CREATE TABLE blog_options (option_id INT AUTO_INCREMENT PRIMARY KEY, option_name VARCHAR(191) "
            "UNIQUE, option_value LONGTEXT) COLLATE utf8mb4_unicode_520_ci;"
            "INSERT INTO blog_options (option_name, option_value) VALUES ('siteurl', 'https://blog.example'),"
            "('home', 'https://blog.example'), ('blogname', 'https://blog.example');",
            "drill_wp",
        )
        out = mariadb.sql(
            rewrite_urls_sql("drill_wp", "wordpress", "https://drill.blog.test/", table_prefix="blog_")
        )
        assert out == [("#rewritten", "siteurl/home", "2")]
        assert dict(mariadb.sql("SELECT option_name, option_value FROM blog_options;", "drill_wp")) == {
            "siteurl": "https://drill.blog.test",
            "home": "https://drill.blog.test",
            "blogname": "https://blog.example",
        }
    finally:
        mariadb.drop_database("drill_wp")


# -- production is never the target (the guard on the host, the copy's own config) -----------------


def target_inventory(world: dict[str, Any], name: str, on: str = "drill1", **settings: Any) -> dict[str, Any]:
    """Write ``inventories/NAME.yml``: the drill inventory with drill1's settings changed (``on="prod1"``
    puts drill1 on prod1's SSH server and login); return drill1's variables."""
    inventory = yaml.safe_load((world["work"] / "inventories" / "drill.yml").read_text())
    drill1 = inventory["all"]["children"]["drill"]["hosts"]["drill1"]
    if on == "prod1":
        production = yaml.safe_load((world["work"] / "inventories" / "production.yml").read_text())
        prod1 = production["all"]["children"]["production"]["hosts"]["prod1"]
        drill1.update({k: v for k, v in prod1.items() if k.startswith("ansible_")})
    drill1.update(settings)
    (world["work"] / "inventories" / f"{name}.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    return dict(drill1)


def production_state(mariadb: MariaDBServer, world: dict[str, Any]) -> tuple[Any, ...]:
    """Everything a harmful restore or cleanup would change in production."""
    return (mariadb.checksum_tables(SHOP_DB), mariadb.schema_objects(SHOP_DB), tree(world["source_root"]))


def databases(mariadb: MariaDBServer) -> set[str]:
    return {row[0] for row in mariadb.sql("SHOW DATABASES;")}


def test_the_snapshot_records_what_its_host_says_it_read(
    world: dict[str, Any], mariadb: MariaDBServer
) -> None:
    identity = world["manifest"].identity
    assert identity.database.name == SHOP_DB and identity.database.port == mariadb.port
    assert identity.database.datadir.rstrip("/") == str(mariadb.datadir)
    assert identity.files.real_path == str(world["source_root"]) and identity.files.inode
    assert identity.files.machine == Path("/etc/machine-id").read_text().strip()


def test_a_drill_whose_app_config_names_production_is_refused_before_any_write(
    drill_env: dict[str, Any], mariadb: MariaDBServer
) -> None:
    # the drill copy reads its credentials from its env.php, and that env.php is production's
    # (the shop's own user: ALL on `shop` only, no CREATE DATABASE, as hosting panels grant it)
    world = drill_env
    prod_env_php = magento_env_php(0, SHOP_DB, SHOP_USER, SHOP_PASSWORD, host=mariadb.socket)
    _write_tree(world["drill_root"], {"app/etc/env.php": prod_env_php}, world["drill_user"])
    target_inventory(world, "drillapp", database={"from": "magento", "root": "~/shop"})
    before, dbs = production_state(mariadb, world), databases(mariadb)

    result = cli(world, "drill", "--env", "production", "--into", "drillapp")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "refusing to drill into drill1: " in result.stderr
    assert "the target database shop on " in result.stderr
    assert "is the source's (prod1 of production: shop on " in result.stderr
    report = report_of(result)
    assert [c["cause"] for c in report["verdict"]["causes"]] == ["production"]
    assert report["hosts"][0]["cleanup"]["status"] == "not_needed"  # the cleanup never ran
    assert production_state(mariadb, world) == before and databases(mariadb) == dbs
    assert tree(world["drill_root"]) == {"app/etc/env.php": prod_env_php}
    journal = events(world["work"] / "journal")
    assert ("always", "clean the drill environment", "skipped") in step_statuses(journal, "drill1")


@pytest.mark.parametrize("spelling", ["socket", "localhost", "127.0.0.1"])
def test_a_restore_into_production_s_database_spelled_otherwise_is_refused(
    drill_env: dict[str, Any], mariadb: MariaDBServer, spelling: str
) -> None:
    # production's dump logged in over TCP to 127.0.0.1:PORT; the target names the same server
    # through the socket, or as localhost:PORT (TCP, protocol forced by the port... or the socket)
    world = drill_env
    database: dict[str, Any] = {"name": SHOP_DB, "user": SHOP_USER, "password": SHOP_PASSWORD}
    if spelling == "socket":
        database.update(host="localhost", socket=mariadb.socket)
    else:
        database.update(host=spelling, port=mariadb.port, socket=mariadb.socket)
    target_inventory(world, "copy", database=database, files={"root": "~/copy", "cms": "magento"})
    before = production_state(mariadb, world)

    result = cli(world, "restore", "latest", "--env", "production", "--into", "copy", "--force")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "refusing to restore into drill1: " in result.stdout
    assert "the target database shop on " in result.stdout
    assert "is the source's (prod1 of production: shop on " in result.stdout
    assert production_state(mariadb, world) == before
    assert f"{SHOP_DB}_mkrestore" not in databases(mariadb)
    assert not (Path(world["drill_root"]).parent / "copy").exists()


def test_a_restore_into_production_s_folder_through_a_symlink_is_refused(
    drill_env: dict[str, Any], mariadb: MariaDBServer
) -> None:
    # a second site instance on production's server and login, whose root is a symlink to the shop
    world = drill_env
    link = world["source_root"].parent / "shoplink"
    link.symlink_to(world["source_root"])
    try:
        target_inventory(world, "linked", on="prod1", files={"root": "~/shoplink", "cms": "magento"})
        before = production_state(mariadb, world)
        result = cli(
            world, "restore", "latest", "--env", "production", "--into", "linked", "--create-database"
        )
        assert result.returncode == 2, result.stdout + result.stderr
        assert f"the target folder ~/shoplink ({world['source_root']} on machine" in result.stdout
        assert "is the source's (prod1 of production:" in result.stdout
        assert production_state(mariadb, world) == before
        assert DRILL_DB not in databases(mariadb)  # refused before the database was created
    finally:
        link.unlink()


def test_a_drill_failing_before_it_staged_anything_runs_no_cleanup(
    drill_env: dict[str, Any], mariadb: MariaDBServer
) -> None:
    # a drill user as a host grants it: ALL on its own database, nothing on the staging database
    world = drill_env
    mariadb.create_user("mk_lowly", "lowly pw 1")
    mariadb.drop_database("lowly_drill")
    mariadb.create_database("lowly_drill", owner="mk_lowly")
    mariadb.sql("CREATE TABLE sentinel (id INT PRIMARY KEY); INSERT INTO sentinel VALUES (7);", "lowly_drill")
    database = {"name": "lowly_drill", "user": "mk_lowly", "password": "lowly pw 1", "host": "127.0.0.1"}
    target_inventory(world, "lowly", database={**database, "port": mariadb.port})
    before = production_state(mariadb, world)
    try:
        result = cli(world, "drill", "--env", "production", "--into", "lowly")
        assert result.returncode == 1, result.stdout + result.stderr
        assert "lowly_drill_mkrestore" in result.stderr  # the staging database it may not create
        report = report_of(result)
        assert report["hosts"][0]["cleanup"]["status"] == "not_needed"
        assert mariadb.table_row_counts("lowly_drill") == {"sentinel": 1}  # neither dropped nor emptied
        assert production_state(mariadb, world) == before
        assert tree(world["drill_root"]) == {"app/etc/env.php": world["drill_env_php"]}
    finally:
        mariadb.drop_database("lowly_drill")


def test_a_restore_into_a_new_folder_writes_the_target_s_database_into_the_copy_s_env_php(
    drill_env: dict[str, Any], mariadb: MariaDBServer
) -> None:
    world = drill_env
    root = Path(world["drill_root"]).parent / "fresh"
    subprocess.run(["rm", "-rf", str(root)], check=True)
    target_inventory(world, "fresh", files={"root": "~/fresh", "cms": "magento"})
    try:
        result = restore(world, "latest", into="fresh")
        assert result.returncode == 0, result.stdout + result.stderr
        settings = json.loads(
            subprocess.run(
                ["php", "-r", "echo json_encode(include $argv[1]);", str(root / "app/etc/env.php")],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        assert settings["db"]["connection"]["default"] == {
            "host": f"127.0.0.1:{mariadb.port}",
            "dbname": DRILL_DB,
            "username": DRILL_USER,
            "password": DRILL_PASSWORD,
        }
        assert mariadb.table_row_counts(DRILL_DB) == mariadb.table_row_counts(SHOP_DB)
        [restored] = [
            e
            for e in events(world["work"] / "journal")
            if e.get("step") == "restore the snapshot" and e["event"] == "step_end"
        ]
        config = restored["data"]["config"]
        assert config["how"] == "written" and config["database"] == DRILL_DB
        assert config["proven"] == ["before the commit", "after the commit"]
        assert (
            DRILL_PASSWORD
            not in (world["work"] / "journal").joinpath(f"{restored['run_id']}.jsonl").read_text()
        )
    finally:
        subprocess.run(["rm", "-rf", str(root)], check=True)


def test_a_target_reading_its_settings_from_a_config_it_does_not_have_is_refused_before_commit(
    drill_env: dict[str, Any], mariadb: MariaDBServer
) -> None:
    world = drill_env
    root = Path(world["drill_root"]).parent / "fresh"
    subprocess.run(["rm", "-rf", str(root)], check=True)
    target_inventory(
        world,
        "freshapp",
        database={"from": "magento", "root": "~/fresh"},
        files={"root": "~/fresh", "cms": "magento"},
    )
    before, dbs = production_state(mariadb, world), databases(mariadb)
    result = restore(world, "latest", into="freshapp")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "app/etc/env.php does not exist on drill1" in result.stdout
    assert not root.exists()  # nothing swapped in
    assert production_state(mariadb, world) == before and databases(mariadb) == dbs


def test_a_playbook_restore_step_with_a_foreign_source_is_refused(
    drill_env: dict[str, Any], mariadb: MariaDBServer
) -> None:
    from maintkit.config.inventory import load_inventory
    from maintkit.config.variables import host_vars
    from maintkit.jobs.restore.source import describe_source

    world = drill_env
    database = {"name": SHOP_DB, "user": SHOP_USER, "password": SHOP_PASSWORD, "socket": mariadb.socket}
    target_inventory(world, "mine", database=database, files={"root": "~/copy", "cms": "magento"})
    production = load_inventory("production", None, world["work"])
    source = describe_source(production, lambda host: host_vars(production, host))
    (world["work"] / "source.yml").write_text(yaml.safe_dump({"production_source": source}))
    book = {
        "name": "copy production",
        "steps": [
            {
                "name": "bring production's data",
                "restore": {
                    "source": "{{ production_source }}",
                    "database": "{{ database }}",
                    "files": "{{ files }}",
                    "force": True,
                    "create_database": True,
                },
            }
        ],
    }
    write_playbook(world["work"], book, "copy")
    before = production_state(mariadb, world)
    result = cli(world, "run", "copy.yml", "--env", "mine", "--vars-file", "source.yml")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "refusing to restore into drill1: " in result.stdout
    assert "the target database shop on " in result.stdout
    assert production_state(mariadb, world) == before


def test_a_drill_cleans_only_what_carries_its_marker(
    drill_env: dict[str, Any], mariadb: MariaDBServer
) -> None:
    # the drill database already holds data of someone else's; the restore stages, then fails its
    # table proof: the cleanup runs (something was staged) but leaves that database alone
    world = drill_env
    sentinel(mariadb)
    dump = subprocess.run(
        [
            "mariadb-dump",
            f"--defaults-file={mariadb.defaults_file()}",
            "--single-transaction",
            "--hex-blob",
            f"--ignore-table={SHOP_DB}.sales_order_item",
            SHOP_DB,
        ],
        capture_output=True,
        check=True,
    ).stdout
    new_id = craft(world, "nomarker", db=zstd(dump))
    result = drill(world, "--snapshot", new_id)
    assert result.returncode == 1, result.stdout + result.stderr
    cleanup = report_of(result)["hosts"][0]["cleanup"]
    assert (
        cleanup["status"] == "done"
        and "left alone (drill_stage1 holds no marker of this drill" in cleanup["msg"]
    )
    assert_untouched(mariadb, world)


def test_an_old_snapshot_without_identity_is_refused_by_database_name(
    drill_env: dict[str, Any], mariadb: MariaDBServer
) -> None:
    # a manifest written before identities were recorded: the database is known by its name only
    world = drill_env
    new_id = craft(world, "old")
    s3_target = world["targets"][0]
    manifest = Manifest.from_json(s3_target.get_bytes(f"prod1/production/{new_id}/manifest.json"))
    manifest.identity = None
    write_manifest(s3_target, manifest)
    database = {"name": SHOP_DB, "user": SHOP_USER, "password": SHOP_PASSWORD, "socket": mariadb.socket}
    target_inventory(world, "oldcopy", database=database, files={"root": "~/copy", "cms": "magento"})
    before = production_state(mariadb, world)
    result = cli(world, "restore", new_id, "--env", "production", "--into", "oldcopy", "--force")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "does not record its source database's server" in result.stdout
    assert production_state(mariadb, world) == before

    # another database name is shown different: the old snapshot still restores
    result = restore(world, new_id)
    assert result.returncode == 0, result.stdout + result.stderr
    assert mariadb.table_row_counts(DRILL_DB) == mariadb.table_row_counts(SHOP_DB)


def test_two_sites_of_one_drill_environment_on_one_server_user_are_guarded_one_by_one(
    drill_env: dict[str, Any], mariadb: MariaDBServer
) -> None:
    # drill1 (~/shop, its own database) is a good drill copy; drill2, on the same server and login,
    # reads its settings from ~/shop2/app/etc/env.php, which names production's database
    world = drill_env
    shop2 = Path(world["drill_root"]).parent / "shop2"
    prod_env_php = magento_env_php(mariadb.port, SHOP_DB, SHOP_USER, SHOP_PASSWORD)
    _write_tree(shop2, {"app/etc/env.php": prod_env_php}, world["drill_user"])
    inventory = yaml.safe_load((world["work"] / "inventories" / "drill.yml").read_text())
    hosts = inventory["all"]["children"]["drill"]["hosts"]
    hosts["drill2"] = {
        **hosts["drill1"],
        "database": {"from": "magento", "root": "~/shop2"},
        "files": {"root": "~/shop2", "cms": "magento"},
    }
    (world["work"] / "inventories" / "pair.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    before = production_state(mariadb, world)
    try:
        result = cli(world, "drill", "--env", "production", "--into", "pair")
        assert result.returncode == 1, result.stdout + result.stderr  # drill1 restored: not "nothing ran"
        by_host = {h["host"]: h for h in report_of(result)["hosts"]}
        assert by_host["drill1"]["restore"]["status"] == "changed"
        assert by_host["drill1"]["cleanup"]["status"] == "done"
        assert by_host["drill2"]["restore"]["cause"] == "production"
        assert by_host["drill2"]["cleanup"]["status"] == "not_needed"
        assert production_state(mariadb, world) == before
        assert tree(shop2) == {"app/etc/env.php": prod_env_php}
        assert tree(world["drill_root"]) == {"app/etc/env.php": world["drill_env_php"]}  # cleaned
    finally:
        subprocess.run(["rm", "-rf", str(shop2)], check=True)


WP_CONFIG = b"""<?php
define( 'DB_NAME', 'shop' );
define( 'DB_USER', 'shop' );
define( 'DB_PASSWORD', getenv('SHOP_DB_PASSWORD') ?: 'unused' );
define( 'DB_HOST', 'localhost' );
$table_prefix = 'wp_';
require_once ABSPATH . 'wp-settings.php';
"""
PS_PARAMETERS = b"""<?php return array('parameters' => array(
  'database_host' => 'localhost', 'database_port' => '', 'database_name' => 'shop',
  'database_user' => 'shop', 'database_password' => 'x', 'secret' => 's'));
"""


@pytest.mark.parametrize(
    ("cms", "config", "content"),
    [("wordpress", "wp-config.php", WP_CONFIG), ("prestashop", "app/config/parameters.php", PS_PARAMETERS)],
)
def test_a_restore_into_a_new_folder_points_wordpress_and_prestashop_configs_at_the_target(
    drill_env: dict[str, Any], mariadb: MariaDBServer, cms: str, config: str, content: bytes
) -> None:
    world = drill_env
    members: list[tuple[str, bytes | None]] = [("./", None), ("./index.php", b"<?php echo 'hi';\n")]
    members += [("./app/", None), ("./app/config/", None)] if "/" in config else []
    new_id = craft(world, cms, files=zstd(tar_of([*members, (f"./{config}", content)])))
    root = Path(world["drill_root"]).parent / "fresh"
    subprocess.run(["rm", "-rf", str(root)], check=True)
    target_inventory(world, "fresh", files={"root": "~/fresh", "cms": cms})
    try:
        result = restore(world, new_id, into="fresh")
        assert result.returncode == 0, result.stdout + result.stderr
        if cms == "wordpress":
            text = (root / config).read_text()
            assert f"define( 'DB_NAME', '{DRILL_DB}');" in text and "define( 'DB_USER', 'mk_drill');" in text
            assert f"define( 'DB_HOST', '127.0.0.1:{mariadb.port}');" in text and "getenv" not in text
            assert "$table_prefix = 'wp_';" in text  # the rest of the file as it was
        else:
            php = "echo json_encode((include $argv[1])['parameters']);"
            out = subprocess.run(["php", "-r", php, str(root / config)], capture_output=True, text=True)
            parameters = json.loads(out.stdout)
            assert parameters["database_name"] == DRILL_DB and parameters["database_user"] == DRILL_USER
            assert parameters["database_password"] == DRILL_PASSWORD and parameters["secret"] == "s"
            assert (parameters["database_host"], parameters["database_port"]) == (
                "127.0.0.1",
                str(mariadb.port),
            )
        journal = events(world["work"] / "journal")
        [restored] = [
            e for e in journal if e["event"] == "step_end" and e.get("step") == "restore the snapshot"
        ]
        assert restored["data"]["config"]["how"] == "written"
        assert restored["data"]["config"]["proven"] == ["before the commit", "after the commit"]
    finally:
        subprocess.run(["rm", "-rf", str(root)], check=True)


# -- the shared run machinery: --output json and monitoring for restore and drill ------------------------


@pytest.fixture
def healthcheck() -> Iterator[PingReceiver]:
    with ping_receiver("/ping/drill-uuid") as receiver:
        yield receiver


def json_lines(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    """stdout as JSON lines: every line must be one event (no text mixed in)."""
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_a_drill_with_output_json_prints_json_lines_and_pings_the_healthcheck(
    drill_env: dict[str, Any], healthcheck: PingReceiver
) -> None:
    result = drill(drill_env, "--output", "json", "--var", f"healthcheck={healthcheck.url}")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = json_lines(result)
    kinds = [e["event"] for e in lines]
    assert {"run_start", "run_end", "healthcheck_ping"} <= set(kinds)
    [report] = [e for e in lines if e["event"] == "drill_report"]
    assert report["passed"] is True and report["causes"] == []
    assert (
        Path(report["report"]).is_file() and json.loads(Path(report["json"]).read_text())["verdict"]["passed"]
    )
    assert healthcheck.paths == ["/ping/drill-uuid/start", "/ping/drill-uuid"]
    assert "drill-uuid" not in result.stdout + result.stderr  # healthcheck URLs are secrets
    # the report event is in the journal too
    journal = drill_env["work"] / "journal" / f"{lines[-1]['run_id']}.jsonl"
    assert "drill_report" in [json.loads(line)["event"] for line in journal.read_text().splitlines()]


def test_a_drill_that_misses_its_rto_pings_failure(
    drill_env: dict[str, Any], healthcheck: PingReceiver
) -> None:
    result = drill(drill_env, "--rto", "0.01", "--var", f"healthcheck={healthcheck.url}")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "took longer than the RTO" in result.stderr and "report: " in result.stdout
    assert healthcheck.paths == ["/ping/drill-uuid/start", "/ping/drill-uuid/fail"]


def test_a_restore_with_output_json_prints_json_lines_and_pings_the_healthcheck(
    drill_env: dict[str, Any], mariadb: MariaDBServer, healthcheck: PingReceiver
) -> None:
    result = restore(drill_env, "latest", "--output", "json", "--var", f"healthcheck={healthcheck.url}")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = json_lines(result)
    assert next(e for e in lines if e["event"] == "run_start")["playbook"] == "restore"
    [end] = [e for e in lines if e["event"] == "run_end"]
    assert end["exit_code"] == 0
    assert healthcheck.paths == ["/ping/drill-uuid/start", "/ping/drill-uuid"]
    assert mariadb.table_row_counts(DRILL_DB) == mariadb.table_row_counts(SHOP_DB)


def test_a_dump_whose_definers_the_user_may_not_set_names_the_flag_that_fixes_it(
    drill_env: dict[str, Any], mariadb: MariaDBServer
) -> None:
    world = drill_env
    base = ["restore", "latest", "--env", "production", "--into", "drill", "--create-database", "--force"]
    refused = cli(world, *base)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "restore with --definers current (definers: current in a playbook)" in refused.stdout
    fixed = cli(world, *base, "--definers", "current")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr


def test_a_drill_is_recorded_in_the_history_with_its_rto_and_data_loss_window(
    drill_env: dict[str, Any],
) -> None:
    from sqlalchemy import create_engine, select
    from sqlalchemy.orm import Session

    from maintkit.history.location import database_url
    from maintkit.history.models import Drill, Run

    result = drill(drill_env, "--rto", "120")
    assert result.returncode == 0, result.stdout + result.stderr
    report, run_id = report_of(result), run_id_of(result)
    engine = create_engine(database_url(drill_env["work"] / "journal", cwd=drill_env["work"]))
    with Session(engine) as session:
        run = session.get(Run, run_id)
        assert run is not None and (run.command, run.env, run.exit_code) == ("drill", "drill", 0)
        [row] = session.scalars(select(Drill).where(Drill.run_id == run_id)).all()
        [host] = report["hosts"]
        assert (row.site, row.env, row.drill_env, row.passed) == (host["site"], "production", "drill", True)
        assert row.snapshot_id == drill_env["snapshot_id"] and row.rto_objective_seconds == 120
        assert row.rto_seconds == report["rto_seconds"] > 0
        assert row.data_loss_window_seconds == host["data_loss_window_seconds"] > 0
    engine.dispose()


def test_the_monthly_report_shows_the_drill_against_its_objective(
    drill_env: dict[str, Any], smoke_server: int, tmp_path: Path
) -> None:
    """Real history (the module's nightly backup, this drill, a production smoke check) -> the report.

    ``MAINTKIT_REGENERATE_SAMPLE=1`` (``scripts/report-sample``) copies it to docs/report-sample.*.
    """
    from tests.integration.test_report import browser_layout

    world = drill_env
    work = world["work"]
    result = drill(world, "--keep", "--rto", "600")
    assert result.returncode == 0, result.stdout + result.stderr
    drill_run = run_id_of(result)
    url = f"http://127.0.0.1:{smoke_server}/index.php"
    book = write_playbook(
        tmp_path,
        {
            "name": "smoke",
            "hosts": "production",
            "steps": [{"smoke": [{"url": url, "contains": ["welcome"]}]}],
        },
    )
    smoke = cli(world, "run", str(book), "--env", "production")
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    portfolio = {
        "defaults": {"rpo_hours": 24, "rto_minutes": 10},
        "clients": {
            "acme": {
                "title": "ACME GmbH",
                "sites": {"acme-shop": {"environments": {"production": {"site": "prod1"}}}},
            }
        },
    }
    (work / "portfolio.yml").write_text(yaml.safe_dump(portfolio, sort_keys=False))
    period = datetime.now().astimezone().strftime("%Y-%m")
    out = tmp_path / "report"
    try:
        made = cli(world, "report", "--client", "acme", "--period", period, "--out", str(out))
    finally:
        (work / "portfolio.yml").unlink()
    assert made.returncode == 0, made.stdout + made.stderr
    stem = out / f"acme-{period}"
    site = json.loads(stem.with_suffix(".json").read_text())["sites"][0]
    [drilled] = [d for d in site["drills"] if d["run_id"] == drill_run]
    assert drilled["verdict"] == "passed" and 0 < drilled["rto_seconds"] < 600
    assert drilled["rto_objective_seconds"] == 600 and drilled["data_loss_window_seconds"] > 0
    assert drilled["snapshot_id"] == world["snapshot_id"]
    assert site["backups"]["taken"] >= 1 and world["snapshot_id"] in {
        s["id"] for s in site["backups"]["snapshots"]
    }
    assert site["availability"]["checks"] >= 1 and site["availability"]["percent"] == 100.0
    assert not any(a.startswith("No restore drill") for a in site["next_actions"])  # other tests fail some
    # the verify the report recommends, run as printed by a shell (maintkit on the PATH): it works
    [verify] = [a.split("`")[1] for a in site["next_actions"] if "were not verified" in a]
    assert verify == "maintkit snapshots verify --env production"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "NO_COLOR": "1"}
    checked = subprocess.run(
        verify, shell=True, cwd=world["work"], capture_output=True, text=True, env=env, timeout=120
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    text = subprocess.run(
        ["pdftotext", "-layout", str(stem.with_suffix(".pdf")), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Restore drills" in text and "passed" in text and drill_run in text
    layout, _console = browser_layout(stem.with_suffix(".html"), tmp_path / "shot.png", 794)
    assert layout["overflowing"] == 0 and layout["errors"] == []
    if os.environ.get("MAINTKIT_REGENERATE_SAMPLE"):
        docs = Path(__file__).resolve().parents[2] / "docs"
        for suffix in (".html", ".json", ".pdf"):
            (docs / f"report-sample{suffix}").write_bytes(stem.with_suffix(suffix).read_bytes())
        (docs / "report-sample.png").write_bytes((tmp_path / "shot.png").read_bytes())
