"""Which site a host is and where its snapshots live: the bridge from host variables to storage.

Why one place: the ``snapshot``, ``verify`` and ``prune`` actions and the ``maintkit snapshots``
commands must agree on a site's name and targets, or one would write where another never looks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maintkit.model.problems import InvalidInput, Position, Problem, StepFailed
from maintkit.secrets import Redactor
from maintkit.storage.base import Target, check_segment
from maintkit.storage.config import (
    ENGINE_INSTALL_SETTING,
    encryption_from_vars,
    engine_install_from_vars,
    files_engine_from_vars,
    retention_from_vars,
    targets_from_vars,
)
from maintkit.storage.retention import RetentionPolicy
from maintkit.text.templating import has_template, render, sole_variable
from maintkit.text.yamlload import locate

if TYPE_CHECKING:
    from maintkit.storage.encryption import EncryptionSettings


def site_name(variables: Mapping[str, Any]) -> str:
    """The site a host is an instance of: the ``site`` variable, else the inventory host name."""
    return str(_value(variables, "site") or variables["inventory_hostname"])


def site_targets(
    variables: Mapping[str, Any], names: list[str] | None = None, redactor: Redactor | None = None
) -> list[Target]:
    """The storage targets of a host (``storage`` variable; the local default when absent).

    ``names`` picks some of them; an unknown name is an error that lists the known ones.
    """
    base = Path(str(variables.get("inventory_dir") or "."))
    targets = targets_from_vars(_value(variables, "storage", redactor), base)
    if names is None:
        return targets
    known = {t.name: t for t in targets}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise StepFailed(f"unknown storage target(s) {', '.join(unknown)}; this host has: {', '.join(known)}")
    return [known[n] for n in names]


def site_retention(variables: Mapping[str, Any], redactor: Redactor | None = None) -> RetentionPolicy:
    """The host's retention policy (``retention`` variable; keep everything when absent)."""
    return retention_from_vars(_value(variables, "retention", redactor))


def site_encryption(
    variables: Mapping[str, Any], redactor: Redactor | None = None
) -> EncryptionSettings | None:
    """The host's age encryption (``encryption`` variable), or None: snapshots are not encrypted.

    Recipients are needed to take snapshots; ``identity_file`` (relative to the inventory's folder)
    only to verify and restore them.
    """
    base = Path(str(variables.get("inventory_dir") or "."))
    return encryption_from_vars(_value(variables, "encryption", redactor), base)


def site_files_engine(variables: Mapping[str, Any], redactor: Redactor | None = None) -> str:
    """How the host's files are kept (``files_engine``: ``tar`` by default, or ``restic``).

    Checked against the host's targets: restic beside an Object Lock target is refused.
    """
    targets = site_targets(variables, None, redactor)
    return files_engine_from_vars(_value(variables, "files_engine", redactor), targets)


def engine_install(variables: Mapping[str, Any], redactor: Redactor | None = None) -> str:
    """How a host without restic gets one: ``files_engine_install`` (ship, package, never; default ship)."""
    return engine_install_from_vars(_value(variables, ENGINE_INSTALL_SETTING, redactor))


def check_sites(
    hosts_variables: Iterable[Mapping[str, Any]],
    inventory_file: str,
    redactor: Redactor,
    origins: Mapping[str, Mapping[str, Position]] | None = None,
) -> list[Problem]:
    """Check every host's storage, retention, encryption, files_engine, files_engine_install settings.

    Why here and not when a snapshot starts: a typo in a bucket option must stop the run before any
    command reaches a host, like every other invalid input. ``origins`` (host -> variable -> where
    its value was written) names the file the value came from (an inventory, a ``group_vars/``
    file, the playbook, ``--var``); without it problems name ``inventory_file``.
    """
    problems: list[Problem] = []
    for variables in hosts_variables:
        where = (origins or {}).get(str(variables.get("inventory_hostname")), {})
        for check in (
            _check_site_name, site_targets, site_retention, site_encryption, site_files_engine, engine_install
        ):
            try:
                check(variables, redactor=redactor)
            except InvalidInput as error:
                problems += [
                    _in_file(p, inventory_file, variables, where) for p in error.problems if p not in problems
                ]
    return list(dict.fromkeys(problems))


def _check_site_name(variables: Mapping[str, Any], redactor: Redactor | None = None) -> None:
    """Refuse a ``site`` that cannot be one folder of the snapshot layout (``../../x``, ``a/b``, empty).

    Why before the run: the site names a folder in every target; ``..`` would write beside other
    sites' snapshots, and a run must not find that out after connecting.
    """
    try:
        if "site" in variables:
            value = _value(variables, "site", redactor)
            if not value or isinstance(value, bool) or not isinstance(value, str | int):
                raise ValueError("not a name")  # not a silent fall-back to the host's name
        check_segment(site_name(variables), "site")
    except ValueError:
        value = variables.get("site")
        line, column = locate(value, ()) if value is not None else (None, None)
        message = "'site' must be one folder name: not empty, no '/', not '.' or '..'"
        raise InvalidInput([Problem("inventory", line, column, "site", message)]) from None


def _in_file(
    problem: Problem, inventory_file: str, variables: Mapping[str, Any], origins: Mapping[str, Position]
) -> Problem:
    """Locate a problem of a storage setting in the file its value was written in.

    ``retention: "{{ policy }}"`` hands ``policy``'s value over whole: the problem is where
    ``policy`` was written.
    """
    if problem.file != "inventory":
        return problem
    name = re.split(r"[.\[]", problem.path, maxsplit=1)[0]
    seen = {name}
    while isinstance(written := variables.get(name), str) and (inner := sole_variable(written)):
        if inner in seen or inner not in variables:
            break
        name = inner
        seen.add(name)
    origin = origins.get(name)
    if origin is None:
        return replace(problem, file=inventory_file)
    if problem.line is None:  # a templated value: rendered, it lost its positions
        return replace(problem, file=origin.file, line=origin.line, column=origin.column)
    return replace(problem, file=origin.file)


def _value(variables: Mapping[str, Any], name: str, redactor: Redactor | None = None) -> Any:
    """The variable's value, rendered if it holds templates (as written otherwise: positions kept)."""
    value = variables.get(name)
    if value is None or not has_template(value):
        return value
    return render(value, variables, redactor or Redactor())
