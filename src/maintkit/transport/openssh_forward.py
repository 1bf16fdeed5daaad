"""The engine's remote port forward through the system OpenSSH client (``ssh -N -R``).

Why: restic on the host writes every new chunk of a night through this forward. Over paramiko
(:mod:`maintkit.transport.ssh.forward`) each of those bytes is decrypted in Python, in threads that
share one GIL with the rest of the run, and each HTTP request crosses two Python copy threads; with
many small requests that measured up to 1.9x slower than OpenSSH's ``-R`` (docs/performance.md,
"Incremental engine" (b)). ``ssh`` moves the same bytes in C in its own process, as it already does
for bulk streams (:mod:`maintkit.transport.openssh`).

Same trust as the paramiko connection, exactly as for bulk streams: the host key is the one that
connection verified, pinned alone in a private known_hosts file with ``StrictHostKeyChecking=yes``;
host, port, user and identity files are the ones fabric resolved; ``-F /dev/null``, ``BatchMode``.
AES-GCM is preferred over OpenSSH's default chacha20-poly1305 (:data:`CIPHERS`). The forward itself
is what paramiko asks for: sshd listens on the host's 127.0.0.1 on a port it
picks (``-R 127.0.0.1:0:…``), and every connection there reaches the control node's
127.0.0.1:PORT, nothing else (``-N``: no command, no shell on the host).

sshd's answer is read from ssh's own line ``Allocated port N for remote forward to …`` (printed at
``LogLevel=INFO``); ``ExitOnForwardFailure=yes`` makes a refused forward end ssh at once. When
``ssh`` cannot give a forward (no client, ``MAINTKIT_BULK_SSH=paramiko``, a gateway host, a key
that needs a passphrase, a refusal), the caller falls back to paramiko's forward, which names a
refusal precisely (the preflight's message).
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType

from maintkit.transport import openssh
from maintkit.transport.openssh import BulkTarget

#: ssh's line (LogLevel INFO) giving the port sshd picked on the host
_ALLOCATED = re.compile(rb"Allocated port (\d+) for remote forward")
#: what is kept of ssh's stderr for a message
_KEEP = 4000
#: OpenSSH's default ciphers with AES-GCM first: with AES-NI (every x86-64 and arm64 server CPU of the
#: last decade) it costs ssh and sshd about half the CPU of chacha20-poly1305 per GB (measured:
#: 0.57 + 0.78 s against 1.22 + 1.52 s for 1 GB, docs/performance.md), CPU a first restic night needs.
#: Only the order differs from the default: nothing weaker is offered, and a server without AES-GCM
#: still agrees on chacha20-poly1305 or AES-CTR.
CIPHERS = (
    "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,"
    "aes128-ctr,aes192-ctr,aes256-ctr"
)


class ForwardUnavailable(Exception):
    """``ssh`` could not open the forward (the message says why); nothing listens on the host."""


def forward_argv(program: str, target: BulkTarget, known_hosts: Path, local_port: int) -> list[str]:
    """``ssh -N -R 127.0.0.1:0:127.0.0.1:PORT`` to the pinned host (no command, no stdin)."""
    argv = openssh.pinned_options(program, target, known_hosts)
    options = [
        "-N", "-n",
        "-o", "ClearAllForwardings=no",
        "-o", "ExitOnForwardFailure=yes",
        "-o", "LogLevel=INFO",
        "-o", f"Ciphers={CIPHERS}",
        "-R", f"127.0.0.1:0:127.0.0.1:{int(local_port)}",
    ]  # fmt: skip
    return [*argv[:1], *options, *argv[1:], "--", target.host]


class OpenSSHForward:
    """A running ``ssh -N -R``: :attr:`port` is the host-side port; ended by its PID on exit.

    Use as a context manager after :meth:`start`.
    """

    def __init__(self, argv: list[str], timeout: float) -> None:
        self.argv = argv
        self.timeout = timeout
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr = bytearray()
        self._found = threading.Event()
        self._reader: threading.Thread | None = None

    def start(self) -> OpenSSHForward:
        """Start ssh and wait for sshd's allocated port; raise :class:`ForwardUnavailable` otherwise."""
        try:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,  # a Ctrl-C reaches maintkit, which ends ssh by its PID
            )
        except OSError as error:
            raise ForwardUnavailable(f"ssh could not start: {error}") from error
        self._reader = threading.Thread(target=self._read, daemon=True, name="ssh-forward-stderr")
        self._reader.start()
        try:
            self._wait_for_port()
        except BaseException:  # refused, timed out, or interrupted: no ssh is left behind
            self.stop()
            raise
        return self

    def _wait_for_port(self) -> None:
        proc, reader = self._proc, self._reader
        assert proc is not None and reader is not None
        deadline = time.monotonic() + self.timeout
        while not self._found.wait(0.05):
            if proc.poll() is not None or time.monotonic() > deadline:
                reader.join(timeout=1)
                if self._found.is_set():
                    return
                raise ForwardUnavailable(self.stderr().strip()[-300:] or f"ssh exited {proc.returncode}")

    def _read(self) -> None:
        """Drain ssh's stderr (it must never block on a full pipe), noting the allocated port."""
        proc = self._proc
        assert proc is not None and proc.stderr is not None
        for line in proc.stderr:
            if len(self._stderr) < _KEEP:
                self._stderr += line
            match = _ALLOCATED.search(line)
            if match and not self._found.is_set():
                self.port = int(match.group(1))
                self._found.set()

    def stderr(self) -> str:
        return bytes(self._stderr).decode("utf-8", "replace")

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        """End ssh by its PID (sshd closes the listener on the host with the connection)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self._reader is not None:
            self._reader.join(timeout=5)
        if proc.stderr is not None:
            proc.stderr.close()

    def __enter__(self) -> OpenSSHForward:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
