"""One command on its own paramiko channel: the remote text, the stdin writer, the output pump."""

from __future__ import annotations

import select
import threading
from collections.abc import Callable, Mapping
from typing import BinaryIO

import paramiko

from maintkit.transport.base import Tail, with_env
from maintkit.transport.session import drain
from maintkit.transport.ssh.kill import PID_PREAMBLE, PidFilter
from maintkit.transport.streams import CountingSink, StdinFeeder, abort_reason, wait_slice


def remote_command(command: str, env: Mapping[str, str] | None, secret: bool) -> tuple[str, bytes]:
    """The text the host's shell runs and the bytes to send first on its stdin.

    A secret command travels on stdin: only its byte count is on the command line.
    """
    script = with_env(command, env)
    if secret:
        prefix = script.encode("utf-8")
        return f'{PID_PREAMBLE}eval "$(head -c {len(prefix)})"', prefix
    return PID_PREAMBLE + script, b""


def pump(
    chan: paramiko.Channel,
    out: Tail | CountingSink,
    err: PidFilter,
    deadline: float | None,
    cancel: threading.Event | None,
    feeder: StdinFeeder,
) -> str | None:
    """Move output to the sinks until EOF and exit status; return why to abort, if so."""
    wakeup = chan.fileno()  # a pipe paramiko sets when data, EOF or close arrive
    while True:
        eof = chan.eof_received or chan.closed  # read first: data before EOF is buffered by then
        busy = drain(chan, out, err)
        reason = abort_reason(deadline, cancel, feeder)
        if reason is not None:
            return reason
        if busy:
            continue
        if eof:
            break
        select.select([wakeup], [], [], wait_slice(deadline))
    # Output is complete; the exit status may still be on its way (or the channel closes).
    while not chan.status_event.is_set():
        chan.status_event.wait(wait_slice(deadline))
        reason = abort_reason(deadline, cancel, feeder)
        if reason is not None:
            return reason
    return None


def read_input(feeder: StdinFeeder, stdin: bytes | BinaryIO | None) -> bool:
    """True when the caller's stdin stream was (maybe) consumed: the command cannot be re-sent."""
    return feeder.ident is not None and stdin is not None and not isinstance(stdin, bytes)


def join_feeder(feeder: StdinFeeder) -> None:
    """Give the stdin thread, if one was started, a moment to finish."""
    if feeder.ident is not None:
        feeder.join(timeout=0.5)


def channel_writer(chan: paramiko.Channel) -> Callable[[bytes], None]:
    """``chan.sendall`` that reports a vanished reader as OSError, as :class:`StdinFeeder` expects."""

    def write(data: bytes) -> None:
        try:
            chan.sendall(data)
        except paramiko.SSHException as exc:
            raise OSError(str(exc)) from exc

    return write
