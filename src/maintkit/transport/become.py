"""Ansible's become with sudo: every command of a host run as another user through ``sudo -u USER``.

Why a wrapper around any transport and not a flag of the SSH one: the engine, the lock, the
snapshot and the restore run commands only through ``Transport.run``; wrapping that one call makes
all of them act as the become user, with no second code path to forget.

How the password travels: ``sudo -S -p ''`` reads it as the first line of the command's stdin,
then hands the rest of stdin (a dump, a restore stream) to the command. It is never in a command
line (``ps`` on the host shows ``sudo -S -k -p '' -H -u USER -- bash -c …``), never in the journal
(it is a secret of the run). ``-k`` makes sudo ask for it on every command, so whether sudo reads
that line never depends on a cached timestamp: it does unless the sudoers rule says NOPASSWD, which
:meth:`BecomeTransport.connect` finds out once (``sudo -n -k … true``), and then no password line is
sent at all (it would otherwise reach the command's stdin).
"""

from __future__ import annotations

import shlex
import threading
from collections.abc import Mapping
from typing import Any, BinaryIO

from maintkit.model.problems import TransportError
from maintkit.transport.base import CommandResult, Sink, Transport, with_env


class _Prefixed:
    """A reader: ``prefix`` first, then everything ``reader`` yields (sudo's password, then the data)."""

    def __init__(self, prefix: bytes, reader: BinaryIO) -> None:
        self.prefix, self.reader = prefix, reader

    def read(self, n: int = -1, /) -> bytes:
        if self.prefix:
            out, self.prefix = self.prefix, b""
            return out
        return self.reader.read(n)


def become_command(command: str, user: str, *, password: bool) -> str:
    """``command`` run by bash as ``user`` through sudo (reading a password line first when asked)."""
    ask = "-S -k -p ''" if password else "-n"
    return f"sudo {ask} -H -u {shlex.quote(user)} -- bash -c {shlex.quote(command)}"


class BecomeTransport(Transport):
    """Run every command of ``inner`` as ``user`` through sudo; anything else is ``inner``'s."""

    def __init__(self, inner: Transport, user: str, password: str | None) -> None:
        self.inner, self.user, self._password = inner, user, password
        self.name = inner.name
        self._needs_password: bool | None = None  # known after connect()
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:  # the inner transport's extras (label, connection...)
        return getattr(self.inner, name)

    def connect(self) -> None:
        self.inner.connect()
        with self._lock:
            if self._needs_password is None:
                self._needs_password = self._probe()

    def _probe(self) -> bool:
        """Whether sudo wants the password for ``user`` here; refuse (TransportError) when it cannot work."""
        quiet = self.inner.run(f"sudo -n -k -H -u {shlex.quote(self.user)} -- true", timeout=60)
        if quiet.rc == 0:
            return False  # NOPASSWD
        if quiet.rc == 127 or "sudo: not found" in quiet.stderr or "command not found" in quiet.stderr:
            raise TransportError(f"{self.name}: become needs sudo, which is not installed on the host")
        if self._password is None:
            raise TransportError(
                f"{self.name}: sudo asks for a password to become {self.user}: give the inventory "
                "variable ansible_become_password (a secret, e.g. from -e @vault.yml), or a NOPASSWD "
                "sudoers rule"
            )
        tried = self.inner.run(
            become_command("true", self.user, password=True),
            stdin=self._password.encode() + b"\n",
            timeout=60,
            secret=True,
        )
        if tried.rc != 0:
            raise TransportError(
                f"{self.name}: sudo refused to run commands as {self.user} with the become password "
                f"(exit {tried.rc}): check ansible_become_password and the sudoers rule"
            )
        return True

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
        if self._needs_password is None:
            self.connect()
        ask = bool(self._needs_password)
        wrapped = become_command(with_env(command, env), self.user, password=ask)
        if ask:
            assert self._password is not None
            line = self._password.encode() + b"\n"
            if stdin is None or isinstance(stdin, bytes):
                stdin = line + (stdin or b"")
            else:
                stdin = _Prefixed(line, stdin)  # type: ignore[assignment]
        return self.inner.run(
            wrapped, stdin=stdin, stdout=stdout, timeout=timeout, secret=secret, cancel=cancel
        )

    def close(self) -> None:
        self.inner.close()
