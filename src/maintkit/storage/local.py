"""A storage target that is a folder on the control node (the embedded default, and a second copy).

Why ``KEY.part`` then ``os.replace``: a rename within one filesystem is atomic, so a key either
holds a complete artifact or does not exist; a crash leaves only a ``.part`` file, which listings
ignore and pruning removes. Why fsync the file and then its directory: the rename must not reach the
disk before the data, or a power cut leaves a complete-looking empty file. Why 0700/0600: snapshots
hold customer data and password hashes.
"""

from __future__ import annotations

import contextlib
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, ClassVar, Literal

from pydantic import Field

from maintkit.fsmodes import DIR_MODE, FILE_MODE, fsync_dir, make_private_dirs
from maintkit.storage.base import (
    ArtifactWriter,
    StorageError,
    Target,
    check_key,
    check_prefix,
    refuse_empty_prefix,
)
from maintkit.storage.settings import NAME_PATTERN, TargetSettings

PART_SUFFIX = ".part"
__all__ = ["DIR_MODE", "FILE_MODE", "LocalTarget", "LocalWriter", "fsync_dir", "make_dirs"]
WRITE_BUFFER = 1024 * 1024
#: written bytes after which the kernel is asked to start writing them to disk (see LocalWriter)
WRITEBACK_EVERY = 32 * 1024 * 1024
_DONTNEED = getattr(os, "POSIX_FADV_DONTNEED", None)


def make_dirs(path: Path) -> None:
    """Create ``path`` and its missing parents with mode 0700, durably (existing folders keep their mode)."""
    make_private_dirs(path, durable=True)


class LocalWriter(ArtifactWriter):
    """Writes ``KEY.part``; commit fsyncs and renames it to ``KEY``; abort removes it.

    Every 32 MiB the written pages are handed to the kernel's writeback (``POSIX_FADV_DONTNEED``
    starts it without waiting, then drops pages already on disk from the page cache). Why: otherwise
    the whole artifact piles up as dirty pages and the final ``fsync`` writes it all while the run
    waits (600 MB: 0.27 s of fsync, and slower writes before it, against 0.02 s; docs/performance.md);
    and a backup does not push the control node's useful cache out. The fsync still decides.
    """

    def __init__(self, key: str, final: Path, target: str = "") -> None:
        self.key = key
        #: how messages name the target (``storage target 'NAME': ``), empty when unnamed
        self._where = f"storage target '{target}': " if target else ""
        self.final = final
        self.part = final.with_name(final.name + PART_SUFFIX)
        fd = os.open(self.part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, FILE_MODE)
        os.fchmod(fd, FILE_MODE)
        self._file: BinaryIO | None = os.fdopen(fd, "wb", buffering=WRITE_BUFFER)
        self._committed = False
        self._unsynced = 0

    @property
    def committed(self) -> bool:
        return self._committed

    def write(self, data: bytes, /) -> int:
        if self._file is None:
            raise StorageError(f"write to {self.final} after commit or abort")
        try:
            written = self._file.write(data)
            self._unsynced += written
            if self._unsynced >= WRITEBACK_EVERY:
                self._start_writeback(self._file)
            return written
        except OSError as error:
            raise StorageError(f"{self._where}cannot write {self.part}: {error.strerror or error}") from error

    def _start_writeback(self, file: BinaryIO) -> None:
        self._unsynced = 0
        if _DONTNEED is None:
            return
        file.flush()
        with contextlib.suppress(OSError):  # advice only: the fsync at commit is what counts
            os.posix_fadvise(file.fileno(), 0, 0, _DONTNEED)

    def commit(self) -> None:
        if self._committed:
            return
        if self._file is None:
            raise StorageError(f"commit of {self.final} after abort")
        file, self._file = self._file, None
        try:
            file.flush()
            os.fsync(file.fileno())
            file.close()
            os.replace(self.part, self.final)
            fsync_dir(self.final.parent)
        except OSError as error:
            with contextlib.suppress(OSError):
                file.close()
            with contextlib.suppress(OSError):
                self.part.unlink(missing_ok=True)
            raise StorageError(
                f"{self._where}cannot store {self.final}: {error.strerror or error}"
            ) from error
        self._committed = True

    def abort(self) -> None:
        if self._committed:
            return
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError):
                file.close()
        with contextlib.suppress(FileNotFoundError):
            self.part.unlink()


class LocalTarget(Target):
    """A folder: keys are paths below it. ``~`` is expanded; a relative path is taken from the
    current directory when the target is created (``config`` resolves inventory-relative paths)."""

    def __init__(self, name: str, path: str | os.PathLike[str]) -> None:
        self.name = name
        self.root = Path(path).expanduser().absolute()

    def describe(self) -> str:
        return f"local folder {self.root}"

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def check(self) -> None:
        try:
            make_dirs(self.root)
        except OSError as error:
            raise StorageError(
                f"storage target '{self.name}': cannot create {self.root}: {error.strerror or error}"
            ) from error
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StorageError(f"storage target '{self.name}': {self.root} is not writable")

    def open_writer(self, key: str) -> LocalWriter:
        final = self._path(key)
        try:
            make_dirs(final.parent)
            return LocalWriter(key, final, self.name)
        except OSError as error:
            raise StorageError(
                f"storage target '{self.name}': cannot write {final}: {error.strerror or error}"
            ) from error

    def open_reader(self, key: str) -> BinaryIO:
        path = self._path(key)
        try:
            return path.open("rb")
        except FileNotFoundError:
            raise StorageError(f"{key} not found in {self.describe()}") from None
        except OSError as error:
            raise StorageError(f"cannot read {path}: {error.strerror or error}") from error

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            raise StorageError(f"{key} not found in {self.describe()}") from None

    def list_dir(self, prefix: str) -> list[str]:
        folder = self.root / check_prefix(prefix).strip("/") if prefix.strip("/") else self.root
        try:
            return sorted(entry.name for entry in folder.iterdir() if entry.is_dir())
        except (FileNotFoundError, NotADirectoryError):
            return []

    def _files(self, prefix: str, *, with_parts: bool) -> list[tuple[str, Path]]:
        """(key, path) of the files whose key starts with ``prefix`` (S3 semantics: a string prefix)."""
        check_prefix(prefix)
        base_key = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        base = self.root / base_key if base_key else self.root
        found: list[tuple[str, Path]] = []
        for dirpath, _dirnames, filenames in os.walk(base):
            for filename in filenames:
                path = Path(dirpath) / filename
                key = path.relative_to(self.root).as_posix()
                if not key.startswith(prefix):
                    continue
                if filename.endswith(PART_SUFFIX) and not with_parts:
                    continue
                found.append((key, path))
        return sorted(found)

    def list_keys(self, prefix: str) -> list[tuple[str, int, datetime]]:
        listed: list[tuple[str, int, datetime]] = []
        for key, path in self._files(prefix, with_parts=False):
            try:
                stat = path.stat()
            except FileNotFoundError:  # deleted while we listed
                continue
            listed.append((key, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC)))
        return listed

    def delete_prefix(self, prefix: str) -> int:
        refuse_empty_prefix(prefix)
        deleted = 0
        folders: set[Path] = set()
        for _key, path in self._files(prefix, with_parts=True):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                deleted += 1
            folders.add(path.parent)
        self._remove_empty_folders(folders)
        return deleted

    def _remove_empty_folders(self, folders: set[Path]) -> None:
        """Remove folders left empty by a delete, deepest first, never the root itself."""
        candidates: set[Path] = set()
        for folder in folders:
            while folder != self.root and self.root in folder.parents:
                candidates.add(folder)
                folder = folder.parent
        for folder in sorted(candidates, key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):  # not empty, or already gone
                folder.rmdir()


class LocalSettings(TargetSettings):
    """``type: local``: a folder on the control node."""

    KIND: ClassVar[str] = "local"
    name: str = Field("local", pattern=NAME_PATTERN, description="Name used by --target.")
    type: Literal["local"]
    path: str = Field(min_length=1, description="Folder; `~` expanded; relative to the inventory.")

    def build(self, base_dir: Path) -> Target:
        path = Path(self.path).expanduser()
        return LocalTarget(self.name, path if path.is_absolute() else base_dir / path)
