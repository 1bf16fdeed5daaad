"""Runner overhead: the same 20-step workload on N real sshd hosts through maintkit and its peers.

Why this workload: a maintenance run is mostly short commands on many hosts, so what a runner costs
is connection setup plus per-command overhead, not the commands themselves. Each step writes a file
in the host's home (``echo TAG > bench-RUN-step-NN``), and after every run the script reads those files
back (the hosts are loopback users, their homes are local folders): a tool that "finished" without
doing the work fails the benchmark instead of winning it.

Tools, each a separate process timed from the outside (interpreter start included):

* ``maintkit``: ``maintkit run`` with a 20-step playbook (environment lock, journal, and its default
  console output into a pipe, as every tool here prints its default output);
* ``fabric``: benchmarks/fabric_workload.py, one Connection per host, a thread per host, 20 conn.run;
* ``ansible``/``ansible-pipelining``: ansible-playbook (ansible-core from benchmarks/.venv-peers) with
  its defaults (OpenSSH with ControlPersist), ``forks`` = N so it runs hosts in parallel like the
  others, and ``gather_facts: false`` (fact gathering is not part of the workload); then the same
  with ``pipelining``;
* ``pyinfra``: ``server.shell`` operations, pyinfra's defaults;
* ``openssh``: one ``ssh`` per host running all 20 commands in one session, hosts in parallel: the
  floor for any tool that opens a session per step. Every figure is a ratio to it, measured in the
  same round.

Rounds are interleaved (every tool once per round, the order rotated each round) and each figure is
the median over the rounds. Usage::

    benchmarks/setup                       # once: peers in benchmarks/.venv-peers
    .venv/bin/python benchmarks/runner_overhead.py [--quick] [--sizes 1,5,20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from common import (
    BENCH,
    VENV_BIN,
    Timed,
    child_env,
    log,
    machine_facts,
    markdown_table,
    median,
    need_peer,
    print_report,
    ratio,
    run_timed,
    verdict,
)
from tests.sshd import SSHHost, SSHServers, write_known_hosts

STEPS = 20
#: this benchmark process's mark in file names and lock folders: the fleet's Unix users are fixed
#: (mk-bench01...), and a CI run of --quick may share the machine with a full run
RUN = secrets.token_hex(3)
BASELINE = "openssh"
#: (tool, N) -> the most a maintkit/baseline ratio may be; "peer" targets compare maintkit to a peer
TARGETS: dict[tuple[str, int], float] = {("openssh", 20): 1.0, ("openssh", 1): 2.0}
PEER_TARGETS: dict[tuple[str, int], float] = {
    ("fabric", 20): 0.5,
    ("pyinfra", 20): 1 / 3,
    ("ansible", 20): 1 / 40,
}
#: tools that come from benchmarks/.venv-peers, and the command each needs
PEER_COMMANDS = {
    "ansible": "ansible-playbook",
    "ansible-pipelining": "ansible-playbook",
    "pyinfra": "pyinfra",
}
#: fleet sizes at which the ansible runs are measured in a full run: where its target is. At 1.5 min
#: a run at N = 20, six of them already take 8 of the 10 minutes a full run may last.
ANSIBLE_SIZES = {20}
TOOLS = ("openssh", "maintkit", "fabric", "pyinfra", "ansible", "ansible-pipelining")


def step_commands(tag: str) -> list[str]:
    return [f"echo {tag} > bench-{RUN}-step-{i:02d}" for i in range(1, STEPS + 1)]


class Fleet:
    """N loopback sshd hosts (dedicated users) and the files every tool needs to reach them."""

    def __init__(self, size: int, workdir: Path) -> None:
        self.workdir = workdir
        self.servers = SSHServers((f"h{i:02d}", f"mk-bench{i:02d}") for i in range(1, size + 1))
        self.all_hosts: list[SSHHost] = list(self.servers.hosts.values())
        self.known_hosts = write_known_hosts(workdir / "known_hosts", self.all_hosts)

    def stop(self) -> None:
        self.servers.stop()

    def hosts_cpu(self) -> float:
        """CPU seconds the sshd servers and everything they ran have used so far.

        Why: on loopback the hosts share the two cores with the tool, so a tool that opens a session
        per step pays in host CPU what the OpenSSH baseline does not. Waits (bounded) until the
        servers have reaped the finished connections, whose time only then adds to theirs.
        """
        pids = [str(s.proc.pid) for s in self.servers.servers.values() if s.proc is not None]
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            children = subprocess.run(["pgrep", "-P", ",".join(pids)], capture_output=True, check=False)
            if not children.stdout.strip():
                break
            time.sleep(0.02)
        ticks = 0
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
        return ticks / os.sysconf("SC_CLK_TCK")

    def verify_and_clean(self, hosts: list[SSHHost], tag: str, tool: str) -> None:
        """Raise unless every step's file holds this run's tag on every host; then remove them."""
        missing = []
        for host in hosts:
            for i in range(1, STEPS + 1):
                path = host.home / f"bench-{RUN}-step-{i:02d}"
                try:
                    ok = path.read_text().strip() == tag
                except FileNotFoundError:
                    ok = False
                if not ok:
                    missing.append(f"{host.name}:{path.name}")
                path.unlink(missing_ok=True)
        if missing:
            raise RuntimeError(f"{tool} did not do the work: {len(missing)} files missing: {missing[:3]}")


# -- the tools -------------------------------------------------------------------------------------


def run_openssh(fleet: Fleet, hosts: list[SSHHost], tag: str, workdir: Path) -> Timed:
    """One ssh per host, all commands in one session, hosts in parallel (a shell script waits for all)."""
    script = "; ".join(step_commands(tag))
    lines = ["set -e", "pids=''"]
    for host in hosts:
        argv = [
            "ssh", "-n", "-T", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={fleet.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
            "-i", str(host.key_file), "-p", str(host.port), f"{host.user}@{host.address}", script,
        ]  # fmt: skip
        lines.append(" ".join(shlex.quote(a) for a in argv) + ' & pids="$pids $!"')
    lines.append('for p in $pids; do wait "$p"; done')
    path = workdir / "openssh.sh"
    path.write_text("\n".join(lines) + "\n")
    return run_timed(["bash", str(path)])


def run_maintkit(fleet: Fleet, hosts: list[SSHHost], tag: str, workdir: Path) -> Timed:
    inventory = {
        "all": {
            "vars": {"known_hosts": str(fleet.known_hosts), "lock_dir": f"~/.maintkit/lock-{RUN}"},
            "hosts": {
                h.name: {"host": h.address, "port": h.port, "user": h.user, "key": str(h.key_file)}
                for h in hosts
            },
        }
    }
    book = {
        "name": "bench",
        "max_parallel": max(len(hosts), 1),
        "steps": [{"name": f"step {i}", "shell": cmd} for i, cmd in enumerate(step_commands(tag), 1)],
    }
    (workdir / "inventory.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    (workdir / "book.yml").write_text(yaml.safe_dump(book, sort_keys=False))
    return run_timed(
        [VENV_BIN / "maintkit", "run", "book.yml", "-i", "inventory.yml", "--journal-dir", "journal"],
        cwd=workdir,
    )


def run_fabric(fleet: Fleet, hosts: list[SSHHost], tag: str, workdir: Path) -> Timed:
    spec = {
        "hosts": [{"host": h.address, "port": h.port, "user": h.user, "key": str(h.key_file)} for h in hosts],
        "commands": step_commands(tag),
    }
    (workdir / "fabric.json").write_text(json.dumps(spec))
    return run_timed([VENV_BIN / "python", BENCH / "fabric_workload.py", workdir / "fabric.json"])


def _ansible(fleet: Fleet, hosts: list[SSHHost], tag: str, workdir: Path, pipelining: bool) -> Timed:
    tool = need_peer("ansible-playbook")
    assert tool is not None
    inventory = {
        "all": {
            "hosts": {
                h.name: {
                    "ansible_host": h.address,
                    "ansible_port": h.port,
                    "ansible_user": h.user,
                    "ansible_ssh_private_key_file": str(h.key_file),
                    "ansible_ssh_extra_args": f"-o UserKnownHostsFile={fleet.known_hosts}",
                    "ansible_python_interpreter": "/usr/bin/python3",
                }
                for h in hosts
            }
        }
    }
    play = [
        {
            "hosts": "all",
            "gather_facts": False,
            "tasks": [
                {"name": f"step {i}", "ansible.builtin.shell": cmd}
                for i, cmd in enumerate(step_commands(tag), 1)
            ],
        }
    ]
    (workdir / "ansible-inventory.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    (workdir / "ansible-play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    control = Path(tempfile.mkdtemp(prefix="cp-", dir="/tmp"))  # short: socket paths are limited
    env = child_env(
        {
            "ANSIBLE_FORKS": str(max(len(hosts), 5)),
            "ANSIBLE_PIPELINING": "True" if pipelining else "False",
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control),
            "ANSIBLE_LOCAL_TEMP": str(workdir / "ansible-tmp"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_CONFIG": str(workdir / "no-ansible.cfg"),  # never pick up a stray ansible.cfg
        }
    )
    try:
        return run_timed([tool, "-i", "ansible-inventory.yml", "ansible-play.yml"], env=env, cwd=workdir)
    finally:
        _stop_control_masters(control)


def _stop_control_masters(control: Path) -> None:
    """ControlPersist leaves an ssh master per host for 60 s: stop the ones this run started.

    Left alone they would make the next round's connections free, and they are our processes.
    """
    for socket_path in control.iterdir():
        subprocess.run(
            ["ssh", "-o", f"ControlPath={socket_path}", "-O", "exit", "dummy"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    shutil.rmtree(control, ignore_errors=True)


def run_ansible(fleet: Fleet, hosts: list[SSHHost], tag: str, workdir: Path) -> Timed:
    return _ansible(fleet, hosts, tag, workdir, pipelining=False)


def run_ansible_pipelining(fleet: Fleet, hosts: list[SSHHost], tag: str, workdir: Path) -> Timed:
    return _ansible(fleet, hosts, tag, workdir, pipelining=True)


def run_pyinfra(fleet: Fleet, hosts: list[SSHHost], tag: str, workdir: Path) -> Timed:
    tool = need_peer("pyinfra")
    assert tool is not None
    entries = [
        (
            h.name,
            {
                "ssh_hostname": h.address,
                "ssh_port": h.port,
                "ssh_user": h.user,
                "ssh_key": str(h.key_file),
                "ssh_known_hosts_file": str(fleet.known_hosts),
                "ssh_strict_host_key_checking": "yes",
            },
        )
        for h in hosts
    ]
    (workdir / "pyinfra_inventory.py").write_text(f"hosts = {entries!r}\n")
    ops = "\n".join(
        f"server.shell(name={f'step {i}'!r}, commands=[{cmd!r}])"
        for i, cmd in enumerate(step_commands(tag), 1)
    )
    (workdir / "pyinfra_deploy.py").write_text(f"from pyinfra.operations import server\n{ops}\n")
    return run_timed([tool, "-y", "pyinfra_inventory.py", "pyinfra_deploy.py"], cwd=workdir)


RUNNERS: dict[str, Callable[[Fleet, list[SSHHost], str, Path], Timed]] = {
    "openssh": run_openssh,
    "maintkit": run_maintkit,
    "fabric": run_fabric,
    "pyinfra": run_pyinfra,
    "ansible": run_ansible,
    "ansible-pipelining": run_ansible_pipelining,
}


# -- the benchmark ---------------------------------------------------------------------------------


@dataclass
class Runs:
    """One tool at one fleet size: wall seconds, client CPU and hosts' CPU of every run."""

    seconds: list[float] = field(default_factory=list)
    client_cpu: list[float] = field(default_factory=list)
    hosts_cpu: list[float] = field(default_factory=list)


def measure(
    fleet: Fleet,
    sizes: list[int],
    rounds: int,
    tools: list[str],
    root: Path,
    warmup: bool,
    ansible_sizes: set[int],
) -> dict[int, dict[str, Runs]]:
    """Every tool once per round on each fleet size, order rotated per round."""
    results: dict[int, dict[str, Runs]] = {
        n: {t: Runs() for t in _tools_at(n, tools, ansible_sizes)} for n in sizes
    }
    for n in sizes:
        hosts = fleet.all_hosts[:n]
        tools_n = _tools_at(n, tools, ansible_sizes)
        # Warm-up (page cache, bytecode caches, the host users' first logins), not for ansible:
        # its runs take seconds per step, first-run effects are noise there, and time is short.
        for tool in tools_n if warmup else []:
            if not tool.startswith("ansible"):
                timed, _ = _one(fleet, hosts, tool, root, n)
                log(f"N={n} warm-up {tool}: {timed.seconds:.3f} s")
        for r in range(rounds):
            order = tools_n[r % len(tools_n) :] + tools_n[: r % len(tools_n)]
            for tool in order:
                timed, hosts_cpu = _one(fleet, hosts, tool, root, n)
                runs = results[n][tool]
                runs.seconds.append(timed.seconds)
                runs.client_cpu.append(timed.cpu_seconds)
                runs.hosts_cpu.append(hosts_cpu)
                log(f"N={n} round {r + 1}/{rounds} {tool}: {timed.seconds:.3f} s")
    return results


def _tools_at(n: int, tools: list[str], ansible_sizes: set[int]) -> list[str]:
    return [t for t in tools if not t.startswith("ansible") or n in ansible_sizes]


def _one(fleet: Fleet, hosts: list[SSHHost], tool: str, root: Path, n: int) -> tuple[Timed, float]:
    """One verified run of ``tool``; its timing and the CPU the hosts spent on it."""
    tag = f"{tool}-{n}-{secrets.token_hex(4)}"
    workdir = Path(tempfile.mkdtemp(prefix=f"{tool}-", dir=root))
    before = fleet.hosts_cpu()
    timed = RUNNERS[tool](fleet, hosts, tag, workdir).check(f"{tool} (N={n})")
    hosts_cpu = fleet.hosts_cpu() - before
    fleet.verify_and_clean(hosts, tag, tool)
    shutil.rmtree(workdir, ignore_errors=True)
    return timed, hosts_cpu


def report(results: dict[int, dict[str, Runs]], rounds: int) -> str:
    rows = []
    for n, by_tool in results.items():
        base = median(by_tool[BASELINE].seconds)
        for tool, runs in by_tool.items():
            mid = median(runs.seconds)
            rows.append(
                (n, tool, f"{mid:.3f}", ratio(mid, base), f"{min(runs.seconds):.3f}",
                 f"{median(runs.client_cpu):.2f}", f"{median(runs.hosts_cpu):.2f}", len(runs.seconds))
            )  # fmt: skip
    header = ("N hosts", "tool", "median s", "vs OpenSSH", "best s", "tool CPU s", "hosts CPU s", "runs")
    main = markdown_table(header, rows)
    checks = []
    for n, by_tool in results.items():
        if "maintkit" not in by_tool:
            continue
        mk = median(by_tool["maintkit"].seconds)
        for (peer, size), limit in {**TARGETS, **PEER_TARGETS}.items():
            if size != n or peer not in by_tool:
                continue
            value = mk / median(by_tool[peer].seconds)
            target = f"≤ {limit:.2f}x" if limit >= 0.1 else f"≤ 1/{round(1 / limit)}"
            checks.append((n, f"maintkit / {peer}", f"{value:.3f}x", target, verdict(value <= limit)))
    sections = [
        (f"Wall time of the whole process, median of {rounds} interleaved rounds", main),
        ("Targets", markdown_table(("N hosts", "ratio", "measured", "target", "verdict"), checks)),
    ]
    peers = need_peer("ansible-playbook"), need_peer("pyinfra")
    facts = machine_facts(
        {
            "ansible-core": [str(peers[0] or "ansible-playbook"), "--version"],
            "pyinfra": [str(peers[1] or "pyinfra"), "--version"],
        }
    )
    return print_report(f"Runner overhead: {STEPS} shell steps per host", sections, facts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="N = 1, one round (CI: the script runs)")
    parser.add_argument("--sizes", default="1,5,20", help="fleet sizes (default 1,5,20)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma-separated subset of the default")
    parser.add_argument("--output", type=Path, help="also write the markdown report to this file")
    parser.add_argument(
        "--ansible-everywhere", action="store_true", help="run ansible at every size, not only N = 20"
    )
    args = parser.parse_args(argv)
    sizes = [1] if args.quick else sorted({int(s) for s in args.sizes.split(",")})
    rounds = 1 if args.quick else max(3, args.rounds)
    tools = [t for t in args.tools.split(",") if t]
    unknown = [t for t in tools if t not in RUNNERS]
    if unknown:
        parser.error(f"unknown tools: {unknown}")
    missing = [t for t in tools if t in PEER_COMMANDS and not need_peer(PEER_COMMANDS[t])]
    if missing:
        log(f"skipping {missing}: run benchmarks/setup to install the peers")
        tools = [t for t in tools if t not in missing]
    if BASELINE not in tools:
        tools.insert(0, BASELINE)
    root = Path(tempfile.mkdtemp(prefix="mk-bench-runner-"))
    fleet = Fleet(max(sizes), root)
    try:
        ansible_sizes = set(sizes) if args.quick or args.ansible_everywhere else ANSIBLE_SIZES
        results = measure(fleet, sizes, rounds, tools, root, not args.quick, ansible_sizes)
    finally:
        fleet.stop()
        shutil.rmtree(root, ignore_errors=True)
    text = report(results, rounds)
    if args.output:
        args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
