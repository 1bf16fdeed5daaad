"""A usable restic on the host before an incremental files snapshot: found, shipped, or installed.

Why this is part of the feature (issue 16): the restic engine runs *on the host* (only changed
chunks cross the link), and most shop servers have no restic, or Debian 11's 0.11 (no compression,
no repository v2). Asking every agency to provision each server first would stop the feature at
the door, so maintkit brings its own, in the order that changes the host least:

1. ``restic`` on the host's PATH, else ``~/.maintkit/bin/restic``, at 0.14 or newer: used as is.
2. ``files_engine_install: ship`` (the default): the control node's own restic is copied over the
   SSH channel (stdin of a ``cat`` into a temporary file beside the target), its SHA-256 checked on
   the host, made 0755 and renamed into ``~/.maintkit/bin/restic``. Only when it fits: the same
   machine architecture and, for a dynamically linked build such as Debian's, a host glibc at least
   as new as the newest ``GLIBC_x.y`` it needs (:mod:`.elf`). Nothing is written when it does not
   fit, and a failed or corrupted copy never replaces anything (the rename is last).
3. ``package``: the host's package manager (``apt-get`` or ``dnf``), as root or through
   ``sudo -n`` (never a password prompt: a cron run has no one to type it).
4. ``never``: an error that says what to install and which setting changes this.

:func:`plan_engine` decides without changing the host (``preflight`` reports it);
:func:`ensure_engine` carries the plan out. Both run one probe command on the host.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from maintkit.jobs.context import HostContext
from maintkit.jobs.elf import ElfError, ElfInfo, read_elf
from maintkit.model.problems import StepFailed
from maintkit.sources.script import bash_command, parse_pairs
from maintkit.storage.config import ENGINE_INSTALL_MODES as INSTALL_MODES
from maintkit.storage.config import ENGINE_INSTALL_SETTING as SETTING

#: restic 0.14: repository format 2 (compression), which the control side's repository uses
MIN_VERSION = (0, 14)
#: where a shipped restic lives on the host (the login user's, no root needed)
OWN_DIR = ".maintkit/bin"
PROBE_TIMEOUT = 60.0
SHIP_TIMEOUT = 900.0
PACKAGE_TIMEOUT = 900.0

_VERSION = re.compile(r"restic (\d+)\.(\d+)\.(\d+)")


class EngineUnavailable(StepFailed):
    """No usable restic on the host, and the install mode could not (or may not) provide one."""


@dataclass(frozen=True)
class HostFacts:
    """What the probe found on the host."""

    machine: str  # uname -m
    glibc: tuple[int, ...]  # () when the host has no glibc (musl) or getconf is missing
    home: str
    path_restic: str  # `command -v restic`, "" when none
    path_version: tuple[int, ...]  # () when it did not run
    own_restic: str  # $HOME/.maintkit/bin/restic
    own_exists: bool
    own_version: tuple[int, ...]
    own_sha256: str
    root: bool
    sudo: bool  # `sudo -n true` succeeded (probed only for the package mode)
    sudo_installed: bool
    package_manager: str  # apt-get, dnf or ""


@dataclass(frozen=True)
class LocalEngine:
    """The control node's restic, the one a ``ship`` copies."""

    path: Path
    sha256: str
    size: int
    version: tuple[int, ...]
    elf: ElfInfo


@dataclass(frozen=True)
class EnginePlan:
    """What :func:`ensure_engine` would do: ``use`` a restic already there, ``ship``, ``package``,
    or nothing (``problem`` says why)."""

    action: Literal["use", "ship", "package", "none"]
    command: str  # the restic to run on the host (for use; the target path for ship)
    detail: str  # one line for a report
    problem: str = ""


def parse_version(text: str) -> tuple[int, ...]:
    """``restic 0.14.0 compiled with go1.19.8 on linux/amd64`` -> (0, 14, 0); () when absent."""
    match = _VERSION.search(text)
    return tuple(int(p) for p in match.groups()) if match else ()


def usable(version: tuple[int, ...]) -> bool:
    return bool(version) and version[:2] >= MIN_VERSION


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(str(p) for p in version)


def probe_command(*, sudo: bool) -> str:
    """The host probe: ``KEY=VALUE`` lines (:func:`parse_facts`). Changes nothing on the host.

    ``sudo -n true`` only when ``sudo`` is asked (the package mode): every sudo attempt is logged on
    the host, and the other modes never need it.
    """
    lines = [
        'echo "machine=$(uname -m)"',
        'echo "glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null)"',
        'echo "home=$HOME"',
        "p=$(command -v restic 2>/dev/null || true)",
        'echo "path_restic=$p"',
        'if [ -n "$p" ]; then echo "path_version=$("$p" version 2>/dev/null | head -n 1)"; fi',
        f'own="$HOME/{OWN_DIR}/restic"',
        'echo "own_restic=$own"',
        'if [ -f "$own" ]; then',
        '  echo "own_exists=1"',
        '  echo "own_version=$("$own" version 2>/dev/null | head -n 1)"',
        '  echo "own_sha256=$( (sha256sum "$own" 2>/dev/null || shasum -a 256 "$own") | cut -d " " -f 1)"',
        "fi",
        'echo "uid=$(id -u)"',
        "if command -v sudo >/dev/null 2>&1; then echo sudo_installed=1; fi",
        "for m in apt-get dnf; do",
        '  if command -v "$m" >/dev/null 2>&1; then echo "package_manager=$m"; break; fi',
        "done",
    ]
    if sudo:
        lines.append("if sudo -n true >/dev/null 2>&1; then echo sudo=1; fi")
    return bash_command("\n".join(lines))


def parse_facts(stdout: str) -> HostFacts:
    pairs = parse_pairs(stdout)
    glibc = re.search(r"(\d+(?:\.\d+)+)", pairs.get("glibc", ""))
    return HostFacts(
        machine=pairs.get("machine", ""),
        glibc=tuple(int(p) for p in glibc.group(1).split(".")) if glibc else (),
        home=pairs.get("home", ""),
        path_restic=pairs.get("path_restic", ""),
        path_version=parse_version(pairs.get("path_version", "")),
        own_restic=pairs.get("own_restic", ""),
        own_exists=pairs.get("own_exists") == "1",
        own_version=parse_version(pairs.get("own_version", "")),
        own_sha256=pairs.get("own_sha256", ""),
        root=pairs.get("uid") == "0",
        sudo=pairs.get("sudo") == "1",
        sudo_installed=pairs.get("sudo_installed") == "1",
        package_manager=pairs.get("package_manager", ""),
    )


def probe(ctx: HostContext, *, sudo: bool = False) -> HostFacts:
    result = ctx.run(probe_command(sudo=sudo), timeout=PROBE_TIMEOUT)
    if result.rc != 0:
        raise EngineUnavailable(f"probing {ctx.host.name} for restic failed: {result.stderr.strip()[-300:]}")
    return parse_facts(result.stdout)


def local_engine() -> LocalEngine | None:
    """The control node's restic (first on PATH, symlinks resolved), or None when it has none."""
    found = shutil.which("restic")
    if found is None:
        return None
    path = Path(found).resolve()
    stat = path.stat()
    return _local_engine(path, stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=4)
def _local_engine(path: Path, size: int, mtime_ns: int) -> LocalEngine:
    """Hash, version and ELF facts of one binary, computed once per (path, size, mtime)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    try:
        elf = read_elf(path)
    except ElfError as error:
        raise EngineUnavailable(f"the control node's restic ({path}) cannot be shipped: {error}") from None
    output = subprocess.run([str(path), "version"], capture_output=True, text=True, timeout=30, check=False)
    return LocalEngine(path, digest.hexdigest(), size, parse_version(output.stdout), elf)


def fit_problem(elf: ElfInfo, facts: HostFacts) -> str:
    """Why a binary cannot run on the host ("" when it can): architecture, then glibc."""
    if not elf.runs_on(facts.machine):
        machine = facts.machine or "of unknown architecture"
        return f"it is built for {elf.machine_names}, the host is {machine}"
    if elf.dynamic and elf.glibc:
        if not facts.glibc:
            return f"it is linked against glibc {_dotted(elf.glibc)} and the host has no glibc (musl?)"
        if facts.glibc < elf.glibc:
            return f"it needs glibc {_dotted(elf.glibc)}, the host has {_dotted(facts.glibc)}"
    return ""


def package_commands(manager: str, *, root: bool) -> list[str]:
    """The commands that install restic with the host's package manager, as root or via ``sudo -n``.

    ``-n``: a password prompt would hang a cron run; refusing is the honest answer.
    """
    run_as = "" if root else "sudo -n "
    if manager == "apt-get":
        apt = f"{run_as}env DEBIAN_FRONTEND=noninteractive apt-get"
        return [f"{apt} update -qq", f"{apt} install -y -q --no-install-recommends restic"]
    if manager == "dnf":
        return [f"{run_as}dnf install -y -q restic"]
    raise ValueError(f"unsupported package manager {manager!r}")


def _never_message(host: str, facts: HostFacts) -> str:
    return (
        f"restic {_dotted(MIN_VERSION)} or newer is not on {host} ({_found(facts)}) and "
        f"{SETTING} is 'never': install restic on the host (apt-get install restic, dnf install restic, "
        f"or restic's static release binary), or set {SETTING}: ship (copy the control node's restic "
        f"into ~/{OWN_DIR}) or {SETTING}: package (the host's package manager, as root or with sudo -n)"
    )


def _found(facts: HostFacts) -> str:
    seen = []
    if facts.path_restic:
        seen.append(f"{facts.path_restic} is {_dotted(facts.path_version) or 'not runnable'}")
    if facts.own_exists:
        seen.append(f"{facts.own_restic} is {_dotted(facts.own_version) or 'not runnable'}")
    return "; ".join(seen) or "none on PATH or in ~/" + OWN_DIR


def decide(facts: HostFacts, install: str, local: LocalEngine | None, host: str) -> EnginePlan:
    """The plan, from the probe's facts alone (pure: unit-tested case by case)."""
    for path, version in ((facts.path_restic, facts.path_version), (facts.own_restic, facts.own_version)):
        if usable(version):
            return EnginePlan("use", path, f"restic {_dotted(version)} at {path}")
    if install == "never":
        return EnginePlan("none", "", "no usable restic", _never_message(host, facts))
    if install == "ship":
        if local is None:
            problem = (
                f"restic is not on {host} ({_found(facts)}) and the control node has none to ship: "
                f"install restic on the control node (apt-get install restic), or set {SETTING}: package"
            )
            return EnginePlan("none", "", "nothing to ship", problem)
        if not usable(local.version):
            problem = (
                f"the control node's restic ({local.path}) is {_dotted(local.version) or 'not runnable'}, "
                f"older than {_dotted(MIN_VERSION)}: upgrade it to ship it to {host}"
            )
            return EnginePlan("none", "", "nothing to ship", problem)
        misfit = fit_problem(local.elf, facts)
        if misfit:
            problem = (
                f"restic is not on {host} ({_found(facts)}) and the control node's {local.path} cannot run "
                f"there: {misfit}. Install restic {_dotted(MIN_VERSION)}+ on the host (restic's static "
                f"release binary for {facts.machine} in ~/{OWN_DIR}/restic works), or set {SETTING}: package"
            )
            return EnginePlan("none", "", "does not fit", problem)
        reuse = facts.own_exists and facts.own_sha256 == local.sha256
        verb = "is already there with the same SHA-256" if reuse else f"will be copied ({local.size} bytes)"
        detail = f"the control node's restic {_dotted(local.version)} {verb}"
        return EnginePlan("ship", facts.own_restic, detail)
    if install == "package":
        if not facts.package_manager:
            return EnginePlan(
                "none", "", "no package manager",
                f"{SETTING} is 'package' but {host} has neither apt-get nor dnf: install restic "
                f"{_dotted(MIN_VERSION)}+ yourself, or set {SETTING}: ship",
            )  # fmt: skip
        if not facts.root and not facts.sudo:
            why = (
                "`sudo -n` refuses it (a password would be needed, and a cron run has no one to type it)"
                if facts.sudo_installed
                else "sudo is not installed"
            )
            return EnginePlan(
                "none", "", "not root, no sudo",
                f"{SETTING} is 'package' but the login user on {host} is not root and {why}: install restic "
                f"as root ({' && '.join(package_commands(facts.package_manager, root=True))}), allow "
                f"that command in sudoers without a password, or set {SETTING}: ship",
            )  # fmt: skip
        how = "as root" if facts.root else "with sudo -n"
        return EnginePlan("package", "restic", f"restic will be installed with {facts.package_manager} {how}")
    raise ValueError(f"unknown {SETTING} {install!r} (one of {', '.join(INSTALL_MODES)})")


def _has_usable(facts: HostFacts) -> bool:
    return usable(facts.path_version) or usable(facts.own_version)


def plan_engine(ctx: HostContext, *, install: str = "ship") -> EnginePlan:
    """What :func:`ensure_engine` would do on this host, found without changing it."""
    facts = probe(ctx, sudo=install == "package")
    local = local_engine() if install == "ship" and not _has_usable(facts) else None
    return decide(facts, install, local, ctx.host.name)


def ensure_engine(ctx: HostContext, *, install: str = "ship") -> str:
    """Return the command (an absolute path on the host) of a usable restic >= 0.14.

    Raise :class:`EngineUnavailable` when there is none and ``install`` cannot provide one; the
    message names the fix and the ``files_engine_install`` setting.
    """
    facts = probe(ctx, sudo=install == "package")
    local = local_engine() if install == "ship" and not _has_usable(facts) else None
    plan = decide(facts, install, local, ctx.host.name)
    if plan.action == "none":
        raise EngineUnavailable(plan.problem)
    if plan.action == "use":
        ctx.emit("engine_found", path=plan.command, detail=plan.detail)
        return plan.command
    if plan.action == "ship":
        assert local is not None
        return _ship(ctx, facts, local)
    return _install_package(ctx, facts)


def ship_command(sha256: str) -> str:
    """Receive a binary on stdin into ``~/.maintkit/bin/restic``: temp file, hash check, 0755, rename.

    The rename is last: a cut transfer or a wrong hash leaves the previous file (or none) in place,
    and the trap removes the temporary file.
    """
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ValueError("not a SHA-256 hex digest")
    body = "\n".join(
        [
            "set -eu",
            f'dir="$HOME/{OWN_DIR}"',
            'mkdir -p "$HOME/.maintkit" "$dir"',
            'tmp=$(mktemp "$dir/.restic.XXXXXX")',
            "trap 'rm -f \"$tmp\"' EXIT",
            'cat > "$tmp"',
            'got=$( (sha256sum "$tmp" 2>/dev/null || shasum -a 256 "$tmp") | cut -d " " -f 1)',
            f"want={shlex.quote(sha256)}",
            'if [ "$got" != "$want" ]; then',
            '  echo "the copy on the host has SHA-256 $got, not $want" >&2; exit 3',
            "fi",
            'chmod 0755 "$tmp"',
            'echo "version=$("$tmp" version | head -n 1)"',
            'mv -f "$tmp" "$dir/restic"',
            "trap - EXIT",
            'echo "installed=$dir/restic"',
        ]
    )
    return bash_command(body)


def reuse_command() -> str:
    """Make an already-copied binary (same hash) executable again and print its version."""
    return bash_command(
        f'own="$HOME/{OWN_DIR}/restic"; chmod 0755 "$own" && echo "version=$("$own" version | head -n 1)"'
    )


def _ship(ctx: HostContext, facts: HostFacts, local: LocalEngine) -> str:
    started = time.monotonic()
    if facts.own_exists and facts.own_sha256 == local.sha256:
        result = ctx.run(reuse_command(), timeout=PROBE_TIMEOUT)
        sent = 0
    else:
        with local.path.open("rb") as binary:
            result = ctx.run(ship_command(local.sha256), stdin=binary, timeout=SHIP_TIMEOUT)
        sent = local.size
    version = parse_version(parse_pairs(result.stdout).get("version", ""))
    if result.rc != 0 or not usable(version):
        raise EngineUnavailable(
            f"shipping restic to {ctx.host.name} failed (exit status {result.rc}): "
            f"{result.stderr.strip()[-300:] or 'the copy did not run'}; nothing was replaced. "
            f"Install restic {_dotted(MIN_VERSION)}+ on the host, or set {SETTING}: package"
        )
    ctx.emit(
        "engine_shipped", path=facts.own_restic, bytes=sent, sha256=local.sha256,
        version=_dotted(version), seconds=round(time.monotonic() - started, 3),
    )  # fmt: skip
    return facts.own_restic


def _install_package(ctx: HostContext, facts: HostFacts) -> str:
    for command in package_commands(facts.package_manager, root=facts.root):
        result = ctx.run(command, timeout=PACKAGE_TIMEOUT)
        if result.rc != 0:
            raise EngineUnavailable(
                f"installing restic on {ctx.host.name} failed: `{command}` exited {result.rc}: "
                f"{result.stderr.strip()[-300:]}"
            )
    after = probe(ctx)
    if not usable(after.path_version):
        raise EngineUnavailable(
            f"{facts.package_manager} installed restic {_dotted(after.path_version) or '(not found)'} on "
            f"{ctx.host.name}, older than {_dotted(MIN_VERSION)} (Debian 11 ships 0.11): set {SETTING}: ship"
        )
    ctx.emit("engine_installed", path=after.path_restic, version=_dotted(after.path_version))
    return after.path_restic
