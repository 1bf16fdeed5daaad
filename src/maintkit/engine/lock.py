"""The environment lock: one run per environment at a time, held on every selected host.

Why ``mkdir`` on the hosts and not a file on the control node: two engineers (or cron and an
engineer) run from different machines; only the hosts see both. ``mkdir`` is atomic on every POSIX
filesystem. The holder's record (run id, user, control host, pid, start time) names who to ask, and
lets ``--break-lock`` take a lock only when it is older than ``lock_ttl`` and its holder is gone.
Deployer leaves its lock behind on failure (deployer#1291, #3335); here release runs on every path.
"""

from __future__ import annotations

import getpass
import json
import os
import shlex
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from maintkit.errors import LockHeld, MaintkitError
from maintkit.transport.base import Transport


def remote_path(path: str) -> str:
    """Quote a path for the shell, keeping a leading ``~/`` expandable (``"$HOME"/rest``)."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


@dataclass
class LockTarget:
    """One lock directory on one server (site instances sharing a server and user share it)."""

    host: str  # the inventory host whose transport is used
    transport: Transport
    lock_dir: str
    ttl: float


def holder_is_gone(holder: dict[str, Any]) -> bool | None:
    """True when the holder's process is known dead, False when alive, None when it can't be told."""
    if holder.get("control_host") != socket.gethostname():
        return None
    try:
        os.kill(int(holder.get("pid", 0)), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError, OverflowError):
        return False
    return False


def describe(holder: dict[str, Any]) -> str:
    age = time.time() - float(holder.get("started_epoch", time.time()))
    return (
        f"run {holder.get('run_id', '?')} of playbook {holder.get('playbook', '?')} by "
        f"{holder.get('user', '?')}@{holder.get('control_host', '?')} (pid {holder.get('pid', '?')}), "
        f"started {holder.get('started', '?')} ({age:.0f} s ago)"
    )


class EnvironmentLock:
    """Acquire and release the lock on every target; all or nothing."""

    def __init__(
        self,
        targets: list[LockTarget],
        *,
        run_id: str,
        env: str,
        playbook: str,
        break_lock: bool = False,
        emit: Callable[..., None] = lambda *a, **k: None,
        parallel: int = 1,
        pool: Executor | None = None,
    ) -> None:
        self.targets = targets
        #: the caller's worker threads, if it has them (starting threads costs a run milliseconds)
        self.pool = pool
        self.run_id = run_id
        self.break_lock = break_lock
        self.emit = emit
        self.parallel = parallel
        self.held: list[LockTarget] = []
        self._held_lock = threading.Lock()
        self.record = {
            "run_id": run_id,
            "env": env,
            "playbook": playbook,
            "user": getpass.getuser(),
            "control_host": socket.gethostname(),
            "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "started_epoch": time.time(),
        }

    def acquire(self) -> None:
        """Take the lock on every target, or release what was taken and raise LockHeld.

        All targets at once (up to ``parallel``): one round trip for the fleet instead of one per
        server. If any target fails, the first failure in target order is raised after every
        attempt has finished and whatever was taken is released: all or nothing, as before.
        """
        try:
            errors = self._each(self.targets, self._acquire_one)
            if errors:
                raise errors[0]
        except BaseException:
            self.release()
            raise

    def _each(self, targets: list[LockTarget], work: Callable[[LockTarget], None]) -> list[BaseException]:
        """Run ``work`` for every target, ``parallel`` at a time; return the errors in target order."""
        if self.parallel <= 1 or len(targets) <= 1:
            for target in targets:
                try:
                    work(target)
                except Exception as error:
                    return [error]
            return []
        if self.pool is not None:
            futures = [self.pool.submit(work, target) for target in targets]
            outcomes = [future.exception() for future in futures]
        else:
            with ThreadPoolExecutor(max_workers=min(self.parallel, len(targets))) as pool:
                futures = [pool.submit(work, target) for target in targets]
                outcomes = [future.exception() for future in futures]
        return [error for error in outcomes if error is not None]

    def _acquire_one(self, target: LockTarget, broken: bool = False) -> None:
        directory = remote_path(target.lock_dir)
        record = shlex.quote(json.dumps(self.record))
        command = (
            f'umask 077 && mkdir -p "$(dirname {directory})" && if mkdir {directory} 2>/dev/null; then '
            f"printf '%s' {record} > {directory}/holder.json && echo acquired; "
            f"else echo held; cat {directory}/holder.json 2>/dev/null; fi"
        )
        result = target.transport.run(command, timeout=30)
        first, _, rest = result.stdout.partition("\n")
        if result.rc != 0:
            raise MaintkitError(
                f"{target.host}: could not create lock {target.lock_dir}: {result.stderr.strip()}"
            )
        if first.strip() == "acquired":
            with self._held_lock:
                self.held.append(target)
            self.emit("lock_acquired", host=target.host, lock_dir=target.lock_dir)
            return
        holder = _parse_holder(rest)
        if self.break_lock and not broken and self._may_break(holder, target):
            self._break(target, holder)
            return self._acquire_one(target, broken=True)
        hint = ""
        if self._is_stale(holder, target):
            hint = " It is older than lock_ttl; if its run is gone, retry with --break-lock."
        elif self.break_lock:
            hint = " --break-lock refused: the lock is younger than lock_ttl or its holder is alive."
        raise LockHeld(
            f"{target.host}: environment is locked ({target.lock_dir}) by {describe(holder)}.{hint}"
        )

    def _is_stale(self, holder: dict[str, Any], target: LockTarget) -> bool:
        age = time.time() - float(holder.get("started_epoch", 0))
        return age > target.ttl

    def _may_break(self, holder: dict[str, Any], target: LockTarget) -> bool:
        return self._is_stale(holder, target) and holder_is_gone(holder) is not False

    def _break(self, target: LockTarget, holder: dict[str, Any]) -> None:
        result = target.transport.run(f"rm -rf {remote_path(target.lock_dir)}", timeout=30)
        if result.rc != 0:
            raise MaintkitError(
                f"{target.host}: --break-lock could not remove {target.lock_dir}: {result.stderr.strip()}"
            )
        self.emit("lock_broken", host=target.host, lock_dir=target.lock_dir, previous_holder=holder)

    def release(self) -> None:
        """Remove the lock directories this run holds (only if they still name this run)."""
        with self._held_lock:
            held, self.held = list(reversed(self.held)), []
        errors = self._each(held, self._release_one)  # transport errors are events, not exceptions
        if errors:
            raise errors[0]

    def _release_one(self, target: LockTarget) -> None:
        directory = remote_path(target.lock_dir)
        command = (
            f"if grep -q {shlex.quote(self.run_id)} {directory}/holder.json 2>/dev/null; "
            f"then rm -rf {directory}; fi"
        )
        try:
            target.transport.run(command, timeout=30)
            self.emit("lock_released", host=target.host, lock_dir=target.lock_dir)
        except MaintkitError as error:
            self.emit("lock_release_failed", host=target.host, lock_dir=target.lock_dir, error=str(error))


def _parse_holder(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text.strip() or "{}")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
