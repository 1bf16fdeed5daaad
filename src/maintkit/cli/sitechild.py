"""A site's ``maintkit run`` started from the fleet's fork server instead of a fresh interpreter.

Why: a fresh ``python -m maintkit run`` spends most of a small site's run importing (about half a
CPU-second here: paramiko, pydantic, jinja2, boto3…), and a fleet of hundreds of small sites would
spend most of its time there. multiprocessing's ``forkserver`` is a single-threaded process that
imported all that once (this module's imports); each site is a fork of it: the same isolation as
a process of its own (own memory, killable by PID, its own session), without the imports, and the
imported pages shared copy-on-write between the sites.

The child then behaves as ``maintkit run ARGS`` would: its stdout and stderr are the pipes the fleet
reads, its working folder the project's, its ``sys.argv`` the command line, and it gets SIGTERM if the
fork server (so the fleet, or the worker) dies.
"""

from __future__ import annotations

import _strptime  # noqa: F401  (datetime.strptime's first use imports it)
import contextlib
import encodings.idna
import encodings.unicode_escape  # noqa: F401
import gc
import json
import os
import signal
import sys
import unicodedata  # noqa: F401
from importlib.resources import readers  # noqa: F401  (the shipped playbooks are read through it)
from pathlib import Path
from typing import Any

import maintkit.actions.base
import maintkit.cli
import maintkit.cli.trendnotify
import maintkit.cms.generic
import maintkit.cms.magento
import maintkit.cms.prestashop
import maintkit.cms.wordpress
import maintkit.config.freezeguard
import maintkit.config.tags
import maintkit.config.validate
import maintkit.engine.monitoring
import maintkit.engine.runner
import maintkit.history.location
import maintkit.history.plaintrends
import maintkit.history.sink  # records with the standard library's sqlite3: no SQLAlchemy here
import maintkit.jobs.snapshot
import maintkit.playbooks
import maintkit.reporting.console
import maintkit.reporting.logs
import maintkit.reporting.stdout
import maintkit.reporting.terminal
import maintkit.transport.ssh.transport  # the imports are the point: see the docstring
from maintkit.config.inventory import build_ahead, load_inventory
from maintkit.config.playbook import resolve_playbook, shipped_playbooks
from maintkit.config.validate import load_run
from maintkit.fleet.forkserver import ForkServer
from maintkit.fleet.process import arm_parent_death_signal
from maintkit.text.yamlload import parse_ahead

for _name in maintkit.actions.base.available_actions():  # every action a playbook may name
    maintkit.actions.base.get_action(_name)

#: what the fleet's sites will read: JSON ``{"cwd": …, "runs": [[playbook, env, inventory, hosts]]}``,
#: one run for each playbook and inventory the fleet's sites use
AHEAD_ENV = "MAINTKIT_FLEET_AHEAD"


def prepare(spec: str) -> None:
    """Read once, here in the fork server, what every site's run reads, and validate one site's run
    of each kind: the inventory built (:mod:`maintkit.config.ahead`), the playbook parsed, their
    templates compiled and their names found (those caches are keyed by the templates' text).
    A worker, which learns its sites' runs only later, names the project's inventories instead
    (``runs`` without hosts: nothing validated). Whatever fails is left to the sites' runs, which
    report it as always."""
    try:
        wanted = json.loads(spec)
        cwd = Path(wanted["cwd"])
        runs = [
            (str(book) if book else None, str(env), str(inventory), list(hosts))
            for book, env, inventory, hosts in wanted["runs"]
        ]
    except (ValueError, KeyError, TypeError):
        return
    for book, env, inventory, hosts in runs:
        with contextlib.suppress(Exception):
            build_ahead(env, inventory, cwd)
        books = [book] if book else [str(b) for b in wanted.get("playbooks") or []]
        for each in books:
            with contextlib.suppress(Exception):
                parse_ahead([resolve_playbook(each, cwd)])
                load_run(each, env, inventory, hosts or _first_host(env, inventory, cwd), [], [], cwd)


def _first_host(env: str, inventory: str, cwd: Path) -> list[str]:
    """One host of the inventory: validating a run of it compiles the playbook's templates."""
    return list(load_inventory(env, inventory, cwd).hosts)[:1]


def worker_spec(cwd: Path) -> str:
    """The :data:`AHEAD_ENV` value for a worker: every ``inventories/ENV.yml`` of its project,
    named as the fleet names them (``--env ENV -i inventories/ENV.yml``), and every playbook it
    may be sent (shipped, and the project's), each validated once with one host of each."""
    folder = cwd / "inventories"
    found = sorted(p for p in folder.iterdir() if p.suffix in (".yml", ".yaml")) if folder.is_dir() else []
    runs: list[list[object]] = [[None, p.stem, f"inventories/{p.name}", []] for p in found]
    books = sorted(shipped_playbooks()) + [p.stem for p in sorted((cwd / "playbooks").glob("*.y*ml"))]
    return json.dumps({"cwd": os.fspath(cwd), "runs": runs, "playbooks": books})


def fleet_spec(cwd: Path, runs: list[tuple[str, str, str, list[str]]]) -> str:
    """The :data:`AHEAD_ENV` value: one of ``runs`` (playbook, env, inventory, hosts) for each
    playbook and inventory."""
    kinds = {(book, env, inventory): hosts for book, env, inventory, hosts in reversed(runs)}
    listed = [[*kind, hosts] for kind, hosts in kinds.items()]
    return json.dumps({"cwd": os.fspath(cwd), "runs": listed})


prepare(os.environ.get(AHEAD_ENV, ""))  # in the fork server, started by the fleet with this set

gc.freeze()  # what was imported stays out of the collector's sight: a child's collections never
# write to (and so copy) the pages it shares with the fork server

#: modules the fork server imports once, before any site starts
PRELOAD = ["maintkit.cli.sitechild"]


def fork_server() -> ForkServer:
    """The fleet's fork server: sites start as forks of a process that imported this module."""
    return ForkServer(run_site, PRELOAD)


def run_site(argv: list[str], cwd: str, stdout: Any, stderr: Any) -> None:
    """In the forked child: be ``maintkit ARGV`` in ``cwd``, printing to the fleet's pipes; exit with it."""
    os.setsid()  # its own session and process group: killpg reaches the run and its commands only
    arm_parent_death_signal()
    if os.getppid() == 1:  # the fork server died before the signal was armed
        os._exit(128 + signal.SIGTERM)
    _let_the_fork_server_go()
    os.dup2(stdout.fileno(), 1)
    os.dup2(stderr.fileno(), 2)
    stdout.close()
    stderr.close()
    os.chdir(cwd)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)  # the run installs its own; until then, default
    sys.argv = ["maintkit", *argv]
    maintkit.cli.main()


def _let_the_fork_server_go() -> None:
    """Close this child's copy of the fleet's "alive" pipe, so the fork server ends with the fleet.

    multiprocessing hands every forked child a copy of the write end the fork server watches for
    EOF; while any site held it, a killed worker's fork server (and so its sites, whose parent it is)
    would live on and finish runs that Celery hands to another worker. With it closed, the fork
    server sees EOF when the fleet or worker dies, exits, and each site gets its parent-death SIGTERM.
    (``_forkserver_alive_fd`` is private to multiprocessing: read defensively.)
    """
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    alive = getattr(server, "_forkserver_alive_fd", None)
    if isinstance(alive, int):
        with contextlib.suppress(OSError):
            os.close(alive)
        server._forkserver_alive_fd = None  # type: ignore[union-attr]
