"""Running one step on one host: ``when`` → render → action, with retries and a per-attempt timeout.

Retry policy (tenacity): a broken connection is always retried (``CONNECT_ATTEMPTS`` attempts at
least), because a flaky network says nothing about the step; a failing command or a timeout is
retried only when the step sets ``retries``, because re-running a command is the author's call.
The wait grows exponentially from ``retry_delay`` with jitter, so hosts retrying together spread out.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from tenacity import RetryCallState, Retrying, stop_after_attempt, wait_exponential_jitter

from maintkit.actions.base import Action, StepContext, get_action
from maintkit.model.hosts import Host
from maintkit.model.playbooks import Step
from maintkit.model.problems import CommandLost, CommandTimeout, Interrupted, MaintkitError, TransportError
from maintkit.model.results import ActionResult, StepOutcome
from maintkit.secrets import Redactor
from maintkit.text.templating import evaluate_when, render, undeclared_variables, when_template
from maintkit.transport.base import Transport

if TYPE_CHECKING:
    from maintkit.jobs.restore.source import RestoreSource

CONNECT_ATTEMPTS = 3
MAX_RETRY_WAIT = 60.0


class AttemptFailed(MaintkitError):
    """An attempt whose action reported failure; carries the result for the journal."""

    def __init__(self, result: ActionResult) -> None:
        self.result = result
        super().__init__(result.msg or f"exit status {result.rc}")


@dataclass
class HostState:
    """What one host carries from step to step: its transport and its variables (registers included)."""

    host: Host
    transport: Transport
    variables: MutableMapping[str, Any]
    redactor: Redactor
    run_id: str
    emit: Callable[..., None]
    check: bool = False
    #: every register name of the playbook: in --check their values are unknown
    registers: frozenset[str] = frozenset()
    #: register name -> the name of the step that registers it (what --check says a step depends on)
    registered_by: Mapping[str, str] = field(default_factory=dict)
    #: the source environment of ``maintkit restore --into`` / ``drill`` (None: none given)
    restore_source: RestoreSource | None = None


def _unknown_in_check(step: Step, state: HostState, error: Exception) -> str:
    """Why ``--check`` cannot plan a step: the registered results it reads, by the steps that make them.

    Why not the template error: "'dict object' has no attribute 'data'" is what a not-yet-run
    result gives, which is expected in a plan and names nothing a reader can act on.
    """
    text = f"{step.params!r} {step.when!r}"
    used = [name for name in sorted(state.registers) if re.search(rf"\b{re.escape(name)}\b", text)]
    if not used:
        return f"(cannot be planned before the run: {error})"
    steps = ", ".join(f"step '{state.registered_by.get(name, name)}' ({name})" for name in used)
    return f"(depends on the result of {steps}: known only when the run gets there)"


def step_title(step: Step, state: HostState) -> str:
    """The step's name rendered for this host (``keep {{ n }} archives``); as written if it can't be."""
    if "{" not in step.name:
        return step.name
    try:
        return str(render(step.name, state.variables, state.redactor))
    except MaintkitError:
        return step.name


def render_params(action: Action, step: Step, variables: Any, redactor: Redactor) -> Any:
    """Given a step, return its action's validated parameters, rendered for this host.

    Parameters declared ``shell`` in the action's model are rendered with every value shell-quoted.
    """
    raw = action.normalize(step.params)
    fields = action.Params.model_fields
    rendered = {}
    for key, value in raw.items():
        extra = fields[key].json_schema_extra if key in fields else None
        shell = isinstance(extra, dict) and bool(extra.get("shell"))
        rendered[key] = render(value, variables, redactor, shell=shell)
    return action.Params.model_validate(rendered)


def _describe_validation(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'parameters'}: {e['msg']}" for e in error.errors()
    )


def run_step(step: Step, section: str, state: HostState, cancel: threading.Event | None) -> StepOutcome:
    """Run one step on one host and return its outcome (never raises for a step's own failure)."""
    started = time.monotonic()
    emit = state.emit
    step = replace(step, name=step_title(step, state))
    outcome = StepOutcome(step.name, step.action, section, "ok", ActionResult())  # type: ignore[arg-type]

    def finish(status: str, result: ActionResult, attempts: int = 0, commands: list[str] | None = None):
        outcome.status = status  # type: ignore[assignment]
        outcome.result = result
        outcome.attempts = attempts
        outcome.commands = commands or []
        outcome.duration = time.monotonic() - started
        if step.register:
            state.variables[step.register] = result.as_vars()
        emit(
            "step_end",
            host=state.host.name,
            step=step.name,
            action=step.action,
            section=section,
            status=status,
            duration=round(outcome.duration, 3),
            attempts=attempts,
            rc=result.rc,
            msg=result.msg,
            stdout=result.stdout[-4096:] or None,
            stderr=result.stderr[-4096:] or None,
            data=result.data or None,
        )
        return outcome

    action = get_action(step.action)
    if action is None:  # validation makes this unreachable; keep the message clear anyway
        return finish("failed", ActionResult(failed=True, msg=f"unknown action {step.action!r}"))
    if step.skip:
        return finish("skipped", ActionResult(skipped=True, msg=step.skip))
    try:
        if _when_says_skip(step, state):
            return finish("skipped", ActionResult(skipped=True, msg="when condition is false"))
        params = render_params(action, step, state.variables, state.redactor)
    except ValidationError as error:
        return finish(
            "failed", ActionResult(failed=True, msg=f"invalid parameters: {_describe_validation(error)}")
        )
    except MaintkitError as error:
        if state.check:  # in --check, registered results are unknown: say so instead of failing
            emit(
                "plan",
                host=state.host.name,
                step=step.name,
                section=section,
                commands=[_unknown_in_check(step, state, error)],
            )
            return finish("planned", ActionResult(skipped=True, msg="check mode"))
        return finish("failed", ActionResult(failed=True, msg=str(error)))

    emit("step_start", host=state.host.name, step=step.name, action=step.action, section=section)
    if state.check:
        ctx = StepContext(
            state.host,
            state.transport,
            state.variables,
            state.redactor,
            state.run_id,
            check=True,
            restore_source=state.restore_source,
        )
        plan = action.plan(params, ctx)
        emit(
            "plan",
            host=state.host.name,
            step=step.name,
            section=section,
            commands=plan,
            when=step.when if isinstance(step.when, str) else None,
        )
        return finish("planned", ActionResult(skipped=True, msg="check mode"), commands=plan)

    commands: list[str] = []
    attempt_number = 0

    def attempt() -> ActionResult:
        nonlocal attempt_number
        attempt_number += 1
        ctx = StepContext(
            state.host,
            state.transport,
            state.variables,
            state.redactor,
            state.run_id,
            timeout=step.timeout,
            cancel=cancel,
            emit=_command_echo(emit, state.host.name, step.name),
            restore_source=state.restore_source,
        )
        try:
            result = action.run(params, ctx)
        except CommandTimeout as error:
            result = ActionResult(
                failed=True, msg=f"timed out after {step.timeout} s; the command was killed"
            )
            commands.extend(ctx.commands)
            raise AttemptFailed(result) from error
        commands.extend(ctx.commands)
        if result.failed:
            raise AttemptFailed(result)
        return result

    def should_retry(retry_state: RetryCallState) -> bool:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        if error is None or (cancel is not None and cancel.is_set()):
            return False
        number = retry_state.attempt_number
        if isinstance(error, CommandLost) and not action.idempotent:
            # Never run a command twice: retried only when a new connection stopped the first one
            # before it finished, and then only as a failed command is (the step's ``retries``).
            return error.outcome == "stopped" and number <= step.retries
        if isinstance(error, TransportError):
            return number < max(CONNECT_ATTEMPTS, step.retries + 1)
        if isinstance(error, AttemptFailed):
            return number <= step.retries
        return False

    def before_sleep(retry_state: RetryCallState) -> None:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        wait = retry_state.next_action.sleep if retry_state.next_action else 0
        emit(
            "retry",
            host=state.host.name,
            step=step.name,
            attempt=retry_state.attempt_number,
            error=str(error),
            wait=round(wait, 2),
        )

    retrying = Retrying(
        stop=stop_after_attempt(max(CONNECT_ATTEMPTS, step.retries + 1)),
        wait=wait_exponential_jitter(
            multiplier=step.retry_delay,
            max=max(MAX_RETRY_WAIT, step.retry_delay),
            jitter=step.retry_delay / 2,
        ),
        retry=should_retry,
        before_sleep=before_sleep,
        sleep=_sleeper(cancel),
        reraise=True,
    )
    try:
        result = retrying(attempt)
    except AttemptFailed as error:
        return finish("ignored" if step.ignore_errors else "failed", error.result, attempt_number, commands)
    except Interrupted:
        return finish(
            "failed",
            ActionResult(failed=True, msg="interrupted; the command was killed"),
            attempt_number,
            commands,
        )
    except MaintkitError as error:  # connection, host key, lock...: the message says which
        status = "ignored" if step.ignore_errors else "failed"
        message = str(error) + _not_retried(error, action, step)
        return finish(status, ActionResult(failed=True, msg=message), attempt_number, commands)
    except Exception as error:  # a bug in an action must fail the step, not the whole run silently
        return finish(
            "failed", ActionResult(failed=True, msg=f"internal error: {error!r}"), attempt_number, commands
        )
    return finish(
        "changed" if result.changed else ("skipped" if result.skipped else "ok"),
        result,
        attempt_number,
        commands,
    )


def _not_retried(error: MaintkitError, action: Action, step: Step) -> str:
    """Why a command whose connection died was not run again (empty when it was, or for others)."""
    if not isinstance(error, CommandLost) or action.idempotent:
        return ""
    if error.outcome != "stopped":
        return f"; not retried: '{action.name}' is not idempotent and the command may have finished"
    if step.retries == 0:
        return f"; not retried: '{action.name}' is not idempotent (set retries on the step to run it again)"
    return ""


def _sleeper(cancel: threading.Event | None) -> Callable[[float], None]:
    """Tenacity's sleep between attempts; an interrupt cuts the wait short."""

    def sleep(seconds: float) -> None:
        if cancel is None:
            time.sleep(seconds)
        else:
            cancel.wait(seconds)

    return sleep


def _when_says_skip(step: Step, state: HostState) -> bool:
    """True when the step's ``when`` is false (in --check, unless it reads registered results)."""
    if step.when is None or evaluate_when(step.when, state.variables, state.redactor):
        return False
    return not (state.check and _reads_registers(step.when, state.registers))


def _reads_registers(when: str | bool, registers: frozenset[str]) -> bool:
    """True when a ``when`` depends on registered results, which --check cannot know."""
    return isinstance(when, str) and bool(undeclared_variables(when_template(when)) & registers)


def _command_echo(emit: Callable[..., None], host: str, step: str) -> Callable[..., None]:
    def echo(event: str, **fields: Any) -> None:
        emit(event, host=host, step=step, **fields)

    return echo
