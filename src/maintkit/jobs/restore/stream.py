"""The control-node side of a restore: read an artifact from storage and hand it to the host, proven.

:class:`VerifyingReader` is what ``Transport.run(command, stdin=...)`` reads from. For every chunk it

1. reads it from the target (the storage download),
2. counts and hashes it (SHA-256), and fails as soon as the artifact is longer than the manifest says,
3. shows it to an *inspector* (decompression on the control node, the tar member check, the dump
   trailer and row counter), which may refuse it,

and only then releases it to the host. The **last chunk is held back** until the whole artifact has
been read and its size and SHA-256 equal the manifest's. When they do not, ``read`` raises instead
of returning the last bytes or EOF: the transport then kills the command on the host (it never sees
the end of its input, so ``zstd -dc`` cannot finish and nothing after it in the host script runs).

Why hold back at all when the host imports into a staging database anyway (see ``docs/restore.md``):
defence in depth. A host command can only complete on a stream whose every byte was proven; the
separate commit step is then the second gate, taken only after this one.

An age-encrypted artifact (``db.sql.zst.age``) is decrypted here, on the control node: the identity
never travels to a server. Size and SHA-256 are those of the stored ciphertext; age authenticates
every 64 KiB chunk and marks the last one, so damaged or cut-off data fails in the decryption too.
The host receives the compressed plaintext, as for an unencrypted snapshot.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import BinaryIO

from maintkit.jobs.progress import Readable
from maintkit.model.problems import StepFailed
from maintkit.storage.encryption import DecryptionError, Identity, decrypting_reader
from maintkit.storage.manifest import Artifact

#: bytes read from storage at a time (and the size of the chunk held back)
CHUNK = 256 * 1024


class IntegrityError(StepFailed):
    """A stored artifact is not what its manifest says (size, SHA-256, or undecodable content).

    Raised before anything is committed on the host. ``artifact`` names the artifact.
    """

    def __init__(self, artifact: str, message: str) -> None:
        self.artifact = artifact
        super().__init__(f"{artifact}: {message}")


class UnsafeContent(StepFailed):
    """An artifact's content is refused (a tar member leaving the root, a device file...)."""

    def __init__(self, artifact: str, message: str) -> None:
        self.artifact = artifact
        super().__init__(f"{artifact}: {message}")


class StoredBytes:
    """What is read from storage: counted, hashed, timed (the download)."""

    def __init__(self, raw: BinaryIO, chunk: int = CHUNK) -> None:
        self.raw = raw
        self.chunk = chunk
        self.size = 0
        self.read_seconds = 0.0
        self.last_byte: float | None = None
        self.hash = hashlib.sha256()

    def read(self, n: int = -1, /) -> bytes:
        started = time.monotonic()
        data = self.raw.read(n if n is not None and n > 0 else self.chunk)
        now = time.monotonic()
        self.read_seconds += now - started
        if data:
            self.size += len(data)
            self.hash.update(data)
        else:
            self.last_byte = now
        return data


class VerifyingReader:
    """A file-like over a stored artifact that proves it while the host consumes it (see module doc).

    ``inspect`` receives every chunk (of compressed plaintext) before it is released; it may raise
    to stop the restore. ``identities`` decrypt an age-encrypted artifact. After the stream:
    ``size``, ``sha256`` (of the stored bytes), and timings (``opened_at`` wall clock,
    ``read_seconds`` spent waiting on storage, ``decrypt_seconds`` spent waiting on the decryption,
    ``inspect_seconds`` spent decompressing and checking on the control node, ``elapsed`` from open
    to the last byte).
    """

    def __init__(
        self,
        raw: BinaryIO,
        artifact: Artifact,
        inspect: Callable[[bytes], object] | None = None,
        chunk: int = CHUNK,
        identities: list[Identity] | None = None,
    ) -> None:
        self.artifact = artifact
        self.inspect = inspect
        self.chunk = chunk
        self.stored = StoredBytes(raw, chunk)
        self.encrypted = artifact.encryption != "none"
        if self.encrypted and not identities:
            raise IntegrityError(
                artifact.name,
                f"it is encrypted ({artifact.encryption}) and no identity is configured to decrypt it "
                "(encryption.identity_file of the source environment)",
            )
        self._plain: BinaryIO | StoredBytes = (
            decrypting_reader(self.stored, identities or []) if self.encrypted else self.stored
        )
        self.plain_size = 0
        self.decrypt_seconds = 0.0
        self.inspect_seconds = 0.0
        self.opened_at = datetime.now(UTC)
        self._started = time.monotonic()
        self._held: bytes | None = None  # the chunk not yet released
        self._verified = False
        self._done = False

    @property
    def size(self) -> int:
        """Bytes read from storage so far."""
        return self.stored.size

    @property
    def read_seconds(self) -> float:
        return self.stored.read_seconds

    @property
    def sha256(self) -> str:
        return self.stored.hash.hexdigest()

    @property
    def verified(self) -> bool:
        """True once every byte was read and size and SHA-256 matched the manifest."""
        return self._verified

    @property
    def elapsed(self) -> float:
        """Seconds from opening to the last byte read (so far, while it streams)."""
        end = self.stored.last_byte if self.stored.last_byte is not None else time.monotonic()
        return end - self._started

    def read(self, _n: int = -1) -> bytes:
        """The next proven chunk; ``b""`` only after the whole artifact matched its manifest."""
        if self._done:
            return b""
        if self._held is None:
            self._held = self._next()
        following = self._next() if self._held else b""
        if following:
            out, self._held = self._held, following
            return out
        self._verify()  # raises: the held-back chunk is never released, EOF never sent
        self._done = True
        out, self._held = self._held, b""
        return out

    def drain(self) -> None:
        """Read (and prove) the rest without a consumer; raises like :meth:`read`."""
        while self.read():
            pass

    def close(self) -> None:
        """Stop the decryption worker, if any (the storage reader is the caller's to close)."""
        if not isinstance(self._plain, StoredBytes):
            self._plain.close()

    def _next(self) -> bytes:
        started = time.monotonic()
        try:
            data = self._plain.read(self.chunk)
        except DecryptionError as error:
            raise IntegrityError(self.artifact.name, f"{error} (nothing was committed)") from None
        now = time.monotonic()
        if self.encrypted:
            self.decrypt_seconds += now - started
        if not data:
            if self.encrypted:
                self.stored.read()  # age stops at its last chunk: anything after it is not the snapshot's
            return b""
        self.plain_size += len(data)
        if self.size > self.artifact.size:
            raise IntegrityError(
                self.artifact.name,
                f"the stored artifact is longer than the manifest's {self.artifact.size} bytes: "
                "it is not the snapshot's (nothing was committed)",
            )
        if self.inspect is not None:
            self.inspect(data)
            self.inspect_seconds += time.monotonic() - now
        return data

    def _verify(self) -> None:
        if self.size != self.artifact.size:
            raise IntegrityError(
                self.artifact.name,
                f"size mismatch: stored {self.size} bytes, the manifest says {self.artifact.size} "
                "(nothing was committed)",
            )
        if self.sha256 != self.artifact.sha256:
            raise IntegrityError(
                self.artifact.name,
                f"SHA-256 mismatch: stored {self.sha256[:16]}…, the manifest says "
                f"{self.artifact.sha256[:16]}… (nothing was committed)",
            )
        self._verified = True


class PrefixedReader:
    """``prefix`` (the credentials a host script reads first), then everything ``reader`` yields."""

    def __init__(self, prefix: bytes, reader: Readable) -> None:
        self.prefix = prefix
        self.reader = reader

    def read(self, n: int = -1) -> bytes:
        if self.prefix:
            out, self.prefix = self.prefix, b""
            return out
        return self.reader.read(n)
