"""Running the real CLI in a subprocess, as cron and engineers do, and reading what it left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml


def write_playbook(folder: Path, book: dict[str, Any], name: str = "book") -> Path:
    path = folder / f"{name}.yml"
    path.write_text(yaml.safe_dump(book, sort_keys=False))
    return path


def maintkit_cmd(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "maintkit", *map(str, args)]


def run_cli(*args: str | Path, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``maintkit ARGS`` to completion; return its exit code and output."""
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        maintkit_cmd(*args), cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def start_cli(*args: str | Path, cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.Popen(
        maintkit_cmd(*args), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def events(journal_dir: Path) -> list[dict[str, Any]]:
    """Every event of the only (or newest) run in a journal folder."""
    paths = sorted(journal_dir.glob("*.jsonl"), key=lambda p: p.stat().st_mtime_ns)
    assert paths, f"no journal in {journal_dir}"
    return [json.loads(line) for line in paths[-1].read_text().splitlines() if line.strip()]


def wait_for(condition: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def step_statuses(journal: list[dict[str, Any]], host: str) -> list[tuple[str, str, str]]:
    return [
        (e["section"], e["step"], e["status"])
        for e in journal
        if e["event"] == "step_end" and e["host"] == host
    ]
