"""Restore and drill as an operator drives them: --target, a damaged copy's printed fallback command,
--check as a plan that contacts no host, and progress on a slow transfer.

The world (production's prod1 snapshotted into S3 ``offsite`` and a ``local`` folder, the drill
environment's stage1, one MariaDB) is test_restore_drill's, built again for this module.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from maintkit.storage.manifest import Manifest, write_manifest
from tests.integration import test_restore_drill as shared
from tests.integration.helpers import events, run_cli
from tests.integration.test_restore_drill import DRILL_DB, cli, craft, drill, sentinel, tar_of, zstd
from tests.mariadb import SHOP_DB, MariaDBServer
from tests.s3server import FaultProxy, MotoServer, free_port

pytestmark = pytest.mark.integration

# the shared world's fixtures, instantiated for this module
aws_env, s3, mariadb, smoke_server = shared.aws_env, shared.s3, shared.mariadb, shared.smoke_server
world, drill_env = shared.world, shared.drill_env


def copy_everywhere(world: dict[str, Any], suffix: str) -> str:
    """Store a copy of the real snapshot under ``ID-suffix`` in every target (S3 and the local
    folder), as a snapshot streamed to both is; return the new id."""
    base: Manifest = world["manifest"]
    new_id = f"{base.snapshot_id}-{suffix}"
    manifest = Manifest.from_json(base.to_json())
    manifest.snapshot_id = new_id
    data = {a.name: world["targets"][0].get_bytes(a.key) for a in base.artifacts}
    for artifact in manifest.artifacts:
        artifact.key = f"prod1/production/{new_id}/{artifact.name}"
        assert hashlib.sha256(data[artifact.name]).hexdigest() == artifact.sha256
    for target in world["targets"]:
        for artifact in manifest.artifacts:
            target.put_bytes(artifact.key, data[artifact.name])
        write_manifest(target, manifest)
    return new_id


def restore_args(snapshot: str, *more: str) -> list[str]:
    return [
        "restore",
        snapshot,
        "--env",
        "production",
        "--into",
        "drill",
        "--create-database",
        "--force",
        "--definers",
        "current",
        *more,
    ]


def restored_from(world: dict[str, Any]) -> str:
    """The storage target the newest run's restore step read (its journal)."""
    [end] = [
        e
        for e in events(world["work"] / "journal")
        if e["event"] == "step_end" and e.get("action") == "restore"
    ]
    return str(end["data"]["storage_target"])


def test_a_damaged_copy_names_the_other_target_and_the_printed_command_restores_from_it(
    drill_env: dict[str, Any], mariadb: MariaDBServer, s3: Any
) -> None:
    world = drill_env
    new_id = copy_everywhere(world, "twocopies")
    key = f"prod1/production/{new_id}/db.sql.zst"
    data = bytearray(s3.get_object(Bucket=world["bucket"], Key=key)["Body"].read())
    data[len(data) // 2] ^= 0x01  # the S3 copy is damaged; the local one is intact
    s3.put_object(Bucket=world["bucket"], Key=key, Body=bytes(data))
    sentinel(mariadb)

    failed = cli(world, *restore_args(new_id))
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "db.sql.zst: " in failed.stdout and "(nothing was committed)" in failed.stdout
    assert (
        f"snapshot {new_id} is also in target local: restore from there with --target local" in failed.stdout
    )
    assert mariadb.table_row_counts(DRILL_DB) == {"sentinel": 2}  # the failed restore left it intact
    lines = failed.stderr.splitlines()
    index = next(i for i, line in enumerate(lines) if "the copy in target offsite is damaged" in line)
    command = lines[index + 1].strip()
    assert command.startswith("maintkit restore ") and "--target local" in command
    assert new_id in command

    # a secret given on the command line stays masked in the printed command, which says so
    secret = "tok-5f1e2d3c4b5a"
    masked = cli(world, *restore_args(new_id, "--var", f"api_token={secret}"))
    assert masked.returncode == 1, masked.stdout + masked.stderr
    assert "with (secret values are masked: give them as you did):" in masked.stderr
    assert "api_token=***" in masked.stderr and secret not in masked.stdout + masked.stderr

    # the printed command, run as printed by a shell (maintkit on the PATH, as an installed one is)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "NO_COLOR": "1"}
    fixed = subprocess.run(
        command, shell=True, cwd=world["work"], capture_output=True, text=True, env=env, timeout=120
    )
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert restored_from(world) == "local"
    assert mariadb.table_row_counts(DRILL_DB) == mariadb.table_row_counts(SHOP_DB)


def test_a_drill_reads_the_target_it_is_given_and_an_unknown_one_names_the_known(
    drill_env: dict[str, Any],
) -> None:
    world = drill_env
    result = drill(world, "--target", "local")
    assert result.returncode == 0, result.stdout + result.stderr
    assert restored_from(world) == "local"

    unknown = drill(world, "--target", "tape")
    assert unknown.returncode == 1, unknown.stdout + unknown.stderr
    assert "no storage target named 'tape' for prod1/production (its targets: offsite, local; " in (
        unknown.stdout + unknown.stderr
    )
    assert "--target NAME picks one" in unknown.stdout + unknown.stderr


def test_restore_and_drill_check_print_a_plan_and_contact_no_host(drill_env: dict[str, Any]) -> None:
    world = drill_env
    # the drill host is unreachable: a plan that tried to connect would fail
    inventory = yaml.safe_load((world["work"] / "inventories" / "drill.yml").read_text())
    inventory["all"]["children"]["drill"]["hosts"]["drill1"]["ansible_port"] = free_port()
    (world["work"] / "inventories" / "unreachable.yml").write_text(yaml.safe_dump(inventory))

    base = ["--env", "production", "--into", "unreachable", "--check"]
    plan = cli(world, "restore", world["snapshot_id"], *base, "--target", "local", "--create-database")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    text = plan.stdout
    assert (
        f"read snapshot {world['snapshot_id']} of prod1/production from target local (local folder " in text
    )
    assert f"staging database beside {DRILL_DB} as mk_drill@127.0.0.1:" in text and "on drill1" in text
    assert "extract the files beside ~/shop on drill1" in text
    assert mariadb_untouched(world)

    drill_plan = cli(world, "drill", *base)
    assert drill_plan.returncode == 0, drill_plan.stdout + drill_plan.stderr
    assert "from target offsite (s3://" in drill_plan.stdout and ", else local (the first holding it)" in (
        drill_plan.stdout
    )
    assert "smoke checks against the drill copy" in drill_plan.stdout
    assert "report: " not in drill_plan.stdout  # a plan is not a drill: no report


def mariadb_untouched(world: dict[str, Any]) -> bool:
    """No restore ran into the drill copy (its folder holds only its own env.php)."""
    return [
        str(p.relative_to(world["drill_root"])) for p in world["drill_root"].rglob("*") if p.is_file()
    ] == ["app/etc/env.php"]


def test_a_slow_restore_shows_bytes_rate_and_eta(
    drill_env: dict[str, Any], moto_server: MotoServer, mariadb: MariaDBServer
) -> None:
    world = drill_env
    # a snapshot whose files archive is 2 MiB of incompressible media (8 chunks of the stream)
    big = os.urandom(2 * 2**20)
    archive = zstd(tar_of([("./", None), ("./index.php", b"<?php echo 1;"), ("./pub/media/big.bin", big)]))
    new_id = craft(world, "big", files=archive)
    # its S3 copy behind a slow link: about 8 s for the archive (progress comes every 5 s)
    port = int(moto_server.endpoint_url.rsplit(":", 1)[1])
    with FaultProxy(port, down_rate=len(archive) // 8) as proxy:
        source = yaml.safe_load((world["work"] / "inventories" / "production.yml").read_text())
        source["all"]["vars"]["storage"][0]["endpoint_url"] = proxy.endpoint_url
        slow = world["work"] / "slow"
        slow.mkdir(exist_ok=True)
        (slow / "production.yml").write_text(yaml.safe_dump(source))
        result = cli(
            world,
            *["restore", new_id, "-i", str(slow / "production.yml"), "--into", "drill"],
            *["--create-database", "--definers", "current"],
        )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if "⇣ drill1 files.tar.zst:" in line]
    shape = r"⇣ drill1 files\.tar\.zst: [\d.]+ [KMG]?i?B at [\d.]+ [KMG]?i?B/s, ETA \d+ s"
    assert lines and re.search(shape, lines[0]), result.stdout
    progress = [e for e in events(world["work"] / "journal") if e["event"] == "progress"]
    assert progress and all(0 < e["bytes"] < len(archive) for e in progress)
    assert progress[0]["eta"] > 0 and progress[0]["rate"] > 0
    assert (world["drill_root"] / "pub" / "media" / "big.bin").read_bytes() == big  # and it restored
    assert mariadb.table_row_counts(DRILL_DB) == mariadb.table_row_counts(SHOP_DB)


def test_an_unknown_snapshot_names_the_command_that_lists_them_and_the_flags(
    drill_env: dict[str, Any],
) -> None:
    world = drill_env
    result = cli(world, *restore_args("20200101T000000Z"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "no complete snapshot 20200101T000000Z of prod1/production in target offsite" in result.stdout
    hint = "(maintkit snapshots list --env production lists the complete ones: give one as SNAPSHOT"
    assert hint in result.stdout and "--snapshot ID to maintkit drill" in result.stdout
    listed = run_cli("snapshots", "list", "--env", "production", cwd=world["work"])  # as printed
    assert listed.returncode == 0 and world["snapshot_id"] in listed.stdout, listed.stdout + listed.stderr


def test_a_copy_whose_object_is_gone_names_the_other_target(
    drill_env: dict[str, Any], mariadb: MariaDBServer, s3: Any
) -> None:
    world = drill_env
    new_id = copy_everywhere(world, "gone")
    s3.delete_object(Bucket=world["bucket"], Key=f"prod1/production/{new_id}/files.tar.zst")
    failed = drill(world, "--snapshot", new_id)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert f"snapshot {new_id} is also in target local: restore from there with --target local" in (
        failed.stdout + failed.stderr
    )
    assert f"--snapshot {new_id}" in failed.stderr and "--target local" in failed.stderr
    assert mariadb.sql(f"SHOW DATABASES LIKE '{DRILL_DB}'") == []  # nothing committed, cleaned up
