"""Proving a stored snapshot is whole: re-read every artifact as it is stored, end to end.

Checks per artifact (the record says which passed): ``size`` and ``sha256`` against the manifest,
``decompress`` (every zstd frame / gzip member complete), then by kind: ``tar_listing`` (the whole
archive lists, member by member) or ``dump_trailer`` (the dump ends with ``-- Dump completed``).
An engine artifact (``files_engine: restic``) is checked by the engine: its snapshot and tree in the
target's repository, and ``restic check --read-data`` (:mod:`maintkit.storage.engine_ops`).
An age-encrypted artifact is decrypted on the way when an identity is given (``decrypt``: every
chunk authenticated, the stream not truncated), and then gets the same checks; without an identity
only its size and SHA-256 can be checked, and the record's message says so.
Everything streams: memory stays bounded whatever the artifact's size. The result is written beside
the manifest (``verification.json``) so retention knows the newest verified snapshot.
"""

from __future__ import annotations

import gzip
import hashlib
import tarfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, BinaryIO

from maintkit import __version__
from maintkit.model.problems import MaintkitError
from maintkit.sources.trailer import DumpTrailerWatcher
from maintkit.storage.base import Target
from maintkit.storage.encryption import DecryptionError, Identity, decrypting_reader
from maintkit.storage.engine_ops import verify_engine_artifact
from maintkit.storage.manifest import Artifact, ArtifactCheck, Manifest, Verification, write_verification

CHUNK = 1024 * 1024


class HashingReader:
    """A file-like over a stored object that hashes and counts every byte read through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.size = 0
        self.hash = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n if n is not None and n >= 0 else CHUNK)
        self.size += len(data)
        self.hash.update(data)
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass


def verify_snapshot(
    target: Target,
    manifest: Manifest,
    emit: Callable[..., None] = lambda *a, **k: None,
    record: bool = True,
    identities: list[Identity] | None = None,
) -> Verification:
    """Given a target and a snapshot's manifest, re-read every artifact and return the verdict.

    With ``record``, the verdict is stored beside the manifest (``verification.json``).
    ``identities`` decrypt age-encrypted artifacts (see :func:`verify_artifact`).
    """
    started = time.monotonic()
    results = []
    for artifact in manifest.artifacts:
        check = verify_artifact(target, artifact, identities)
        emit("artifact_verified", target=target.name, artifact=artifact.name, ok=check.ok, msg=check.message)
        results.append(check)
    verification = Verification(
        snapshot_id=manifest.snapshot_id,
        time=datetime.now(UTC),
        ok=bool(results) and all(r.ok for r in results),
        results=results,
        tool_version=__version__,
        duration=round(time.monotonic() - started, 3),
    )
    if record:
        write_verification(target, manifest.site, manifest.env, verification)
    return verification


def verify_artifact(
    target: Target, artifact: Artifact, identities: list[Identity] | None = None
) -> ArtifactCheck:
    """Stream one artifact from ``target`` and check it; never raises for a bad artifact.

    An ``age`` artifact is decrypted with ``identities`` while it streams (the SHA-256 is still
    that of the stored ciphertext); without identities only its size and SHA-256 are checked.
    """
    if artifact.engine is not None:  # a tree in the site's repository: restic reads it back
        return verify_engine_artifact(target, artifact)
    check = ArtifactCheck(artifact.name, ok=False)
    decrypt = artifact.encryption == "age" and bool(identities)
    if artifact.encryption != "none" and not decrypt:
        check.message = (
            f"encrypted with {artifact.encryption} and no identity to decrypt it (encryption.identity_file): "
            "only size and sha256 were checked"
        )
    try:
        with target.open_reader(artifact.key) as raw:
            reader = HashingReader(raw)
            if decrypt:
                _check_encrypted(reader, artifact, check, identities or [])
            elif artifact.encryption == "none":
                _check_content(reader, artifact, check)
            reader.drain()
    except (MaintkitError, OSError) as error:
        check.message = f"could not read {target.name}:{artifact.key}: {error}"
        return check
    check.size, check.sha256 = reader.size, reader.hash.hexdigest()
    check.checks["size"] = reader.size == artifact.size
    check.checks["sha256"] = check.sha256 == artifact.sha256
    failed = [name for name, passed in check.checks.items() if not passed]
    check.ok = not failed
    if failed and not check.message:
        check.message = "failed: " + ", ".join(failed)
        if not check.checks["size"]:
            check.message += f" (stored {reader.size} bytes, manifest says {artifact.size})"
    return check


def _check_encrypted(
    reader: HashingReader, artifact: Artifact, check: ArtifactCheck, identities: list[Identity]
) -> None:
    """Decrypt while checking the content; ``decrypt`` passes only when the whole stream authenticated."""
    plain = decrypting_reader(reader, identities)
    try:
        _check_content(plain, artifact, check)
        while plain.read(CHUNK):  # the content checks may stop early; age proves the end
            pass
        check.checks["decrypt"] = True
    except DecryptionError as error:  # the root cause, whatever a content check made of it
        check.checks["decrypt"] = False
        check.message = str(error)
    finally:
        plain.close()  # stops the worker before ``reader`` is read again on this thread


def _check_content(reader: Any, artifact: Artifact, check: ArtifactCheck) -> None:
    """Decompress and check the artifact's content by kind, recording each check."""
    if ".sql" in artifact.name:
        watcher = DumpTrailerWatcher(None if artifact.compression == "none" else artifact.compression)
        while chunk := reader.read(CHUNK):
            watcher.write(chunk)
        watcher.close()
        check.checks["decompress"] = watcher.ok or "trailer" in (watcher.reason or "")
        check.checks["dump_trailer"] = watcher.ok
        if not watcher.ok:
            check.message = f"dump: {watcher.reason}"
        return
    if ".tar" in artifact.name:
        try:
            members = _list_tar(reader, artifact.compression)
        except Exception as error:  # zstd, gzip and tar each raise their own: all mean "does not read"
            check.checks["decompress"] = False
            check.checks["tar_listing"] = False
            check.message = f"archive does not read: {error}"
            return
        check.checks["decompress"] = True
        check.checks["tar_listing"] = members > 0
        if members == 0:
            check.message = "archive lists no member"


def _list_tar(reader: Any, compression: str) -> int:
    """Stream through a compressed tar, counting members (their data is read and discarded)."""
    plain: Any
    if compression == "zstd":
        import zstandard

        plain = zstandard.ZstdDecompressor().stream_reader(reader, read_across_frames=True)
    elif compression == "gzip":
        plain = gzip.GzipFile(fileobj=reader, mode="rb")
    else:
        plain = reader
    count = 0
    with tarfile.open(fileobj=plain, mode="r|") as archive:
        for _member in archive:
            count += 1
    while plain.read(CHUNK):  # the end-of-archive padding and the end of the compressed frame
        pass
    return count
