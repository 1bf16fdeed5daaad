"""Small pieces shared by the command modules: value splitting, reporting invalid input."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

EXIT_INVALID = 2


def split_values(values: tuple[str, ...]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def fail_invalid(error: Any, redact: Any = None) -> NoReturn:
    """Print every problem of an InvalidInput, then exit 2: nothing ran."""
    from rich.console import Console
    from rich.markup import escape

    console = Console(stderr=True, highlight=False)
    for problem in error.problems:
        text = str(problem)
        console.print(f"[red]error:[/] {escape(redact(text) if redact else text)}")
    count = len(error.problems)
    console.print(f"[red]{count} problem{'s' if count != 1 else ''} found; nothing ran.[/]")
    sys.exit(EXIT_INVALID)


def with_options(options: list[Any]) -> Any:
    """Apply a shared list of click options to a command, in the order listed."""

    def decorate(function: Any) -> Any:
        for option in reversed(options):
            function = option(function)
        return function

    return decorate
