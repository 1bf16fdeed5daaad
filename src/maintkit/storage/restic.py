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
import re
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
from maintkit.sources.script import host_path

#: seconds rclone may take to listen
SERVER_START_TIMEOUT = 15.0
#: the rclone remote's name in a ``restic -r rclone:REMOTE:PATH`` location
_REMOTE = re.compile(r"^rclone:[^:]*:")
#: each repository's whole snapshot list as this process last read it (:meth:`Repository.last_listing`)
_LISTED: dict[tuple[str, str], list[dict[str, Any]]] = {}


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

    def __init__(
        self, repository: str, *, rclone: str = "rclone", env: Mapping[str, str] | None = None
    ) -> None:
        self.repository = repository  # a local folder or an rclone remote path ("mk0:bucket/x")
        self.rclone = rclone
        self.env = dict(env or {})  # the remote's RCLONE_CONFIG_* (storage credentials: never argv)
        self.user = "maintkit"
        self.password = secrets.token_urlsafe(24)
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> AppendOnlyServer:
        self.start()
        try:
            self.ready()
        except BaseException:
            self.stop()
            raise
        return self

    def start(self) -> None:
        """Start rclone on a free port of 127.0.0.1 (:attr:`port`), without waiting for it to listen:
        the caller may open the host's forward meanwhile (an SSH handshake: ~0.2 s of a night)."""
        if shutil.which(self.rclone) is None:
            raise ResticError(f"{self.rclone} is not installed on the control node (apt-get install rclone)")
        self.port = _free_port()
        env = {**os.environ, **self.env, "RCLONE_USER": self.user, "RCLONE_PASS": self.password}
        argv = [
            self.rclone, "serve", "restic", "--append-only", "--addr", f"127.0.0.1:{self.port}",
            "--", self.repository,
        ]  # fmt: skip
        self._proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def ready(self) -> None:
        """Wait until rclone listens; raise ResticError if it exits or does not listen in time."""
        proc = self._proc
        assert proc is not None, "start() first"
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                err = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
                raise ResticError(f"rclone serve restic exited {proc.returncode}: {err[-1000:]}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)
        raise ResticError(f"rclone serve restic did not listen within {SERVER_START_TIMEOUT:.0f} s")

    def url(self, host_port: int) -> str:
        """The ``rest:`` repository URL the host uses (it holds this run's HTTP login)."""
        return f"rest:http://{self.user}:{self.password}@127.0.0.1:{host_port}/"

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """End rclone by its own PID (if it was started)."""
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


def backup_command(
    root: str, paths: Sequence[str], *, tag: str, restic: str = "restic", exclude: Sequence[str] = ()
) -> str:
    """The host's command: back up ``paths`` under ``root`` (relative, as in the files source).

    Expects ``RESTIC_REPOSITORY`` and ``RESTIC_PASSWORD`` in its environment (sent as a secret
    command). ``--json`` gives the summary :func:`parse_backup` reads. ``root`` may start with
    ``~/`` (the login's home). ``exclude`` takes the tar source's patterns with their meaning there:
    with a ``/`` anchored at ``root`` (restic anchors at ``/``, so the root's real path is put in
    front on the host), without one matched at any depth (restic's own meaning).
    """
    quoted = " ".join(shlex.quote(p if not p.startswith("-") else f"./{p}") for p in paths)
    options = ""
    for raw in exclude:
        pattern = raw.rstrip("/")
        if "/" in pattern:
            pattern = pattern.lstrip("/").removeprefix("./")
            options += f' --exclude "$PWD"/{shlex.quote(pattern)}'
        else:
            options += f" --exclude {shlex.quote(pattern)}"
    return (
        f"cd -- {host_path(root)} || exit 2; "
        f"exec {shlex.quote(restic)} backup --json -q --tag {shlex.quote(tag)}{options} -- {quoted}"
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
    """A restic repository the control node reads and writes directly (its storage, its password file).

    ``env`` carries what restic's rclone backend needs for an S3 target (``RCLONE_CONFIG_*``: the
    control node's credentials, in the environment of restic and the rclone it starts, never argv).
    Every method raises :class:`ResticError` naming the command; nothing here prints a secret.
    """

    def __init__(
        self,
        location: str,
        password_file: Path,
        *,
        restic: str = "restic",
        env: Mapping[str, str] | None = None,
        name: str = "",
    ) -> None:
        self.location = location
        self.password_file = password_file
        self.restic = restic
        self.env = dict(env or {})
        self.name = name or location  # for messages: the storage target's name

    def _argv(self, *args: str) -> list[str]:
        return [self.restic, "-r", self.location, "--password-file", str(self.password_file), *args]

    def _environ(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {**os.environ, **self.env, **(extra or {})}

    def run(
        self, *args: str, timeout: float = 3600, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        proc = self.attempt(*args, timeout=timeout, env=env)
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip()[-1500:]
            raise ResticError(
                f"restic {args[0]} in {self.name} failed (exit status {proc.returncode}): {err}"
            )
        return proc

    def attempt(
        self, *args: str, timeout: float = 3600, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        """Run a restic command and return it whatever its exit status (the caller reads it)."""
        return subprocess.run(
            self._argv(*args), capture_output=True, timeout=timeout, check=False, env=self._environ(env)
        )

    def exists(self) -> bool:
        """Whether the repository is there and opens with the password (its ``config`` reads)."""
        return self.attempt("cat", "config", timeout=120).returncode == 0

    def init_if_missing(self, like: Repository | None = None) -> bool:
        """Create the repository unless it exists; True when created.

        ``like``: another repository whose chunker parameters the new one takes, so that
        ``restic copy`` between them keeps deduplicating (restic's ``--copy-chunker-params``).
        """
        if self.exists():
            return False
        self.init(like=like)
        return True

    def init(self, like: Repository | None = None) -> None:
        """Create the repository (``like``: see :meth:`init_if_missing`)."""
        self._written()
        if like is None:
            self.run("init")
        else:
            self.run(*like.from_args("init"), "--copy-chunker-params", env=like.env)

    def from_args(self, command: str) -> list[str]:
        """``command`` with this repository as the source (``--from-repo``) of another's command."""
        return [command, "--from-repo", self.location, "--from-password-file", str(self.password_file)]

    def snapshots(self, *, tag: str | None = None) -> list[dict[str, Any]]:
        """The repository's snapshots (``tag``: those carrying it), read now. The whole list is
        also kept for :meth:`last_listing`."""
        args = ["snapshots", "--json", *(["--tag", tag] if tag else [])]
        found = list(json.loads(self.run(*args).stdout or b"[]") or [])
        if tag is None:
            _LISTED[self._place] = found
        return found

    def last_listing(self) -> list[dict[str, Any]]:
        """The whole snapshot list as this process last read it, if it wrote nothing here since;
        else read now. Why: every restic run costs a key derivation (~0.5 s of CPU: restic tunes
        scrypt to that when the repository is made), and a night's retention step would list the
        repository the night's snapshot step has just listed (docs/performance.md). Only this
        process's writes are seen: a snapshot another process added is missing from an older list,
        which only ever means it is not forgotten this time."""
        listed = _LISTED.get(self._place)
        return list(listed) if listed is not None else self.snapshots()

    @property
    def _place(self) -> tuple[str, str]:
        """The repository whatever rclone remote name reaches it (a night's second target is
        ``mk1``, the retention step's ``mk0``)."""
        return (self.name, _REMOTE.sub("rclone::", self.location))

    def _written(self) -> None:
        _LISTED.pop(self._place, None)

    def by_tag(self, tag: str) -> list[dict[str, Any]]:
        """The engine snapshots carrying ``tag`` (each with ``id``, the full id, and ``tree``)."""
        return self.snapshots(tag=tag)

    def copy_from(self, source: Repository, tag: str) -> None:
        """Copy the snapshots tagged ``tag`` from ``source`` into this repository (both control-side).

        The copy gets a new engine id in this repository (restic records the original); tag and tree
        stay the same, and that is how verify and restore find it in every target.
        """
        self._written()
        self.run(*source.from_args("copy"), "--tag", tag, env=source.env, timeout=24 * 3600)

    def forget(self, snapshot_ids: Sequence[str]) -> None:
        """Forget these engine snapshots (their data stays until :meth:`prune`)."""
        if snapshot_ids:
            self._written()
            self.run("forget", *snapshot_ids)

    def forget_tag(self, tag: str) -> list[str]:
        """Forget every engine snapshot tagged ``tag``; return their ids."""
        ids = [str(s["id"]) for s in self.by_tag(tag)]
        self.forget(ids)
        return ids

    def prune(self) -> None:
        self._written()
        self.run("prune", timeout=24 * 3600)

    def unlock(self) -> None:
        """Remove stale locks only (a killed restic's): check and prune need an exclusive lock."""
        self.run("unlock")

    def check(self, *, read_data: bool = True) -> subprocess.CompletedProcess[bytes]:
        """``restic check`` (``--read-data``: every pack read and its hash compared); not raised on."""
        return self.attempt("check", *(["--read-data"] if read_data else []), timeout=24 * 3600)

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
