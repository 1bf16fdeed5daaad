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

#: how often task states are read from Redis (one MGET: the fleet notices a site's end this late)
POLL = 0.25
#: after a stop, how long a revoked site may still turn out to have been started by a worker
REVOKE_WAIT = 10.0


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
        #: each task's last raw value in Redis and its decoding (see :meth:`_states`)
        self._read: dict[int, tuple[Any, dict[str, Any]]] = {}

    def run(self) -> list[SiteResult]:
        """Send every site's task, then follow them until each has ended; return results in order."""
        pending: dict[int, AbortableAsyncResult] = {}
        for index, run in enumerate(self.runs):
            if self.stopped.is_set():
                self._cancel(index)
                continue
            sent = self.app.send_task(TASK_NAME, args=[run.to_dict()])
            pending[index] = AbortableAsyncResult(sent.id, app=self.app)
        stopped_at: float | None = None
        while pending:
            if self.stopped.is_set() and stopped_at is None:
                stopped_at = time.monotonic()
                self._stop(pending)
            states = self._states(pending)
            for index, task in list(pending.items()):
                ended = self._follow(index, task, states[index], stopping=stopped_at is not None)
                if ended or (stopped_at is not None and self._given_up(index, stopped_at)):
                    del pending[index]
            if pending:
                time.sleep(POLL)
        self.app.close()
        return self.results

    def stop(self) -> None:
        """Revoke the sites not started; ask the running ones to stop (from the polling loop)."""
        self.stopped.set()

    def _states(self, pending: dict[int, AbortableAsyncResult]) -> dict[int, dict[str, Any]]:
        """Every pending task's state and result, read from Redis in one ``MGET``.

        Why not ``task.state`` for each: that is one round trip and one decoding per pending site
        every :data:`POLL` seconds, which cost the fleet process ~15 ms of CPU per site at 100
        sites (benchmarks/fleet_backup.py); one ``MGET`` a poll, decoding what changed, costs a fraction.
        """
        backend = self.app.backend
        indexes = list(pending)
        keys = [backend.get_key_for_task(pending[index].id) for index in indexes]
        values = backend.mget(keys) if keys else []
        states: dict[int, dict[str, Any]] = {}
        for index, value in zip(indexes, values, strict=True):
            last = self._read.get(index)
            if last is None or last[0] != value:  # decoded again only when it changed
                meta = backend.decode_result(value) if value else {"status": "PENDING", "result": None}
                last = self._read[index] = (value, meta)
            states[index] = last[1]
        return states

    def _follow(
        self, index: int, task: AbortableAsyncResult, meta: dict[str, Any], stopping: bool = False
    ) -> bool:
        """Update site ``index`` from its task's ``meta`` (state and result); True once it has ended.

        While stopping, a task seen STARTED is asked again to abort: a worker that took it just as
        the fleet stopped wrote STARTED over the first request.
        """
        result = self.results[index]
        state, value = meta.get("status"), meta.get("result")
        if state == "STARTED":
            if result.status in ("pending", "cancelled"):
                info = value if isinstance(value, dict) else {}
                result.status, result.error = "running", None
                result.worker = str(info.get("hostname") or "") or None
                self.on_change(result)
            if stopping:
                task.abort()
        elif state == "SUCCESS":
            if isinstance(value, dict):
                self.results[index] = SiteResult(**value)
            self.on_change(self.results[index])
            return True
        elif state == "FAILURE":
            result.status, result.exit_code = "failed", 3
            result.error = f"the worker's task failed: {value!r}"
            self.on_change(result)
            return True
        elif state == "REVOKED":
            self._cancel(index)
            return True
        return False

    def _stop(self, pending: dict[int, AbortableAsyncResult]) -> None:
        """Revoke what no worker has started, and ask every task to abort (a running one rolls back)."""
        states = self._states(pending)  # fresh states first: what started is running
        for index, task in list(pending.items()):
            if self._follow(index, task, states[index]):
                del pending[index]
        not_started = [index for index in pending if self.results[index].status == "pending"]
        if not_started:
            self.app.control.revoke([pending[i].id for i in not_started])
        for index, task in pending.items():
            task.abort()
            if index in not_started:
                self._cancel(index)  # until a worker says otherwise (it took it a moment ago)

    def _given_up(self, index: int, stopped_at: float) -> bool:
        """A revoked site no worker has picked up since the stop: reported cancelled, not waited for."""
        return self.results[index].status == "cancelled" and time.monotonic() - stopped_at > REVOKE_WAIT

    def _cancel(self, index: int) -> None:
        result = self.results[index]
        result.status = "cancelled"
        result.error = "not started: the fleet run was stopped"
        self.on_change(result)
