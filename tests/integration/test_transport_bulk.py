"""Bulk streams through the system OpenSSH client, and paramiko's rekey-during-close deadlock.

What must hold (docs/performance.md): a command whose output goes to a sink runs through ``ssh``
under the host key the paramiko connection verified, with the same kill-on-timeout and the same
results; a key other than the verified one is refused by ``ssh`` and the command runs over
paramiko instead; and a rekey that paramiko starts while a channel closes no longer stalls the
connection for ``clear_to_send_timeout``.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from maintkit.model.problems import CommandTimeout
from maintkit.transport import openssh
from maintkit.transport.ssh.transport import SSHTransport
from tests.sshd import SSHHost, keygen, open_transport

pytestmark = pytest.mark.integration

#: 20 MB of deterministic text the host makes and we can make too
STREAM = "yes 0123456789abcdef | head -c 20000000"


def expected_stream() -> bytes:
    return (b"0123456789abcdef\n" * (20_000_000 // 17 + 1))[:20_000_000]


class HashSink:
    def __init__(self) -> None:
        self.sha = hashlib.sha256()
        self.total = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.total += len(data)
        return len(data)


@pytest.fixture
def transport(
    ssh_hosts: dict[str, SSHHost], known_hosts_file: Path, tmp_path: Path
) -> Iterator[SSHTransport]:
    host = ssh_hosts["prod2"]
    with open_transport(host, known_hosts_file, tmp_path) as made:
        yield made


def remote_processes(user: str, needle: str) -> list[str]:
    out = subprocess.run(["ps", "ww", "-u", user, "-o", "stat=,args="], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if needle in line and not line.strip().startswith("Z")]


def test_a_stream_to_a_sink_goes_through_ssh_and_arrives_intact(transport: SSHTransport) -> None:
    sink = HashSink()
    result = transport.run(STREAM + "; echo done >&2; exit 3", stdout=sink)
    assert transport.bulk_count == 1 and transport.bulk_off is None
    assert result.rc == 3 and result.stderr == "done\n" and result.stdout_bytes == 20_000_000
    assert sink.sha.hexdigest() == hashlib.sha256(expected_stream()).hexdigest()
    assert transport.connect_count == 1  # the paramiko connection (host key, kill) is the same


def test_bytes_on_stdin_and_secret_commands_work_in_bulk_mode(transport: SSHTransport) -> None:
    sink = HashSink()
    result = transport.run("cat", stdin=b"x" * 100_000, stdout=sink, secret=True)
    assert result.rc == 0 and sink.total == 100_000 and transport.bulk_count == 1


def test_a_timeout_kills_the_remote_command_of_a_bulk_stream(
    transport: SSHTransport, ssh_hosts: dict[str, SSHHost]
) -> None:
    marker = f"sleep 3{time.monotonic_ns() % 1000}"
    started = time.monotonic()
    with pytest.raises(CommandTimeout, match="was killed"):
        transport.run(f"echo started; {marker}", stdout=HashSink(), timeout=1)
    assert time.monotonic() - started < 10
    deadline = time.monotonic() + 5
    while remote_processes(ssh_hosts["prod2"].user, marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not remote_processes(ssh_hosts["prod2"].user, marker)
    assert transport.run("echo still usable").stdout == "still usable\n"


def test_a_key_other_than_the_verified_one_is_refused_and_paramiko_takes_over(
    transport: SSHTransport, tmp_path: Path
) -> None:
    transport.run("true", stdout=HashSink())
    assert transport.bulk_count == 1 and transport._pin is not None
    impostor = keygen(tmp_path / "impostor", "impostor")
    transport._pin.path.write_text(f"{openssh.PIN_ALIAS} {impostor}\n")  # as if another key were pinned
    sink = HashSink()
    result = transport.run(STREAM, stdout=sink)
    assert result.rc == 0 and sink.sha.hexdigest() == hashlib.sha256(expected_stream()).hexdigest()
    assert transport.bulk_count == 1  # this one went over paramiko
    assert transport.bulk_off is not None and "could not start" in transport.bulk_off


class CountingSource:
    """A binary file-like of ``size`` deterministic bytes that records how much was read."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.read_total = 0
        self.sha = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = bytes((self.read_total + i) % 251 for i in range(n)) if n < 4096 else self._block(n)
        self.left -= n
        self.read_total += n
        self.sha.update(data)
        return data

    def _block(self, n: int) -> bytes:
        pattern = bytes(range(251)) * (n // 251 + 2)
        offset = self.read_total % 251
        return pattern[offset : offset + n]


def test_a_stream_on_stdin_goes_through_ssh_and_arrives_intact(transport: SSHTransport) -> None:
    source = CountingSource(30_000_000)
    result = transport.run("sha256sum", stdin=source)
    assert transport.bulk_count == 1
    assert result.rc == 0 and result.stdout.split()[0] == source.sha.hexdigest()
    assert source.read_total == 30_000_000


def test_when_ssh_cannot_start_no_input_is_lost_and_paramiko_takes_over(
    transport: SSHTransport, tmp_path: Path
) -> None:
    transport.run("true", stdout=HashSink())
    assert transport._pin is not None
    transport._pin.path.write_text(f"{openssh.PIN_ALIAS} {keygen(tmp_path / 'impostor', 'x')}\n")
    source = CountingSource(5_000_000)
    result = transport.run("sha256sum", stdin=source)
    assert result.rc == 0 and result.stdout.split()[0] == source.sha.hexdigest()
    assert source.read_total == 5_000_000 and transport.bulk_off is not None


def test_bulk_streaming_can_be_turned_off(transport: SSHTransport, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(openssh.DISABLE_ENV, "paramiko")
    sink = HashSink()
    assert transport.run(STREAM, stdout=sink).rc == 0 and sink.total == 20_000_000
    assert transport.bulk_count == 0


def test_a_rekey_started_while_a_channel_closes_does_not_stall_the_connection(
    transport: SSHTransport,
) -> None:
    """paramiko#822: rekey every ~1 MB of received data, streams of 1.5 MB, so rekeys keep
    starting while channels close. Without the workaround one of these stalls for the full
    ``clear_to_send_timeout`` and the connection dies."""
    transport.connect()
    assert transport.connection is not None and transport.connection.transport is not None
    paramiko_transport = transport.connection.transport
    paramiko_transport.clear_to_send_timeout = 3
    paramiko_transport.packetizer.REKEY_BYTES = 1_000_000
    for _ in range(30):
        started = time.monotonic()
        result = transport.run("head -c 1500000 /dev/zero")  # no sink: the paramiko path
        assert result.rc == 0 and result.stdout_bytes == 1_500_000
        assert time.monotonic() - started < 2
    assert transport.connect_count == 1
