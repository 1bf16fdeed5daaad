"""The restore's SQL text and host commands: built right, and (files commands) run by a real bash."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
import zstandard

from maintkit.cms.magento import origin
from maintkit.jobs.restore import commands, sql
from maintkit.jobs.restore.guard import marked_production, place_of, production_reasons
from maintkit.sources.database import DatabaseSource
from maintkit.transport.local import LocalTransport

PASSWORD = "s3cret 'pa$$'"


def source(**more: object) -> DatabaseSource:
    return DatabaseSource.model_validate({"name": "shop", "user": "u", "password": PASSWORD, **more})


# -- SQL ----------------------------------------------------------------------------------------------


def test_values_and_names_are_quoted_whatever_they_hold() -> None:
    assert sql.literal("a'b\\c") == "_utf8mb4 X'6127625c63'"
    assert sql.name("we`ird") == "`we``ird`"
    assert sql.staging_name("shop") == "shop_mkrestore"
    assert len(sql.staging_name("x" * 64)) == 64


def test_parsing_the_target_and_the_inspection() -> None:
    state = sql.parse_target(
        "#version\t10.11.19-MariaDB\n#database\tshop\n#schema\tutf8mb4\tutf8mb4_unicode_ci\n#objects\t12\n"
    )
    assert (state.database, state.exists, state.objects, state.collation) == (
        "shop",
        True,
        12,
        "utf8mb4_unicode_ci",
    )
    assert not sql.parse_target("#version\tx\n#database\tnew\n#objects\t0\n").exists
    staged = sql.parse_inspection(
        "#rows\tt1\t5\n#rows\ttab\\there\t0\n#s_table\tt1\n#s_view\tv\n#s_trigger\ttr\n#s_procedure\tp\n"
        "#t_table\told\n#t_event\te\n"
    )
    assert staged.rows == {"t1": 5, "tab\there": 0}
    assert (staged.staging.table, staged.staging.view, staged.staging.procedure) == (["t1"], ["v"], ["p"])
    assert staged.target.table == ["old"] and staged.target.event == ["e"] and not staged.target.empty


def test_definitions_lose_the_staging_qualifier_and_keep_their_modes() -> None:
    out = "\n".join(
        [
            "#def\tview\tv2",
            "v2\tCREATE VIEW `v2` AS select `s_mkrestore`.`t`.`a` AS `a` from `v1`"
            "\tutf8mb4\tutf8mb4_general_ci",
            "#def\tview\tv1",
            "v1\tCREATE VIEW `v1` AS select 1 AS `a`\tutf8mb4\tutf8mb4_general_ci",
            "#def\ttrigger\ttr",
            "tr\tSTRICT_TRANS_TABLES\tCREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW"
            "\\nBEGIN\\nSET @x = 1;\\nEND"
            "\tutf8mb4\tutf8mb4_general_ci\tutf8mb4_unicode_ci\t2026-01-01",
        ]
    )
    definitions = sql.parse_definitions(out, "s_mkrestore")
    assert definitions[0].statement == "CREATE VIEW `v2` AS select `t`.`a` AS `a` from `v1`"
    assert definitions[2].sql_mode == "STRICT_TRANS_TABLES" and "\nSET @x = 1;\n" in definitions[2].statement
    assert [d.name for d in sql.view_order(definitions)] == ["v1", "v2"]  # v2 reads v1
    with pytest.raises(ValueError, match="hides the definition of procedure 'p'"):
        sql.parse_definitions("#def\tprocedure\tp\np\tX\tNULL\tutf8mb4\tc\tc", "s")


def test_the_commit_replaces_the_target_and_recreates_objects_in_order() -> None:
    staged = sql.Staged(
        rows={"a": 1},
        staging=sql.Objects(table=["a", "b"], trigger=["tr"]),
        target=sql.Objects(table=["old"], view=["oldv"], procedure=["oldp"]),
    )
    definitions = [
        sql.Definition("trigger", "tr", "CREATE TRIGGER tr BEFORE INSERT ON a FOR EACH ROW SET @x = 1", "M"),
        sql.Definition("view", "v", "CREATE VIEW `v` AS select 1"),
        sql.Definition("function", "f", "CREATE FUNCTION f() RETURNS INT RETURN 1", ""),
    ]
    text = sql.commit_sql("t_mkrestore", "t", staged, definitions, create_target="utf8mb4 utf8mb4_unicode_ci")
    order = [
        "CREATE DATABASE IF NOT EXISTS `t`",
        "DROP PROCEDURE IF EXISTS `t`.`oldp`",
        "DROP VIEW IF EXISTS `t`.`oldv`",
        "DROP TABLE IF EXISTS `t`.`old`",
        "DROP TRIGGER `t_mkrestore`.`tr`",
        "RENAME TABLE `t_mkrestore`.`a` TO `t`.`a`, `t_mkrestore`.`b` TO `t`.`b`",
        "CREATE FUNCTION f()",
        "CREATE VIEW `v`",
        "CREATE TRIGGER tr",
        "DROP DATABASE `t_mkrestore`",
        "#committed",
    ]
    positions = [text.index(piece) for piece in order]
    assert positions == sorted(positions)
    with pytest.raises(ValueError, match="contains"):
        sql.commit_sql("s", "t", staged, [sql.Definition("view", "v", f"x {sql.DELIMITER}")])


def test_url_rewrites() -> None:
    magento = sql.rewrite_urls_sql("s", "magento", "https://drill.example/shop", table_prefix="mg_")
    assert (
        "UPDATE `s`.`mg_core_config_data` SET value = " + sql.literal("https://drill.example/shop/")
        in magento
    )
    assert sql.literal("https://drill.example") in magento  # the origin for link/static/media URLs
    wordpress = sql.rewrite_urls_sql("s", "wordpress", "https://drill.example/")
    assert "`s`.`wp_options`" in wordpress and sql.literal("https://drill.example") in wordpress
    assert sql.url_table("wordpress", "blog_") == "blog_options"
    assert origin("https://a.example:8443/x/y") == "https://a.example:8443"


# -- commands -------------------------------------------------------------------------------------------


def bash_syntax_ok(command: str) -> None:
    body = command.split("<<'MAINTKIT_BASH'\n", 1)[1].rsplit("\nMAINTKIT_BASH\n", 1)[0]
    result = subprocess.run(["bash", "-n"], input=body, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_database_commands_keep_the_password_off_the_command_line() -> None:
    command, payload = commands.sql_command(source())
    assert PASSWORD not in command and b"password=" in payload
    bash_syntax_ok(command)
    command, payload = commands.import_command(
        source(),
        "shop_mkrestore",
        "gzip",
        strip_definers=True,
    )
    assert PASSWORD not in command and "gzip -d -c | sed -E" in command and "-- shop_mkrestore" in command
    bash_syntax_ok(command)
    app_command, app_payload = commands.sql_command(
        DatabaseSource.model_validate({"from": "magento", "root": "~/x"})
    )
    assert app_payload == b"" and "php" in app_command
    assert "utf8mb4_bin" in sql.stage_sql("shop_mkrestore", "utf8mb4", "utf8mb4_bin")
    with pytest.raises(ValueError, match="unexpected charset"):
        sql.stage_sql("s", "utf8mb4; DROP", "x")


def test_the_definer_filter_touches_definer_lines_only() -> None:
    script = f"\\,{commands.DEFINER_LINE},s,{commands.DEFINER_CLAUSE},,"
    dump = (
        "/*!50013 DEFINER=`shop`@`%` SQL SECURITY DEFINER */\n"
        "/*!50003 CREATE*/ /*!50017 DEFINER=`we``ird`@`localhost`*/ /*!50003 TRIGGER t\n"
        "CREATE DEFINER=`shop`@`%` PROCEDURE `p`()\n"
        "/*!50106 CREATE*/ /*!50117 DEFINER=`shop`@`%`*/ /*!50106 EVENT `e` ON SCHEDULE\n"
        "INSERT INTO `t` VALUES (1,'DEFINER=`shop`@`%`');\n"
        "(2,'/*!50013 DEFINER=`x`@`y`');\n"
    )
    out = subprocess.run(["sed", "-E", script], input=dump, capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    assert "DEFINER=" not in "".join(lines[:4])
    assert lines[4:] == dump.splitlines()[4:]  # data untouched


def run(command: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["sh", "-c", command], capture_output=True, check=False)


def tar_zst(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return zstandard.ZstdCompressor().compress(buffer.getvalue())


def staged_folder(result: subprocess.CompletedProcess[bytes]) -> str:
    line = next(x for x in result.stderr.decode().splitlines() if x.startswith("maintkit:staging="))
    return line.split("=", 1)[1]


def test_extract_then_swap_keeps_the_kept_paths(tmp_path: Path) -> None:
    root = tmp_path / "site"
    (root / "app" / "etc").mkdir(parents=True)
    (root / "app" / "etc" / "env.php").write_text("drill settings")
    (root / "old.txt").write_text("old")
    transport = LocalTransport("here")
    archive = tar_zst({"index.php": b"new", "app/etc/env.php": b"production settings"})
    result = transport.run(commands.extract_command(str(root), "zstd"), stdin=archive, timeout=30)
    assert result.rc == 0, result.stderr
    staging = next(line.split("=", 1)[1] for line in result.stderr.splitlines() if "staging=" in line)
    assert (root / "old.txt").exists()  # nothing in place before the swap
    result = transport.run(commands.swap_command(str(root), staging, ["."], ["app/etc/env.php"]), timeout=30)
    assert result.rc == 0, result.stderr
    assert sorted(os.listdir(root)) == ["app", "index.php"]
    assert (root / "app" / "etc" / "env.php").read_text() == "drill settings"
    assert sorted(os.listdir(tmp_path)) == ["site"]  # no staging or old folder left

    result = transport.run(commands.reset_command(str(root), ["app/etc/env.php"]), timeout=30)
    assert result.rc == 0 and "maintkit:files=reset" in result.stderr
    assert sorted(os.listdir(root)) == ["app"] and sorted(os.listdir(tmp_path)) == ["site"]
    result = transport.run(commands.reset_command(str(root), []), timeout=30)
    assert "maintkit:files=removed" in result.stderr and os.listdir(tmp_path) == []


def test_an_engine_tree_takes_the_live_root_s_mode_and_is_synced_before_the_swap(tmp_path: Path) -> None:
    root = tmp_path / "site"
    root.mkdir(mode=0o750)
    root.chmod(0o750)
    transport = LocalTransport("here")
    archive = tar_zst({"index.php": b"new"})  # no "./" member, as restic dump writes it
    result = transport.run(
        commands.extract_command(str(root), "zstd", root_mode="live"), stdin=archive, timeout=30
    )
    assert result.rc == 0, result.stderr
    staging = next(line.split("=", 1)[1] for line in result.stderr.splitlines() if "staging=" in line)
    assert os.stat(staging).st_mode & 0o777 == 0o750  # mktemp made it 0700
    synced = transport.run(commands.sync_command(str(root), staging), timeout=30)
    assert synced.rc == 0, synced.stderr
    refused = transport.run(commands.sync_command(str(root), "/etc"), timeout=30)
    assert refused.rc == 2 and "not a restore folder" in refused.stderr


def test_a_failed_extraction_removes_its_folder_and_leaves_the_root(tmp_path: Path) -> None:
    root = tmp_path / "site"
    root.mkdir()
    (root / "keep.txt").write_text("previous")
    transport = LocalTransport("here")
    result = transport.run(commands.extract_command(str(root), "zstd"), stdin=b"not zstd at all", timeout=30)
    assert result.rc != 0
    assert sorted(os.listdir(tmp_path)) == ["site"] and (root / "keep.txt").read_text() == "previous"


def test_per_path_swap_and_refusals(tmp_path: Path) -> None:
    root = tmp_path / "site"
    (root / "pub" / "media").mkdir(parents=True)
    (root / "pub" / "media" / "old.jpg").write_text("old")
    (root / "index.php").write_text("live")
    transport = LocalTransport("here")
    result = transport.run(
        commands.extract_command(str(root), "zstd"), stdin=tar_zst({"pub/media/new.jpg": b"new"}), timeout=30
    )
    staging = next(line.split("=", 1)[1] for line in result.stderr.splitlines() if "staging=" in line)
    result = transport.run(commands.swap_command(str(root), staging, ["pub/media"], []), timeout=30)
    assert result.rc == 0, result.stderr
    assert os.listdir(root / "pub" / "media") == ["new.jpg"] and (root / "index.php").read_text() == "live"
    elsewhere = transport.run(commands.swap_command(str(root), "/etc", ["."], []), timeout=30)
    assert elsewhere.rc == 2 and "not a restore folder" in elsewhere.stderr
    home = transport.run(commands.reset_command("~", []), timeout=30)
    assert home.rc == 2 and "refusing to replace" in home.stderr


# -- the production guard --------------------------------------------------------------------------------


def test_what_counts_as_production() -> None:
    prod = place_of(
        "prod1",
        "203.0.113.10",
        22,
        "deploy",
        {"root": "/var/www/shop"},
        {"name": "shop", "host": "localhost"},
    )
    remote_db = place_of(
        "prod2", "203.0.113.11", 22, "deploy", None, {"name": "shop", "host": "db.internal", "port": 3306}
    )
    sources = [prod, remote_db]

    def reasons(env: str = "drill", marked: bool = False, **place: object) -> list[str]:
        values: dict[str, object] = {
            "host": "d",
            "address": "198.51.100.5",
            "port": 22,
            "user": "deploy",
            "files": None,
            "database": None,
            **place,
        }
        return production_reasons(env, place_of(**values), marked, sources)  # type: ignore[arg-type]

    assert reasons() == []
    assert reasons("Prod") == ["its environment is named 'Prod'"]
    assert reasons(marked=True) == ["the inventory marks it production: true"]
    assert reasons(address="203.0.113.10", files={"root": "/var/www/shop/"}) == [
        "its files root is prod1's (/var/www/shop on 203.0.113.10)"
    ]
    assert reasons(address="203.0.113.10", port=2222, files={"root": "/var/www/shop"}) == []
    assert reasons(address="203.0.113.10", database={"name": "shop", "host": "127.0.0.1"}) == [
        "its database is prod1's (shop on 203.0.113.10)"
    ]
    assert reasons(address="203.0.113.10", database={"name": "drill_shop", "host": "127.0.0.1"}) == []
    assert reasons(database={"name": "shop", "host": "DB.internal"}) == [
        "its database is prod2's (shop on db.internal:3306)"
    ]
    assert reasons(address="203.0.113.10", database={"from": "magento", "root": "/var/www/shop"}) == [
        "its database settings come from prod1's application config"
    ]
    home = place_of("a", "h", 22, "alice", {"root": "~/shop"}, None)
    assert (
        home.files_root == "~alice/shop" != place_of("b", "h", 22, "bob", {"root": "~/shop"}, None).files_root
    )
    assert marked_production("yes") and not marked_production("false") and not marked_production(None)


def test_prepare_copies_the_kept_config_into_the_tree_and_marks_a_drill_s_copy(tmp_path: Path) -> None:
    root = tmp_path / "site"
    (root / "app" / "etc").mkdir(parents=True)
    (root / "app" / "etc" / "env.php").write_text("drill settings")
    transport = LocalTransport("here")
    archive = tar_zst({"index.php": b"new", "app/etc/env.php": b"production settings"})
    result = transport.run(commands.extract_command(str(root), "zstd"), stdin=archive, timeout=30)
    staging = next(line.split("=", 1)[1] for line in result.stderr.splitlines() if "staging=" in line)
    result = transport.run(
        commands.prepare_command(str(root), staging, ["app/etc/env.php", "absent"], "run-7"), timeout=30
    )
    assert result.rc == 0 and "maintkit:kept=app/etc/env.php" in result.stderr
    assert (Path(staging) / "app" / "etc" / "env.php").read_text() == "drill settings"  # before the swap
    assert (Path(staging) / commands.MARKER_FILE).read_text() == "run-7\n"
    assert (root / "app" / "etc" / "env.php").read_text() == "drill settings"
    elsewhere = transport.run(commands.prepare_command(str(root), "/etc", [], None), timeout=30)
    assert elsewhere.rc == 2 and "not a restore folder" in elsewhere.stderr


def test_the_sweep_removes_only_this_roots_extraction_folders(tmp_path: Path) -> None:
    """What a restore's abort runs when an extraction was killed before it announced its folder."""
    root = tmp_path / "shop"
    root.mkdir()
    (root / "index.php").write_text("live")
    killed = tmp_path / ".shop.mkrestore.Ab12Cd"
    (killed / "deep").mkdir(parents=True)
    (killed / "deep" / "half.php").write_text("half")
    other = tmp_path / ".shop2.mkrestore.Xy98Zw"
    other.mkdir()
    result = LocalTransport("here").run(commands.sweep_command(str(root)), timeout=30)
    assert result.rc == 0, result.stderr
    assert not killed.exists() and other.exists()  # another site's folder is not this root's
    assert (root / "index.php").read_text() == "live"
    again = LocalTransport("here").run(commands.sweep_command(str(root)), timeout=30)
    assert again.rc == 0, again.stderr  # nothing to sweep is not an error
