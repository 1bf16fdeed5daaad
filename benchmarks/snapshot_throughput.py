"""Snapshot throughput: maintkit snapshot against the OpenSSH pipeline and restic, on the same data.

Why these peers: ``ssh host 'set -o pipefail; mariadb-dump … | zstd' > f`` is what a careful admin
writes by hand, the floor for pulling a compressed stream over SSH; restic is what many shops use
instead (it runs on the host, deduplicates and encrypts, and pushes to the same S3 endpoint).

Data (generated, deterministic): a MariaDB database of sales orders whose dump is ~100 MB and ~1 GB
of SQL (``bench_s``, ``bench_l``), and a site folder on a loopback sshd host of ~100 MB, ~1 GB and
~2 GB (60 % incompressible "media", 40 % text "code"). Sizes are the *source* sizes: the dump's
uncompressed SQL, the files' bytes; MB/s is source MB per wall second.

Tools per scenario, each a separate process timed from the outside:

* ``openssh``: the hand-written pipeline above (same dump options and zstd level as maintkit), to a
  local file: the baseline every ratio refers to, measured in the same round;
* ``maintkit-local`` / ``maintkit-s3``: ``maintkit run`` of a one-step ``snapshot`` playbook into a
  local folder / into a bucket of a moto S3 server (row counts, trailer check, SHA-256, manifest:
  everything a real snapshot does);
* ``restic-local`` / ``restic-s3``: a fresh restic repository per run, ``restic backup`` of the
  folder, or ``mariadb-dump | restic backup --stdin`` (restic runs where the data is, as it would
  on the host).

Peak RSS is the control process's (maintkit, ssh, restic) from ``wait4``. Usage::

    benchmarks/setup                       # once: restic and the peers
    .venv/bin/python benchmarks/snapshot_throughput.py [--quick] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from common import (
    VENV_BIN,
    Timed,
    child_env,
    log,
    machine_facts,
    markdown_table,
    median,
    need_system,
    print_report,
    ratio,
    run_timed,
    verdict,
)
from tests.mariadb import Credentials, MariaDBServer
from tests.s3server import FAKE_AWS_ENV, MotoServer
from tests.sshd import SSHHost, SSHServers, write_known_hosts

MB = 1_000_000
MiB = 1024 * 1024
USER = os.environ.get("MAINTKIT_TEST_USER_PREFIX", "mk") + "-bench-snap"  # apart from other sessions
DB_USER, DB_PASSWORD = "bench", "bench-pw-4711"
#: bytes of dump SQL per seeded order row (measured: 67.2 MB for 100 000 rows)
DUMP_BYTES_PER_ROW = 672
DUMP_OPTIONS = (
    "--single-transaction --quick --routines --triggers --events --hex-blob --no-tablespaces "
    "--default-character-set=utf8mb4 --max-allowed-packet=1G"
)
TARGET_RATIO = 1.1  # maintkit-local wall / openssh wall
#: the issue's "peak RSS ≤ 150 MB", in decimal megabytes (143 MiB)
TARGET_RSS_MB = 150
RESTIC_PASSWORD = "bench-restic-password"


@dataclass
class Scenario:
    """One thing to snapshot: a database or a set of folders, and its source size in bytes."""

    kind: str  # "db" | "files"
    label: str  # "100 MB", "1 GB", ...
    database: str = ""
    paths: list[str] = field(default_factory=list)
    source_bytes: int = 0
    tools: tuple[str, ...] = ()
    rounds: int = 1


class Bench:
    """The host, the database, the S3 server and the folders every tool writes into."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.servers = SSHServers([("snaphost", USER)])
        self.host: SSHHost = self.servers.hosts["snaphost"]
        self.known_hosts = write_known_hosts(root / "known_hosts", [self.host])
        self.db = MariaDBServer().start()
        self.moto = MotoServer()
        self.moto.start()
        # per process: a CI run of --quick may share the fixed user with a full run
        self.site = self.host.home / f"site-{uuid.uuid4().hex[:6]}"
        self.aws_env = {
            **FAKE_AWS_ENV,
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        }
        import boto3

        self.s3 = boto3.client(
            "s3",
            endpoint_url=self.moto.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        self.bucket = "mk-bench"
        self.s3.create_bucket(Bucket=self.bucket)

    def stop(self) -> None:
        self.moto.stop()
        self.db.stop()
        self.servers.stop()
        (self.host.home / f".bench-my-{self.site.name}.cnf").unlink(missing_ok=True)

    # -- data ---------------------------------------------------------------------------------

    def seed_database(self, name: str, rows: int) -> None:
        """A sales-order table: text, decimals, dates, JSON with hashes (compresses ~5:1, like a shop)."""
        self.db.sql("SET GLOBAL innodb_buffer_pool_size = 1610612736;")
        self.db.create_user(DB_USER, DB_PASSWORD)
        self.db.create_database(name, owner=DB_USER)
        item = (
            "CONCAT('{{\"sku\":\"SKU-', LPAD(seq * {m} % 5000, 6, '0'), '\",\"qty\":', 1 + seq % {q}, "
            "',\"price\":', (seq % {p}) / 10, ',\"token\":\"', {token}, '\"}}')"
        )
        items = ", ".join(
            item.format(m=m, q=q, p=p, token=token)
            for m, q, p, token in (
                (1, 3, 997, "MD5(seq), SHA1(seq)"),
                (3, 5, 991, "MD5(seq + 1), SHA1(seq + 1)"),
                (7, 2, 983, "MD5(seq + 2), SHA1(seq + 2)"),
                (11, 4, 977, "SHA2(seq, 256)"),
            )
        )
        self.db.sql(
            f"""
CREATE TABLE sales_order (
  entity_id INT UNSIGNED NOT NULL PRIMARY KEY,
  increment_id VARCHAR(32) NOT NULL, state VARCHAR(32) NOT NULL, customer_email VARCHAR(128) NOT NULL,
  grand_total DECIMAL(20,4) NOT NULL, created_at DATETIME NOT NULL, shipping_address TEXT NOT NULL,
  items_json MEDIUMTEXT NOT NULL
) ENGINE=InnoDB;
INSERT INTO sales_order
SELECT seq, LPAD(seq, 10, '0'), ELT(1 + seq % 4, 'new', 'processing', 'complete', 'canceled'),
  CONCAT('customer', seq % 50000, '@example.com'), ROUND((seq * 7919) % 100000 / 7, 4),
  '2024-01-01' + INTERVAL (seq * 37) % 63072000 SECOND,
  CONCAT(ELT(1 + seq % 5, 'Rue de Rivoli', 'Hauptstrasse', 'Main Street', 'Calle Mayor', 'Via Roma'),
         ' ', seq % 300, ', ', 10000 + seq % 89999),
  CONCAT('[', CONCAT_WS(',', {items}), ']')
FROM seq_1_to_{rows};
""",
            name,
        )

    def dump_size(self, name: str) -> int:
        """Bytes of the uncompressed dump (the source size that MB/s is counted in)."""
        argv = ["mariadb-dump", f"--defaults-file={self.db.defaults_file()}", *DUMP_OPTIONS.split(), name]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE)
        assert proc.stdout is not None
        total = 0
        while chunk := proc.stdout.read(1 << 20):
            total += len(chunk)
        if proc.wait() != 0:
            raise RuntimeError(f"mariadb-dump {name} failed")
        return total

    def make_files(self, folder: str, size: int, seed: int) -> int:
        """``size`` bytes under ``site/folder``: 60 % random "media" (50-500 kB), 40 % text "code"."""
        rng = random.Random(seed)
        base = self.site / folder
        base.mkdir(parents=True, exist_ok=True)
        words = [f"{rng.choice(('get', 'set', 'load', 'save'))}{rng.randrange(10**6):x}" for _ in range(4000)]
        lines = [
            f"    public function {rng.choice(words)}(${rng.choice(words)}) "
            f"{{ return $this->{rng.choice(words)}; }}"
            for _ in range(3000)
        ]
        written, index = 0, 0
        media_share = 0.6
        while written < size:
            index += 1
            sub = base / f"d{index // 200:03d}"
            sub.mkdir(exist_ok=True)
            if written < size * media_share:
                n = min(rng.randrange(50_000, 500_000), size - written)
                (sub / f"img{index:06d}.jpg").write_bytes(rng.randbytes(n))
            else:
                text = ("\n".join(rng.choices(lines, k=rng.randrange(40, 400))) + "\n").encode()
                text = text[: size - written]
                (sub / f"Model{index:06d}.php").write_bytes(text)
                n = len(text)
            written += n
        return written

    def chown_site(self) -> None:
        subprocess.run(["chown", "-R", f"{USER}:{USER}", str(self.site)], check=True)

    def host_defaults_file(self) -> str:
        """A 0600 client option file in the host user's home, for the hand-written pipeline."""
        creds = Credentials(user=DB_USER, password=DB_PASSWORD, host="127.0.0.1", port=self.db.port)
        path = self.host.home / f".bench-my-{self.site.name}.cnf"
        path.write_text(creds.option_file())
        os.chmod(path, 0o600)
        shutil.chown(path, USER, USER)
        return str(path)

    def clear_bucket(self, prefix: str = "") -> None:
        """Delete what a run uploaded (moto keeps objects in memory)."""
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})


# -- the tools ------------------------------------------------------------------------------------


def _ssh_argv(bench: Bench) -> list[str]:
    h = bench.host
    return [
        "ssh", "-T", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={bench.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
        "-i", str(h.key_file), "-p", str(h.port), f"{h.user}@{h.address}",
    ]  # fmt: skip


def run_openssh(bench: Bench, sc: Scenario, work: Path) -> tuple[Timed, int]:
    if sc.kind == "db":
        remote = (
            f"set -o pipefail; mariadb-dump --defaults-file={bench.host_defaults_file()} {DUMP_OPTIONS} "
            f"-- {sc.database} | zstd -q -c"
        )
        out = work / "db.sql.zst"
    else:
        remote = f"set -o pipefail; tar -C {bench.site} -c -f - -- {shlex.join(sc.paths)} | zstd -q -c"
        out = work / "files.tar.zst"
    with out.open("wb") as handle:
        timed = run_timed([*_ssh_argv(bench), remote], stdout=handle).check("openssh pipeline")
    size = out.stat().st_size
    check = subprocess.run(["zstd", "-q", "-t", str(out)], capture_output=True, check=False)
    if size == 0 or check.returncode != 0:
        raise RuntimeError(f"openssh pipeline wrote a broken artifact: {check.stderr!r}")
    if sc.kind == "db":
        tail = subprocess.run(
            f"zstd -dc {shlex.quote(str(out))} | tail -c 200", shell=True, capture_output=True, check=True
        ).stdout
        if b"-- Dump completed" not in tail:
            raise RuntimeError("openssh pipeline: the dump has no trailer")
    return timed, size


def _maintkit(bench: Bench, sc: Scenario, work: Path, target: str) -> tuple[Timed, int]:
    storage = [
        {"name": "local", "type": "local", "path": str(work / "snapshots")},
        {
            "name": "s3",
            "type": "s3",
            "bucket": bench.bucket,
            "prefix": work.name,
            "region": "us-east-1",
            "endpoint_url": bench.moto.endpoint_url,
        },
    ]
    host_vars: dict[str, object] = {
        "host": bench.host.address,
        "port": bench.host.port,
        "user": bench.host.user,
        "key": str(bench.host.key_file),
    }
    if sc.kind == "db":
        host_vars["database"] = {
            "name": sc.database,
            "user": DB_USER,
            "password": DB_PASSWORD,
            "host": "127.0.0.1",
            "port": bench.db.port,
        }
        step: dict[str, object] = {"database": "{{ database }}"}
    else:
        host_vars["files"] = {"root": str(bench.site), "paths": sc.paths}
        step = {"files": "{{ files }}"}
    step["targets"] = [target]
    inventory = {
        "all": {
            "vars": {"known_hosts": str(bench.known_hosts), "storage": storage},
            "hosts": {"snaphost": host_vars},
        }
    }
    book = {"name": "bench-snapshot", "steps": [{"name": "snapshot", "snapshot": step}]}
    (work / "inventory.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    (work / "book.yml").write_text(yaml.safe_dump(book, sort_keys=False))
    timed = run_timed(
        [VENV_BIN / "maintkit", "run", "book.yml", "-i", "inventory.yml", "--env", "bench",
         "--journal-dir", "journal"],
        cwd=work,
        env=child_env(bench.aws_env),
    ).check(f"maintkit snapshot to {target}")  # fmt: skip
    return timed, _maintkit_size(bench, work, target)


def _maintkit_size(bench: Bench, work: Path, target: str) -> int:
    """The artifact's size from the manifest (which exists only for a complete snapshot)."""
    if target == "local":
        manifests = list((work / "snapshots").rglob("manifest.json"))
        if len(manifests) != 1:
            raise RuntimeError(f"maintkit: expected one manifest, found {manifests}")
        manifest = json.loads(manifests[0].read_text())
    else:
        listing = bench.s3.list_objects_v2(Bucket=bench.bucket, Prefix=work.name)
        keys = [o["Key"] for o in listing.get("Contents", []) if o["Key"].endswith("manifest.json")]
        if len(keys) != 1:
            raise RuntimeError(f"maintkit: expected one manifest in S3, found {keys}")
        manifest = json.loads(bench.s3.get_object(Bucket=bench.bucket, Key=keys[0])["Body"].read())
        bench.clear_bucket(work.name)
    COUNT_ROWS_SECONDS.append(float(manifest.get("timings", {}).get("count_rows", 0.0)))
    return int(sum(a["size"] for a in manifest["artifacts"]))


#: --keep-journals: where maintkit's journals are copied before a run's folder is removed
KEEP_JOURNALS: Path | None = None
#: seconds maintkit spent counting rows (each manifest's timings), in run order
COUNT_ROWS_SECONDS: list[float] = []


def run_maintkit_local(bench: Bench, sc: Scenario, work: Path) -> tuple[Timed, int]:
    return _maintkit(bench, sc, work, "local")


def run_maintkit_s3(bench: Bench, sc: Scenario, work: Path) -> tuple[Timed, int]:
    return _maintkit(bench, sc, work, "s3")


def _restic(bench: Bench, sc: Scenario, work: Path, repo: str) -> tuple[Timed, int]:
    restic = need_system("restic")
    assert restic is not None
    env = child_env(
        {**bench.aws_env, "RESTIC_PASSWORD": RESTIC_PASSWORD, "RESTIC_CACHE_DIR": str(work / "cache")}
    )
    subprocess.run([restic, "-r", repo, "init"], env=env, capture_output=True, check=True, timeout=120)
    if sc.kind == "db":
        script = (
            f"set -o pipefail; mariadb-dump --defaults-file={bench.db.defaults_file()} {DUMP_OPTIONS} "
            f"-- {sc.database} | {restic} -r {shlex.quote(repo)} backup -q --stdin --stdin-filename db.sql"
        )
        argv = ["bash", "-c", script]
    else:
        argv = [restic, "-r", repo, "backup", "-q", *[str(bench.site / p) for p in sc.paths]]
    timed = run_timed(argv, env=env).check("restic backup")
    stats = subprocess.run(
        [restic, "-r", repo, "stats", "--mode", "raw-data", "--json"],
        env=env, capture_output=True, check=True, timeout=300,
    )  # fmt: skip
    return timed, int(json.loads(stats.stdout)["total_size"])


def run_restic_local(bench: Bench, sc: Scenario, work: Path) -> tuple[Timed, int]:
    return _restic(bench, sc, work, str(work / "restic-repo"))


def run_restic_s3(bench: Bench, sc: Scenario, work: Path) -> tuple[Timed, int]:
    try:
        return _restic(bench, sc, work, f"s3:{bench.moto.endpoint_url}/{bench.bucket}/{work.name}")
    finally:
        bench.clear_bucket(work.name)


RUNNERS: dict[str, Callable[[Bench, Scenario, Path], tuple[Timed, int]]] = {
    "openssh": run_openssh,
    "maintkit-local": run_maintkit_local,
    "maintkit-s3": run_maintkit_s3,
    "restic-local": run_restic_local,
    "restic-s3": run_restic_s3,
}
ALL_TOOLS = tuple(RUNNERS)


@dataclass
class Result:
    seconds: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    count_rows: list[float] = field(default_factory=list)
    stored: int = 0


def measure(bench: Bench, scenarios: list[Scenario], root: Path) -> dict[tuple[str, str], dict[str, Result]]:
    """Every scenario's tools once per round, the order rotated each round."""
    results: dict[tuple[str, str], dict[str, Result]] = {}
    for sc in scenarios:
        by_tool = results.setdefault((sc.kind, sc.label), {})
        for tool in sc.tools:
            by_tool.setdefault(tool, Result())
        tools = list(sc.tools)
        for r in range(sc.rounds):
            order = tools[r % len(tools) :] + tools[: r % len(tools)]
            for tool in order:
                work = Path(tempfile.mkdtemp(prefix=f"{tool}-", dir=root))
                counted = len(COUNT_ROWS_SECONDS)
                timed, stored = RUNNERS[tool](bench, sc, work)
                if len(COUNT_ROWS_SECONDS) > counted and sc.kind == "db":
                    by_tool[tool].count_rows.append(COUNT_ROWS_SECONDS[-1])
                if KEEP_JOURNALS is not None:  # for profiling: the runs' event timelines
                    for journal in (work / "journal").glob("*.jsonl"):
                        shutil.copy(journal, KEEP_JOURNALS / f"{sc.kind}-{sc.label}-{tool}-{journal.name}")
                shutil.rmtree(work, ignore_errors=True)
                res = by_tool[tool]
                res.seconds.append(timed.seconds)
                res.rss_kib.append(timed.max_rss_kib)
                res.cpu.append(timed.cpu_seconds)
                res.stored = stored
                log(
                    f"{sc.kind} {sc.label} round {r + 1}/{sc.rounds} {tool}: {timed.seconds:.2f} s, "
                    f"{sc.source_bytes / MB / timed.seconds:.0f} MB/s, RSS {timed.max_rss_kib / 1024:.0f} MiB"
                )
    return results


def channel_throughput(bench: Bench, size: int) -> list[tuple[str, str, str, str]]:
    """Raw SSH channel speed: ``head -c SIZE /dev/zero`` read through maintkit's transport (over
    paramiko, and as it streams bulk data now, through ``ssh``) and by a plain ``ssh``, nothing else
    in the way: tells whether the channel limits a snapshot. CPU: the reading side, children included.
    """
    code = (
        "import resource, sys, time\n"
        "from maintkit.model.hosts import Host\n"
        "from maintkit.transport.ssh.transport import SSHTransport\n"
        "h = Host(name='snaphost', address=sys.argv[1], port=int(sys.argv[2]), user=sys.argv[3],"
        " key_file=sys.argv[4], known_hosts=sys.argv[5])\n"
        "class Null:\n"
        "    n = 0\n"
        "    def write(self, d): self.n += len(d)\n"
        "def cpu():\n"
        "    kids = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "    return time.process_time() + kids.ru_utime + kids.ru_stime\n"
        "t = SSHTransport(h); t.connect(); sink = Null(); s = time.perf_counter(); c = cpu()\n"
        "r = t.run('head -c ' + sys.argv[6] + ' /dev/zero', stdout=sink)\n"
        "print(sink.n, time.perf_counter() - s, cpu() - c); t.close()\n"
    )
    h = bench.host
    argv = [str(a) for a in (VENV_BIN / "python", "-c", code, h.address, h.port, h.user, h.key_file,
                             bench.known_hosts, size)]  # fmt: skip
    readers = {
        "maintkit transport over paramiko": child_env({"MAINTKIT_BULK_SSH": "paramiko"}),
        "maintkit transport, bulk through ssh": child_env(),
    }
    rows = []
    for _ in range(2):
        for name, env in readers.items():
            out = subprocess.run(argv, capture_output=True, text=True, check=True, env=env)
            got, seconds, cpu = out.stdout.split()
            if int(got) != size:
                raise RuntimeError(f"{name} delivered {got} of {size} bytes")
            rows.append((name, float(seconds), float(cpu)))
        started = time.perf_counter()
        timed = run_timed([*_ssh_argv(bench), f"head -c {size} /dev/zero"], stdout=subprocess.DEVNULL)
        timed.check("ssh head")
        rows.append(("plain ssh (process start included)", time.perf_counter() - started, timed.cpu_seconds))
    table = []
    for name in (*readers, "plain ssh (process start included)"):
        mine = [r for r in rows if r[0] == name]
        secs = median(r[1] for r in mine)
        cpu_s = median(r[2] for r in mine)
        table.append((name, f"{size / MB:.0f} MB", f"{size / MB / secs:.0f} MB/s", f"{cpu_s:.2f} s"))
    return table


def report(
    results: dict[tuple[str, str], dict[str, Result]],
    scenarios: list[Scenario],
    channel: list[tuple[str, str, str, str]],
) -> str:
    rows, checks = [], []
    for sc in scenarios:
        by_tool = results[(sc.kind, sc.label)]
        base = (
            median(by_tool["openssh"].seconds) if by_tool.get("openssh") and by_tool["openssh"].seconds else 0
        )
        for tool, res in by_tool.items():
            if not res.seconds:
                continue
            secs = median(res.seconds)
            rows.append(
                (
                    sc.kind,
                    sc.label,
                    tool,
                    f"{secs:.2f}",
                    f"{sc.source_bytes / MB / secs:.0f}",
                    ratio(secs, base) if base else "n/a",
                    f"{max(res.rss_kib) / 1024:.0f}",
                    f"{median(res.cpu):.2f}",
                    f"{res.stored / MB:.0f}",
                    f"{median(res.count_rows):.2f}" if res.count_rows else "",
                    len(res.seconds),
                )
            )
        if base and by_tool.get("maintkit-local") and by_tool["maintkit-local"].seconds:
            value = median(by_tool["maintkit-local"].seconds) / base
            checks.append(
                (f"{sc.kind} {sc.label}", "maintkit-local / openssh wall", f"{value:.2f}x",
                 f"≤ {TARGET_RATIO}x", verdict(value <= TARGET_RATIO))
            )  # fmt: skip
    for tool in ("maintkit-local", "maintkit-s3"):
        rss = [
            (sc, max(results[(sc.kind, sc.label)][tool].rss_kib) / 1024)
            for sc in scenarios
            if results[(sc.kind, sc.label)].get(tool) and results[(sc.kind, sc.label)][tool].rss_kib
        ]
        for sc, mib in rss:
            checks.append(
                (f"{sc.kind} {sc.label}", f"{tool} peak RSS", f"{mib:.0f} MiB ({mib * MiB / MB:.0f} MB)",
                 f"≤ {TARGET_RSS_MB} MB", verdict(mib * MiB / MB <= TARGET_RSS_MB))
            )  # fmt: skip
        if len(rss) > 1:
            spread = max(m for _, m in rss) - min(m for _, m in rss)
            checks.append(
                ("all sizes", f"{tool} peak RSS spread", f"{spread:.0f} MiB", "flat (≤ 20 MiB)",
                 verdict(spread <= 20))
            )  # fmt: skip
    header = (
        "data",
        "size",
        "tool",
        "median s",
        "MB/s",
        "vs OpenSSH",
        "peak RSS MiB",
        "CPU s",
        "stored MB",
        "of which counting rows s",
        "runs",
    )
    sections = [
        ("Wall time (median), throughput in source MB per second, control process peak RSS and CPU",
         markdown_table(header, rows)),
        ("Targets", markdown_table(("data", "measure", "measured", "target", "verdict"), checks)),
        ("SSH channel alone (head -c N /dev/zero, median of 2)",
         markdown_table(("reader", "bytes", "throughput", "client CPU"), channel)),
    ]  # fmt: skip
    facts = machine_facts(
        {
            "restic": ["restic", "version"],
            "MariaDB": ["mariadb-dump", "--version"],
            "zstd": ["zstd", "--version"],
        }
    )
    return print_report("Snapshot throughput", sections, facts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a few MB, one round (CI: the script runs)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds at 1 GB (default 3)")
    parser.add_argument("--output", type=Path, help="also write the markdown report to this file")
    parser.add_argument("--tools", default=",".join(ALL_TOOLS), help="comma-separated subset of the default")
    parser.add_argument("--sizes", default="", help="only these sizes, e.g. '1 GB,2 GB' (default: all)")
    parser.add_argument("--keep-journals", type=Path, help="copy maintkit's journals here (profiling)")
    args = parser.parse_args(argv)
    if args.keep_journals:
        global KEEP_JOURNALS
        KEEP_JOURNALS = args.keep_journals
        KEEP_JOURNALS.mkdir(parents=True, exist_ok=True)
    missing = [t for t in ("ssh", "zstd", "mariadb-dump", "restic") if need_system(t) is None]
    if missing:
        raise SystemExit(f"missing {missing}: run benchmarks/setup")
    tools_all = ALL_TOOLS
    core = ("openssh", "maintkit-local")
    if args.quick:
        db_rows = {"bench_s": 15_000}
        file_parts = {"p1": 5 * MB, "p2": 5 * MB}
        scenarios = [
            Scenario("db", "10 MB", database="bench_s", tools=tools_all),
            Scenario("files", "5 MB", paths=["p1"], tools=tools_all),
            Scenario("files", "10 MB", paths=["p1", "p2"], tools=core),
        ]
    else:
        rounds = max(3, args.rounds)
        db_rows = {"bench_s": 100 * MB // DUMP_BYTES_PER_ROW, "bench_l": 1000 * MB // DUMP_BYTES_PER_ROW}
        file_parts = {"p1": 100 * MB, "p2": 900 * MB, "p3": 1000 * MB}
        scenarios = [
            Scenario("db", "100 MB", database="bench_s", tools=tools_all, rounds=1),
            Scenario("db", "1 GB", database="bench_l", tools=core, rounds=rounds),
            Scenario("db", "1 GB", database="bench_l", tools=tools_all[2:], rounds=1),
            Scenario("files", "100 MB", paths=["p1"], tools=tools_all, rounds=1),
            Scenario("files", "1 GB", paths=["p1", "p2"], tools=core, rounds=rounds),
            Scenario("files", "1 GB", paths=["p1", "p2"], tools=tools_all[2:], rounds=1),
            Scenario("files", "2 GB", paths=["p1", "p2", "p3"], tools=core, rounds=1),
        ]
    wanted = {t for t in args.tools.split(",") if t} | {"openssh"}  # the baseline is always measured
    sizes_wanted = {x.strip() for x in args.sizes.split(",") if x.strip()}
    for sc in scenarios:
        sc.tools = tuple(t for t in sc.tools if t in wanted)
    scenarios = [sc for sc in scenarios if sc.tools and (not sizes_wanted or sc.label in sizes_wanted)]
    if not any(sc.database == "bench_l" for sc in scenarios):
        db_rows.pop("bench_l", None)
    if not any(sc.kind == "files" and "p3" in sc.paths for sc in scenarios):
        file_parts.pop("p3", None)
    root = Path(tempfile.mkdtemp(prefix="mk-bench-snap-"))
    started = time.monotonic()
    bench = Bench(root)
    try:
        for name, rows in db_rows.items():
            log(f"seeding {name}: {rows} rows")
            bench.seed_database(name, rows)
        shutil.rmtree(bench.site, ignore_errors=True)
        sizes = {}
        for index, (part, size) in enumerate(file_parts.items()):
            log(f"writing site/{part}: {size / MB:.0f} MB")
            sizes[part] = bench.make_files(part, size, seed=index)
        bench.chown_site()
        dumps = {name: bench.dump_size(name) for name in db_rows}
        for sc in scenarios:
            sc.source_bytes = dumps[sc.database] if sc.kind == "db" else sum(sizes[p] for p in sc.paths)
        log(f"data ready in {time.monotonic() - started:.0f} s: dumps {dumps}")
        merged = _merge(scenarios)
        results = measure(bench, scenarios, root)
        channel = channel_throughput(bench, 64 * MB if args.quick else 1000 * MB)
    finally:
        bench.stop()
        shutil.rmtree(bench.site, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
    text = report(results, merged, channel)
    log(f"done in {time.monotonic() - started:.0f} s")
    if args.output:
        args.output.write_text(text)
    return 0


def _merge(scenarios: list[Scenario]) -> list[Scenario]:
    """One report row group per (kind, size), whichever scenarios measured it."""
    seen: dict[tuple[str, str], Scenario] = {}
    for sc in scenarios:
        seen.setdefault((sc.kind, sc.label), sc)
    return list(seen.values())


if __name__ == "__main__":
    sys.exit(main())
