"""``-e/--extra-vars`` as ``ansible-playbook`` reads it: ``K=V ...``, ``@FILE``, or inline JSON/YAML.

Why a module of its own: an Ansible user types ``-e release=2.4.7`` by habit. When ``-e`` was
``--env`` that named an environment "release=2.4.7" (its storage keys, its lock); now it is read
as Ansible reads it, in the three forms, each ``-e`` applied in the order given (the last wins).
A malformed value is reported by its number, never by its text: it may hold a secret.
"""

from __future__ import annotations

import shlex
from typing import Any

import yaml

from maintkit.config.variables import COMMAND_LINE, HIDDEN, parse_extra_vars
from maintkit.model.problems import InvalidInput, Position, Problem
from maintkit.text.yamlload import type_name

OPTION = "-e/--extra-vars"


def parse_extra_args(args: list[str], origins: dict[str, Position] | None = None) -> dict[str, Any]:
    """Given the ``-e`` values in command-line order, return the variables they set.

    ``@FILE`` reads a YAML (or JSON) mapping; a value starting with ``{`` is an inline JSON/YAML
    mapping whose values keep their types; anything else is ``K=V`` pairs split as a shell would
    (``-e 'a=1 b="two words"'``), whose values stay strings, as in Ansible. Raise InvalidInput with
    every bad value. ``origins`` receives where each winning value was written.
    """
    origins = origins if origins is not None else {}
    problems: list[Problem] = []
    result: dict[str, Any] = {}
    for number, arg in enumerate(args, 1):
        try:
            result.update(_one(number, arg, origins))
        except InvalidInput as error:
            problems.extend(error.problems)
    if problems:
        raise InvalidInput(problems)
    return result


def _one(number: int, arg: str, origins: dict[str, Position]) -> dict[str, Any]:
    text = arg.strip()
    if text.startswith("@"):
        return parse_extra_vars([], [text[1:]], origins)
    if text.startswith("{"):
        return _inline(number, text, origins)
    try:
        pairs = shlex.split(text)
    except ValueError:
        raise InvalidInput([_problem(number, f"unbalanced quotes; {HIDDEN}")]) from None
    if not pairs:
        raise InvalidInput([_problem(number, "is empty: give K=V, @FILE or a JSON mapping")])
    try:
        return parse_extra_vars(pairs, [], origins)
    except InvalidInput:
        raise InvalidInput(
            [_problem(number, f"is not K=V (nor @FILE, nor a JSON mapping {{...}}); {HIDDEN}")]
        ) from None


def _inline(number: int, text: str, origins: dict[str, Position]) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        raise InvalidInput([_problem(number, f"is not valid JSON or YAML; {HIDDEN}")]) from None
    if not isinstance(data, dict):
        raise InvalidInput([_problem(number, f"must be a mapping, not {type_name(data)}")])
    bad = [key for key in data if not isinstance(key, str) or not key.isidentifier()]
    if bad:
        raise InvalidInput([_problem(number, f"{len(bad)} key(s) are not variable names; {HIDDEN}")])
    for key in data:
        origins[key] = Position(COMMAND_LINE)
    return dict(data)


def _problem(number: int, message: str) -> Problem:
    return Problem(COMMAND_LINE, None, None, OPTION, f"number {number} {message}")


def secret_values(args: list[str]) -> list[str]:
    """Values given with ``-e`` for secret-looking names, to mask them in error messages."""
    from maintkit.secrets import is_secret_name

    values: list[str] = []
    for arg in args:
        try:
            data = parse_extra_args([arg]) if not arg.strip().startswith("@") else {}
        except InvalidInput:
            continue
        for key, value in data.items():
            if is_secret_name(key) and isinstance(value, str | int | float) and not isinstance(value, bool):
                values.append(str(value))
    return values
