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

What proves the tree is the manifest's: before anything is written, the engine snapshot named in
the manifest (``engine_snapshot``) must exist in the repository with the manifest's tag
(``engine_tag``: ``maintkit-<snapshot id>``) and tree (``engine_tree``, restic's content address of
the whole tree: restic checks every blob it reads against its hash, so the bytes dumped are that
tree's). A mismatch is refused (exit 2). And the end of the stream is **held back until restic has
exited 0**: the zstd frame's end (and the EOF) reach the host only then, so a restic that fails
half-way (a damaged pack, a lost connection to the bucket) cannot leave a staged tree that looks
complete; the host's extraction is killed and its folder removed.

The repository password: read-only lookup of the control node's file (``MAINTKIT_KEYS_DIR``, default
``~/.maintkit/keys``, ``/SITE/ENV/restic.password``): a restore never creates one (a new password
opens nothing). When it is missing, the message names the file and the escrow copy
``SITE/ENV/restic.password.age`` in storage that recovers it.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import zstandard

from maintkit.jobs.restore.stream import CHUNK, IntegrityError, UnsafeContent
from maintkit.jobs.restore.tarcheck import TarGuard, UnsafeMember
from maintkit.model.problems import StepFailed
from maintkit.storage.base import Target
from maintkit.storage.engine import escrow_key, password_path
from maintkit.storage.local import LocalTarget
from maintkit.storage.manifest import Artifact
from maintkit.storage.restic import Repository
from maintkit.storage.s3 import S3Target
from maintkit.transport.base import Tail

#: zstd level of the tar sent to the host: level 1 compresses several hundred MB/s on one core
LEVEL = 1
#: seconds for ``restic snapshots`` (the tag and tree check)
CHECK_TIMEOUT = 300.0
#: the rclone remote restic's rclone backend uses for an S3 target (configured by environment)
REMOTE = "mkrestore"


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
    """A repository the control node reads, and the environment restic needs for it."""

    repository: Repository
    env: dict[str, str] = field(default_factory=dict)


def engine_source(target: Target, artifact: Artifact, password: Path) -> EngineSource:
    """Where the artifact's repository (``key``, relative to the target) is, for restic here."""
    if isinstance(target, LocalTarget):
        return EngineSource(Repository(str(target.root / artifact.key), password))
    if isinstance(target, S3Target):
        path = f"rclone:{REMOTE}:{target.bucket}/{target.full_key(artifact.key)}"
        return EngineSource(Repository(path, password), _rclone_s3_env(target))
    raise EngineRefused(
        artifact.name,
        f"restic cannot read storage target '{target.name}' ({target.describe()})",
        integrity=False,
    )


def _rclone_s3_env(target: S3Target) -> dict[str, str]:
    """An rclone S3 remote from the target's settings and this node's AWS credentials (boto3's chain
    or the target's ``profile``), in environment variables only: never argv, never a file."""
    import boto3

    session = boto3.session.Session(profile_name=target.profile)
    credentials = session.get_credentials()
    if credentials is None:
        raise EngineRefused(
            "files.restic", f"storage target '{target.name}': no AWS credentials on this control node",
            integrity=False,
        )  # fmt: skip
    frozen = credentials.get_frozen_credentials()
    settings = {
        "TYPE": "s3",
        "PROVIDER": "Other" if target.endpoint_url else "AWS",
        "ACCESS_KEY_ID": frozen.access_key,
        "SECRET_ACCESS_KEY": frozen.secret_key,
        "REGION": target.region or session.region_name or "us-east-1",
    }
    if frozen.token:
        settings["SESSION_TOKEN"] = frozen.token
    if target.endpoint_url:
        settings.update(ENDPOINT=target.endpoint_url, FORCE_PATH_STYLE="true")
    return {f"RCLONE_CONFIG_{REMOTE.upper()}_{name}": value for name, value in settings.items()}


def check_snapshot(source: EngineSource, artifact: Artifact) -> dict[str, Any]:
    """Require the manifest's engine snapshot in the repository, with its tag and tree; return it.

    Raises :class:`EngineRefused` (``integrity``) naming what differs; restic's own failure (wrong
    password, unreachable repository) is refused too, with restic's words."""
    proc = source.repository.popen(
        "snapshots", "--json", "--no-lock", artifact.engine_snapshot, env=source.env
    )
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
            f"restic cannot read engine snapshot {artifact.engine_snapshot[:12]} in {artifact.key} "
            f"(exit {proc.returncode}): {why}",
            integrity=True,
        )
    found = [s for s in json.loads(out or b"[]") or [] if s.get("id") == artifact.engine_snapshot]
    if not found:
        raise EngineRefused(
            artifact.name,
            f"engine snapshot {artifact.engine_snapshot[:12]} is not in {artifact.key}",
            integrity=True,
        )
    snapshot: dict[str, Any] = found[0]
    problems = []
    if artifact.engine_tag not in (snapshot.get("tags") or []):
        problems.append(
            f"it is not tagged {artifact.engine_tag} (tags: {', '.join(snapshot.get('tags') or [])})"
        )
    if snapshot.get("tree") != artifact.engine_tree:
        problems.append(
            f"its tree is {str(snapshot.get('tree'))[:12]}, the manifest says {artifact.engine_tree[:12]}"
        )
    if problems:
        raise EngineRefused(
            artifact.name,
            f"engine snapshot {artifact.engine_snapshot[:12]} is not the manifest's: {'; '.join(problems)} "
            "(refusing to restore it)",
            integrity=True,
        )
    return snapshot


class EngineTarStream:
    """A file-like the transport reads: ``restic dump`` → tar member checks → zstd -1 (see module doc).

    ``read`` raises (the transport then kills the host's command, which never sees the end of its
    input) on an unsafe member, a truncated tar, or a restic that did not exit 0. After the stream:
    ``members``, ``plain_bytes``, ``sent`` (compressed bytes), ``elapsed``, ``finished``.
    """

    def __init__(self, source: EngineSource, artifact: Artifact) -> None:
        self.artifact = artifact
        self.guard = TarGuard()
        self.sent = 0
        self.finished = False
        self.dump_seconds = 0.0  # waiting on restic (repository reads, decryption)
        self.started = time.monotonic()
        self.ended: float | None = None
        self._compressor = zstandard.ZstdCompressor(level=LEVEL).compressobj()
        self._proc = source.repository.popen(
            "dump", artifact.engine_snapshot, "/", "--archive", "tar", env=source.env
        )
        self._stderr = Tail(8192)
        self._drain = threading.Thread(target=self._drain_stderr, name="restic-dump-stderr", daemon=True)
        self._drain.start()

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

    def read(self, _n: int = -1) -> bytes:
        if self.finished:
            return b""
        stdout: IO[bytes] | None = self._proc.stdout
        assert stdout is not None
        while True:
            started = time.monotonic()
            data = stdout.read(CHUNK)
            self.dump_seconds += time.monotonic() - started
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
        """Stop restic (by its own PID) when the stream ended early; close its pipes."""
        proc = self._proc
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
