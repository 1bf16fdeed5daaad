"""Which lock folders a run takes: one per environment and site, on every server the sites live on.

Why per environment and site, and not per server login (DESIGN.md, "lock"): several sites of one
environment often share a server and its SSH user (shared hosting, agencies), and staging and
production often share a server. A lock per server login made a run lock itself out when two of its
inventory entries reached one server under different spellings, and made ``staging`` wait for
``production``. The lock of a site instance is the folder ``LOCK_DIR/ENV/SITE`` on its server
(``lock_dir`` variable, default ``~/.maintkit/lock``; ``site`` variable, default the inventory host
name), names made safe for paths; entries with the same server, user and folder share one lock.

An older maintkit took ``LOCK_DIR`` itself as the one lock of a server user: while such a lock is
held (``LOCK_DIR/holder.json``), this version refuses with exit 4 naming it (see lock.py).
"""

from __future__ import annotations

import shlex
import sys
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from maintkit.engine.lock import LockTarget
from maintkit.model.hosts import Host
from maintkit.model.problems import MaintkitError, Problem
from maintkit.secrets import Redactor
from maintkit.storage.sites import site_name
from maintkit.text.templating import render
from maintkit.transport.base import Transport


def path_part(name: str) -> str:
    """``name`` as one safe path component: ``/``, spaces and other specials as ``%XX``.

    Reversible (so two names never share a folder by accident), readable for ordinary names;
    ``.`` and ``..`` are encoded too, so a name can never climb out of the lock folder.
    """
    if not name:
        raise ValueError("a lock name cannot be empty")
    quoted = urllib.parse.quote(name, safe="")
    if quoted in {".", ".."}:
        quoted = quoted.replace(".", "%2E")
    return quoted


def lock_path(base: str, env: str, site: str) -> str:
    """The lock folder of one site of one environment under ``base`` (the ``lock_dir`` variable)."""
    return f"{base.rstrip('/')}/{path_part(env)}/{path_part(site)}"


def lock_settings(variables: Mapping[str, Any], redactor: Redactor) -> tuple[str, float]:
    """A host's ``lock_dir`` (rendered, non-empty) and ``lock_ttl`` (seconds, >= 0).

    Raises ValueError with a message for the user when either is unusable.
    """
    try:
        base = render(variables["lock_dir"], variables, redactor)
        ttl = render(variables["lock_ttl"], variables, redactor)
    except MaintkitError as error:
        raise ValueError(str(error)) from error
    if not isinstance(base, str) or not base.strip():
        raise ValueError(f"lock_dir must be a folder path on the server, not {base!r}")
    if base != base.strip() or any(c in base for c in "\n\r\0"):
        raise ValueError(f"lock_dir {base!r} has leading/trailing spaces or a line break")
    try:
        seconds = float(ttl)
    except (TypeError, ValueError):
        raise ValueError(f"lock_ttl must be a number of seconds, not {ttl!r}") from None
    if isinstance(ttl, bool) or not seconds >= 0:
        raise ValueError(f"lock_ttl must be a number of seconds >= 0, not {ttl!r}")
    return base, seconds


def check_lock_settings(
    hosts_variables: Iterable[tuple[str, Mapping[str, Any]]], inventory_file: str, redactor: Redactor
) -> list[Problem]:
    """Check every selected host's ``lock_dir`` and ``lock_ttl`` before anything connects."""
    problems: list[Problem] = []
    for host, variables in hosts_variables:
        try:
            lock_settings(variables, redactor)
        except ValueError as error:
            problems.append(Problem(inventory_file, None, None, f"{host}: lock", str(error)))
    return problems


def server_key(host: Host) -> tuple[Any, ...]:
    """The server and login an inventory entry reaches, as written (local: this machine's user)."""
    if host.connection == "local":
        return ("local", host.user)
    return ("ssh", host.address or host.name, host.port, host.user)


def lock_targets(
    hosts: Sequence[Host],
    variables: Mapping[str, Mapping[str, Any]],
    env: str,
    transports: Mapping[str, Transport],
    redactor: Redactor,
) -> list[LockTarget]:
    """One target per (server, user, lock folder) among ``hosts``, in host order.

    Inventory entries that spell one server differently still make two targets for one folder;
    the lock recognises its own run there (lock.py), so a run never conflicts with itself.
    """
    targets: dict[tuple[Any, ...], LockTarget] = {}
    for host in hosts:
        host_vars = variables[host.name]
        base, ttl = lock_settings(host_vars, redactor)
        site = site_name(host_vars)
        path = lock_path(base, env, site)
        targets.setdefault(
            (*server_key(host), path),
            LockTarget(
                host.name,
                transports[host.name],
                path,
                ttl,
                scope=f"environment {env!r}, site {site!r}",
                legacy_dir=base,
            ),
        )
    return list(targets.values())


def break_lock_command(argv: Sequence[str] | None) -> str | None:
    """The command line that repeats this run with ``--break-lock``, quoted to work as printed.

    ``python -m maintkit`` is printed with this interpreter's path; secret values given with
    ``--var`` are masked in what is printed, as everywhere. None when the command line is unknown.
    """
    if not argv:
        return None
    program = [sys.executable, "-m", "maintkit"] if Path(argv[0]).name == "__main__.py" else [argv[0]]
    args = list(argv[1:])
    if "--break-lock" not in args:
        args.append("--break-lock")
    return shlex.join(program + args)
