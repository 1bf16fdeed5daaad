"""One site's run as its own ``maintkit run`` process: started, watched, timed out, stopped.

Why a process per site and not a thread: a site must never stop or slow the others. A thread that
hangs (a stuck C call, a deadlock in a library) cannot be ended from outside, and a crash or a
runaway memory use of one run would take every site down with it. A process can always be ended,
its memory is returned when it exits, and ``maintkit run`` already does everything one site needs
(its lock, step timeouts, rollback, its journal, SIGTERM handling). The cost, one Python process
per *running* site (not per site), is bounded by the fleet's concurrency.

The run's JSON events (stdout) give the fleet its run id, bytes moved and outcome; its stderr (exit
2 problems, crashes) is kept, bounded, for the summary. A site's time limit sends SIGTERM (the run
kills its remote commands, rolls back, releases its lock), then SIGKILL to its process group after
a grace period. The run is also sent SIGTERM if the thread that started it dies (Linux
``PR_SET_PDEATHSIG``), so a killed Celery worker leaves no run behind that would keep the lock.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from maintkit.fleet.forkserver import ForkServer
from maintkit.fleet.plan import SiteRun

#: how much of a run's stderr is kept for the summary (its last lines matter: the problem, the error)
STDERR_KEEP = 8192
#: how much of a failed step's message the summary keeps
ERROR_KEEP = 200
#: prctl(2) option: the signal a child gets when the thread that forked it ends
PR_SET_PDEATHSIG = 1
#: exit codes of ``maintkit run`` (DESIGN.md) and how the fleet names them
STATUSES = {0: "done", 1: "failed", 2: "invalid", 3: "rollback failed", 4: "locked"}
#: worst first: the fleet's exit code is the most severe of its sites' (3 a human must look; 1 a site
#: failed and rolled back; 2 a site's input is wrong; 4 a site was busy with another run)
SEVERITY = (3, 1, 2, 4, 0)

try:
    _LIBC: Any = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
except OSError:  # pragma: no cover - not Linux/glibc: no parent-death signal
    _LIBC = None


@dataclass
class SiteResult:
    """How one site's run ended: the fleet's summary row and ``--output json`` line."""

    key: str
    client: str
    site: str
    env: str
    hosts: list[str]
    status: str = "pending"
    exit_code: int | None = None
    run_id: str | None = None
    duration: float = 0.0
    bytes: int = 0
    timed_out: bool = False
    error: str | None = None
    worker: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def worst_exit_code(results: list[SiteResult]) -> int:
    """The fleet's exit code: the most severe of its sites' (:data:`SEVERITY`); 0 for no site.

    A site that never started (the fleet was stopped) counts as failed (1); an exit code
    ``maintkit run`` never gives counts as 3 (a human must look).
    """
    codes = {1 if r.exit_code is None else (r.exit_code if r.exit_code in SEVERITY else 3) for r in results}
    return next((c for c in SEVERITY if c in codes), 0)


def arm_parent_death_signal() -> None:
    """SIGTERM to this process when the thread that started it ends (Linux; elsewhere nothing)."""
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _die_with_parent(parent: int) -> Callable[[], None]:
    """In the child, before exec: SIGTERM when the thread that started it ends (a killed worker).

    The parent may die between fork and prctl (a worker killed just as a site starts): then the
    signal would never come, so the child checks it still has its parent, and gives up if not.
    """

    def preexec() -> None:
        arm_parent_death_signal()
        if os.getppid() != parent:
            os._exit(128 + signal.SIGTERM)

    return preexec


class SiteProcess:
    """One site's ``maintkit run``: :meth:`wait` runs it to its end and returns its SiteResult.

    ``on_change`` is called (from this object's threads) with the result whenever it changes (run
    id known, bytes moved, end); ``stop`` asks the run to end early (SIGTERM: rollback, release).
    """

    def __init__(
        self,
        run: SiteRun,
        cwd: Path,
        on_change: Callable[[SiteResult], None] | None = None,
        python: str | None = None,
        env: dict[str, str] | None = None,
        forks: ForkServer | None = None,
    ) -> None:
        self.run = run
        self.forks = forks
        self.cwd = cwd
        self.on_change = on_change or (lambda result: None)
        self.python = python
        self.env = env
        self.result = SiteResult(run.key, run.client, run.site, run.env, list(run.hosts))
        self._stderr: deque[str] = deque()
        self._stderr_size = 0
        self._stopping = threading.Event()
        self._cancelled = threading.Event()
        self._proc: Any = None  # subprocess.Popen or ForkedRun: the same few methods
        self._artifact_bytes: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def wait(self) -> SiteResult:
        """Start the run, follow its events until it ends (or its time limit ends it); return the result."""
        started = time.monotonic()
        if self._cancelled.is_set():
            self.result.status = "cancelled"
            self.result.error = "not started: the fleet run was stopped"
            self.on_change(self.result)
            return self.result
        self.result.status = "running"
        self.on_change(self.result)
        try:
            self._proc = self._start()
        except OSError as error:
            return self._finish(started, 2, f"could not start maintkit run: {error}")
        if self._cancelled.is_set():  # stop() came while it started
            self._terminate(reason=None)
        drain = threading.Thread(target=self._read_stderr, args=(self._proc.stderr,), daemon=True)
        drain.start()
        watchdog = threading.Thread(target=self._watch, args=(started,), daemon=True)
        watchdog.start()
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self._event(line)
        code = self._proc.wait()
        drain.join(timeout=5)
        self._stopping.set()  # ends the watchdog
        return self._finish(started, code, None)

    def _start(self) -> Any:
        """The run's process: a fork of the fork server when the fleet has one, else a fresh ``maintkit``."""
        if self.forks is not None:
            return self.forks.start(self.run.command()[3:], self.cwd)
        return subprocess.Popen(
            self.run.command(self.python),
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,  # its own process group: the fleet's terminal signals are the fleet's
            preexec_fn=_die_with_parent(os.getpid()),  # one libc call, no lock taken: safe beside threads
            env=self.env,
        )

    def stop(self) -> None:
        """Ask the run to end now: SIGTERM (it rolls back and releases its lock), then the grace period."""
        self._cancelled.set()
        self._terminate(reason=None)

    # -- internals ------------------------------------------------------------------------------

    def _watch(self, started: float) -> None:
        """End the run at its time limit: SIGTERM, then SIGKILL of its process group after the grace."""
        timeout = self.run.timeout
        if timeout is None:
            return
        if self._stopping.wait(timeout):
            return
        self.result.timed_out = True
        self._terminate(reason=f"timed out after {timeout:g} s")

    def _terminate(self, reason: str | None) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        with self._lock:
            if reason and not self.result.error:
                self.result.error = reason
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        killer = threading.Thread(target=self._kill_after_grace, args=(proc,), daemon=True)
        killer.start()

    def _kill_after_grace(self, proc: Any) -> None:
        try:
            proc.wait(timeout=self.run.grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # the group this fleet created for this run

    def _event(self, line: str) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            return
        if not isinstance(event, dict):
            return
        kind = event.get("event")
        changed = False
        with self._lock:
            if self.result.run_id is None and isinstance(event.get("run_id"), str):
                self.result.run_id = event["run_id"]
                changed = True
            if kind in ("progress", "transferred") and isinstance(event.get("bytes"), int):
                artifact = (str(event.get("host")), str(event.get("artifact")))
                self._artifact_bytes[artifact] = event["bytes"]
                self.result.bytes = sum(self._artifact_bytes.values())
                changed = True
            elif kind == "run_end" and event.get("error") and not self.result.error:
                self.result.error = str(event["error"])
            elif kind == "step_end" and event.get("status") == "failed" and not self.result.error:
                message = " ".join(str(event.get("msg") or "").split())[:ERROR_KEEP]
                self.result.error = f"{event.get('host')}: step {event.get('step')!r} failed" + (
                    f": {message}" if message else ""
                )
        if changed:
            self.on_change(self.result)

    def _read_stderr(self, stream: IO[str] | None) -> None:
        if stream is None:
            return
        for line in stream:
            self._stderr.append(line)
            self._stderr_size += len(line)
            while self._stderr_size > STDERR_KEEP and len(self._stderr) > 1:
                self._stderr_size -= len(self._stderr.popleft())

    def _finish(self, started: float, code: int, error: str | None) -> SiteResult:
        result = self.result
        result.duration = round(time.monotonic() - started, 3)
        killed = code < 0  # ended by a signal: the rollback may not have finished
        result.exit_code = 3 if killed else code
        result.status = "timeout" if result.timed_out else STATUSES.get(result.exit_code, "failed")
        if error:
            result.error = error
        if result.exit_code != 0 and not result.error:
            tail = "".join(self._stderr).strip().splitlines()
            errors = [line for line in tail if line.startswith("error:")]
            result.error = (errors or tail or [f"exit code {code}"])[0 if errors else -1]
        if killed:
            result.error = f"{result.error or 'ended'}; killed by signal {-code}: look at its hosts and lock"
        self.on_change(result)
        return result
