"""maintkit's own snapshot with ``files_engine: restic`` against ``tar`` and the shell pipeline, per night.

Why this script: ``benchmarks/incremental_engine.py`` chose the engine on bare commands; this one
measures what a user runs (``maintkit run`` with a snapshot step, real sshd, the append-only server,
the forward, the manifest) on the same kind of tree, so the figures in docs/performance.md are
those of the product. Every figure is a ratio to a baseline measured in the same run:

* ``pipeline``: ``ssh host 'tar | zstd' > file`` (the baseline of the first night);
* ``maintkit tar``: ``files_engine: tar`` (a full ``files.tar.zst`` every night);
* ``maintkit restic``: ``files_engine: restic`` (the forward through the system ``ssh -R``);
* ``maintkit restic, paramiko forward``: the same with ``MAINTKIT_BULK_SSH=paramiko``, the forward
  as it was before (paramiko's, in Python): the before/after of the ``ssh -R`` forward.

Nights: (1) first, (2) unchanged, (3) 1 % of the files changed. Reported: wall seconds, as a share of
the same candidate's night 1 and as a multiple of the pipeline's same night, and bytes stored
(``du`` of the snapshot folder / repository) added that night, as a share of the tree. With
``--rounds N`` the three nights are run N times from a fresh tree and fresh storage, the candidates
interleaved (their order rotates each round); the table gives medians, the ratio to the pipeline is
the median of each round's ratio (same round, same load), with its range.

Usage::

    .venv/bin/python benchmarks/restic_snapshots.py [--size-mb 200] [--change 0.01] [--rounds 1] [--quick]
    .venv/bin/python benchmarks/restic_snapshots.py --small-files 100000   # a vendor/-like tree
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from common import (
    VENV_BIN,
    child_env,
    log,
    machine_facts,
    markdown_table,
    need_system,
    print_report,
    run_timed,
)
from engine_tradeoffs import make_small_files
from incremental_engine import MB, Bench, change_tree, du, make_tree


def maintkit_night(bench: Bench, work: Path, engine: str, paramiko: bool = False) -> tuple[float, int]:
    """One ``maintkit run`` of a files snapshot with ``files_engine: engine``; (wall s, stored bytes).

    ``paramiko``: ``MAINTKIT_BULK_SSH=paramiko``, so the engine's forward (and bulk streams) stay on
    paramiko, as before the forward went through the system ``ssh``.
    """
    folder = work / (engine + ("-paramiko" if paramiko else ""))
    forward_env = {"MAINTKIT_BULK_SSH": "paramiko"} if paramiko else {}
    folder.mkdir(exist_ok=True)
    host = bench.host
    inventory = {
        "all": {
            "vars": {
                "known_hosts": str(bench.known_hosts),
                "storage": [{"name": "local", "type": "local", "path": str(folder / "snapshots")}],
                "files_engine": engine,
            },
            "hosts": {
                "benchhost": {
                    "host": host.address,
                    "port": host.port,
                    "user": host.user,
                    "key": str(host.key_file),
                    "files": {"root": str(bench.site)},
                }
            },
        }
    }
    book = {"name": "bench-restic", "steps": [{"name": "snapshot", "snapshot": {"files": "{{ files }}"}}]}
    (folder / "inventory.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    (folder / "book.yml").write_text(yaml.safe_dump(book, sort_keys=False))
    timed = run_timed(
        [VENV_BIN / "maintkit", "run", "book.yml", "-i", "inventory.yml", "--env", "bench",
         "--journal-dir", "journal"],
        cwd=folder,
        env=child_env({"MAINTKIT_KEYS_DIR": str(folder / "keys"), **forward_env}),
    ).check(f"maintkit snapshot, files_engine {engine}")  # fmt: skip
    return timed.seconds, du(folder / "snapshots")


NAMES = ("pipeline", "maintkit tar", "maintkit restic", "maintkit restic, paramiko forward")


def one_round(
    bench: Bench, work: Path, size_mb: int, change: float, order: list[str], small_files: int = 0
) -> dict[str, list[tuple[float, int]]]:
    """Three nights from a fresh tree and fresh storage; per candidate, (wall s, stored bytes) per night.

    ``small_files``: that many small files (a ``vendor/`` + thumbnails mix) instead of the media tree.
    """
    shutil.rmtree(bench.site, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    shutil.rmtree(bench.root / "full-tar", ignore_errors=True)
    if small_files:
        make_small_files(bench.site, small_files, random.Random(16))
    else:
        make_tree(bench.site, size_mb * MB, seed=16)
    bench.chown()
    found: dict[str, list[tuple[float, int]]] = {name: [] for name in order}
    for night in (1, 2, 3):
        if night == 3:
            change_tree(bench.site, change, seed=3)
            bench.chown()
        subprocess.run(["sync"], check=False)
        for name in order:
            log(f"night {night}: {name}")
            if name == "pipeline":
                result = bench.full_tar(night)
                found[name].append((result.seconds, result.stored_bytes))
            else:
                engine = name.split()[1].rstrip(",")
                found[name].append(maintkit_night(bench, work, engine, paramiko="paramiko" in name))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--change", type=float, default=0.01)
    parser.add_argument("--rounds", type=int, default=1, help="runs of the three nights, interleaved")
    parser.add_argument("--small-files", type=int, default=0, help="a tree of N small files instead")
    parser.add_argument("--quick", action="store_true", help="a 10 MB tree: checks the script runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.size_mb, args.rounds = 10, 1
    for tool in ("restic", "rclone", "zstd"):
        if need_system(tool) is None:
            log(f"{tool} is missing: apt-get install {tool}")
            return 2
    root = Path(tempfile.mkdtemp(prefix="mk-bench-restic-"))
    bench = Bench(root)
    rounds: list[dict[str, list[tuple[float, int]]]] = []
    try:
        for n in range(args.rounds):
            order = list(NAMES[n % len(NAMES) :] + NAMES[: n % len(NAMES)])
            log(f"round {n + 1} of {args.rounds}: {', '.join(order)}")
            rounds.append(one_round(bench, root / "work", args.size_mb, args.change, order, args.small_files))
        size = sum(p.stat().st_size for p in bench.site.rglob("*") if p.is_file())
        files = sum(1 for p in bench.site.rglob("*") if p.is_file())
        rows = []
        for name in NAMES:
            for i in range(3):
                walls = [r[name][i][0] for r in rounds]
                ratios = [r[name][i][0] / r["pipeline"][i][0] for r in rounds]
                shares = [r[name][i][0] / r[name][0][0] for r in rounds]
                added = [r[name][i][1] - (r[name][i - 1][1] if i else 0) for r in rounds]
                spread = f" ({min(walls):.2f}-{max(walls):.2f})" if len(walls) > 1 else ""
                ratio_spread = f" ({min(ratios):.2f}-{max(ratios):.2f})" if len(ratios) > 1 else ""
                rows.append(
                    (
                        name, i + 1, f"{statistics.median(walls):.2f}{spread}",
                        f"{statistics.median(shares):.0%}",
                        f"{statistics.median(ratios):.2f}x{ratio_spread}",
                        f"{statistics.median(added) / MB:.2f}", f"{statistics.median(added) / size:.1%}",
                    )
                )  # fmt: skip
        table = markdown_table(
            ("candidate", "night", "wall s, median (range)", "of night 1", "of pipeline (range)",
             "stored +MB", "of tree"),
            rows,
        )  # fmt: skip
        title = (
            f"{size / MB:.0f} MB tree, {files} files; night 2 unchanged, night 3 after changing "
            f"{args.change:.0%} of the files; {args.rounds} round(s), candidates interleaved"
        )
        facts = machine_facts({"restic": ["restic", "version"], "rclone": ["rclone", "version"]})
        print_report("maintkit snapshots: files_engine restic vs tar", [(title, table)], facts)
        return 0
    finally:
        bench.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
