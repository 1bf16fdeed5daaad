"""What an action is: a parameter model that validates, documents and plans, and a ``run``.

Adding an action is adding one module ``maintkit/actions/NAME.py`` that defines a subclass of
:class:`Action` with ``name = "NAME"``. The registry finds it by that module name, so nothing else
changes. Why classes with a nested ``Params`` model: the model is the single declaration of the
parameters: validation before the run, ``maintkit actions NAME``, and ``--check`` all read it.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict

from maintkit.transport.base import linked_cancel

if TYPE_CHECKING:
    from maintkit.jobs.restore.source import RestoreSource
    from maintkit.model.hosts import Host
    from maintkit.model.results import ActionResult
    from maintkit.secrets import Redactor
    from maintkit.transport.base import CommandResult, Sink, Transport


ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _env_names(env: dict[str, str]) -> dict[str, str]:
    """Refuse environment variable names that are not shell identifiers.

    Why: names go into ``export NAME=value`` as they are (only values can be quoted), so a name
    such as ``A=1; touch X; B``, written or handed over by a template, would be shell code.
    """
    bad = [name for name in env if not ENV_NAME.fullmatch(name)]
    if bad:
        raise ValueError(
            f"environment variable name {bad[0]!r} must be letters, digits and _ (no digit first)"
        )
    return env


#: ``env:`` parameters of actions: names checked (after rendering too), values quoted by the transport
EnvVars = Annotated[dict[str, str], AfterValidator(_env_names)]


class ActionParams(BaseModel):
    """Base of every action's parameter model: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class StepContext:
    """Everything an action may use while it runs on one host."""

    host: Host
    transport: Transport
    vars: Mapping[str, Any]
    redactor: Redactor
    run_id: str
    timeout: float | None = None
    cancel: threading.Event | None = None
    check: bool = False
    #: emit(event_name, **fields): progress and facts for the console and the journal
    emit: Callable[..., None] = lambda *a, **k: None
    commands: list[str] = field(default_factory=list)
    #: the source environment ``maintkit restore --into`` / ``drill`` built (restore, drill_cleanup)
    restore_source: RestoreSource | None = None

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
        """Run a command on this host with the step's timeout and cancel event, recording it.

        ``cancel``, when given, stops the command too (a job running two at once stops one when the
        other fails); the step's own cancel event still applies."""

        self.commands.append(command)
        secret = self.redactor.contains_secret(command) or any(
            self.redactor.contains_secret(str(v)) for v in (env or {}).values()
        )
        self.emit("command", command=command)
        return self.transport.run(
            command,
            stdin=stdin,
            stdout=stdout,
            env=env,
            timeout=timeout if timeout is not None else self.timeout,
            secret=secret,
            cancel=linked_cancel(self.cancel, cancel),
        )


class Action:
    """Base class of actions. Subclasses set ``name``, ``summary``, ``Params`` and implement ``run``."""

    name: ClassVar[str]
    summary: ClassVar[str]
    Params: ClassVar[type[ActionParams]]
    #: a step may give a plain string instead of a mapping; it becomes this parameter (``shell: "ls"``)
    shorthand: ClassVar[str | None] = None
    #: True for actions that run on the control node only (http): --check opens no connection either way
    local_only: ClassVar[bool] = False
    #: True when running the action twice does no more than running it once (it only reads, or its
    #: second run replaces the first's effect). Only such actions are retried, whatever the step's
    #: ``retries``, when the connection dies while their command runs and a new connection cannot
    #: prove the command was stopped before it finished (docs/design.md, "The run").
    idempotent: ClassVar[bool] = False

    def changes_production(self, params: Mapping[str, Any]) -> bool:
        """True when a step with these parameters (as written, before rendering) updates or promotes
        what a site runs: such steps are refused during a freeze window (docs/reports.md).

        Why on the action and from its written parameters: the rule follows what a step does, not
        the playbook's name, and it is decided before anything runs. A parameter that is a template
        (unknown until the run) counts as changing: a freeze errs on the safe side. Rollbacks,
        backups, verifies and drills never change what runs, so the default is False.
        """
        return False

    def normalize(self, raw: Any) -> Any:
        """Turn the step's raw value into a parameter mapping (handles the shorthand)."""
        if self.shorthand and not isinstance(raw, Mapping):
            return {self.shorthand: raw}
        return raw if raw is not None else {}

    def plan(self, params: Any, ctx: StepContext) -> list[str]:
        """Return the commands (or a description of the effects) this step would have, for --check."""
        return [f"{self.name}: {params.model_dump(exclude_defaults=True)}"]

    def run(self, params: Any, ctx: StepContext) -> ActionResult:
        raise NotImplementedError


def written_in(params: Mapping[str, Any], key: str, values: tuple[str, ...]) -> bool:
    """Whether ``params[key]`` as written is one of ``values``, or a template (unknown until the run).

    The helper of :meth:`Action.changes_production`: a freeze refuses what it cannot rule out.
    """
    from maintkit.text.templating import has_template

    value = params.get(key)
    return has_template(value) or value in values


_cache: dict[str, Action] = {}
_cache_lock = threading.Lock()


def available_actions() -> list[str]:
    """Names of every action module shipped in ``maintkit.actions``."""
    import maintkit.actions as package

    return sorted(
        m.name
        for m in pkgutil.iter_modules(package.__path__)
        if not m.name.startswith("_") and m.name != "base"
    )


def get_action(name: str) -> Action | None:
    """Return the action registered under ``name`` (imported on first use), or None."""
    with _cache_lock:
        if name in _cache:
            return _cache[name]
        if name not in available_actions():
            return None
        module = importlib.import_module(f"maintkit.actions.{name}")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Action) and getattr(value, "name", None) == name:
                _cache[name] = value()
                return _cache[name]
        raise RuntimeError(f"module maintkit.actions.{name} defines no Action named {name!r}")
