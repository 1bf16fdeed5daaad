"""The ``maintkit ...`` commands written in a manual step, as argument lists a test can run.

Why a parser in the tests: the guarantee is that every printed command works *as printed*, so the
tests take the text the engine printed (or journalled), cut out each command and run exactly that,
instead of rebuilding the command from what they expect it to be.
"""

from __future__ import annotations

import re
import shlex

#: a command starts at the word "maintkit" and runs to a closing parenthesis, a ';' or the end
_COMMAND = re.compile(r"(?<![\w/-])maintkit\s+[^();]+")


def printed_commands(text: str) -> list[list[str]]:
    """Every ``maintkit ...`` command in ``text``, split as a shell would (without ``maintkit``)."""
    return [shlex.split(match.group(0).strip().rstrip("."))[1:] for match in _COMMAND.finditer(text)]
