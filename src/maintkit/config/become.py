"""Ansible's become with sudo: the password a host's ``become`` needs, rendered before anything runs.

Why here and not in the inventory loader: the password is a secret, so it is a *variable*
(``ansible_become_password`` or ``ansible_become_pass``, ``become_password``, ``become_pass``) that
may be a template (``{{ lookup('env', 'BECOME_PASS') }}``) or come from ``-e @vault.yml``, which only
the run's variables know. It is rendered once per host, recorded as a secret (masked everywhere),
and handed to the transport on the Host, which sends it to sudo on stdin: never in a command line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from maintkit.config.inventory import BECOME_PASSWORD_VARS
from maintkit.model.hosts import Host
from maintkit.model.playbooks import Playbook
from maintkit.model.problems import MaintkitError
from maintkit.secrets import Redactor
from maintkit.text.templating import render


def apply_play_become(host: Host, playbook: Playbook) -> None:
    """The play's ``become``/``become_user`` for a host whose inventory says neither.

    Why the inventory wins: as in Ansible, a connection variable (``ansible_become``) of a host is
    stronger than a play keyword; a play keyword is the default for the hosts that set nothing.
    """
    if playbook.become is not None and not any(n in host.vars for n in ("become", "ansible_become")):
        host.become = playbook.become
    if playbook.become_user and not any(n in host.vars for n in ("become_user", "ansible_become_user")):
        host.become_user = playbook.become_user


def resolve_become(host: Host, variables: Mapping[str, Any], redactor: Redactor) -> str | None:
    """Set ``host.become_password`` from its variables; return what is wrong, or None.

    Without become the password is not read (an inventory may set it for all hosts).
    """
    if not host.become:
        return None
    name = next((n for n in BECOME_PASSWORD_VARS if variables.get(n) is not None), None)
    if name is None:
        return None  # no password: sudo must not ask for one (NOPASSWD), checked when connecting
    try:
        value = render(variables[name], variables, redactor)
    except MaintkitError as error:
        return f"'{name}' cannot be rendered: {error}"
    if not isinstance(value, str | int) or isinstance(value, bool) or str(value) == "":
        return f"'{name}' must be a non-empty string"
    if "\n" in str(value):
        return f"'{name}' may not contain a newline (sudo reads one line)"
    host.become_password = str(value)
    redactor.add([host.become_password])
    return None
