"""The rich Console every command prints with: never wrapped or cut when stdout is not a terminal.

Why: cron mail, ``| less``, ``> file`` and ``| grep`` are read by people and scripts alike, and rich
assumes 80 columns when it has no terminal to ask: validation messages broke mid-word and
``snapshots list`` cut its columns to ``t…``. In a pipe or a file a line is as long as its text.
"""

from __future__ import annotations

import sys

from rich.console import Console

#: the width rich lays tables out in when there is no terminal: wide enough for any real row, so
#: columns take their natural width (tables do not expand to fill it)
PIPE_WIDTH = 100_000


def is_terminal(stderr: bool = False) -> bool:
    stream = sys.stderr if stderr else sys.stdout
    try:
        return stream.isatty()
    except (ValueError, AttributeError):  # closed or replaced stream
        return False


def make_console(*, stderr: bool = False) -> Console:
    """A Console for stdout (or stderr): the terminal's width in a terminal, else no wrapping at all."""
    if is_terminal(stderr):
        return Console(stderr=stderr, highlight=False, emoji=False)
    return Console(stderr=stderr, highlight=False, emoji=False, soft_wrap=True, width=PIPE_WIDTH)
