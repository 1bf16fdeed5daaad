"""Bulk streams through the system OpenSSH client, and paramiko's rekey-during-close deadlock.

What must hold (docs/performance.md): a command whose output goes to a sink runs through ``ssh``
under the host key the paramiko connection verified, with the same kill-on-timeout and the same
results; a key other than the verified one is refused by ``ssh`` and the command runs over
paramiko instead; and a rekey that paramiko starts while a channel closes no longer stalls the
connection for ``clear_to_send_timeout``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from maintkit.model.problems import CommandTimeout
from maintkit.transport import openssh
from maintkit.transport.ssh.transport import SSHTransport
from tests.sshd import SSHHost, SSHServers, keygen, open_transport

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
    for control in transport._pin.folder.iterdir():  # the master idled out: the next stream connects
        openssh.close_master("ssh", control)
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
    for control in transport._pin.folder.iterdir():  # the master idled out: the next stream connects
        openssh.close_master("ssh", control)
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


def _logins(servers: SSHServers, name: str) -> int:
    """How many logins the sshd of ``name`` accepted so far (its log)."""
    server = servers.servers[name]
    return server.log.read_text(errors="replace").count(f"Accepted publickey for {server.user}")


def _masters(folder: Path) -> list[str]:
    """The master connections (``ssh: SOCKET [mux]``, as ssh names them) whose socket is in ``folder``."""
    out = subprocess.run(["ps", "ww", "-e", "-o", "args="], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line.startswith(f"ssh: {folder}/") and "[mux]" in line]


def test_a_run_s_streams_to_a_host_share_one_connection_closed_with_the_run(
    ssh_servers: SSHServers, ssh_hosts: dict[str, SSHHost], known_hosts_file: Path, tmp_path: Path
) -> None:
    """Each ``ssh`` connection costs ~105 ms of CPU (OpenSSH 9's key exchange); a run's streams to
    one host ride one master connection, whose process is gone when the transport closes."""
    before = _logins(ssh_servers, "prod2")
    with open_transport(ssh_hosts["prod2"], known_hosts_file, tmp_path) as transport:
        for _ in range(3):
            sink = HashSink()
            result = transport.run(STREAM, stdout=sink, timeout=60)
            assert result.rc == 0 and sink.sha.digest() == hashlib.sha256(expected_stream()).digest()
        failed = transport.run("echo broken >&2; exit 3", stdout=HashSink(), timeout=30)
        assert failed.rc == 3 and failed.stderr.strip() == "broken"
        assert transport.bulk_count == 4
        assert _logins(ssh_servers, "prod2") - before == 2  # paramiko's connection and one master
        folder = transport._pin.folder if transport._pin else None
        assert folder is not None and len(_masters(folder)) == 1
    assert not _masters(folder) and not folder.exists()


def test_a_fleet_s_sites_on_one_account_share_one_master_closed_with_the_fleet(
    ssh_servers: SSHServers, ssh_hosts: dict[str, SSHHost], known_hosts_file: Path, tmp_path: Path
) -> None:
    """Several sites of one server and one SSH user (the usual shared hosting): inside
    :func:`~maintkit.transport.openssh.shared_connections` their runs' streams share one master
    connection, which outlives each run and is closed when the fleet ends."""
    before = _logins(ssh_servers, "prod1")
    with openssh.shared_connections() as folder:
        assert folder.stat().st_mode & 0o077 == 0
        for site in range(3):  # three sites' runs, one after the other, each its own transport
            with open_transport(ssh_hosts["prod1"], known_hosts_file, tmp_path / f"s{site}") as transport:
                sink = HashSink()
                assert transport.run(STREAM, stdout=sink, timeout=60).rc == 0
                assert sink.total == 20_000_000
            assert len(_masters(folder)) == 1  # still there for the next site
        assert _logins(ssh_servers, "prod1") - before == 4  # three paramiko connections, one master
    assert not _masters(folder) and not folder.exists()
    assert openssh.SHARE_ENV not in os.environ


def test_a_master_that_refuses_a_session_is_no_error_of_the_command() -> None:
    """sshd's MaxSessions (10 by default) refused a shared master's session: ``ssh`` connects on
    its own and says so on stderr; the command's stderr is what the command wrote."""
    noise = (
        "mux_client_request_session: session request failed: Session open refused by peer\r\n"
        "ControlSocket /tmp/mk-ssh-x/abc already exists, disabling multiplexing\r\n"
    )
    assert openssh.without_mux_notices(noise + "tar: file changed as we read it\n") == (
        "tar: file changed as we read it\n"
    )
