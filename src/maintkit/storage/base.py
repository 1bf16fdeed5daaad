"""The storage interface: a target holds keys; a writer streams one artifact into it; FanOut feeds many.

Why this shape:

* **A writer per artifact, visible only on commit.** A dump streams for minutes and can fail at any
  byte. Until :meth:`ArtifactWriter.commit`, nothing is visible under the key (an S3 multipart upload
  that is not completed, a local ``KEY.part`` file), so a reader never mistakes half a dump for a
  dump. :meth:`ArtifactWriter.abort` throws the partial data away and is safe to call at any time,
  more than once, after a failed write, or after commit (then it does nothing: commit is final).
* **Total size unknown in advance.** ``mysqldump | zstd`` does not announce its size; writers accept
  bytes until commit.
* **Read once, written N times.** :class:`FanOut` hands the same bytes to every target's writer and
  hashes them as they pass, so the SHA-256 and size in the manifest are those of exactly the bytes
  every target received, computed without reading anything back.
* **Keys are relative to the target** (its folder, or its bucket prefix) and use ``/``; the layout
  is ``SITE/ENV/SNAPSHOT_ID/NAME`` (DESIGN.md): :func:`snapshot_key`.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from datetime import UTC, datetime
from types import TracebackType
from typing import BinaryIO

from maintkit.model.problems import MaintkitError

log = logging.getLogger(__name__)

#: snapshot ids: UTC time to the second, optionally ``-N`` when two snapshots share a second
SNAPSHOT_ID_FORMAT = "%Y%m%dT%H%M%SZ"
_SNAPSHOT_ID_RE = re.compile(r"^(\d{8}T\d{6}Z)(?:-(\d+))?$")


class StorageError(MaintkitError):
    """A storage target failed or refused (missing bucket, credentials, object lock, disk full...).

    Messages name the target and the bucket or folder, never a credential.
    """


def check_segment(segment: str, what: str = "key segment") -> str:
    """Return ``segment`` if it can be one level of a key (not empty, no ``/``, not ``.``/``..``).

    Why so strict: keys become local paths; ``..`` or an absolute path would write outside the target.
    """
    if (
        not segment
        or segment in (".", "..")
        or "/" in segment
        or "\\" in segment
        or any(ord(c) < 32 or ord(c) == 127 for c in segment)
    ):
        raise ValueError(f"invalid {what} {segment!r}: it must be a non-empty name without '/'")
    return segment


def check_key(key: str) -> str:
    """Return ``key`` if it is a relative ``a/b/c`` key whose every segment passes :func:`check_segment`."""
    for segment in key.split("/"):
        check_segment(segment)
    return key


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` (``""``, ``a/b/``, or a partial ``a/b/2026``) if its complete segments are valid."""
    if not prefix:
        return prefix
    parts = prefix.split("/")
    for segment in parts[:-1]:
        check_segment(segment, "prefix segment")
    if parts[-1]:
        check_segment(parts[-1], "prefix segment")
    return prefix


def snapshot_prefix(site: str, env: str, snapshot_id: str | None = None) -> str:
    """Return the prefix of an environment's snapshots (``SITE/ENV/``) or of one snapshot (``.../ID/``)."""
    parts = [check_segment(site, "site name"), check_segment(env, "environment name")]
    if snapshot_id is not None:
        parts.append(check_segment(snapshot_id, "snapshot id"))
    return "/".join(parts) + "/"


def snapshot_key(site: str, env: str, snapshot_id: str, name: str) -> str:
    """Return the key of one file of a snapshot: ``SITE/ENV/SNAPSHOT_ID/NAME`` (``db.sql.zst``...)."""
    return snapshot_prefix(site, env, snapshot_id) + check_segment(name, "artifact name")


def new_snapshot_id(now: datetime, existing: Iterable[str] = ()) -> str:
    """Return a new snapshot id for ``now``: its UTC time to the second, ``20261122T031500Z``.

    Why no random suffix: ids are typed by people (``maintkit snapshots show ID``) and must sort by
    time as plain strings. Two runs of one environment never overlap (the environment lock), so the
    only collision left is two snapshots of one site within one second of one run; the caller passes
    the ids already present (``existing``, from :meth:`Target.list_dir`) and gets ``...Z-2``, ``-3``,
    which still sort after the first. A naive ``now`` is taken to be UTC.
    """
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    base = now.astimezone(UTC).strftime(SNAPSHOT_ID_FORMAT)
    taken = set(existing)
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def parse_snapshot_id(snapshot_id: str) -> datetime | None:
    """Return the UTC time a snapshot id names, or None when it is not a snapshot id."""
    match = _SNAPSHOT_ID_RE.match(snapshot_id)
    if not match:
        return None
    try:
        return datetime.strptime(match.group(1), SNAPSHOT_ID_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


class ArtifactWriter(ABC):
    """Streams one artifact into one target; nothing is visible under the key before :meth:`commit`.

    Use it as a context manager: leaving the block without ``commit()`` (an exception, an early
    return) aborts.
    """

    #: the key being written, relative to the target
    key: str

    @abstractmethod
    def write(self, data: bytes, /) -> int:
        """Append ``data``; may block while the target catches up (that is the backpressure)."""

    @abstractmethod
    def commit(self) -> None:
        """Finish: make the object visible under its key. Raises StorageError; the data is then gone."""

    @abstractmethod
    def abort(self) -> None:
        """Throw the partial data away. Safe after a failed write or commit; idempotent; never raises
        for a problem it can only log. After a successful commit it does nothing."""

    @property
    @abstractmethod
    def committed(self) -> bool:
        """Whether :meth:`commit` succeeded."""

    def __enter__(self) -> ArtifactWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self.committed:
            self.abort()


class Target(ABC):
    """A place where snapshots live. Keys are relative (``SITE/ENV/ID/NAME``) and use ``/``."""

    #: the target's name in the inventory (``storage[].name``), used by ``--target``
    name: str

    @abstractmethod
    def check(self) -> None:
        """Fail now, with a clear message, if the target cannot take a snapshot.

        Why: a snapshot that dumps a database for ten minutes and then finds the bucket missing has
        wasted the maintenance window. Called before the dump starts.
        """

    @abstractmethod
    def open_writer(self, key: str) -> ArtifactWriter:
        """Start streaming one artifact of unknown size to ``key``."""

    def put_bytes(self, key: str, data: bytes) -> None:
        """Write a small object (``manifest.json``) in one go, visible only once complete."""
        with self.open_writer(key) as writer:
            writer.write(data)
            writer.commit()

    def get_bytes(self, key: str) -> bytes:
        """Return a small object's content. Raises StorageError (FileNotFoundError-like) if missing."""
        with self.open_reader(key) as reader:
            return reader.read()

    @abstractmethod
    def open_reader(self, key: str) -> BinaryIO:
        """Return a stream of the object's bytes (memory stays bounded whatever its size)."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether a committed object is stored under ``key``."""

    @abstractmethod
    def size(self, key: str) -> int:
        """The size in bytes of the object under ``key``."""

    @abstractmethod
    def list_dir(self, prefix: str) -> list[str]:
        """Return the sorted names of the immediate "folders" under ``prefix`` (e.g. ids under
        ``SITE/ENV/``)."""

    @abstractmethod
    def list_keys(self, prefix: str) -> list[tuple[str, int, datetime]]:
        """Return (key, size, last modified in UTC) of every committed object whose key starts with
        ``prefix``, sorted by key."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix`` (and any unfinished upload there); return how many.

        An empty prefix is refused: pruning never empties a whole target by accident.
        """

    def abort_unfinished_uploads(self, prefix: str, *, before: datetime | None = None) -> int:
        """Abort the uploads started under ``prefix`` (before ``before``, if given) and never
        completed; return how many. Raises StorageError when the target cannot be asked.

        Only stores with invisible partial uploads (S3 multipart) have any: the default has none.
        """
        return 0

    @abstractmethod
    def describe(self) -> str:
        """Where this target is, for messages (``s3://bucket/prefix``); never a secret."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}: {self.describe()}>"


def refuse_empty_prefix(prefix: str) -> str:
    """Return ``prefix`` checked, or raise ValueError when it is empty (see :meth:`Target.delete_prefix`)."""
    if not prefix.strip("/"):
        raise ValueError("refusing to delete with an empty prefix (that would empty the whole target)")
    return check_prefix(prefix)
