"""A fleet's shared inputs, read once in its fork server instead of once per site.

Why: a fleet's sites are forks of one fork server (:mod:`maintkit.cli.sitechild`), and each site's
run reads the inventory and the playbook it shares with hundreds of others. A site run that parsed
and built a 200-host inventory to use one host of it spent ~100 ms of CPU on it, most of a small
site's run, and the fleet's CPU grew with the square of its size (docs/performance.md). The fork
server builds them once (:func:`maintkit.cli.sitechild.prepare`) and each site's run gets a private
copy (unpickled: about a millisecond).

A copy is given only when every file the inventory was built from (the inventory, and the
``group_vars/`` and ``host_vars/`` of the folder layout) still has exactly the bytes it had; else
the run reads them as it always does. A file that is missing or invalid is left for the site's run
to report. Nothing here can change what a run sees, only how fast it gets it.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

Key = tuple[str | None, str | None, str, str]
Inputs = tuple[tuple[str, bytes], ...]

#: inventories built ahead: key -> (the bytes of each input file, the pickled result)
_BUILT: dict[Key, tuple[Inputs, bytes]] = {}


def inputs(file: Path, folder: Path | None) -> Inputs:
    """The bytes of every file an inventory is built from (a superset: every file under its
    ``group_vars/`` and ``host_vars/``)."""
    files = [file]
    if folder is not None:
        for kind in ("group_vars", "host_vars"):
            if (folder / kind).is_dir():
                files += sorted(p for p in (folder / kind).rglob("*") if p.is_file())
    return tuple((str(f), f.read_bytes()) for f in files)


def recall(key: Key, file: Path, folder: Path | None) -> Any | None:
    """A private copy of the inventory built ahead under ``key``, if its input files are unchanged."""
    built = _BUILT.get(key)
    if built is None:
        return None
    try:
        unchanged = inputs(file, folder) == built[0]
    except OSError:
        return None
    return pickle.loads(built[1]) if unchanged else None  # noqa: S301 (made by this process's parent)


def remember(key: Key, file: Path, folder: Path | None, build: Callable[[], Any]) -> None:
    """Build an inventory now (``build``), for :func:`recall`; kept only when no input file
    changed while it was built."""
    before = inputs(file, folder)
    result = build()
    if inputs(file, folder) == before:
        _BUILT[key] = (before, pickle.dumps(result, pickle.HIGHEST_PROTOCOL))
