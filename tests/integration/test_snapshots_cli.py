"""``maintkit snapshots``: invalid storage settings exit 2 at their line; a failed verify shows in list.

Local-connection inventories and the local storage target: the real CLI in a subprocess, real
snapshots on disk, one corrupted by hand.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from tests.integration.helpers import run_cli, write_playbook

SUBCOMMANDS = (
    ["list"],
    ["list", "--output", "json"],
    ["show", "latest"],
    ["verify"],
    ["prune", "--dry-run"],
    ["prune"],
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def errors(stderr: str, expected: list[str]) -> list[str]:
    """The error lines, each cut to the length of the expected one (the console wraps long lines)."""
    found = [line for line in stderr.splitlines() if line.startswith("error: ")]
    return [line[: len(want)] for line, want in zip(found, expected, strict=False)] + found[len(expected) :]


def check_every_subcommand_like_validate(work: Path, inventory: str, expected: list[str]) -> None:
    book = write_playbook(work, {"name": "noop", "steps": [{"shell": "true"}]})
    validated = run_cli("validate", book, "-i", inventory, cwd=work)
    assert validated.returncode == 2
    assert errors(validated.stderr, expected) == expected
    for args in SUBCOMMANDS:
        result = run_cli("snapshots", *args, "-i", inventory, cwd=work)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert errors(result.stderr, expected) == expected, args


def test_a_misspelt_retention_rule_exits_2_at_its_line_in_every_snapshots_command(tmp_path):
    write(
        tmp_path / "inv.yml",
        """\
        all:
          hosts:
            shop:
              connection: local
              retention:
                keep_last: 3
                keep_dayly: 7
        """,
    )
    expected = [
        "error: inv.yml:7:9: retention.keep_dayly: unknown rule 'keep_dayly' (did you mean 'keep_daily'?)"
    ]
    check_every_subcommand_like_validate(tmp_path, "inv.yml", expected)


def test_storage_and_encryption_mistakes_exit_2_at_their_lines_in_group_vars_files(tmp_path):
    write(
        tmp_path / "inv/hosts.yml",
        "all:\n  children:\n    shops:\n      hosts:\n        shop: {connection: local}\n",
    )
    write(
        tmp_path / "inv/group_vars/shops.yml",
        """\
        storage:
          - name: here
            type: local
            path: ./snapshots
            bukket: x
        encryption:
          recipients: [not-a-key]
        """,
    )
    check_every_subcommand_like_validate(
        tmp_path,
        "inv",
        [
            "error: inv/group_vars/shops.yml:5:5: storage[0].bukket: unknown key 'bukket'",
            "error: inv/group_vars/shops.yml:7:16: encryption.recipients[0]: unsupported recipient",
        ],
    )


def test_an_unknown_target_is_a_usage_error(tmp_path):
    write(tmp_path / "inv.yml", "all:\n  hosts:\n    shop: {connection: local}\n")
    result = run_cli("snapshots", "list", "-i", "inv.yml", "--target", "offsite", cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown storage target(s) offsite; this host has: local" in result.stderr


@pytest.fixture
def three_snapshots(tmp_path: Path) -> tuple[Path, list[str]]:
    """Three snapshots of a small site (oldest first) in the local target, keep_last: 1."""
    write(
        tmp_path / "inv.yml",
        """\
        all:
          hosts:
            shop:
              connection: local
              files: {root: ./site}
              retention: {keep_last: 1}
              lock_dir: LOCK
        """.replace("LOCK", str(tmp_path / "lock")),  # not the ~/.maintkit/lock other runs share
    )
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.php").write_text("<?php echo 'shop';\n" * 200)
    book = write_playbook(tmp_path, {"name": "snap", "steps": [{"snapshot": {"files": "{{ files }}"}}]})
    for _ in range(3):
        result = run_cli("run", book, "-i", "inv.yml", cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
    folder = tmp_path / ".maintkit" / "snapshots" / "shop" / "inv"
    ids = sorted(p.name for p in folder.iterdir())
    assert len(ids) == 3
    return tmp_path, ids


def test_a_snapshot_whose_verify_failed_is_listed_with_the_reason_and_left_by_prune(three_snapshots):
    work, (good, corrupt, unverified) = three_snapshots
    assert run_cli("snapshots", "verify", good, "-i", "inv.yml", cwd=work).returncode == 0
    artifact = work / ".maintkit" / "snapshots" / "shop" / "inv" / corrupt / "files.tar.zst"
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))

    verified = run_cli("snapshots", "verify", corrupt, "-i", "inv.yml", cwd=work)
    assert verified.returncode == 1 and "FAILED" in verified.stdout

    rows = {
        row["id"]: row
        for row in map(
            json.loads,
            run_cli("snapshots", "list", "-i", "inv.yml", "--output", "json", cwd=work).stdout.splitlines(),
        )
    }
    assert (rows[good]["state"], rows[good]["verified"], rows[good]["problem"]) == ("verified", True, None)
    assert (rows[unverified]["state"], rows[unverified]["verified"], rows[unverified]["problem"]) == (
        "complete",
        False,
        None,
    )
    assert rows[corrupt]["state"] == "verify failed" and rows[corrupt]["verified"] is False
    assert rows[corrupt]["problem"].startswith("verify failed in local: files.tar.zst: ")

    text = run_cli("snapshots", "list", "-i", "inv.yml", cwd=work).stdout
    states = {
        m.group(1): line for line in text.splitlines() if (m := re.search(r"\b(\d{8}T\d{6}Z\S*)", line))
    }
    assert "verify failed in local: files.tar.zst:" in states[corrupt]
    assert " verified " in states[good] and " complete " in states[unverified]

    shown = json.loads(run_cli("snapshots", "show", corrupt, "-i", "inv.yml", cwd=work).stdout)
    assert shown["state"] == "verify failed" and shown["problem"].startswith("files.tar.zst: ")
    assert shown["verification"]["ok"] is False

    pruned = run_cli("snapshots", "prune", "-i", "inv.yml", cwd=work)
    assert pruned.returncode == 0
    lines = {line.split()[3]: line for line in pruned.stdout.splitlines()}
    assert lines[unverified].startswith("keep") and "last 1/1" in lines[unverified]
    assert lines[good].startswith("keep") and "newest verified" in lines[good]
    assert lines[corrupt].startswith("keep") and "verify failed (files.tar.zst:" in lines[corrupt]
    assert artifact.exists()
