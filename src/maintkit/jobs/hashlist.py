"""The code hash list made on the host while a snapshot streams (the integrity watch).

Why a job of its own beside the snapshot job: the list runs concurrently with the whole snapshot
(started just before it, read back just after it), whatever carries the files (tar or the restic
engine), so neither engine's code knows about it; and a list that fails or is late never fails the
backup: it is reported (the watch says so) while the snapshot stays good.
"""

from __future__ import annotations

from dataclasses import dataclass

from maintkit.jobs.context import HostContext
from maintkit.sources.codehashes import (
    ListSink,
    cleanup_command,
    collect_command,
    parse_hashes,
    parse_started,
    start_command,
)
from maintkit.sources.compression import strip_markers

#: seconds the list may still take once the snapshot is stored (it normally finished long before)
LATE_SECONDS = 600.0


@dataclass
class HashList:
    """One list being made on one host: where it is written, the hasher's process group."""

    ctx: HostContext
    root: str
    path: str
    pid: int

    @classmethod
    def start(cls, ctx: HostContext, root: str, exclude: list[str]) -> HashList | str:
        """Start it detached on the host; the list, or why it could not start (a message)."""
        result = ctx.run(start_command(root, exclude), timeout=60)
        started = parse_started(result.stdout) if result.rc == 0 else None
        if started is None:
            return f"the hash list could not start in {root}: {_stderr(result.stderr) or f'exit {result.rc}'}"
        return cls(ctx, root, *started)

    def collect(self, wait_seconds: float = LATE_SECONDS) -> dict[str, object]:
        """Read the finished list back (and remove it from the host): ``files`` or an ``error``."""
        sink = ListSink()
        try:
            result = self.ctx.run(
                collect_command(self.path, wait_seconds), stdout=sink, timeout=wait_seconds + 60
            )
        except BaseException:
            self.stop()
            raise
        status = _marker(result.stderr)
        if result.rc != 0 or status != "0" or sink.truncated:
            self.stop()
            why = (
                "it did not finish in time"
                if status == "timeout"
                else "it was too long"
                if sink.truncated
                else f"exit status {status or result.rc}: {_stderr(result.stderr)}"
            )
            return {"root": self.root, "error": f"the hash list of {self.root} failed ({why})"}
        files = parse_hashes(sink.text())
        return {"root": self.root, "files": files, "count": len(files)}

    def stop(self) -> None:
        """Stop the hasher and remove its files (the snapshot failed, or the list was late)."""
        try:
            self.ctx.run(cleanup_command(self.path, self.pid), timeout=30)
        except Exception:  # the connection may be what failed: the list is a temporary file in /tmp
            return


def _marker(stderr: str) -> str:
    for line in reversed(stderr.splitlines()):
        if line.startswith("maintkit:hashes="):
            return line.partition("=")[2].strip()
    return ""


def _stderr(text: str) -> str:
    return strip_markers(text).strip()[-500:]
