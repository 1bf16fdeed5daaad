"""Standard output that a reader going away cannot break: ``maintkit run … | head -3``.

Why: Python ignores SIGPIPE, so once the reader of a pipe has left, every write to it raises
``BrokenPipeError`` in whatever wrote: rich turns it into ``SystemExit(1)`` (raised in the event
writer thread, it killed the thread and once hung the run), ``click.echo`` into a traceback, the JSON
sink into one error line per event, and Python's own flush at exit into "Exception ignored …
BrokenPipeError". None of that may change what a run does or the exit code cron reads; the journal
holds every event whatever happens to stdout.

So the CLI puts, once, a text stream over :class:`PipeWriter` in place of ``sys.stdout``: at the first
EPIPE it points fd 1 at /dev/null (so nothing written later, by Python's exit flush or anyone
else, can fail), drops everything written after, and calls the callbacks registered with
:func:`on_closed` (the run journals one note). Everything that prints (rich, click, the JSON sink)
goes through it unchanged, so no caller needs to know about pipes.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

_writer: PipeWriter | None = None


class PipeWriter(io.RawIOBase):
    """A raw writer over a file descriptor that turns EPIPE into "the reader left: write nothing more"."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        self.broken = False

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return not self.broken and os.isatty(self._fd)

    def write(self, data: Any) -> int:
        size = memoryview(data).nbytes
        if self.broken:
            return size
        try:
            return os.write(self._fd, data)
        except BrokenPipeError:
            self._reader_left()
            return size

    def add_callback(self, callback: Callable[[], None]) -> None:
        with self._lock:
            self._callbacks.append(callback)

    def _reader_left(self) -> None:
        with self._lock:
            if self.broken:
                return
            self.broken = True
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, self._fd)
            finally:
                os.close(devnull)
            callbacks = list(self._callbacks)
        for callback in callbacks:
            with contextlib.suppress(Exception):  # a note about a closed pipe must never fail a run
                callback()


def install() -> PipeWriter | None:
    """Replace ``sys.stdout`` by a pipe-safe text stream over the same fd; return its writer.

    Does nothing (returns the writer already installed, or None) when stdout is not a plain text
    file stream, e.g. under click's test runner, which captures output itself.
    """
    global _writer
    if _writer is not None:
        return _writer
    stream = sys.stdout
    if not isinstance(stream, io.TextIOWrapper):
        return None
    try:
        fd = stream.fileno()
        stream.flush()
    except (OSError, ValueError):
        return None
    writer = PipeWriter(fd)
    sys.stdout = io.TextIOWrapper(
        io.BufferedWriter(writer),
        encoding=stream.encoding,
        errors=stream.errors,
        line_buffering=stream.line_buffering,
        write_through=stream.write_through,
    )
    _writer = writer
    return writer


def on_closed(callback: Callable[[], None]) -> None:
    """Call ``callback`` once, from the writing thread, when the reader of stdout has gone away."""
    if _writer is not None:
        _writer.add_callback(callback)


def stdout_closed() -> bool:
    """True once a write to stdout met a reader that had gone away."""
    return _writer is not None and _writer.broken
