"""Recording a run into the history as it runs: an EventSink whose database work is on its own thread.

Why its own thread and queue: the event bus hands events to its sinks one after the other on one
writer thread; a database that is slow (a PostgreSQL server across the world) or hanging (a dead one,
up to the connect timeout) would hold the journal and the console back. This sink only appends the
few events the mapping reads to a queue; its thread opens the database, writes a ``runs`` row at
``run_start`` (``status`` sees who runs now) and the whole run at ``run_end``. The embedded SQLite
history is written with the standard library (:mod:`.sqlitewriter`) once its schema is at the
newest revision; SQLAlchemy is imported only to create or migrate it, and for PostgreSQL.

Failure policy: the first error is one warning on stderr that names the fix (``maintkit history
import`` backfills from the journal, which stays the source), then the sink stops trying; the run's
outcome and exit code never depend on the history. :meth:`close` waits a bounded time for the last
write, then leaves (the thread is a daemon).
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
from pathlib import Path
from typing import Any

from maintkit.history import sqlitewriter
from maintkit.history.mapping import MAPPED_EVENTS, map_run

#: how long the end of a run waits for its last history write before going on without it
CLOSE_TIMEOUT = 15.0
#: how long it waits when the database never answered yet (a server that hangs, a black-holed port)
UNREACHED_GRACE = 1.0

_STOP = object()


class HistorySink:
    """Map this run's events to history rows and write them, never failing or slowing the run."""

    def __init__(self, url: str, journal_path: Path, close_timeout: float = CLOSE_TIMEOUT) -> None:
        self.url = url
        self.journal_path = journal_path
        self.close_timeout = close_timeout
        self.failed: str | None = None
        self._warned = False  # the first problem is told, once
        self._events: list[dict[str, Any]] = []
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._store: Any = None
        self._plain = sqlitewriter.sqlite_file(url)  # SQLite is written without SQLAlchemy while it can
        # the database answered once: the end of the run waits for it (a local SQLite file always
        # "answers": a slow write there is a busy machine or another writer, not a dead server)
        self._answered = self._plain is not None
        self._thread = threading.Thread(target=self._work, name="maintkit-history", daemon=True)
        self._thread.start()

    def handle(self, event: dict[str, Any]) -> None:
        if event.get("event") in MAPPED_EVENTS and self.failed is None:
            self._queue.put(event)

    def close(self) -> None:
        """Wait for the last write: ``close_timeout`` once the database answered, a second if it never did."""
        self._queue.put(_STOP)
        self._thread.join(self.close_timeout if self._answered else UNREACHED_GRACE)
        if self._thread.is_alive() and self._answered:  # it answered meanwhile: give it its time
            self._thread.join(self.close_timeout)
        if self._thread.is_alive():
            self._warn("the history database did not answer in time")

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            if self.failed is not None:
                continue
            self._events.append(item)
            if item["event"] in ("run_start", "run_end") or item["event"] == "drill_report":
                self._write()
        if self._store is not None:
            with contextlib.suppress(Exception):
                self._store.close()

    def _write(self) -> None:
        try:
            record = map_run(self._events, str(self.journal_path.absolute()))
            if record is None or record.run["check"]:
                return
            if self._plain is not None and sqlitewriter.record(self._plain, record):
                self._answered = True
                return
            self._plain = None  # not at the newest schema (or a new file): SQLAlchemy creates, migrates
            from maintkit.history.store import HistoryStore  # SQLAlchemy loads here, off the run's path

            if self._store is None:
                self._store = HistoryStore.open(self.url, connected=self._on_connected)
                self._answered = True
            self._store.record(record)
        except Exception as error:
            from maintkit.history.database import describe_error

            self.failed = describe_error(error, self.url)
            self._warn(f"the history could not be written ({self.failed})")

    def _on_connected(self) -> None:
        """The database answered (its migrations may still run): the run's end waits for the history."""
        self._answered = True

    def _warn(self, why: str) -> None:
        if self._warned:
            return
        self._warned = True
        with contextlib.suppress(OSError, ValueError):
            print(
                f"maintkit: warning: {why}; the run goes on, its journal {self.journal_path} is complete: "
                f"`maintkit history import {self.journal_path}` records it later",
                file=sys.stderr,
                flush=True,
            )
