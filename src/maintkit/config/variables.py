"""The variables a host's templates see, and where each comes from.

Precedence, lowest first: maintkit's ``DEFAULTS`` < inventory group vars < inventory host vars
(those two already merged in ``Host.vars``) < playbook ``vars`` < extra vars (``--vars-file``, then
``-e/--extra-vars`` in order, then ``--var``). The builtin names (``inventory_hostname``,
``run_id``...) are set by maintkit last and cannot be overridden: a template that reads ``run_id``
must get the run's id.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Set
from pathlib import Path
from typing import Any, Protocol

from maintkit.config.freeze import freeze_problem
from maintkit.model.hosts import Host, Inventory
from maintkit.model.playbooks import Playbook
from maintkit.model.problems import InvalidInput, Position, Problem
from maintkit.secrets import MIN_SECRET_LENGTH, Redactor, is_secret_name
from maintkit.text.templating import GLOBAL_NAMES, HostVars, has_template
from maintkit.text.yamlload import load_yaml, locate, problem_at, type_name

#: names maintkit defines for every host; templates may use them, playbooks may not redefine them
BUILTIN_NAMES = frozenset(
    {
        "inventory_hostname",
        "group_names",
        "groups",
        "maintkit_env",
        "run_id",
        "playbook_name",
        "playbook_dir",
        "inventory_dir",
        "check_mode",
        "secret_vars",
    }
    | GLOBAL_NAMES  # lookup, range, dict, lipsum, cycler, joiner, namespace
)

#: shipped defaults, the lowest precedence of all
DEFAULTS: dict[str, Any] = {
    "lock_dir": "~/.maintkit/lock",
    "lock_ttl": 21600,
}


def _lock_dir_problem(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        shown = "an empty string" if value == "" else type_name(value)
        return f"'lock_dir' must be a non-empty path, not {shown}"
    return None


def _lock_ttl_problem(value: Any) -> str | None:
    """``lock_ttl`` is seconds; a ``--var`` gives it as a string, so numeric strings count."""
    try:
        seconds = float(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        seconds = None
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        return f"'lock_ttl' must be a number of seconds greater than 0, not {type_name(value)}"
    return None


#: the built-in settings (``DEFAULTS``) and what checks each value, after rendering, before any
#: connection: a run must not open connections and then die on ``lock_ttl: abc``
SETTINGS: dict[str, Callable[[Any], str | None]] = {
    "lock_dir": _lock_dir_problem,
    "lock_ttl": _lock_ttl_problem,
    "freeze": freeze_problem,
}

COMMAND_LINE = "command line"
HIDDEN = "its text is not shown (it may hold a secret)"
IMPLICIT_GROUPS = ("all", "ungrouped")


def host_variables(
    host: Host,
    inventory: Inventory,
    playbook: Playbook,
    extra_vars: Mapping[str, Any],
    run_id: str,
    check: bool,
) -> HostVars:
    """Given a host and the run's inputs, return every variable its templates may read.

    User-written values that contain templates are listed in ``HostVars.templated`` and rendered
    when read (so ``backup_dir: "{{ site_root }}/backups"`` works in any order of definition).
    """
    run = {
        "run_id": run_id,
        "playbook_name": playbook.name,
        "playbook_dir": str(Path(playbook.path).parent),
        "check_mode": check,
        "secret_vars": sorted(secret_names(inventory, playbook)),
    }
    return _merged(host, inventory, {**playbook.vars, **extra_vars}, run)


def host_vars(inventory: Inventory, host: Host, extra: Mapping[str, Any] | None = None) -> HostVars:
    """A host's variables outside a run (``snapshots``, ``releases``, a restore source): no playbook.

    Why apart from :func:`host_variables`: these commands read the inventory's settings (storage,
    retention, site, release root) and run no playbook, so none is invented for them; ``extra``
    ranks above the inventory, as ``--var`` does in a run.
    """
    run = {"check_mode": False, "secret_vars": sorted(inventory.secret_vars)}
    return _merged(host, inventory, dict(extra or {}), run)


def _merged(host: Host, inventory: Inventory, above: Mapping[str, Any], run: Mapping[str, Any]) -> HostVars:
    """Defaults, then the host's inventory variables, then ``above``; the built-in names last."""
    merged: dict[str, Any] = {**DEFAULTS, **host.vars, **above}
    templated = {name for name, value in merged.items() if has_template(value)}
    builtins = {
        "inventory_hostname": host.name,
        "group_names": sorted(g for g in host.groups if g not in IMPLICIT_GROUPS),
        "groups": {name: list(members) for name, members in inventory.groups.items()},
        "maintkit_env": inventory.name,
        "inventory_dir": str(Path(inventory.path).parent),
        **run,
    }
    merged.update(builtins)
    return HostVars(merged, templated=templated - set(builtins))


def secret_names(inventory: Inventory, playbook: Playbook) -> set[str]:
    """Return the variable names declared secret by the inventory or the playbook (``secret_vars``)."""
    return set(inventory.secret_vars) | set(playbook.secret_vars)


class _RunInputs(Protocol):
    """What :func:`load_secrets` reads of a ``RunConfig`` (not imported: validate imports this module)."""

    inventory: Inventory
    playbook: Playbook
    variables: Mapping[str, Mapping[str, Any]]


def load_secrets(redactor: Redactor, config: _RunInputs) -> list[str]:
    """Given a validated run, add the secret values of every selected host's variables to ``redactor``.

    Secrets met during validation (``lookup('env', ...)`` values) are copied too. Return the names of
    secrets too short to be masked.
    """
    for secret in getattr(getattr(config, "redactor", None), "secrets", ()):
        redactor.add(secret)
    declared = secret_names(config.inventory, config.playbook)
    too_short: set[str] = set()
    for variables in config.variables.values():
        too_short.update(add_secrets(variables, declared, redactor))
    return sorted(too_short)


def add_secrets(variables: Mapping[str, Any], declared: Iterable[str], redactor: Redactor) -> list[str]:
    """Add the value of every secret variable (by declaration or by name, nested too) to ``redactor``.

    Templated values are skipped: the rendered value is added when a template reads it. Return the
    names of secrets too short to be masked, so validation can warn about them.
    """
    declared = set(declared)
    too_short: list[str] = []
    templated: Set[str] = getattr(variables, "templated", set())
    for name, value in variables.items():
        if name in templated or name in BUILTIN_NAMES:
            continue
        _collect_secrets(name, value, declared, redactor, too_short)
    return too_short


def _collect_secrets(name: str, value: Any, declared: set[str], redactor: Redactor, short: list[str]) -> None:
    if is_secret_name(name, declared):
        if has_template(value):
            return
        redactor.add(value)
        scalar = isinstance(value, str | int | float) and not isinstance(value, bool)
        if scalar and 0 < len(str(value)) < MIN_SECRET_LENGTH:
            short.append(name)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            _collect_secrets(str(key), item, declared, redactor, short)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, Mapping):
                _collect_secrets(name, item, declared, redactor, short)


def parse_extra_vars(
    pairs: list[str], files: list[str], origins: dict[str, Position] | None = None
) -> dict[str, Any]:
    """Given ``--var K=V`` strings and ``--vars-file`` paths, return the extra variables.

    Files apply first, in order, then ``--var`` pairs (the last one wins). Values of ``--var`` stay
    strings, as with ``ansible-playbook -e``. Raise InvalidInput listing every bad pair and file.
    ``origins``, when given, receives where each winning value was written: the vars file's line,
    or ``COMMAND_LINE`` for a ``--var``.
    """
    origins = origins if origins is not None else {}
    problems: list[Problem] = []
    result: dict[str, Any] = {}
    for file in files:
        try:
            data = load_yaml(file)
        except InvalidInput as error:
            problems.extend(error.problems)
            continue
        if not isinstance(data, dict):
            problems.append(
                problem_at(file, data, (), f"a vars file must be a mapping, not {type_name(data)}")
            )
            continue
        for key, value in data.items():
            if not isinstance(key, str) or not key.isidentifier():
                problems.append(problem_at(file, data, (key,), f"'{key}' is not a valid variable name"))
            else:
                result[key] = value
                origins[key] = Position(file, *locate(data, (key,)))
    for number, pair in enumerate(pairs, 1):
        key, sep, value = pair.partition("=")
        key = key.strip()
        # never the text: a malformed pair may hold a secret (``api_token:xyz`` for ``api_token=xyz``)
        if not sep:
            message = f"number {number} is not KEY=VALUE (no '='); {HIDDEN}"
            problems.append(Problem(COMMAND_LINE, None, None, "--var", message))
        elif not key.isidentifier():
            message = f"number {number}: the part before '=' is not a variable name; {HIDDEN}"
            problems.append(Problem(COMMAND_LINE, None, None, "--var", message))
        else:
            result[key] = value
            origins[key] = Position(COMMAND_LINE)
    if problems:
        raise InvalidInput(problems)
    return result
