"""The environment lock: one run per environment and site at a time, held on every server of them.

Why ``mkdir`` on the hosts and not a file on the control node: two engineers (or cron and an
engineer) run from different machines; only the hosts see both. ``mkdir`` is atomic on every POSIX
filesystem. The holder's record (run id, user, control host, pid, start time) names who to ask, and
lets ``--break-lock`` take a lock only when it is older than ``lock_ttl`` and its holder is gone.
Deployer leaves its lock behind on failure (deployer#1291, #3335); here release runs on every path.

Which folders a run locks (one per environment and site, ``LOCK_DIR/ENV/SITE``) is decided in
:mod:`maintkit.engine.lockplan`; this module takes and releases them. Three rules make a run never
conflict with itself even when two inventory entries reach one server under different spellings
(``127.0.0.1`` and ``localhost``, an ``~/.ssh/config`` alias): the holder record is written
atomically (temporary file + rename), a reader waits briefly for the record of a folder that was
just made, and a folder whose record names this very run is this run's own lock, not a conflict.
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

from maintkit.model.problems import LockHeld, MaintkitError
from maintkit.transport.base import Transport

#: how often a lock folder that changed hands while we looked at it is tried again
GONE_RETRIES = 3


def remote_path(path: str) -> str:
    """Quote a path for the shell, keeping a leading ``~/`` expandable (``"$HOME"/rest``)."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


@dataclass
class LockTarget:
    """One lock folder on one server (inventory entries sharing a server, user and folder share it)."""

    host: str  # the inventory host whose transport is used
    transport: Transport
    lock_dir: str  # the lock folder itself (LOCK_DIR/ENV/SITE for a run)
    ttl: float
    #: what the folder locks, for messages ("environment 'staging', site 'shop'")
    scope: str = "environment"
    #: the folder an older maintkit took as its one lock per server user (LOCK_DIR); None: no check
    legacy_dir: str | None = None


@dataclass
class Found:
    """What the acquire script found: ``state`` (acquired, held, legacy, empty, gone), the age of
    the folder it looked at (seconds on the server's clock, None when unknown) and its holder."""

    state: str
    age: float | None
    holder: dict[str, Any]
    raw_holder: str


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
    try:
        age = time.time() - float(holder.get("started_epoch", time.time()))
    except (TypeError, ValueError):
        age = float("nan")
    return (
        f"run {holder.get('run_id', '?')} of playbook {holder.get('playbook', '?')} by "
        f"{holder.get('user', '?')}@{holder.get('control_host', '?')} (pid {holder.get('pid', '?')}), "
        f"started {holder.get('started', '?')} ({age:.0f} s ago)"
    )


_SHELL_HELPERS = (
    # seconds since a path last changed, on the server's clock (GNU stat, then BSD stat)
    'age() { m=$(stat -c %Y "$1" 2>/dev/null || stat -f %m "$1" 2>/dev/null) '
    "&& echo $(( $(date +%s) - m )) || echo; }; "
    # made in the last few seconds (or of unknown age): its maker may be about to record itself
    'young() { a=$(age "$1"); [ -z "$a" ] || [ "$a" -lt 5 ]; }'
)


def acquire_script(target: LockTarget, record: str) -> str:
    """The shell script that takes one lock folder, or says who holds it, in one round trip.

    Output: a state line (``acquired``, ``held``, ``legacy``, ``empty`` or ``gone``), a line with
    the age in seconds of the folder it is about (empty when unknown), then the holder record.
    A folder without record that is younger than 5 s is given up to ~2 s to get one (its maker is
    between ``mkdir`` and the rename of its record) before it is reported ``empty``. ``legacy``:
    an older maintkit holds LOCK_DIR itself; the folder just taken is given back.
    """
    legacy = ""
    if target.legacy_dir is not None:
        legacy = (
            f"b={remote_path(target.legacy_dir)}; "
            'if [ -f "$b/holder.json" ] && h=$(cat "$b/holder.json" 2>/dev/null); then '
            'rm -rf "$d"; echo legacy; '
            'age "$b/holder.json"; printf \'%s\\n\' "$h"; exit 0; fi; '
        )
    return (
        f"umask 077; {_SHELL_HELPERS}; d={remote_path(target.lock_dir)}; r={shlex.quote(record)}; "
        'mkdir -p "$(dirname "$d")" || exit 1; '
        'if e=$(mkdir "$d" 2>&1); then '
        '  if printf \'%s\' "$r" > "$d/holder.json.tmp" && mv -f "$d/holder.json.tmp" "$d/holder.json"; then '
        f"    {legacy}echo acquired; "
        '  else rm -rf "$d"; echo "could not record the holder in $d" >&2; exit 1; fi; '
        'elif [ ! -d "$d" ]; then printf \'%s\\n\' "$e" >&2; exit 1; '
        "else i=0; "
        '  while [ -d "$d" ] && [ ! -f "$d/holder.json" ] && [ "$i" -lt 10 ] && young "$d"; do '
        "    sleep 0.2 2>/dev/null || sleep 1; i=$((i+1)); done; "
        '  if h=$(cat "$d/holder.json" 2>/dev/null); then echo held; age "$d"; printf \'%s\\n\' "$h"; '
        '  elif [ -d "$d" ]; then echo empty; age "$d"; '
        "  else echo gone; fi; "
        "fi"
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
        break_command: str | None = None,
    ) -> None:
        self.targets = targets
        #: the caller's worker threads, if it has them (starting threads costs a run milliseconds)
        self.pool = pool
        self.run_id = run_id
        self.break_lock = break_lock
        self.emit = emit
        self.parallel = parallel
        #: the command that retries this run with --break-lock, printed in hints (None: described)
        self.break_command = break_command or "the same command with --break-lock"
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

    def _acquire_one(self, target: LockTarget) -> None:
        broken = False
        for _ in range(GONE_RETRIES):
            found = self._look(target)
            if found.state == "acquired":
                with self._held_lock:
                    self.held.append(target)
                self.emit("lock_acquired", host=target.host, lock_dir=target.lock_dir)
                return
            if found.state == "gone":  # released while we looked: try again
                continue
            if found.state == "held" and found.holder.get("run_id") == self.run_id:
                # this run took the same folder through another inventory entry (another spelling
                # of the same server): it is ours already, and released once, by that entry
                self.emit("lock_shared", host=target.host, lock_dir=target.lock_dir)
                return
            if found.state not in {"held", "legacy", "empty"}:
                raise MaintkitError(
                    f"{target.host}: unexpected answer while taking lock {target.lock_dir}: {found.state!r}"
                )
            if self.break_lock and not broken and self._may_break(found, target):
                self._break(target, found)
                broken = True
                continue
            raise LockHeld(self._refusal(target, found))
        raise LockHeld(f"{target.host}: {target.scope}: lock {target.lock_dir} kept changing hands; retry")

    def _look(self, target: LockTarget) -> Found:
        result = target.transport.run(acquire_script(target, json.dumps(self.record)), timeout=60)
        if result.rc != 0:
            raise MaintkitError(
                f"{target.host}: could not create lock {target.lock_dir}: {result.stderr.strip()}"
            )
        state, _, rest = result.stdout.partition("\n")
        age_text, _, raw = rest.partition("\n")
        try:
            age: float | None = float(age_text.strip())
        except ValueError:
            age = None
        return Found(state.strip(), age, _parse_holder(raw), raw.strip())

    def _refusal(self, target: LockTarget, found: Found) -> str:
        """The message of a lock this run cannot take: who holds it, how old it is, what to do."""
        where = f"{target.host}: {target.scope}"
        if found.state == "empty":
            return f"{where}: {self._empty_message(target, found)}"
        if found.holder:
            holder = describe(found.holder)
        else:
            holder = f"an unreadable holder record ({found.raw_holder[:200]!r})"
        if found.state == "legacy":
            text = (
                f"{where} is locked by an older maintkit version: its lock {target.legacy_dir}/ "
                f"(one lock for every environment of this server user) is held by {holder}."
            )
        else:
            text = f"{where} is locked ({target.lock_dir}) by {holder}."
        if self.break_lock:
            text += " --break-lock refused: the lock is younger than lock_ttl or its holder is alive."
        elif self._is_stale(found, target):
            text += (
                f" It is older than lock_ttl ({target.ttl:.0f} s); if that run is gone, take the lock "
                f"with: {self.break_command}"
            )
        else:
            text += " Wait for that run to end."
        return text

    def _empty_message(self, target: LockTarget, found: Found) -> str:
        text = (
            f"lock folder {target.lock_dir} exists but holds no holder.json (a run stopped between "
            f"creating it and recording itself, or the folder was made by hand); "
        )
        if found.age is None:
            return text + (
                "its age cannot be read on the server, so --break-lock cannot take it. If no maintkit "
                f"run is working on it, remove it on {target.host}: rm -rf -- {remote_path(target.lock_dir)}"
            )
        text += f"it is {found.age:.0f} s old. "
        if found.age > target.ttl:
            refused = "--break-lock could not remove it. " if self.break_lock else ""
            return text + (
                f"{refused}It is older than lock_ttl ({target.ttl:.0f} s): if no maintkit run is "
                f"working on it, take it with: {self.break_command}"
            )
        refused = "--break-lock refused: it is younger than lock_ttl. " if self.break_lock else ""
        return text + (
            f"{refused}--break-lock takes it once it is older than lock_ttl ({target.ttl:.0f} s), in "
            f"{target.ttl - found.age:.0f} s: {self.break_command}. If you are sure no run is working "
            f"on it, remove it sooner on {target.host}: rm -rf -- {remote_path(target.lock_dir)}"
        )

    def _is_stale(self, found: Found, target: LockTarget) -> bool:
        """Older than lock_ttl: by the holder's start time, or by the folder's age when it has none."""
        if "started_epoch" in found.holder:
            try:
                return time.time() - float(found.holder["started_epoch"]) > target.ttl
            except (TypeError, ValueError):
                pass
        return found.age is not None and found.age > target.ttl

    def _may_break(self, found: Found, target: LockTarget) -> bool:
        return self._is_stale(found, target) and holder_is_gone(found.holder) is not False

    def _break(self, target: LockTarget, found: Found) -> None:
        """Remove a stale lock, only if it still is the one judged stale (same holder, or still none).

        An older maintkit's lock is its ``holder.json`` in LOCK_DIR: only that file goes, as the
        folder holds this version's locks of every environment.
        """
        command = _break_script(target, found)
        result = target.transport.run(command, timeout=30)
        if result.rc != 0:
            raise MaintkitError(
                f"{target.host}: --break-lock could not remove {target.lock_dir}: {result.stderr.strip()}"
            )
        self.emit(
            "lock_broken",
            host=target.host,
            lock_dir=target.legacy_dir if found.state == "legacy" else target.lock_dir,
            previous_holder=found.holder,
        )

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
            f"if grep -q -F -- {shlex.quote(self.run_id)} {directory}/holder.json 2>/dev/null; "
            f"then rm -rf {directory}; fi"
        )
        try:
            target.transport.run(command, timeout=30)
            self.emit("lock_released", host=target.host, lock_dir=target.lock_dir)
        except MaintkitError as error:
            self.emit("lock_release_failed", host=target.host, lock_dir=target.lock_dir, error=str(error))


def _break_script(target: LockTarget, found: Found) -> str:
    run_id = found.holder.get("run_id")
    if found.state == "legacy":
        record = f"{remote_path(target.legacy_dir or '')}/holder.json"
        remove = f"rm -f {record}"
    else:
        record = f"{remote_path(target.lock_dir)}/holder.json"
        remove = f"rm -rf {remote_path(target.lock_dir)}"
    if found.state == "empty":
        guard = f"[ ! -e {record} ]"
    elif run_id is not None:
        guard = f"grep -q -F -- {shlex.quote(str(run_id))} {record}"
    else:
        guard = "true"
    return f"if {guard}; then {remove} || exit 1; fi"


def _parse_holder(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text.strip() or "{}")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
