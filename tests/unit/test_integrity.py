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
    assert "! -path ./pub/media/\\*" in command or "! -path './pub/media/*'" in command
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
