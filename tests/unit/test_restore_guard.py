"""The production guard's identities: what counts as one server, one database, one folder; the
commands that ask a host (run by a real bash here); the copy's config rewritten by a real PHP; the
drill's markers; and a refusal's exit code."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from maintkit.jobs.restore import commands
from maintkit.jobs.restore.guard import identity_reasons
from maintkit.model.results import ActionResult, ExitCode, HostOutcome, RunOutcome, StepOutcome
from maintkit.sources.appconfig import config_host, read_db_config_snippet, write_db_config_command
from maintkit.sources.database import DatabaseSource
from maintkit.sources.identity import (
    DatabaseIdentity,
    FilesIdentity,
    SourceIdentity,
    database_identity_command,
    files_identity_command,
    folder_overlap,
    parse_database_identity,
    parse_files_identity,
    same_database,
    same_server,
)
from maintkit.storage.manifest import Manifest
from maintkit.transport.local import LocalTransport

PROD = DatabaseIdentity("shop", "db1", "/var/lib/mysql/", 3306, "/run/mysqld/mysqld.sock")


# -- one server, one database -----------------------------------------------------------------------


def test_a_server_is_its_hostname_and_datadir_however_it_was_reached() -> None:
    # the same server answers the same facts over the socket and over TCP to any of its addresses
    assert same_server(PROD, DatabaseIdentity("drill", "DB1", "/var/lib/mysql", 3306, ""))
    assert not same_server(PROD, DatabaseIdentity("shop", "db1", "/srv/mysql2", 3307))  # 2nd instance
    assert not same_server(PROD, DatabaseIdentity("shop", "db2", "/var/lib/mysql"))  # another machine


def test_server_uuids_decide_when_both_servers_have_one() -> None:
    a = DatabaseIdentity("shop", "db1", "/var/lib/mysql", server_uuid="u-1")
    assert same_server(a, DatabaseIdentity("shop", "other", "/x", server_uuid="u-1"))
    assert not same_server(a, DatabaseIdentity("shop", "db1", "/var/lib/mysql", server_uuid="u-2"))
    assert same_server(a, PROD)  # one without: hostname and datadir


def test_members_of_one_replication_cluster_are_one_server() -> None:
    node1 = DatabaseIdentity("shop", "galera1", "/var/lib/mysql", cluster="wsrep_cluster_state_uuid:c-9")
    node2 = DatabaseIdentity("shop", "galera2", "/var/lib/mysql", cluster="wsrep_cluster_state_uuid:c-9")
    assert same_database(node1, node2)
    out = "#identity\tgalera2\t3306\t\t/var/lib/mysql/\tshop\nwsrep_cluster_state_uuid\tc-9\n"
    assert parse_database_identity(out).cluster == "wsrep_cluster_state_uuid:c-9"
    empty = "#identity\th\t3306\t\t/d\tshop\ngroup_replication_group_name\t\n"
    assert parse_database_identity(empty).cluster == ""  # the plugin is there, no group configured


def test_database_names_compare_case_insensitively_the_safe_mistake() -> None:
    assert same_database(PROD, DatabaseIdentity("SHOP", "db1", "/var/lib/mysql"))
    assert not same_database(PROD, DatabaseIdentity("drill_shop", "db1", "/var/lib/mysql"))


def test_parsing_what_the_server_says() -> None:
    out = "#identity\tdb1\t3306\t\t/var/lib/mysql/\tshop\nserver_uuid\t5e1c-42\n"
    assert parse_database_identity(out) == DatabaseIdentity(
        "shop", "db1", "/var/lib/mysql/", 3306, "", "5e1c-42"
    )
    assert parse_database_identity("#identity\th\t0\t/s.sock\t/d\tx\n").server_uuid == ""  # MariaDB
    with pytest.raises(ValueError, match="did not describe itself"):
        parse_database_identity("")


def test_the_identity_command_carries_no_password() -> None:
    src = DatabaseSource.model_validate({"name": "shop", "user": "u", "password": "s3cret pw"})
    command, payload = database_identity_command(src)
    assert "s3cret" not in command and b"s3cret pw" in payload
    assert "@@hostname" in command and "server\\_uuid" in command


# -- one folder -----------------------------------------------------------------------------------------


def test_folders_collide_when_one_is_or_holds_the_other_on_one_machine() -> None:
    shop = FilesIdentity("m1", "/var/www/shop", "8:100")
    assert folder_overlap(FilesIdentity("m1", "/var/www/shop/"), shop) == "is"
    assert folder_overlap(FilesIdentity("m1", "/srv/bind", "8:100"), shop) == "is"  # a bind mount
    assert folder_overlap(FilesIdentity("m1", "/var/www/shop/drill"), shop) == "is inside"
    assert folder_overlap(FilesIdentity("m1", "/var/www"), shop) == "contains"
    assert folder_overlap(FilesIdentity("m1", "/var/www/shop2"), shop) is None
    assert folder_overlap(FilesIdentity("m2", "/var/www/shop"), shop) is None


def test_the_host_resolves_symlinks_and_roots_that_do_not_exist_yet(tmp_path: Path) -> None:
    (tmp_path / "shop").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "shop")
    transport = LocalTransport("here")

    def resolve(root: str) -> FilesIdentity:
        result = transport.run(files_identity_command(root), timeout=30)
        assert result.rc == 0, result.stderr
        return parse_files_identity(result.stdout)

    real = resolve(str(tmp_path / "shop"))
    assert real.real_path == str(tmp_path / "shop") and real.inode
    assert resolve(str(tmp_path / "link") + "/") == real
    new = resolve(str(tmp_path / "link" / "new folder" / "x"))
    assert new.real_path == str(tmp_path / "shop" / "new folder" / "x") and new.inode == ""
    assert folder_overlap(new, real) == "is inside"


# -- the reasons ------------------------------------------------------------------------------------------


def test_the_manifest_s_identity_names_both_sides() -> None:
    source = SourceIdentity(PROD, FilesIdentity("m1", "/var/www/shop"))
    target = DatabaseIdentity("SHOP", "db1", "/var/lib/mysql", 3306)
    [reason] = identity_reasons(target, None, source, ["shop"], "prod1 of production")
    assert reason.startswith("the target database SHOP on db1:3306 (datadir /var/lib/mysql)")
    assert "is the source's (prod1 of production: shop on db1:3306" in reason
    other = DatabaseIdentity("shop", "staging-db", "/var/lib/mysql", 3306)  # same name, another server
    assert identity_reasons(other, None, source, ["shop"], "prod1") == []
    [reason] = identity_reasons(None, FilesIdentity("m1", "/var/www/shop"), source, [], "prod1", "~/link")
    assert reason.startswith("the target folder ~/link (/var/www/shop on machine m1) is the source's")


def test_an_old_manifest_refuses_the_source_s_name_or_no_name_at_all() -> None:
    staging = DatabaseIdentity("shop", "staging-db", "/var/lib/mysql", 3306)
    [reason] = identity_reasons(staging, None, None, ["shop"], "prod1 of production")
    assert "cannot be shown to be another database" in reason and "take a new snapshot" in reason
    assert identity_reasons(DatabaseIdentity("drill_shop", "h", "/d"), None, None, ["shop"], "p") == []
    [reason] = identity_reasons(staging, None, None, [], "prod1 of production")
    assert "records neither the identity nor the name" in reason


def test_manifests_without_an_identity_still_load() -> None:
    old = {
        "format_version": 1,
        "snapshot_id": "20261122T031500Z",
        "site": "shop",
        "env": "production",
        "host": "prod1",
        "run_id": "r",
        "tool_version": "0.1",
        "created": "2026-11-22T03:15:00Z",
        "finished": "2026-11-22T03:16:00Z",
    }
    assert Manifest.from_json(json.dumps(old)).identity is None
    manifest = Manifest.from_json(json.dumps(old))
    manifest.identity = SourceIdentity(PROD, FilesIdentity("m1", "/var/www/shop", "8:1"))
    assert Manifest.from_json(manifest.to_json()).identity == manifest.identity


# -- exit 2 for a refusal ------------------------------------------------------------------------------


def _step(status: str, refused: bool = False, section: str = "steps") -> StepOutcome:
    result = ActionResult(failed=status == "failed", refused=refused)
    return StepOutcome("s", "restore", section, status, result)  # type: ignore[arg-type]


def test_a_run_whose_only_failures_are_refusals_before_any_write_exits_2() -> None:
    refused = HostOutcome("a", [_step("failed", refused=True), _step("skipped", section="always")], "s")
    refused.started = True
    ok = HostOutcome("b", [_step("ok")], started=True)
    assert RunOutcome("r", [refused, ok]).exit_code == ExitCode.INVALID_INPUT == 2
    changed = HostOutcome("c", [_step("changed")], started=True)
    assert RunOutcome("r", [refused, changed]).exit_code == 1  # something was written somewhere
    failed = HostOutcome("d", [_step("failed")], "s", started=True)
    assert RunOutcome("r", [refused, failed]).exit_code == 1
    assert RunOutcome("r", [refused], interrupted=True).exit_code == 1


# -- the copy's config and the drill's markers ------------------------------------------------------


def test_how_each_application_spells_a_server() -> None:
    assert config_host("magento", "127.0.0.1", 3307, None) == ("127.0.0.1:3307", "")
    assert config_host("wordpress", "::1", 3306, None) == ("[::1]:3306", "")
    assert config_host("prestashop", "db", 3306, None) == ("db", "3306")
    assert config_host("magento", "localhost", 3306, "/run/my.sock") == ("/run/my.sock", "")
    assert config_host("wordpress", "localhost", 3306, "/run/my.sock") == ("localhost:/run/my.sock", "")
    assert config_host("prestashop", "localhost", 3306, None) == ("localhost", "")


WP_CONFIG = """<?php
define( 'DB_NAME', getenv('DB') ?: 'shop' );
define('DB_USER', "u(,)");  // production's
define( 'DB_PASSWORD', 'p' );
define( 'DB_HOST', 'prod-db' );
$table_prefix = 'wp_';
require_once ABSPATH . 'wp-settings.php';
"""


@pytest.mark.skipif(shutil.which("php") is None, reason="php is not installed")
def test_the_copy_s_wp_config_is_pointed_at_the_target_and_reads_back(tmp_path: Path) -> None:
    (tmp_path / "wp-config.php").write_text(WP_CONFIG)
    os.chmod(tmp_path / "wp-config.php", 0o640)
    secret = "pa$$ 'w\"x"
    host, port = config_host("wordpress", "127.0.0.1", 3307, None)
    settings = {"host": host, "port": port, "name": "drill_wp", "user": "drill", "password": secret}
    command, payload = write_db_config_command("wordpress", str(tmp_path), settings)
    assert secret not in command
    transport = LocalTransport("here")
    result = transport.run(command, stdin=payload, timeout=30)
    assert result.rc == 0, result.stderr
    text = (tmp_path / "wp-config.php").read_text()
    assert "$table_prefix = 'wp_';" in text and "// production's" in text and "prod-db" not in text
    assert oct((tmp_path / "wp-config.php").stat().st_mode & 0o777) == "0o640"
    read = "f=$(mktemp)\n" + read_db_config_snippet("wordpress", str(tmp_path)) + '\necho "$db"; cat "$f"'
    out = subprocess.run(["bash", "-c", read], capture_output=True, text=True, check=True).stdout
    assert out.startswith("drill_wp\n") and 'user="drill"' in out and "port=3307" in out
    assert sorted(os.listdir(tmp_path)) == ["wp-config.php"]


@pytest.mark.skipif(shutil.which("php") is None, reason="php is not installed")
def test_a_config_that_defines_the_database_twice_is_not_guessed_at(tmp_path: Path) -> None:
    (tmp_path / "wp-config.php").write_text(WP_CONFIG + "define('DB_NAME', 'other');\n")
    settings = {"host": "h", "port": "", "name": "n", "user": "u", "password": "p"}
    command, payload = write_db_config_command("wordpress", str(tmp_path), settings)
    result = LocalTransport("here").run(command, stdin=payload, timeout=30)
    assert result.rc == 3 and "defines DB_NAME 2 times" in result.stderr
    assert (tmp_path / "wp-config.php").read_text().endswith("define('DB_NAME', 'other');\n")


def test_a_drill_s_cleanup_resets_only_a_root_carrying_its_marker(tmp_path: Path) -> None:
    root = tmp_path / "site"
    (root / "app" / "etc").mkdir(parents=True)
    (root / "app" / "etc" / "env.php").write_text("drill settings")
    (root / "index.php").write_text("someone else's")
    transport = LocalTransport("here")
    result = transport.run(commands.reset_command(str(root), ["app/etc/env.php"], "run-1"), timeout=30)
    assert result.rc == 0 and "maintkit:files=unmarked" in result.stderr
    assert (root / "index.php").exists()  # not this drill's: left alone
    (root / commands.MARKER_FILE).write_text("run-0\n")  # another run's copy
    transport.run(commands.reset_command(str(root), ["app/etc/env.php"], "run-1"), timeout=30)
    assert (root / "index.php").exists()
    (root / commands.MARKER_FILE).write_text("run-1\n")
    result = transport.run(commands.reset_command(str(root), ["app/etc/env.php"], "run-1"), timeout=30)
    assert result.rc == 0 and "maintkit:files=reset" in result.stderr
    assert sorted(os.listdir(root)) == ["app"]
