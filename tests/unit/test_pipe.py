"""The one bounded pipe (storage/pipe.py) that the S3 upload and age encryption/decryption share."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from maintkit.storage.pipe import BoundedPipe, PipeAborted, PipeClosed


def wait_for(condition: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_pipe_blocks_the_writer_when_the_reader_falls_behind() -> None:
    pipe = BoundedPipe(limit=8)
    written: list[int] = []

    def produce() -> None:
        for _ in range(10):
            written.append(pipe.write(b"abcd"))
        pipe.close()

    producer = threading.Thread(target=produce)
    producer.start()
    wait_for(lambda: len(written) >= 2)
    time.sleep(0.3)
    assert producer.is_alive(), "backpressure: the writer waits for the reader"
    assert len(written) == 2  # 8 bytes wait: the third write waits for room
    assert pipe.read(6) == b"abcdab"  # exactly what was asked, across writes
    assert pipe.read(2) == b"cd"
    rest = pipe.read()  # -1: to the end
    producer.join(timeout=5)
    assert rest == b"abcd" * 8
    assert pipe.read(10) == b""


def test_a_write_larger_than_the_limit_passes_in_pieces_never_holding_more() -> None:
    pipe = BoundedPipe(limit=4)
    waiting: list[int] = []
    received: list[bytes] = []

    def consume() -> None:
        while True:
            time.sleep(0.01)  # slower than the writer: the pipe is full at every read
            waiting.append(pipe._size)
            data = pipe.read(3)
            if not data:
                return
            received.append(data)

    consumer = threading.Thread(target=consume)
    consumer.start()
    assert pipe.write(b"0123456789abcdef") == 16
    pipe.close()
    consumer.join(timeout=5)
    assert b"".join(received) == b"0123456789abcdef"
    assert max(waiting) == 4


def test_pipe_abort_fails_the_reader_and_releases_the_writer() -> None:
    pipe = BoundedPipe(limit=4)
    pipe.write(b"abcd")
    failures: list[BaseException] = []

    def produce() -> None:
        try:
            pipe.write(b"efghijkl")  # blocks: 4 bytes wait already
        except PipeClosed as error:
            failures.append(error)

    producer = threading.Thread(target=produce)
    producer.start()
    time.sleep(0.2)
    assert producer.is_alive()
    pipe.abort()
    producer.join(timeout=5)
    assert [str(f) for f in failures] == ["aborted"]
    with pytest.raises(PipeAborted):
        pipe.read(4)


def test_pipe_writer_fails_fast_once_the_reader_is_gone() -> None:
    pipe = BoundedPipe(limit=4)
    pipe.write(b"abcd")
    pipe.reader_done()  # the upload failed
    with pytest.raises(PipeClosed, match="the reader stopped"):
        pipe.write(b"e")


def test_a_writer_blocked_on_a_full_pipe_is_released_when_the_reader_stops() -> None:
    pipe = BoundedPipe(limit=4)
    pipe.write(b"abcd")
    failures: list[BaseException] = []
    producer = threading.Thread(target=lambda: _write_catching(pipe, b"more", failures))
    producer.start()
    time.sleep(0.2)
    assert producer.is_alive()
    pipe.reader_done()
    producer.join(timeout=5)
    assert not producer.is_alive()
    assert isinstance(failures[0], BrokenPipeError)  # what the age worker's callers catch


def test_the_reader_gets_what_was_written_before_close_then_end_of_file() -> None:
    pipe = BoundedPipe(limit=16)
    pipe.write(b"tail")
    pipe.close()
    assert pipe.read(100) == b"tail"
    assert pipe.read(100) == b""
    with pytest.raises(PipeClosed, match="write after close"):
        pipe.write(b"x")


def _write_catching(pipe: BoundedPipe, data: bytes, failures: list[BaseException]) -> None:
    try:
        pipe.write(data)
    except BaseException as error:
        failures.append(error)
