"""Freeze windows: an update is refused before anything runs; the printed override works as printed.

Real CLI in a subprocess, a real sshd host, real composer: the refused run leaves no trace on the
host, the overriding run changes it (vendor/ installed) and its journal records the reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import inventory_data
from tests.integration.helpers import events, run_cli, write_playbook
from tests.shop import composer_env

pytestmark = pytest.mark.integration

TODAY = datetime.now(UTC).date()
WINDOW = {"from": (TODAY - timedelta(days=1)).isoformat(), "to": (TODAY + timedelta(days=1)).isoformat()}


@pytest.fixture
def project(tmp_path: Path, clean_homes, ssh_hosts, known_hosts_file) -> Path:
    """An inventory whose production group is frozen today, and prod1 holding a composer project."""
    data = inventory_data(ssh_hosts, known_hosts_file)
    data["all"]["children"]["production"]["vars"] = {"freeze": [{**WINDOW, "reason": "Black Friday"}]}
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    (tmp_path / "journal").mkdir()
    app = Path(ssh_hosts["prod1"].home) / "app"
    app.mkdir()
    (app / "composer.json").write_text(json.dumps({"name": "acme/shop", "require": {}}))
    os.chown(app, *_owner(Path(ssh_hosts["prod1"].home)))
    os.chown(app / "composer.json", *_owner(Path(ssh_hosts["prod1"].home)))
    return tmp_path


def _owner(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_uid, stat.st_gid


def _update_book(project: Path, ssh_hosts, dry_run: bool = False) -> Path:
    home = Path(ssh_hosts["prod1"].home)
    return write_playbook(
        project,
        {
            "name": "update",
            "hosts": "production",
            "steps": [
                {"name": "mark", "shell": "touch ~/started"},
                {
                    "name": "composer install",
                    "composer": {
                        "command": "install",
                        "working_dir": "~/app",
                        "dry_run": dry_run,
                        "env": composer_env(home),
                    },
                },
            ],
        },
        name="update-dry" if dry_run else "update",
    )


def test_an_update_in_a_freeze_is_refused_and_the_printed_override_runs_as_printed(project, ssh_hosts):
    home = Path(ssh_hosts["prod1"].home)
    book = _update_book(project, ssh_hosts)
    args = ("run", book, "-i", "inventory.yml", "--limit", "prod1", "--journal-dir", "journal")

    refused = run_cli(*args, cwd=project)

    assert refused.returncode == 2, refused.stderr
    assert "Black Friday" in refused.stderr and WINDOW["from"] in refused.stderr
    assert "inventory.yml:" in refused.stderr  # where the window was set
    assert "'composer install'" in refused.stderr and "'mark'" not in refused.stderr
    assert not (home / "started").exists() and not (home / "app/vendor").exists()  # nothing ran
    assert not list((project / "journal").glob("*.jsonl"))
    printed = refused.stderr.split("give the reason (it is recorded): ", 1)[1].splitlines()[0]
    assert "--override-freeze" in printed and "--reason" in printed

    venv_bin = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{venv_bin}:{os.environ['PATH']}", "NO_COLOR": "1"}
    done = subprocess.run(["bash", "-c", printed], cwd=project, capture_output=True, text=True, env=env)

    assert done.returncode == 0, done.stdout + done.stderr
    assert (home / "started").exists() and (home / "app/vendor/autoload.php").is_file()
    start = next(e for e in events(project / "journal") if e["event"] == "run_start")
    assert start["freeze_override"]["reason"] == "WHY"
    assert start["freeze_override"]["hosts"] == ["prod1"]
    assert "Black Friday" in start["freeze_override"]["windows"][0]


def test_override_without_a_reason_is_refused(project, ssh_hosts):
    book = _update_book(project, ssh_hosts)
    result = run_cli("run", book, "-i", "inventory.yml", "--limit", "prod1", "--override-freeze", cwd=project)
    assert result.returncode == 2 and "--reason" in result.stderr
    assert not (Path(ssh_hosts["prod1"].home) / "started").exists()


def test_backups_verifies_and_dry_runs_are_allowed_in_a_freeze(project, ssh_hosts):
    """Steps that do not change what runs (a shell step, composer --dry-run) are never refused."""
    home = Path(ssh_hosts["prod1"].home)
    book = _update_book(project, ssh_hosts, dry_run=True)
    result = run_cli(
        "run", book, "-i", "inventory.yml", "--limit", "prod1", "--journal-dir", "journal", cwd=project
    )
    assert result.returncode == 0, result.stderr
    assert (home / "started").exists() and not (home / "app/vendor").exists()


def test_a_wrong_freeze_value_is_reported_at_its_line(project, ssh_hosts):
    data = yaml.safe_load((project / "inventory.yml").read_text())
    data["all"]["children"]["production"]["vars"] = {"freeze": [{"from": "2026-13-01", "to": "2027-01-05"}]}
    (project / "inventory.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    book = _update_book(project, ssh_hosts, dry_run=True)
    result = run_cli("run", book, "-i", "inventory.yml", "--limit", "prod1", cwd=project)
    assert result.returncode == 2
    assert "inventory.yml:" in result.stderr and "'from' must be a date YYYY-MM-DD" in result.stderr
    assert not (Path(ssh_hosts["prod1"].home) / "started").exists()


def _portfolio(folder: Path, start: date, drill_days: int = 14, site: str | None = None) -> None:
    (folder / "inventories").mkdir(exist_ok=True)
    if not (folder / "inventories/production.yml").exists():
        (folder / "inventories/production.yml").write_text(
            "all:\n  hosts:\n    shop: {ansible_host: 127.0.0.1}\n"
        )
    window = {
        "from": start.isoformat(),
        "to": (start + timedelta(days=30)).isoformat(),
        "reason": "Black Friday",
    }
    portfolio = {
        "defaults": {"freeze": [window], "drill_before_freeze_days": drill_days},
        "clients": {"acme": {"sites": {"shop": {"environments": {"production": {"site": site or "shop"}}}}}},
    }
    (folder / "portfolio.yml").write_text(yaml.safe_dump(portfolio, sort_keys=False))


def test_status_warns_before_a_freeze_without_a_drill_and_marks_the_breach_once_it_started(tmp_path):
    _portfolio(tmp_path, TODAY + timedelta(days=5))
    coming = run_cli("status", "--output", "json", cwd=tmp_path)
    line = json.loads(coming.stdout.splitlines()[0])
    assert coming.returncode == 0, coming.stderr
    assert line["warnings"][0]["kind"] == "freeze-drill" and "(5 d left)" in line["warnings"][0]["message"]

    _portfolio(tmp_path, TODAY - timedelta(days=1))
    started = run_cli("status", cwd=tmp_path)
    assert started.returncode == 1
    assert "BREACH" in started.stdout and "started with no passed restore drill" in started.stdout


def test_a_portfolio_freeze_refuses_the_update_of_its_site(project, ssh_hosts):
    """The portfolio's window applies to a plain ``maintkit run --env`` of the site's inventory."""
    data = yaml.safe_load((project / "inventory.yml").read_text())
    del data["all"]["children"]["production"]["vars"]
    (project / "inventories").mkdir()
    (project / "inventories/production.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    _portfolio(project, TODAY, site="prod1")
    book = _update_book(project, ssh_hosts)
    result = run_cli("run", book, "--env", "production", "--limit", "prod1", cwd=project)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "the portfolio (portfolio.yml, site 'prod1')" in result.stderr
    assert not (Path(ssh_hosts["prod1"].home) / "started").exists()


def test_a_broken_portfolio_never_holds_up_a_backup_but_stops_an_update(project, ssh_hosts):
    (project / "portfolio.yml").write_text(
        "clients:\n  acme:\n    sites:\n      shop:\n        freeze: soon\n"
    )
    home = Path(ssh_hosts["prod1"].home)
    allowed = _update_book(project, ssh_hosts, dry_run=True)
    result = run_cli(
        "run", allowed, "-i", "inventory.yml", "--limit", "prod1", "--journal-dir", "journal", cwd=project
    )
    assert result.returncode == 0, result.stderr
    assert (home / "started").exists()
    (home / "started").unlink()
    update = _update_book(project, ssh_hosts)
    refused = run_cli("run", update, "-i", "inventory.yml", "--limit", "prod1", cwd=project)
    assert refused.returncode == 2 and "portfolio.yml:5" in refused.stderr, refused.stderr
    assert not (home / "started").exists()
