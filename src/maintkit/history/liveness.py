"""Whether a run the history holds as unfinished is still running: its journal's end, its process.

Why: the history gets a run's ``runs`` row at its start and the rest at its end. A run killed with
SIGKILL, a machine that lost power, or a history that was down at the end leaves the row
unfinished, and ``status`` listed that run as the site's lock holder forever. The engine's lock
decides the same question for a lock folder (:func:`maintkit.engine.lock.holder_is_gone`): a
holder on this machine whose process is gone is gone. Here, in order:

1. the run's journal (on this machine) ends with ``run_end``: it ended, the history missed it
   (``maintkit history import JOURNAL`` records it);
2. the run was started on this machine and its process is gone, or that pid is now another process
   (started after the run): it was killed;
3. otherwise (alive, or another machine's run whose journal is not here) it may be running: it
   stays a lock holder.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: how many bytes of a journal's end are read to find its last event
TAIL = 8192
#: slack between a run's recorded start and its process's start (clock ticks, rounding)
START_SLACK = 5.0


def over(run: Any, host: str | None = None) -> str | None:
    """Why the unfinished ``run`` (a ``runs`` row) is known to be over, or None if it may still run."""
    if _journal_ended(run.journal_path):
        return f"its journal ends (`maintkit history import {run.journal_path}` records its end)"
    if run.control_host != (host or socket.gethostname()) or not run.control_pid:
        return None
    started = _process_start(int(run.control_pid))
    if started is None:
        return f"its process (pid {run.control_pid} on {run.control_host}) is gone: it was killed"
    recorded = run.started if run.started.tzinfo else run.started.replace(tzinfo=UTC)
    if started.timestamp() > recorded.timestamp() + START_SLACK:
        return f"its process (pid {run.control_pid}) is gone (the pid is another process's now)"
    return None


def _journal_ended(path: str | None) -> bool:
    """Whether the journal file is on this machine and its last complete event is ``run_end``."""
    if not path:
        return False
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - TAIL))
            lines = handle.read().splitlines()
    except OSError:
        return False
    for line in reversed(lines):
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a torn last line (a crash mid-write)
        return isinstance(event, dict) and event.get("event") == "run_end"
    return False


def _process_start(pid: int) -> datetime | None:
    """When process ``pid`` started (Linux ``/proc``), None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime")
        )
    except (OSError, StopIteration, ValueError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except (PermissionError, OverflowError, ValueError):
            pass
        return datetime.fromtimestamp(0, UTC)  # alive, its start unknown: taken as older than the run
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state is field 3, start time field 22
    if fields[0] in ("Z", "X"):  # killed, not reaped yet by its parent
        return None
    ticks = int(fields[19])  # clock ticks after boot
    return datetime.fromtimestamp(boot + ticks / os.sysconf("SC_CLK_TCK"), UTC)
