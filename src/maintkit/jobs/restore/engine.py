"""Restoring a file tree kept by the engine (restic): read on the control node, proven, streamed as a tar.

Why the control node reads the repository, and not the host: the pull model. The host never holds
storage credentials or a path to the repository, during a backup (it writes through an append-only
forward) and during a restore alike. The control node runs ``restic -r REPO dump SNAPSHOT /
--archive tar`` itself (a local target's folder, or an S3 target through restic's rclone backend
configured by ``RCLONE_CONFIG_*`` environment variables: its credentials never on a command line),
and from there the tree takes the same road as a stored ``files.tar.zst``: every tar member checked
by :class:`~maintkit.jobs.restore.tarcheck.TarGuard`, compressed with zstd level 1 (what crosses the
SSH link stays small, at a CPU cost well under what the link carries), extracted on the host into
the sibling staging folder, swapped in only after everything else of the restore was proven.

What proves the tree is the manifest's: before anything is written, the repository of the target
read must hold an engine snapshot with the manifest's tag (``engine_tag``: ``maintkit-<snapshot
id>``) and tree (``engine_tree``, restic's content address of the whole tree: restic checks every
blob it reads against its hash, so the bytes dumped are that tree's). The snapshot is looked up by
that tag in *this* repository, not by the manifest's ``engine_snapshot`` id alone: the id is the
first target's, and ``restic copy`` gives the copy in every other target a new id (it records the
first one as ``original``). The manifest's id, or a copy of it, is preferred when several match. No
snapshot with both tag and tree is refused (exit 2), naming what the repository holds instead.
And the end of the stream is **held back until restic has exited 0**: the zstd frame's end (and
the EOF) reach the host only then, so a restic that fails half-way (a damaged pack, a lost
connection to the bucket) cannot leave a staged tree that looks complete; the host's extraction is
killed and its folder removed.

Speed (docs/performance.md, "The engine restore"): ``restic dump`` reads and decrypts on one thread,
so it must never wait on us. A reader thread drains its stdout (1 MiB reads, the pipe enlarged to
1 MiB) into a bounded queue while the transport's thread checks, compresses and sends the previous
chunks; before, restic stalled on a full 64 KiB pipe whenever the compression or the SSH channel
did.

The repository password: read-only lookup of the control node's file (``MAINTKIT_KEYS_DIR``, default
``~/.maintkit/keys``, ``/SITE/ENV/restic.password``): a restore never creates one (a new password
opens nothing). When it is missing, the message names the file and the escrow copy
``SITE/ENV/restic.password.age`` in storage that recovers it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import zstandard

from maintkit.jobs.restore.stream import IntegrityError, UnsafeContent
from maintkit.jobs.restore.tarcheck import TarGuard, UnsafeMember
from maintkit.model.problems import StepFailed
from maintkit.storage.base import StorageError, Target
from maintkit.storage.engine import escrow_key, location, password_path
from maintkit.storage.manifest import Artifact
from maintkit.storage.restic import Repository, read_password
from maintkit.storage.resticread import RepositoryReader, RepositoryReadError
from maintkit.transport.base import Tail

#: zstd level of the tar sent to the host: level 1 compresses several hundred MB/s on one core
LEVEL = 1
#: seconds for ``restic snapshots`` (the tag and tree check)
CHECK_TIMEOUT = 300.0
#: the rclone remote restic's rclone backend uses for an S3 target (configured by environment)
REMOTE = "mkrestore"
#: bytes per read of ``restic dump``'s output, and the size its pipe is given (Linux F_SETPIPE_SZ)
READ_SIZE = 1024 * 1024
#: chunks the reader thread may hold ahead of the sender (bounded memory: 16 MiB)
AHEAD = 16
_F_SETPIPE_SZ = 1031


class EngineRefused(StepFailed):
    """The engine snapshot cannot be restored as the manifest describes it; nothing was written.

    ``integrity``: the repository's snapshot is not the manifest's (missing, other tag or tree);
    otherwise a setup problem (no password file, a target kind the engine cannot read)."""

    def __init__(self, artifact: str, message: str, *, integrity: bool) -> None:
        self.artifact = artifact
        self.integrity = integrity
        super().__init__(f"{artifact}: {message}")


def password_file(site: str, env: str) -> Path:
    """The control node's repository password of ``site``/``env`` (read-only: never created here)."""
    path = password_path(site, env)
    if not path.is_file():
        raise EngineRefused(
            "files.restic",
            f"the restic password of {site}/{env} is missing on this control node ({path}); recover "
            f"it from the escrow copy {escrow_key(site, env)} in storage with your age identity "
            f"(age -d -i KEY -o {path} restic.password.age; chmod 600 {path})",
            integrity=False,
        )
    return path


@dataclass
class EngineSource:
    """A repository the control node reads, the environment restic needs for it, and (once
    :func:`check_snapshot` found it) the id of the manifest's engine snapshot in *this* repository."""

    repository: Repository
    env: dict[str, str] = field(default_factory=dict)
    target: str = ""  # the storage target's name, for messages
    snapshot: str = ""  # the engine snapshot to dump: its id in this repository
    store: Target | None = None  # the storage target itself: its snapshot list is read directly


def engine_source(target: Target, artifact: Artifact, password: Path) -> EngineSource:
    """Where the artifact's repository (``key``, relative to the target) is, for restic here: a
    local target's folder, or an S3 target through restic's rclone backend, whose remote is set up
    by ``RCLONE_CONFIG_*`` environment variables with this node's credentials (never argv)."""
    try:
        where = location(target, artifact.key, remote=REMOTE)
    except StorageError as error:
        raise EngineRefused(artifact.name, str(error), integrity=False) from None
    repo = Repository(where.restic, password, name=target.name)
    return EngineSource(repo, where.env, target.name, store=target)


def check_snapshot(source: EngineSource, artifact: Artifact) -> dict[str, Any]:
    """Find the manifest's engine snapshot in this repository by its tag and tree; return it.

    Sets ``source.snapshot`` to its id here. A repository with maintkit's light key (every one a
    maintkit night made) has its list read from storage (:mod:`maintkit.storage.resticread`: each
    object's hash and MAC checked), in ~0.05 s instead of restic's ~0.8 s, which the files' staging
    waits for; any other, or one whose list does not read cleanly, is listed by restic. Raises
    :class:`EngineRefused` (``integrity``) naming what differs; restic's own failure (wrong
    password, unreachable repository) is refused too, with restic's words."""
    where = f"the repository {artifact.key} of target {source.target or source.repository.name}"
    listed = _listed_from_storage(source, artifact.key)
    if listed is not None:
        snapshot = pick_snapshot(listed, artifact, where)
        source.snapshot = str(snapshot["id"])
        return snapshot
    proc = source.repository.popen("snapshots", "--json", "--no-lock", env=source.env)
    try:
        out, err = proc.communicate(timeout=CHECK_TIMEOUT)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if proc.returncode != 0:
        why = err.decode("utf-8", "replace").strip()[-800:]
        raise EngineRefused(
            artifact.name,
            f"restic cannot list the engine snapshots of {where} (exit {proc.returncode}): {why}",
            integrity=True,
        )
    snapshots: list[dict[str, Any]] = list(json.loads(out or b"[]") or [])
    snapshot = pick_snapshot(snapshots, artifact, where)
    source.snapshot = str(snapshot["id"])
    return snapshot


def _listed_from_storage(source: EngineSource, key: str) -> list[dict[str, Any]] | None:
    """The snapshots of the repository ``key`` read from storage through its light key; None (restic lists it)
    when it has none, the password file is unreadable, the target cannot be read from here, or an
    object does not check out: restic is the authority then, and says what is wrong in its words
    (a damaged snapshot that is not the one restored must not stop the restore)."""
    if source.store is None:
        return None
    try:
        password = read_password(source.repository.password_file)
        reader = RepositoryReader.open(source.store, key, password)
        return reader.snapshots() if reader is not None else None
    except (StorageError, OSError, RepositoryReadError):
        return None


def pick_snapshot(snapshots: list[dict[str, Any]], artifact: Artifact, where: str) -> dict[str, Any]:
    """The snapshot of ``snapshots`` (restic's JSON list) with the manifest's tag and tree: the
    manifest's own id first, then a copy of it (``original``), then any; else refuse, saying why."""
    wanted, tag, tree = artifact.engine_snapshot, artifact.engine_tag, artifact.engine_tree
    tagged = [s for s in snapshots if tag in (s.get("tags") or [])]
    matching = [s for s in tagged if s.get("tree") == tree]
    if matching:
        rank = {True: 0, False: 1}
        return min(matching, key=lambda s: (rank[s.get("id") == wanted], rank[s.get("original") == wanted]))
    named = [s for s in snapshots if wanted and wanted in (s.get("id"), s.get("original"))]
    if tagged:
        trees = ", ".join(sorted({str(s.get("tree"))[:12] for s in tagged}))
        why = f"the snapshot tagged {tag} has tree {trees}, the manifest says {tree[:12]}"
    elif named:
        found = named[0]
        problems = [f"it is not tagged {tag} (tags: {', '.join(found.get('tags') or []) or 'none'})"]
        if found.get("tree") != tree:
            problems.append(f"its tree is {str(found.get('tree'))[:12]}, the manifest says {tree[:12]}")
        why = f"engine snapshot {str(found.get('id'))[:12]} is not the manifest's: {'; '.join(problems)}"
    else:
        why = f"no engine snapshot is tagged {tag} (nor is {wanted[:12]} there)"
    raise EngineRefused(artifact.name, f"{where}: {why} (refusing to restore it)", integrity=True)


class EngineTarStream:
    """A file-like the transport reads: ``restic dump`` → tar member checks → zstd -1 (see module doc).

    ``read`` raises (the transport then kills the host's command, which never sees the end of its
    input) on an unsafe member, a truncated tar, or a restic that did not exit 0. After the stream:
    ``members``, ``plain_bytes``, ``sent`` (compressed bytes), ``elapsed``, ``finished``,
    ``dump_seconds`` (the sender waiting on restic).
    """

    def __init__(self, source: EngineSource, artifact: Artifact) -> None:
        self.artifact = artifact
        self.guard = TarGuard()
        self.sent = 0
        self.finished = False
        self.dump_seconds = 0.0  # the sender waiting on restic (repository reads, decryption)
        self.started = time.monotonic()
        self.ended: float | None = None
        self._compressor = zstandard.ZstdCompressor(level=LEVEL).compressobj()
        snapshot = source.snapshot or artifact.engine_snapshot
        self._proc = source.repository.popen("dump", snapshot, "/", "--archive", "tar", env=source.env)
        stdout = self._proc.stdout
        assert stdout is not None
        with contextlib.suppress(OSError):  # not Linux, or over the user's pipe limit: 64 KiB then
            fcntl.fcntl(stdout.fileno(), _F_SETPIPE_SZ, READ_SIZE)
        self._chunks: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=AHEAD)
        self._stop = threading.Event()
        self._stderr = Tail(8192)
        self._drain = threading.Thread(target=self._drain_stderr, name="restic-dump-stderr", daemon=True)
        self._drain.start()
        self._reader = threading.Thread(
            target=self._read_ahead, args=(stdout,), name="restic-dump", daemon=True
        )
        self._reader.start()

    @property
    def members(self) -> int:
        return self.guard.members

    @property
    def plain_bytes(self) -> int:
        return self.guard.plain_bytes

    @property
    def elapsed(self) -> float:
        return (self.ended if self.ended is not None else time.monotonic()) - self.started

    def _drain_stderr(self) -> None:
        stream = self._proc.stderr
        assert stream is not None
        for line in iter(lambda: stream.read(4096), b""):
            self._stderr.write(line)

    def _read_ahead(self, stdout: IO[bytes]) -> None:
        """restic's output into the queue, so restic never waits on the sender; b"" at the end."""
        item: bytes | BaseException
        while not self._stop.is_set():
            try:
                item = stdout.read(READ_SIZE)
            except (OSError, ValueError) as error:  # closed under us by close(): the reader is done
                item = error
            while not self._stop.is_set():
                try:
                    self._chunks.put(item, timeout=0.5)
                    break
                except queue.Full:
                    continue
            if not isinstance(item, bytes) or not item:
                return

    def read(self, _n: int = -1) -> bytes:
        if self.finished:
            return b""
        while True:
            started = time.monotonic()
            data = self._chunks.get()
            self.dump_seconds += time.monotonic() - started
            if isinstance(data, BaseException):
                raise IntegrityError(self.artifact.name, f"reading restic dump failed: {data}")
            if not data:
                return self._end()
            try:
                self.guard.write(data)
            except UnsafeMember as error:
                raise UnsafeContent(self.artifact.name, f"{error}; nothing was restored") from None
            out = self._compressor.compress(data)
            if out:
                self.sent += len(out)
                return out

    def _end(self) -> bytes:
        """restic closed its output: release the frame's end only when it exited 0 with a whole tar."""
        rc = self._proc.wait()
        self._drain.join(timeout=10)
        self.ended = time.monotonic()
        if rc != 0:
            why = self._stderr.text().strip()[-800:] or "(no message)"
            raise IntegrityError(
                self.artifact.name, f"restic dump failed (exit {rc}): {why} (nothing was committed)"
            )
        if not self.guard.complete or self.guard.members == 0:
            raise IntegrityError(
                self.artifact.name, "restic dump ended inside a member (nothing was committed)"
            )
        self.finished = True
        tail = self._compressor.flush()
        self.sent += len(tail)
        return tail

    def close(self) -> None:
        """Stop restic (by its own PID) when the stream ended early, and the reader; close the pipes."""
        proc = self._proc
        self._stop.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        self._reader.join(timeout=10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
