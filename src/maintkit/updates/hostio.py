"""Reading and writing whole small files on a host (release history, composer.lock) over the transport.

Why not the command result's stdout: a result keeps a bounded 64 KiB tail, and a Magento
composer.lock is about a megabyte. Files are read through a sink (bounded by ``limit``) and written
with their bytes on stdin into a temporary file that is renamed over the target, so a reader never
sees half a file.
"""

from __future__ import annotations

import hashlib
import shlex
from typing import Protocol

from maintkit.model.problems import StepFailed
from maintkit.sources.script import host_path
from maintkit.transport.base import CommandResult, Sink

MISSING_RC = 44
READ_LIMIT = 32 * 1024 * 1024


class Runs(Protocol):
    """What these helpers need: a step context's ``run`` (or a transport wrapped the same way)."""

    def __call__(
        self, command: str, *, stdin: bytes | None = None, stdout: Sink | None = None
    ) -> CommandResult: ...


class Collect:
    """A sink that keeps every byte, refusing more than ``limit`` (a file that big is a mistake)."""

    def __init__(self, limit: int = READ_LIMIT) -> None:
        self.limit = limit
        self.data = bytearray()

    def write(self, data: bytes, /) -> int:
        self.data += data
        if len(self.data) > self.limit:
            raise StepFailed(f"the file is larger than {self.limit} bytes")
        return len(data)


def read_command(path: str) -> str:
    """The command printing ``path``'s bytes; exit ``MISSING_RC`` when there is no such file."""
    p = host_path(path)
    return f"if [ -f {p} ]; then exec cat -- {p}; else exit {MISSING_RC}; fi"


def read_file(run: Runs, path: str, limit: int = READ_LIMIT) -> bytes | None:
    """Return the bytes of ``path`` on the host, or None when it does not exist."""
    sink = Collect(limit)
    result = run(read_command(path), stdout=sink)
    if result.rc == MISSING_RC:
        return None
    if result.rc != 0:
        raise StepFailed(f"reading {path} failed (exit status {result.rc}): {result.stderr.strip()[-500:]}")
    return bytes(sink.data)


def write_command(path: str, size: int, *, private_dir: bool = False) -> str:
    """The command that stores exactly ``size`` bytes of stdin at ``path``, atomically (temp + rename).

    ``private_dir``: folders it creates are 0700 whatever the host's umask (maintkit's own
    ``ROOT/.maintkit``); otherwise they follow the umask, as the site's other folders do.
    """
    folder, _, name = path.rstrip("/").rpartition("/")
    if not name:
        raise ValueError(f"not a file path: {path!r}")
    d = host_path(folder or ".")
    target = host_path(path)
    mkdir = '(umask 077 && mkdir -p "$d")' if private_dir else 'mkdir -p "$d"'
    return (
        f'd={d} && {mkdir} && tmp=$(mktemp "$d/.maintkit-XXXXXX") && '
        f'head -c {size} > "$tmp" && [ "$(wc -c < "$tmp")" -eq {size} ] && chmod 0644 "$tmp" && '
        f'mv -f "$tmp" {target} || {{ rm -f "$tmp"; exit 1; }}'
    )


def write_file(run: Runs, path: str, data: bytes, *, private_dir: bool = False) -> None:
    """Store ``data`` at ``path`` on the host, atomically; raise StepFailed on any error."""
    result = run(write_command(path, len(data), private_dir=private_dir), stdin=data)
    if result.rc != 0:
        raise StepFailed(f"writing {path} failed (exit status {result.rc}): {result.stderr.strip()[-500:]}")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def quote_all(items: list[str]) -> str:
    return " ".join(shlex.quote(i) for i in items)
