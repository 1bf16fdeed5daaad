"""One long-lived shell session per host that runs short commands one after another.

Why: an SSH session per command costs the host a fork of sshd's session handler plus a login shell
that reads its rc files (~4-5 ms of host CPU, docs/performance.md), and costs the control node a
channel open/exec/close exchange (~1.3 ms of CPU and several round trips). A maintenance run is
mostly short commands, so one session per host that evaluates each command in a subshell of the same
login shell does the same work for a fraction of that: one data packet out, two back.

The protocol is plain text over the session's stdin/stdout/stderr, so it needs nothing on the host
but the POSIX shell every command already assumes:

* the session starts :data:`RUNNER` (always the same text: nothing about any command is ever on a
  command line) and sends a random token on its stdin; the runner answers ``TOKEN PID`` on stdout
  and ``TOKEN`` on stderr. ``PID`` is the login shell's process group (sshd makes it a session
  leader), which a timeout kills;
* each command goes to stdin as its lines followed by a line holding only the token; the runner runs
  it as ``(eval "$script") </dev/null``: a subshell, so ``cd``, ``set -e``, ``exit`` or variables do
  not leak into the next command; stdin reads EOF, as on a fresh session;
* after the subshell exits, the runner prints ``TOKEN RC`` on stdout and ``TOKEN`` on stderr. What
  came before the token on each stream is the command's output. The token is 128 random bits sent
  only over stdin, so a command cannot print it by accident.

A timeout or cancel kills the runner's whole process group (the command tree with it) and the
session is discarded; the next command starts a new one. Commands with input or a sink, and very
long scripts, do not come here (see :meth:`maintkit.transport.ssh.transport.SSHTransport.run`).
"""

from __future__ import annotations

import contextlib
import secrets
import select
import time
from collections.abc import Callable

import paramiko

from maintkit.transport.base import Sink, Tail
from maintkit.transport.streams import CHUNK, wait_slice

#: the remote loop (POSIX sh). ``read`` reads a pipe byte by byte, so it never takes more than a line.
#: ``set +e``: an rc file that turned errexit on would otherwise end the loop at the first failure.
RUNNER = (
    "set +e; IFS= read -r t || exit 0; "
    'printf \'%s %s\\n\' "$t" "$$"; printf \'%s\\n\' "$t" >&2; '
    "while :; do s=; "
    'while IFS= read -r l || exit 0; [ "$l" != "$t" ]; do s="$s$l\n"; done; '
    '(eval "$s") </dev/null; '
    'printf \'%s %s\\n\' "$t" "$?"; printf \'%s\\n\' "$t" >&2; '
    "done"
)
#: longer scripts go over their own channel: the runner reads a byte per system call
MAX_SCRIPT = 32 * 1024


class SessionLost(Exception):
    """The session ended before the command's result came back (the command may have run)."""

    def __init__(self, message: str, *, started: bool, status: int = -1) -> None:
        super().__init__(message)
        #: False: nothing of the command reached the runner, so it is safe to send it again
        self.started = started
        #: the runner's exit status, if the server sent one (-1: none)
        self.status = status


class Aborted(Exception):
    """The deadline passed or the cancel event was set while the command ran; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Framed:
    """One stream of a command's output up to the token; what follows it is kept in :attr:`after`."""

    def __init__(self, marker: bytes, sink: Tail) -> None:
        self.marker = marker
        self.sink = sink
        self.after: bytes | None = None
        self._pending = bytearray()

    def write(self, data: bytes) -> None:
        if self.after is not None:
            self.after += data
            return
        self._pending += data
        index = self._pending.find(self.marker)
        if index >= 0:
            if index:
                self.sink.write(bytes(self._pending[:index]))
            self.after = bytes(self._pending[index + len(self.marker) :])
            self._pending.clear()
            return
        keep = len(self.marker) - 1
        if len(self._pending) > keep:
            self.sink.write(bytes(self._pending[:-keep]))
            del self._pending[:-keep]

    def flush(self) -> None:
        """Hand over what was held back while looking for the token (the session ended without it)."""
        if self._pending:
            self.sink.write(bytes(self._pending))
            self._pending.clear()


class Session:
    """A runner started on ``transport``; not thread-safe (the caller holds a lock while it runs)."""

    def __init__(self, transport: paramiko.Transport, open_timeout: float) -> None:
        self.transport = transport
        self.token = "mk-" + secrets.token_hex(16)
        self._marker = self.token.encode("ascii")
        self.chan = transport.open_session(timeout=open_timeout)
        try:
            self.chan.exec_command(RUNNER)
            self.chan.sendall(self._marker + b"\n")
            # What rc files print before the runner answers is not any command's output: dropped.
            stdout, _ = self._pump(Tail(), Tail(), time.monotonic() + open_timeout, None)
            if not stdout.strip().isdigit():
                raise SessionLost(f"unexpected answer {stdout.strip()[:80]!r}", started=False)
        except BaseException:
            with contextlib.suppress(paramiko.SSHException, OSError, EOFError):
                self.chan.close()
            raise
        #: the process group of the runner and of every command it runs
        self.pgid = int(stdout.strip())

    @property
    def alive(self) -> bool:
        chan = self.chan
        return not (chan.closed or chan.eof_received or chan.exit_status_ready()) and bool(
            self.transport.is_active()
        )

    def run(
        self,
        script: str,
        out: Tail,
        err: Tail,
        deadline: float | None,
        cancel: Callable[[], bool] | None,
    ) -> int:
        """Run ``script``, its output into ``out``/``err``; return its exit status.

        Raises :class:`SessionLost` when the session ends first, :class:`Aborted` on a deadline or
        cancel (the caller kills :attr:`pgid` and drops the session).
        """
        payload = script.encode("utf-8")
        if not payload.endswith(b"\n"):
            payload += b"\n"
        try:
            self.chan.sendall(payload + self._marker + b"\n")
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise SessionLost(f"could not send the command: {exc}", started=False) from exc
        stdout, _ = self._pump(out, err, deadline, cancel)
        try:
            return int(stdout.strip())
        except ValueError:
            raise SessionLost(f"unexpected reply from the session runner: {stdout!r}", started=True) from None

    def _pump(
        self, out: Tail, err: Tail, deadline: float | None, cancel: Callable[[], bool] | None
    ) -> tuple[str, str]:
        """Read both streams up to the token; return the rest of each token line."""
        chan = self.chan
        stdout, stderr = _Framed(self._marker, out), _Framed(self._marker, err)
        wakeup = chan.fileno()
        while not (_line_done(stdout) and _line_done(stderr)):
            ended = chan.eof_received or chan.closed  # read first: data before EOF is buffered by then
            busy = drain(chan, stdout, stderr)
            if cancel is not None and cancel():
                raise Aborted("cancel")
            if deadline is not None and time.monotonic() >= deadline:
                raise Aborted("timeout")
            if busy:
                continue
            if ended:
                stdout.flush()
                stderr.flush()
                status = chan.exit_status if chan.status_event.wait(0.5) else -1
                raise SessionLost("the session ended", started=True, status=status)
            select.select([wakeup], [], [], wait_slice(deadline))
        assert stdout.after is not None and stderr.after is not None
        return stdout.after.decode("utf-8", "replace"), stderr.after.decode("utf-8", "replace")

    def close(self) -> None:
        """End the runner (EOF on its stdin) and close the channel; a dead connection is no error."""
        try:
            if not self.chan.closed:
                self.chan.shutdown_write()
            self.chan.close()
        except (paramiko.SSHException, OSError, EOFError):
            pass


def drain(chan: paramiko.Channel, out: Sink, err: Sink) -> bool:
    """Move what the channel has buffered (a chunk of each stream at most) to ``out`` and ``err``.

    Returns whether anything moved. Never blocks: the caller waits on ``chan.fileno()``.
    """
    busy = False
    if chan.recv_ready():
        data = chan.recv(CHUNK)
        if data:
            out.write(data)
            busy = True
    if chan.recv_stderr_ready():
        data = chan.recv_stderr(CHUNK)
        if data:
            err.write(data)
            busy = True
    return busy


def _line_done(stream: _Framed) -> bool:
    """True once the token and the end of its line came in."""
    return stream.after is not None and b"\n" in stream.after
