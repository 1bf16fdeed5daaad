"""Cron operation: healthcheck pings, apprise notifications and Prometheus metrics from real runs."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.helpers import run_cli, write_playbook

pytestmark = pytest.mark.integration


class Recorder(http.server.BaseHTTPRequestHandler):
    received: list[tuple[str, bytes]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        Recorder.received.append((self.path, self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"OK")

    do_GET = do_POST

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Recorder.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def local_inventory(folder: Path, **variables: object) -> Path:
    path = folder / "local.yml"
    path.write_text(yaml.safe_dump({"all": {"vars": variables, "hosts": {"shop": {"connection": "local"}}}}))
    return path


def test_success_pings_start_and_success_and_writes_metrics(tmp_path, receiver):
    metrics = tmp_path / "metrics" / "maintkit.prom"
    inventory = local_inventory(
        tmp_path, healthcheck=f"http://{receiver}/ping/abc-uuid", metrics_file=str(metrics)
    )
    book = write_playbook(tmp_path, {"name": "nightly", "steps": [{"shell": "true"}]})
    result = run_cli("run", book, "-i", inventory, "-q", "--journal-dir", tmp_path / "j", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout == ""
    assert [path for path, _ in Recorder.received] == ["/ping/abc-uuid/start", "/ping/abc-uuid"]
    text = metrics.read_text()
    labels = '{env="local",playbook="nightly",site="shop"}'
    assert f"maintkit_last_run_exit_code{labels} 0" in text
    assert f"maintkit_last_success_timestamp_seconds{labels}" in text
    assert "# TYPE maintkit_last_success_timestamp_seconds gauge" in text


def test_failure_pings_fail_notifies_and_keeps_the_last_success_time(tmp_path, receiver):
    metrics = tmp_path / "maintkit.prom"
    inventory = local_inventory(
        tmp_path,
        healthcheck=f"http://{receiver}/ping/abc",
        metrics_file=str(metrics),
        notify=[f"json://{receiver}/notify"],
    )
    good = write_playbook(tmp_path, {"name": "nightly", "steps": [{"shell": "true"}]}, name="good")
    bad = write_playbook(
        tmp_path, {"name": "nightly", "steps": [{"name": "dump", "shell": "exit 3"}]}, name="bad"
    )
    assert run_cli("run", good, "-i", inventory, "-q", cwd=tmp_path).returncode == 0
    success_line = next(line for line in metrics.read_text().splitlines() if "last_success" in line)
    Recorder.received = []
    result = run_cli("run", bad, "-i", inventory, "-q", cwd=tmp_path)
    assert result.returncode == 1
    paths = [path for path, _ in Recorder.received]
    assert paths[:2] == ["/ping/abc/start", "/ping/abc/fail"]
    assert "/notify" in paths
    notification = json.loads(dict(Recorder.received)["/notify"])
    assert "FAILED" in notification["title"] and "dump" in notification["message"]
    text = metrics.read_text()
    assert success_line in text  # the last success survives the failure
    assert 'maintkit_last_run_exit_code{env="local",playbook="nightly",site="shop"} 1' in text
    assert "abc" not in result.stdout  # healthcheck URLs are secrets


def test_an_unreachable_healthcheck_does_not_fail_the_run(tmp_path):
    inventory = local_inventory(tmp_path, healthcheck="http://127.0.0.1:9/ping")
    book = write_playbook(tmp_path, {"name": "n", "steps": [{"shell": "true"}]})
    result = run_cli("run", book, "-i", inventory, cwd=tmp_path, timeout=120)
    assert result.returncode == 0
