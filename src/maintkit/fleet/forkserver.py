"""Starting sites from a fork server: each site a fork of one process that imported maintkit once.

Why (see :mod:`maintkit.cli.sitechild`): a fresh interpreter per site spends most of a small site's
run importing. The fork server (multiprocessing's ``forkserver``: a single-threaded process, so a
fork of it never inherits a lock another thread held) imports the run's modules once; each site is
a fork of it, a process of its own all the same. :class:`ForkedRun` gives it the part of
``subprocess.Popen``'s interface the fleet uses, so :class:`~maintkit.fleet.process.SiteProcess`
follows either kind the same way.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import subprocess
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

#: one reader of exit statuses at a time. The fork server sends a child's status once, on a pipe;
#: ``Process.start()`` polls every earlier child (multiprocessing's cleanup) while the thread that
#: follows that child may poll it too: the second reader found the pipe at its end and reported the
#: child as lost (255) although its run had ended well.
_EXIT_STATUS = threading.Lock()


class ForkedRun:
    """A site's run forked from the fork server: its pid, its stdout and stderr, its exit code."""

    def __init__(self, process: Any, stdout: IO[str], stderr: IO[str]) -> None:
        self.process = process
        self.pid: int = process.pid
        self.stdout = stdout
        self.stderr = stderr

    def poll(self) -> int | None:
        with _EXIT_STATUS:
            code: int | None = self.process.exitcode
        return code

    def wait(self, timeout: float | None = None) -> int:
        multiprocessing.connection.wait([self.process.sentinel], timeout)
        code = self.poll()
        if code is None:
            raise subprocess.TimeoutExpired("maintkit run", timeout or 0)
        return code

    def send_signal(self, signum: int) -> None:
        if self.process.exitcode is None:
            os.kill(self.pid, signum)


class ForkServer:
    """Starts ``target(argv, cwd, stdout, stderr)`` in a fork of a server that imported ``preload``."""

    def __init__(self, target: Callable[..., None], preload: Sequence[str]) -> None:
        self.context = multiprocessing.get_context("forkserver")
        self.context.set_forkserver_preload(list(preload))
        self.target = target

    def start(self, argv: list[str], cwd: Path) -> ForkedRun:
        """Fork a site's run; its stdout and stderr come back as text streams (EOF when it ends)."""
        out_read, out_write = self.context.Pipe(duplex=False)
        err_read, err_write = self.context.Pipe(duplex=False)
        process = self.context.Process(
            target=self.target, args=(argv, str(cwd), out_write, err_write), name="maintkit-site"
        )
        try:
            with _EXIT_STATUS:
                process.start()
        finally:
            out_write.close()  # the child has its own copies: EOF comes when it ends
            err_write.close()
        stdout = os.fdopen(os.dup(out_read.fileno()), "r", encoding="utf-8", errors="replace")
        stderr = os.fdopen(os.dup(err_read.fileno()), "r", encoding="utf-8", errors="replace")
        out_read.close()
        err_read.close()
        return ForkedRun(process, stdout, stderr)
