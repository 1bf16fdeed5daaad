"""SSH faults speak clearly: a host that accepts TCP and never sends a banner; timeouts as settings.

The silent host is a real listening socket on 127.0.0.1 that accepts and says nothing; the real CLI
runs in a subprocess.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.helpers import run_cli, write_playbook

pytestmark = pytest.mark.integration


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never sends a byte (a stuck sshd, a wrong port)."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    stop.set()
    thread.join(timeout=5)
    listener.close()
    for sock in held:
        sock.close()


def inventory(folder: Path, port: int, **settings: object) -> Path:
    host = {"ansible_host": "127.0.0.1", "ansible_port": port, "lock_dir": str(folder / "lock"), **settings}
    path = folder / "inv.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": {"silent": host}}}))
    return path


def test_a_host_that_never_sends_a_banner_fails_with_one_clear_message(tmp_path, silent_port):
    inv = inventory(tmp_path, silent_port, ssh_banner_timeout=1)
    book = write_playbook(tmp_path, {"name": "noop", "steps": [{"shell": "touch never"}]})
    started = time.monotonic()
    result = run_cli("run", book, "-i", inv, "--journal-dir", tmp_path / "j", cwd=tmp_path, timeout=60)
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"no SSH banner from 127.0.0.1:{silent_port} within 1 s" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert "No existing session" not in result.stdout + result.stderr
    assert result.stderr == ""
    assert elapsed < 15  # three attempts of 1 s and their waits, not three of the 10 s default


@pytest.mark.parametrize(
    ("setting", "value"),
    [("ssh_banner_timeout", "abc"), ("ssh_auth_timeout", 0), ("ssh_connect_timeout", True)],
)
def test_ssh_timeouts_that_are_not_numbers_are_invalid_input_at_their_line(
    tmp_path, silent_port, setting, value
):
    inv = inventory(tmp_path, silent_port, **{setting: value})
    book = write_playbook(tmp_path, {"name": "noop", "steps": [{"shell": "true"}]})
    result = run_cli("run", book, "-i", inv, cwd=tmp_path, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "inv.yml:" in result.stderr and f"'{setting}' must be a number of seconds" in result.stderr
