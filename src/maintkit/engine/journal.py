"""Events: one stream, redacted once, fanned out to the journal file, the console and JSON output.

Why redact here: every sink gets the same already-masked event, so no output path can leak a secret
by forgetting to mask it.

Why a writer thread: hosts run in threads, and every step emits a few events. With the sinks called
under a lock by the emitting thread, twenty hosts queued on that lock behind whichever thread was
writing (and waiting for the GIL to come back after its write): hosts spent most of a short step
waiting for the journal (docs/performance.md). Now an emitting thread stamps and redacts its event
and puts it on a queue; one thread hands the events to the sinks in order and flushes them whenever
the queue runs empty, which is within milliseconds while a run is busy.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import queue
import secrets as _random
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TextIO

from maintkit.fsmodes import make_private_dirs, open_private
from maintkit.secrets import Redactor

DEFAULT_JOURNAL_DIR = ".maintkit/runs"


def new_run_id(now: datetime | None = None) -> str:
    """Return a run id that sorts by start time: ``20261122T003112Z-a1b2c3``."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{_random.token_hex(3)}"


def journal_dir(explicit: str | None = None) -> Path:
    """The journal folder: the option, else $MAINTKIT_JOURNAL_DIR, else ./.maintkit/runs."""
    return Path(explicit or os.environ.get("MAINTKIT_JOURNAL_DIR") or DEFAULT_JOURNAL_DIR)


class EventSink(Protocol):
    """Where events go (journal file, console, JSON lines); not a byte sink (``transport.base.Sink``)."""

    def handle(self, event: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


#: queue items that are not events: wake the waiter once everything before it was handled; stop
_FLUSH, _STOP = object(), object()

#: how long flush() and close() wait for the writer thread before saying so and going on
DELIVERY_TIMEOUT = 60.0


class EventBus:
    """Stamp, redact and deliver events to every sink, from any thread, in the order emitted.

    ``emit`` never blocks on a sink (it is also safe in a signal handler: ``SimpleQueue.put`` is
    reentrant). :meth:`flush` waits until every event emitted so far reached the sinks; :meth:`close`
    flushes and closes them, and runs at interpreter exit if nobody called it.

    Why the writer survives anything a sink raises (``BaseException``, not ``Exception``): rich
    raises ``SystemExit`` on a closed pipe; it killed the thread and a later ``flush`` waited forever.
    A sink that raises is dropped with one line on stderr and one ``sink_failed`` event for the others
    (the journal), never an error per event. Why the waits have a timeout: a dead writer is noticed
    and the rest is delivered by the waiting thread; a writer stuck in a sink is reported after
    ``timeout`` seconds instead of hanging the run's exit.
    """

    def __init__(
        self,
        run_id: str,
        redactor: Redactor,
        sinks: list[EventSink] | None = None,
        timeout: float = DELIVERY_TIMEOUT,
    ) -> None:
        self.run_id = run_id
        self.redactor = redactor
        self.sinks: list[EventSink] = list(sinks or [])
        self.timeout = timeout
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self._failed: list[EventSink] = []  # sinks dropped after raising
        self._writer_error: BaseException | None = None
        self._stopped = False  # the writer reached the stop marker: it ended, it did not die
        self._reported_dead = False
        self._here = threading.Lock()  # delivery by a waiting thread, once the writer is dead
        self._writer = threading.Thread(target=self._deliver, name="maintkit-events", daemon=True)
        self._writer.start()
        atexit.register(self.close)

    def emit(self, event: str, **fields: Any) -> None:
        record = {"ts": datetime.now(UTC).isoformat(timespec="milliseconds"), "run_id": self.run_id}
        record["event"] = event
        record.update({k: v for k, v in fields.items() if v is not None})
        self._queue.put(self.redactor(record))

    def flush(self) -> bool:
        """Return once every event emitted before this call was handed to the sinks and flushed.

        Return False when the writer was still busy after ``timeout`` seconds (reported on stderr).
        """
        done = threading.Event()
        self._queue.put((_FLUSH, done))
        deadline = time.monotonic() + self.timeout
        while not done.wait(0.05):
            if not self._writer.is_alive():
                self._deliver_here()
                return True
            if time.monotonic() > deadline:
                _say(f"maintkit: events not delivered within {self.timeout:g} s; the outputs may lag")
                return False
        return True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._writer.join(self.timeout)
        if self._writer.is_alive():
            _say(
                f"maintkit: the event writer did not finish within {self.timeout:g} s; "
                "the journal may miss the last events"
            )
        else:
            self._deliver_here()  # nothing left, unless the writer died before reaching _STOP
        for sink in self.sinks:
            try:
                sink.close()
            except BaseException as exc:  # closing one sink must not skip the others
                _say(f"maintkit: could not close {type(sink).__name__}: {exc}")
        atexit.unregister(self.close)

    def _deliver(self) -> None:
        try:
            while True:
                item = self._queue.get()
                if not self._handle(item):
                    return
        except BaseException as exc:  # recorded; a waiting thread takes over
            self._writer_error = exc

    def _deliver_here(self) -> None:
        """Deliver what the dead writer left in the queue, on the calling thread."""
        with self._here:
            if self._queue.empty():
                return
            if not self._stopped and not self._reported_dead:
                self._reported_dead = True
                why = f": {self._writer_error!r}" if self._writer_error else ""
                _say(f"maintkit: the event writer stopped{why}; delivering the remaining events directly")
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    return
                if item is not _STOP:
                    self._handle(item)
                else:
                    self._flush_sinks()

    def _handle(self, item: Any) -> bool:
        """Hand one queue item to the sinks; False for the stop marker."""
        if item is _STOP:
            self._stopped = True
            self._flush_sinks()
            return False
        if isinstance(item, tuple) and item[0] is _FLUSH:
            self._flush_sinks()
            item[1].set()
            return True
        for sink in self.sinks:
            if sink in self._failed:
                continue
            try:
                sink.handle(item)
            except BaseException as exc:  # one broken sink must not silence the others
                self._drop(sink, exc)
        if self._queue.empty():
            self._flush_sinks()
        return True

    def _flush_sinks(self) -> None:
        for sink in self.sinks:
            flush = getattr(sink, "flush", None)
            if flush is not None and sink not in self._failed:
                try:
                    flush()
                except BaseException as exc:
                    self._drop(sink, exc)

    def _drop(self, sink: EventSink, exc: BaseException) -> None:
        """Stop using a sink that raised: one line on stderr, one event for the sinks left."""
        self._failed.append(sink)
        name = type(sink).__name__
        _say(f"maintkit: {name} stopped after an error, the other outputs go on: {exc!r}")
        self.emit("sink_failed", sink=name, error=repr(exc))


def _say(text: str) -> None:
    """One line on stderr, if stderr still takes it."""
    with contextlib.suppress(OSError, ValueError):
        print(text, file=sys.stderr, flush=True)


class JournalSink:
    """Append events as JSON lines to ``DIR/RUN_ID.jsonl``; the bus flushes it whenever it is idle."""

    def __init__(self, directory: Path, run_id: str) -> None:
        make_private_dirs(directory)  # 0700 whatever the umask (maintkit.fsmodes)
        self.path = directory / f"{run_id}.jsonl"
        self._file = os.fdopen(open_private(self.path), "a", encoding="utf-8")

    def handle(self, event: dict[str, Any]) -> None:
        self._file.write(json.dumps(event, default=str) + "\n")

    def flush(self) -> None:
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
