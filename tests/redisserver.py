"""A real Redis for tests: ``redis-server`` in a subprocess on 127.0.0.1, a free port, a temp dir.

Why the real server: the fleet's guarantees on Celery (late acks, a killed worker's site run again
elsewhere, revoking) are Redis's and kombu's behaviour; an in-memory stand-in would prove nothing
of them. Needs Debian's ``redis-server``; without it the tests skip, except under ``CI``.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from tests.s3server import skip_or_fail
from tests.sshd import free_port, terminate

READY_TIMEOUT = 10.0


def require_redis() -> None:
    if shutil.which("redis-server") is None:
        skip_or_fail("redis-server is missing: install Debian's redis-server to run the fleet's Celery tests")


class RedisServer:
    """``redis-server`` without persistence, in its own temp dir; use as a context manager."""

    def __init__(self) -> None:
        require_redis()
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="mk-redis-"))
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        log = (self.dir / "redis.log").open("wb")
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        import redis

        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            try:
                if redis.Redis.from_url(self.url, socket_timeout=1).ping():
                    return self
            except redis.RedisError:
                time.sleep(0.05)
            if self.proc.poll() is not None:
                break
        self.stop()
        raise RuntimeError(f"redis-server did not start: {(self.dir / 'redis.log').read_text()[-2000:]}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        terminate(proc)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
