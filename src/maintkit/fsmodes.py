"""Folders and files maintkit creates on the control node are private, whatever the umask.

Why not trust the umask: cron jobs and containers often run with ``umask 000`` or ``002``; the
journal, the snapshots of a local target and the known_hosts maintkit writes would then be open to
every local user (a journal names hosts, commands and errors; a snapshot holds customer data and
password hashes). So every folder maintkit creates is 0700 and every private file 0600, set
explicitly; folders that already exist keep their mode (they are the user's choice).
"""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries (a rename or a new file in it) to disk."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_private_dirs(path: Path, *, durable: bool = False) -> None:
    """Create ``path`` and its missing parents with mode 0700 (existing folders keep their mode).

    ``durable``: fsync each new folder's parent, so the new entry survives a power cut (snapshots).
    Why not ``Path.mkdir(parents=True, mode=...)``: Python creates the parents with the default mode
    (0777 less the umask), and the umask applies to the last one too.
    """
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(folder, DIR_MODE)  # the umask may have taken bits away: never trust it to
        if durable:
            fsync_dir(folder.parent)


def open_private(path: Path, flags: int = os.O_WRONLY | os.O_CREAT | os.O_APPEND) -> int:
    """Open (creating it 0600) a private file; an existing file is made 0600 too. Return the fd."""
    fd = os.open(path, flags, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    return fd
