"""Bulk streams through the system OpenSSH client, under the host key maintkit already verified.

Why: paramiko moves every byte through Python: 150-240 MB/s at 3-4 s of CPU per GB, in threads that
share one GIL with every other host of the run, and its client-side rekey (every 512 MiB) can
deadlock against a channel close (paramiko#822). A snapshot is gigabytes; ``ssh`` moves them at
about 1 s of CPU per GB in its own process and rekeys correctly (docs/performance.md has the
figures). Short commands stay on the paramiko connection: a channel on an open connection is
cheaper than a process and a handshake per command.

Same trust, same account as the paramiko connection:

* the host key is the one the paramiko connection verified (known_hosts files, ``@revoked``,
  accept-new): it is written, alone, to a private known_hosts file, and ``ssh`` runs with
  ``StrictHostKeyChecking=yes``, that file only, ``HostKeyAlias`` and ``HostKeyAlgorithms`` pinned
  to it: any other key is refused, nothing is ever added;
* host, port, user and identity files are the ones fabric resolved (inventory, then
  ``~/.ssh/config``); ``-F /dev/null`` keeps any ssh_config option from changing them; the agent is
  used as paramiko uses it; ``BatchMode`` forbids prompts;
* direct connections only: a ProxyJump or ProxyCommand host keeps paramiko for everything.

When ``ssh`` cannot start the command (no client installed, a key that needs a passphrase, a refused
host key) nothing ran on the host: the caller sends the command over paramiko instead, and keeps
doing so for that host. ``MAINTKIT_BULK_SSH=paramiko`` turns bulk streaming through ``ssh`` off.

One handshake for all of a host's streams: the streams share one master connection (OpenSSH's
``ControlMaster``, as Ansible's ``ControlPersist``). Measured here (docs/performance.md): a new
``ssh`` connection costs ~105 ms of CPU (OpenSSH 9's default key exchange, sntrup761x25519, is most
of it), a session on an open master ~7 ms. A run's masters live in its pinned-key folder and are
closed with the transport; a fleet (:func:`shared_connections`) keeps one per account (host, port,
user, identity files, verified key) for all its sites, and closes them when it ends. The master is
started by the first stream with the pinned key, so every later stream rides a connection whose
host key was verified; a master that refuses a session (sshd's ``MaxSessions``) or has died makes
``ssh`` connect on its own, as before.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import selectors
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from maintkit.transport.streams import CHUNK, StdinFeeder, abort_reason, wait_slice

DISABLE_ENV = "MAINTKIT_BULK_SSH"
#: a private folder where the runs a fleet (or worker) starts keep their shared master connections
SHARE_ENV = "MAINTKIT_SSH_CONTROL_DIR"
#: seconds an idle master connection stays (a run that was killed leaves none for longer)
CONTROL_PERSIST = 30
#: a Unix socket's path has ~108 bytes; ``ssh`` adds a 17-byte suffix while it binds
_MAX_CONTROL_PATH = 88
#: what ``ssh`` prints when a master refused a session and it connected on its own (not the command's)
_MUX_NOTICE = re.compile(
    r"^(mux_client_request_session: session request failed: .*|ControlSocket .* already exists, "
    r"disabling multiplexing)\r?\n",
    re.MULTILINE,
)
PIN_ALIAS = "maintkit-pinned-host"
#: read size for the client's stdout; the pipe is enlarged to match (fewer wake-ups per GB). The
#: sinks still receive at most ``CHUNK`` (64 KiB) per write, as the transport contract says.
BULK_CHUNK = 1 << 20
#: ssh's own fatal messages (exit status 255 also means "the remote command exited 255")
_SSH_FAILURE = re.compile(
    rb"^(ssh: |client_loop: |Connection to .* closed|Connection closed by |Timeout, server |"
    rb"Broken pipe|packet_write_wait|kex_exchange_identification|mux_client_read_packet)",
    re.MULTILINE,
)
#: paramiko host key names that stand for several signature algorithms
_ALGORITHMS = {"ssh-rsa": "rsa-sha2-512,rsa-sha2-256,ssh-rsa"}


class BulkUnavailable(Exception):
    """``ssh`` could not start the command; nothing ran on the host."""


class _Writable(Protocol):
    def write(self, data: bytes, /) -> object: ...


@dataclass(frozen=True)
class BulkTarget:
    """Everything ``ssh`` needs to reach the host exactly as the paramiko connection did."""

    host: str
    port: int
    user: str
    identity_files: tuple[str, ...]
    connect_timeout: float
    key_name: str  # "ssh-ed25519", as paramiko names the verified key
    key_base64: str
    keepalive: int


def client() -> str | None:
    """The ``ssh`` program to use, or None when missing or turned off."""
    if os.environ.get(DISABLE_ENV, "").lower() == "paramiko":
        return None
    return shutil.which("ssh")


class PinnedHostKey:
    """A private known_hosts file holding exactly one verified key, removed by :meth:`remove`."""

    def __init__(self, target: BulkTarget) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="maintkit-ssh-"))  # 0700
        self.path = self.folder / "known_hosts"
        descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(f"{PIN_ALIAS} {target.key_name} {target.key_base64}\n")

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def pinned_options(program: str, target: BulkTarget, known_hosts: Path) -> list[str]:
    """``ssh`` and the options every use shares: the pinned key only, no config, no prompts, no
    agent or X11 forwarding; the account and identity files the paramiko connection used."""
    argv = [
        program,
        "-F", "/dev/null",
        "-T", "-x", "-a",
        "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={known_hosts}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", f"HostKeyAlias={PIN_ALIAS}",
        "-o", f"HostKeyAlgorithms={_ALGORITHMS.get(target.key_name, target.key_name)}",
        "-o", "UpdateHostKeys=no",
        "-o", "CheckHostIP=no",
        "-o", f"ConnectTimeout={max(1, round(target.connect_timeout))}",
        "-o", f"ServerAliveInterval={target.keepalive}",
        "-o", "ServerAliveCountMax=3",
        "-p", str(target.port),
        "-l", target.user,
    ]  # fmt: skip
    for identity in target.identity_files:
        argv += ["-i", identity]
    return argv


def ssh_argv(
    program: str, target: BulkTarget, known_hosts: Path, remote: str, control: Path | None = None
) -> list[str]:
    """The ``ssh`` command line that runs ``remote`` on the pinned host, no config, no prompts;
    through the master connection at ``control`` (started by this stream if there is none yet)."""
    argv = pinned_options(program, target, known_hosts)
    options = ["-o", "ClearAllForwardings=yes", "-o", "LogLevel=ERROR"]
    if control is not None:
        options += ["-o", "ControlMaster=auto", "-o", f"ControlPath={control}"]
        options += ["-o", f"ControlPersist={CONTROL_PERSIST}"]
    return [*argv[:1], *options, *argv[1:], "--", target.host, remote]


def control_path(folder: Path, target: BulkTarget) -> Path | None:
    """The master connection's socket for this account and verified key in ``folder`` (None: the
    path would be too long for a Unix socket, so no master)."""
    account = (
        target.host,
        target.port,
        target.user,
        target.identity_files,
        target.key_name,
        target.key_base64,
    )
    path = folder / hashlib.sha256(repr(account).encode()).hexdigest()[:24]
    return path if len(os.fsencode(path)) <= _MAX_CONTROL_PATH else None


def shared_folder() -> Path | None:
    """The fleet's folder of shared master connections, when this run was started by one."""
    value = os.environ.get(SHARE_ENV)
    if not value:
        return None
    folder = Path(value)
    try:
        info = folder.lstat()
    except OSError:
        return None
    private = info.st_uid == os.getuid() and info.st_mode & 0o077 == 0
    return folder if private and folder.is_dir() and not folder.is_symlink() else None


def close_master(program: str, control: Path) -> None:
    """Ask the master connection at ``control`` to exit (its sessions, if any, end with it)."""
    if not control.is_socket():
        return
    argv = [program, "-F", "/dev/null", "-o", f"ControlPath={control}", "-O", "exit", "maintkit-master"]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=10, check=False)


def close_masters(folder: Path) -> None:
    """Close every master connection whose socket is in ``folder``."""
    program = shutil.which("ssh")
    for control in folder.iterdir() if program else ():
        close_master(str(program), control)


@contextlib.contextmanager
def shared_connections() -> Iterator[Path]:
    """While inside: the runs started from this process (the fleet's sites, a worker's) share one
    master connection per account, in a private folder; at the end every master is closed."""
    folder = Path(tempfile.mkdtemp(prefix="mk-ssh-"))  # 0700
    previous = os.environ.get(SHARE_ENV)
    os.environ[SHARE_ENV] = str(folder)
    try:
        yield folder
    finally:
        if previous is None:
            os.environ.pop(SHARE_ENV, None)
        else:
            os.environ[SHARE_ENV] = previous
        close_masters(folder)
        shutil.rmtree(folder, ignore_errors=True)


def without_mux_notices(stderr: str) -> str:
    """The command's stderr without ``ssh``'s notices that it connected on its own."""
    return _MUX_NOTICE.sub("", stderr)


def start(argv: list[str]) -> subprocess.Popen[bytes]:
    """Start ``ssh`` in its own session (a Ctrl-C reaches the engine, which stops the command)."""
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
        start_new_session=True,
    )
    assert proc.stdout is not None
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(proc.stdout.fileno(), fcntl.F_SETPIPE_SZ, BULK_CHUNK)
    return proc


def pipe_writer(stream: IO[bytes]) -> Callable[[bytes], None]:
    """Write all of ``data`` to the client's stdin (raw pipes may take part of it)."""
    descriptor = stream.fileno()

    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view) :]

    return write


def pump(
    proc: subprocess.Popen[bytes],
    out: _Writable,
    err: _Writable,
    deadline: float | None,
    cancel: threading.Event | None,
    feeder: StdinFeeder,
    tick: Callable[[], None] = lambda: None,
) -> str | None:
    """Move the client's output to the sinks until it exits; return why to abort, if so.

    ``tick`` runs after every wake-up (the caller starts sending stdin from it).
    """
    assert proc.stdout is not None and proc.stderr is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ, out)
    selector.register(proc.stderr, selectors.EVENT_READ, err)
    try:
        while selector.get_map():
            reason = abort_reason(deadline, cancel, feeder)
            if reason is not None:
                return reason
            for key, _events in selector.select(wait_slice(deadline)):
                data = os.read(key.fd, BULK_CHUNK)
                if data:
                    for start in range(0, len(data), CHUNK):  # sinks get at most CHUNK at a time
                        key.data.write(data[start : start + CHUNK])
                else:
                    selector.unregister(key.fileobj)
            tick()
        tick()
        while True:
            try:
                proc.wait(timeout=wait_slice(deadline) or 0.001)
                return None
            except subprocess.TimeoutExpired:
                reason = abort_reason(deadline, cancel, feeder)
                if reason is not None:
                    return reason
    finally:
        selector.close()


def stop(proc: subprocess.Popen[bytes]) -> None:
    """End the client (by its PID) and close its pipes; the remote command is killed separately."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def lost_connection(stderr: bytes) -> bool:
    """True when exit status 255 came with ssh's own failure message (not the command's)."""
    return bool(_SSH_FAILURE.search(stderr))
