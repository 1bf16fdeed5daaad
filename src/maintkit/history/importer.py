"""``maintkit history import``: journals back into the history, idempotently.

Why re-import at all: the journal is each run's source; a run whose database was down, a journal
copied from another control node, or a history started after months of runs are all backfilled by
reading the files again. Each journal replaces its run's rows (:meth:`HistoryStore.record`), so
importing twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from maintkit.engine.journal import read_journal
from maintkit.history.mapping import map_run
from maintkit.history.store import HistoryStore


@dataclass
class ImportResult:
    """What an import did: runs written, files skipped (with why)."""

    imported: list[str] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def journal_files(paths: Iterable[Path]) -> list[Path]:
    """The journal files named: a file as is, a folder's ``*.jsonl`` in name (= time) order."""
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(path.glob("*.jsonl")) if path.is_dir() else [path])
    return files


def import_journals(store: HistoryStore, paths: Iterable[Path]) -> ImportResult:
    """Record every journal of ``paths`` (files or folders); a file without a run start is skipped."""
    result = ImportResult()
    for path in journal_files(paths):
        try:
            record = map_run(read_journal(path), str(path.absolute()))
        except (OSError, UnicodeDecodeError) as error:
            result.skipped.append((path, str(error)))
            continue
        if record is None:
            result.skipped.append((path, "no run_start event"))
        elif record.run["check"]:
            result.skipped.append((path, "a --check run (nothing ran)"))
        else:
            store.record(record)
            result.imported.append(record.run["id"])
    return result
