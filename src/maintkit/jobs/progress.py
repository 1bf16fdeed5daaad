"""Progress of a long transfer: ``progress`` events (bytes, rate, ETA) every few seconds.

Why shared: a snapshot and a restore move the same gigabytes the other way; an operator watching
either wants the same line (``⇣ host artifact: 1.2 GiB at 140 MiB/s, ETA 9 s``), and a 19-second
silence reads as a hang. The snapshot feeds :class:`Progress` from its fan-out; the restore wraps
the stream it sends to the host in a :class:`ProgressReader`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol


class Emitter(Protocol):
    """Whatever can emit an event (a job's ``HostContext``)."""

    def emit(self, event: str, /, **fields: object) -> None: ...


class Progress:
    """Emit ``progress`` events (bytes, rate, ETA) every :attr:`EVERY` seconds while an artifact streams.

    ``expected`` is the size the ETA aims at: the same artifact's size in the previous snapshot for a
    snapshot (a shop's dump grows slowly), the manifest's exact size for a restore.
    """

    EVERY = 5.0

    def __init__(self, ctx: Emitter, artifact: str, expected: int | None) -> None:
        self.ctx, self.artifact, self.expected = ctx, artifact, expected
        self.started = self.last = time.monotonic()

    def __call__(self, size: int) -> None:
        now = time.monotonic()
        if now - self.last < self.EVERY:
            return
        self.last = now
        rate = size / max(now - self.started, 1e-6)
        eta = None
        if self.expected and self.expected > size and rate > 0:
            eta = round((self.expected - size) / rate)
        self.ctx.emit("progress", artifact=self.artifact, bytes=size, rate=round(rate), eta=eta)


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


class ProgressReader:
    """A reader that reports to a :class:`Progress` on every read.

    ``measure`` says how far the transfer is, when that is not the bytes handed out (a restore's
    decrypting reader hands out plain bytes, while the ETA aims at the stored size it has read).
    """

    def __init__(
        self, reader: Readable, progress: Progress, measure: Callable[[], int] | None = None
    ) -> None:
        self.reader, self.progress, self.measure, self.size = reader, progress, measure, 0

    def read(self, n: int = -1, /) -> bytes:
        data = self.reader.read(n)
        self.size += len(data)
        self.progress(self.measure() if self.measure is not None else self.size)
        return data
