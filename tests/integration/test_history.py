"""The history end to end: real runs over real sshd recorded into SQLite and a real PostgreSQL server.

What is asserted is what a database holds after the real CLI ran (rows read back with SQLAlchemy),
compared with what the run left in storage (the snapshot folders and their bytes).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

from maintkit.history.location import database_url
from maintkit.history.models import HostOutcome, LockWait, Run, Snapshot, Verification
from tests.integration.helpers import events, run_cli, start_cli, wait_for, write_playbook
from tests.postgres import PASSWORD, postgres_fixture
from tests.sshd import free_port

pytestmark = pytest.mark.integration

postgres = postgres_fixture()

BOOK = {
    "name": "nightly",
    "steps": [
        {
            "name": "content",
            "shell": "mkdir -p ~/site && echo '{{ inventory_hostname }}' > ~/site/index.html",
        },
        {"snapshot": {"files": "{{ files }}"}},
        {"verify": "latest"},
    ],
}


@pytest.fixture(params=["sqlite", "postgresql"])
def history_url(request, tmp_path) -> str | None:
    """None: the embedded SQLite default beside the journals; else a fresh PostgreSQL database's URL."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("postgres").new_database()


@pytest.fixture
def work(tmp_path: Path, ssh_inventory: Path, clean_homes) -> Path:
    """prod1 and prod2 each a site with files, snapshots to a local folder; a journal folder."""
    data = yaml.safe_load(ssh_inventory.read_text())
    data["all"]["vars"].update(
        files={"root": "~/site"},
        storage=[{"name": "local", "type": "local", "path": str(tmp_path / "backups")}],
    )
    (tmp_path / "inventories").mkdir()
    (tmp_path / "inventories" / "production.yml").write_text(yaml.safe_dump(data))
    (tmp_path / "journal").mkdir()
    write_playbook(tmp_path, BOOK)
    return tmp_path


def cli(work: Path, url: str | None, *args: str):
    """``maintkit ARGS`` in ``work`` with its journals in work/journal and the history at ``url``."""
    env = {"MAINTKIT_JOURNAL_DIR": str(work / "journal"), **({"MAINTKIT_DATABASE_URL": url} if url else {})}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return run_cli(*args, cwd=work)
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def nightly(work: Path, url: str | None):
    result = cli(work, url, "run", "book.yml", "--env", "production", "--limit", "production")
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def engine_of(work: Path, url: str | None):
    return create_engine(database_url(work / "journal", url, cwd=work))


def counts(engine) -> dict[str, int]:
    with Session(engine) as session:
        return {
            m.__tablename__: session.scalar(select(func.count()).select_from(m))
            for m in (Run, HostOutcome, Snapshot, Verification, LockWait)
        }


def test_a_real_run_is_recorded_with_its_hosts_snapshots_verifications_and_locks(work, history_url):
    nightly(work, history_url)
    journal = events(work / "journal")
    engine = engine_of(work, history_url)
    with Session(engine) as session:
        [run] = session.scalars(select(Run)).all()
        assert run.id == journal[0]["run_id"] and run.command == "run" and run.playbook == "nightly"
        assert (run.env, run.status, run.exit_code) == ("production", "done", 0)
        assert sorted(run.sites) == ["prod1", "prod2"] and run.control_pid and run.finished is not None
        assert run.journal_path == str((work / "journal" / f"{run.id}.jsonl").absolute())
        outcomes = {h.host: h.status for h in session.scalars(select(HostOutcome))}
        assert outcomes == {"prod1": "ok", "prod2": "ok"}
        for snap in session.scalars(select(Snapshot)):
            stored = work / "backups" / snap.site / "production" / snap.snapshot_id
            on_disk = sum((stored / name).stat().st_size for name in snap.artifacts)
            assert snap.size == on_disk > 0 and list(snap.artifacts) == ["files.tar.zst"]  # bytes in storage
            assert snap.targets == {"local": f"{snap.site}/production/{snap.snapshot_id}/"}
        verified = {(v.site, v.snapshot_id, v.ok) for v in session.scalars(select(Verification))}
        assert verified == {(s.site, s.snapshot_id, True) for s in session.scalars(select(Snapshot))}
        locks = {(w.host, w.outcome) for w in session.scalars(select(LockWait))}
        assert locks == {("prod1", "acquired"), ("prod2", "acquired")}
    engine.dispose()
    if history_url is None:
        database = (
            work / ".maintkit" / "history.sqlite"
        )  # the project's, whatever the journal folder; private
        assert database.stat().st_mode & 0o777 == 0o600
        assert sqlite3.connect(database).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_history_import_backfills_and_repeating_it_changes_nothing(work, history_url, tmp_path):
    nightly(work, None)  # recorded in SQLite; then imported into the database under test
    nightly(work, None)
    target = history_url or f"sqlite:///{tmp_path / 'other.sqlite'}"
    first = cli(work, target, "history", "import")
    assert first.returncode == 0 and "2 run(s) recorded" in first.stdout, first.stdout + first.stderr
    engine = create_engine(database_url(work, target))
    once = counts(engine)
    assert once == {"runs": 2, "host_outcomes": 4, "snapshots": 4, "verifications": 4, "lock_waits": 4}
    assert once == counts(create_engine(database_url(work / "journal", cwd=work)))  # what the live runs wrote
    again = cli(work, target, "history", "import", str(work / "journal"))
    assert again.returncode == 0, again.stderr
    assert counts(engine) == once
    listed = cli(work, target, "history", "runs", "--output", "json")
    assert [json.loads(line)["status"] for line in listed.stdout.splitlines()] == ["done", "done"]
    engine.dispose()


def portfolio(work: Path, rpo_hours: float) -> None:
    (work / "portfolio.yml").write_text(
        yaml.safe_dump(
            {
                "defaults": {"rpo_hours": rpo_hours},
                "clients": {
                    "acme": {"sites": {"prod1": {"environments": {"production": None}}}},
                    "globex": {"sites": {"prod2": {"environments": {"production": None}}}},
                },
            }
        )
    )


def test_status_exits_1_when_a_site_breaches_its_rpo_and_0_when_all_meet_it(work, history_url):
    nightly(work, history_url)
    portfolio(work, rpo_hours=24)
    fine = cli(work, history_url, "status", "--output", "json")
    assert fine.returncode == 0, fine.stdout + fine.stderr
    lines = [json.loads(line) for line in fine.stdout.splitlines()]
    assert [(x["client"], x["site"], x["verdict"]) for x in lines] == [
        ("acme", "prod1", "ok"),
        ("globex", "prod2", "ok"),
    ]
    assert all(x["snapshot"]["verified"] and x["snapshot"]["size"] > 0 for x in lines)
    portfolio(work, rpo_hours=0.0001)  # 0.36 s: the snapshot taken above is older by now
    breached = cli(work, history_url, "status", "--client", "globex")
    assert breached.returncode == 1, breached.stdout + breached.stderr
    assert (
        "globex/prod2" in breached.stdout
        and "BREACH" in breached.stdout
        and "RPO 0.0001 h" in breached.stdout
    )
    assert "acme/prod1" not in breached.stdout
    assert "\x1b[" not in breached.stdout  # plain in a pipe


def test_a_broken_database_url_does_not_fail_the_run_and_import_records_it_later(work, tmp_path):
    dead = f"postgresql://maintkit:hunter2-secret@127.0.0.1:{free_port()}/history"
    result = cli(work, dead, "run", "book.yml", "--env", "production", "--limit", "production")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.count("the history could not be written") == 1
    assert (
        "maintkit history import" in result.stderr and "hunter2-secret" not in result.stdout + result.stderr
    )
    assert events(work / "journal")[-1]["event"] == "run_end"  # the journal is complete
    assert (work / "backups" / "prod1" / "production").is_dir()  # and the run did its work
    later = cli(work, f"sqlite:///{tmp_path / 'later.sqlite'}", "history", "import")
    assert later.returncode == 0 and "1 run(s) recorded" in later.stdout


def test_a_database_that_never_answers_does_not_hold_the_run_back(work):
    with socket.socket() as black_hole:  # accepts connections in its backlog, never says a word
        black_hole.bind(("127.0.0.1", 0))
        black_hole.listen(8)
        port = black_hole.getsockname()[1]
        result = cli(work, f"postgresql://u:pw@127.0.0.1:{port}/h", "run", "book.yml", "--env", "production")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.count("maintkit: warning:") == 1
    assert "the history database did not answer in time" in result.stderr  # a second's grace, no more
    assert events(work / "journal")[-1]["event"] == "run_end"


def test_postgres_password_never_reaches_the_output_of_history_commands(work, postgres):
    url = postgres.new_database()
    nightly(work, url)
    listed = cli(work, url, "history", "runs")
    assert listed.returncode == 0 and "nightly" in listed.stdout
    wrong = url.replace("127.0.0.1", "127.0.0.1").rsplit("/", 1)[0] + "/no_such_database"
    failed = cli(work, wrong, "history", "runs")
    assert failed.returncode == 1 and "cannot be opened" in failed.stderr
    for output in (listed, failed):
        assert PASSWORD not in output.stdout + output.stderr
    with create_engine(database_url(work, url)).connect() as connection:
        assert connection.execute(text("select count(*) from runs")).scalar() == 1


def test_snapshots_verify_is_recorded_and_a_failed_one_is_a_breach_in_status(work):
    nightly(work, None)
    portfolio(work, rpo_hours=24)
    [snapshot] = (work / "backups" / "prod2" / "production").iterdir()
    artifact = snapshot / "files.tar.zst"
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in storage
    artifact.write_bytes(bytes(data))
    verified = cli(
        work, None, "snapshots", "verify", "latest", "--env", "production", "--limit", "production"
    )
    assert verified.returncode == 1, verified.stdout + verified.stderr
    engine = engine_of(work, None)
    with Session(engine) as session:
        run = session.scalars(select(Run).where(Run.command == "snapshots verify")).one()
        assert (run.status, run.exit_code, sorted(run.sites)) == ("failed", 1, ["prod1", "prod2"])
        rows = {
            v.site: v.ok for v in session.scalars(select(Verification).where(Verification.run_id == run.id))
        }
        assert rows == {"prod1": True, "prod2": False}
    engine.dispose()
    status = cli(work, None, "status", "--output", "json")
    assert status.returncode == 1, status.stdout + status.stderr
    lines = {x["site"]: x for x in map(json.loads, status.stdout.splitlines())}
    assert lines["prod1"]["verdict"] == "ok" and lines["prod1"]["snapshot"]["verified"] is True
    assert [p["kind"] for p in lines["prod2"]["problems"]] == ["verification"]
    assert lines["prod2"]["snapshot"]["verified"] is False


def test_the_sqlite_history_is_the_project_s_and_an_older_one_beside_the_journals_is_still_used(work):
    nightly(work, None)  # journals in work/journal (MAINTKIT_JOURNAL_DIR), the history in work/.maintkit
    project_db = work / ".maintkit" / "history.sqlite"
    assert project_db.is_file() and not (work / "history.sqlite").exists()
    other = cli(work, None, "run", "book.yml", "--env", "production", "--limit", "prod1",
                "--journal-dir", str(work / "elsewhere" / "runs"))  # fmt: skip
    assert other.returncode == 0, other.stderr
    with sqlite3.connect(project_db) as connection:  # the same history, whatever --journal-dir says
        assert connection.execute("SELECT count(*) FROM runs").fetchone()[0] == 2
    # an earlier version's file beside the journal folder, and none in .maintkit: that one is used
    legacy = work / "history.sqlite"
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{project_db}{suffix}").exists():
            shutil.move(f"{project_db}{suffix}", f"{legacy}{suffix}")
    nightly(work, None)
    assert not project_db.exists()
    with sqlite3.connect(legacy) as connection:
        assert connection.execute("SELECT count(*) FROM runs").fetchone()[0] == 3
    listed = cli(work, None, "history", "runs", "--output", "json")
    assert len(listed.stdout.splitlines()) == 3, listed.stdout + listed.stderr


def test_status_of_one_site(work):
    nightly(work, None)
    alone = cli(work, None, "status", "--site", "prod2", "--output", "json")
    assert alone.returncode == 0, alone.stdout + alone.stderr
    assert [json.loads(line)["site"] for line in alone.stdout.splitlines()] == ["prod2"]
    portfolio(work, rpo_hours=24)
    chosen = cli(work, None, "status", "--site", "prod1", "--output", "json")
    assert [(x["client"], x["site"]) for x in map(json.loads, chosen.stdout.splitlines())] == [
        ("acme", "prod1")
    ]
    unknown = cli(work, None, "status", "--site", "prod9")
    assert unknown.returncode == 2 and "prod9" in unknown.stderr


def test_a_killed_run_is_no_lock_holder_in_status(work, ssh_hosts):
    """SIGKILL leaves the run's history row unfinished; ``status`` sees its process gone."""
    nightly(work, None)  # the history knows prod1 (status without a portfolio lists the sites it knows)
    write_playbook(work, {"name": "slow", "steps": [{"name": "wait", "shell": "sleep 20"}]}, "slow")
    os.environ["MAINTKIT_JOURNAL_DIR"] = str(work / "journal")
    try:
        run = start_cli("run", "slow.yml", "--env", "production", "--limit", "prod1", cwd=work)
    finally:
        del os.environ["MAINTKIT_JOURNAL_DIR"]

    def holders() -> list[dict]:
        result = cli(work, None, "status", "--site", "prod1", "--output", "json")
        [line] = [json.loads(x) for x in result.stdout.splitlines()] or [{"lock_holders": []}]
        return line["lock_holders"] if result.returncode in (0, 1) else []

    [holder] = wait_for(holders, 30, "the running run listed as the lock holder")
    assert holder["pid"] == run.pid and holder["command"] == "run"
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=10)
    result = cli(work, None, "status", "--site", "prod1", "--output", "json")
    [line] = [json.loads(x) for x in result.stdout.splitlines()]
    assert line["lock_holders"] == []
    [warning] = [w for w in line["warnings"] if w["kind"] == "unfinished-run"]
    assert holder["run_id"] in warning["message"] and "killed" in warning["message"]
    text = cli(work, None, "status", "--site", "prod1")
    assert "killed" in text.stdout and f"({holder['control_host']} pid {run.pid})" not in text.stdout


def test_a_nightly_run_with_a_hash_list_records_and_compares_without_sqlalchemy(work, ssh_hosts):
    """Every site of a fleet runs this each night: the recording, the trends and the integrity
    watch read the SQLite history with ``sqlite3``. Importing SQLAlchemy cost each run 0.3
    CPU-seconds (docs/performance.md); ``-X importtime`` (its env twin) lists every module the run
    imported, and the watch still warns about a file changed outside an update."""
    book = {"name": "hashed", "steps": [{"snapshot": {"files": "{{ files }}", "integrity": True}}]}
    write_playbook(work, book, "hashed")
    site = Path(ssh_hosts["prod1"].home) / "site"
    site.mkdir(exist_ok=True)
    (site / "index.php").write_text("<?php echo 'shop';")
    shutil.chown(site / "index.php", site.stat().st_uid, site.stat().st_gid)

    def hashed() -> str:
        result = cli(work, None, "run", "hashed.yml", "--env", "production", "--limit", "prod1")
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stderr

    hashed()  # the first run creates the history (Alembic) and the hash list's baseline
    (site / "evil.php").write_text("<?php eval($_POST['x']);")
    shutil.chown(site / "evil.php", site.stat().st_uid, site.stat().st_gid)
    os.environ["PYTHONPROFILEIMPORTTIME"] = "1"
    try:
        stderr = hashed()
    finally:
        del os.environ["PYTHONPROFILEIMPORTTIME"]
    imported = [line for line in stderr.splitlines() if line.startswith("import time:")]
    assert imported and not [line for line in imported if "sqlalchemy" in line]
    assert "files changed outside an update run" in stderr and "added evil.php" in stderr
    with sqlite3.connect(work / ".maintkit" / "history.sqlite") as connection:
        assert connection.execute("SELECT count(*) FROM runs").fetchone()[0] == 2
