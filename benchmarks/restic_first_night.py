"""Where the wall time and the CPU of a first (full) restic night go, against ``ssh 'tar | zstd' > file``.

Why this script (issue 16): the first restic night through maintkit measured 1.96x the shell pipeline
at 1 GB, the target is 1.1x. Before changing anything, this splits a night into its processes, each
measured by the kernel (CPU seconds, user + system), in rounds interleaved with the baseline:

* ``pipeline``: ``ssh host 'tar | zstd' > file``: the ``ssh`` client, tar + zstd on the host, and the
  host's sshd (the session process, read from ``/proc/$PPID/stat`` by the remote shell);
* ``restic alone``: restic into a local repository on this machine, no SSH, no HTTP: the engine's
  own cost (chunking, SHA-256, compression, AES);
* ``restic, ssh -R``: restic on the host through maintkit's forward as the product opens it (the
  system ``ssh -R``, :meth:`SSHTransport.forward_remote`) into ``rclone serve restic
  --append-only``: restic on the host, sshd, the ``ssh`` client, rclone;
* ``restic, paramiko``: the same through paramiko's forward (``MAINTKIT_BULK_SSH=paramiko``): the
  ssh client's share is then this Python process's own CPU;
* ``restic, ssh -R, OPTIONS``: the product path with restic options or environment (``--variant``,
  e.g. ``--compression off``, ``GOMAXPROCS=1``, ``-o rest.connections=10``, ``--pack-size 64``).

Every restic round writes into a fresh repository with the host's restic cache removed (a first
night). Reported: median wall seconds with their range, the median ratio to the pipeline of the same
round, the median CPU seconds of each process, and what the repository stores.

Usage::

    .venv/bin/python benchmarks/restic_first_night.py [--tree-mb 1000] [--rounds 3]
        [--variant '--compression off'] [--variant GOMAXPROCS=1] [--quick]
"""

from __future__ import annotations

import argparse
import os
import pwd
import random
import re
import resource
import secrets
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import log, machine_facts, markdown_table, need_system, print_report
from engine_tradeoffs import MB, Bench, du, make_media_tree

from maintkit.storage.restic import AppendOnlyServer
from maintkit.transport.openssh import DISABLE_ENV

TICK = os.sysconf("SC_CLK_TCK")
#: appended to a remote command: the CPU of its children (bash ``times``) and of the sshd session
#: process serving it (the shell's parent), on stderr
REMOTE_CPU = (
    "; rc=$?; times >&2; read -r _ _ _ _ _ _ _ _ _ _ _ _ _ ut st _ < /proc/$PPID/stat; "
    "echo mk-sshd-cpu $ut $st >&2; exit $rc"
)
_TIMES = re.compile(r"(\d+)m([\d.]+)s (\d+)m([\d.]+)s")
_SSHD = re.compile(r"mk-sshd-cpu (\d+) (\d+)")

Row = dict[str, float]


def remote_cpu(stderr: str) -> tuple[float, float]:
    """(CPU of the remote command's children, CPU of the sshd session) from :data:`REMOTE_CPU`."""
    times = _TIMES.findall(stderr)
    children = times[1] if len(times) > 1 else ("0", "0", "0", "0")
    command = int(children[0]) * 60 + float(children[1]) + int(children[2]) * 60 + float(children[3])
    match = _SSHD.search(stderr)
    sshd = (int(match.group(1)) + int(match.group(2))) / TICK if match else float("nan")
    return command, sshd


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a running process of ours."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def sshd_cpu(user: str) -> dict[int, float]:
    """CPU seconds of every sshd process running as ``user`` (the test host's sessions and forwards)."""
    uid = pwd.getpwnam(user).pw_uid
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if proc.stat().st_uid == uid and (proc / "comm").read_text().strip() == "sshd":
                found[int(proc.name)] = process_cpu(int(proc.name))
        except OSError:
            continue
    return found


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def split_variant(variant: str) -> tuple[dict[str, str], str]:
    """``GOMAXPROCS=1 --compression off`` -> ({"GOMAXPROCS": "1"}, "--compression off")."""
    env, args = {}, []
    for word in shlex.split(variant):
        name, eq, value = word.partition("=")
        if eq and name.isupper() and not word.startswith("-"):
            env[name] = value
        else:
            args.append(word)
    return env, shlex.join(args)


class FirstNight:
    def __init__(self, bench: Bench, tree: Path) -> None:
        self.bench = bench
        self.tree = tree

    def pipeline(self) -> Row:
        out = self.bench.root / "pipeline" / "full.tar.zst"
        out.parent.mkdir(parents=True, exist_ok=True)
        remote = f"set -o pipefail; tar -C {shlex.quote(str(self.tree))} -cf - . | zstd -q -c" + REMOTE_CPU
        with out.open("wb") as handle:
            start = time.perf_counter()
            proc = subprocess.Popen(
                [*self.bench.ssh_argv(), remote],
                stdout=handle,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
            )
            err = proc.stderr.read() if proc.stderr else b""
            _pid, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise RuntimeError(f"the pipeline failed: {err.decode()[-800:]}")
        command, sshd = remote_cpu(err.decode("utf-8", "replace"))
        return {"wall": wall, "host command": command, "sshd": sshd,
                "ssh client": usage.ru_utime + usage.ru_stime, "stored": out.stat().st_size}  # fmt: skip

    def raw_ssh(self, cipher: str, size: int) -> Row:
        """``ssh -c CIPHER host 'head -c SIZE /dev/zero' > /dev/null``: what SSH's encryption alone
        costs the client and sshd per byte with this cipher (the forward's choice, docs)."""
        remote = f"head -c {int(size)} /dev/zero" + REMOTE_CPU
        start = time.perf_counter()
        proc = subprocess.Popen(
            [*self.bench.ssh_argv("-c", cipher), remote],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        err = proc.stderr.read() if proc.stderr else b""
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"ssh -c {cipher} failed: {err.decode()[-500:]}")
        _command, sshd = remote_cpu(err.decode("utf-8", "replace"))
        return {"wall": wall, "ssh client": usage.ru_utime + usage.ru_stime, "sshd": sshd, "stored": 0}

    def alone(self) -> Row:
        repo = self.bench.repository(f"alone-{secrets.token_hex(3)}")
        cache = self.bench.root / "alone-cache"
        shutil.rmtree(cache, ignore_errors=True)
        env = {**os.environ, "RESTIC_CACHE_DIR": str(cache)}
        start = time.perf_counter()
        proc = subprocess.Popen(
            ["restic", "-r", repo.location, "--password-file", str(self.bench.password_file),
             "backup", "-q", "."],
            cwd=self.tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError("restic alone failed")
        stored = du(Path(repo.location))
        shutil.rmtree(repo.location, ignore_errors=True)
        return {"wall": wall, "restic": usage.ru_utime + usage.ru_stime, "stored": stored}

    def through_forward(self, *, paramiko: bool, variant: str = "") -> Row:
        """restic on the host through maintkit's forward, as :mod:`maintkit.jobs.engine_files` runs it."""
        bench = self.bench
        bench.forget_cache()
        repo = bench.repository(f"fwd-{secrets.token_hex(3)}")
        env, args = split_variant(variant)
        exports = "".join(f"export {k}={shlex.quote(v)}; " for k, v in env.items())
        command = f"{exports}cd {shlex.quote(str(self.tree))} && restic {args} backup -q ." + REMOTE_CPU
        saved = os.environ.get(DISABLE_ENV)
        if paramiko:
            os.environ[DISABLE_ENV] = "paramiko"
        try:
            with AppendOnlyServer(repo.location) as server:
                assert server._proc is not None
                rclone_before = process_cpu(server._proc.pid)
                own_before, kids_before = time.process_time(), children_cpu()
                sshd_before = sshd_cpu(bench.host.user)
                start = time.perf_counter()
                with bench.transport.forward_remote(server.port) as port:
                    result = bench.transport.run(
                        command, secret=True, timeout=3600,
                        env={"RESTIC_REPOSITORY": server.url(port), "RESTIC_PASSWORD": bench.password},
                    )  # fmt: skip
                    # every sshd of the host user: the command's session and the forward's connection
                    sshd = sum(
                        cpu - sshd_before.get(pid, 0.0) for pid, cpu in sshd_cpu(bench.host.user).items()
                    )
                wall = time.perf_counter() - start
                rclone = process_cpu(server._proc.pid) - rclone_before
                own = time.process_time() - own_before
                ssh_client = children_cpu() - kids_before  # the ssh -R process, reaped when it ended
        finally:
            if saved is None:
                os.environ.pop(DISABLE_ENV, None)
            else:
                os.environ[DISABLE_ENV] = saved
        if result.rc != 0:
            raise RuntimeError(f"restic through the forward failed: {result.stderr[-800:]}")
        restic, _session = remote_cpu(result.stderr)
        stored = du(Path(repo.location))
        shutil.rmtree(repo.location, ignore_errors=True)
        return {"wall": wall, "restic": restic, "sshd": sshd, "ssh client": ssh_client, "rclone": rclone,
                "maintkit (python)": own, "stored": stored}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree-mb", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--variant", action="append", default=[], help="restic options/env on the ssh -R path"
    )
    parser.add_argument("--quick", action="store_true", help="a 5 MB tree, one round (benchmarks/run-quick)")
    args = parser.parse_args(argv)
    if args.quick:
        args.tree_mb, args.rounds, args.variant = 5, 1, args.variant or ["--compression off"]
    for tool in ("restic", "rclone", "zstd", "ssh"):
        if need_system(tool) is None:
            print(f"{tool} is missing", file=sys.stderr)
            return 2
    root = Path(tempfile.mkdtemp(prefix="mk-bench-first-"))
    bench = Bench(root)
    try:
        tree = bench.work / "media"
        total = make_media_tree(tree, args.tree_mb * MB, random.Random(7))
        bench.chown()
        subprocess.run(["sync"], check=False)
        night = FirstNight(bench, tree)
        candidates = {
            "pipeline: ssh host 'tar, zstd' > file": night.pipeline,
            "restic alone (local repository)": night.alone,
            "restic, maintkit forward (ssh -R)": lambda: night.through_forward(paramiko=False),
            "restic, maintkit forward (paramiko)": lambda: night.through_forward(paramiko=True),
        }
        for cipher in ("chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com"):
            candidates[f"SSH alone: {cipher}, {total / MB:.0f} MB of zeros"] = lambda c=cipher: night.raw_ssh(  # type: ignore[misc]
                c, total
            )
        for variant in args.variant:
            candidates[f"restic, ssh -R, {variant}"] = lambda v=variant: night.through_forward(  # type: ignore[misc]
                paramiko=False, variant=v
            )
        names = list(candidates)
        rows: dict[str, list[Row]] = {name: [] for name in names}
        for n in range(args.rounds):
            order = names[n % len(names) :] + names[: n % len(names)]
            for name in order:
                log(f"round {n + 1}: {name}")
                rows[name].append(candidates[name]())
        base = names[0]
        table = []
        for name in names:
            walls = [r["wall"] for r in rows[name]]
            ratios = [r["wall"] / b["wall"] for r, b in zip(rows[name], rows[base], strict=True)]
            cpu_keys = [k for k in rows[name][0] if k not in ("wall", "stored")]
            cpu = {k: statistics.median(r[k] for r in rows[name]) for k in cpu_keys}
            spread = f" ({min(walls):.2f}-{max(walls):.2f})" if len(walls) > 1 else ""
            ratio_spread = f" ({min(ratios):.2f}-{max(ratios):.2f})" if len(ratios) > 1 else ""
            table.append(
                (
                    name, f"{statistics.median(walls):.2f}{spread}",
                    f"{statistics.median(ratios):.2f}x{ratio_spread}",
                    f"{sum(cpu.values()):.2f}", ", ".join(f"{k} {v:.2f}" for k, v in cpu.items()),
                    f"{statistics.median(r['stored'] for r in rows[name]) / MB:.1f}",
                )
            )  # fmt: skip
        head = (
            "candidate",
            "wall s, median (range)",
            "of pipeline (range)",
            "CPU s",
            "CPU s by process",
            "stored MB",
        )
        title = (
            f"first (full) night of a {total / MB:.0f} MB media-like tree, {args.rounds} interleaved "
            "round(s), fresh repository and host cache each round"
        )
        facts = machine_facts(
            {"restic": ["restic", "version"], "rclone": ["rclone", "version"], "ssh": ["ssh", "-V"]}
        )
        print_report(
            "First restic night: where the time and the CPU go", [(title, markdown_table(head, table))], facts
        )
        return 0
    finally:
        bench.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
