"""The one bounded pipe between two threads: a file-like ``write`` on one side, ``read(n)`` on the other.

Why one: the S3 upload (boto3 reads the stream in its own thread) and age encryption and decryption
(pyrage pulls from a reader in a worker thread) all hand a stream from the thread that has it to the
thread that wants it, with bounded memory and backpressure: ``write`` blocks while ``limit`` bytes
wait, so a slow consumer slows the SSH channel and the dump on the server, instead of the control
node buffering gigabytes. Either side may stop at any moment and the other must notice at once,
never wait forever:

* ``close()``: the writer is done; the reader gets what is left, then ``b""``.
* ``abort()``: the *writer's* side gives up (the dump broke): the reader fails with
  :class:`PipeAborted` (raised inside boto3 it abandons the multipart upload), writers with
  :class:`PipeClosed`.
* ``reader_done()``: the *reader* stopped (the upload or the worker ended, or failed): waiting
  data is dropped and every write from now on fails with :class:`PipeClosed`.
"""

from __future__ import annotations

import threading
from collections import deque

MiB = 1024 * 1024


class PipeClosed(BrokenPipeError):
    """The pipe's reader is gone or the pipe was aborted: nothing more can be written."""


class PipeAborted(Exception):
    """Raised to the reader after :meth:`BoundedPipe.abort`: the stream will never be complete."""


class BoundedPipe:
    """A FIFO of bytes holding at most ``limit`` bytes (a single larger write waits for an empty pipe).

    ``read(n)`` returns exactly ``n`` bytes, fewer only at the end (boto3 cuts parts by what one read
    returns); ``read()`` or ``read(-1)`` returns everything to the end.
    """

    def __init__(self, limit: int = 4 * MiB) -> None:
        if limit <= 0:
            raise ValueError("a pipe's limit must be positive")
        self.limit = limit
        self._chunks: deque[bytes] = deque()
        self._offset = 0  # bytes of the first chunk already read
        self._size = 0  # bytes waiting
        self._eof = False
        self._aborted = False
        self._reader_gone = False
        self._cond = threading.Condition()

    # -- the writer's side ---------------------------------------------------------------------
    def write(self, data: bytes, /) -> int:
        """Queue ``data``, waiting while the pipe is full. Raise PipeClosed if nobody will read it."""
        view = memoryview(data)
        for start in range(0, len(view), self.limit):
            piece = bytes(view[start : start + self.limit])
            with self._cond:
                while self._size and self._size + len(piece) > self.limit and not self._broken():
                    self._cond.wait()
                self._raise_if_broken()
                if self._eof:
                    raise PipeClosed("write after close")
                self._chunks.append(piece)
                self._size += len(piece)
                self._cond.notify_all()
        return len(data)

    def flush(self) -> None:
        """File-like objects flush; a pipe has nothing to flush."""

    def close(self) -> None:
        """The writer is done: the reader gets what is left, then end of file (idempotent)."""
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def abort(self) -> None:
        """The stream will not be complete: fail the reader and any blocked or later writer."""
        with self._cond:
            self._aborted = True
            self._cond.notify_all()

    # -- the reader's side ---------------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        """Return ``size`` bytes (fewer only at the end), or everything left when ``size`` < 0."""
        want = -1 if size is None else size
        parts: list[bytes] = []
        have = 0
        with self._cond:
            while want < 0 or have < want:
                while not self._chunks and not self._eof and not self._aborted and not self._reader_gone:
                    self._cond.wait()
                if self._aborted:
                    raise PipeAborted("the stream was aborted")
                if self._reader_gone:
                    raise PipeClosed("read after the reader stopped")
                if not self._chunks:
                    break  # end of file
                head = self._chunks[0]
                end = len(head) if want < 0 else min(len(head), self._offset + want - have)
                part = head[self._offset : end] if (self._offset or end < len(head)) else head
                if end == len(head):
                    self._chunks.popleft()
                    self._offset = 0
                else:
                    self._offset = end
                self._size -= len(part)
                have += len(part)
                parts.append(part)
                self._cond.notify_all()
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def reader_done(self) -> None:
        """The reader stopped (finished or failed): drop what waits and fail writers from now on."""
        with self._cond:
            self._reader_gone = True
            self._chunks.clear()
            self._size = 0
            self._cond.notify_all()

    def _broken(self) -> bool:
        return self._aborted or self._reader_gone

    def _raise_if_broken(self) -> None:
        if self._aborted:
            raise PipeClosed("aborted")
        if self._reader_gone:
            raise PipeClosed("the reader stopped")
