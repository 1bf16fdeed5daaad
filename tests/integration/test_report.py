"""The activity report from real runs: nightly snapshots and verifies over real sshd, smoke checks
against a real HTTP server on 127.0.0.1, recorded by the history; then ``maintkit report`` writes
HTML, JSON and PDF, and headless Chromium loads the HTML and the test checks its layout.
(docs/report-sample.* comes from the drill's report test in test_restore_drill.py.)
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import json
import os
import re
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from maintkit.history.location import database_url
from maintkit.history.models import Snapshot
from maintkit.reporting.pdf import FLAGS
from tests.integration.conftest import inventory_data
from tests.integration.helpers import run_cli, write_playbook
from tests.integration.test_monitoring import Recorder
from tests.integration.test_monitoring import receiver as receiver  # the fixture, reused

pytestmark = pytest.mark.integration

PERIOD = datetime.now(UTC).strftime("%Y-%m")


@contextlib.contextmanager
def shop_server(folder: Path) -> Iterator[str]:
    """A real HTTP server on a free port of 127.0.0.1 serving ``folder`` (the shop's front page)."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def project(tmp_path: Path, ssh_hosts, known_hosts_file, clean_homes) -> Path:
    """prod1 is ACME's shop: files snapshotted to a local folder; a portfolio naming it."""
    data = inventory_data(ssh_hosts, known_hosts_file)
    data["all"]["vars"].update(
        files={"root": "~/site"},
        storage=[{"name": "offsite", "type": "local", "path": str(tmp_path / "backups")}],
    )
    (tmp_path / "inventories").mkdir()
    (tmp_path / "inventories/production.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    portfolio = {
        "defaults": {"rpo_hours": 24, "rto_minutes": 60},
        "clients": {
            "acme": {
                "title": "ACME GmbH",
                "sites": {
                    "acme-shop": {
                        "availability_percent": 99.5,
                        "environments": {"production": {"site": "prod1"}},
                    }
                },
            }
        },
    }
    (tmp_path / "portfolio.yml").write_text(yaml.safe_dump(portfolio, sort_keys=False))
    (tmp_path / "journal").mkdir()
    (tmp_path / "www").mkdir()
    (tmp_path / "www/index.html").write_text("<h1>ACME shop</h1>")
    return tmp_path


def nightly(project: Path, url: str, content: str) -> subprocess.CompletedProcess[str]:
    book = {
        "name": "nightly",
        "steps": [
            {
                "name": "content",
                "shell": f"mkdir -p ~/site && head -c {content} /dev/urandom > ~/site/data.bin",
            },
            {"snapshot": {"files": "{{ files }}"}},
            {"verify": "latest"},
            {"name": "shop answers", "smoke": [{"url": url, "contains": ["ACME shop"]}]},
        ],
    }
    path = write_playbook(project, book, "nightly")
    env = {"MAINTKIT_JOURNAL_DIR": str(project / "journal")}
    result = _cli(project, env, "run", path, "--env", "production", "--limit", "prod1")
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _cli(project: Path, env: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return run_cli(*args, cwd=project, timeout=300)
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


#: injected into a copy of the report: measures the layout once the page has loaded
CHECK = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message)));
window.addEventListener('load', () => {
  const width = document.documentElement.clientWidth;
  const over = [...document.querySelectorAll('body *')].filter(el => {
    const r = el.getBoundingClientRect(); return r.right > width + 0.5 || r.left < -0.5; })
    .map(el => el.tagName);
  const charts = [...document.querySelectorAll('svg.chart')].map(s => {
    const r = s.getBoundingClientRect(); return [r.width, r.height, s.querySelectorAll('*').length]; });
  const out = document.createElement('pre'); out.id = '__layout';
  out.textContent = JSON.stringify({width, scrollWidth: document.documentElement.scrollWidth,
    overflowing: over.length, charts, errors: window.__errors,
    h2: [...document.querySelectorAll('h2')].map(h => h.textContent)});
  document.body.appendChild(out);
});
</script>"""


def browser_layout(html: Path, screenshot: Path, width: int) -> tuple[dict, str]:
    """Load ``html`` (file://) in headless Chromium at ``width`` px: the layout facts and its console."""
    probe = html.with_name("probe-" + html.name)
    probe.write_text(html.read_text().replace("</head>", CHECK + "</head>", 1))
    with tempfile.TemporaryDirectory(prefix="maintkit-chromium-") as profile:
        common = [*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},1200"]
        shot = subprocess.run(
            ["chromium", *common, f"--screenshot={screenshot}", html.as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert shot.returncode == 0 and screenshot.stat().st_size > 0, shot.stderr
        dom = subprocess.run(
            [
                "chromium",
                *common,
                "--enable-logging=stderr",
                "--v=0",
                "--virtual-time-budget=5000",
                "--dump-dom",
                probe.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert dom.returncode == 0, dom.stderr
    found = re.search(r'<pre id="__layout">(.*?)</pre>', dom.stdout, re.S)
    assert found, dom.stdout[-2000:]
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&")), dom.stderr


def test_a_monthly_report_from_real_runs_in_html_json_and_pdf_checked_in_a_real_browser(project, tmp_path):
    with shop_server(project / "www") as url:
        nightly(project, url, "300000")
        nightly(project, url, "600000")
    out = tmp_path / "report"
    env = {"MAINTKIT_JOURNAL_DIR": str(project / "journal")}
    result = _cli(project, env, "report", "--client", "acme", "--period", PERIOD, "--out", out)
    assert result.returncode == 0, result.stdout + result.stderr

    stem = out / f"acme-{PERIOD}"
    report = json.loads(stem.with_suffix(".json").read_text())
    site = report["sites"][0]
    engine = create_engine(database_url(project / "journal", cwd=project))
    with Session(engine) as session:
        sizes = sorted(s.size for s in session.scalars(select(Snapshot).where(Snapshot.site == "prod1")))
    engine.dispose()
    assert report["client_title"] == "ACME GmbH" and site["site"] == "acme-shop"
    assert site["backups"]["taken"] == 2 and site["backups"]["verified"] == 2
    assert sorted(i["size"] for i in site["backups"]["snapshots"]) == sizes and sizes[1] > sizes[0] > 300000
    assert site["backups"]["where"] == ["offsite"]
    assert site["availability"]["checks"] == 2 and site["availability"]["percent"] == 100.0
    assert (
        site["availability"]["p95_ms"] > 0 and site["availability"]["sla_percent"] == 99.5
    )  # the portfolio's
    assert any("restore drill" in a for a in site["next_actions"])  # none was run this month
    assert {r["id"] for r in site["runs"]} >= {i["run_id"] for i in site["backups"]["snapshots"]}

    html = stem.with_suffix(".html").read_text()
    assert "<script" not in html and "<link" not in html and not re.search(r"(src|href)=\"https?:", html)
    assert html.count("<svg") == 2 and "ACME GmbH" in html and "target 99.5 %" in html

    # the browser: an A4 page's width and a phone's; nothing overflows, every chart has a size
    for width in (794, 390):
        layout, console = browser_layout(stem.with_suffix(".html"), tmp_path / f"shot-{width}.png", width)
        assert layout["overflowing"] == 0 and layout["scrollWidth"] <= layout["width"], layout
        assert len(layout["charts"]) == 2 and all(
            w > 100 and h > 20 and n > 5 for w, h, n in layout["charts"]
        )
        assert layout["errors"] == [] and "CONSOLE" not in console and "Uncaught" not in console
        assert layout["h2"][0] == "acme-shop (production)" and layout["h2"][-1].startswith("Appendix")

    pdf = stem.with_suffix(".pdf")
    assert pdf.read_bytes().startswith(b"%PDF")
    text = subprocess.run(
        ["pdftotext", "-layout", pdf, "-"], capture_output=True, text=True, check=True
    ).stdout
    for heading in (
        "Maintenance report: ACME GmbH",
        "Backups",
        "Restore drills",
        "Updates",
        "Incidents",
        "Availability and response time",
        "Recommended next actions",
        "Appendix",
    ):
        assert heading in text, heading
    assert site["runs"][0]["id"] in text


def test_a_backup_half_the_size_of_the_one_before_is_warned_in_the_run_status_report_and_notification(
    project, tmp_path, receiver
):
    inventory = project / "inventories/production.yml"
    data = yaml.safe_load(inventory.read_text())
    data["all"]["vars"]["notify"] = [f"json://{receiver}/notify"]
    inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    with shop_server(project / "www") as url:
        nightly(project, url, "600000")
        assert not [p for p, _ in Recorder.received if p == "/notify"]  # nothing to say yet
        second = nightly(project, url, "200000")
    # the second backup is a third of the first: said by the run that took it, on stderr and notified
    assert "warning: trend: prod1 (production): the backup of" in second.stderr
    notes = [json.loads(body) for path, body in Recorder.received if path == "/notify"]
    assert notes and "WARNING" in notes[0]["title"] and notes[0]["type"] == "warning"
    assert (
        "check that no data was lost" in notes[0]["message"] and "prod1 (production)" in notes[0]["message"]
    )

    env = {"MAINTKIT_JOURNAL_DIR": str(project / "journal")}
    status = _cli(project, env, "status", "--output", "json")
    line = json.loads(status.stdout.splitlines()[0])
    assert any(w["kind"] == "backup-size" for w in line["warnings"]), line
    made = _cli(
        project, env, "report", "--client", "acme", "--period", PERIOD, "--out", tmp_path / "r", "--no-pdf"
    )
    assert made.returncode == 0, made.stderr
    site = json.loads((tmp_path / "r" / f"acme-{PERIOD}.json").read_text())["sites"][0]
    assert [t["kind"] for t in site["trends"]] == ["backup-size"]
    assert site["next_actions"][0].startswith("Coming: the backup of")


def test_integrity_watch_warns_about_an_injected_file_outside_an_update_run(project, ssh_hosts, receiver):
    """Real hash lists of prod1's site over sshd; an injected PHP file and an edited one are named."""
    inventory = project / "inventories/production.yml"
    data = yaml.safe_load(inventory.read_text())
    data["all"]["vars"]["notify"] = [f"json://{receiver}/notify"]
    inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    site = Path(ssh_hosts["prod1"].home) / "site"
    book = write_playbook(project, {"name": "watch", "steps": [{"integrity": "~/site"}]}, "watch")
    env = {"MAINTKIT_JOURNAL_DIR": str(project / "journal")}

    def watch() -> subprocess.CompletedProcess[str]:
        result = _cli(project, env, "run", book, "--env", "production", "--limit", "prod1")
        assert result.returncode == 0, result.stdout + result.stderr
        return result

    owner = site.parent.stat()
    (site / "pub/media").mkdir(parents=True)
    for name, text in {"index.php": "<?php echo 'shop';", "pub/media/a.jpg": "jpg"}.items():
        (site / name).write_text(text)
    subprocess.run(["chown", "-R", f"{owner.st_uid}:{owner.st_gid}", str(site)], check=True)
    assert "outside an update" not in watch().stderr  # the first list: the baseline
    (site / "evil.php").write_text("<?php eval($_POST['x']);")
    (site / "index.php").write_text("<?php echo 'shop'; include 'evil.php';")
    (site / "pub/media/b.jpg").write_text("new upload")  # media: changes by design, not watched
    subprocess.run(["chown", "-R", f"{owner.st_uid}:{owner.st_gid}", str(site)], check=True)
    Recorder.received = []
    warned = watch().stderr
    assert "files changed outside an update run" in warned
    assert "added evil.php; changed index.php" in warned and "b.jpg" not in warned
    notes = [json.loads(body) for path, body in Recorder.received if path == "/notify"]
    assert notes and "added evil.php" in notes[0]["message"] and notes[0]["type"] == "warning"
    assert "outside an update" not in watch().stderr  # the new list is the baseline: one warning

    status = _cli(project, env, "status", "--output", "json")
    line = json.loads(status.stdout.splitlines()[0])
    assert any(w["kind"] == "integrity" and "evil.php" in w["message"] for w in line["warnings"]), line
    made = _cli(
        project, env, "report", "--client", "acme", "--period", PERIOD, "--out", project / "r", "--no-pdf"
    )
    report = json.loads((project / "r" / f"acme-{PERIOD}.json").read_text())["sites"][0]
    assert made.returncode == 0 and report["integrity"][0]["added"] == ["evil.php"]
    assert "evil.php" in (project / "r" / f"acme-{PERIOD}.html").read_text()


def test_the_hash_list_made_while_the_snapshot_streams_warns_about_an_injected_file(
    project, ssh_hosts, receiver
):
    """``nightly-backup`` as shipped (snapshot with ``integrity``): the list is made on the host
    during the snapshot, holds every code file (2,000 of them: more than a command's output tail)
    with its real SHA-256, leaves nothing behind in /tmp, and the watch names the injected file."""
    inventory = project / "inventories/production.yml"
    data = yaml.safe_load(inventory.read_text())
    data["all"]["vars"]["notify"] = [f"json://{receiver}/notify"]
    inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    site = Path(ssh_hosts["prod1"].home) / "site"
    owner = site.parent.stat()
    for number in range(2000):
        path = site / f"app/code/Vendor/Module{number // 100}/File{number}.php"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"<?php // file {number}\n")
    (site / "pub/media").mkdir(parents=True)
    (site / "pub/media/a.jpg").write_bytes(b"jpg")
    (site / "index.php").write_text("<?php echo 'shop';")
    subprocess.run(["chown", "-R", f"{owner.st_uid}:{owner.st_gid}", str(site)], check=True)
    env = {"MAINTKIT_JOURNAL_DIR": str(project / "journal")}

    def backup() -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
        result = _cli(project, env, "run", "nightly-backup", "--env", "production", "--limit", "prod1")
        assert result.returncode == 0, result.stdout + result.stderr
        journal = max((project / "journal").glob("*.jsonl"), key=lambda p: p.stat().st_mtime)
        [step] = [
            e
            for e in map(json.loads, journal.read_text().splitlines())
            if e.get("event") == "step_end" and e.get("action") == "snapshot"
        ]
        return result, step["data"]

    first, data = backup()
    listed = data["integrity"]["files"]
    expected = {
        str(p.relative_to(site)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in site.rglob("*")
        if p.is_file() and not str(p.relative_to(site)).startswith("pub/media/")
    }
    assert listed == expected and len(listed) == 2001
    assert "outside an update" not in first.stderr  # the first list: the baseline
    assert not [p for p in Path("/tmp").glob("maintkit-hashes.*") if p.stat().st_uid == owner.st_uid]

    (site / "evil.php").write_text("<?php eval($_POST['x']);")
    (site / "index.php").write_text("<?php echo 'shop'; include 'evil.php';")
    (site / "pub/media/b.jpg").write_text("new upload")  # media: changes by design, not watched
    subprocess.run(["chown", "-R", f"{owner.st_uid}:{owner.st_gid}", str(site)], check=True)
    Recorder.received = []
    second, _ = backup()
    assert "added evil.php; changed index.php" in second.stderr and "b.jpg" not in second.stderr
    notes = [json.loads(body) for path, body in Recorder.received if path == "/notify"]
    assert notes and "added evil.php" in notes[0]["message"] and notes[0]["type"] == "warning"
    assert "outside an update" not in backup()[0].stderr  # the new list is the baseline
    status = _cli(project, env, "status", "--output", "json")
    line = json.loads(status.stdout.splitlines()[0])
    assert any(w["kind"] == "integrity" and "evil.php" in w["message"] for w in line["warnings"]), line
