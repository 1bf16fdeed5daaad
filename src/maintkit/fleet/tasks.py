"""The Celery side of a fleet: the app (Redis broker and results) and the one task, a site's run.

Why Celery and these settings (no home-made queue, DESIGN.md "Past one machine"):

- ``task_acks_late`` + ``task_reject_on_worker_lost``: a site's message is acknowledged only when
  its run has ended, so a worker that dies mid-run leaves it in Redis, and another worker runs it
  again once the message's ``visibility_timeout`` has passed. Re-running is safe: the run holds its
  site's lock (a second run of the same site never runs beside it: it stops with exit 4), and a
  snapshot is listed only once its manifest is written (manifest last), so a half-written one is
  never taken for a good one.
- ``worker_prefetch_multiplier = 1``: a worker takes one site per free slot, not a batch that a
  busy or dying worker would sit on.
- the worker's pool is ``threads`` (see :func:`worker_argv`) and its sites are forks of its fork
  server (:mod:`maintkit.fleet.forkserver`): killing the worker ends the fork server, and every
  site's ``maintkit run`` then gets SIGTERM (parent-death signal, see :mod:`maintkit.fleet.process`
  and :mod:`maintkit.cli.sitechild`), rolls back and releases its lock. A ``prefork`` pool's child
  would outlive a killed worker and keep running the site while it is re-run elsewhere.
- ``visibility_timeout`` must be longer than the longest site run (its time limit plus grace): a
  Redis message not acknowledged by then is handed to another worker even though the first is
  still running it. The worker sets it from ``--visibility-timeout``.
- :class:`~celery.contrib.abortable.AbortableTask`: the fleet asks a running site to stop (SIGTERM
  of ``maintkit fleet run``) through the result backend; the task then stops the run, which rolls back.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from celery import Celery
from celery.contrib.abortable import AbortableAsyncResult, AbortableTask

from maintkit.fleet.forkserver import ForkServer
from maintkit.fleet.plan import SiteRun
from maintkit.fleet.process import SiteProcess

TASK_NAME = "maintkit.fleet.run_site"
QUEUE = "maintkit-fleet"
#: how often a running task looks whether the fleet asked it to stop
ABORT_POLL = 1.0
#: the default visibility timeout: the default site time limit (6 h) plus an hour of grace
DEFAULT_VISIBILITY_TIMEOUT = 7 * 3600.0
#: where the worker's runs start (the project folder: inventories/, playbooks/, portfolio.yml)
WORKDIR_ENV = "MAINTKIT_WORKER_DIR"


#: the worker's fork server (``maintkit worker`` sets it): sites start without importing maintkit anew
_forks: ForkServer | None = None


def use_fork_server(forks: ForkServer | None) -> None:
    """Start this worker's sites from ``forks`` (None: each a fresh ``maintkit run`` process)."""
    global _forks
    _forks = forks


def make_app(broker: str, visibility_timeout: float = DEFAULT_VISIBILITY_TIMEOUT) -> Celery:
    """The Celery app of a fleet on the Redis at ``broker`` (broker and result backend alike)."""
    app = Celery("maintkit", broker=broker, backend=broker, set_as_current=False)
    transport = {
        "visibility_timeout": int(visibility_timeout),
        # look for messages of dead workers often (every tenth of the timeout, at most a minute)
        "unacked_restore_interval": max(1, min(60, int(visibility_timeout / 10))),
        "unacked_restore_throttle": 1,
    }
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_track_started=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_default_queue=QUEUE,
        broker_transport_options=transport,
        result_backend_transport_options=transport,
        result_expires=7 * 24 * 3600,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    app.task(bind=True, base=AbortableTask, name=TASK_NAME, acks_late=True)(run_site)
    return app


def run_site(task: Any, data: dict[str, Any]) -> dict[str, Any]:
    """The task: run one site's ``maintkit run`` in the worker's project folder; return its SiteResult."""
    run = SiteRun.from_dict(data)
    process = SiteProcess(run, Path(os.environ.get(WORKDIR_ENV) or Path.cwd()), forks=_forks)
    process.result.worker = str(task.request.hostname or "")
    done = threading.Event()
    mine = AbortableAsyncResult(task.request.id, app=task.app)  # task.request is the task thread's only

    def watch_abort() -> None:
        while not done.wait(ABORT_POLL):
            if mine.is_aborted():
                process.stop()
                return

    watcher = threading.Thread(target=watch_abort, daemon=True, name=f"abort-{run.key}")
    watcher.start()
    try:
        result = process.wait()
    finally:
        done.set()
    result.worker = process.result.worker
    return result.to_dict()


def worker_argv(concurrency: int, name: str | None, loglevel: str) -> list[str]:
    """The ``celery worker`` arguments of ``maintkit worker`` (threads pool: see the module's docstring)."""
    argv = [
        "worker",
        "--pool=threads",
        f"--concurrency={concurrency}",
        f"--queues={QUEUE}",
        f"--loglevel={loglevel}",
    ]
    if name:
        argv.append(f"--hostname={name}")
    return argv
