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
