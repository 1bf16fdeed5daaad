"""The disk-space trend from real runs: nightly snapshots over real sshd read the host's free space
(the site's folder and the real MariaDB's data directory), the history keeps it; with earlier
nights added as rows (a disk losing a twelfth of its free space a night), the next real run warns
with the day it will be full, on stderr and through a real notification receiver, and ``status``
and the report carry it.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from maintkit.history.location import database_url
from maintkit.history.models import DiskSpace, Run
from tests.integration.conftest import inventory_data
from tests.integration.test_monitoring import Recorder
from tests.integration.test_monitoring import receiver as receiver  # the fixture, reused
from tests.integration.test_report import PERIOD, _cli
from tests.mariadb import SHOP_DB, SHOP_PASSWORD, SHOP_USER, MariaDBServer, mariadb_fixture

pytestmark = pytest.mark.integration

mariadb = mariadb_fixture("mariadb", scope="module")


@pytest.fixture
def project(
    tmp_path: Path, ssh_hosts, known_hosts_file, clean_homes, mariadb: MariaDBServer, receiver
) -> Path:
    """prod1: a database on the real MariaDB (same machine), files in ~/site, a local target."""
    data = inventory_data(ssh_hosts, known_hosts_file)
    creds = mariadb.tcp()
    data["all"]["vars"].update(
        files={"root": "~/site"},
        database={
            "name": SHOP_DB,
            "user": SHOP_USER,
            "password": SHOP_PASSWORD,
            "host": "127.0.0.1",
            "port": creds.port,
        },
        storage=[{"name": "offsite", "type": "local", "path": str(tmp_path / "backups")}],
        notify=[f"json://{receiver}/notify"],
    )
    (tmp_path / "inventories").mkdir()
    (tmp_path / "inventories/production.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    portfolio = {
        "clients": {"acme": {"sites": {"acme-shop": {"environments": {"production": {"site": "prod1"}}}}}}
    }
    (tmp_path / "portfolio.yml").write_text(yaml.safe_dump(portfolio, sort_keys=False))
    (tmp_path / "journal").mkdir()
    book = {
        "name": "nightly",
        "steps": [
            {"name": "content", "shell": "mkdir -p ~/site && echo '<?php' > ~/site/index.php"},
            {"snapshot": {"database": "{{ database }}", "files": "{{ files }}"}},
        ],
    }
    (tmp_path / "nightly.yml").write_text(yaml.safe_dump(book, sort_keys=False))
    # the server's data directory, reachable by prod1's user as on a shop's own machine (df stats it)
    os.chmod(mariadb.workdir, 0o711)
    return tmp_path


def nightly(project: Path) -> subprocess.CompletedProcess[str]:
    env = {"MAINTKIT_JOURNAL_DIR": str(project / "journal")}
    result = _cli(project, env, "run", project / "nightly.yml", "--env", "production", "--limit", "prod1")
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def df(path: Path) -> tuple[str, int, int]:
    """What df itself says of ``path``: mount, total and available bytes."""
    line = subprocess.run(
        ["df", "-P", "-B1", str(path)], capture_output=True, text=True, check=True
    ).stdout.splitlines()[-1]
    fields = line.split(None, 5)
    return fields[5], int(fields[1]), int(fields[3])


def test_the_disk_filling_up_is_warned_with_its_date_in_the_run_status_report_and_notification(
    project, ssh_hosts, mariadb
):
    first = nightly(project)
    assert "disk" not in first.stderr  # one point is no trend
    url = database_url(project / "journal", cwd=project)
    engine = create_engine(url)
    with Session(engine) as session:
        rows = list(session.scalars(select(DiskSpace).where(DiskSpace.site == "prod1")))
    site_root = Path(ssh_hosts["prod1"].home) / "site"
    by_what = {row.what: row for row in rows}
    assert set(by_what) == {"files", "database"}, rows
    for what, path in (("files", site_root), ("database", mariadb.datadir)):
        mount, total, free = df(path)
        row = by_what[what]
        assert row.path.rstrip("/") == str(path.resolve())  # @@datadir ends with a slash
        assert row.mount == mount and row.total_bytes == total
        assert abs(row.free_bytes - free) < 0.01 * total  # the same disk, read a moment apart

    # twelve earlier nights: the same filesystem losing a twelfth of today's free space a night
    reading = by_what["files"]
    now = datetime.now(UTC)
    with Session(engine) as session:
        for night in range(12, 0, -1):
            run_id = f"synthetic-disk-{night}"
            at = now - timedelta(days=night)
            session.add(
                Run(
                    id=run_id,
                    command="run",
                    playbook="nightly",
                    env="production",
                    sites=["prod1"],
                    started=at,
                    finished=at + timedelta(minutes=1),
                    status="ok",
                    exit_code=0,
                )
            )
            session.add(
                DiskSpace(
                    run_id=run_id,
                    site="prod1",
                    env="production",
                    host=reading.host,
                    at=at,
                    what="files",
                    path=reading.path,
                    mount=reading.mount,
                    total_bytes=reading.total_bytes,
                    free_bytes=reading.free_bytes + night * reading.free_bytes // 12,
                )
            )
        session.commit()
    engine.dispose()
    full_on = (now + timedelta(days=12)).date()

    Recorder.received = []
    second = nightly(project)
    warned = [line for line in second.stderr.splitlines() if "fills up" in line]
    assert warned and warned[0].startswith("warning: trend: prod1 (production): the disk of the ")
    assert f"on prod1 ({reading.mount}) fills up" in warned[0]
    said = warned[0].rsplit("full on ", 1)[1]
    assert abs((datetime.fromisoformat(said).date() - full_on).days) <= 1, warned
    notes = [json.loads(body) for path, body in Recorder.received if path == "/notify"]
    assert notes and notes[0]["type"] == "warning" and "fills up" in notes[0]["message"]

    env = {"MAINTKIT_JOURNAL_DIR": str(project / "journal")}
    status = _cli(project, env, "status", "--output", "json")
    line = json.loads(status.stdout.splitlines()[0])
    assert [w for w in line["warnings"] if w["kind"] == "disk-space"], line
    made = _cli(
        project, env, "report", "--client", "acme", "--period", PERIOD, "--out", project / "r", "--no-pdf"
    )
    assert made.returncode == 0, made.stderr
    site = json.loads((project / "r" / f"acme-{PERIOD}.json").read_text())["sites"][0]
    disk = [t for t in site["trends"] if t["kind"] == "disk-space"]
    assert disk and disk[0]["date"] == said
    assert any(a.startswith("Coming: the disk of the") for a in site["next_actions"])
    assert "fills up" in (project / "r" / f"acme-{PERIOD}.html").read_text()
