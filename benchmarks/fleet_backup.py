"""Fleet nightly backup: ``maintkit fleet run nightly-backup`` of many small sites on one control node,
against plain ``ssh … | zstd`` pipelines of the same dumps and folders at the same concurrency.

Why this baseline: an agency's cron without maintkit is a loop of ``ssh host 'mariadb-dump … | zstd'
> db.sql.zst`` and ``ssh host 'tar … | zstd' > files.tar.zst`` per site, run N at a time
(``xargs -P N``). It proves nothing (no checksum, no manifest, no lock, no journal), so it is the
floor. The target (issue 14): fleet wall time ≤ 1.3 times the baseline's, and the control node's peak
memory ≤ 400 MB and flat in the number of sites.

Data: S sshd servers on 127.0.0.1 (one Unix user each, several sites per user), N sites spread over
them; each site a folder of 20 small text files (~55 kB) and its own MariaDB database (one table,
200 rows: a ~40 kB dump). Every site is backed up into a local folder target.

Memory: "control peak RSS" is the peak of the *sum* of the memory of the fleet process and all its
descendants (the per-site ``maintkit run`` processes and their ``ssh``), sampled every 20 ms from
``/proc`` as PSS (shared pages divided among the processes sharing them), so the figure is what the
control node's memory holds; one process's ``ru_maxrss`` would miss the children. The baseline's
(``xargs`` and its pipelines) is sampled the same way. Checked: every site's snapshot has its
manifest (maintkit), every baseline artifact is a complete zstd stream.

Celery: the same fleet through two ``maintkit worker`` processes (concurrency/2 sites each) on a
real ``redis-server`` (free port, temp dir), started and ready before the clock starts; they run on
this machine too, so the wall time is comparable, and "control" is the ``fleet run`` process alone
(the workers would be other machines). ``--no-celery`` skips it (it needs ``redis-server``).

Usage::

    benchmarks/setup                      # once
    .venv/bin/python benchmarks/fleet_backup.py [--quick] [--sites 100,200] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml
from common import (
    VENV_BIN,
    child_env,
    log,
    machine_facts,
    markdown_table,
    median,
    print_report,
    ratio,
    verdict,
)
from tests.mariadb import Credentials, MariaDBServer
from tests.redisserver import RedisServer
from tests.sshd import SSHServers, terminate, write_known_hosts

DB_USER, DB_PASSWORD = "fleetbench", "fleet-bench-pw-4711"
#: the servers' Unix users start with this (a second engineer's benchmark on the machine uses another)
USER_PREFIX = os.environ.get("MAINTKIT_TEST_USER_PREFIX", "mk")
TARGET_RATIO = 1.3
TARGET_RSS_MB = 400
ROWS = 200
FILES = 20
SAMPLE = 0.02


def tree_rss_kib(root: int, cpu: dict[tuple[int, str], int] | None = None) -> int:
    """Memory (KiB) of ``root`` and every descendant, read from /proc now: their PSS.

    PSS (``smaps_rollup``) counts a page shared by k processes as 1/k in each, so the sum is the
    memory the tree really holds; a sum of RSS would count the interpreter and libraries once per
    process. ``cpu``, when given, gets each process's own CPU time so far (clock ticks), keyed by
    pid and start time.
    """
    total, stack, seen = 0, [root], set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
            if cpu is not None:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                cpu[(pid, fields[19])] = int(fields[11]) + int(fields[12])  # utime + stime
            for task in Path(f"/proc/{pid}/task").iterdir():
                stack += [int(p) for p in (task / "children").read_text().split()]
        except (OSError, ValueError, IndexError):
            continue
    return total


def machine_cpu_ticks() -> int:
    """The whole machine's busy CPU so far (clock ticks of every core, from ``/proc/stat``): on a quiet
    machine, the CPU a run cost everything (control node, sshd servers, MariaDB, the hosts' commands)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return user + nice + system + irq + softirq + steal


def run_sampled(
    argv: list[str], cwd: Path, env: dict[str, str] | None = None
) -> tuple[float, float, str, float, float]:
    """Run ``argv``; return (wall seconds, peak tree RSS in MB, stderr, CPU seconds of the tree,
    CPU seconds of the whole machine during the run).

    The CPU is the sum over every process of the tree (the fleet, its fork server, the site runs
    and their ``ssh``; not the sshd servers: the hosts' side) of its own CPU when last sampled: a
    process's last 20 ms are missed. (``RUSAGE_CHILDREN`` would miss the sites: the fork server
    outlives the fleet by a moment and is reaped by init, with its children's CPU.)
    """
    cpu: dict[tuple[int, str], int] = {}
    ticks = machine_cpu_ticks()
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss_kib(proc.pid, cpu))
            time.sleep(SAMPLE)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate(timeout=3600)
    seconds = time.perf_counter() - started
    machine = (machine_cpu_ticks() - ticks) / os.sysconf("SC_CLK_TCK")
    done.set()
    sampler.join()
    if proc.returncode != 0:
        log(err.decode(errors="replace")[-3000:])
        raise RuntimeError(f"{argv[:4]} exited {proc.returncode}: {err.decode(errors='replace')[-2000:]}")
    cpu_seconds = sum(cpu.values()) / os.sysconf("SC_CLK_TCK")
    return seconds, peak * 1024 / 1e6, err.decode(errors="replace"), cpu_seconds, machine


def own_cpu_seconds(pid: int) -> float:
    """The CPU seconds of process ``pid`` itself, all its threads, not its children (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Fleet:
    """S servers, one MariaDB, N sites (folders and databases), the project folder maintkit reads."""

    def __init__(self, root: Path, servers: int, sites: int) -> None:
        self.root = root
        self.servers = SSHServers((f"fleet{k}", f"{USER_PREFIX}-bench-fleet{k}") for k in range(servers))
        self.hosts = list(self.servers.hosts.values())
        self.known_hosts = write_known_hosts(root / "known_hosts", self.hosts)
        self.db = MariaDBServer().start()
        self.db.create_user(DB_USER, DB_PASSWORD)
        self.sites = sites
        for index in range(sites):
            self._make_site(index)
        creds = Credentials(user=DB_USER, password=DB_PASSWORD, host="127.0.0.1", port=self.db.port)
        for host in self.hosts:  # the baseline's client option file (maintkit passes its own over stdin)
            cnf = host.home / ".fleet-bench.cnf"
            cnf.write_text(creds.option_file())
            cnf.chmod(0o600)
            subprocess.run(["chown", f"{host.user}:{host.user}", str(cnf)], check=True)
            subprocess.run(["chown", "-R", f"{host.user}:{host.user}", str(host.home / "sites")], check=True)

    def host_of(self, index: int):  # type: ignore[no-untyped-def]
        return self.hosts[index % len(self.hosts)]

    def _make_site(self, index: int) -> None:
        name = f"site{index:04d}"
        host = self.host_of(index)
        folder = host.home / "sites" / name
        folder.mkdir(parents=True, exist_ok=True)
        for f in range(FILES):
            line = f"{name} file {f}: " + "lorem ipsum dolor sit amet " * 4 + "\n"
            (folder / f"page{f}.phtml").write_text(line * 25)
        self.db.create_database(f"fl_{name}", owner=DB_USER)
        self.db.sql(
            "CREATE TABLE orders (id INT PRIMARY KEY, email VARCHAR(64), total DECIMAL(10,2), note TEXT);"
            "INSERT INTO orders SELECT seq, CONCAT('c', seq, '@example.com'), seq * 1.5, "
            f"REPEAT(MD5(seq), 4) FROM seq_1_to_{ROWS};",
            database=f"fl_{name}",
        )

    def stop(self) -> None:
        """Stop the servers; remove the sites and option files from the users' homes."""
        self.db.stop()
        for host in self.hosts:
            shutil.rmtree(host.home / "sites", ignore_errors=True)
            (host.home / ".fleet-bench.cnf").unlink(missing_ok=True)
        self.servers.stop()

    # -- maintkit --------------------------------------------------------------------------------

    def project(self, work: Path, count: int) -> Path:
        """inventories/production.yml (every site a host entry), portfolio.yml (one client per 10 sites)."""
        (work / "inventories").mkdir(parents=True)
        hosts = {}
        clients: dict[str, dict[str, dict[str, object]]] = {}
        for index in range(count):
            name, host = f"site{index:04d}", self.host_of(index)
            hosts[name] = {
                "host": host.address,
                "port": host.port,
                "user": host.user,
                "key": str(host.key_file),
                "files": {"root": f"{host.home}/sites/{name}"},
                "database": {
                    "name": f"fl_{name}",
                    "user": DB_USER,
                    "password": DB_PASSWORD,
                    "host": "127.0.0.1",
                    "port": self.db.port,
                },
            }
            client = clients.setdefault(f"client{index // 10:03d}", {"sites": {}})
            client["sites"][name] = {"environments": ["production"]}
        storage = [{"name": "local", "type": "local", "path": str(work / "snapshots")}]
        inventory = {
            "all": {"vars": {"known_hosts": str(self.known_hosts), "storage": storage}, "hosts": hosts}
        }
        (work / "inventories" / "production.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))
        portfolio = {"defaults": {"rpo_hours": 24}, "clients": clients}
        (work / "portfolio.yml").write_text(yaml.safe_dump(portfolio, sort_keys=False))
        return work

    def run_maintkit(
        self, work: Path, count: int, concurrency: int, src: Path | None = None
    ) -> tuple[float, float, float, float]:
        """The fleet run; ``src``: another checkout's ``src`` folder (PYTHONPATH) to measure that version."""
        project = self.project(work, count)
        argv = [str(VENV_BIN / "python"), "-m", "maintkit", "fleet", "run", "nightly-backup", "--env",
                "production", "--concurrency", str(concurrency), "-q"]  # fmt: skip
        extra = {"PYTHONPATH": str(src)} if src else None
        seconds, rss, _, cpu, machine = run_sampled(argv, project, child_env(extra))
        manifests = list((work / "snapshots").rglob("manifest.json"))
        if len(manifests) != count:
            raise RuntimeError(f"maintkit: {len(manifests)} manifests for {count} sites")
        return seconds, rss, cpu, machine

    def run_celery(
        self, work: Path, count: int, concurrency: int, broker: str, redis_pid: int
    ) -> tuple[float, float, float, float]:
        """The same fleet through two ``maintkit worker`` processes (concurrency/2 each) on Redis.

        The workers are started (and ready) before the clock starts, as they would be on their
        machines; the memory figure is the control node's: the ``fleet run`` process alone.
        """
        project = self.project(work, count)
        workers = []
        try:
            for k in range(2):
                log_file = (project / f"worker{k}.log").open("wb")
                workers.append(
                    subprocess.Popen(
                        [
                            str(VENV_BIN / "maintkit"),
                            "worker",
                            "--broker",
                            broker,
                            "-n",
                            f"bench{k}@fleet",
                            "-c",
                            str(max(1, concurrency // 2)),
                            "--workdir",
                            str(project),
                        ],
                        cwd=project,
                        stdout=log_file,
                        stderr=subprocess.STDOUT,
                        env=child_env(),
                    )
                )
            deadline = time.monotonic() + 120
            while not all("ready" in (project / f"worker{k}.log").read_text() for k in range(2)):
                if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
                    raise RuntimeError("the Celery workers did not start")
                time.sleep(0.2)
            argv = [str(VENV_BIN / "maintkit"), "fleet", "run", "nightly-backup", "--env", "production",
                    "--workers", broker, "-q"]  # fmt: skip
            before = [own_cpu_seconds(w.pid) for w in workers] + [own_cpu_seconds(redis_pid)]
            seconds, rss, _, fleet_cpu, machine = run_sampled(argv, project, child_env())
            after = [own_cpu_seconds(w.pid) for w in workers] + [own_cpu_seconds(redis_pid)]
            spent = [(b - a) / count * 1000 for a, b in zip(before, after, strict=True)]
            log(
                f"  Celery's own CPU per site: fleet {fleet_cpu / count * 1000:.1f} ms, workers (their own"
                f" threads) {sum(spent[:-1]):.1f} ms, redis-server {spent[-1]:.1f} ms"
            )
        finally:
            for worker in workers:
                terminate(worker)  # type: ignore[arg-type]
        manifests = list((work / "snapshots").rglob("manifest.json"))
        if len(manifests) != count:
            raise RuntimeError(f"maintkit on Celery: {len(manifests)} manifests for {count} sites")
        return seconds, rss, 0.0, machine  # the workers' CPU is not the control node's

    def profile_site(self, work: Path, count: int, out: Path) -> None:
        """One site's ``maintkit run`` as the fleet's fork server runs it (its imports done first), under
        cProfile: where a site run's own CPU goes once nothing is left to import."""
        project = self.project(work, count)
        warm = [str(VENV_BIN / "python"), "-m", "maintkit", "run", "nightly-backup", "--env", "production",
                "--limit", "site0000", "-q"]  # fmt: skip
        subprocess.run(warm, cwd=project, env=child_env(), check=True)
        code = (
            "import cProfile, sys, maintkit.cli.sitechild, maintkit.cli\n"
            "sys.argv = ['maintkit', 'run', 'nightly-backup', '--env', 'production', '--limit', 'site0000',"
            " '--output', 'json', '--fleet-run', 'profile']\n"
            "before = set(sys.modules)\n"
            f"try:\n    cProfile.run('maintkit.cli.main()', {str(out)!r})\n"
            "finally:\n"
            "    print('imported after the fork:', *sorted(set(sys.modules) - before), file=sys.stderr)\n"
        )
        subprocess.run([str(VENV_BIN / "python"), "-c", code], cwd=project, env=child_env(),
                       stdout=subprocess.DEVNULL, check=False)  # fmt: skip

    # -- the baseline ----------------------------------------------------------------------------

    def run_baseline(self, work: Path, count: int, concurrency: int) -> tuple[float, float, float, float]:
        out = work / "out"
        out.mkdir(parents=True)
        lines = []
        for index in range(count):
            name, host = f"site{index:04d}", self.host_of(index)
            lines.append(f"{host.port} {host.user} {name} {host.home}")
        (work / "sites.txt").write_text("\n".join(lines) + "\n")
        ssh = (
            f"ssh -T -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile={self.known_hosts} "
            f'-o GlobalKnownHostsFile=/dev/null -i {self.hosts[0].key_file} -p "$1" "$2"@127.0.0.1'
        )
        # "$3" is the site's name (a plain word), expanded here and sent as part of the remote command
        dump = (
            "set -o pipefail; mariadb-dump --defaults-file=\\$HOME/.fleet-bench.cnf --single-transaction "
            "--quick --routines --triggers --events --hex-blob --no-tablespaces -- fl_$3 | zstd -q -c"
        )
        tar = "set -o pipefail; tar -C \\$HOME/sites/$3 -c -f - . | zstd -q -c"
        script = (
            f'set -e -o pipefail\n{ssh} "{dump}" > {out}/"$3".sql.zst\n{ssh} "{tar}" > {out}/"$3".tar.zst\n'
        )
        (work / "one.sh").write_text(script)
        argv = ["sh", "-c", f"xargs -P {concurrency} -L 1 bash one.sh < sites.txt"]
        seconds, rss, _, cpu, machine = run_sampled(argv, work)
        artifacts = sorted(out.iterdir())
        check = subprocess.run(["zstd", "-q", "-t", *map(str, artifacts)], capture_output=True, check=False)
        if len(artifacts) != 2 * count or check.returncode != 0:
            raise RuntimeError(
                f"baseline: {len(artifacts)} artifacts for {count} sites, zstd -t {check.returncode}"
            )
        return seconds, rss, cpu, machine


def profile(out: Path) -> int:
    """Profile one site's run (the second of two: the history exists then, as every night but the first)."""
    import pstats

    root = Path(tempfile.mkdtemp(prefix="mk-bench-fleet-"))
    root.chmod(0o755)
    fleet = Fleet(root, 1, 4)
    try:
        fleet.profile_site(root / "project", 4, out)
    finally:
        fleet.stop()
        shutil.rmtree(root, ignore_errors=True)
    pstats.Stats(str(out)).sort_stats("cumulative").print_stats(60)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="12 and 24 sites on 2 servers (the scripts stay alive)"
    )
    parser.add_argument("--sites", default="100,200", help="fleet sizes, comma-separated [100,200]")
    parser.add_argument("--servers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--no-celery", dest="celery", action="store_false", help="skip the Celery runs")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds per size (medians) [2]")
    parser.add_argument("--output", type=Path)
    parser.add_argument(
        "--reference-src",
        type=Path,
        help="another checkout's src/ (e.g. main's): its fleet is measured too, interleaved ('before')",
    )
    parser.add_argument(
        "--profile", type=Path, metavar="FILE", help="only profile one site's run (cProfile, into FILE)"
    )
    args = parser.parse_args()
    if args.profile:
        return profile(args.profile)
    sizes = [12, 24] if args.quick else [int(s) for s in args.sites.split(",")]
    servers = 2 if args.quick else args.servers
    rounds = 1 if args.quick else args.rounds
    root = Path(tempfile.mkdtemp(prefix="mk-bench-fleet-"))
    root.chmod(0o755)
    log(f"setting up {servers} sshd servers, MariaDB and {max(sizes)} sites")
    fleet = Fleet(root, servers, max(sizes))
    redis = RedisServer().start() if args.celery and shutil.which("redis-server") else None
    rows = []
    celery_rows: list[tuple[object, ...]] = []
    try:
        for count in sizes:
            runs: dict[str, list[tuple[float, float, float, float]]] = {"baseline": [], "maintkit": []}
            if args.reference_src:
                runs["before"] = []
            if redis:
                runs["celery"] = []
            for round_ in range(rounds):  # interleaved, the order rotating: medians of each
                order = list(runs)
                shift = round_ % len(order)
                for tool in order[shift:] + order[:shift]:
                    work = root / f"{tool}-{count}-{round_}"
                    log(f"{count} sites, round {round_ + 1}: {tool} (concurrency {args.concurrency})")
                    if tool == "baseline":
                        measured = fleet.run_baseline(work, count, args.concurrency)
                    elif tool == "maintkit":
                        measured = fleet.run_maintkit(work, count, args.concurrency)
                    elif tool == "before":
                        measured = fleet.run_maintkit(work, count, args.concurrency, args.reference_src)
                    else:
                        assert redis is not None and redis.proc is not None
                        measured = fleet.run_celery(work, count, args.concurrency, redis.url, redis.proc.pid)
                    log(
                        f"  {measured[0]:.1f} s, {measured[1]:.0f} MB, {measured[2]:.1f} CPU s (control),"
                        f" {measured[3]:.1f} CPU s (machine)"
                    )
                    runs[tool].append(measured)
            base_s, base_rss = median(b[0] for b in runs["baseline"]), max(b[1] for b in runs["baseline"])
            base_cpu = median(b[2] for b in runs["baseline"])
            base_machine = median(b[3] for b in runs["baseline"])
            for tool in ("before", "maintkit") if args.reference_src else ("maintkit",):
                mine = runs[tool]
                mk_s, mk_rss = median(m[0] for m in mine), max(m[1] for m in mine)
                mk_cpu = median(m[2] for m in mine)
                mk_machine = median(m[3] for m in mine)
                ratios = sorted(m[0] / b[0] for m, b in zip(mine, runs["baseline"], strict=True))
                ok = mk_s / base_s <= TARGET_RATIO and mk_rss <= TARGET_RSS_MB
                log(f"{count} sites, {tool}: {base_s:.1f} s vs {mk_s:.1f} s, {mk_rss:.0f} MB")
                name = "maintkit fleet" if tool == "maintkit" else f"before ({args.reference_src})"
                rows.append(
                    (count, name, args.concurrency, rounds, f"{base_s:.1f} s", f"{mk_s:.1f} s",
                     ratio(mk_s, base_s), f"{ratios[0]:.2f}-{ratios[-1]:.2f}x",
                     f"{1000 * base_cpu / count:.0f} / {1000 * mk_cpu / count:.0f} ms",
                     f"{1000 * base_machine / count:.0f} / {1000 * mk_machine / count:.0f} ms",
                     f"{base_rss:.0f} MB", f"{mk_rss:.0f} MB", f"{count / mk_s:.1f}", verdict(ok))
                )  # fmt: skip
            if runs.get("celery"):
                celery = runs["celery"]
                cel_s, cel_rss = median(c[0] for c in celery), max(c[1] for c in celery)
                log(f"{count} sites on 2 Celery workers: {cel_s:.1f} s, control {cel_rss:.0f} MB")
                celery_rows.append(
                    (count, f"2 x {max(1, args.concurrency // 2)}", rounds, f"{base_s:.1f} s",
                     f"{cel_s:.1f} s", ratio(cel_s, base_s), f"{cel_rss:.0f} MB",
                     verdict(cel_s / base_s <= TARGET_RATIO))
                )  # fmt: skip
    except Exception:
        log(
            "MariaDB's log:\n"
            + (fleet.db.log.read_text(errors="replace")[-3000:] if fleet.db.log.exists() else "")
        )
        raise
    finally:
        fleet.stop()
        if redis is not None:
            redis.stop()
        shutil.rmtree(root, ignore_errors=True)  # the snapshots and baseline artifacts of every run
    table = markdown_table(
        ("sites", "version", "concurrency", "rounds", "ssh \\| zstd", "maintkit fleet", "ratio",
         "ratio range", "control CPU per site (baseline / maintkit)",
         "machine CPU per site (baseline / maintkit)", "baseline peak (PSS)",
         "control peak (PSS)", "sites/s", f"≤ {TARGET_RATIO}x, ≤ {TARGET_RSS_MB} MB"),
        rows,
    )  # fmt: skip
    sections = [("", table)]
    if celery_rows:
        sections.append(
            ("The same fleet through two Celery workers (on this machine; control = the fleet process)",
             markdown_table(("sites", "workers x concurrency", "rounds", "ssh \\| zstd", "maintkit on Celery",
                             "ratio", "control peak (PSS)", f"≤ {TARGET_RATIO}x"), celery_rows))
        )  # fmt: skip
    facts = machine_facts({"MariaDB": ["mariadb", "--version"], "zstd": ["zstd", "--version"]})
    text = print_report(f"Fleet nightly backup ({servers} servers)", sections, facts)
    if args.output:
        args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
