"""The event bus survives its sinks: a raising or stuck sink, a dead writer thread, a closed stdout."""

from __future__ import annotations

import io
import os
import threading
import time
from typing import Any

from maintkit.engine.journal import EventBus
from maintkit.reporting.stdout import PipeWriter
from maintkit.secrets import Redactor


class ListSink:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.closed = False

    def handle(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def close(self) -> None:
        self.closed = True

    def kinds(self) -> list[str]:
        return [e["event"] for e in self.events]


class ExitingSink(ListSink):
    """Raises SystemExit as rich's console does when its pipe is broken."""

    def handle(self, event: dict[str, Any]) -> None:
        raise SystemExit(1)


class StuckSink(ListSink):
    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def handle(self, event: dict[str, Any]) -> None:
        self.release.wait(30)


def test_a_sink_raising_system_exit_is_dropped_once_and_the_journal_keeps_every_event(capsys):
    journal, broken = ListSink(), ExitingSink()
    bus = EventBus("r", Redactor(), [journal, broken], timeout=10)
    for number in range(50):
        bus.emit("step_end", number=number)
    assert bus.flush() is True
    bus.close()
    assert [e["number"] for e in journal.events if e["event"] == "step_end"] == list(range(50))
    assert journal.kinds().count("sink_failed") == 1
    assert journal.closed and broken.closed
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 1 and "ExitingSink stopped" in errors[0]


def test_a_dead_writer_is_noticed_and_the_rest_is_delivered_by_the_waiting_thread(capsys):
    journal = ListSink()
    bus = EventBus("r", Redactor(), [journal], timeout=10)

    def die(item: Any) -> bool:
        raise RuntimeError("writer bug")

    bus._handle = die  # type: ignore[method-assign]  # the next item kills the writer thread
    bus.emit("lost_in_flight")
    bus._writer.join(5)
    assert not bus._writer.is_alive()
    del bus._handle
    bus.emit("after_1")
    bus.emit("after_2")
    started = time.monotonic()
    assert bus.flush() is True
    assert time.monotonic() - started < 5
    assert journal.kinds() == ["after_1", "after_2"]
    bus.emit("after_3")
    bus.close()
    assert journal.kinds() == ["after_1", "after_2", "after_3"] and journal.closed
    err = capsys.readouterr().err
    assert err.count("event writer stopped") == 1 and "writer bug" in err


def test_a_stuck_sink_makes_flush_and_close_report_instead_of_hanging(capsys):
    journal, stuck = ListSink(), StuckSink()
    bus = EventBus("r", Redactor(), [journal, stuck], timeout=0.3)
    bus.emit("one")
    started = time.monotonic()
    assert bus.flush() is False
    bus.close()
    assert time.monotonic() - started < 5
    stuck.release.set()
    assert journal.kinds() == ["one"] and journal.closed
    err = capsys.readouterr().err
    assert "not delivered within 0.3 s" in err and "did not finish within 0.3 s" in err


def test_a_closed_pipe_silences_stdout_once_and_never_raises():
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader left, as `head` does
    notes: list[str] = []
    writer = PipeWriter(write_end)
    writer.add_callback(lambda: notes.append("closed"))
    stream = io.TextIOWrapper(io.BufferedWriter(writer), encoding="utf-8")
    try:
        for _ in range(100):
            stream.write("line\n")
            stream.flush()
        assert writer.broken and notes == ["closed"]
        os.write(write_end, b"later writes land in /dev/null\n")  # fd now points at /dev/null
    finally:
        stream.close()
        os.close(write_end)
