"""An interrupted run says so: ``run_end status: interrupted`` in the journal, the console and monitoring.

Real CLI in a subprocess on a local-connection inventory, stopped by a real signal while a step runs.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import yaml

from tests.integration.helpers import events, start_cli, wait_for, write_playbook

pytestmark = pytest.mark.integration


def local_inventory(folder: Path, **variables: object) -> Path:
    path = folder / "local.yml"
    variables.setdefault("lock_dir", str(folder / "lock"))
    path.write_text(yaml.safe_dump({"all": {"vars": variables, "hosts": {"shop": {"connection": "local"}}}}))
    return path


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_ends_the_run_as_interrupted_in_journal_console_and_metrics(tmp_path, signum):
    metrics = tmp_path / "maintkit.prom"
    inventory = local_inventory(tmp_path, metrics_file=str(metrics))
    started = tmp_path / "started"
    book = write_playbook(
        tmp_path,
        {
            "name": "nightly",
            "steps": [{"name": "hang", "shell": f"touch {started}; sleep 600"}],
            "rollback": [{"name": "undo", "shell": f"rm {started}"}],
        },
    )
    process = start_cli("run", book, "-i", inventory, "--journal-dir", tmp_path / "j", cwd=tmp_path)
    try:
        wait_for(started.exists, what="the step to start")
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1, stdout + stderr  # the exit-code contract: rolled back cleanly
    assert not started.exists()  # the rollback ran
    run_end = events(tmp_path / "j")[-1]
    assert run_end["event"] == "run_end"
    assert run_end["status"] == "interrupted" and run_end["interrupted"] is True
    assert "interrupted (exit 1)" in stdout
    assert "Traceback" not in stderr
    labels = '{env="local",playbook="nightly",site="shop"}'
    text = metrics.read_text()
    assert f"maintkit_last_run_interrupted{labels} 1" in text
    assert f"maintkit_last_run_exit_code{labels} 1" in text


def test_a_failed_run_is_failed_not_interrupted(tmp_path):
    metrics = tmp_path / "maintkit.prom"
    inventory = local_inventory(tmp_path, metrics_file=str(metrics))
    book = write_playbook(tmp_path, {"name": "nightly", "steps": [{"name": "bad", "shell": "exit 3"}]})
    process = start_cli("run", book, "-i", inventory, "--journal-dir", tmp_path / "j", cwd=tmp_path)
    stdout, _ = process.communicate(timeout=60)
    assert process.returncode == 1
    run_end = events(tmp_path / "j")[-1]
    assert run_end["status"] == "failed" and run_end["interrupted"] is False
    assert "failed (exit 1)" in stdout
    labels = '{env="local",playbook="nightly",site="shop"}'
    assert f"maintkit_last_run_interrupted{labels} 0" in metrics.read_text()
