"""Small pieces shared by the command modules: value splitting, loading a run, reporting invalid input."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn

import click

EXIT_INVALID = 2


def split_values(values: tuple[str, ...]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def fail_invalid(error: Any, redact: Any = None) -> NoReturn:
    """Print every problem of an InvalidInput, then exit 2: nothing ran."""
    from rich.console import Console
    from rich.markup import escape

    console = Console(stderr=True, highlight=False, emoji=False)  # "pb.yml:100:3" is no :100: emoji
    for problem in error.problems:
        text = str(problem)
        console.print(f"[red]error:[/] {escape(redact(text) if redact else text)}", soft_wrap=True)
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


def load_config(
    playbook: str,
    env: str | None,
    inventory: str | None,
    limit: tuple[str, ...],
    var: tuple[str, ...],
    vars_file: tuple[str, ...],
    run_id: str,
    *,
    check: bool = False,
    extra: dict[str, Any] | None = None,
) -> Any:
    """Validate a run: playbook, inventory, variables and storage sites; exit 2 on problems.

    ``extra`` goes in as a generated vars file, last of the ``--vars-file`` ones (below ``--var``).
    Values of secret-looking ``--var`` names are masked in the messages.
    """
    from maintkit.config.validate import load_run
    from maintkit.engine.lockplan import check_lock_settings
    from maintkit.model.problems import InvalidInput
    from maintkit.secrets import Redactor
    from maintkit.storage.sites import check_sites

    if not env and not inventory:
        raise click.UsageError("give --env ENV (reads inventories/ENV.yml) or -i INVENTORY")
    with tempfile.TemporaryDirectory(prefix="maintkit-vars-") as folder:
        files = list(vars_file)
        if extra is not None:
            generated = Path(folder) / "generated-vars.json"
            generated.write_text(json.dumps(extra))
            files.append(str(generated))
        try:
            config = load_run(
                playbook,
                env,
                inventory,
                split_values(limit) or None,
                list(var),
                files,
                Path.cwd(),
                run_id=run_id,
                check=check,
            )
            problems = check_sites(
                config.variables.values(), config.inventory.path, config.redactor, config.origins
            )
            problems += check_lock_settings(config.variables.items(), config.inventory.path, config.redactor)
            if problems:
                raise InvalidInput(problems)
            return config
        except InvalidInput as error:
            redactor = Redactor()
            redactor.add(list(_env_values_in(var)))
            fail_invalid(error, redactor)


def _env_values_in(pairs: tuple[str, ...]) -> list[str]:
    """Values given on the command line for secret-looking names, to mask them in error messages."""
    from maintkit.secrets import is_secret_name

    return [p.split("=", 1)[1] for p in pairs if "=" in p and is_secret_name(p.split("=", 1)[0])]
