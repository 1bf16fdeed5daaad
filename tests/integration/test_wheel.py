"""The shipped playbooks live in the top-level ``playbooks/`` folder and still install with maintkit.

A wheel is built from this checkout as ``pip`` builds one (``pip wheel --no-deps .``), unpacked (a
pure-Python wheel's install is its files), and ``maintkit`` run from that copy, in a folder with no
``playbooks/`` of its own, must find ``nightly-backup`` and ``demo`` among its shipped playbooks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
IGNORED = (
    ".git",
    ".venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".maintkit",
    "benchmarks",
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel of the work tree, built from a copy: a stale ``build/`` would add what no longer exists."""
    out = tmp_path_factory.mktemp("wheel")
    tree = out / "tree"
    shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(*IGNORED))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(tree), "-w", str(out)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [built] = out.glob("maintkit-*.whl")
    return built


def test_the_wheel_carries_every_shipped_playbook_as_package_data(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"maintkit/playbooks/{p.name}" for p in (ROOT / "playbooks").glob("*.yml")}
    assert "maintkit/playbooks/nightly-backup.yml" in shipped
    assert shipped <= names
    assert "maintkit/cli/__init__.py" in names and "maintkit/cli/execute.py" in names
    assert not any(name.startswith("playbooks/") for name in names)  # no top-level package of that name


def test_maintkit_installed_from_the_wheel_finds_its_shipped_playbooks(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    zipfile.ZipFile(wheel).extractall(site)
    work = tmp_path / "elsewhere"  # no playbooks/ folder here: only the installed ones can answer
    work.mkdir()
    inventory = work / "inv.yml"
    inventory.write_text(
        yaml.safe_dump({"all": {"hosts": {"shop": {"connection": "local", "files": {"root": "./shop"}}}}})
    )
    env = {**os.environ, "PYTHONPATH": str(site), "COLUMNS": "200", "NO_COLOR": "1"}
    where = subprocess.run(
        [
            sys.executable,
            "-c",
            "import maintkit.config.playbook as p; print(p.shipped_playbooks()['nightly-backup'])",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(site) and Path(where).is_file()
    validated = subprocess.run(
        [sys.executable, "-m", "maintkit", "validate", "nightly-backup", "-i", str(inventory)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert f"({site / 'maintkit' / 'playbooks' / 'nightly-backup.yml'})" in validated.stdout


def test_the_wheel_carries_the_history_migrations(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    migrations = "maintkit/history/migrations"
    shipped = {
        f"{migrations}/versions/{p.name}" for p in (ROOT / "src" / migrations / "versions").glob("0*.py")
    }
    assert shipped and shipped <= names
    assert {f"{migrations}/env.py", f"{migrations}/script.py.mako"} <= names
