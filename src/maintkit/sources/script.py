"""Turning a bash script into a command any POSIX login shell runs, and quoting host paths.

Why bash: a snapshot pipeline must fail when *any* stage fails (``set -o pipefail``,
``PIPESTATUS``), and Debian's ``/bin/sh`` (dash) has neither. The transport contract only promises
a POSIX shell, so every command built here is a small POSIX wrapper that hands a literal script to
bash. A quoted here-document carries the script verbatim (no second layer of quoting), so
``--check`` shows it as it will run.
"""

from __future__ import annotations

import shlex

DELIMITER = "MAINTKIT_BASH"


def bash_command(body: str) -> str:
    """Return a POSIX shell command that runs ``body`` with ``bash -c``.

    The script's stdin is the command's stdin (the here-document feeds only ``cat``), so bytes a
    caller sends after the command reach the script.
    """
    if f"\n{DELIMITER}\n" in f"\n{body}\n":
        raise ValueError(f"a script may not contain a line {DELIMITER!r}")
    return f"exec bash -c \"$(cat <<'{DELIMITER}'\n{body}\n{DELIMITER}\n)\""


def script_body(command: str) -> str | None:
    """The script of a command :func:`bash_command` built (what ``--check`` shows), else None."""
    head, tail = f"exec bash -c \"$(cat <<'{DELIMITER}'\n", f'\n{DELIMITER}\n)"'
    if command.startswith(head) and command.endswith(tail):
        return command[len(head) : -len(tail)]
    return None


def host_path(path: str) -> str:
    """Shell-quote a path on the host; a leading ``~/`` means the login user's home.

    ``shlex.quote`` alone would keep ``~`` literal, which is never what an inventory means.
    """
    if "\0" in path:
        raise ValueError("a path may not contain a NUL byte")
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        rest = path[2:]
        return '"$HOME"' + (f"/{shlex.quote(rest)}" if rest else "/")
    return shlex.quote(path)


def heredoc(delimiter: str, text: str) -> str:
    """Return ``<<'DELIMITER'`` followed by ``text`` and the closing line (literal, no expansion)."""
    if f"\n{delimiter}\n" in f"\n{text}\n":
        raise ValueError(f"text may not contain a line {delimiter!r}")
    return f"<<'{delimiter}'\n{text.rstrip(chr(10))}\n{delimiter}"


def parse_pairs(stdout: str) -> dict[str, str]:
    """The ``KEY=VALUE`` lines of a command's output as a mapping (other lines are ignored)."""
    out: dict[str, str] = {}
    for line in stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.isidentifier():
            out[key] = value
    return out
