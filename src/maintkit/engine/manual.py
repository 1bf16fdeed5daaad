"""What is left to do by hand when a rollback could not finish (exit 3).

Why in the engine: exit 3 means "a human must look", and that human must not have to reverse-
engineer a journal at 3 a.m. to know the state the shop was left in. The engine knows which rollback
steps ran, which one failed and which never started; the playbook knows the procedure, written as
the ``manual_steps`` variable (a list of templates, rendered with the run's results, e.g. the
snapshot id to restore). Both are printed and journalled as one ``manual_steps`` event.
"""

from __future__ import annotations

from typing import Any

from maintkit.engine.steps import HostState, step_title
from maintkit.model.playbooks import Playbook
from maintkit.model.problems import MaintkitError
from maintkit.model.results import HostOutcome
from maintkit.text.templating import render

VARIABLE = "manual_steps"


def manual_steps(playbook: Playbook, state: HostState, outcome: HostOutcome) -> dict[str, Any]:
    """The ``manual_steps`` event's fields for a host whose rollback failed."""
    ran = [s for s in outcome.steps if s.section == "rollback"]
    failed = next((s for s in reversed(ran) if s.failed), None)
    not_run = [step_title(step, state) for step in playbook.rollback[len(ran) :]]
    return {
        "host": state.host.name,
        "failed_step": outcome.failed_step,
        "rollback_failed_step": failed.name if failed else None,
        "rollback_error": failed.result.msg if failed else None,
        "rolled_back": [s.name for s in ran if not s.failed and s.status != "skipped"],
        "not_done": ([failed.name] if failed else []) + not_run,
        "instructions": _instructions(state),
    }


def _instructions(state: HostState) -> list[str]:
    """The playbook's ``manual_steps``, each item rendered on its own (one bad item keeps the rest)."""
    raw = state.variables.get(VARIABLE)
    if raw is None:
        return []
    items = raw if isinstance(raw, list) else [raw]
    out = []
    for item in items:
        try:
            text = render(item, state.variables, state.redactor)
        except MaintkitError:
            text = f"{item} (could not be rendered)"
        if text not in (None, ""):
            out.append(str(text))
    return out
