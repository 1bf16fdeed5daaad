"""age encryption of snapshot artifacts on the control node, streaming, with bounded memory.

Why age (through pyrage, the Rust ``age`` crate): public-key encryption means the machine that
*takes* snapshots needs only the recipients (public keys); the identity (private key) that decrypts
can live elsewhere, offline or with the people who restore. A stolen bucket, or a stolen backup
host, reveals nothing. The format is standard: ``age -d -i key.txt db.sql.zst.age`` decrypts an
artifact without maintkit.

Why a worker thread: pyrage streams only through ``encrypt_io(reader, writer)`` /
``decrypt_io(reader, writer)``, which *pull* from a reader. A snapshot's bytes are *pushed* by the
transport (``sink.write(chunk)``). :class:`Encryptor` bridges the two with a bounded pipe: the
transport's thread writes plaintext into it (blocking while it is full: backpressure reaches the
SSH channel), a worker thread runs ``encrypt_io`` over it, and the ciphertext comes back to the
caller's thread, which writes it to the wrapped sink. All storage I/O stays on the caller's thread,
as without encryption; the worker only computes. Memory: at most about twice the pipe's limit plus
one age chunk (64 KiB), whatever the artifact's size.

Secrets: an identity's contents never appear in an exception message or a log line; messages name
the identity *file* and a line number.
"""

from __future__ import annotations

import hashlib
import io
import queue
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import pyrage

from maintkit.model.problems import MaintkitError
from maintkit.storage.pipe import BoundedPipe, MiB

#: what an age file starts with (binary format, as maintkit writes it)
AGE_MAGIC = b"age-encryption.org/v1\n"
#: appended to an encrypted artifact's name: ``db.sql.zst.age``
AGE_SUFFIX = ".age"
#: bytes of plaintext (or of decrypted output) waiting between the two threads, at most
PIPE_LIMIT = 4 * MiB

Recipient = pyrage.x25519.Recipient | pyrage.ssh.Recipient
Identity = pyrage.x25519.Identity | pyrage.ssh.Identity

_SSH_RECIPIENT_TYPES = ("ssh-ed25519", "ssh-rsa")


class Readable(Protocol):
    """Anything with ``read(n)``: a target's reader, or a hashing wrapper around one."""

    def read(self, n: int = -1, /) -> bytes: ...


class EncryptionError(MaintkitError):
    """Encryption is misconfigured (a bad recipient, an unreadable identity file) or failed."""


class DecryptionError(EncryptionError):
    """An artifact does not decrypt: wrong identity, not an age file, or damaged or truncated data."""


@dataclass(frozen=True)
class EncryptionSettings:
    """A site's ``encryption`` variable, validated (see :func:`maintkit.storage.sites.site_encryption`).

    ``recipients`` are needed to take snapshots; ``identity_file`` only to verify and restore them,
    so a backup host can hold the recipients alone.
    """

    recipients: tuple[str, ...]
    identity_file: Path | None = None

    def load_recipients(self) -> list[Recipient]:
        return load_recipients(self.recipients)

    def load_identities(self) -> list[Identity]:
        """The identities of ``identity_file``; EncryptionError when none is configured."""
        if self.identity_file is None:
            raise EncryptionError("encryption.identity_file is not set: it is needed to decrypt snapshots")
        return load_identities(self.identity_file)

    @property
    def fingerprints(self) -> list[str]:
        """The recipients' fingerprints, for the manifest."""
        return [recipient_fingerprint(r) for r in self.recipients]


# -- keys ------------------------------------------------------------------------------------------


def parse_recipient(value: str) -> Recipient:
    """Parse one recipient: an ``age1…`` X25519 public key, or an ``ssh-ed25519``/``ssh-rsa`` public key.

    Raise EncryptionError saying what is accepted. Recipients are public, so the message may show
    the start of the value.
    """
    text = value.strip() if isinstance(value, str) else ""
    try:
        if text.startswith("age1") and not text.startswith("age1pq"):
            return pyrage.x25519.Recipient.from_str(text)
        if text.split(" ", 1)[0] in _SSH_RECIPIENT_TYPES:
            return pyrage.ssh.Recipient.from_str(text)
    except pyrage.RecipientError as error:
        raise EncryptionError(f"invalid recipient {_abbreviate(text)}: {error}") from None
    if text.startswith("AGE-SECRET-KEY-"):
        raise EncryptionError(
            "a recipient is a public key (age1…), but this is a secret key: never put an identity in "
            "the inventory; run `age-keygen -y KEYFILE` to print its public key"
        )
    raise EncryptionError(
        f"unsupported recipient {_abbreviate(text)}: give an age X25519 public key (age1…, from "
        "age-keygen) or an SSH public key (ssh-ed25519 … or ssh-rsa …)"
    )


def load_recipients(values: Iterable[str]) -> list[Recipient]:
    """Parse every recipient (see :func:`parse_recipient`); at least one is required."""
    recipients = [parse_recipient(value) for value in values]
    if not recipients:
        raise EncryptionError("encryption needs at least one recipient (an age1… public key)")
    return recipients


def recipient_fingerprint(value: str) -> str:
    """A short, stable name for a recipient, recorded in the manifest: ``age:``/``ssh:`` + 16 hex.

    Why not the key itself: age headers deliberately do not say who can decrypt a file; the
    manifest should not either. The fingerprint still lets a person check which key a snapshot
    needs (``maintkit`` prints the same fingerprint for the configured recipients).
    """
    parts = value.strip().split()
    canonical = " ".join(parts[:2])  # an SSH key's comment is not part of the key
    kind = "ssh" if parts and parts[0].startswith("ssh-") else "age"
    return f"{kind}:{hashlib.sha256(canonical.encode()).hexdigest()[:16]}"


def load_identities(path: str | Path) -> list[Identity]:
    """Read an age identity file: ``AGE-SECRET-KEY-1…`` lines (``#`` comments and blank lines
    skipped, as ``age-keygen`` writes them), or an unencrypted OpenSSH private key.

    Raise EncryptionError naming the file and line, never its contents.
    """
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EncryptionError(f"identity file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not a text file"
        raise EncryptionError(f"cannot read identity file {path}: {reason}") from None
    if text.lstrip().startswith("-----BEGIN"):
        try:
            return [pyrage.ssh.Identity.from_buffer(text.encode())]
        except pyrage.IdentityError:
            raise EncryptionError(
                f"identity file {path}: not a usable SSH private key (passphrase-protected SSH keys are "
                "not supported; use an age identity from age-keygen)"
            ) from None
    identities: list[Identity] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("AGE-PLUGIN-"):
            raise EncryptionError(f"identity file {path}, line {number}: plugin identities are not supported")
        try:
            identities.append(pyrage.x25519.Identity.from_str(line))
        except pyrage.IdentityError:
            raise EncryptionError(
                f"identity file {path}, line {number}: not an age identity (AGE-SECRET-KEY-1…)"
            ) from None
    if not identities:
        raise EncryptionError(f"identity file {path} holds no identity (AGE-SECRET-KEY-1… lines)")
    return identities


def _abbreviate(text: str) -> str:
    return repr(text if len(text) <= 24 else text[:20] + "…")


# -- streaming -------------------------------------------------------------------------------------


class _QueueWriter:
    """The worker's output: each write is handed, as bytes, to the caller's thread."""

    def __init__(self, out: queue.SimpleQueue[bytes | None]) -> None:
        self.out = out

    def write(self, data: bytes) -> int:
        self.out.put(bytes(data))
        return len(data)

    def flush(self) -> None:
        """Nothing is buffered here."""


class Encryptor:
    """A sink that encrypts everything written to it, with age, into ``sink`` (a FanOut).

    ``write(chunk)`` as the transport does; ``close()`` after the last chunk writes the end of the
    age stream (the final, authenticated chunk) to ``sink`` - without it the stored file is
    truncated and will not decrypt. ``close`` does not commit ``sink``: the caller decides.
    ``abort()`` stops the worker and writes nothing more (safe at any time, idempotent).

    The sink receives ciphertext only, so what the FanOut hashes and counts - the manifest's
    ``sha256`` and ``size`` - describes the stored bytes, as for unencrypted artifacts.
    """

    def __init__(self, sink: Any, recipients: Sequence[Recipient | str], *, limit: int = PIPE_LIMIT) -> None:
        self.sink = sink
        self.plain_bytes = 0
        parsed = [parse_recipient(r) if isinstance(r, str) else r for r in recipients]
        if not parsed:
            raise EncryptionError("encryption needs at least one recipient")
        self._input = BoundedPipe(limit)
        self._output: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._ended = False  # the worker's end marker was taken from the output queue
        self._closed = False
        self._thread = threading.Thread(target=self._work, args=(parsed,), name="age-encrypt", daemon=True)
        self._thread.start()

    def _work(self, recipients: list[Recipient]) -> None:
        try:
            pyrage.encrypt_io(self._input, _QueueWriter(self._output), recipients)  # type: ignore[arg-type]
        except BaseException as error:  # reported on the caller's thread
            self._error = error
        finally:
            self._input.reader_done()  # a writer blocked on a failed worker must not wait for ever
            self._output.put(None)

    def write(self, data: bytes, /) -> int:
        if self._closed:
            raise EncryptionError("write after close or abort")
        try:
            self._drain(block=False)
            try:
                self._input.write(data)  # blocks while the pipe is full: backpressure
            except BrokenPipeError:
                raise self._failure() from self._error  # the worker ended: it failed
            self._drain(block=False)
        except BaseException:
            self.abort()  # stop the worker; the caller aborts the sink
            raise
        self.plain_bytes += len(data)
        return len(data)

    def close(self) -> None:
        """End the age stream: wait for the worker and write the rest of the ciphertext to ``sink``."""
        if self._closed:
            return
        self._input.close()
        try:
            self._drain(block=True)
        except BaseException:
            self.abort()
            raise
        self._closed = True
        self._thread.join()
        if self._error is not None:
            raise self._failure() from self._error

    def abort(self) -> None:
        """Stop encrypting; nothing more reaches ``sink``."""
        self._closed = True
        self._input.abort()  # the worker's read fails: it ends
        self._thread.join()

    def _drain(self, block: bool) -> None:
        """Write the ciphertext the worker produced so far to the sink (all of it, when ``block``)."""
        while not self._ended:
            try:
                item = self._output.get(block=block)
            except queue.Empty:
                return
            if item is None:
                self._ended = True
                return
            self.sink.write(item)

    def _failure(self) -> EncryptionError:
        return EncryptionError(f"age encryption failed: {self._error or 'the worker stopped'}")


class _DecryptingRaw(io.RawIOBase):
    """The raw side of :func:`decrypting_reader`: plaintext pulled from a worker running decrypt_io."""

    def __init__(self, source: Readable, identities: list[Identity], limit: int) -> None:
        super().__init__()
        self._pipe = BoundedPipe(limit)
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._work, args=(source, identities), name="age-decrypt", daemon=True
        )
        self._thread.start()

    def _work(self, source: Readable, identities: list[Identity]) -> None:
        try:
            pyrage.decrypt_io(source, self._pipe, identities)  # type: ignore[arg-type]
        except BaseException as error:  # raised on the reader's thread, at the end of the data
            self._error = error
        finally:
            self._pipe.close()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        try:
            data = self._pipe.read(len(view))
        except BrokenPipeError:
            raise ValueError("read from a closed decrypting reader") from None
        if not data:
            self._thread.join()
            if self._error is not None:
                raise _decryption_error(self._error)
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._pipe.reader_done()  # a worker blocked writing plaintext nobody reads ends now
            self._thread.join()
        super().close()


def decrypting_reader(
    raw: Readable, identities: Sequence[Identity | str | Path], *, limit: int = PIPE_LIMIT
) -> BinaryIO:
    """Return a stream of the plaintext of the age file ``raw`` (a stored artifact being read).

    ``identities``: pyrage identities, ``AGE-SECRET-KEY-1…`` strings, or paths of identity files.
    Reading raises DecryptionError when the identities do not match, the data is not age, or it is
    damaged or truncated (age authenticates every 64 KiB chunk and marks the last one, so a cut-off
    file fails at its end instead of passing as a shorter one). Plaintext read before such an error
    was authenticated; a caller that must not act on a partial stream reads to the end first.
    Close the stream when done (it stops the worker thread); ``raw`` is not closed.
    """
    loaded: list[Identity] = []
    for identity in identities:
        if isinstance(identity, str) and identity.startswith("AGE-SECRET-KEY-"):
            try:
                loaded.append(pyrage.x25519.Identity.from_str(identity.strip()))
            except pyrage.IdentityError:
                raise EncryptionError("invalid age identity (AGE-SECRET-KEY-1…)") from None
        elif isinstance(identity, str | Path):
            loaded += load_identities(identity)
        else:
            loaded.append(identity)
    if not loaded:
        raise EncryptionError("decrypting needs at least one identity")
    return io.BufferedReader(_DecryptingRaw(raw, loaded, limit), buffer_size=256 * 1024)


def _decryption_error(error: BaseException) -> DecryptionError:
    """Say what went wrong in words a person restoring at 3 a.m. can act on."""
    text = str(error)
    if "No matching keys" in text:
        return DecryptionError(
            "none of the configured identities can decrypt it (it was encrypted to other recipients: "
            "check encryption.identity_file against the manifest's encrypted_to fingerprints)"
        )
    if "header" in text.lower() or "unknown format" in text.lower():
        return DecryptionError(f"not an age-encrypted file ({text})")
    return DecryptionError(f"decryption failed: the data is damaged or truncated ({text})")
