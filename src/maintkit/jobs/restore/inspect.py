"""What the control node checks in each artifact while it streams to the host.

An inspector receives every compressed chunk before it is released to the host
(:class:`~maintkit.jobs.restore.stream.VerifyingReader`) and raises to stop the restore there.

* the dump: decompressed with :class:`~maintkit.sources.trailer.DumpTrailerWatcher` (valid
  zstd/gzip, the ``-- Dump completed`` trailer, the tables it creates) and counted with
  :class:`~maintkit.jobs.restore.dumprows.DumpRowCounter`;
* the archive: decompressed and every member checked by :class:`~maintkit.jobs.restore.tarcheck.TarGuard`.

Why decompress here *and* on the host: the host needs the plain bytes to import and extract; the
control node needs them to prove what the host is given. Sending the compressed bytes keeps the
network transfer as small as the snapshot, and zstd decompresses at several hundred MB/s, well above
what an SSH channel carries.
"""

from __future__ import annotations

from maintkit.jobs.restore.dumprows import DumpRowCounter
from maintkit.jobs.restore.stream import IntegrityError, UnsafeContent
from maintkit.jobs.restore.tarcheck import TarGuard, UnsafeMember
from maintkit.sources.compression import DecompressionError, StreamDecompressor, detect_compression
from maintkit.sources.trailer import DumpTrailerWatcher
from maintkit.storage.manifest import Artifact


class DumpInspector:
    """Checks a compressed dump: decodable, of the announced compression, complete; counts rows."""

    def __init__(self, artifact: Artifact) -> None:
        if artifact.compression == "none":
            raise IntegrityError(artifact.name, "uncompressed dumps are not supported by restore")
        self.artifact = artifact
        self.rows = DumpRowCounter()
        self.watcher = DumpTrailerWatcher(artifact.compression, plain=self.rows)

    @property
    def plain_bytes(self) -> int:
        return self.watcher.plain_bytes

    def __call__(self, data: bytes) -> None:
        self.watcher.write(data)
        if self.watcher.reason is not None:
            raise IntegrityError(self.artifact.name, f"{self.watcher.reason} (nothing was committed)")

    def finish(self) -> None:
        """After the last byte: the stream must be complete and end with the dump's trailer."""
        self.watcher.close()
        if not self.watcher.ok:
            raise IntegrityError(self.artifact.name, f"{self.watcher.reason} (nothing was committed)")


class ArchiveInspector:
    """Checks a compressed tar: decodable, of the announced compression, no unsafe member."""

    def __init__(self, artifact: Artifact) -> None:
        if artifact.compression == "none":
            raise IntegrityError(artifact.name, "uncompressed archives are not supported by restore")
        self.artifact = artifact
        self.guard = TarGuard()
        self.decompressor = StreamDecompressor(artifact.compression)
        self._head = b""
        self._checked = False

    @property
    def plain_bytes(self) -> int:
        return self.guard.plain_bytes

    def __call__(self, data: bytes) -> None:
        if not self._checked:
            self._head += data[:4]
            if len(self._head) < 4:
                return self._feed(data)
            self._checked = True
            found = detect_compression(self._head)
            if found != self.artifact.compression:
                raise IntegrityError(
                    self.artifact.name,
                    f"the data is {found or 'not zstd or gzip'}, the manifest says "
                    f"{self.artifact.compression} (nothing was committed)",
                )
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        try:
            plain = self.decompressor.decompress(data)
        except DecompressionError as error:
            raise IntegrityError(self.artifact.name, f"{error} (nothing was committed)") from None
        try:
            self.guard.write(plain)
        except UnsafeMember as error:
            raise UnsafeContent(self.artifact.name, f"{error}; nothing was restored") from None

    def finish(self) -> None:
        if not self.decompressor.complete:
            raise IntegrityError(
                self.artifact.name, "the compressed archive is truncated (nothing was committed)"
            )
