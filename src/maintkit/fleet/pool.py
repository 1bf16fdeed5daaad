"""Running a fleet on this machine: at most N sites at once, each in its own process, all watched.

Why threads driving processes: each running site needs one thread to read its events and to wait
for it; the site itself is a process (:mod:`maintkit.fleet.process`), so a hanging or crashing site
only holds its own slot until its time limit frees it. The control node's memory is the fleet's
own plus N runs, whatever the number of sites.

Stopping (SIGTERM/SIGINT of ``maintkit fleet run``): sites not started yet are not started
(``cancelled``); running sites get SIGTERM and roll back as ``maintkit run`` does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from maintkit.fleet.forkserver import ForkServer
from maintkit.fleet.plan import SiteRun
from maintkit.fleet.process import SiteProcess, SiteResult


class Fleet:
    """The sites of one fleet run and their results, updated as they go (for the live view)."""

    def __init__(
        self,
        runs: Sequence[SiteRun],
        cwd: Path,
        concurrency: int,
        on_change: Callable[[SiteResult], None] | None = None,
        python: str | None = None,
        forks: ForkServer | None = None,
    ) -> None:
        self.runs = list(runs)
        self.forks = forks
        self.cwd = cwd
        self.concurrency = max(1, concurrency)
        self.on_change = on_change or (lambda result: None)
        self.python = python
        self.results = [SiteResult(r.key, r.client, r.site, r.env, list(r.hosts)) for r in self.runs]
        self.stopped = threading.Event()
        self._running: dict[int, SiteProcess] = {}
        self._lock = threading.Lock()

    def run(self) -> list[SiteResult]:
        """Run every site (at most ``concurrency`` at once); return their results in portfolio order."""
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="fleet-site") as pool:
            for future in [pool.submit(self._one, index) for index in range(len(self.runs))]:
                future.result()
        return self.results

    def stop(self) -> None:
        """Start no more sites; ask the running ones to end (SIGTERM: they roll back and release)."""
        self.stopped.set()
        with self._lock:
            running = list(self._running.values())
        for process in running:
            process.stop()

    def _one(self, index: int) -> None:
        with self._lock:
            if self.stopped.is_set():
                self.results[index].status = "cancelled"
                self.results[index].error = "not started: the fleet run was stopped"
                self.on_change(self.results[index])
                return
            process = SiteProcess(
                self.runs[index], self.cwd, self.on_change, python=self.python, forks=self.forks
            )
            process.result = self.results[index]
            self._running[index] = process
        try:
            self.results[index] = process.wait()
        finally:
            with self._lock:
                self._running.pop(index, None)
