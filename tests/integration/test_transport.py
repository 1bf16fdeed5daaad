"""SSHTransport against real OpenSSH servers: streaming, killing, secrets, host keys, reuse.

No mocks: every property is observed where it matters (the remote process list, the bytes that
arrive, the known_hosts file OpenSSH reads).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import random
import socket
import stat
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest
from fabric import Connection

from maintkit.model.hosts import Host
from maintkit.model.problems import CommandTimeout, HostKeyError, Interrupted, TransportError
from maintkit.transport.base import TAIL_BYTES
from maintkit.transport.ssh.transport import SSHTransport
from tests.sshd import SSHHost, free_port, keygen, write_known_hosts

pytestmark = pytest.mark.integration

MiB = 2**20


# -- helpers ----------------------------------------------------------------------------------------


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def processes(user: str | None = None) -> list[str]:
    """``STAT ARGS`` of live (non-zombie) processes, of one user or of everyone, seen locally by ps."""
    # ww: unlimited width; without it ps cuts lines at 80 columns when writing to a pipe
    argv = ["ps", "ww", "-u", user, "-o", "stat=,args="] if user else ["ps", "ww", "-e", "-o", "stat=,args="]
    out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
    return [line.strip() for line in out.splitlines() if line.strip() and not line.strip().startswith("Z")]


def running(user: str, needle: str) -> list[str]:
    return [p for p in processes(user) if needle in p]


def fingerprint_of(public_key_line: str, tmp_path: Path) -> str:
    """The SHA256 fingerprint as OpenSSH's ssh-keygen prints it (the reference, not our code)."""
    pub = tmp_path / f"key-{uuid.uuid4().hex}.pub"
    pub.write_text(public_key_line + "\n")
    out = subprocess.run(["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True, check=True).stdout
    return out.split()[1]


class RandomStream:
    """A binary file-like of ``size`` pseudo-random bytes, produced on demand and hashed as read."""

    def __init__(self, size: int, seed: int = 7) -> None:
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
    """A stdout sink that keeps nothing but a hash, a count and the largest chunk seen."""

    def __init__(self) -> None:
        self.sha = hashlib.sha256()
        self.total = 0
        self.largest_chunk = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.total += len(data)
        self.largest_chunk = max(self.largest_chunk, len(data))
        return len(data)


@contextlib.contextmanager
def bashrc_of(ssh_host: SSHHost, text: str) -> Iterator[None]:
    """Give the host's user a ``.bashrc`` for the duration; the old one (or none) comes back."""
    bashrc = ssh_host.home / ".bashrc"
    old = bashrc.read_bytes() if bashrc.exists() else None
    bashrc.write_text(text)
    try:
        yield
    finally:
        if old is None:
            bashrc.unlink()
        else:
            bashrc.write_bytes(old)


def inventory_host(ssh_host: SSHHost, known_hosts: Path | None, **changes: Any) -> Host:
    fields: dict[str, Any] = {
        "name": ssh_host.name,
        "address": ssh_host.address,
        "port": ssh_host.port,
        "user": ssh_host.user,
        "key_file": str(ssh_host.key_file),
        "known_hosts": str(known_hosts) if known_hosts else None,
    }
    return Host(**{**fields, **changes})


@pytest.fixture
def connect(tmp_path: Path) -> Iterator[Callable[..., SSHTransport]]:
    """Make SSHTransports that never touch root's ~/.ssh, and close them all after the test."""
    made: list[SSHTransport] = []

    def make(
        host: Host, accept_new_host_keys: bool = False, user_known_hosts: Path | None = None
    ) -> SSHTransport:
        transport = SSHTransport(
            host,
            accept_new_host_keys=accept_new_host_keys,
            user_known_hosts=user_known_hosts or tmp_path / "user-home-ssh" / "known_hosts",
        )
        made.append(transport)
        return transport

    yield make
    for transport in made:
        transport.close()


@pytest.fixture
def stage1(ssh_hosts: dict[str, SSHHost]) -> SSHHost:
    return ssh_hosts["stage1"]


@pytest.fixture
def transport(connect: Callable[..., SSHTransport], stage1: SSHHost, known_hosts_file: Path) -> SSHTransport:
    return connect(inventory_host(stage1, known_hosts_file))


# -- running commands -------------------------------------------------------------------------------


def test_run_returns_rc_stdout_and_stderr_without_the_pid_line(
    transport: SSHTransport, stage1: SSHHost
) -> None:
    result = transport.run("echo out; echo err >&2; whoami; exit 3")
    assert result.rc == 3 and not result.ok  # a failing command is a result, not an exception
    assert result.stdout == f"out\n{stage1.user}\n"
    assert result.stderr == "err\n"
    assert result.stdout_bytes == len(result.stdout) and result.stderr_bytes == 4
    assert result.command == "echo out; echo err >&2; whoami; exit 3"
    assert transport.run("pwd").stdout.strip() == str(stage1.home)


def test_a_command_killed_by_a_signal_is_a_failed_result(transport: SSHTransport) -> None:
    assert transport.run("kill -KILL $$").rc != 0


def test_stdin_none_reads_eof_and_bytes_are_passed(transport: SSHTransport) -> None:
    assert transport.run("cat", timeout=10).stdout == ""
    assert transport.run("cat", stdin=b"hello\x00world").stdout == "hello\x00world"
    assert transport.run("wc -c", stdin=io.BytesIO(b"x" * 200_000)).stdout.strip() == "200000"


def test_50_mib_stream_through_cat_arrives_intact_in_bounded_chunks(transport: SSHTransport) -> None:
    source, sink = RandomStream(50 * MiB), HashSink()
    result = transport.run("cat", stdin=source, stdout=sink, timeout=60)
    assert result.rc == 0
    assert sink.total == result.stdout_bytes == 50 * MiB
    assert sink.sha.hexdigest() == source.sha.hexdigest()
    assert source.largest_read <= 64 * 1024 and sink.largest_chunk <= 64 * 1024
    assert result.stdout == ""  # with a sink, nothing is kept


def test_without_a_sink_only_a_bounded_tail_is_kept(transport: SSHTransport) -> None:
    result = transport.run("head -c 20000000 /dev/zero | tr '\\0' x; echo; echo END")
    assert result.stdout_bytes == 20_000_000 + 5
    assert len(result.stdout) <= TAIL_BYTES
    assert result.stdout.endswith("xxx\nEND\n")


def test_env_values_are_quoted(transport: SSHTransport) -> None:
    marker = f"/tmp/pwned-{uuid.uuid4().hex}"
    nasty = f"'; touch {marker}; '"
    result = transport.run(
        'printf "%s|%s|%s" "$A" "$B" "$C"', env={"A": nasty, "B": f"$(touch {marker})", "C": "`id`\n2"}
    )
    assert result.stdout == f"{nasty}|$(touch {marker})|`id`\n2"
    assert not Path(marker).exists()


# -- timeouts and cancellation kill the remote command ----------------------------------------------


def test_timeout_kills_the_whole_remote_command(transport: SSHTransport, stage1: SSHHost) -> None:
    started = time.monotonic()
    with pytest.raises(
        CommandTimeout, match=rf"stage1 \({stage1.user}@127\.0\.0\.1:\d+\): command timed out"
    ):
        transport.run("sleep 621 & sleep 622; echo never", timeout=0.5)
    assert time.monotonic() - started < 5
    wait_for(lambda: not running(stage1.user, "sleep 62"), what="the remote sleeps to be killed")
    # the connection survives a killed command
    assert transport.run("echo still here").stdout == "still here\n"
    assert transport.connect_count == 1


def test_cancel_kills_the_remote_command(transport: SSHTransport, stage1: SSHHost) -> None:
    cancel = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            transport.run("sleep 631", cancel=cancel)
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    wait_for(lambda: running(stage1.user, "sleep 631"), what="the remote sleep to start")
    cancel.set()
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], Interrupted)
    wait_for(lambda: not running(stage1.user, "sleep 631"), what="the remote sleep to be killed")


def test_a_failing_sink_stops_the_remote_command_and_propagates(
    transport: SSHTransport, stage1: SSHHost
) -> None:
    class Broken:
        def write(self, data: bytes) -> None:
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        transport.run("echo start; sleep 641", stdout=Broken())
    wait_for(lambda: not running(stage1.user, "sleep 641"), what="the remote sleep to be killed")


def test_a_failing_stdin_source_kills_the_command_instead_of_sending_eof(
    transport: SSHTransport, stage1: SSHHost
) -> None:
    name = f"partial-{uuid.uuid4().hex}"

    class Failing:
        calls = 0

        def read(self, n: int) -> bytes:
            self.calls += 1
            if self.calls > 3:
                raise OSError("upstream broke")
            return b"y" * n

    with pytest.raises(OSError, match="upstream broke"):
        transport.run(f"dd of={name} bs=64k 2>/dev/null; touch {name}.complete", stdin=Failing())
    wait_for(lambda: not running(stage1.user, name), what="the remote dd to be killed")
    assert not (stage1.home / f"{name}.complete").exists()  # a truncated input never looks complete
    transport.run(f"rm -f {name} {name}.complete")


# -- secrets ----------------------------------------------------------------------------------------


def test_secret_command_and_env_never_appear_in_the_process_list(
    transport: SSHTransport, stage1: SSHHost
) -> None:
    secret, secret_env, plain, quiet = (
        f"CANARY-{kind}-{uuid.uuid4().hex}" for kind in ("cmd", "env", "plain", "session")
    )
    results: dict[str, Any] = {}

    def run(key: str, command: str, **kwargs: Any) -> None:
        results[key] = transport.run(command, **kwargs)

    threads = [
        # the plain run is the control: it proves that this observation does see command lines
        # (the trailing "true" keeps bash from exec-ing sleep, so its command line stays visible;
        # stdin gives it a channel of its own, where the command is on sshd's command line)
        threading.Thread(target=run, args=("plain", f": {plain}; sleep 2.12; true"), kwargs={"stdin": b""}),
        threading.Thread(
            target=run,
            args=("secret", f': {secret}; sleep 2.11; echo "$TOKEN"'),
            kwargs={"secret": True, "env": {"TOKEN": secret_env}, "stdin": b""},
        ),
        # no input: the long-lived session runs it, where no command is ever on a command line
        threading.Thread(target=run, args=("session", f": {quiet}; sleep 2.13; true")),
    ]
    for thread in threads:
        thread.start()
    seen: list[str] = []
    while any(t.is_alive() for t in threads):
        seen.extend(processes())
    for thread in threads:
        thread.join()
    assert any("sleep 2.11" in p for p in seen), "the secret command was never observed running"
    assert any("sleep 2.13" in p for p in seen), "the session command was never observed running"
    assert any(plain in p for p in seen), "the control command line was never observed"
    assert not [p for p in seen if secret in p or secret_env in p or quiet in p]
    assert results["session"].rc == 0
    assert results["secret"].stdout == f"{secret_env}\n"


def test_secret_mode_passes_the_callers_stdin_after_the_command(transport: SSHTransport) -> None:
    result = transport.run("cat; echo; cat", stdin=io.BytesIO(b"payload"), secret=True)
    assert result.stdout == "payload\n"


# -- host keys --------------------------------------------------------------------------------------


def test_unknown_host_key_is_refused_and_nothing_is_written(
    connect: Callable[..., SSHTransport], ssh_hosts: dict[str, SSHHost], tmp_path: Path
) -> None:
    stage1 = ssh_hosts["stage1"]
    known = write_known_hosts(tmp_path / "known_hosts", [ssh_hosts["prod1"], ssh_hosts["prod2"]])
    before = known.read_bytes()
    transport = connect(inventory_host(stage1, known))
    with pytest.raises(HostKeyError) as caught:
        transport.run("true")
    message = str(caught.value)
    assert not isinstance(caught.value, TransportError)  # never retried
    assert f"{stage1.user}@127.0.0.1:{stage1.port}" in message
    assert "ssh-ed25519" in message
    assert fingerprint_of(stage1.host_public_key_line, tmp_path) in message
    assert "--accept-new-host-keys" in message and "accept_new_host_keys: true" in message
    assert "ssh-keyscan" in message
    assert known.read_bytes() == before
    assert not (tmp_path / "user-home-ssh").exists()
    assert transport.connection is None


def test_accept_new_appends_the_key_in_openssh_format(
    connect: Callable[..., SSHTransport], stage1: SSHHost, tmp_path: Path
) -> None:
    known = tmp_path / "fresh" / "known_hosts"  # neither the folder nor the file exist yet
    assert connect(inventory_host(stage1, known), accept_new_host_keys=True).run("echo ok").stdout == "ok\n"
    assert known.read_text() == f"[127.0.0.1]:{stage1.port} {stage1.host_public_key_line}\n"
    assert stat.S_IMODE(known.stat().st_mode) == 0o600
    assert stat.S_IMODE(known.parent.stat().st_mode) == 0o700
    # OpenSSH itself finds the entry
    found = subprocess.run(
        ["ssh-keygen", "-F", f"[127.0.0.1]:{stage1.port}", "-f", str(known)], capture_output=True, text=True
    )
    assert found.returncode == 0 and stage1.host_public_key_line in found.stdout
    # and the next connection trusts it without the flag, writing nothing more
    assert connect(inventory_host(stage1, known)).run("echo again").stdout == "again\n"
    assert known.read_text().count("\n") == 1


def test_accept_new_without_inventory_file_appends_to_the_users_known_hosts(
    connect: Callable[..., SSHTransport], ssh_hosts: dict[str, SSHHost], tmp_path: Path
) -> None:
    stage1 = ssh_hosts["stage1"]
    user_file = tmp_path / "dot-ssh" / "known_hosts"
    user_file.parent.mkdir()
    user_file.write_text(ssh_hosts["prod1"].known_hosts_line.rstrip("\n"))  # no final newline
    transport = connect(inventory_host(stage1, None), accept_new_host_keys=True, user_known_hosts=user_file)
    transport.connect()
    assert user_file.read_text().splitlines() == [
        ssh_hosts["prod1"].known_hosts_line.rstrip("\n"),
        stage1.known_hosts_line.rstrip("\n"),
    ]


def test_a_changed_key_is_refused_even_with_accept_new(
    connect: Callable[..., SSHTransport], ssh_hosts: dict[str, SSHHost], tmp_path: Path
) -> None:
    stage1 = ssh_hosts["stage1"]
    impostor = keygen(tmp_path / "other_host_key")
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{stage1.port} {impostor}\n")
    before = known.read_bytes()
    with pytest.raises(HostKeyError) as caught:
        connect(inventory_host(stage1, known), accept_new_host_keys=True).connect()
    message = str(caught.value)
    assert "CHANGED" in message and str(known) in message
    assert fingerprint_of(stage1.host_public_key_line, tmp_path) in message
    assert fingerprint_of(impostor, tmp_path) in message
    assert known.read_bytes() == before


def test_hashed_known_hosts_entries_are_read(
    connect: Callable[..., SSHTransport], stage1: SSHHost, tmp_path: Path
) -> None:
    known = write_known_hosts(tmp_path / "known_hosts", [stage1])
    subprocess.run(["ssh-keygen", "-H", "-f", str(known)], check=True, capture_output=True)
    assert known.read_text().startswith("|1|")
    assert connect(inventory_host(stage1, known)).run("echo hashed").stdout == "hashed\n"


def test_keys_in_the_users_known_hosts_are_trusted(
    connect: Callable[..., SSHTransport], stage1: SSHHost, tmp_path: Path
) -> None:
    user_file = write_known_hosts(tmp_path / "user_known_hosts", [stage1])
    user_file.write_text(
        "@cert-authority *.example.com " + stage1.host_public_key_line + "\n" + user_file.read_text()
    )
    transport = connect(inventory_host(stage1, None), user_known_hosts=user_file)
    assert transport.run("echo trusted").stdout == "trusted\n"


def test_a_revoked_key_is_refused(
    connect: Callable[..., SSHTransport], stage1: SSHHost, tmp_path: Path
) -> None:
    known = write_known_hosts(tmp_path / "known_hosts", [stage1])
    with known.open("a") as fh:
        fh.write(f"@revoked * {stage1.host_public_key_line}\n")
    with pytest.raises(HostKeyError, match="revoked"):
        connect(inventory_host(stage1, known)).connect()


# -- the connection ---------------------------------------------------------------------------------


def test_one_connection_is_reused_for_many_commands(transport: SSHTransport) -> None:
    transport.connect()
    connection = transport.connection
    assert connection is not None
    paramiko_transport = connection.transport
    for i in range(50):
        assert transport.run(f"echo {i}").stdout == f"{i}\n"
    assert transport.connection is connection and connection.transport is paramiko_transport
    assert transport.connect_count == 1


# -- the long-lived session that short commands share -----------------------------------------------


def test_short_commands_share_one_session_and_keep_their_own_results(transport: SSHTransport) -> None:
    for i in range(30):
        result = transport.run(f"printf 'out{i}'; printf 'err{i}' >&2; exit {i % 4}")
        assert (result.stdout, result.stderr, result.rc) == (f"out{i}", f"err{i}", i % 4)
        assert result.stdout_bytes == len(f"out{i}") and result.stderr_bytes == len(f"err{i}")
    assert transport.session_count == 1 and transport.connect_count == 1


def test_session_commands_do_not_leak_state_into_the_next_one(
    transport: SSHTransport, stage1: SSHHost
) -> None:
    assert transport.run("cd /tmp; export LEAK=1; LOCAL=2; set -e; umask 077; exit 0").rc == 0
    result = transport.run('pwd; echo "[${LEAK-}][${LOCAL-}]"; false; echo after-false; umask')
    assert result.stdout == f"{stage1.home}\n[][]\nafter-false\n{transport.run('umask').stdout}"
    assert transport.run("cat", timeout=10).stdout == ""  # stdin is EOF, not the session's protocol
    assert transport.session_count == 1


def test_session_scripts_arrive_verbatim(transport: SSHTransport) -> None:
    script = "cat <<'EOF'\n  leading spaces\\ and a backslash\n\ttab $HOME `id`\n\nEOF\nprintf 'no newline'"
    result = transport.run(script)
    assert result.stdout == "  leading spaces\\ and a backslash\n\ttab $HOME `id`\n\nno newline"
    assert transport.run("echo 'unterminated").rc != 0  # a syntax error is the command's failure
    assert transport.run("echo fine").stdout == "fine\n"
    assert transport.session_count == 1


def test_a_timeout_in_the_session_kills_the_command_and_a_new_session_takes_over(
    transport: SSHTransport, stage1: SSHHost
) -> None:
    transport.run("true")
    with pytest.raises(CommandTimeout, match=r"timed out after 0\.5 s and was killed"):
        transport.run("sleep 641 & sleep 642; echo never", timeout=0.5)
    wait_for(lambda: not running(stage1.user, "sleep 64"), what="the remote sleeps to be killed")
    assert transport.run("echo again").stdout == "again\n"
    assert transport.session_count == 2 and transport.connect_count == 1


def test_a_command_that_kills_the_session_fails_alone(transport: SSHTransport) -> None:
    assert transport.run("kill -KILL $$").rc != 0  # $$ in a session command: the runner itself
    assert transport.run("echo next").stdout == "next\n"
    assert transport.session_count == 2


def test_rc_file_output_is_not_mixed_into_command_output(
    connect: Callable[..., SSHTransport], stage1: SSHHost, known_hosts_file: Path
) -> None:
    with bashrc_of(stage1, "echo noisy-rc-out; echo noisy-rc-err >&2\n"):
        result = connect(inventory_host(stage1, known_hosts_file)).run("echo clean")
    assert (result.stdout, result.stderr) == ("clean\n", "")


def test_a_login_shell_that_cannot_run_the_runner_falls_back_to_a_session_per_command(
    transport: SSHTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    # what a csh or fish login shell does with the POSIX runner: prints an error and exits
    monkeypatch.setattr("maintkit.transport.session.RUNNER", "echo 'Unsupported use of (.'; exit 1")
    result = transport.run("echo still works; exit 4")
    assert (result.stdout, result.rc) == ("still works\n", 4)
    assert transport.session_off is not None and "did not start" in transport.session_off
    assert transport.run("echo again").stdout == "again\n"
    assert transport.session_count == 0 and transport.connect_count == 1


def test_an_rc_file_that_sets_errexit_does_not_end_the_session(
    connect: Callable[..., SSHTransport], stage1: SSHHost, known_hosts_file: Path
) -> None:
    with bashrc_of(stage1, "set -e\n"):
        transport = connect(inventory_host(stage1, known_hosts_file))
        assert transport.run("false").rc == 1
        assert transport.run("echo alive").stdout == "alive\n"
    assert transport.session_count == 1


def test_the_session_can_be_turned_off(
    connect: Callable[..., SSHTransport], stage1: SSHHost, known_hosts_file: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("MAINTKIT_SSH_SESSION", "0")
    transport = connect(inventory_host(stage1, known_hosts_file))
    assert transport.run("echo per-command").stdout == "per-command\n"
    assert transport.session_count == 0


def test_tcp_nodelay_and_keepalive_are_set(transport: SSHTransport) -> None:
    transport.connect()
    assert transport.connection is not None
    paramiko_transport = transport.connection.transport
    sock = paramiko_transport.sock
    assert isinstance(sock, socket.socket)
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    assert paramiko_transport.packetizer._Packetizer__keepalive_interval == 15  # type: ignore[attr-defined]


def test_a_closed_port_raises_transport_error(connect: Callable[..., SSHTransport], stage1: SSHHost) -> None:
    port = free_port()
    host = inventory_host(stage1, None, port=port)
    started = time.monotonic()
    with pytest.raises(TransportError, match=rf"{stage1.user}@127\.0\.0\.1:{port}.*cannot connect"):
        connect(host).run("true")
    assert time.monotonic() - started < 5


def test_a_wrong_key_is_an_authentication_transport_error(
    connect: Callable[..., SSHTransport], stage1: SSHHost, known_hosts_file: Path, tmp_path: Path
) -> None:
    keygen(tmp_path / "stranger")
    host = inventory_host(stage1, known_hosts_file, key_file=str(tmp_path / "stranger"))
    with pytest.raises(TransportError, match="authentication failed"):
        connect(host).connect()


def test_a_connection_lost_mid_command_is_a_transport_error_and_the_next_run_reconnects(
    transport: SSHTransport,
) -> None:
    transport.connect()
    with pytest.raises(TransportError, match="connection lost"):
        transport.run("kill -KILL $PPID; sleep 5")  # $PPID: this connection's sshd process
    assert transport.run("echo back").stdout == "back\n"
    assert transport.connect_count == 2


def test_a_connection_that_died_while_idle_is_replaced_before_the_next_command(
    transport: SSHTransport,
) -> None:
    transport.connect()
    assert transport.connection is not None
    transport.connection.transport.sock.shutdown(socket.SHUT_RDWR)
    assert transport.run("echo fresh").stdout == "fresh\n"
    assert transport.connect_count == 2


def test_close_is_idempotent_and_the_transport_reopens_lazily(transport: SSHTransport) -> None:
    transport.run("true")
    transport.close()
    transport.close()
    assert transport.connection is None
    assert transport.run("echo reopened").stdout == "reopened\n"


def test_fabric_default_key_policy_is_replaced(transport: SSHTransport) -> None:
    transport.connect()
    assert transport.connection is not None
    policy = transport.connection.client._policy
    assert type(policy).__module__ == "maintkit.transport.hostkeys"
    assert isinstance(policy, paramiko.MissingHostKeyPolicy)


def test_proxyjump_from_ssh_config_is_honoured_and_the_gateway_key_is_checked(
    connect: Callable[..., SSHTransport],
    ssh_hosts: dict[str, SSHHost],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stage1, prod1 = ssh_hosts["stage1"], ssh_hosts["prod1"]
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text(
        f"Host behind-jump\n"
        f"    HostName 127.0.0.1\n    Port {stage1.port}\n    User {stage1.user}\n"
        f"    IdentityFile {stage1.key_file}\n"
        # "localhost", not 127.0.0.1: fabric ignores a jump host named like the target's HostName
        f"    ProxyJump {prod1.user}@localhost:{prod1.port}\n"
        f"Host localhost\n    IdentityFile {prod1.key_file}\n"
    )
    monkeypatch.setenv("HOME", str(home))  # fabric reads ~/.ssh/config
    known = write_known_hosts(tmp_path / "known_hosts", [stage1])
    with known.open("a") as fh:
        fh.write(f"[localhost]:{prod1.port} {prod1.host_public_key_line}\n")
    transport = connect(Host(name="behind", address="behind-jump", known_hosts=str(known)))
    assert transport.run("whoami").stdout == f"{stage1.user}\n"
    assert transport.connection is not None
    gateway = transport.connection.gateway
    assert isinstance(gateway, Connection) and gateway.is_connected
    assert f"{stage1.user}@127.0.0.1:{stage1.port}" in transport.label
    # the gateway's key is checked like any other
    only_target = write_known_hosts(tmp_path / "only_target", [stage1])
    with pytest.raises(HostKeyError, match=rf"gateway {prod1.user}@localhost:{prod1.port} of behind"):
        connect(Host(name="behind", address="behind-jump", known_hosts=str(only_target))).connect()
