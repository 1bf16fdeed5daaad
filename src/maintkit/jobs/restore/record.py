"""What a restore reports: phases with their times, tables with their rows, and why it failed.

The ``restore`` action returns this as its result's ``data`` (so it is registered and journalled,
failed or not); the drill report is built from the journal (:mod:`maintkit.reporting.drill_report`).

Phases overlap on purpose: a restore streams, so the download, the decompression on the host and
the import into the staging database run at the same time. Each phase is an interval (wall-clock
start, seconds); the report draws them on one time line.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

#: the phases of a restore, in the order they start
PHASES = ("download", "decrypt", "decompress", "import", "verify", "extract", "sync", "commit")

#: why a restore failed (one cause per failure; the drill maps each to its own message)
Cause = Literal[
    "integrity", "unsafe_archive", "tables", "refused", "production", "extract", "commit", "error"
]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class Phase:
    """One phase of one artifact: when it started (UTC, ISO) and how long it took."""

    name: str
    started: str
    seconds: float
    artifact: str | None = None
    bytes: int | None = None
    note: str = ""


@dataclass
class TableCheck:
    """One table: rows in the manifest (counted at snapshot time), in the dump, restored."""

    name: str
    manifest_rows: int | None
    dump_rows: int | None
    restored_rows: int | None
    ok: bool
    problem: str = ""


@dataclass
class RestoreRecord:
    """The ``data`` of a restore step."""

    snapshot_id: str = ""
    site: str = ""
    source_env: str = ""
    storage_target: str = ""
    snapshot_created: str = ""
    snapshot_finished: str = ""
    database: dict[str, Any] = field(default_factory=dict)
    database_created: bool = False
    files: dict[str, Any] = field(default_factory=dict)
    urls: dict[str, int] = field(default_factory=dict)
    phases: list[Phase] = field(default_factory=list)
    tables: list[TableCheck] = field(default_factory=list)
    bytes: int = 0
    plain_bytes: int = 0
    committed: bool = False
    #: something of this restore's own was created (staging database, extraction folder): only then
    #: may a drill's cleanup run
    staged: bool = False
    #: the target's and the source's identities as compared by the production guard
    identity: dict[str, Any] = field(default_factory=dict)
    #: the proof that the copy's application config names the target's own database
    config: dict[str, Any] = field(default_factory=dict)
    cause: Cause | None = None
    artifact: str | None = None
    error: str = ""
    #: the copy read was damaged: the other targets holding this snapshot (``--target`` reads one)
    other_targets: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @contextmanager
    def phase(self, name: str, artifact: str | None = None, note: str = "") -> Iterator[Phase]:
        """Time a phase that runs alone (not streamed); it is recorded even when it fails."""
        started = time.monotonic()
        phase = Phase(name, now_iso(), 0.0, artifact, note=note)
        try:
            yield phase
        finally:
            phase.seconds = round(time.monotonic() - started, 3)
            self.phases.append(phase)  # one append: safe from the parallel staging threads
