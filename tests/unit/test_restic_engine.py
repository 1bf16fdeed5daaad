"""The restic engine's pure parts: the host's command text, the summary it prints, the password file."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from maintkit.storage.restic import ResticError, backup_command, ensure_password_file, parse_backup


def test_backup_command_quotes_every_path_and_never_carries_a_secret() -> None:
    command = backup_command("/var/www/my shop", ["pub/media", "it's"], tag="site;rm -rf /")
    words = shlex.split(command)
    assert "/var/www/my shop" in words and "it's" in words and "site;rm -rf /" in words
    assert "RESTIC_PASSWORD" not in command and "init" not in command  # the control node creates it
    last_dashes = len(words) - 1 - words[::-1].index("--")
    assert words[last_dashes + 1 :] == ["pub/media", "it's"]


def test_the_summary_line_gives_the_engine_snapshot_and_its_cost() -> None:
    status = json.dumps({"message_type": "status", "percent_done": 0.5})
    summary = json.dumps(
        {"message_type": "summary", "snapshot_id": "d2c0f45a", "files_new": 2, "files_changed": 1,
         "files_unmodified": 40, "data_added": 151234, "total_bytes_processed": 4000000}
    )  # fmt: skip
    parsed = parse_backup(f"{status}\nnot json\n{summary}\n")
    assert parsed.snapshot_id == "d2c0f45a" and parsed.data_added == 151234 and parsed.files_new == 2


def test_no_summary_is_an_error_not_a_snapshot() -> None:
    with pytest.raises(ResticError, match="no summary"):
        parse_backup('{"message_type": "status"}\n')


def test_the_password_file_is_made_once_private_and_never_replaced(tmp_path: Path) -> None:
    path = ensure_password_file(tmp_path / "keys" / "site.restic")
    first = path.read_text()
    assert path.stat().st_mode & 0o777 == 0o600 and len(first.strip()) >= 40
    assert ensure_password_file(path).read_text() == first
    path.chmod(0o644)
    with pytest.raises(ResticError, match="readable by others"):
        ensure_password_file(path)


def test_excludes_keep_their_tar_meaning_anchored_at_the_root_or_at_any_depth() -> None:
    command = backup_command("~/shop", ["."], tag="t", exclude=["var/cache/", "*.log", "/pub/static"])
    assert command.startswith('cd -- "$HOME"/shop ||')
    assert '--exclude "$PWD"/var/cache' in command and '--exclude "$PWD"/pub/static' in command
    assert "--exclude '*.log'" in command


def test_damaged_packs_are_named_from_restic_checks_output() -> None:
    from maintkit.storage.engine_ops import damaged_packs

    pack = "d443a93dc3fe297ca36cc6166fb38ee9f2faac21210f451a0bd846608d86374d"
    output = (
        "read all data\nerror for tree f673f77e:\n  decrypting blob f673 failed\n"
        f"Pack ID does not match, want {pack}, got {'6f1e' * 16}\n"
        "Fatal: repository contains errors\n"
    )
    assert damaged_packs(output) == [f"data/d4/{pack}"]


def test_an_s3_repository_gets_its_credentials_only_through_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from maintkit.storage.engine import location, repository_key
    from maintkit.storage.s3 import S3Target

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret-key")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    target = S3Target("offsite", "bkt", prefix="mk", region="eu-west-3", endpoint_url="http://127.0.0.1:9")
    where = location(target, repository_key("shop", "production"), remote="mk1")
    assert where.restic == "rclone:mk1:bkt/mk/shop/production/restic"
    assert where.rclone == "mk1:bkt/mk/shop/production/restic"
    assert where.env["RCLONE_CONFIG_MK1_SECRET_ACCESS_KEY"] == "very-secret-key"
    assert where.env["RCLONE_CONFIG_MK1_ENDPOINT"] == "http://127.0.0.1:9"
    assert "secret" not in where.restic + where.rclone


def test_the_hosts_restic_version_is_read() -> None:
    from maintkit.jobs.engine_host import parse_version

    assert parse_version("restic 0.14.0 compiled with go1.19.8 on linux/amd64") == (0, 14, 0)
    assert parse_version("restic 0.9.6 compiled with go1.13") == (0, 9, 6)
    assert parse_version("bash: restic: command not found") == ()


def test_a_manifest_with_an_engine_artifact_is_format_2_and_reads_back() -> None:
    from datetime import UTC, datetime

    from maintkit.storage.manifest import Artifact, Manifest

    now = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)
    plain = Manifest("20261205T030000Z", "shop", "production", "web1", "run", "1", now, now)
    plain.artifacts.append(Artifact("db.sql.zst", "shop/production/20261205T030000Z/db.sql.zst", 10, "ab"))
    assert json.loads(plain.to_json())["format_version"] == 1
    engine = Artifact(
        "files.restic", "shop/production/restic", 123, "", encryption="restic", engine="restic",
        engine_snapshot="f" * 64, engine_tag="maintkit-20261205T030000Z", engine_tree="e" * 64,
        files_count=3, tree_bytes=999,
    )  # fmt: skip
    plain.artifacts.append(engine)
    written = json.loads(plain.to_json())
    assert next(iter(written)) == "format_version" and written["format_version"] == 2
    again = Manifest.from_json(plain.to_json())
    assert again.artifact("files.restic") == engine and again.artifact("db.sql.zst") == plain.artifacts[0]
