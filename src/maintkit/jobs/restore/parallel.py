"""Run a restore's staging tasks at the same time; the first failure cancels the others.

Why: the database and the files of a snapshot are independent until the commit, and each is bound
by something different (the database server's import, the host's disk and the SSH channel), so
staging them one after the other costs the sum of both where the longer one would do
(issue 16: "restore at pipeline speed").

Why a shared cancel event rather than just waiting: when one task fails the restore will not
commit, so every second the other spends streaming is wasted and keeps a host command running.
The event reaches the transport (``HostContext.run(cancel=...)``), which kills the command's
process group on the host; its own trap removes what it created, and the job's ``abort`` drops the
rest. The error reported is the first one raised: the cause, not the cancellation it triggered.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait


def run_together(tasks: Sequence[Callable[[], None]], cancel: threading.Event) -> None:
    """Run ``tasks`` in parallel threads; on the first exception set ``cancel``, wait for all, and
    raise that first exception. A single task runs in the calling thread."""
    if len(tasks) == 1:
        tasks[0]()
        return
    first: list[BaseException] = []
    lock = threading.Lock()

    def guarded(task: Callable[[], None]) -> None:
        try:
            task()
        except BaseException as error:
            with lock:
                if not first:
                    first.append(error)
                    cancel.set()
            raise

    with ThreadPoolExecutor(max_workers=len(tasks), thread_name_prefix="restore-stage") as pool:
        futures = [pool.submit(guarded, task) for task in tasks]
        wait(futures, return_when=FIRST_EXCEPTION)
        wait(futures)  # the others stop soon: their commands see the cancel event
    if first:
        raise first[0]
