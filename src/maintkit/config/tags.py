"""``--tags``/``--skip-tags``: which of a playbook's ``steps`` this run runs, as Ansible selects tasks.

Why only ``steps``: ``rollback`` and ``always`` undo and clean up after whatever ran; filtering them
could leave a site half-updated in maintenance, so tags there are refused at validation. A step left
out is recorded as skipped (with the reason) rather than dropped, so the journal shows it, and its
``register`` holds a skipped result as after a false ``when``. A tag no step carries is an error:
a typo in ``--tags`` would otherwise run nothing and report success.
"""

from __future__ import annotations

from maintkit.config.playbook import split_tags
from maintkit.model.playbooks import Playbook
from maintkit.model.problems import InvalidInput, Problem

#: Ansible's special tags: ``always`` runs unless skipped by name, ``never`` only when asked for,
#: ``all`` (the default of --tags) every step not tagged ``never``
SPECIAL = ("always", "never", "all")


def select_steps(playbook: Playbook, tags: list[str], skip_tags: list[str]) -> None:
    """Mark the ``steps`` this run leaves out (``Step.skip``); raise InvalidInput for unknown tags."""
    wanted, unwanted = split_tags(tags) if tags else [], split_tags(skip_tags) if skip_tags else []
    known = {tag for step in playbook.steps for tag in step.tags}
    problems = [
        Problem("command line", None, None, option, _unknown(tag, playbook.name, known))
        for option, given in (("--tags", wanted), ("--skip-tags", unwanted))
        for tag in given
        if tag not in known and tag not in SPECIAL
    ]
    if problems:
        raise InvalidInput(problems)
    for step in playbook.steps:
        step.skip = _reason(step.tags, wanted or ["all"], unwanted)


def _reason(tags: list[str], wanted: list[str], unwanted: list[str]) -> str | None:
    """Why a step with ``tags`` is left out, or None when it runs."""
    skipped = [t for t in tags if t in unwanted] + (["all"] if "all" in unwanted else [])
    if skipped:
        return f"skipped by --skip-tags {skipped[0]}"
    if "always" in tags:
        return None
    named = [t for t in tags if t in wanted and t not in SPECIAL]
    if named:
        return None
    if "never" in tags:
        return "tagged never: runs only when --tags names one of its tags"
    if "all" in wanted:
        return None
    return f"not selected by --tags {','.join(wanted)}"


def _unknown(tag: str, playbook: str, known: set[str]) -> str:
    listed = ", ".join(sorted(known)) if known else "none"
    return f"no step of playbook '{playbook}' is tagged '{tag}' (its tags: {listed})"
