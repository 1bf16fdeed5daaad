"""Real OpenSSH servers for integration tests: one ``sshd`` per test "host", each on its own port.

Why real sshd and not a paramiko stub: what we must prove (process groups that sshd creates, killing
remote commands, secrets absent from ``ps``, OpenSSH host-key formats, TCP behaviour) only exists in
the real server. Each host logs in as a dedicated Unix user, so each has its own home, i.e. its own
filesystem area, as separate servers would. Never root: root's ``.bashrc`` runs a slow ``pyenv init``.

Needs root (to create the users and to run sshd) and ``/usr/sbin/sshd``; without them the tests skip,
except under ``CI`` where nothing may skip and they fail instead.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from maintkit.transport.ssh.transport import SSHTransport

SSHD = Path("/usr/sbin/sshd")
READY_TIMEOUT = 10.0


@dataclass
class SSHHost:
    """How to reach one test host: the values an inventory entry would hold."""

    name: str
    address: str
    port: int
    user: str
    home: Path
    key_file: Path  # the client's private key
    host_public_key_line: str  # "ssh-ed25519 AAAA...", as in known_hosts after the host name

    @property
    def known_hosts_name(self) -> str:
        return f"[{self.address}]:{self.port}" if self.port != 22 else self.address

    @property
    def known_hosts_line(self) -> str:
        return f"{self.known_hosts_name} {self.host_public_key_line}\n"


def skip_or_fail(reason: str) -> None:
    """Skip the test, or fail it under CI (where a skipped integration test would hide a regression)."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: integration tests may not skip)", pytrace=False)
    pytest.skip(reason)


def require_sshd() -> None:
    if not SSHD.exists():
        skip_or_fail(f"{SSHD} is missing: install openssh-server to run the SSH integration tests")
    if os.geteuid() != 0:
        skip_or_fail("needs root to create test users")
    for tool in ("ssh-keygen", "useradd"):
        if shutil.which(tool) is None:
            skip_or_fail(f"{tool} is missing")


def ensure_user(name: str) -> Path:
    """Create the Unix user ``name`` with a plain home if needed; return its home.

    The password field is set to ``*`` (no password, but not *locked*): with ``UsePAM no`` sshd
    refuses accounts whose password starts with ``!``, which is what useradd writes.
    """
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        result = subprocess.run(
            ["useradd", "-m", "-s", "/bin/bash", name], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            try:  # another test session may have created it meanwhile
                pwd.getpwnam(name)
            except KeyError:
                raise RuntimeError(f"useradd {name} failed: {result.stderr.strip()}") from None
        entry = pwd.getpwnam(name)
    subprocess.run(["usermod", "-p", "*", name], check=True, capture_output=True)
    home = Path(entry.pw_dir)
    if not home.is_dir():
        home.mkdir(mode=0o755, parents=True)
        os.chown(home, entry.pw_uid, entry.pw_gid)
    return home


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def keygen(path: Path, comment: str = "") -> str:
    """Create an ed25519 key pair at ``path``; return the public line "ssh-ed25519 AAAA..."."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    kind, blob = path.with_suffix(".pub").read_text().split()[:2]
    return f"{kind} {blob}"


def _sshd_version() -> tuple[int, int]:
    result = subprocess.run([str(SSHD), "-V"], capture_output=True, text=True, check=False)
    match = re.search(r"OpenSSH_(\d+)\.(\d+)", result.stderr + result.stdout)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


class SSHServer:
    """One ``sshd -D -e`` on 127.0.0.1 letting exactly one user in, with throw-away keys.

    Files live in a fresh world-readable directory (sshd reads ``AuthorizedKeysFile`` as the user, so
    it must not sit under pytest's 0700 ``/tmp/pytest-of-root``).
    """

    def __init__(
        self,
        name: str,
        user: str,
        workdir: Path,
        client_key: Path,
        authorized_keys: Path,
        options: Iterable[str] = (),
    ) -> None:
        self.name = name
        self.options = list(options)  # extra sshd_config lines ("AllowTcpForwarding no")
        self.user = user
        self.workdir = workdir
        self.client_key = client_key
        self.authorized_keys = authorized_keys
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / f"{name}-sshd.log"
        self.host_key = workdir / f"{name}_host_ed25519_key"
        self.host_public_key_line = keygen(self.host_key, f"{name}-host")
        self.home = ensure_user(user)

    @property
    def host(self) -> SSHHost:
        return SSHHost(
            name=self.name,
            address="127.0.0.1",
            port=self.port,
            user=self.user,
            home=self.home,
            key_file=self.client_key,
            host_public_key_line=self.host_public_key_line,
        )

    def _config(self) -> str:
        lines = [
            f"Port {self.port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {self.host_key}",
            "PidFile none",
            "UsePAM no",
            "StrictModes no",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            f"AuthorizedKeysFile {self.authorized_keys}",
            f"AllowUsers {self.user}",
            "PermitRootLogin no",
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
            "MaxSessions 50",
            "MaxStartups 100:30:200",
            "Subsystem sftp internal-sftp",
            "LogLevel INFO",
        ]
        if _sshd_version() >= (9, 8):
            # Refused host keys disconnect before auth; penalties would then block 127.0.0.1.
            lines.append("PerSourcePenalties no")
        lines += self.options
        return "\n".join(lines) + "\n"

    def start(self) -> SSHHost:
        """Start sshd and wait (polling its log) until it listens; retry on a port race."""
        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
        last_log = ""
        for _attempt in range(5):
            self.port = free_port()
            config = self.workdir / f"{self.name}-sshd_config"
            config.write_text(self._config())
            config.chmod(0o644)
            with self.log.open("wb") as log:
                self.proc = subprocess.Popen(
                    [str(SSHD), "-D", "-e", "-f", str(config)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            if self._wait_ready():
                return self.host
            last_log = self.log.read_text(errors="replace")
            self.stop()
            if "Address already in use" not in last_log:
                break
        raise RuntimeError(f"sshd for {self.name} did not start:\n{last_log}")

    def _wait_ready(self) -> bool:
        assert self.proc is not None
        give_up = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < give_up:
            if "Server listening on" in self.log.read_text(errors="replace"):
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.01)  # polling interval, not a wait for readiness
        return False

    def stop(self) -> None:
        """Terminate this sshd (by its PID only); sessions still open end with their clients."""
        proc, self.proc = self.proc, None
        terminate(proc)


class SSHServers:
    """Several test hosts sharing one client key; use as a context manager or call :meth:`stop`."""

    def __init__(self, hosts: Iterable[tuple[str, str]], options: Iterable[str] = ()) -> None:
        """``hosts``: (host name, Unix user) pairs; ``options``: extra sshd_config lines for all of them."""
        options = list(options)
        require_sshd()
        self.workdir = Path(tempfile.mkdtemp(prefix="mk-sshd-"))
        self.workdir.chmod(0o755)
        self.client_key = self.workdir / "client_ed25519"
        client_public = keygen(self.client_key, "maintkit-tests")
        self.authorized_keys = self.workdir / "authorized_keys"
        self.authorized_keys.write_text(client_public + "\n")
        self.authorized_keys.chmod(0o644)
        self.servers: dict[str, SSHServer] = {}
        try:
            for name, user in hosts:
                server = SSHServer(name, user, self.workdir, self.client_key, self.authorized_keys, options)
                self.servers[name] = server
                server.start()
        except BaseException:
            self.stop()
            raise

    @property
    def hosts(self) -> dict[str, SSHHost]:
        return {name: server.host for name, server in self.servers.items()}

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> SSHServers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def write_known_hosts(path: Path, hosts: Iterable[SSHHost]) -> Path:
    """Write an OpenSSH known_hosts file trusting ``hosts``; return ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(h.known_hosts_line for h in hosts))
    path.chmod(0o600)
    return path


def empty_home(host: SSHHost) -> None:
    """Remove a test user's non-dot files and ``~/.maintkit`` (leaves ``.bashrc`` & co. alone)."""
    for entry in host.home.iterdir():
        if entry.name.startswith(".") and entry.name != ".maintkit":
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()


def terminate(proc: subprocess.Popen[bytes] | None) -> None:
    """End a process this test session started (by its PID): TERM, then KILL after 5 s."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


@contextlib.contextmanager
def open_transport(host: SSHHost, known_hosts_file: Path, tmp_path: Path) -> Iterator[SSHTransport]:
    """An SSHTransport to ``host`` as an inventory entry would describe it, never touching root's
    ``~/.ssh`` (its own known_hosts under ``tmp_path``); closed when the block ends."""
    from maintkit.model.hosts import Host
    from maintkit.transport.ssh.transport import SSHTransport

    made = SSHTransport(
        Host(
            name=host.name,
            address=host.address,
            port=host.port,
            user=host.user,
            key_file=str(host.key_file),
            known_hosts=str(known_hosts_file),
        ),
        user_known_hosts=tmp_path / "home-ssh" / "known_hosts",
    )
    try:
        yield made
    finally:
        made.close()
