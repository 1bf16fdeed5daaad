"""Events: one stream, redacted once, fanned out to the journal file, the console and JSON output.

Why redact here: every sink gets the same already-masked event, so no output path can leak a secret
by forgetting to mask it.
"""

from __future__ import annotations

import json
import os
import secrets as _random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TextIO

from maintkit.secrets import Redactor

DEFAULT_JOURNAL_DIR = ".maintkit/runs"


def new_run_id(now: datetime | None = None) -> str:
    """Return a run id that sorts by start time: ``20261122T003112Z-a1b2c3``."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{_random.token_hex(3)}"


def journal_dir(explicit: str | None = None) -> Path:
    """The journal folder: the option, else $MAINTKIT_JOURNAL_DIR, else ./.maintkit/runs."""
    return Path(explicit or os.environ.get("MAINTKIT_JOURNAL_DIR") or DEFAULT_JOURNAL_DIR)


class Sink(Protocol):
    def handle(self, event: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class EventBus:
    """Stamp, redact and deliver events to every sink, from any thread."""

    def __init__(self, run_id: str, redactor: Redactor, sinks: list[Sink] | None = None) -> None:
        self.run_id = run_id
        self.redactor = redactor
        self.sinks: list[Sink] = list(sinks or [])
        self._lock = threading.Lock()

    def emit(self, event: str, **fields: Any) -> None:
        record = {"ts": datetime.now(UTC).isoformat(timespec="milliseconds"), "run_id": self.run_id}
        record["event"] = event
        record.update({k: v for k, v in fields.items() if v is not None})
        clean = self.redactor(record)
        with self._lock:
            for sink in self.sinks:
                sink.handle(clean)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


class JournalSink:
    """Append events as JSON lines to ``DIR/RUN_ID.jsonl``, flushed per event (a crash keeps them)."""

    def __init__(self, directory: Path, run_id: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{run_id}.jsonl"
        self._file = self.path.open("a", encoding="utf-8")
        os.chmod(self.path, 0o600)

    def handle(self, event: dict[str, Any]) -> None:
        self._file.write(json.dumps(event, default=str) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class JsonLinesSink:
    """``--output json``: every event as one JSON line on a stream (stdout)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def handle(self, event: dict[str, Any]) -> None:
        self.stream.write(json.dumps(event, default=str) + "\n")
        self.stream.flush()

    def close(self) -> None:
        pass


def read_journal(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the events of one journal file (a torn last line, from a crash, is skipped)."""
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def summarize_run(path: Path) -> dict[str, Any]:
    """Given a journal file, return its run's headline: id, playbook, env, start, duration, status, exit."""
    summary: dict[str, Any] = {"run_id": path.stem, "status": "unfinished", "exit_code": None}
    for event in read_journal(path):
        if event["event"] == "run_start":
            summary.update(
                playbook=event.get("playbook"),
                env=event.get("env"),
                started=event.get("ts"),
                hosts=len(event.get("hosts", [])),
                check=event.get("check", False),
            )
        elif event["event"] == "run_end":
            summary.update(
                status=event.get("status"), exit_code=event.get("exit_code"), duration=event.get("duration")
            )
    return summary
