"""The engine's remote port forward through the system ``ssh -R``, over a real sshd (issue 16).

What must hold (docs/performance.md "First restic night"): ``SSHTransport.forward_remote`` opens the
forward with ``ssh -N -R`` under the host key the paramiko connection verified, and bytes cross it
intact both ways; the host-side listener is gone once the forward is closed, and the ``ssh`` that
held it has ended; a key other than the verified one is refused by ``ssh`` and paramiko's forward
takes over; ``MAINTKIT_BULK_SSH=paramiko`` turns it off.
"""

from __future__ import annotations

import hashlib
import io
import shlex
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from maintkit.transport import openssh
from maintkit.transport.ssh.transport import SSHTransport
from tests.sshd import SSHHost, keygen, open_transport

pytestmark = pytest.mark.integration

#: what the host sends through the forward (deterministic, so both ends can hash it)
UPLOAD = 8_000_000
#: what the control node sends back after it has read the upload
DOWNLOAD = (b"0123456789abcdef\n" * 600_000)[:10_000_000]


@pytest.fixture
def transport(
    ssh_hosts: dict[str, SSHHost], known_hosts_file: Path, tmp_path: Path
) -> Iterator[SSHTransport]:
    with open_transport(ssh_hosts["prod2"], known_hosts_file, tmp_path) as made:
        yield made


class HashServer:
    """A one-connection server on the control node's 127.0.0.1: reads ``UPLOAD`` bytes, then sends
    their SHA-256 line and ``DOWNLOAD``."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.listener.settimeout(60)
        self.port = int(self.listener.getsockname()[1])
        self.received = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            digest = hashlib.sha256()
            while self.received < UPLOAD:
                data = conn.recv(min(1 << 20, UPLOAD - self.received))
                if not data:
                    return
                digest.update(data)
                self.received += len(data)
            conn.sendall(digest.hexdigest().encode() + b"\n" + DOWNLOAD)

    def close(self) -> None:
        self.listener.close()
        self.thread.join(timeout=5)


def round_trip(transport: SSHTransport, port: int) -> tuple[str, str]:
    """From the host: send ``UPLOAD`` bytes through 127.0.0.1:PORT; return (hash line, hash of the rest)."""
    script = (
        f"exec 3<>/dev/tcp/127.0.0.1/{port} || exit 9; "
        f"yes 0123456789abcdef | head -c {UPLOAD} >&3; "
        'IFS= read -r line <&3; echo "$line"; '
        f"head -c {len(DOWNLOAD)} <&3 | sha256sum"
    )
    result = transport.run(f"bash -c {shlex.quote(script)}", timeout=120)
    assert result.rc == 0, result.stderr
    first, second = result.stdout.splitlines()
    return first, second.split()[0]


def expected_upload() -> str:
    return hashlib.sha256((b"0123456789abcdef\n" * (UPLOAD // 17 + 1))[:UPLOAD]).hexdigest()


def forwarding_ssh(port: int) -> list[str]:
    out = subprocess.run(["ps", "ww", "-e", "-o", "args="], capture_output=True, text=True).stdout
    wanted = f"-R 127.0.0.1:0:127.0.0.1:{port}"
    return [line for line in out.splitlines() if line.split(" ")[0].endswith("ssh") and wanted in line]


def test_the_forward_goes_through_ssh_and_carries_bytes_both_ways(transport: SSHTransport) -> None:
    server = HashServer()
    try:
        with transport.forward_remote(server.port) as host_port:
            assert transport.openssh_forwards == 1
            [ssh] = forwarding_ssh(server.port)  # ssh -N -R, not paramiko
            assert " -N " in ssh and "StrictHostKeyChecking=yes" in ssh and "Ciphers=aes128-gcm" in ssh
            uploaded, downloaded = round_trip(transport, host_port)
        assert uploaded == expected_upload() and server.received == UPLOAD
        assert downloaded == hashlib.sha256(DOWNLOAD).hexdigest()
        assert not forwarding_ssh(server.port)  # ended by its PID with the forward
        closed = transport.run(f"bash -c 'exec 3<>/dev/tcp/127.0.0.1/{host_port}' 2>/dev/null; echo $?")
        assert closed.stdout.strip() != "0"  # nothing listens on the host any more
    finally:
        server.close()


def test_a_key_other_than_the_verified_one_is_refused_and_paramiko_forwards(
    transport: SSHTransport, tmp_path: Path
) -> None:
    transport.connect()
    transport.run("true", stdout=io.BytesIO())  # a bulk stream pins the verified key
    assert transport._pin is not None
    transport._pin.path.write_text(f"{openssh.PIN_ALIAS} {keygen(tmp_path / 'impostor', 'x')}\n")
    server = HashServer()
    try:
        with transport.forward_remote(server.port) as host_port:
            assert transport.openssh_forwards == 0 and not forwarding_ssh(server.port)
            uploaded, downloaded = round_trip(transport, host_port)
        assert uploaded == expected_upload() and downloaded == hashlib.sha256(DOWNLOAD).hexdigest()
    finally:
        server.close()


def test_bulk_ssh_off_keeps_the_forward_on_paramiko(
    transport: SSHTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(openssh.DISABLE_ENV, "paramiko")
    server = HashServer()
    try:
        with transport.forward_remote(server.port) as host_port:
            uploaded, _ = round_trip(transport, host_port)
        assert transport.openssh_forwards == 0 and uploaded == expected_upload()
    finally:
        server.close()


def test_a_forward_for_little_data_stays_on_the_connection(transport: SSHTransport) -> None:
    """``bulk=False`` (a later engine night: only the change crosses): no ``ssh`` and no second SSH
    handshake, the bytes cross paramiko's forward intact."""
    server = HashServer()
    try:
        with transport.forward_remote(server.port, bulk=False) as host_port:
            assert transport.openssh_forwards == 0 and not forwarding_ssh(server.port)
            uploaded, downloaded = round_trip(transport, host_port)
        assert uploaded == expected_upload() and downloaded == hashlib.sha256(DOWNLOAD).hexdigest()
    finally:
        server.close()


def test_two_forwards_on_one_connection_each_reach_their_own_server(transport: SSHTransport) -> None:
    """paramiko keeps one forward handler per connection: each channel must still reach the server
    of the port it arrived on, and closing one forward must leave the other working."""
    first, second = HashServer(), HashServer()
    try:
        with transport.forward_remote(first.port, bulk=False) as first_port:
            with transport.forward_remote(second.port, bulk=False) as second_port:
                assert round_trip(transport, second_port)[0] == expected_upload()
                assert second.received == UPLOAD and first.received == 0
            closed = transport.run(f"bash -c 'exec 3<>/dev/tcp/127.0.0.1/{second_port}' 2>/dev/null; echo $?")
            assert closed.stdout.strip() != "0"  # the second listener is gone
            assert round_trip(transport, first_port)[0] == expected_upload()  # the first still works
            assert first.received == UPLOAD
    finally:
        first.close()
        second.close()
