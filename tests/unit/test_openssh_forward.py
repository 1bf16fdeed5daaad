"""The ``ssh -N -R`` command line and how its answer is read (the real forward: tests/integration/
test_engine_forward.py). A stand-in program prints what ssh prints, so the parsing and the clean-up
are checked without a network."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from maintkit.transport.openssh import BulkTarget, ssh_argv
from maintkit.transport.openssh_forward import CIPHERS, ForwardUnavailable, OpenSSHForward, forward_argv

TARGET = BulkTarget(
    host="203.0.113.7", port=2222, user="deploy", identity_files=("/keys/id",), connect_timeout=10,
    key_name="ssh-ed25519", key_base64="AAAAC3Nza", keepalive=15,
)  # fmt: skip


def test_the_forward_is_pinned_like_bulk_streams_and_runs_nothing() -> None:
    argv = forward_argv("/usr/bin/ssh", TARGET, Path("/tmp/pin/known_hosts"), 41234)
    assert argv[0] == "/usr/bin/ssh" and argv[-2:] == ["--", "203.0.113.7"]
    assert "-N" in argv and "-n" in argv
    assert argv[argv.index("-R") + 1] == "127.0.0.1:0:127.0.0.1:41234"
    options = [argv[i + 1] for i, word in enumerate(argv) if word == "-o"]
    for wanted in ("StrictHostKeyChecking=yes", "UserKnownHostsFile=/tmp/pin/known_hosts",
                   "GlobalKnownHostsFile=/dev/null", "BatchMode=yes", "ExitOnForwardFailure=yes",
                   "LogLevel=INFO", f"Ciphers={CIPHERS}"):  # fmt: skip
        assert wanted in options
    assert "ClearAllForwardings=yes" not in options
    assert CIPHERS.startswith("aes128-gcm@openssh.com,") and "cbc" not in CIPHERS


def test_bulk_streams_keep_their_options() -> None:
    argv = ssh_argv("ssh", TARGET, Path("/k"), "echo hi")
    options = [argv[i + 1] for i, word in enumerate(argv) if word == "-o"]
    assert "ClearAllForwardings=yes" in options and "LogLevel=ERROR" in options
    assert argv[-3:] == ["--", "203.0.113.7", "echo hi"] and "-R" not in argv


def stand_in(tmp_path: Path, body: str) -> list[str]:
    program = tmp_path / "ssh"
    program.write_text("#!/bin/sh\n" + body + "\n")
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    return [str(program)]


def test_the_allocated_port_is_read_and_ssh_is_ended_by_its_pid(tmp_path: Path) -> None:
    argv = stand_in(
        tmp_path, "echo 'Allocated port 40404 for remote forward to 127.0.0.1:8080' >&2; exec sleep 60"
    )
    with OpenSSHForward(argv, timeout=10).start() as forward:
        assert forward.port == 40404 and forward.alive()
        pid = forward._proc.pid if forward._proc else 0
    assert not forward.alive()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_refused_forward_raises_with_ssh_s_words(tmp_path: Path) -> None:
    argv = stand_in(tmp_path, "echo 'Error: remote port forwarding failed for listen port 0' >&2; exit 255")
    with pytest.raises(ForwardUnavailable, match="remote port forwarding failed"):
        OpenSSHForward(argv, timeout=10).start()


def test_no_answer_in_time_ends_ssh(tmp_path: Path) -> None:
    marker = tmp_path / "pid"
    argv = stand_in(tmp_path, f"echo $$ > {marker}; exec sleep 60")
    with pytest.raises(ForwardUnavailable):
        OpenSSHForward(argv, timeout=0.5).start()
    pid = int(marker.read_text())
    left = subprocess.run(
        ["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True
    ).stdout.strip()
    assert left in ("", "Z"), left
