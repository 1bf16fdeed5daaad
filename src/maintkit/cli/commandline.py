"""The command line a user typed, rebuilt with some values changed: commands maintkit prints to run next.

Why rebuilt from click's parameters and not edited from ``sys.argv``: the printed command must work
as printed (docs/design.md), so every option the user gave is kept with its value, the changed ones
are replaced wherever and however they were spelled (``--target x``, ``--target=x``, a positional
SNAPSHOT or none), and every word is shell-quoted.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

import click
from click.core import ParameterSource


def command_line(changes: Mapping[str, Any], program: str = "maintkit") -> str:
    """The current command as the user gave it, with the parameters in ``changes`` set (by their
    Python names, e.g. ``{"snapshot": ID, "target": "local"}``), shell-quoted."""
    ctx = click.get_current_context()
    names: list[str] = []
    level = ctx
    while level.parent is not None:  # the subcommands' names; the root's is how it was started
        names.insert(0, level.info_name or "")
        level = level.parent
    words = [program, *names]
    for param in ctx.command.params:
        name = param.name or ""
        given = ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE
        if name not in changes and not given:
            continue
        value = changes.get(name, ctx.params.get(name))
        words += _words(param, value)
    return shlex.join(words)


def _words(param: click.Parameter, value: Any) -> list[str]:
    """How ``value`` of ``param`` is spelled on a command line (nothing when it is unset)."""
    if value is None:
        return []
    if isinstance(param, click.Argument):
        values = value if isinstance(value, tuple | list) else [value]
        return [str(v) for v in values]
    assert isinstance(param, click.Option)
    flag = next((o for o in param.opts if o.startswith("--")), param.opts[0])
    if param.count:
        return [flag] * int(value)
    if param.is_flag:
        return [flag] if value else []
    if param.multiple:
        return [word for item in value for word in (flag, str(item))]
    return [flag, str(value)]
