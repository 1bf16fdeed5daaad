"""Running a fleet on Celery workers: send each site's run as a task, follow the tasks to their end.

Why this side stays small: the workers run exactly what the local fleet runs (one ``maintkit run``
per site, :mod:`maintkit.fleet.tasks`); here the fleet only sends the tasks, turns their states into
the same per-site results the live view, the summary and the JSON lines show, and on SIGTERM
revokes the tasks no worker has started and asks the running ones to stop (they roll back).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from celery.contrib.abortable import AbortableAsyncResult

from maintkit.fleet.plan import SiteRun
from maintkit.fleet.process import SiteResult
from maintkit.fleet.tasks import TASK_NAME, make_app

#: how often task states are read from Redis
POLL = 0.5


class RemoteFleet:
    """The sites of one fleet run, sent to Celery workers through the Redis at ``broker``.

    ``concurrency`` is not used here: the workers' ``--concurrency`` decides how many sites run at
    once (a fleet of many workers is the point).
    """

    def __init__(
        self,
        runs: Sequence[SiteRun],
        broker: str,
        concurrency: int = 0,
        on_change: Callable[[SiteResult], None] | None = None,
    ) -> None:
        self.runs = list(runs)
        self.app = make_app(broker)
        self.on_change = on_change or (lambda result: None)
        self.results = [SiteResult(r.key, r.client, r.site, r.env, list(r.hosts)) for r in self.runs]
        self.stopped = threading.Event()

    def run(self) -> list[SiteResult]:
        """Send every site's task, then follow them until each has ended; return results in order."""
        pending: dict[int, AbortableAsyncResult] = {}
        for index, run in enumerate(self.runs):
            if self.stopped.is_set():
                self._cancel(index)
                continue
            sent = self.app.send_task(TASK_NAME, args=[run.to_dict()])
            pending[index] = AbortableAsyncResult(sent.id, app=self.app)
        stop_sent = False
        while pending:
            if self.stopped.is_set() and not stop_sent:
                self._stop(pending)
                stop_sent = True
            for index, task in list(pending.items()):
                if self._follow(index, task):
                    del pending[index]
            if pending:
                time.sleep(POLL)
        self.app.close()
        return self.results

    def stop(self) -> None:
        """Revoke the sites not started; ask the running ones to stop (from the polling loop)."""
        self.stopped.set()

    def _follow(self, index: int, task: AbortableAsyncResult) -> bool:
        """Update site ``index`` from its task's state; True once the task has ended."""
        result = self.results[index]
        state = task.state
        if state in ("STARTED", "ABORTED") and result.status == "pending":
            info = task.info if isinstance(task.info, dict) else {}
            result.status = "running"
            result.worker = str(info.get("hostname") or "") or None
            self.on_change(result)
        elif state == "SUCCESS":
            value: Any = task.result
            if isinstance(value, dict):
                self.results[index] = SiteResult(**value)
            self.on_change(self.results[index])
            return True
        elif state == "FAILURE":
            result.status, result.exit_code = "failed", 3
            result.error = f"the worker's task failed: {task.result!r}"
            self.on_change(result)
            return True
        elif state == "REVOKED":
            self._cancel(index)
            return True
        return False

    def _stop(self, pending: dict[int, AbortableAsyncResult]) -> None:
        not_started = [index for index in pending if self.results[index].status == "pending"]
        if not_started:
            self.app.control.revoke([pending[i].id for i in not_started])
            for index in not_started:  # abort too: a worker may have taken it a moment ago
                pending[index].abort()
                self._cancel(index)
                del pending[index]
        for task in pending.values():
            task.abort()

    def _cancel(self, index: int) -> None:
        result = self.results[index]
        result.status = "cancelled"
        result.error = "not started: the fleet run was stopped"
        self.on_change(result)
