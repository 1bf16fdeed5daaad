"""Integrity hashing: what the code hash list adds to a nightly snapshot, measured in the same run.

The integrity watch needs the SHA-256 of every code file of a site with each snapshot. The options:

* ``plain``: ``maintkit run`` of a one-step ``snapshot`` of the site's files into a local folder,
  without a list: the baseline every ratio refers to, measured in the same round;
* ``concurrent`` (as built): the same snapshot with ``integrity: true``: the list is made on the
  host by ``find | sort | xargs sha256sum``, started detached just before the snapshot and read
  back just after it;
* ``separate``: the snapshot, then an ``integrity`` step (the list made after the snapshot, as
  before this option existed);
* ``from-stream`` (the other option considered): the per-file hashes computed on the control node
  from the tar stream it already reads. Measured as the extra work it would add to ``plain``: a
  process that decompresses the stored ``files.tar.zst`` (zstandard), walks its members
  (``tarfile`` in stream mode) and hashes the code files; wall and CPU seconds.

Data (generated, deterministic): a site folder on a loopback sshd host with 24,000 PHP "code"
files (~100 MB, app/code) and 962 random "media" files (~440 MB, pub/media: left out of the list as
the watch does): 24,962 files, ~540 MiB, the tree the first measurement used. Rounds are
interleaved (each round runs every variant, in a rotating order) and the medians are reported
with the spread (min-max). The page cache is warm (a shop's code is read all day).

Usage::

    .venv/bin/python benchmarks/integrity_hashing.py [--quick] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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
    print_report,
    ratio,
    run_timed,
    verdict,
)
from tests.sshd import SSHHost, SSHServers, write_known_hosts

USER = f"mk-bench-{os.environ.get('MAINTKIT_TEST_USER_PREFIX', '')}integ"
#: the list costs at most this share more than the snapshot alone (wall, median)
TARGET_RATIO = 1.25
FROM_STREAM = r"""
import hashlib, sys, tarfile, time, zstandard
started, cpu = time.perf_counter(), time.process_time()
count = 0
with open(sys.argv[1], "rb") as raw:
    stream = zstandard.ZstdDecompressor().stream_reader(raw, read_size=1 << 20)
    with tarfile.open(fileobj=stream, mode="r|") as archive:
        for member in archive:
            if not member.isfile():
                continue
            source = archive.extractfile(member)
            if member.name.startswith(("./pub/media/", "pub/media/")):
                continue  # left out of the list: tarfile skips the member's bytes on the next one
            digest = hashlib.sha256()
            while chunk := source.read(1 << 20):
                digest.update(chunk)
            count += 1
print(count, time.perf_counter() - started, time.process_time() - cpu)
"""


class Bench:
    """The host and the site folder every variant snapshots."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.servers = SSHServers([("integhost", USER)])
        self.host: SSHHost = self.servers.hosts["integhost"]
        self.known_hosts = write_known_hosts(root / "known_hosts", [self.host])
        self.site = self.host.home / f"site-{os.getpid()}"

    def stop(self) -> None:
        shutil.rmtree(self.site, ignore_errors=True)
        self.servers.stop()

    def make_site(self, code_files: int, media_files: int) -> tuple[int, int]:
        """``code_files`` PHP files (500 B-8 kB of text), ``media_files`` of 460 kB random bytes."""
        rng = random.Random(15)
        words = [b"function", b"return", b"$this->", b"public", b"array(", b"class", b"=>", b"if", b"{", b"}"]
        total = 0
        for index in range(code_files):
            folder = self.site / f"app/code/Vendor{index // 2000}/Module{index // 100}"
            folder.mkdir(parents=True, exist_ok=True)
            text = b"<?php\n" + b" ".join(rng.choices(words, k=rng.randint(500, 8000) // 6))
            (folder / f"File{index}.php").write_bytes(text)
            total += len(text)
        media = self.site / "pub/media/catalog"
        media.mkdir(parents=True, exist_ok=True)
        for index in range(media_files):
            data = rng.randbytes(460_000)
            (media / f"img{index}.jpg").write_bytes(data)
            total += len(data)
        subprocess.run(["chown", "-R", f"{USER}:{USER}", str(self.site)], check=True)
        return code_files + media_files, total

    def run(self, variant: str, work: Path) -> Timed:
        """One ``maintkit run`` of the variant's playbook into a fresh folder."""
        work.mkdir(parents=True)
        inventory = {
            "all": {
                "vars": {
                    "known_hosts": str(self.known_hosts),
                    "storage": [{"name": "local", "type": "local", "path": str(work / "snapshots")}],
                },
                "hosts": {
                    "integhost": {
                        "host": self.host.address,
                        "port": self.host.port,
                        "user": self.host.user,
                        "key": str(self.host.key_file),
                        "files": {"root": str(self.site)},
                    }
                },
            }
        }
        snapshot: dict[str, object] = {"files": "{{ files }}", "integrity": variant == "concurrent"}
        steps: list[dict[str, object]] = [{"name": "snapshot", "snapshot": snapshot}]
        if variant == "separate":
            steps.append({"name": "hash list", "integrity": str(self.site)})
        (work / "inventory.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))
        (work / "book.yml").write_text(yaml.safe_dump({"name": "bench", "steps": steps}, sort_keys=False))
        return run_timed(
            [VENV_BIN / "maintkit", "run", "book.yml", "-i", "inventory.yml", "--env", "bench",
             "--journal-dir", "journal"],
            cwd=work,
            env=child_env(),
        ).check(f"maintkit {variant}")  # fmt: skip


def listed_files(work: Path) -> int:
    """How many files the run's list holds (from its journal): the variants must agree."""
    for journal in (work / "journal").glob("*.jsonl"):
        for line in journal.read_text().splitlines():
            event = json.loads(line)
            if event.get("event") != "step_end":
                continue
            data = event.get("data") or {}
            if event.get("action") == "integrity":
                return int(data.get("count", 0))
            if event.get("action") == "snapshot" and "integrity" in data:
                return int(data["integrity"].get("count", 0))
    return 0


def from_stream(work: Path) -> tuple[float, float, int]:
    """Wall and CPU seconds of hashing the code members of the stored archive; members hashed."""
    [archive] = list((work / "snapshots").rglob("files.tar.zst"))
    done = subprocess.run(
        [sys.executable, "-c", FROM_STREAM, str(archive)], capture_output=True, text=True, check=True
    )
    count, wall, cpu = done.stdout.split()
    return float(wall), float(cpu), int(count)


def spread(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small tree, one round (run-quick)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    code, media = (1000, 20) if args.quick else (24_000, 962)
    rounds = 1 if args.quick else args.rounds
    root = Path(tempfile.mkdtemp(prefix="mk-bench-integrity-"))
    bench = Bench(root)
    try:
        files, size = bench.make_site(code, media)
        log(f"site: {files} files, {size / 2**20:.0f} MiB ({code} code files listed)")
        variants = ["plain", "concurrent", "separate"]
        seconds: dict[str, list[float]] = {v: [] for v in variants}
        cpu: dict[str, list[float]] = {v: [] for v in variants}
        stream_wall: list[float] = []
        stream_cpu: list[float] = []
        counts: dict[str, set[int]] = {v: set() for v in variants}
        run: Callable[[str, Path], Timed] = bench.run
        bench.run("plain", root / "warm-up")  # the page cache and the bytecode, for every variant
        for number in range(rounds):
            order = variants[number % 3 :] + variants[: number % 3]
            for variant in order:
                work = root / f"r{number}-{variant}"
                timed = run(variant, work)
                seconds[variant].append(timed.seconds)
                cpu[variant].append(timed.cpu_seconds)
                if variant != "plain":
                    counts[variant].add(listed_files(work))
                else:
                    wall, used, count = from_stream(work)
                    stream_wall.append(wall)
                    stream_cpu.append(used)
                    counts["plain"].add(count)
                shutil.rmtree(work / "snapshots", ignore_errors=True)
            log(f"round {number + 1}: " + ", ".join(f"{v} {seconds[v][-1]:.2f} s" for v in variants))
            time.sleep(0.5)
        base = median(seconds["plain"])
        rows = [
            (
                variant,
                f"{median(seconds[variant]):.2f}",
                spread(seconds[variant]),
                ratio(median(seconds[variant]), base),
                f"{median(cpu[variant]):.2f}",
                "/".join(str(c) for c in sorted(counts[variant])) if variant != "plain" else "-",
            )
            for variant in variants
        ]
        rows.append(
            (
                "from-stream (extra control-node work)",
                f"+{median(stream_wall):.2f}",
                spread(stream_wall),
                f"+{median(stream_wall) / base:.2f}x (CPU {median(stream_cpu):.2f} s)",
                f"{median(stream_cpu):.2f}",
                "/".join(str(c) for c in sorted(counts["plain"])),
            )
        )
        concurrent = median(seconds["concurrent"]) / base
        table = markdown_table(
            ("variant", "wall s (median)", "spread", "vs plain", "control CPU s", "files listed"), rows
        )
        summary = markdown_table(
            ("goal", "measured", "target", "verdict"),
            [
                (
                    "snapshot with the list / without (wall, median)",
                    f"{concurrent:.2f}x",
                    f"<= {TARGET_RATIO}x",
                    verdict(concurrent <= TARGET_RATIO) if not args.quick else "quick: not judged",
                ),
            ],
        )
        print_report(
            f"Integrity hashing ({files} files, {size / 2**20:.0f} MiB, {code} listed, {rounds} rounds)",
            [("", table), ("", summary)],
            machine_facts(),
        )
    finally:
        bench.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
