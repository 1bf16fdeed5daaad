"""Commands that run no playbook (``snapshots verify``, ``snapshots prune``) recorded like a run.

Why: ``status`` reports a failed verification and cron runs ``maintkit snapshots verify latest``
as often as a verify playbook; a command that left no journal and no history would be invisible
there. The same events a playbook run emits (``run_start``, one ``step_end`` per site, ``run_end``)
go to a journal file and to the history through the same sinks, so ``runs list``, ``history
import`` and ``status`` see these commands like any run.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from maintkit.engine.journal import EventBus, JournalSink, journal_dir, new_run_id
from maintkit.history.location import database_url
from maintkit.history.sink import HistorySink
from maintkit.secrets import Redactor


class Recording:
    """One control-node command as a run: ``step`` per site, then ``finish`` with the exit code."""

    def __init__(
        self,
        command: str,
        env: str,
        sites: list[str],
        *,
        playbook: str | None = None,
        folder: str | None = None,
        run_id: str | None = None,
    ) -> None:
        self.run_id = run_id or new_run_id()
        self.sites = sites
        self.failed: set[str] = set()
        journals = journal_dir(folder)
        journal = JournalSink(journals, self.run_id)
        self.journal = journal.path
        self.bus = EventBus(
            self.run_id, Redactor(), [journal, HistorySink(database_url(journals), journal.path)]
        )
        self.bus.emit(
            "run_start",
            playbook=playbook,
            env=env,
            hosts=sites,
            sites={site: site for site in sites},
            check=False,
            command=command,
            control_host=socket.gethostname(),
            pid=os.getpid(),
        )

    def step(self, site: str, action: str, ok: bool, msg: str, data: dict[str, Any]) -> None:
        if not ok:
            self.failed.add(site)
        self.bus.emit(
            "step_end",
            host=site,
            step=action,
            action=action,
            section="steps",
            status="ok" if ok else "failed",
            msg=msg,
            data=data,
        )

    def finish(self, exit_code: int, *, host_ends: bool = True, error: str | None = None) -> None:
        """End the run; ``host_ends=False`` when each site has its own run's rows (a fleet's sites)."""
        for site in self.sites if host_ends else []:
            self.bus.emit("host_end", host=site, status="failed" if site in self.failed else "ok")
        self.bus.emit(
            "run_end", status="done" if exit_code == 0 else "failed", exit_code=exit_code, error=error
        )
        self.bus.close()
