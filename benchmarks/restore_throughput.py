"""Restore throughput: maintkit restore against the shell pipeline and restic, on the same snapshot.

Why these peers: ``ssh host 'zstd -dc | mariadb DB' < db.sql.zst`` (and the same with ``tar -x``)
is the hand-made floor for pushing a compressed snapshot back over SSH; ``restic dump | mariadb``
plus ``restic restore`` is what a restic shop runs. ``maintkit-engine`` restores the same database
and the same folder kept as an engine (restic) snapshot instead of a ``files.tar.zst`` (issue 16):
``restic dump`` on the control node, the tar checked, zstd -1, extracted on the host. maintkit does
more on the way (SHA-256 and size against the manifest, trailer and tar-member checks, a staging
database whose rows are counted before the swap, an atomic folder swap): this measures what that
costs.

Setup, not timed: a seeded database (dump ~200 MB of SQL) and a site folder (~1 GB) on a loopback
sshd host, one ``maintkit snapshot`` of both into a local target (its artifacts also feed the shell
pipeline), one restic repository holding the same dump and folder. Each run then restores into a
fresh database and a fresh folder on the same host and is checked (row count, file count and bytes).
Usage::

    benchmarks/setup
    .venv/bin/python benchmarks/restore_throughput.py [--quick] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
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
    need_system,
    print_report,
    ratio,
    run_timed,
    verdict,
)
from snapshot_throughput import (
    DB_PASSWORD,
    DB_USER,
    DUMP_BYTES_PER_ROW,
    DUMP_OPTIONS,
    MB,
    RESTIC_PASSWORD,
    Bench,
    _ssh_argv,
)

from maintkit.storage.local import LocalTarget
from maintkit.storage.restic import Repository, ensure_password_file
from maintkit.storage.restickey import lighten

TARGET_RATIO = 1.1
ENV = "bench"
SITE = "snaphost"
TOOLS = ("openssh", "maintkit", "maintkit-engine", "restic")


class Setup:
    """The snapshot every tool restores: maintkit's artifacts, and restic's repository."""

    def __init__(self, bench: Bench, root: Path, rows: int, files: int) -> None:
        self.bench = bench
        self.root = root
        self.storage = root / "storage"
        log(f"seeding bench_src: {rows} rows")
        bench.seed_database("bench_src", rows)
        bench.db.sql(f"GRANT ALL PRIVILEGES ON `r\\_%`.* TO '{DB_USER}'@'%';")
        shutil.rmtree(bench.site, ignore_errors=True)
        log(f"writing site/p1: {files / MB:.0f} MB")
        self.file_bytes = bench.make_files("p1", files, seed=1)
        bench.chown_site()
        self.file_count = sum(1 for p in (bench.site / "p1").rglob("*") if p.is_file())
        self.rows = rows
        self.dump_bytes = bench.dump_size("bench_src")
        self._snapshot()
        self._restic()
        self._engine_snapshot()

    def inventory(self, work: Path, database: str | None, files_root: str | None) -> Path:
        host: dict[str, object] = {
            "host": self.bench.host.address,
            "port": self.bench.host.port,
            "user": self.bench.host.user,
            "key": str(self.bench.host.key_file),
            "site": SITE,
        }
        if database:
            host["database"] = {
                "name": database,
                "user": DB_USER,
                "password": DB_PASSWORD,
                "host": "127.0.0.1",
                "port": self.bench.db.port,
            }
        if files_root:
            host["files"] = {"root": files_root, "paths": ["p1"]}
        inventory = {
            "all": {
                "vars": {
                    "known_hosts": str(self.bench.known_hosts),
                    "storage": [{"name": "local", "type": "local", "path": str(self.storage)}],
                },
                "hosts": {SITE: host},
            }
        }
        path = work / "inventory.yml"
        path.write_text(yaml.safe_dump(inventory, sort_keys=False))
        return path

    def _snapshot(self) -> None:
        work = Path(tempfile.mkdtemp(prefix="snapshot-", dir=self.root))
        self.inventory(work, "bench_src", str(self.bench.site))
        book = {
            "name": "bench-snapshot",
            "steps": [
                {"name": "snapshot", "snapshot": {"database": "{{ database }}", "files": "{{ files }}"}}
            ],
        }
        (work / "book.yml").write_text(yaml.safe_dump(book, sort_keys=False))
        log("taking the snapshot (maintkit)")
        run_timed(
            [VENV_BIN / "maintkit", "run", "book.yml", "-i", "inventory.yml", "--env", ENV, "-q"],
            cwd=work,
            env=child_env(),
        ).check("maintkit snapshot")
        manifests = list(self.storage.rglob("manifest.json"))
        assert len(manifests) == 1, manifests
        folder = manifests[0].parent
        self.db_artifact = folder / "db.sql.zst"
        self.files_artifact = folder / "files.tar.zst"
        manifest = json.loads(manifests[0].read_text())
        self.stored = sum(a["size"] for a in manifest["artifacts"])

    def _engine_snapshot(self) -> None:
        """The same files as an engine snapshot in the site's repository (SITE/ENV/restic), beside
        a second manifest whose dump is the first snapshot's (same key): what ``files_engine:
        restic`` stores. restic runs here, where the site folder is (the host is this machine)."""
        restic = need_system("restic")
        assert restic is not None
        self.keys = self.root / "keys"
        # the password and key maintkit's first night makes: 32 random bytes, the light key
        password = ensure_password_file(self.keys / SITE / ENV / "restic.password")
        repo = str(self.storage / SITE / ENV / "restic")
        self.cache = self.root / "restic-cache"
        env = child_env({"RESTIC_PASSWORD_FILE": str(password), "RESTIC_CACHE_DIR": str(self.cache)})
        subprocess.run([restic, "-r", repo, "init"], env=env, capture_output=True, check=True)
        store = LocalTarget("local", self.storage)
        if not lighten(Repository(repo, password), store, f"{SITE}/{ENV}/restic"):
            raise SystemExit("the engine repository kept restic's calibrated key")
        manifest = json.loads((self.db_artifact.parent / "manifest.json").read_text())
        self.tar_snapshot = manifest["snapshot_id"]
        self.engine_snapshot = self.tar_snapshot[:-1] + ("1" if self.tar_snapshot[-1] != "1" else "2")
        tag = f"maintkit-{self.engine_snapshot}"
        log("backing up the files with restic (the engine snapshot)")
        subprocess.run([restic, "-r", repo, "backup", "-q", "--tag", tag, "p1"], env=env, cwd=self.bench.site,
                       check=True, capture_output=True)  # fmt: skip
        [made] = json.loads(
            subprocess.run([restic, "-r", repo, "snapshots", "--json", "--tag", tag], env=env,
                           check=True, capture_output=True).stdout
        )  # fmt: skip
        files = next(a for a in manifest["artifacts"] if a["name"].startswith("files"))
        files.update(
            name="files.restic", key=f"{SITE}/{ENV}/restic", sha256="", encryption="restic", engine="restic",
            engine_snapshot=made["id"], engine_tag=tag, engine_tree=made["tree"],
        )  # fmt: skip
        manifest["snapshot_id"] = self.engine_snapshot
        folder = self.db_artifact.parent.parent / self.engine_snapshot
        folder.mkdir()
        (folder / "manifest.json").write_text(json.dumps(manifest))

    def _restic(self) -> None:
        restic = need_system("restic")
        assert restic is not None
        self.restic_repo = str(self.root / "restic-repo")
        env = self.restic_env()
        subprocess.run([restic, "-r", self.restic_repo, "init"], env=env, capture_output=True, check=True)
        log("backing up with restic")
        script = (
            f"set -o pipefail; mariadb-dump --defaults-file={self.bench.db.defaults_file()} {DUMP_OPTIONS} "
            f"-- bench_src | {restic} -r {shlex.quote(self.restic_repo)} backup -q --stdin "
            "--stdin-filename db.sql --tag db"
        )
        subprocess.run(["bash", "-c", script], env=env, check=True, capture_output=True)
        subprocess.run(
            [restic, "-r", self.restic_repo, "backup", "-q", "--tag", "files", str(self.bench.site / "p1")],
            env=env, check=True, capture_output=True,
        )  # fmt: skip

    def restic_env(self) -> dict[str, str]:
        return child_env(
            {"RESTIC_PASSWORD": RESTIC_PASSWORD, "RESTIC_CACHE_DIR": str(self.root / "restic-cache")}
        )

    # -- a fresh target for every run, and the proof that it was restored ------------------------

    def fresh_target(self, tag: str) -> tuple[str, Path]:
        database = f"r_{tag}"
        self.bench.db.drop_database(database)
        folder = self.bench.host.home / f"restored-{self.bench.site.name}-{tag}"
        shutil.rmtree(folder, ignore_errors=True)
        return database, folder

    def verify(self, database: str, folder: Path, tool: str) -> None:
        rows = self.bench.db.sql(f"SELECT COUNT(*) FROM `{database}`.sales_order;")
        if int(rows[0][0]) != self.rows:
            raise RuntimeError(f"{tool}: restored {rows[0][0]} rows, expected {self.rows}")
        files = [p for p in folder.rglob("*") if p.is_file()]
        size = sum(p.stat().st_size for p in files)
        if len(files) != self.file_count or size != self.file_bytes:
            raise RuntimeError(f"{tool}: restored {len(files)} files / {size} bytes, expected "
                               f"{self.file_count} / {self.file_bytes}")  # fmt: skip

    def cleanup(self, database: str, folder: Path) -> None:
        self.bench.db.drop_database(database)
        self.bench.db.drop_database(f"{database}_mkrestore")
        shutil.rmtree(folder, ignore_errors=True)
        for stale in folder.parent.glob(f".{folder.name}.*"):
            shutil.rmtree(stale, ignore_errors=True)


# -- the tools ------------------------------------------------------------------------------------


def run_openssh(setup: Setup, database: str, folder: Path, work: Path) -> Timed:
    """Both artifacts pushed through ``ssh`` one after the other, in one timed shell script."""
    bench = setup.bench
    bench.db.create_database(database, owner=DB_USER)
    cnf = bench.host_defaults_file()
    ssh = " ".join(shlex.quote(a) for a in _ssh_argv(bench))
    db_cmd = shlex.quote(f"set -o pipefail; zstd -dc | mariadb --defaults-file={cnf} {database}")
    files_cmd = shlex.quote(f"set -o pipefail; mkdir -p {folder} && zstd -dc | tar -C {folder} -xf -")
    script = (
        f"set -e\n{ssh} {db_cmd} < {shlex.quote(str(setup.db_artifact))}\n"
        f"{ssh} {files_cmd} < {shlex.quote(str(setup.files_artifact))}\n"
    )
    (work / "restore.sh").write_text(script)
    return run_timed(["bash", str(work / "restore.sh")])


def run_maintkit(
    setup: Setup, database: str, folder: Path, work: Path, engine: bool = False, src: Path | None = None
) -> Timed:
    setup.inventory(work, database, str(folder))
    book = {
        "name": "bench-restore",
        "steps": [
            {
                "name": "restore",
                "restore": {
                    "snapshot": setup.engine_snapshot if engine else setup.tar_snapshot,
                    "database": "{{ database }}",
                    "files": "{{ files }}",
                    "create_database": True,
                    "force": True,
                },
            }
        ],
    }
    (work / "book.yml").write_text(yaml.safe_dump(book, sort_keys=False))
    timed = run_timed(
        [VENV_BIN / "maintkit", "run", "book.yml", "-i", "inventory.yml", "--env", ENV, "--journal-dir", "j"],
        cwd=work,
        env=child_env(
            {"MAINTKIT_KEYS_DIR": str(setup.keys), "RESTIC_CACHE_DIR": str(setup.cache)}
            | ({"PYTHONPATH": str(src)} if src else {})
        ),
    )
    if KEEP_JOURNALS is not None:  # for profiling: the run's event timeline
        for journal in (work / "j").glob("*.jsonl"):
            shutil.copy(journal, KEEP_JOURNALS / journal.name)
    return timed


#: --keep-journals: where maintkit's journals are copied before a run's folder is removed
KEEP_JOURNALS: Path | None = None


def run_restic(setup: Setup, database: str, folder: Path, work: Path) -> Timed:
    """``restic dump | mariadb`` and ``restic restore``, where the data goes (as on the host)."""
    restic = need_system("restic")
    bench = setup.bench
    bench.db.create_database(database, owner=DB_USER)
    repo = shlex.quote(setup.restic_repo)
    cnf = shlex.quote(str(bench.db.defaults_file()))
    source = shlex.quote(str(bench.site / "p1"))
    script = (
        "set -eo pipefail\n"
        f"{restic} -r {repo} dump --tag db latest /db.sql | mariadb --defaults-file={cnf} {database}\n"
        f"mkdir -p {shlex.quote(str(folder))}\n"
        f"{restic} -r {repo} restore --tag files latest --target {shlex.quote(str(work / 'r'))} -q\n"
        f"mv {shlex.quote(str(work / 'r'))}{source} {shlex.quote(str(folder / 'p1'))}\n"
    )
    (work / "restic.sh").write_text(script)
    return run_timed(["bash", str(work / "restic.sh")], env=setup.restic_env())


def run_maintkit_engine(setup: Setup, database: str, folder: Path, work: Path) -> Timed:
    return run_maintkit(setup, database, folder, work, engine=True)


#: --reference-src: another checkout's ``src`` folder, measured as the tool ``maintkit-ref``
REFERENCE_SRC: Path | None = None


def run_maintkit_reference(setup: Setup, database: str, folder: Path, work: Path) -> Timed:
    """The same restore by another version of maintkit (``PYTHONPATH``), interleaved in the same run:
    a before/after comparison that the machine's drift cannot bias."""
    return run_maintkit(setup, database, folder, work, src=REFERENCE_SRC)


def run_maintkit_engine_reference(setup: Setup, database: str, folder: Path, work: Path) -> Timed:
    """The engine restore by the other version of maintkit (``--reference-src``)."""
    return run_maintkit(setup, database, folder, work, engine=True, src=REFERENCE_SRC)


RUNNERS: dict[str, Callable[[Setup, str, Path, Path], Timed]] = {
    "openssh": run_openssh,
    "maintkit": run_maintkit,
    "maintkit-engine": run_maintkit_engine,
    "maintkit-ref": run_maintkit_reference,
    "maintkit-engine-ref": run_maintkit_engine_reference,
    "restic": run_restic,
}


def measure(setup: Setup, rounds: int, root: Path, tools: list[str]) -> dict[str, list[Timed]]:
    results: dict[str, list[Timed]] = {t: [] for t in tools}
    for r in range(rounds):
        for tool in tools[r % len(tools) :] + tools[: r % len(tools)]:
            os.sync()  # untimed: the previous run's dirty pages are not this run's to write back
            work = Path(tempfile.mkdtemp(prefix=f"{tool}-", dir=root))
            database, folder = setup.fresh_target(f"{tool.replace('-', '_')}{r}")
            timed = RUNNERS[tool](setup, database, folder, work).check(f"{tool} restore")
            setup.verify(database, folder, tool)
            setup.cleanup(database, folder)
            shutil.rmtree(work, ignore_errors=True)
            results[tool].append(timed)
            rss = timed.max_rss_kib / 1024
            log(f"round {r + 1}/{rounds} {tool}: {timed.seconds:.2f} s, RSS {rss:.0f} MiB")
    return results


def report(setup: Setup, results: dict[str, list[Timed]], rounds: int) -> str:
    source = setup.dump_bytes + setup.file_bytes
    base = median(t.seconds for t in results["openssh"])
    rows = []
    for tool, runs in results.items():
        secs = median(t.seconds for t in runs)
        rows.append(
            (tool, f"{secs:.2f}", " / ".join(f"{t.seconds:.2f}" for t in runs),
             f"{source / MB / secs:.0f}", ratio(secs, base),
             f"{max(t.max_rss_kib for t in runs) / 1024:.0f}", f"{median(t.cpu_seconds for t in runs):.2f}",
             len(runs))
        )  # fmt: skip
    value = median(t.seconds for t in results["maintkit"]) / base
    checks = [
        ("maintkit / shell pipeline wall", f"{value:.2f}x", f"≤ {TARGET_RATIO}x",
         verdict(value <= TARGET_RATIO)),
    ]  # fmt: skip
    if "restic" in results:
        peer = median(t.seconds for t in results["restic"])
        checks.append(("maintkit / restic restore + import wall", f"{value * base / peer:.2f}x", "< 1x",
                       verdict(value * base < peer)))  # fmt: skip
        if "maintkit-engine" in results:
            engine = median(t.seconds for t in results["maintkit-engine"])
            checks.append(("maintkit-engine / restic restore + import wall", f"{engine / peer:.2f}x", "< 1x",
                           verdict(engine < peer)))  # fmt: skip
    for tool in ("maintkit", "maintkit-engine"):
        if tool in results and f"{tool}-ref" in results:
            now = median(t.seconds for t in results[tool])
            before = median(t.seconds for t in results[f"{tool}-ref"])
            checks.append((f"{tool} / {tool}-ref (--reference-src) wall", f"{now / before:.2f}x",
                           "< 1x", verdict(now < before)))  # fmt: skip
    if "maintkit-engine" in results:
        engine = median(t.seconds for t in results["maintkit-engine"])
        checks.append(("maintkit-engine / shell pipeline wall", f"{engine / base:.2f}x", f"≤ {TARGET_RATIO}x",
                       verdict(engine / base <= TARGET_RATIO)))  # fmt: skip
    data = (
        f"database: {setup.rows} rows, dump {setup.dump_bytes / MB:.0f} MB of SQL; files: {setup.file_count} "
        f"files, {setup.file_bytes / MB:.0f} MB; snapshot stored: {setup.stored / MB:.0f} MB"
    )
    header = ("tool", "median s", "rounds s", "MB/s", "vs shell pipeline", "peak RSS MiB", "CPU s", "runs")
    sections = [
        ("Data", data),
        (f"Restore of database + files, median of {rounds} interleaved rounds (MB/s of source data)",
         markdown_table(header, rows)),
        ("Target", markdown_table(("measure", "measured", "target", "verdict"), checks)),
    ]  # fmt: skip
    facts = machine_facts({"restic": ["restic", "version"], "MariaDB": ["mariadb", "--version"]})
    return print_report("Restore throughput", sections, facts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a few MB, one round (CI: the script runs)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default and minimum 3)")
    parser.add_argument("--db-mb", type=int, default=200, help="dump size in MB of SQL (default 200)")
    parser.add_argument("--files-mb", type=int, default=1000, help="site folder size in MB (default 1000)")
    parser.add_argument("--output", type=Path, help="also write the markdown report to this file")
    parser.add_argument("--tools", default=",".join(TOOLS), help=f"comma-separated, among {','.join(TOOLS)}")
    parser.add_argument("--reference-src", type=Path, help="another src/ folder: adds the tool maintkit-ref")
    parser.add_argument("--keep-journals", type=Path, help="copy maintkit's journals here (profiling)")
    args = parser.parse_args(argv)
    if args.keep_journals:
        global KEEP_JOURNALS
        KEEP_JOURNALS = args.keep_journals
        KEEP_JOURNALS.mkdir(parents=True, exist_ok=True)
    missing = [t for t in ("ssh", "zstd", "mariadb", "restic") if need_system(t) is None]
    if missing:
        raise SystemExit(f"missing {missing}: run benchmarks/setup")
    db_mb, files_mb, rounds = (5, 5, 1) if args.quick else (args.db_mb, args.files_mb, max(3, args.rounds))
    root = Path(tempfile.mkdtemp(prefix="mk-bench-restore-"))
    os.chmod(root, 0o755)
    started = time.monotonic()
    bench = Bench(root)
    try:
        setup = Setup(bench, root, db_mb * MB // DUMP_BYTES_PER_ROW, files_mb * MB)
        log(f"setup done in {time.monotonic() - started:.0f} s")
        tools = [t for t in args.tools.split(",") if t in TOOLS]
        if args.reference_src:
            global REFERENCE_SRC
            REFERENCE_SRC = args.reference_src.resolve()
            # the reference of each maintkit path measured: the stored tar's, the engine's
            tools += [f"{t}-ref" for t in ("maintkit", "maintkit-engine") if t in tools]
        if "openssh" not in tools or "maintkit" not in tools:
            raise SystemExit("--tools needs openssh (the baseline) and maintkit")
        results = measure(setup, rounds, root, tools)
    finally:
        bench.stop()
        shutil.rmtree(bench.site, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
    text = report(setup, results, rounds)
    log(f"done in {time.monotonic() - started:.0f} s")
    if args.output:
        args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
