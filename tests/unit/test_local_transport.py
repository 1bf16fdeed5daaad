"""LocalTransport: the same contract as SSH, observed on this machine (real processes, no mocks)."""

from __future__ import annotations

import hashlib
import io
import os
import random
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from maintkit.model.problems import CommandTimeout, Interrupted
from maintkit.transport.base import TAIL_BYTES
from maintkit.transport.local import LocalTransport
from maintkit.transport.registry import open_transport

MiB = 2**20


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def processes() -> list[str]:
    """``STAT ARGS`` of every live (non-zombie) process; ``ww`` so that nothing is cut at 80 columns."""
    out = subprocess.run(["ps", "ww", "-e", "-o", "stat=,args="], capture_output=True, text=True).stdout
    return [line.strip() for line in out.splitlines() if line.strip() and not line.strip().startswith("Z")]


def running(needle: str) -> list[str]:
    return [p for p in processes() if needle in p]


def alive(pid: int) -> bool:
    """Is ``pid`` a live process (zombies count as dead)?"""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class RandomStream:
    def __init__(self, size: int, seed: int = 3) -> None:
        self.left = size
        self.rng = random.Random(seed)
        self.sha = hashlib.sha256()
        self.largest_read = 0

    def read(self, n: int = -1) -> bytes:
        self.largest_read = max(self.largest_read, n)
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        data = self.rng.randbytes(n)
        self.sha.update(data)
        return data


class HashSink:
    def __init__(self) -> None:
        self.sha = hashlib.sha256()
        self.total = 0
        self.largest_chunk = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.total += len(data)
        self.largest_chunk = max(self.largest_chunk, len(data))
        return len(data)


@pytest.fixture
def local() -> LocalTransport:
    transport = LocalTransport("local")
    transport.connect()
    return transport


def test_open_transport_returns_local_for_connection_local() -> None:
    from maintkit.model.hosts import Host

    assert isinstance(open_transport(Host(name="demo", connection="local")), LocalTransport)


def test_run_returns_rc_stdout_and_stderr(local: LocalTransport) -> None:
    result = local.run("echo out; echo err >&2; exit 3")
    assert (result.rc, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert not result.ok and result.stdout_bytes == 4 and result.stderr_bytes == 4
    assert result.duration >= 0 and result.command == "echo out; echo err >&2; exit 3"


def test_death_by_signal_is_reported_like_a_shell(local: LocalTransport) -> None:
    assert local.run("kill -KILL $$").rc == 128 + 9


def test_stdin_none_bytes_and_file_like(local: LocalTransport) -> None:
    assert local.run("cat", timeout=5).stdout == ""
    assert local.run("cat", stdin=b"a\x00b").stdout == "a\x00b"
    assert local.run("wc -c", stdin=io.BytesIO(b"z" * 300_000)).stdout.strip() == "300000"


def test_50_mib_stream_through_cat(local: LocalTransport) -> None:
    source, sink = RandomStream(50 * MiB), HashSink()
    result = local.run("cat", stdin=source, stdout=sink, timeout=60)
    assert result.rc == 0 and result.stdout == ""
    assert sink.total == result.stdout_bytes == 50 * MiB
    assert sink.sha.hexdigest() == source.sha.hexdigest()
    assert source.largest_read <= 64 * 1024 and sink.largest_chunk <= 64 * 1024


def test_without_a_sink_only_a_bounded_tail_is_kept(local: LocalTransport) -> None:
    result = local.run("head -c 20000000 /dev/zero | tr '\\0' x; echo; echo END")
    assert result.stdout_bytes == 20_000_005
    assert len(result.stdout) <= TAIL_BYTES and result.stdout.endswith("x\nEND\n")


def test_env_values_are_quoted(local: LocalTransport, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    nasty = f"'; touch {marker}; '"
    result = local.run('printf "%s|%s" "$A" "$B"', env={"A": nasty, "B": f"$(touch {marker})"})
    assert result.stdout == f"{nasty}|$(touch {marker})"
    assert not marker.exists()


def test_timeout_kills_the_whole_process_group(local: LocalTransport, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    started = time.monotonic()
    with pytest.raises(CommandTimeout, match=r"timed out after 0\.3 s"):
        local.run(f"sleep 600 & echo $! >> {pids}; sleep 601 & echo $! >> {pids}; wait", timeout=0.3)
    assert time.monotonic() - started < 3
    for pid in map(int, pids.read_text().split()):
        wait_for(lambda pid=pid: not alive(pid), what=f"process {pid} to be killed")


def test_cancel_kills_the_command(local: LocalTransport, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    cancel = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            local.run(f"echo $$ > {pid_file}; sleep 602; true", cancel=cancel)
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    pid = int(
        wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), what="the command to start")
    )
    cancel.set()
    worker.join(timeout=5)
    assert not worker.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], Interrupted)
    wait_for(lambda: not alive(pid), what="the shell to be killed")


def test_a_failing_sink_kills_the_command_and_propagates(local: LocalTransport, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"

    class Broken:
        def write(self, data: bytes) -> None:
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        local.run(f"echo $$ > {pid_file}; echo go; sleep 603", stdout=Broken())
    wait_for(lambda: not alive(int(pid_file.read_text())), what="the command to be killed")


def test_a_failing_stdin_source_kills_the_command_instead_of_sending_eof(
    local: LocalTransport, tmp_path: Path
) -> None:
    class Failing:
        calls = 0

        def read(self, n: int) -> bytes:
            self.calls += 1
            if self.calls > 3:
                raise OSError("upstream broke")
            return b"y" * n

    with pytest.raises(OSError, match="upstream broke"):
        local.run(f"cat > {tmp_path / 'partial'}; touch {tmp_path / 'complete'}", stdin=Failing())
    assert not (tmp_path / "complete").exists()


def test_secret_command_and_env_never_appear_in_the_process_list(local: LocalTransport) -> None:
    secret, secret_env, plain = (f"CANARY-{kind}-{uuid.uuid4().hex}" for kind in ("cmd", "env", "plain"))
    results: dict[str, Any] = {}

    def run(key: str, command: str, **kwargs: Any) -> None:
        results[key] = local.run(command, **kwargs)

    threads = [
        threading.Thread(target=run, args=("plain", f": {plain}; sleep 1.02; true")),  # the control
        threading.Thread(
            target=run,
            args=("secret", f': {secret}; sleep 1.01; echo "$TOKEN"; cat'),
            kwargs={"secret": True, "env": {"TOKEN": secret_env}, "stdin": b"after"},
        ),
    ]
    for thread in threads:
        thread.start()
    seen: list[str] = []
    while any(t.is_alive() for t in threads):
        seen.extend(processes())
    for thread in threads:
        thread.join()
    assert any("sleep 1.01" in p for p in seen), "the secret command was never observed running"
    assert any(plain in p for p in seen), "the control command line was never observed"
    assert not [p for p in seen if secret in p or secret_env in p]
    assert results["secret"].stdout == f"{secret_env}\nafter"


def test_commands_run_in_their_own_session(local: LocalTransport) -> None:
    sid = local.run("ps -o sid= -p $$").stdout.strip()
    assert sid and int(sid) != os.getsid(0)
