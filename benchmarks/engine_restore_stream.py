"""Where the engine (restic) restore spends its time: its stream, piece by piece, on one machine.

Why: the engine restore (``files_engine: restic``) reads ``restic dump`` on the control node,
checks every tar member in Python, compresses with zstd -1 and sends it to the host's
``zstd -d | tar -x``. benchmarks/restore_throughput.py times the whole restore against its peers;
this script takes the stream apart, without SSH or database, so that each piece's cost is seen
alone and the variants are compared in interleaved rounds under the same load:

- ``dump``: ``restic dump SNAP / --archive tar > /dev/null`` (restic alone: the floor);
- ``pipeline``: ``restic dump | zstd -1 | zstd -d | tar -x`` in a shell (the same work, no Python);
- ``stream``: maintkit's :class:`EngineTarStream` (reader thread, member checks, zstd -1) feeding
  ``zstd -d | tar -x`` (what the control node and the host do, minus the SSH channel);
- ``stream-ref``: the same with another maintkit's ``src`` (``--reference-src``): before/after.

Usage::

    .venv/bin/python benchmarks/engine_restore_stream.py [--quick] [--size-mb 1000] [--rounds 3]
        [--reference-src /path/to/other/src]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import (
    Timed,
    child_env,
    log,
    machine_facts,
    markdown_table,
    median,
    need_system,
    print_report,
    ratio,
)
from common import run_timed as _run_timed

MB = 1_000_000
PASSWORD = "bench-engine-restore-4711"

#: the child that runs maintkit's stream: prints JSON (seconds, members, sent bytes, waiting on restic)
STREAM_CHILD = r"""
import json, subprocess, sys, time
from pathlib import Path
from maintkit.jobs.restore.engine import EngineSource, EngineTarStream
from maintkit.storage.manifest import Artifact
from maintkit.storage.restic import Repository
repo, password, snapshot, out = sys.argv[1:5]
source = EngineSource(Repository(repo, Path(password)))
source.snapshot = snapshot
artifact = Artifact(
    name="files.restic", key="k", size=0, sha256="", engine="restic", engine_snapshot=snapshot
)
host = subprocess.Popen(["sh", "-c", 'zstd -q -d -c | tar -C "$1" -x -f -', "sh", out], stdin=subprocess.PIPE)
started = time.monotonic()
stream = EngineTarStream(source, artifact)
try:
    while True:
        data = stream.read(262144)
        if not data:
            break
        host.stdin.write(data)
finally:
    stream.close()
host.stdin.close()
assert host.wait() == 0
print(json.dumps({"seconds": time.monotonic() - started, "members": stream.members, "sent": stream.sent,
                  "waiting_on_restic": stream.dump_seconds}))
"""


def make_tree(base: Path, size: int) -> int:
    """``size`` bytes: 60 % random "media" (50-500 kB), 40 % compressible "code" (as the other benchmarks)."""
    import random

    rng = random.Random(1)
    base.mkdir(parents=True)
    words = [f"{rng.choice(('get', 'set', 'load', 'save'))}{rng.randrange(10**6):x}" for _ in range(4000)]
    lines = [
        f"    public function {rng.choice(words)}() {{ return $this->{rng.choice(words)}; }}"
        for _ in range(3000)
    ]
    written = index = 0
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
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="20 MB, one round (the script runs)")
    parser.add_argument("--size-mb", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reference-src", type=Path, help="another src/ folder: adds stream-ref")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    restic = need_system("restic")
    if restic is None or need_system("zstd") is None:
        raise SystemExit("restic and zstd are needed: run benchmarks/setup")
    size, rounds = (20 * MB, 1) if args.quick else (args.size_mb * MB, max(3, args.rounds))
    root = Path(tempfile.mkdtemp(prefix="mk-bench-engine-restore-"))
    src = Path(__file__).resolve().parent.parent / "src"
    try:
        password = root / "password"
        password.write_text(PASSWORD + "\n")
        password.chmod(0o600)
        env = child_env({"RESTIC_PASSWORD_FILE": str(password), "RESTIC_CACHE_DIR": str(root / "cache")})
        repo = str(root / "repo")
        files = make_tree(root / "tree" / "p1", size)
        subprocess.run([restic, "-r", repo, "init"], env=env, check=True, capture_output=True)
        subprocess.run([restic, "-r", repo, "backup", "-q", "p1"], cwd=root / "tree", env=env, check=True,
                       capture_output=True)  # fmt: skip
        [made] = json.loads(subprocess.run([restic, "-r", repo, "snapshots", "--json"], env=env, check=True,
                                           capture_output=True).stdout)  # fmt: skip
        snap = str(made["id"])
        dump = f"{restic} -r {repo} dump {snap} / --archive tar"
        tools = {
            "dump": lambda out: _run_timed(["sh", "-c", f"{dump} > /dev/null"], env=env),
            "pipeline": lambda out: _run_timed(
                [
                    "sh",
                    "-c",
                    f'set -e; mkdir -p "$1"; {dump} | zstd -q -1 -c | zstd -q -d -c | tar -C "$1" -xf -',
                    "sh",
                    str(out),
                ],
                env=env,
            ),
            "stream": lambda out: _stream(src, repo, password, snap, out, env),
        }
        if args.reference_src:
            ref = args.reference_src.resolve()
            tools["stream-ref"] = lambda out: _stream(ref, repo, password, snap, out, env)
        results: dict[str, list[Timed]] = {name: [] for name in tools}
        notes: dict[str, list[dict[str, float]]] = {name: [] for name in tools}
        names = list(tools)
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                os.sync()
                out = root / f"out-{name}"
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                timed = tools[name](out).check(name)
                if name.startswith("stream"):
                    notes[name].append(json.loads(timed.stdout.decode().strip().splitlines()[-1]))
                results[name].append(timed)
                shutil.rmtree(out, ignore_errors=True)
                log(f"round {r + 1}/{rounds} {name}: {timed.seconds:.2f} s, CPU {timed.cpu_seconds:.2f} s")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    base = median(t.seconds for t in results["dump"])
    rows = []
    for name, runs in results.items():
        wait = median(n["waiting_on_restic"] for n in notes[name]) if notes[name] else None
        secs = median(t.seconds for t in runs)
        rounds_s = " / ".join(f"{t.seconds:.2f}" for t in runs)
        cpu = median(t.cpu_seconds for t in runs)
        waited = f"{wait:.2f}" if wait is not None else "-"
        rows.append((name, f"{secs:.2f}", rounds_s, ratio(secs, base), f"{cpu:.2f}", waited))
    header = (
        "variant",
        "median s",
        "rounds s",
        "vs restic dump alone",
        "CPU s",
        "sender waiting on restic s",
    )
    sections = [
        ("Data", f"{size / MB:.0f} MB in {files} files (60 % random media, 40 % text), one restic snapshot"),
        (f"The engine restore's stream, median of {rounds} interleaved rounds", markdown_table(header, rows)),
    ]
    text = print_report("Engine restore stream", sections, machine_facts({"restic": ["restic", "version"]}))
    if args.output:
        args.output.write_text(text)
    return 0


def _stream(src: Path, repo: str, password: Path, snap: str, out: Path, env: dict[str, str]) -> Timed:
    return _run_timed([sys.executable, "-c", STREAM_CHILD, repo, str(password), snap, str(out)],
                      env={**env, "PYTHONPATH": str(src)})  # fmt: skip


if __name__ == "__main__":
    started = time.monotonic()
    status = main()
    log(f"done in {time.monotonic() - started:.0f} s")
    sys.exit(status)
