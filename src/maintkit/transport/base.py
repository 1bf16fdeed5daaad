"""The transport interface: run one shell command on a host, streaming its input and output.

Why streaming: a later snapshot pipes gigabytes through ``run``; nothing here may hold a whole
output in memory. A result keeps only a bounded tail of each stream for the journal and templates.

Every implementation follows the same contract:

* ``command`` is a POSIX shell snippet, run by the login user's shell on the host.
* ``stdin`` is ``None`` (the command reads EOF), ``bytes``, or a binary file-like with ``read(n)``
  that is streamed until it returns ``b""``.
* ``stdout`` is ``None`` (output collected into the bounded tail) or a sink with ``write(bytes)``
  that receives every byte; the tail then stays empty.
* ``timeout`` (seconds, per call) kills the command's whole process group on the host, then raises
  :class:`~maintkit.model.problems.CommandTimeout`. ``cancel`` (a ``threading.Event``) does the same when set,
  raising :class:`~maintkit.model.problems.Interrupted`.
* ``secret=True`` means the command text contains a secret: it must not appear in any process list,
  so it is sent over stdin (``eval "$(head -c N)"``) instead of on the command line.
* A broken connection raises :class:`~maintkit.model.problems.TransportError` (retried by the engine);
  a non-zero exit status is *not* an exception, it is ``CommandResult.rc``.
"""

from __future__ import annotations

import re
import shlex
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import BinaryIO, Protocol

TAIL_BYTES = 64 * 1024


class Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...


@dataclass
class CommandResult:
    """What one command did. ``stdout``/``stderr`` are bounded tails, decoded as UTF-8."""

    command: str
    rc: int
    stdout: str
    stderr: str
    duration: float
    stdout_bytes: int = 0
    stderr_bytes: int = 0

    @property
    def ok(self) -> bool:
        return self.rc == 0


class Tail:
    """Keep the last ``limit`` bytes written, count them all."""

    def __init__(self, limit: int = TAIL_BYTES) -> None:
        self.limit = limit
        self.total = 0
        self._buf = bytearray()

    def write(self, data: bytes) -> int:
        self.total += len(data)
        self._buf += data
        if len(self._buf) > 2 * self.limit:
            del self._buf[: len(self._buf) - self.limit]
        return len(data)

    def text(self) -> str:
        return bytes(self._buf[-self.limit :]).decode("utf-8", "replace")


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def with_env(command: str, env: Mapping[str, str] | None) -> str:
    """Prefix ``command`` with quoted ``export`` statements (servers rarely AcceptEnv)."""
    if not env:
        return command
    for name in env:  # actions validate names; this is the last line of defence before the shell
        if not _ENV_NAME.fullmatch(str(name)):
            raise ValueError("invalid environment variable name (letters, digits and _ only)")
    exports = " ".join(f"{name}={shlex.quote(str(value))}" for name, value in env.items())
    return f"export {exports}; {command}"


class LinkedCancel(threading.Event):
    """A cancel event that also reads as set while any of its ``parents`` is set.

    Why: a job that runs two commands at once (a restore stages its database and its files in
    parallel) must stop one when the other fails, without losing the step's own cancel (SIGINT,
    the engine's stop). Transports only ask ``is_set()`` (every ``WAIT_SLICE``), which is what this
    overrides; ``wait()`` is not used on cancel events and does not see the parents.
    """

    def __init__(self, *parents: threading.Event | None) -> None:
        super().__init__()
        self.parents = [p for p in parents if p is not None]

    def is_set(self) -> bool:
        return super().is_set() or any(p.is_set() for p in self.parents)


def linked_cancel(*events: threading.Event | None) -> threading.Event | None:
    """One event set when any of ``events`` is; None when none is given (see :class:`LinkedCancel`)."""
    given = [e for e in events if e is not None]
    if len(given) <= 1:
        return given[0] if given else None
    return LinkedCancel(*given)


class Transport(ABC):
    """A connection to one host. Opened lazily, reused for every command of a run, closed at the end."""

    #: the inventory name of the host, for messages
    name: str

    @abstractmethod
    def connect(self) -> None:
        """Open the connection now (idempotent). Raise TransportError or HostKeyError."""

    @abstractmethod
    def run(
        self,
        command: str,
        *,
        stdin: bytes | BinaryIO | None = None,
        stdout: Sink | None = None,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        secret: bool = False,
        cancel: threading.Event | None = None,
    ) -> CommandResult:
        """Run ``command`` on the host and return its result; see the module docstring."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection (idempotent)."""

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
