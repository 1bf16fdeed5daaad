"""A real S3 endpoint for tests: moto's standalone server, in a subprocess on 127.0.0.1, and a TCP
fault proxy to put in front of it.

Why a subprocess and not moto's in-process mocks: the code under test must talk HTTP to an endpoint
as it would to AWS or MinIO (signing, retries, multipart, connection errors); ``mock_aws`` patches
botocore itself and would hide exactly that. Why a proxy of our own: to break a connection in the
middle of a part upload, at a byte count we choose, and count what botocore did about it.

Needs ``moto[server]``; without it the tests skip, except under ``CI`` where they fail instead.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

import pytest

READY_TIMEOUT = 20.0

#: fake credentials, only ever set in the test process's environment (through monkeypatch)
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
#: variables that would let the developer's own AWS setup leak into a test
AWS_ENV_TO_CLEAR = (
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_MAX_ATTEMPTS",
    "AWS_RETRY_MODE",
    "AWS_CA_BUNDLE",
)


def skip_or_fail(reason: str) -> None:
    """Skip the test, or fail it under CI (where a skipped integration test would hide a regression)."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: integration tests may not skip)", pytrace=False)
    pytest.skip(reason)


def require_moto() -> None:
    """Skip (or fail under CI) unless moto's server mode is installed."""
    missing = [name for name in ("moto", "flask", "werkzeug") if importlib.util.find_spec(name) is None]
    if missing:
        skip_or_fail(f"moto's server mode is not installed (missing {', '.join(missing)}: moto[server])")


def use_fake_aws_credentials(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """Point boto3 at fake credentials and away from the developer's ``~/.aws`` (for this test only)."""
    for name in AWS_ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    for name, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "aws-credentials"))


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the server retries if someone takes it meanwhile)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class MotoServer:
    """``python -m moto.server`` on a free 127.0.0.1 port; a context manager that stops it by its PID."""

    def __init__(self) -> None:
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._log_dir = tempfile.TemporaryDirectory(prefix="maintkit-moto-")
        self.log_file = Path(self._log_dir.name) / "moto.log"

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        for _attempt in range(3):  # the free port may be taken between probe and bind
            self.port = free_port()
            with self.log_file.open("ab") as log:
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            if self._wait_ready():
                return
            self.stop()
        raise RuntimeError(f"moto server did not start; its log:\n{self.log_file.read_text()[-3000:]}")

    def _wait_ready(self) -> bool:
        """Poll the server's API until it answers; False when the process died first."""
        assert self.process is not None
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1):
                    return True
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()  # SIGTERM to this PID only
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def __enter__(self) -> MotoServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        self._log_dir.cleanup()


class FaultProxy:
    """A TCP proxy on 127.0.0.1 in front of ``upstream`` that breaks connections on purpose.

    * ``drop_once_after=N``: the connection that carries the client's N-th byte (counted over all
      connections, client to server) is cut, once; later connections pass.
    * ``drop_matching=b"..."`` with ``after=M``: every connection whose request contains the pattern
      is cut after M more bytes of it, every time (a fault that retries cannot get past).
    * ``down_rate=B``: the server's answers reach the client at about B bytes a second (a slow link).

    ``connections`` and ``drops`` count what happened, for assertions.
    """

    def __init__(
        self,
        upstream_port: int,
        *,
        drop_once_after: int | None = None,
        drop_matching: bytes | None = None,
        after: int = 0,
        down_rate: int | None = None,
    ) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.down_rate = down_rate
        self.drop_once_after = drop_once_after
        self.drop_matching = drop_matching
        self.after = after
        self.connections = 0
        self.drops = 0
        self.bytes_up = 0
        self._lock = threading.Lock()
        self._fired = False
        self._sockets: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._stopping = False
        self._thread = threading.Thread(target=self._accept, name="fault-proxy", daemon=True)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stopping = True
        self._thread.join(timeout=5)
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            cut(sock)

    def _accept(self) -> None:
        self._listener.settimeout(0.05)  # closing a socket does not wake accept(): poll the flag
        while not self._stopping:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                cut(client)
                continue
            server.settimeout(None)
            with self._lock:
                self.connections += 1
                self._sockets.update((client, server))
            threading.Thread(target=self._pump_up, args=(client, server), daemon=True).start()
            threading.Thread(target=pump_down, args=(server, client, self.down_rate), daemon=True).start()

    def _should_cut(self, data: bytes, state: dict[str, int]) -> bool:
        """Count ``data`` going up and decide whether this connection is cut now."""
        with self._lock:
            self.bytes_up += len(data)
            if self.drop_once_after is not None and not self._fired and self.bytes_up >= self.drop_once_after:
                self._fired = True
                self.drops += 1
                return True
            if self.drop_matching is not None:
                if "doomed_at" not in state and self.drop_matching in data:
                    state["doomed_at"] = state["sent"]
                state["sent"] += len(data)
                if "doomed_at" in state and state["sent"] - state["doomed_at"] >= self.after:
                    self.drops += 1
                    return True
            return False

    def _pump_up(self, client: socket.socket, server: socket.socket) -> None:
        state = {"sent": 0}
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                if self._should_cut(data, state):
                    break
                server.sendall(data)
        except OSError:
            pass
        cut(client)
        cut(server)

def pump_down(server: socket.socket, client: socket.socket, rate: int | None = None) -> None:
    """Copy the server's answers to the client until either side closes, then cut both; at about
    ``rate`` bytes a second when given."""
    chunk = 65536 if rate is None else max(1024, min(65536, rate // 10))
    try:
        while data := server.recv(chunk):
            client.sendall(data)
            if rate is not None:
                time.sleep(len(data) / rate)
    except OSError:
        pass
    cut(client)
    cut(server)


def cut(sock: socket.socket) -> None:
    """Close a socket abruptly (both directions), ignoring sockets already closed."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
