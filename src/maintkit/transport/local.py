"""Run commands on this machine with the same contract as SSH (``connection: local``).

Why a real implementation and not ``subprocess.run``: the engine treats local and remote hosts alike,
so this one must stream gigabytes with bounded memory, kill the whole process tree on a timeout or an
interrupt, and keep secrets out of ``ps`` exactly like the SSH transport. Each command gets its own
session (``start_new_session``), so its process group holds everything it started and one
``killpg`` stops it all.

The stdin copy and the wait loop are shared with the SSH transports: :mod:`maintkit.transport.streams`.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

from maintkit.model.problems import CommandTimeout, Interrupted, TransportError
from maintkit.transport.base import CommandResult, Sink, Tail, Transport, with_env
from maintkit.transport.streams import (
    CHUNK,
    POLL_INTERVAL,
    CountingSink,
    StdinFeeder,
    abort_reason,
    wait_slice,
)

#: how long a command may take to die after SIGTERM before it gets SIGKILL
KILL_GRACE = 2.0


def exit_code(returncode: int) -> int:
    """Report death by signal N as 128+N, as a shell's ``$?`` does, not as Popen's -N."""
    return 128 - returncode if returncode < 0 else returncode


class LocalTransport(Transport):
    """Run commands with ``/bin/sh -c`` on this machine, each in its own process group."""

    def __init__(self, name: str = "localhost") -> None:
        self.name = name

    def connect(self) -> None:
        """Nothing to open: a local transport is always connected."""

    def close(self) -> None:
        """Nothing to close."""

    def run(
        self,
        command: str,
        *,
        stdin: bytes | BinaryIO | None = None,
        stdout: Sink | None = None,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        secret: bool = False,
        cancel: threading.Event | None = None,
    ) -> CommandResult:
        started = time.monotonic()
        deadline = None if timeout is None else started + timeout
        script = with_env(command, env)
        if secret:
            # The command text travels over stdin, never in argv (visible to every user in `ps`).
            payload = script.encode("utf-8")
            argv = ["/bin/sh", "-c", f'eval "$(head -c {len(payload)})"']
        else:
            payload = b""
            argv = ["/bin/sh", "-c", script]
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                bufsize=0,
            )
        except OSError as exc:
            raise TransportError(f"{self.name}: cannot start /bin/sh: {exc}") from exc
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None

        out: Tail | CountingSink = Tail() if stdout is None else CountingSink(stdout)
        err = Tail()
        stdin_fd = proc.stdin.fileno()
        feeder = StdinFeeder(
            write=lambda data: _write_all(stdin_fd, data),
            close=proc.stdin.close,
            prefix=payload,
            source=stdin,
            name=f"{self.name}-stdin",
        )
        feeder.start()
        reason: str | None = None
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(proc.stdout, selectors.EVENT_READ, out)
                selector.register(proc.stderr, selectors.EVENT_READ, err)
                while selector.get_map() and reason is None:
                    for key, _ in selector.select(wait_slice(deadline)):
                        data = os.read(key.fd, CHUNK)
                        if data:
                            key.data.write(data)
                        else:
                            selector.unregister(key.fileobj)
                    reason = abort_reason(deadline, cancel, feeder)
            while reason is None:
                try:
                    proc.wait(wait_slice(deadline))
                    break
                except subprocess.TimeoutExpired:
                    reason = abort_reason(deadline, cancel, feeder)
        except BaseException:
            # The sink failed, or KeyboardInterrupt: never leave the command running behind us.
            _kill_group(proc)
            _finish(proc, feeder)
            raise
        if reason is not None:
            _kill_group(proc)
            _finish(proc, feeder)
            if reason == "timeout":
                raise CommandTimeout(f"{self.name}: command timed out after {timeout:g} s and was killed")
            if reason == "cancel":
                raise Interrupted(f"{self.name}: interrupted; the command was killed")
            assert feeder.error is not None
            raise feeder.error
        _finish(proc, feeder)
        return CommandResult(
            command=command,
            rc=exit_code(proc.returncode),
            stdout=out.text() if isinstance(out, Tail) else "",
            stderr=err.text(),
            duration=time.monotonic() - started,
            stdout_bytes=out.total,
            stderr_bytes=err.total,
        )


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _finish(proc: subprocess.Popen[bytes], feeder: StdinFeeder) -> None:
    """Release the pipes. stdin belongs to the feeder until it ends (closing it under a running
    ``os.write`` could let the fd number be reused and the data land in another file)."""
    feeder.join(timeout=0.5)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    if not feeder.is_alive() and proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=KILL_GRACE)


def _group_alive(pgid: int) -> bool:
    """Is any live (non-zombie) process left in the group? Zombies count as dead: an orphan's
    zombie waits for PID 1 to reap it, which in a container may never happen."""
    proc_dir = Path("/proc")
    if not proc_dir.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for entry in proc_dir.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # fields after the parenthesised command name: state ppid pgrp ...
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the command's process group, SIGKILL whatever is left after :data:`KILL_GRACE`."""
    pgid = proc.pid  # start_new_session: the shell leads its own group
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        proc.poll()
        return
    give_up = time.monotonic() + KILL_GRACE
    while time.monotonic() < give_up:
        proc.poll()  # reap the leader, so it does not linger as a zombie group member
        if not _group_alive(pgid):
            return
        time.sleep(POLL_INTERVAL / 2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    proc.poll()
