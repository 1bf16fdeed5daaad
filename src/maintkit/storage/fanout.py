"""The one write fan-out: the same bytes to several sinks, read once.

:class:`Tee` is the plain fan-out (any sinks, in order); :class:`FanOut` is the tee of a snapshot
artifact's writers, one per storage target, that also hashes and counts the bytes and commits or
aborts them together. Why both here: there was a second tee beside the snapshot action; one place
means one behaviour for "one sink failed".
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from types import TracebackType

from maintkit.storage.base import ArtifactWriter, StorageError, Target
from maintkit.transport.base import Sink

log = logging.getLogger(__name__)


class Tee:
    """A sink that writes every chunk to several sinks, in order (e.g. a :class:`FanOut` and a check
    that reads the plaintext on the way, such as the dump trailer watcher)."""

    def __init__(self, *sinks: Sink) -> None:
        self.sinks = sinks

    def write(self, data: bytes) -> int:
        for sink in self.sinks:
            sink.write(data)
        return len(data)


class FanOut:
    """Feed the same bytes to several writers, hashing (SHA-256) and counting them on the way.

    A :class:`~maintkit.transport.base.Sink`: pass it as ``Transport.run(stdout=...)`` and the remote
    command's output goes to every target at once, read once. Writers are fed one after the other;
    an S3 writer only queues the bytes (its upload runs in its own thread), so a slow target slows
    the stream through backpressure instead of buffering without limit.

    Why one failing target fails the whole artifact: a snapshot is the same set of artifacts in every
    target, described by one manifest; the caller aborts and the step's retry starts over.
    """

    def __init__(
        self,
        writers: Sequence[ArtifactWriter],
        *,
        progress: Callable[[int], object] | None = None,
    ) -> None:
        if not writers:
            raise ValueError("FanOut needs at least one writer")
        self.writers = list(writers)
        self._tee = Tee(*self.writers)
        self.size = 0
        self._hash = hashlib.sha256()
        self._progress = progress
        self._failed: BaseException | None = None
        self._done = False

    @classmethod
    def open(
        cls, targets: Sequence[Target], key: str, *, progress: Callable[[int], object] | None = None
    ) -> FanOut:
        """Open a writer for ``key`` in every target, or none: if one cannot open (a missing bucket,
        Object Lock not configured), the writers already open are aborted and the error raised."""
        writers: list[ArtifactWriter] = []
        try:
            for target in targets:
                writers.append(target.open_writer(key))
        except BaseException:
            for writer in writers:
                _quiet_abort(writer)
            raise
        return cls(writers, progress=progress)

    @property
    def sha256(self) -> str:
        """The hex SHA-256 of every byte written so far."""
        return self._hash.hexdigest()

    def write(self, data: bytes, /) -> int:
        """Write ``data`` to every writer; raise (and keep raising) once any of them failed."""
        if self._failed is not None:
            raise StorageError(f"an earlier write failed: {self._failed}") from self._failed
        if self._done:
            raise StorageError("write after commit or abort")
        if not data:
            return 0
        try:
            self._tee.write(data)
        except BaseException as error:
            self._failed = error
            raise
        self._hash.update(data)
        self.size += len(data)
        if self._progress is not None:
            self._progress(self.size)
        return len(data)

    def commit(self) -> None:
        """Commit every writer. On a failure, abort the writers not yet committed and re-raise.

        Writers already committed stay: their artifact has no manifest yet, so it is an unfinished
        snapshot that retention sweeps after a day (an S3 object under Object Lock cannot be
        deleted anyway).
        """
        if self._failed is not None:
            self.abort()
            raise StorageError(f"cannot commit: a write failed: {self._failed}") from self._failed
        self._done = True
        for index, writer in enumerate(self.writers):
            try:
                writer.commit()
            except BaseException:
                for other in self.writers[index:]:
                    _quiet_abort(other)
                raise

    def abort(self) -> None:
        """Abort every writer (idempotent; problems are logged, never raised)."""
        self._done = True
        for writer in self.writers:
            _quiet_abort(writer)

    def __enter__(self) -> FanOut:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not all(writer.committed for writer in self.writers):
            self.abort()


def _quiet_abort(writer: ArtifactWriter) -> None:
    try:
        writer.abort()
    except Exception:  # abort runs on error paths: never hide the original error
        log.warning("aborting the upload of %s failed", writer.key)
