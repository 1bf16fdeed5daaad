"""Running the real CLI in a subprocess, as cron and engineers do, and reading what it left."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
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


class PingReceiver:
    """A healthcheck receiver on 127.0.0.1: ``url`` to give maintkit, ``paths`` of every ping received."""

    def __init__(self, url: str, paths: list[str]) -> None:
        self.url, self.paths = url, paths


@contextlib.contextmanager
def ping_receiver(path: str) -> Iterator[PingReceiver]:
    """Serve POSTed pings on a free port of 127.0.0.1 until the block ends; ``path`` is the check's."""
    paths: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            paths.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield PingReceiver(f"http://127.0.0.1:{server.server_address[1]}{path}", paths)
    finally:
        server.shutdown()
        server.server_close()


def restic_password_file(tmp_path: Path, password: str | None = None) -> Path:
    """``tmp_path/keys/restic.password``: maintkit's own random password (None), or ``password`` as a
    human would write it (0600 either way)."""
    from maintkit.storage.restic import ensure_password_file

    path = tmp_path / "keys" / "restic.password"
    if password is None:
        return ensure_password_file(path)
    path.parent.mkdir(parents=True)
    path.write_text(password + "\n")
    path.chmod(0o600)
    return path
