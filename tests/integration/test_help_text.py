"""Every command's --help as a user reads it: no reST markup from the docstrings it is made of."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.helpers import run_cli

pytestmark = pytest.mark.integration

COMMANDS = [
    ["--help"],
    *(
        [name, "--help"]
        for name in ("run", "validate", "actions", "restore", "drill", "releases", "rollback")
    ),
    *(["snapshots", name, "--help"] for name in ("list", "show", "verify", "prune")),
    *(["runs", name, "--help"] for name in ("list", "show")),
]


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_help_shows_no_rest_markup(tmp_path: Path, args: list[str]) -> None:
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "``" not in result.stdout and ":mod:`" not in result.stdout and ":func:`" not in result.stdout


def test_restore_help_names_latest_plainly(tmp_path: Path) -> None:
    result = run_cli("restore", "--help", cwd=tmp_path)
    assert "SNAPSHOT (an id, or latest)" in result.stdout
