"""Which engine for incremental file snapshots: three nights of one tree, through real sshd.

Why this script exists: issue 16 asks for file snapshots whose nightly cost follows the change, not
the tree, without a chunk store of our own and without giving up the pull model (the host never
holds storage credentials and cannot delete what it has stored). Each candidate below keeps that
model; this script measures them on the same generated tree so the choice rests on numbers.

Candidates (every one a separate process tree timed from the outside):

* ``full-tar``: ``ssh host 'tar | zstd' > file`` — what maintkit does today (its snapshot is
  at most 1.1 times this pipeline, docs/performance.md), so every night stores and moves the whole tree;
* ``restic-R``: restic *on the host* backs up to ``rest:http://127.0.0.1:<port>/``, a port that
  ``ssh -R`` forwards to ``rclone serve restic --append-only`` on the control node, which writes
  the repository with the control node's own storage access. The host gets the repository
  password on stdin for the run and a one-run HTTP user/password; it never sees a storage
  credential, and append-only refuses deletes and overwrites;
* ``borg-R``: borg 1.2 *on the host* in pull mode: ``borg create`` reaches ``borg serve
  --append-only --restrict-to-repository`` on the control node through ``ssh -R`` (borg's own
  "pull backup" recipe: socat on both sides); repokey-blake2, zstd 3;
* ``rsync+restic``: ``rsync -a --delete`` pulls the tree into a control-side mirror (only the
  changed files cross), then restic on the control node backs the mirror up. Nothing runs on the
  host but rsync; the cost is a full copy of every site's tree on the control node's disk.

Nights: (1) first backup, (2) the tree unchanged, (3) 1 % of the files changed (half rewritten,
a quarter new, a quarter deleted). Reported per night: wall seconds, bytes that crossed the SSH
link (both directions, encrypted, from OpenSSH's own "Transferred: sent …, received …"
line at LogLevel=VERBOSE), and bytes stored (``du`` of the repository or folder; for
rsync+restic the mirror is listed apart).

Usage::

    .venv/bin/python benchmarks/incremental_engine.py [--size-mb 200] [--change 0.01] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from common import log, machine_facts, markdown_table, need_system, print_report
from tests.sshd import SSHHost, SSHServers, write_known_hosts

MB = 1_000_000
USER = os.environ.get("MAINTKIT_TEST_USER_PREFIX", "mk") + "-bench-incr"


@dataclass
class Night:
    seconds: float
    link_bytes: int
    stored_bytes: int
    extra: str = ""


def make_tree(base: Path, size: int, seed: int) -> int:
    """``size`` bytes: 60 % incompressible "media" (50-500 kB), 40 % text "code" (as snapshot_throughput)."""
    rng = random.Random(seed)
    base.mkdir(parents=True, exist_ok=True)
    words = [f"{rng.choice(('get', 'set', 'load', 'save'))}{rng.randrange(10**6):x}" for _ in range(4000)]
    lines = [
        f"    public function {rng.choice(words)}(${rng.choice(words)}) "
        f"{{ return $this->{rng.choice(words)}; }}"
        for _ in range(3000)
    ]
    written, index = 0, 0
    while written < size:
        index += 1
        sub = base / f"d{index // 200:03d}"
        sub.mkdir(exist_ok=True)
        if written < size * 0.6:
            n = min(rng.randrange(50_000, 500_000), size - written)
            (sub / f"img{index:06d}.jpg").write_bytes(rng.randbytes(n))
        else:
            text = ("\n".join(rng.choices(lines, k=rng.randrange(40, 400))) + "\n").encode()[: size - written]
            (sub / f"Model{index:06d}.php").write_bytes(text)
            n = len(text)
        written += n
    return written


def change_tree(base: Path, share: float, seed: int) -> int:
    """Change ``share`` of the files: half rewritten, a quarter added, a quarter deleted; bytes written."""
    rng = random.Random(seed)
    files = sorted(p for p in base.rglob("*") if p.is_file())
    count = max(4, int(len(files) * share))
    picked = rng.sample(files, count)
    written = 0
    for path in picked[: count // 2]:
        data = (
            rng.randbytes(path.stat().st_size)
            if path.suffix == ".jpg"
            else path.read_bytes() + b"// changed\n"
        )
        path.write_bytes(data)
        written += len(data)
    for i, path in enumerate(picked[count // 2 : count * 3 // 4]):
        data = rng.randbytes(rng.randrange(50_000, 500_000))
        (path.parent / f"new{seed}-{i}.jpg").write_bytes(data)
        written += len(data)
    for path in picked[count * 3 // 4 :]:
        path.unlink()
    return written


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def link_bytes(stderr: bytes) -> int:
    """Both directions of the SSH connection, from OpenSSH's own exit line (LogLevel=VERBOSE)."""
    match = re.search(rb"Transferred: sent (\d+), received (\d+) bytes", stderr)
    if match is None:
        raise RuntimeError("ssh printed no 'Transferred:' line")
    return int(match.group(1)) + int(match.group(2))


class Bench:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.servers = SSHServers([("incrhost", USER)])
        self.host: SSHHost = self.servers.hosts["incrhost"]
        self.known_hosts = write_known_hosts(root / "known_hosts", [self.host])
        self.site = self.host.home / f"site-{secrets.token_hex(3)}"
        self.restic = need_system("restic") or "restic"

    def stop(self) -> None:
        shutil.rmtree(self.site, ignore_errors=True)
        shutil.rmtree(self.host.home / ".cache", ignore_errors=True)
        self.servers.stop()

    def ssh_argv(self, *extra: str) -> list[str]:
        h = self.host
        return [
            "ssh", "-T", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "LogLevel=VERBOSE", "-i", str(h.key_file), "-p", str(h.port), *extra,
            f"{h.user}@{h.address}",
        ]  # fmt: skip

    def chown(self) -> None:
        subprocess.run(["chown", "-R", f"{USER}:{USER}", str(self.site)], check=True)

    # -- candidates ---------------------------------------------------------------------------

    def full_tar(self, night: int) -> Night:
        out = self.root / "full-tar" / f"night{night}.tar.zst"
        out.parent.mkdir(exist_ok=True)
        remote = f"set -o pipefail; tar -C {self.site} -c -f - -- . | zstd -q -c"
        start = time.perf_counter()
        with out.open("wb") as handle:
            proc = subprocess.run(
                [*self.ssh_argv(), remote], stdout=handle, stderr=subprocess.PIPE, check=False
            )
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError("full-tar pipeline failed")
        return Night(seconds, link_bytes(proc.stderr), du(out.parent))

    def restic_forwarded(self, night: int, password: str) -> Night:
        repo = self.root / "restic-R" / "repo"
        repo.parent.mkdir(exist_ok=True)
        rclone_port, host_port = free_port(), free_port()
        http_user, http_pass = "mk", secrets.token_urlsafe(18)
        server = subprocess.Popen(
            [
                "rclone", "serve", "restic", "--append-only", "--addr", f"127.0.0.1:{rclone_port}",
                "--user", http_user, "--pass", http_pass, str(repo),
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            _wait_port(rclone_port)
            url = f"rest:http://{http_user}:{http_pass}@127.0.0.1:{host_port}/"
            # the secrets come on stdin, never in argv (ps) nor in a file on the host
            script = (
                "IFS= read -r RESTIC_PASSWORD; IFS= read -r RESTIC_REPOSITORY; "
                "export RESTIC_PASSWORD RESTIC_REPOSITORY; "
                f"if [ {night} = 1 ]; then {self.restic} init -q >/dev/null || exit 3; fi; "
                f"exec {self.restic} backup --json -q {self.site}"
            )
            start = time.perf_counter()
            proc = subprocess.Popen(
                [*self.ssh_argv("-o", "ExitOnForwardFailure=yes", "-R",
                                f"127.0.0.1:{host_port}:127.0.0.1:{rclone_port}"), script],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )  # fmt: skip
            out, err = proc.communicate(f"{password}\n{url}\n".encode())
            seconds = time.perf_counter() - start
            if proc.returncode != 0:
                raise RuntimeError(f"restic over ssh -R failed: {err.decode()[-2000:]}")
            summary = [json.loads(line) for line in out.decode().splitlines() if '"summary"' in line]
            added = summary[-1].get("data_added", 0) if summary else 0
            return Night(seconds, link_bytes(err), du(repo), f"restic data_added {added / MB:.2f} MB")
        finally:
            server.terminate()
            server.wait(timeout=10)

    def borg_forwarded(self, night: int, password: str) -> Night:
        """borg *on the host* in pull mode: ``borg create`` reaches ``borg serve --append-only
        --restrict-to-repository`` on the control node through ``ssh -R``, as borg's own "pull
        backup" recipe does with socat: its ``BORG_RSH`` is ``socat`` to the forwarded port (so
        the host needs borg and socat, but no SSH key and no account on the control node). The
        passphrase reaches the host on stdin; compression zstd level 3, as the tar pipeline.
        """
        repo = self.root / "borg-R" / "repo"
        repo.parent.mkdir(exist_ok=True)
        env = {**os.environ, "BORG_PASSPHRASE": password, "BORG_BASE_DIR": str(self.root / "borg-R")}
        if night == 1:
            subprocess.run(
                ["borg", "init", "--encryption", "repokey-blake2", str(repo)], env=env, check=True,
                capture_output=True,
            )  # fmt: skip
        serve_port, host_port = free_port(), free_port()
        serve = shlex.join(["borg", "serve", "--append-only", "--restrict-to-repository", str(repo)])
        server = subprocess.Popen(
            ["socat", f"TCP-LISTEN:{serve_port},bind=127.0.0.1,reuseaddr,fork", f"EXEC:{serve}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
        )  # fmt: skip
        try:
            _wait_port(serve_port)
            # borg appends "HOST borg serve ..." to BORG_RSH: sh -c ignores them; socat half-closes
            # the connection when borg is done (a bash /dev/tcp relay with two cats hangs there)
            relay = f"sh -c 'exec socat STDIO TCP:127.0.0.1:{host_port}'"
            script = (
                "IFS= read -r BORG_PASSPHRASE; export BORG_PASSPHRASE; "
                f"export BORG_RSH={shlex.quote(relay)} BORG_RELOCATED_REPO_ACCESS_IS_OK=yes; "
                f"cd {shlex.quote(str(self.site))} && exec borg create --compression zstd,3 "
                f"ssh://control{repo}::night{night} ."
            )
            start = time.perf_counter()
            proc = subprocess.Popen(
                [*self.ssh_argv("-o", "ExitOnForwardFailure=yes", "-R",
                                f"127.0.0.1:{host_port}:127.0.0.1:{serve_port}"), script],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )  # fmt: skip
            _out, err = proc.communicate(f"{password}\n".encode())
            seconds = time.perf_counter() - start
            if proc.returncode != 0:
                raise RuntimeError(f"borg over ssh -R failed: {err.decode()[-2000:]}")
            return Night(seconds, link_bytes(err), du(repo))
        finally:
            server.terminate()
            server.wait(timeout=10)

    def rsync_then_restic(self, night: int, password: str) -> Night:
        base = self.root / "rsync+restic"
        mirror, repo = base / "mirror", base / "repo"
        base.mkdir(exist_ok=True)
        env = {**os.environ, "RESTIC_PASSWORD": password, "RESTIC_CACHE_DIR": str(base / "cache")}
        if night == 1:
            subprocess.run(
                [self.restic, "-r", str(repo), "init", "-q"], env=env, check=True, capture_output=True
            )
        ssh = " ".join(self.ssh_argv()[:-1])
        start = time.perf_counter()
        rsync = subprocess.run(
            ["rsync", "-a", "--delete", "--stats", "-e", ssh,
             f"{self.host.user}@{self.host.address}:{self.site}/", str(mirror) + "/"],
            capture_output=True, check=True,
        )  # fmt: skip
        subprocess.run([self.restic, "-r", str(repo), "backup", "-q", "."], cwd=mirror, env=env, check=True)
        seconds = time.perf_counter() - start
        return Night(
            seconds,
            link_bytes(rsync.stderr),
            du(repo),
            f"+ mirror {du(mirror) / MB:.0f} MB on the control node",
        )


def _wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"rclone serve restic did not listen on {port}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="a 20 MB tree (benchmarks/run-quick)")
    parser.add_argument("--change", type=float, default=0.01, help="share of files changed before night 3")
    args = parser.parse_args(argv)
    if args.quick:
        args.size_mb = 20
    for tool in ("restic", "rclone", "rsync", "zstd"):
        if need_system(tool) is None:
            print(f"{tool} is missing", file=sys.stderr)
            return 2
    root = Path(tempfile.mkdtemp(prefix="mk-bench-incr-"))
    bench = Bench(root)
    password = secrets.token_urlsafe(24)
    results: dict[str, list[Night]] = {"full-tar": [], "restic-R": [], "rsync+restic": []}
    if need_system("borg") and need_system("socat"):
        results["borg-R"] = []
    else:
        log(
            "borg-R left out: borg and socat are needed on the control node "
            "(apt-get install borgbackup socat)"
        )
    try:
        size = make_tree(bench.site, args.size_mb * MB, seed=16)
        bench.chown()
        files = sum(1 for p in bench.site.rglob("*") if p.is_file())
        log(f"tree: {size / MB:.0f} MB in {files} files")
        changed = 0
        for night in (1, 2, 3):
            if night == 3:
                changed = change_tree(bench.site, args.change, seed=3)
                bench.chown()
                log(f"changed {args.change:.0%} of the files ({changed / MB:.1f} MB written)")
            subprocess.run(["sync"], check=False)
            for name in results:
                log(f"night {night}: {name}")
                if name == "full-tar":
                    results[name].append(bench.full_tar(night))
                elif name == "restic-R":
                    results[name].append(bench.restic_forwarded(night, password))
                elif name == "borg-R":
                    results[name].append(bench.borg_forwarded(night, password))
                else:
                    results[name].append(bench.rsync_then_restic(night, password))
        rows = []
        for name, nights in results.items():
            first = nights[0]
            for i, n in enumerate(nights, 1):
                grown = n.stored_bytes - (nights[i - 2].stored_bytes if i > 1 else 0)
                rows.append(
                    (
                        name, i, f"{n.seconds:.2f}", f"{n.seconds / first.seconds:.0%}",
                        f"{n.link_bytes / MB:.2f}", f"{grown / MB:.2f}", f"{n.stored_bytes / MB:.1f}",
                        n.extra,
                    )
                )  # fmt: skip
        table = markdown_table(
            (
                "candidate",
                "night",
                "wall s",
                "of night 1",
                "link MB",
                "stored +MB",
                "stored total MB",
                "note",
            ),
            rows,
        )
        sections = [
            (
                f"{size / MB:.0f} MB tree, {files} files; night 2 unchanged, night 3 after changing "
                f"{args.change:.0%} of the files ({changed / MB:.1f} MB written)",
                table,
            )
        ]
        print_report(
            "Incremental file snapshots: engine candidates",
            sections,
            machine_facts(
                {
                    "restic": ["restic", "version"],
                    "rclone": ["rclone", "version"],
                    "rsync": ["rsync", "--version"],
                    "borg": ["borg", "--version"],
                }
            ),
        )
        return 0
    finally:
        bench.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
