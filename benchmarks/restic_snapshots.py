"""maintkit's own snapshot with ``files_engine: restic`` against ``tar`` and the shell pipeline, per night.

Why this script: ``benchmarks/incremental_engine.py`` chose the engine on bare commands; this one
measures what a user runs (``maintkit run`` with a snapshot step, real sshd, the append-only server,
the forward, the manifest) on the same kind of tree, so the figures in docs/performance.md are
those of the product. Every figure is a ratio to a baseline measured in the same run:

* ``pipeline``: ``ssh host 'tar | zstd' > file`` (the baseline of the first night);
* ``maintkit tar``: ``files_engine: tar`` (a full ``files.tar.zst`` every night);
* ``maintkit restic``: ``files_engine: restic``.

Nights: (1) first, (2) unchanged, (3) 1 % of the files changed. Reported: wall seconds, as a share of
the same candidate's night 1 and as a multiple of the pipeline's same night, and bytes stored
(``du`` of the snapshot folder / repository) added that night, as a share of the tree.

Usage::

    .venv/bin/python benchmarks/restic_snapshots.py [--size-mb 200] [--change 0.01] [--quick]
"""

from __future__ import annotations

import argparse
import shutil
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
from incremental_engine import MB, Bench, change_tree, du, make_tree


def maintkit_night(bench: Bench, work: Path, engine: str) -> tuple[float, int]:
    """One ``maintkit run`` of a files snapshot with ``files_engine: engine``; (wall s, stored bytes)."""
    folder = work / engine
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
        env=child_env({"MAINTKIT_KEYS_DIR": str(folder / "keys")}),
    ).check(f"maintkit snapshot, files_engine {engine}")  # fmt: skip
    return timed.seconds, du(folder / "snapshots")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--change", type=float, default=0.01)
    parser.add_argument("--quick", action="store_true", help="a 10 MB tree: checks the script runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.size_mb = 10
    for tool in ("restic", "rclone", "zstd"):
        if need_system(tool) is None:
            log(f"{tool} is missing: apt-get install {tool}")
            return 2
    root = Path(tempfile.mkdtemp(prefix="mk-bench-restic-"))
    bench = Bench(root)
    names = ("pipeline", "maintkit tar", "maintkit restic")
    seconds: dict[str, list[float]] = {name: [] for name in names}
    stored: dict[str, list[int]] = {name: [] for name in names}
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
            subprocess.run(["sync"], check=False)
            for name in names:
                log(f"night {night}: {name}")
                if name == "pipeline":
                    result = bench.full_tar(night)
                    wall, total = result.seconds, result.stored_bytes
                else:
                    wall, total = maintkit_night(bench, root, name.split()[1])
                seconds[name].append(wall)
                stored[name].append(total)
        rows = []
        for name in names:
            for i in range(3):
                added = stored[name][i] - (stored[name][i - 1] if i else 0)
                rows.append(
                    (
                        name, i + 1, f"{seconds[name][i]:.2f}", f"{seconds[name][i] / seconds[name][0]:.0%}",
                        f"{seconds[name][i] / seconds['pipeline'][i]:.2f}x", f"{added / MB:.2f}",
                        f"{added / size:.1%}",
                    )
                )  # fmt: skip
        table = markdown_table(
            ("candidate", "night", "wall s", "of night 1", "of pipeline", "stored +MB", "of tree"), rows
        )
        title = (
            f"{size / MB:.0f} MB tree, {files} files; night 2 unchanged, night 3 after changing "
            f"{args.change:.0%} of the files ({changed / MB:.1f} MB written)"
        )
        facts = machine_facts({"restic": ["restic", "version"], "rclone": ["rclone", "version"]})
        print_report("maintkit snapshots: files_engine restic vs tar", [(title, table)], facts)
        return 0
    finally:
        bench.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
