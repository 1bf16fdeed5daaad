"""The shared progress events of a snapshot and a restore (jobs/progress.py)."""

from __future__ import annotations

import io
from typing import Any

from maintkit.jobs.progress import Progress, ProgressReader


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def emit(self, event: str, /, **fields: Any) -> None:
        self.seen.append((event, fields))


def test_no_event_before_the_interval_then_bytes_rate_and_eta() -> None:
    events = Events()
    progress = Progress(events, "db.sql.zst", expected=1000)
    progress(10)
    assert events.seen == []  # within the first interval: quiet
    progress.EVERY = 0.0
    progress.started -= 2.0  # two seconds in
    progress(400)
    [(name, fields)] = events.seen
    assert name == "progress" and fields["artifact"] == "db.sql.zst" and fields["bytes"] == 400
    assert 190 <= fields["rate"] <= 200 and fields["eta"] == 3  # 600 bytes left at ~200 B/s


def test_the_reader_reports_the_measure_it_is_given_not_the_bytes_it_hands_out() -> None:
    events = Events()
    progress = Progress(events, "files.tar.zst", expected=None)
    progress.EVERY = 0.0
    reader = ProgressReader(io.BytesIO(b"x" * 100), progress, lambda: 42)
    assert reader.read(60) == b"x" * 60 and reader.size == 60
    assert [f["bytes"] for _, f in events.seen] == [42]
    assert events.seen[0][1]["eta"] is None  # no expected size: no ETA
    plain = ProgressReader(io.BytesIO(b"y" * 10), progress)
    plain.read()
    assert events.seen[-1][1]["bytes"] == 10
