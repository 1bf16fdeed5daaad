"""The I/O loop pieces every transport shares: chunk size, the stdin copy thread, the wait slices.

Why a module of its own: the local, SSH, session and bulk (system ssh) paths stream the same way;
when these lived in ``local.py`` the SSH modules imported the local transport for them.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import BinaryIO

from maintkit.transport.base import Sink

CHUNK = 64 * 1024
#: the longest we block without looking at the timeout and the cancel event
POLL_INTERVAL = 0.05


class CountingSink:
    """Pass every chunk to the caller's sink and count the bytes (for ``CommandResult.stdout_bytes``)."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.total = 0

    def write(self, data: bytes) -> int:
        self.total += len(data)
        self.sink.write(data)
        return len(data)


class StdinFeeder(threading.Thread):
    """Copy ``prefix`` and then the caller's stdin into a running command, in the background.

    Why a thread: the command's output must be drained while its input is written, or a command like
    ``cat`` deadlocks once both pipes are full. ``write`` may block (pipe or SSH window full), which is
    fine here. When the command stops reading (it exited, or was killed) ``write`` raises and the copy
    ends quietly. When the *source* fails, the error is kept in :attr:`error` and the command's stdin
    is deliberately **not** closed: an EOF would let the command take a truncated input as complete
    (think of a database restore); the caller kills the command instead.
    """

    def __init__(
        self,
        *,
        write: Callable[[bytes], object],
        close: Callable[[], object],
        prefix: bytes = b"",
        source: bytes | bytearray | memoryview | BinaryIO | None = None,
        name: str = "stdin",
    ) -> None:
        super().__init__(name=f"maintkit-{name}", daemon=True)
        self._write = write
        self._close = close
        self._prefix = prefix
        self._source = source
        #: the exception raised by the caller's stdin source, if it failed
        self.error: BaseException | None = None

    def run(self) -> None:
        close = True
        try:
            if self._prefix and not self._send(self._prefix):
                return
            source = self._source
            if isinstance(source, bytes | bytearray | memoryview):
                view = memoryview(source)
                for start in range(0, len(view), CHUNK):
                    if not self._send(bytes(view[start : start + CHUNK])):
                        return
            elif source is not None:
                while True:
                    try:
                        chunk = source.read(CHUNK)
                        if chunk and not isinstance(chunk, bytes | bytearray | memoryview):
                            raise TypeError(f"stdin must yield bytes, got {type(chunk).__name__}")
                    except BaseException as exc:
                        self.error, close = exc, False
                        return
                    if not chunk:
                        break
                    if not self._send(bytes(chunk)):
                        return
        except BaseException as exc:  # a bug here must not leave the command waiting forever
            self.error, close = exc, False
        finally:
            if close:
                with contextlib.suppress(Exception):
                    self._close()

    def _send(self, data: bytes) -> bool:
        """Write ``data``; return False when the command no longer reads its stdin.

        ``write`` must raise ``OSError`` (or ``EOFError``/``ValueError``) when the reader is gone."""
        try:
            self._write(data)
        except (OSError, EOFError, ValueError):
            return False
        return True


def remaining(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.monotonic()


def wait_slice(deadline: float | None) -> float:
    """How long to block before looking at the deadline and the cancel event again."""
    left = remaining(deadline)
    return POLL_INTERVAL if left is None else max(0.0, min(POLL_INTERVAL, left))


def abort_reason(
    deadline: float | None, cancel: threading.Event | None, feeder: StdinFeeder | None
) -> str | None:
    """Return why a running command must be stopped now, or None."""
    if cancel is not None and cancel.is_set():
        return "cancel"
    if deadline is not None and time.monotonic() >= deadline:
        return "timeout"
    if feeder is not None and feeder.error is not None:
        return "stdin"
    return None
