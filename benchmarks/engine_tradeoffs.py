"""Three questions the restic engine leaves open, answered with ratios measured in one run (issue 16).

(a) **Database dumps: through restic, or streamed as today?** A shop's dump changes a little every
    night. Three nights of one SQL dump (night 2 and 3: 1 % of the rows rewritten, 0.5 % added) are
    stored both ways: ``ssh host 'zstd -c < dump' > night.sql.zst`` (today's stream: every night stored
    whole) against ``restic backup --stdin`` on the host through the remote forward into the
    append-only server (only new chunks stored). Reported: wall seconds and bytes stored per night.
(b) **A tree of 100,000 small files** (a ``vendor/`` + media mix): first and second (unchanged)
    snapshot with ``ssh 'tar | zstd' > file``, restic on the host through OpenSSH's ``-R`` forward,
    restic on the host through maintkit's own forward (the path the product takes,
    :meth:`SSHTransport.forward_remote`: the system ``ssh -R``, and paramiko's as before it), and
    restic alone (on the same machine, a local repository:
    what the engine costs without any SSH).
(c) **The first, full snapshot** of a media-like tree: restic through each forward against
    ``ssh 'tar | zstd' > file``, the baseline of the issue's target (<= 1.1x), and restic alone (what
    the engine costs without SSH). Median of interleaved rounds, each restic round into a fresh
    repository with the restic cache removed.

Every candidate runs against a real sshd on 127.0.0.1 (tests/sshd.py) and the real
``rclone serve restic --append-only`` (:class:`maintkit.storage.restic.AppendOnlyServer`).

Usage::

    .venv/bin/python benchmarks/engine_tradeoffs.py [--quick] [--files 100000] [--tree-mb 200]
        [--dump-mb 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from common import log, machine_facts, markdown_table, need_system, print_report
from tests.sshd import SSHHost, SSHServers, open_transport, write_known_hosts

from maintkit.storage.restic import AppendOnlyServer, Repository, ensure_password_file, read_password
from maintkit.transport.openssh import DISABLE_ENV
from maintkit.transport.ssh.transport import SSHTransport

MB = 1_000_000
USER = os.environ.get("MAINTKIT_TEST_USER_PREFIX", "mk") + "-bench-eng"
BACKUP_SMALL = "backup -q small"


@dataclass
class Result:
    seconds: float
    stored: int  # bytes the storage holds after this run (cumulative)
    link: int | None = None  # bytes on the SSH connection (OpenSSH's own count), None when unknown


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def link_bytes(stderr: bytes) -> int | None:
    match = re.search(rb"Transferred: sent (\d+), received (\d+) bytes", stderr)
    return int(match.group(1)) + int(match.group(2)) if match else None


# -- data ------------------------------------------------------------------------------------------


def make_dump(path: Path, size: int, rng: random.Random) -> list[bytes]:
    """A mysqldump-like file: extended INSERTs of ~1,000 rows, rows of an order table. Returns the rows."""
    rows = []
    written, n = 0, 0
    while written < size:
        n += 1
        row = (
            f"({n},'{rng.randrange(10**9):09d}','customer{rng.randrange(10**5)}@example.com',"
            f"{rng.randrange(100, 99999)}.{rng.randrange(100):02d},'2026-{rng.randrange(1, 13):02d}-"
            f"{rng.randrange(1, 29):02d} {rng.randrange(24):02d}:{rng.randrange(60):02d}:00',"
            f"'{rng.choice(('pending', 'processing', 'complete', 'canceled'))}','{rng.randbytes(24).hex()}')"
        ).encode()
        rows.append(row)
        written += len(row) + 1
    write_dump(path, rows)
    return rows


def write_dump(path: Path, rows: list[bytes]) -> None:
    with path.open("wb") as out:
        out.write(b"-- MariaDB dump 10.19\n\nCREATE TABLE `sales_order` (id INT PRIMARY KEY);\n")
        for start in range(0, len(rows), 1000):
            out.write(b"INSERT INTO `sales_order` VALUES " + b",".join(rows[start : start + 1000]) + b";\n")
        out.write(b"-- Dump completed on 2026-12-05 03:00:00\n")


def change_dump(path: Path, rows: list[bytes], rng: random.Random, *, scattered: bool) -> None:
    """A night of a shop: 1 % of the rows rewritten (status, total), 0.5 % new orders at the end.

    ``scattered``: the rewritten rows are anywhere in the table (the worst case for chunking: every
    INSERT statement of ~1,000 rows holds a change). Otherwise they are among the newest 5 % (orders
    change status in their first days; the catalogue and old orders do not), which is how a
    shop's tables change.
    """
    count = max(1, len(rows) // 100)
    first = 0 if scattered else len(rows) - max(count, len(rows) // 20)
    for i in rng.sample(range(first, len(rows)), count):
        rows[i] = rows[i].replace(b"'pending'", b"'complete'").replace(b".", b".9", 1)
    base = len(rows)
    for k in range(max(1, len(rows) // 200)):
        row = (
            f"({base + k + 1},'{rng.randrange(10**9):09d}','new@example.com',10.00,"
            f"'2026-12-05 02:00:00','pending','{rng.randbytes(24).hex()}')"
        )
        rows.append(row.encode())
    write_dump(path, rows)


def make_small_files(base: Path, count: int, rng: random.Random) -> int:
    """``count`` files: 85 % PHP/JSON/XML text of 0.2-8 kB (vendor/), 15 % small images of 2-40 kB."""
    words = [
        f"{rng.choice(('get', 'set', 'load', 'save', 'fetch'))}{rng.randrange(10**5):x}" for _ in range(2000)
    ]
    total = 0
    for i in range(count):
        folder = base / f"vendor{i // 5000:02d}" / f"pkg{(i // 100) % 50:02d}"
        if i % 100 == 0:
            folder.mkdir(parents=True, exist_ok=True)
        if i % 7 == 0:
            data = rng.randbytes(rng.randrange(2_000, 40_000))
            name = f"thumb{i}.jpg"
        else:
            lines = (f"    public function {rng.choice(words)}() {{ return $this->{rng.choice(words)}; }}"
                     for _ in range(rng.randrange(3, 120)))  # fmt: skip
            data = ("<?php\nclass C" + str(i) + "\n{\n" + "\n".join(lines) + "\n}\n").encode()
            name = f"Class{i}.php"
        (folder / name).write_bytes(data)
        total += len(data)
    return total


def make_media_tree(base: Path, size: int, rng: random.Random) -> int:
    """60 % incompressible media of 50-500 kB, 40 % text, as benchmarks/incremental_engine.py."""
    base.mkdir(parents=True, exist_ok=True)
    line = b"    public function load($id) { return $this->repository->getById($id); }\n"
    written, index = 0, 0
    while written < size:
        index += 1
        folder = base / f"d{index // 200:03d}"
        folder.mkdir(exist_ok=True)
        if written < size * 0.6:
            data = rng.randbytes(min(rng.randrange(50_000, 500_000), size - written))
        else:
            data = b"".join(
                line.replace(b"$id", f"$v{rng.randrange(10**6)}".encode())
                for _ in range(rng.randrange(40, 400))
            )
        (folder / f"f{index:06d}").write_bytes(data)
        written += len(data)
    return written


# -- the host and the candidates -------------------------------------------------------------------


class Bench:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.servers = SSHServers([("enghost", USER)])
        self.host: SSHHost = self.servers.hosts["enghost"]
        self.known_hosts = write_known_hosts(root / "known_hosts", [self.host])
        self.work = self.host.home / f"bench-{secrets.token_hex(3)}"
        self.work.mkdir()
        self.password_file = ensure_password_file(root / "control" / "restic.password")
        self.password = read_password(self.password_file)
        self._transport_cm = open_transport(self.host, self.known_hosts, root)
        self.transport: SSHTransport = self._transport_cm.__enter__()

    def stop(self) -> None:
        self._transport_cm.__exit__(None, None, None)
        shutil.rmtree(self.work, ignore_errors=True)
        shutil.rmtree(self.host.home / ".cache", ignore_errors=True)
        self.servers.stop()

    def chown(self) -> None:
        subprocess.run(["chown", "-R", f"{USER}:{USER}", str(self.work)], check=True)

    def forget_cache(self) -> None:
        """The host's restic cache: removed before a "first" snapshot so it is one."""
        shutil.rmtree(self.host.home / ".cache" / "restic", ignore_errors=True)

    def ssh_argv(self, *extra: str) -> list[str]:
        h = self.host
        return [
            "ssh", "-T", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "LogLevel=VERBOSE", "-i", str(h.key_file), "-p", str(h.port), *extra,
            f"{h.user}@{h.address}",
        ]  # fmt: skip

    def streamed(self, remote: str, out: Path) -> Result:
        """``ssh host REMOTE > out``: today's streamed snapshot, every night stored whole."""
        out.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        with out.open("wb") as handle:
            proc = subprocess.run(
                [*self.ssh_argv(), remote], stdout=handle, stderr=subprocess.PIPE, check=False
            )
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{remote} failed: {proc.stderr.decode()[-1000:]}")
        return Result(seconds, du(out.parent), link_bytes(proc.stderr))

    def repository(self, name: str) -> Repository:
        repo = Repository(str(self.root / name), self.password_file)
        repo.init_if_missing()
        return repo

    @contextmanager
    def server(self, repo: Repository) -> Iterator[AppendOnlyServer]:
        with AppendOnlyServer(repo.location) as server:
            yield server

    def restic_openssh(self, repo: Repository, args: str) -> Result:
        """restic on the host through OpenSSH's ``-R`` forward; secrets on stdin, not argv."""
        with self.server(repo) as server:
            host_port = _free_port()
            script = (
                "IFS= read -r RESTIC_PASSWORD; IFS= read -r RESTIC_REPOSITORY; "
                f"export RESTIC_PASSWORD RESTIC_REPOSITORY; cd {self.work} && exec restic {args}"
            )
            start = time.perf_counter()
            proc = subprocess.Popen(
                [*self.ssh_argv("-o", "ExitOnForwardFailure=yes", "-R",
                                f"127.0.0.1:{host_port}:127.0.0.1:{server.port}"), script],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )  # fmt: skip
            _out, err = proc.communicate(f"{self.password}\n{server.url(host_port)}\n".encode())
            seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"restic over ssh -R failed: {err.decode()[-1500:]}")
        return Result(seconds, du(Path(repo.location)), link_bytes(err))

    def restic_maintkit(self, repo: Repository, args: str, *, paramiko: bool = False) -> Result:
        """restic on the host through maintkit's forward, as the product runs it: the system
        ``ssh -R`` (:mod:`maintkit.transport.openssh_forward`), or with ``paramiko`` the forward in
        Python it replaced (``MAINTKIT_BULK_SSH=paramiko``, which the transport reads at each call)."""
        saved = os.environ.get(DISABLE_ENV)
        if paramiko:
            os.environ[DISABLE_ENV] = "paramiko"
        try:
            with self.server(repo) as server:
                start = time.perf_counter()
                with self.transport.forward_remote(server.port) as port:
                    result = self.transport.run(
                        f"cd {self.work} && exec restic {args}",
                        env={"RESTIC_REPOSITORY": server.url(port), "RESTIC_PASSWORD": self.password},
                        secret=True, timeout=3600,
                    )  # fmt: skip
                seconds = time.perf_counter() - start
        finally:
            if saved is None:
                os.environ.pop(DISABLE_ENV, None)
            else:
                os.environ[DISABLE_ENV] = saved
        if result.rc != 0:
            raise RuntimeError(f"restic over maintkit's forward failed: {result.stderr[-1500:]}")
        return Result(seconds, du(Path(repo.location)))

    def restic_alone(self, repo: Repository, folder: Path) -> Result:
        """restic on this machine into a local repository: the engine's own cost, no SSH, no HTTP."""
        env = {**os.environ, "RESTIC_CACHE_DIR": str(self.root / "alone-cache")}
        start = time.perf_counter()
        subprocess.run(
            ["restic", "-r", repo.location, "--password-file", str(self.password_file), "backup", "-q", "."],
            cwd=folder, env=env, check=True, capture_output=True,
        )  # fmt: skip
        return Result(time.perf_counter() - start, du(Path(repo.location)))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the three questions ---------------------------------------------------------------------------


def dumps(bench: Bench, size: int) -> str:
    """Three nights of one dump, streamed and through restic; the changes recent or scattered."""
    rows_out = []
    for scattered in (False, True):
        rng = random.Random(16)
        dump = bench.work / "dump.sql"
        rows = make_dump(dump, size, rng)
        bench.chown()
        kind = "scattered" if scattered else "recent"
        repo = bench.repository(f"dump-restic-{kind}")
        streamed: list[Result] = []
        engine: list[Result] = []
        for night in (1, 2, 3):
            if night > 1:
                change_dump(dump, rows, rng, scattered=scattered)
                bench.chown()
            log(f"(a) dump night {night}, {kind} changes")
            out = bench.root / f"dumps-{kind}" / f"n{night}.sql.zst"
            streamed.append(bench.streamed(f"zstd -q -c < {dump}", out))
            args = f"backup -q --stdin --stdin-filename db.sql < {dump}"
            engine.append(bench.restic_openssh(repo, args))
        for name, nights in (("streamed zstd", streamed), ("restic --stdin, -R forward", engine)):
            for i, r in enumerate(nights):
                grown = r.stored - (nights[i - 1].stored if i else 0)
                rows_out.append(
                    (
                        kind, name, i + 1, f"{r.seconds:.2f}", f"{r.seconds / streamed[i].seconds:.2f}x",
                        f"{grown / MB:.2f}", f"{r.stored / MB:.2f}", f"{r.stored / streamed[-1].stored:.0%}",
                    )
                )  # fmt: skip
    head = (
        "changes",
        "candidate",
        "night",
        "wall s",
        "of streamed",
        "stored +MB",
        "total MB",
        "total of streamed",
    )
    return markdown_table(head, rows_out)


def small_files(bench: Bench, count: int) -> tuple[str, int]:
    tree = bench.work / "small"
    total = make_small_files(tree, count, random.Random(100))
    bench.chown()
    subprocess.run(["sync"], check=False)
    candidates: dict[str, Callable[[int], Result]] = {}
    repos = {n: bench.repository(f"small-{n}") for n in ("openssh", "maintkit", "paramiko", "alone")}
    bench.forget_cache()
    candidates["ssh 'tar | zstd' > file"] = lambda n: bench.streamed(
        f"set -o pipefail; tar -C {tree} -cf - . | zstd -q -c", bench.root / "small-tar" / f"n{n}.tar.zst"
    )
    candidates["restic, OpenSSH -R forward"] = lambda n: bench.restic_openssh(
        repos["openssh"], "backup -q small"
    )
    candidates["restic, maintkit forward (ssh -R)"] = lambda n: bench.restic_maintkit(
        repos["maintkit"], "backup -q small"
    )
    candidates["restic, maintkit forward (paramiko)"] = lambda n: bench.restic_maintkit(
        repos["paramiko"], "backup -q small", paramiko=True
    )
    candidates["restic alone (local repo)"] = lambda n: bench.restic_alone(repos["alone"], tree)
    results: dict[str, list[Result]] = {name: [] for name in candidates}
    for night in (1, 2):
        for name, run in candidates.items():
            if night == 1 and "maintkit" in name:
                bench.forget_cache()  # the OpenSSH run before filled the host's cache
            log(f"(b) {count} small files, snapshot {night}: {name}")
            results[name].append(run(night))
    base = results["ssh 'tar | zstd' > file"]
    rows = []
    for name, (first, second) in results.items():
        rows.append((name, f"{first.seconds:.2f}", f"{first.seconds / base[0].seconds:.2f}x",
                     f"{second.seconds:.2f}", f"{second.seconds / first.seconds:.0%}",
                     f"{(second.stored - first.stored) / MB:.2f}", f"{second.stored / MB:.1f}"))  # fmt: skip
    head = ("candidate", "1st s", "1st of tar", "2nd s", "2nd of 1st", "2nd stored +MB", "stored total MB")
    return markdown_table(head, rows), total


def first_full(bench: Bench, size: int, rounds: int) -> tuple[str, list[str]]:
    tree = bench.work / "media"
    total = make_media_tree(tree, size, random.Random(7))
    bench.chown()
    subprocess.run(["sync"], check=False)
    names = (
        "ssh 'tar | zstd' > file",
        "restic, OpenSSH -R forward",
        "restic, maintkit forward (ssh -R)",
        "restic, maintkit forward (paramiko)",
        "restic alone",
    )
    times: dict[str, list[float]] = {name: [] for name in names}
    stored: dict[str, int] = {}
    for n in range(rounds):
        for name in times:
            log(f"(c) first full snapshot of {total / MB:.0f} MB, round {n + 1}: {name}")
            if name.startswith("ssh"):
                out = bench.root / "media-tar" / "full.tar.zst"
                result = bench.streamed(f"set -o pipefail; tar -C {tree} -cf - . | zstd -q -c", out)
            elif name == "restic alone":
                shutil.rmtree(bench.root / "alone-cache", ignore_errors=True)
                repo = bench.repository(f"media-{secrets.token_hex(3)}")
                result = bench.restic_alone(repo, tree)
                shutil.rmtree(repo.location, ignore_errors=True)
            else:
                bench.forget_cache()
                repo = bench.repository(f"media-{secrets.token_hex(3)}")
                if "OpenSSH" in name:
                    result = bench.restic_openssh(repo, "backup -q media")
                else:
                    result = bench.restic_maintkit(repo, "backup -q media", paramiko="paramiko" in name)
                shutil.rmtree(repo.location, ignore_errors=True)
            times[name].append(result.seconds)
            stored[name] = result.stored
    base = statistics.median(times["ssh 'tar | zstd' > file"])
    rows = []
    for name, values in times.items():
        med = statistics.median(values)
        rows.append((name, " / ".join(f"{v:.2f}" for v in values), f"{med:.2f}", f"{med / base:.2f}x",
                     f"{stored[name] / MB:.1f}"))  # fmt: skip
    head = ("candidate", "rounds s", "median s", "of tar|zstd", "stored MB")
    return markdown_table(head, rows), [f"{total / MB:.0f} MB"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round (benchmarks/run-quick)")
    parser.add_argument("--files", type=int, default=100_000, help="(b) number of small files")
    parser.add_argument("--tree-mb", type=int, default=200, help="(c) media tree size")
    parser.add_argument("--dump-mb", type=int, default=100, help="(a) SQL dump size")
    parser.add_argument("--rounds", type=int, default=3, help="(c) interleaved rounds")
    parser.add_argument("--parts", default="abc", help="which questions to measure (default: abc)")
    args = parser.parse_args(argv)
    if args.quick:
        args.files, args.tree_mb, args.dump_mb, args.rounds = 500, 5, 2, 1
    for tool in ("restic", "rclone", "zstd", "ssh"):
        if need_system(tool) is None:
            print(f"{tool} is missing", file=sys.stderr)
            return 2
    root = Path(tempfile.mkdtemp(prefix="mk-bench-eng-"))
    bench = Bench(root)
    try:
        sections = []
        if "a" in args.parts:
            sections.append(
                (
                    f"(a) a {args.dump_mb} MB SQL dump over 3 nights (1 % of rows rewritten and 0.5 % added "
                    "each night after the first; recent: the rewritten rows among the newest 5 %, scattered: "
                    "anywhere in the table)",
                    dumps(bench, args.dump_mb * MB),
                )
            )
        if "b" in args.parts:
            table_b, small_total = small_files(bench, args.files)
            sections.append(
                (
                    f"(b) {args.files:,} small files ({small_total / MB:.0f} MB): "
                    "first and second (unchanged) snapshot",
                    table_b,
                )
            )
        if "c" in args.parts:
            table_c, (tree_size,) = first_full(bench, args.tree_mb * MB, args.rounds)
            sections.append(
                (
                    f"(c) first full snapshot of a {tree_size} media-like tree, median of {args.rounds} "
                    "interleaved rounds (fresh repository and restic cache each round)",
                    table_c,
                )
            )
        print_report(
            "Incremental engine: dumps, small files, first snapshot",
            sections,
            machine_facts({"restic": ["restic", "version"], "rclone": ["rclone", "version"]}),
        )
        return 0
    finally:
        bench.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
