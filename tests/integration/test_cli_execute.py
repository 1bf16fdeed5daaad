"""The one run set-up (maintkit.cli.execute) as the commands use it: rollback, the shared options.

``rollback`` runs the shipped playbook through ``execute()`` itself (no ``run`` invoked with a copy
of its arguments): the journal, ``--output json``, monitoring and the exit code are ``run``'s.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.helpers import PingReceiver, events, ping_receiver, run_cli

pytestmark = pytest.mark.integration


@pytest.fixture
def healthcheck() -> Iterator[PingReceiver]:
    with ping_receiver("/ping/rb") as receiver:
        yield receiver


def site_inventory(folder: Path, **variables: Any) -> Path:
    """A local host whose release_root holds no release: the rollback's first step fails."""
    path = folder / "inv.yml"
    inventory = {"all": {"vars": {"release_root": str(folder / "site"), **variables}, "hosts": {"shop": {}}}}
    inventory["all"]["hosts"]["shop"] = {"connection": "local"}
    path.write_text(yaml.safe_dump(inventory))
    return path


def test_rollback_check_plans_the_shipped_playbook_with_its_options_as_variables(tmp_path: Path) -> None:
    inventory = site_inventory(tmp_path)
    result = run_cli(
        "rollback", "-i", inventory, "--to", "R1", "--check", "--journal-dir", tmp_path / "j", cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "switch current back to R1" in result.stdout and "target=releases/R1" in result.stdout
    journal = events(tmp_path / "j")
    start, end = journal[0], next(e for e in journal if e["event"] == "run_end")
    assert start["event"] == "run_start" and start["playbook"] == "rollback" and start["check"] is True
    assert end["exit_code"] == 0
    assert not (tmp_path / "site").exists()  # --check ran nothing


def test_a_failed_rollback_prints_json_lines_pings_failure_and_exits_with_the_journal_s_code(
    tmp_path: Path, healthcheck: PingReceiver
) -> None:
    inventory = site_inventory(tmp_path, healthcheck=healthcheck.url)
    result = run_cli(
        "rollback",
        "-i",
        inventory,
        "--to",
        "R1",
        "--output",
        "json",
        "--journal-dir",
        tmp_path / "j",
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    printed = [json.loads(line) for line in result.stdout.splitlines()]  # nothing but JSON lines
    start = next(e for e in printed if e["event"] == "run_start")  # after the start ping's event
    assert start["playbook"] == "rollback"
    journal = events(tmp_path / "j")
    [end] = [e for e in journal if e["event"] == "run_end"]
    assert end["exit_code"] == result.returncode and end["status"] == "failed"
    assert [e["event"] for e in journal if e["event"] in ("run_start", "run_end")] == ["run_start", "run_end"]
    assert healthcheck.paths == ["/ping/rb/start", "/ping/rb/fail"]


@pytest.mark.parametrize(
    "command",
    [
        ["run", "demo"],
        ["validate", "demo"],
        ["restore", "latest"],
        ["restore", "latest", "--into", "drill"],
        ["drill", "--into", "drill"],
        ["rollback"],
        ["releases"],
        ["snapshots", "list"],
    ],
)
def test_every_command_asks_for_the_environment_in_the_same_words(tmp_path: Path, command: list[str]) -> None:
    result = run_cli(*command, cwd=tmp_path)
    assert result.returncode == 2
    assert "give --env ENV (reads inventories/ENV.yml) or -i INVENTORY" in result.stderr
