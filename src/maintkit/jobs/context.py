"""What a job needs of the step that runs it, stated as protocols.

Why protocols and not ``actions.base.StepContext``: the jobs sit below the actions and must not
import them. ``StepContext`` satisfies :class:`HostContext` as it is (mypy checks it where an
action hands its context to a job); a test or a benchmark may hand in anything that does.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

if TYPE_CHECKING:
    from maintkit.secrets import Redactor
    from maintkit.transport.base import CommandResult, Sink, Transport


class HostLike(Protocol):
    """The host a job runs on, as far as a job reads it (names in messages, the guard's place)."""

    @property
    def name(self) -> str: ...

    @property
    def address(self) -> str: ...

    @property
    def port(self) -> int | None: ...

    @property
    def user(self) -> str | None: ...


class HostContext(Protocol):
    """One step on one host: its variables, secrets, run id, events, and a way to run commands."""

    @property
    def host(self) -> HostLike: ...

    @property
    def transport(self) -> Transport: ...

    @property
    def vars(self) -> Mapping[str, Any]: ...

    @property
    def redactor(self) -> Redactor: ...

    @property
    def run_id(self) -> str: ...

    @property
    def restore_source(self) -> Any:
        """The run's ``RestoreSource`` (``maintkit restore --into`` / ``maintkit drill``), or None.

        Typed ``Any`` here: the restore package imports this module, so this one cannot import it."""

    def emit(self, event: str, /, **fields: Any) -> None:
        """Progress and facts for the console and the journal."""

    def run(
        self,
        command: str,
        *,
        stdin: bytes | BinaryIO | None = None,
        stdout: Sink | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        cancel: threading.Event | None = None,
    ) -> CommandResult:
        """Run a command on the host with the step's timeout and cancel event (and ``cancel``, when
        given: set, it stops this command as the step's own does)."""
