"""What a run needs, validated: the engine's input, built by ``config.validate.load_run``.

Why the engine declares it: the engine sits below ``config`` and must not import it; ``config``
builds this record for the engine, as the CLI hands it over.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from maintkit.model.hosts import Host, Inventory
from maintkit.model.playbooks import Playbook
from maintkit.model.problems import Position, Problem
from maintkit.secrets import Redactor
from maintkit.text.templating import HostVars


@dataclass
class RunConfig:
    """A run's validated inputs: what the engine needs, and nothing left to check."""

    playbook: Playbook
    inventory: Inventory
    hosts: list[Host]  # selected by ``hosts:`` and ``--limit``, in inventory order
    extra_vars: dict[str, Any]
    variables: dict[str, HostVars]  # host name -> its variables (registers not included)
    redactor: Redactor  # holds every secret known before the run
    warnings: list[Problem] = field(default_factory=list)
    # host name -> variable -> where its winning value was written (inventory, playbook, vars file,
    # or COMMAND_LINE for --var): problems found in a value point there
    origins: dict[str, dict[str, Position]] = field(default_factory=dict)
