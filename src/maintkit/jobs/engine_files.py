"""A snapshot's files through restic (``files_engine: restic``): only the night's change crosses the link.

The night, in order (docs/snapshots.md "Incremental file snapshots with restic"):

1. the control node opens the site's repository in the FIRST target (creating it the first time),
   with the password file of :func:`~maintkit.storage.engine.password_path` (created the first time);
2. ``rclone serve restic --append-only`` serves it on the control node's 127.0.0.1, with a one-run
   HTTP login; the host's SSH connection forwards a port of the host's 127.0.0.1 to it;
3. the host runs ``restic backup --tag maintkit-ID``; the repository URL (with the one-run login) and
   the password reach it only inside the command text sent on the channel's stdin (a secret
   command): never in the host's argv, files or environment after the run, and no storage
   credential ever (rclone writes with the control node's own access);
4. the control node copies that engine snapshot into the same repository of every other target
   (``restic copy``, control side) and checks the tag and tree are in each;
5. only then does the caller write the manifest, with the :class:`Artifact` returned here.

On any failure the engine snapshot is forgotten by tag wherever it was written (debris the manifest
never pointed at), and the error says so; what a failed forget leaves is forgotten by the next prune.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from maintkit.jobs.context import HostContext
from maintkit.jobs.engine_host import ensure_engine
from maintkit.model.problems import MaintkitError, StepFailed
from maintkit.sources.compression import strip_markers
from maintkit.sources.files import FilesSource
from maintkit.storage.base import Target
from maintkit.storage.engine import (
    engine_tag,
    location,
    password_path,
    repository,
    repository_key,
    write_escrow,
)
from maintkit.storage.manifest import Artifact
from maintkit.storage.restic import (
    AppendOnlyServer,
    Repository,
    backup_command,
    ensure_password_file,
    parse_backup,
    read_password,
)
from maintkit.storage.restickey import lighten
from maintkit.storage.resticread import RepositoryReader
from maintkit.transport.local import LocalTransport

ARTIFACT_NAME = "files.restic"


@dataclass
class EngineNight:
    """One engine snapshot being taken: where it was written so far (to forget it on failure)."""

    ctx: HostContext
    targets: list[Target]
    site: str
    env: str
    snapshot_id: str
    written: list[Repository] = field(default_factory=list)
    restic: str = ""  # the host's restic command, once found (:meth:`find_restic`)
    forward: str = ""  # how the host reached the server: "ssh" (ssh -R), "connection" (paramiko's), "none"

    @property
    def tag(self) -> str:
        return engine_tag(self.snapshot_id)

    def find_restic(self) -> str:
        """Find (or have installed) a usable restic on the host; raise MaintkitError otherwise."""
        install = str(self.ctx.vars.get("files_engine_install") or "ship")
        self.restic = ensure_engine(self.ctx, install=install)
        return self.restic

    def take(self, source: FilesSource, recipients: list[Any], timeout: float | None) -> Artifact:
        """Back the files up into the first target, copy into the others; return the manifest's artifact."""
        restic = self.restic or self.find_restic()
        password_file = ensure_password_file(password_path(self.site, self.env))
        password = read_password(password_file)
        self.ctx.redactor.add(password)
        key = repository_key(self.site, self.env)
        repos = [repository(t, key, password_file, remote=f"mk{i}") for i, t in enumerate(self.targets)]
        first = repos[0]
        if not self._exists(self.targets[0], key):
            first.init()
        lighten(first, self.targets[0], key)  # once per repository: every restic run then saves ~0.5 s
        started = time.monotonic()
        self.written.append(first)  # from here on, a failure forgets the tag in it
        reader = RepositoryReader.open(self.targets[0], key, password)
        # the first night moves the whole tree: through the system ssh; a later one moves the change
        whole_tree = reader is None or not reader.snapshot_names()
        summary = self._backup(source, restic, key, password, timeout, bulk=whole_tree)
        [made] = _tagged(first, self.tag, _listing(first, reader, prefix=summary.snapshot_id))
        engine_id, tree = str(made["id"]), str(made["tree"])
        for target, repo in zip(self.targets[1:], repos[1:], strict=True):
            if not self._exists(target, key):
                repo.init(like=first)
            lighten(repo, target, key)
            self.written.append(repo)
            reader = RepositoryReader.open(target, key, password)
            before = set(reader.snapshot_names()) if reader else set()
            repo.copy_from(first, self.tag)
            new = [n for n in reader.snapshot_names() if n not in before] if reader else None
            if not any(s.get("tree") == tree for s in _with_tag(_listing(repo, reader, names=new), self.tag)):
                raise StepFailed(f"the engine snapshot {self.tag} is not in {repo.name} after the copy")
        escrowed = write_escrow(self.targets, self.site, self.env, password_file, recipients)
        if escrowed:
            self.ctx.emit("engine_password_escrowed", targets=escrowed, msg="restic password, age-encrypted")
        elapsed = time.monotonic() - started
        files = summary.files_new + summary.files_changed + summary.files_unmodified
        self.ctx.emit(
            "transferred",
            artifact=ARTIFACT_NAME,
            bytes=summary.data_added,
            seconds=round(elapsed, 3),
            rate=round(summary.data_added / max(elapsed, 1e-6)),
        )
        self.ctx.emit(
            "engine_snapshot",
            engine="restic",
            snapshot=engine_id,
            tag=self.tag,
            bytes_added=summary.data_added,
            files=files,
            files_new=summary.files_new,
            files_changed=summary.files_changed,
            tree_bytes=summary.total_bytes_processed,
            targets=[r.name for r in repos],
            forward=self.forward,
        )
        return Artifact(
            name=ARTIFACT_NAME,
            key=key,
            size=summary.data_added,
            sha256="",
            compression="zstd",  # restic's repository format 2 compresses (auto)
            encryption="restic",
            source=f"restic backup of {' '.join(source.paths)} under {source.root} on {self.ctx.host.name}",
            engine="restic",
            engine_snapshot=engine_id,
            engine_tag=self.tag,
            engine_tree=tree,
            files_count=files,
            tree_bytes=summary.total_bytes_processed,
        )

    @staticmethod
    def _exists(target: Target, key: str) -> bool:
        """Whether the repository is there: its ``config`` object, asked of the target (a restic run
        costs a key derivation, about a second on a busy machine)."""
        return target.exists(f"{key}/config")

    def _backup(
        self, source: FilesSource, restic: str, key: str, password: str, timeout: float | None, *, bulk: bool
    ) -> Any:
        served = location(self.targets[0], key, remote="mk0")
        command = backup_command(
            source.root, source.paths, tag=self.tag, restic=restic, exclude=source.all_excludes()
        )
        openssh_before = getattr(self.ctx.transport, "openssh_forwards", 0)
        server = AppendOnlyServer(served.rclone, env=served.env)
        self.ctx.redactor.add(server.password)
        server.start()  # rclone comes up while the forward's SSH connection is made
        try:
            with _reach(self.ctx, server.port, bulk=bulk) as port:
                server.ready()
                result = self.ctx.run(
                    command,
                    env={"RESTIC_REPOSITORY": server.url(port), "RESTIC_PASSWORD": password},
                    timeout=timeout,
                )
        finally:
            server.stop()
        self.forward = (
            "ssh" if getattr(self.ctx.transport, "openssh_forwards", 0) > openssh_before else "connection"
        )
        if isinstance(self.ctx.transport, LocalTransport):
            self.forward = "none"
        if result.rc != 0:
            why = strip_markers(result.stderr).strip()[-1500:]
            raise StepFailed(
                f"restic backup of {source.root} on {self.ctx.host.name} failed "
                f"(exit status {result.rc}): {why}".rstrip(": ")
            )
        return parse_backup(result.stdout)

    def forget(self) -> str:
        """Forget this night's engine snapshot wherever it was written; never raise. Return what to say."""
        failed = []
        for repo in self.written:
            try:
                repo.forget_tag(self.tag)
            except (MaintkitError, OSError):
                failed.append(repo.name)
        if failed:
            return (
                f"the engine snapshot {self.tag} could not be forgotten in {', '.join(failed)}; "
                "the next prune forgets it (it has no manifest)"
            )
        return f"the engine snapshot {self.tag} was forgotten" if self.written else ""


def _listing(
    repo: Repository, reader: RepositoryReader | None, *, prefix: str = "", names: list[str] | None = None
) -> list[dict[str, Any]]:
    """Snapshots read from storage when the repository has maintkit's light key (``names``, else those
    whose id starts with ``prefix``: the backup's summary gives the new one's short id); else every
    snapshot, listed by restic (a repository with a human's password)."""
    if reader is None:
        return repo.snapshots()  # the whole list: retention reads it too
    return reader.snapshots(reader.snapshot_names(prefix) if names is None else names)


def _with_tag(listed: list[dict[str, Any]], tag: str) -> list[dict[str, Any]]:
    return [s for s in listed if tag in (s.get("tags") or [])]


def _tagged(repo: Repository, tag: str, listed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = _with_tag(listed, tag)
    if len(found) != 1:
        raise StepFailed(f"expected one engine snapshot tagged {tag} in {repo.name}, found {len(found)}")
    return found


@contextlib.contextmanager
def _reach(ctx: HostContext, port: int, *, bulk: bool) -> Iterator[int]:
    """The port the host uses to reach the control node's ``port``: a remote forward over its SSH
    connection (``bulk``: see :meth:`~maintkit.transport.ssh.transport.SSHTransport.forward_remote`),
    or the port itself when the host is this machine (``connection: local``)."""
    transport = ctx.transport
    if isinstance(transport, LocalTransport):
        yield port
        return
    forward = getattr(transport, "forward_remote", None)
    if forward is None:
        raise StepFailed(f"{ctx.host.name}: files_engine restic needs an SSH or local connection")
    with forward(port, bulk=bulk) as host_port:
        yield int(host_port)
