"""The integrity watch's comparison: the diff, the baseline, and changes expected during an update."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from maintkit.actions.integrity import IntegrityParams, integrity_command, parse_hashes
from maintkit.history.integrity import check, describe, diff, findings

NOW = datetime(2026, 12, 5, 3, tzinfo=UTC)
A, B = "a" * 64, "b" * 64


def test_the_command_quotes_and_excludes_and_the_output_parses() -> None:
    command = integrity_command(IntegrityParams(root="~/shop's", exclude=["./pub/media/*"]))
    assert "-path ./pub/media -o" in command or "\\( -path ./pub/media \\) -prune" in command
    assert "'shop'\"'\"'s'" in command and "sort -z" in command and "sha256sum --" in command
    assert parse_hashes(f"{A}  ./index.php\n{B}  ./app/x y.php\nnoise\n") == {
        "index.php": A,
        "app/x y.php": B,
    }


def test_a_change_outside_an_update_is_a_finding_once(tmp_path: Path) -> None:
    assert check(tmp_path, None, "shop", "production", {"index.php": A}, "r1", NOW, False) is None  # baseline
    found = check(tmp_path, None, "shop", "production", {"index.php": B, "evil.php": A}, "r2", NOW, False)
    assert found is not None and found["added"] == ["evil.php"] and found["changed"] == ["index.php"]
    assert "since run r1" in describe(found) and "added evil.php" in describe(found)
    assert (
        check(tmp_path, None, "shop", "production", {"index.php": B, "evil.php": A}, "r3", NOW, False) is None
    )
    assert [f["run_id"] for f in findings(tmp_path, "shop", "production", NOW)] == ["r2"]
    assert (tmp_path / "integrity/production/shop.json").stat().st_mode & 0o077 == 0  # private


def test_an_update_run_changes_files_without_a_finding(tmp_path: Path) -> None:
    check(tmp_path, None, "shop", "production", {"index.php": A}, "r1", NOW, False)
    assert check(tmp_path, None, "shop", "production", {"index.php": B}, "r2", NOW, True) is None
    assert diff({"a": A, "b": A}, {"b": B, "c": A}) == {"added": ["c"], "changed": ["b"], "removed": ["a"]}


def test_wp_cli_checksum_output_names_each_file_in_every_format() -> None:
    from maintkit.updates.audit import parse_wp_checksums

    text = "\n".join(
        [
            "Warning: File doesn't verify against checksum: wp-includes/version.php",
            "Warning: File doesn't exist: wp-admin/about.php",
            "Warning: File should not exist: wp-includes/evil.php",
            "Error: WordPress installation doesn't verify against checksums.",
            "Warning: shop-banner: Checksum does not match (shop-banner.php)",
            '[{"plugin_name":"akismet","file":"class.akismet.php","message":"Checksum does not match"}]',
            "Success: Verified 1 of 2 plugins.",
        ]
    )
    assert parse_wp_checksums(text) == [
        {"scope": "core", "file": "wp-includes/version.php", "problem": "changed"},
        {"scope": "core", "file": "wp-admin/about.php", "problem": "missing"},
        {"scope": "core", "file": "wp-includes/evil.php", "problem": "added"},
        {"scope": "plugin shop-banner", "file": "shop-banner.php", "problem": "Checksum does not match"},
        {"scope": "plugin akismet", "file": "class.akismet.php", "problem": "Checksum does not match"},
    ]


def test_audit_findings_are_warned_once_while_they_last_and_again_when_they_come_back(tmp_path) -> None:
    from maintkit.history.integrity import audit_items, check_audit, describe, latest

    now = datetime(2026, 12, 1, tzinfo=UTC)
    composer = {"advisories": [{"package": "a/b", "title": "XSS", "severity": "high"}], "blocking": 1}
    kind, items = audit_items(composer) or ("", [])
    assert (kind, items) == ("composer-audit", ["a/b: XSS [high]"])
    first = check_audit(tmp_path, "shop", "production", kind, items, "r1", now)
    assert (
        first is not None and describe(first) == "composer audit reports security advisories: a/b: XSS [high]"
    )
    assert check_audit(tmp_path, "shop", "production", kind, items, "r2", now) is None  # not new
    assert check_audit(tmp_path, "shop", "production", kind, [], "r3", now) is None  # fixed
    assert check_audit(tmp_path, "shop", "production", kind, items, "r4", now) is not None  # back again
    assert audit_items({"failures": [], "files": []}) == ("wordpress-checksums", [])
    assert audit_items({"count": 3}) is None
    found = [
        {"at": "2026-12-01T01:00:00", "added": ["x.php"]},
        {"kind": "composer-audit", "at": "2026-12-01T02:00:00"},
        {"at": "2026-12-01T03:00:00", "changed": ["y.php"]},
    ]
    assert [f["at"][11:13] for f in latest(found)] == ["02", "03"]
