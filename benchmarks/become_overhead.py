"""What become costs: the same 20-step playbook on one real sshd host, as the SSH user and through sudo.

Why: with become every command of the host runs as ``sudo … -u USER -- bash -c …``. Without a
password (a NOPASSWD rule) the commands still use the host's long-lived session; with a password,
sudo's password line rides on each command's stdin, so each command opens its own SSH channel (the
session carries no stdin). This measures both against the plain run, in the same rounds.

Each step writes a file in the become user's home, checked after every run (a run that did not do
the work fails the benchmark). Needs root (it creates the Unix users, a password for the SSH user and
a sudoers rule, all removed at the end) and sudo. Usage::

    .venv/bin/python benchmarks/become_overhead.py [--quick] [--rounds 5]
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from common import VENV_BIN, Timed, log, machine_facts, markdown_table, median, print_report, ratio, run_timed
from tests.sshd import SSHServers, ensure_user, write_known_hosts

STEPS = 20
RUN = secrets.token_hex(3)
BECOME_USER = "mk-bench-become"
PASSWORD = secrets.token_hex(12)
MODES = ("plain", "become-nopasswd", "become-password")


def step_commands(tag: str) -> list[str]:
    return [f"echo {tag} > ~/bench-{RUN}-{i:02d}" for i in range(1, STEPS + 1)]


def run_mode(mode: str, servers: SSHServers, known: Path, workdir: Path, tag: str) -> Timed:
    """One ``maintkit run`` of the workload in ``mode`` (the SSH user differs: each has its rule)."""
    host = servers.hosts["nopw" if mode == "become-nopasswd" else "pw"]
    entry: dict[str, Any] = {
        "host": host.address,
        "port": host.port,
        "user": host.user,
        "key": str(host.key_file),
    }
    if mode != "plain":
        entry.update(become=True, become_user=BECOME_USER)
    if mode == "become-password":
        entry["become_password"] = PASSWORD
    inventory = {
        "all": {
            "vars": {"known_hosts": str(known), "lock_dir": f"/tmp/mk-bench-lock-{RUN}-{mode}"},
            "hosts": {"h": entry},
        }
    }
    book = {"name": "bench", "steps": [{"shell": c} for c in step_commands(tag)]}
    (workdir / "inventory.yml").write_text(yaml.safe_dump(inventory))
    (workdir / "book.yml").write_text(yaml.safe_dump(book))
    return run_timed(
        [VENV_BIN / "maintkit", "run", "book.yml", "-i", "inventory.yml", "--journal-dir", "journal"],
        cwd=workdir,
    ).check(mode)


def verify(home: Path, tag: str, mode: str) -> None:
    """Raise unless every step's file holds this run's tag; then remove them."""
    for i in range(1, STEPS + 1):
        path = home / f"bench-{RUN}-{i:02d}"
        if not path.is_file() or path.read_text().strip() != tag:
            raise RuntimeError(f"{mode} did not do the work: {path} missing or wrong")
        path.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="one round (CI: the script runs)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    rounds = 1 if args.quick else max(3, args.rounds)
    if not shutil.which("sudo"):
        log("sudo is not installed: apt-get install sudo")
        return 1
    root = Path(tempfile.mkdtemp(prefix="mk-bench-become-"))
    become_home = ensure_user(BECOME_USER)
    servers = SSHServers([("pw", "mk-bench-bpw"), ("nopw", "mk-bench-bnopw")])
    rule = Path("/etc/sudoers.d/mk-bench-become")
    try:
        pw, nopw = servers.hosts["pw"], servers.hosts["nopw"]
        subprocess.run(["chpasswd"], input=f"{pw.user}:{PASSWORD}\n", text=True, check=True)
        rule.write_text(f"{pw.user} ALL=({BECOME_USER}) ALL\n{nopw.user} ALL=({BECOME_USER}) NOPASSWD: ALL\n")
        rule.chmod(0o440)
        known = write_known_hosts(root / "known_hosts", servers.hosts.values())
        seconds: dict[str, list[float]] = {m: [] for m in MODES}
        for number in range(rounds):
            order = MODES[number % len(MODES) :] + MODES[: number % len(MODES)]
            for mode in order:
                tag = f"{mode}-{number}"
                timed = run_mode(mode, servers, known, root, tag)
                verify(pw.home if mode == "plain" else become_home, tag, mode)
                seconds[mode].append(timed.seconds)
                log(f"round {number + 1}: {mode} {timed.seconds:.2f} s")
    finally:
        rule.unlink(missing_ok=True)
        servers.stop()
        subprocess.run(["usermod", "-p", "*", "mk-bench-bpw"], check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
    base = median(seconds["plain"])
    rows = [(m, f"{median(seconds[m]):.2f} s", ratio(median(seconds[m]), base)) for m in MODES]
    table = markdown_table(("mode (20 steps, 1 host)", f"median of {rounds}", "vs plain"), rows)
    print_report("become overhead", [("", table)], machine_facts())
    return 0


if __name__ == "__main__":
    sys.exit(main())
