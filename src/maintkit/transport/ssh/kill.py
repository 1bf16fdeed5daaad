"""Stopping what a command started on the host: its process group, found by the pid line it prints first.

sshd makes the login shell a session and process-group leader, so ``$$`` is the process group of
the whole command tree; a second channel runs ``kill -- -PGID`` (TERM, then KILL) on a timeout or a
cancel, and :func:`reap` stops what a dead connection left running, on a fresh one.
"""

from __future__ import annotations

import logging
import re
import select
import time

import paramiko

from maintkit.transport.base import Tail
from maintkit.transport.session import drain
from maintkit.transport.ssh.connect import NETWORK_ERRORS
from maintkit.transport.streams import CHUNK

log = logging.getLogger(__name__)

#: printed by the login shell before the command; ``$$`` is the command's process group
PID_PREAMBLE = "printf 'mk-pid:%s\\n' \"$$\" >&2; "
_PID_LINE = re.compile(rb"(?:^|\n)mk-pid:(\d+)\n")
#: how long to wait for the pid line when a command must be killed right after it started
PID_GRACE = 3.0
#: TERM the group, poll up to ~2 s for it to go, then KILL what is left (best effort, never fails).
#: ``alive`` ignores zombies where /proc exists: an orphan's zombie stays in the group until PID 1
#: reaps it, which inside a container may be never; ``kill -0`` alone would then always wait 2 s.
KILL_SCRIPT = (
    "g={pgid}; "
    "alive() {{ if [ -r /proc/self/stat ]; then "
    'for f in /proc/[0-9]*/stat; do read -r l 2>/dev/null <"$f" || continue; l=${{l##*) }}; '
    'set -- $l; [ "$3" = "$g" ] && [ "$1" != Z ] && return 0; done; return 1; '
    'else kill -s 0 -- "-$g" 2>/dev/null; fi; }}; '
    'kill -s TERM -- "-$g" 2>/dev/null; i=0; '
    'while alive && [ "$i" -lt 20 ]; do sleep 0.1; i=$((i+1)); done; '
    'kill -s KILL -- "-$g" 2>/dev/null; exit 0'
)
KILL_WAIT = 5.0
#: stop what a dead connection left running (process group ``g``), on a fresh connection; prints
#: ``stopped`` or ``ended``. ``g`` must still be a live session and group leader (sshd made our
#: login shell both; a command it execs keeps the ids): a number reused by an unrelated process in
#: the seconds since is practically never one. Without /proc nothing can be checked, so nothing is
#: killed (``unknown``).
REAP_SCRIPT = (
    "g={pgid}; [ -r /proc/self/stat ] || {{ echo unknown; exit 0; }}; "
    'read -r l 2>/dev/null <"/proc/$g/stat" || {{ echo ended; exit 0; }}; '
    'l=${{l##*) }}; set -- $l; '
    '{{ [ "$1" != Z ] && [ "$3" = "$g" ] && [ "$4" = "$g" ]; }} || {{ echo ended; exit 0; }}; '
    + KILL_SCRIPT.replace("exit 0", "echo stopped; exit 0")
)

class PidFilter:
    """The command's stderr, minus the ``mk-pid:N`` line our preamble prints first.

    Anything a login shell prints before it (a noisy ``.bashrc``) is passed through. If no pid line
    shows up within 64 KiB the filter gives up and passes everything on.
    """

    def __init__(self, tail: Tail) -> None:
        self.tail = tail
        self.pgid: int | None = None
        self._pending: bytearray | None = bytearray()

    def write(self, data: bytes) -> None:
        if self._pending is None:
            self.tail.write(data)
            return
        self._pending += data
        match = _PID_LINE.search(self._pending)
        if match:
            start = match.start() + (1 if self._pending[match.start() : match.start() + 1] == b"\n" else 0)
            rest = bytes(self._pending[:start] + self._pending[match.end() :])
            self.pgid = int(match.group(1))
            self._pending = None
            if rest:
                self.tail.write(rest)
        elif len(self._pending) > CHUNK:
            rest, self._pending = bytes(self._pending), None
            self.tail.write(rest)

    def flush(self) -> None:
        if self._pending:
            self.tail.write(bytes(self._pending))
        self._pending = None

    @property
    def settled(self) -> bool:
        """True once the pid line was found, or the filter gave up looking for it."""
        return self._pending is None


def kill_group(transport: paramiko.Transport, pgid: int | None, label: str, timeout: float) -> bool:
    """Run the kill script for process group ``pgid`` on a fresh channel; True if it was sent."""
    if pgid is None or pgid <= 1 or not transport.is_active():
        log.warning("%s: cannot kill the command: its process group is unknown", label)
        return False
    try:
        killer = transport.open_session(timeout=timeout)
        try:
            killer.exec_command(KILL_SCRIPT.format(pgid=pgid))
            killer.shutdown_write()
            if not killer.status_event.wait(KILL_WAIT):
                log.warning("%s: the kill command did not finish in %s s", label, KILL_WAIT)
        finally:
            killer.close()
    except NETWORK_ERRORS as exc:
        log.warning("%s: could not kill the command: %s", label, exc)
        return False
    return True


def reap(transport: paramiko.Transport, pgid: int, label: str, timeout: float) -> str:
    """Stop process group ``pgid`` if it is still ours and running; ``stopped``/``ended``/``unknown``."""
    try:
        chan = transport.open_session(timeout=timeout)
        try:
            chan.exec_command(REAP_SCRIPT.format(pgid=int(pgid)))
            chan.shutdown_write()
            out = Tail()
            deadline = time.monotonic() + KILL_WAIT
            while not chan.exit_status_ready() and time.monotonic() < deadline:
                drain(chan, out, Tail())
                select.select([chan.fileno()], [], [], 0.05)
            drain(chan, out, Tail())
            while chan.recv_ready():
                drain(chan, out, Tail())
        finally:
            chan.close()
    except NETWORK_ERRORS as exc:
        log.info("%s: could not stop the lost command: %s", label, exc)
        return "unknown"
    answer = out.text().strip().splitlines()
    return answer[-1] if answer and answer[-1] in ("stopped", "ended", "unknown") else "unknown"
