"""restic as the engine of incremental file snapshots, pull model kept (issue 16, docs/snapshots.md).

Why restic, and why this shape (measured in benchmarks/incremental_engine.py, docs/performance.md):
restic runs *on the host*, where the files are, so only new chunks cross the SSH link; it writes to
``rest:http://127.0.0.1:<port>/``, a port the control node forwards over its SSH connection to
``rclone serve restic --append-only`` running on the control node. rclone writes the repository
with the control node's own access; the host never holds a storage credential, and append-only
means the host cannot delete or overwrite anything it stored (restic's ``forget``/``prune`` fail).
No chunk store of our own: restic deduplicates, compresses and encrypts (AES-256, repo v2).

Secrets: the repository password lives in a 0600 file on the control node
(:func:`ensure_password_file`); it reaches the host only for the run, inside the command text that
travels on the SSH channel's stdin (``secret=True``), never in argv or a file there. The HTTP
user/password of the append-only server are new for every run and reach rclone through its
environment (not its argv, which every local user can read in ``ps``).

This module holds the control-side half: the server, the repository operations restic runs on the
control node (restore, stats, snapshots), and the host's backup command text and its parsing.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from maintkit.model.problems import MaintkitError

#: seconds rclone may take to listen
SERVER_START_TIMEOUT = 15.0


class ResticError(MaintkitError):
    """restic or its server failed; the message says which command and why."""


@dataclass(frozen=True)
class BackupSummary:
    """What one ``restic backup`` reported: the engine snapshot and what it cost."""

    snapshot_id: str
    files_new: int
    files_changed: int
    files_unmodified: int
    data_added: int  # bytes of new chunks before compression (restic's own figure)
    total_bytes_processed: int


def ensure_password_file(path: Path) -> Path:
    """The repository password file: created once with 32 random bytes (base64url), mode 0600.

    Why never overwritten: a new password would lock every snapshot already in the repository.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            raise ResticError(f"{path} is readable by others: chmod 600 it") from None
        return path
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(32) + "\n")
    return path


def read_password(path: Path) -> str:
    return path.read_text().strip()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AppendOnlyServer:
    """``rclone serve restic --append-only`` on 127.0.0.1 for one run, with a one-run HTTP login.

    Use as a context manager; ``url(port)`` is the repository URL for the host (given the port
    the forward yields on the host's side). Stopped by its own PID on exit.
    """

    def __init__(self, repository: str, *, rclone: str = "rclone") -> None:
        self.repository = repository  # a local folder or an rclone remote path (":s3,...:bucket/x")
        self.rclone = rclone
        self.user = "maintkit"
        self.password = secrets.token_urlsafe(24)
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> AppendOnlyServer:
        if shutil.which(self.rclone) is None:
            raise ResticError(f"{self.rclone} is not installed on the control node (apt-get install rclone)")
        self.port = _free_port()
        env = {**os.environ, "RCLONE_USER": self.user, "RCLONE_PASS": self.password}
        argv = [
            self.rclone, "serve", "restic", "--append-only", "--addr", f"127.0.0.1:{self.port}",
            "--", self.repository,
        ]  # fmt: skip
        self._proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode("utf-8", "replace") if self._proc.stderr else ""
                raise ResticError(f"rclone serve restic exited {self._proc.returncode}: {err[-1000:]}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        self.__exit__(None, None, None)
        raise ResticError(f"rclone serve restic did not listen within {SERVER_START_TIMEOUT:.0f} s")

    def url(self, host_port: int) -> str:
        """The ``rest:`` repository URL the host uses (it holds this run's HTTP login)."""
        return f"rest:http://{self.user}:{self.password}@127.0.0.1:{host_port}/"

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


def backup_command(root: str, paths: Sequence[str], *, tag: str, restic: str = "restic") -> str:
    """The host's command: back up ``paths`` under ``root`` (relative, as in the files source).

    Expects ``RESTIC_REPOSITORY`` and ``RESTIC_PASSWORD`` in its environment (sent as a secret
    command). ``--json`` gives the summary :func:`parse_backup` reads. The repository is created on
    first use (``init`` fails harmlessly when it exists: append-only allows creating config once).
    """
    quoted = " ".join(shlex.quote(p) for p in paths)
    return (
        f"cd -- {shlex.quote(root)} || exit 2; "
        f"exec {shlex.quote(restic)} backup --json -q --tag {shlex.quote(tag)} -- {quoted}"
    )


def parse_backup(stdout: str) -> BackupSummary:
    """The ``summary`` line of ``restic backup --json``; an error if there is none."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            data: dict[str, Any] = json.loads(line)
        except ValueError:
            continue
        if data.get("message_type") == "summary" and data.get("snapshot_id"):
            return BackupSummary(
                snapshot_id=str(data["snapshot_id"]),
                files_new=int(data.get("files_new", 0)),
                files_changed=int(data.get("files_changed", 0)),
                files_unmodified=int(data.get("files_unmodified", 0)),
                data_added=int(data.get("data_added", 0)),
                total_bytes_processed=int(data.get("total_bytes_processed", 0)),
            )
    raise ResticError("restic backup printed no summary: the engine snapshot was not made")


class Repository:
    """A restic repository the control node reads directly (its storage, its password file)."""

    def __init__(self, location: str, password_file: Path, *, restic: str = "restic") -> None:
        self.location = location
        self.password_file = password_file
        self.restic = restic

    def run(self, *args: str, timeout: float = 3600) -> subprocess.CompletedProcess[bytes]:
        argv = [self.restic, "-r", self.location, "--password-file", str(self.password_file), *args]
        proc = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip()[-1500:]
            raise ResticError(f"restic {args[0]} failed (exit status {proc.returncode}): {err}")
        return proc

    def init_if_missing(self) -> bool:
        """Create the repository unless it exists (its ``config`` file); True when created."""
        probe = subprocess.run(
            [self.restic, "-r", self.location, "--password-file", str(self.password_file), "cat", "config"],
            capture_output=True, timeout=120, check=False,
        )  # fmt: skip
        if probe.returncode == 0:
            return False
        self.run("init")
        return True

    def snapshots(self) -> list[dict[str, Any]]:
        return list(json.loads(self.run("snapshots", "--json").stdout or b"[]"))

    def stats_raw(self) -> int:
        """Bytes the repository stores (restic's ``raw-data`` mode: after dedup and compression)."""
        return int(json.loads(self.run("stats", "--mode", "raw-data", "--json").stdout)["total_size"])

    def restore(self, snapshot_id: str, into: Path) -> Path:
        """Restore ``snapshot_id`` into the folder ``into`` and return it.

        The host backs up relative paths from the files root (:func:`backup_command`), and restic
        keeps them relative: the tree lands as it was under the root, ready for the restore's swap.
        """
        into.mkdir(parents=True, exist_ok=True)
        self.run("restore", snapshot_id, "--target", str(into))
        return into

    def popen(self, *args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start a restic command whose output streams (``dump``): stdout and stderr are pipes.

        ``env`` adds to the environment (an S3 target's ``RCLONE_CONFIG_*``: credentials stay out
        of argv). The password is read from :attr:`password_file` by restic itself. The caller
        reads stdout, then ``wait``s, and ends the process by its own PID if it stops early.
        """
        argv = [self.restic, "-r", self.location, "--password-file", str(self.password_file), *args]
        environ = {**os.environ, **(env or {})}
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environ
        )
