"""``maintkit fleet run``: many sites of real sshd hosts at once, isolated; Celery workers on a real Redis.

The fleet: three servers (the session's sshd hosts), seven production sites, three of them on one
server user (prod1). Every site's run writes marker files in ``~/sites/SITE`` on its server, so
what ran, how often, and what rolled back is read on the hosts, not in maintkit's own output.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.helpers import maintkit_cmd, run_cli, start_cli, wait_for, write_playbook
from tests.redisserver import RedisServer
from tests.sshd import SSHHost, terminate

pytestmark = pytest.mark.integration

#: site -> (server, what it does): three sites of one environment on prod1's one user
SITES: dict[str, tuple[str, str]] = {
    "shop-a": ("prod1", "ok"),
    "shop-b": ("prod1", "ok"),
    "shop-c": ("prod1", "ok"),
    "shop-d": ("prod2", "fail"),
    "shop-e": ("prod2", "hang"),
    "shop-f": ("prod2", "ok"),
    "shop-g": ("stage1", "ok"),
}
CLIENTS = {
    "acme": ["shop-a", "shop-b", "shop-c"],
    "beta": ["shop-d", "shop-e", "shop-f"],
    "gamma": ["shop-g"],
}
HEALTHY = [s for s, (_, kind) in SITES.items() if kind == "ok"]

BOOK = {
    "name": "fleet-test",
    "steps": [
        {
            "name": "start",
            "shell": "mkdir -p sites/{{ site }} && echo {{ run_id }} >> sites/{{ site }}/started",
        },
        {"name": "fail", "shell": "exit 7", "when": "behaviour == 'fail'"},
        {"name": "hang", "shell": "sleep 600", "when": "behaviour == 'hang'"},
        {"name": "work", "shell": "sleep {{ work_seconds | default(0) }}"},
        {"name": "done", "shell": "echo {{ run_id }} >> sites/{{ site }}/done"},
    ],
    "rollback": [{"name": "undo", "shell": "echo {{ run_id }} >> sites/{{ site }}/rolled-back"}],
}


def _inventory(ssh_hosts: dict[str, SSHHost], known_hosts: Path) -> dict[str, Any]:
    hosts: dict[str, Any] = {}
    for site, (server, behaviour) in SITES.items():
        host = ssh_hosts[server]
        hosts[f"{site}-web"] = {
            "ansible_host": host.address,
            "ansible_port": host.port,
            "ansible_user": host.user,
            "ansible_ssh_private_key_file": str(host.key_file),
            "site": site,
            "behaviour": behaviour,
        }
    return {"all": {"vars": {"known_hosts": str(known_hosts)}, "hosts": hosts}}


def _portfolio(sites: list[str]) -> dict[str, Any]:
    clients: dict[str, Any] = {}
    for client, names in CLIENTS.items():
        chosen = {name: {"environments": ["production"]} for name in names if name in sites}
        if chosen:
            clients[client] = {"sites": chosen}
    return {
        "defaults": {"rpo_hours": 24, "window": "02:00-05:00", "timezone": "Europe/Paris"},
        "clients": clients,
    }


@pytest.fixture
def project(tmp_path: Path, clean_homes: dict[str, SSHHost], known_hosts_file: Path) -> Path:
    """A project folder: inventories/production.yml (7 sites on 3 servers), portfolio.yml, book.yml."""
    (tmp_path / "inventories").mkdir()
    inventory = _inventory(clean_homes, known_hosts_file)
    (tmp_path / "inventories" / "production.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    (tmp_path / "portfolio.yml").write_text(yaml.safe_dump(_portfolio(list(SITES)), sort_keys=False))
    (tmp_path / "healthy.yml").write_text(yaml.safe_dump(_portfolio(HEALTHY), sort_keys=False))
    write_playbook(tmp_path, BOOK)
    return tmp_path


def marker(ssh_hosts: dict[str, SSHHost], site: str, name: str) -> list[str]:
    """The lines of a marker file a site's runs wrote on its server (one line per run that got there)."""
    path = Path(ssh_hosts[SITES[site][0]].home) / "sites" / site / name
    return path.read_text().split() if path.exists() else []


def lock_folders(ssh_hosts: dict[str, SSHHost]) -> list[Path]:
    return [p for h in ssh_hosts.values() for p in (Path(h.home) / ".maintkit" / "lock").glob("*/*")]


def test_failing_and_hanging_sites_never_stop_the_others(project, ssh_hosts):
    started = time.monotonic()
    result = run_cli(
        "fleet",
        "run",
        "book.yml",
        "--env",
        "production",
        "--concurrency",
        "3",
        "--timeout",
        "12",
        "--grace",
        "20",
        "--output",
        "json",
        "--journal-dir",
        "journal",
        cwd=project,
        timeout=120,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stdout + result.stderr  # the worst site: failed, rolled back
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    by_site = {line["site"]: line for line in lines}
    assert sorted(by_site) == sorted(SITES) and len(lines) == len(SITES)
    for site in HEALTHY:
        assert by_site[site]["status"] == "done" and by_site[site]["exit_code"] == 0, by_site[site]
        assert marker(ssh_hosts, site, "done") == [by_site[site]["run_id"]]  # ran exactly once
        assert marker(ssh_hosts, site, "rolled-back") == []
    failed, hung = by_site["shop-d"], by_site["shop-e"]
    assert (failed["status"], failed["exit_code"]) == ("failed", 1) and "fail" in failed["error"]
    assert marker(ssh_hosts, "shop-d", "rolled-back") == [failed["run_id"]]
    # the hanging site was ended by its own time limit, and rolled back
    assert hung["status"] == "timeout" and hung["timed_out"] and hung["exit_code"] == 1
    assert 12 <= hung["duration"] < 12 + 20
    assert marker(ssh_hosts, "shop-e", "done") == [] and marker(ssh_hosts, "shop-e", "rolled-back") == [
        hung["run_id"]
    ]
    # it held one of the three slots; the six others ran in the other two and all ended before it
    assert lines[-1]["site"] == "shop-e"
    assert max(by_site[s]["duration"] for s in SITES if s != "shop-e") < 12
    assert elapsed < 12 + 20
    # one journal per site run, every lock released, no remote sleep left behind
    journals = {p.stem: p for p in (project / "journal").glob("*.jsonl")}
    sites_runs = {line["run_id"] for line in lines}
    [fleet] = set(journals) - sites_runs  # and the fleet run's own journal
    assert sites_runs < set(journals) and len(journals) == len(SITES) + 1
    assert json.loads(journals[fleet].read_text().splitlines()[0])["command"] == "fleet run"
    assert lock_folders(ssh_hosts) == []
    ps = subprocess.run(["pgrep", "-u", ssh_hosts["prod2"].user, "-f", "sleep 600"], capture_output=True)
    assert ps.returncode == 1, ps.stdout


def test_filters_quiet_and_summary(project, ssh_hosts):
    # -q and every site done: nothing printed (cron mails nothing)
    quiet = run_cli("fleet", "run", "book.yml", "--env", "production", "--client", "acme", "-q", cwd=project)
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")
    assert all(len(marker(ssh_hosts, s, "done")) == 1 for s in CLIENTS["acme"])
    assert marker(ssh_hosts, "shop-f", "started") == [] and marker(ssh_hosts, "shop-g", "started") == []
    # the summary table: one row per site, the failure named
    summary = run_cli("fleet", "run", "book.yml", "--env", "production", "--site", "shop-d", cwd=project)
    assert summary.returncode == 1
    assert "beta/shop-d/production" in summary.stdout and "failed" in summary.stdout
    assert "1 sites: 0 done · 0 running · 1 failed" in summary.stdout
    assert marker(ssh_hosts, "shop-a", "started") == marker(ssh_hosts, "shop-a", "done")  # shop-a not re-run
    # -q with a failure: the failing site only
    quiet = run_cli(
        "fleet",
        "run",
        "book.yml",
        "--env",
        "production",
        "--client",
        "gamma",
        "--site",
        "shop-g",
        "-q",
        "--var",
        "behaviour=fail",
        cwd=project,
    )
    assert quiet.returncode == 1 and quiet.stdout == ""
    assert "gamma/shop-g/production" in quiet.stderr and "failed" in quiet.stderr


def test_bad_input_exits_2_before_any_site_runs(project, ssh_hosts):
    text = (project / "portfolio.yml").read_text().replace("rpo_hours: 24", "rpo_hours: soon")
    (project / "portfolio.yml").write_text(text)
    result = run_cli("fleet", "run", "book.yml", "--env", "production", cwd=project)
    assert result.returncode == 2
    assert "portfolio.yml:2:" in result.stderr and "rpo_hours must be a number > 0" in result.stderr
    unknown = run_cli(
        "fleet",
        "run",
        "book.yml",
        "--env",
        "production",
        "--client",
        "acmee",
        "-P",
        "healthy.yml",
        cwd=project,
    )
    assert unknown.returncode == 2 and "no client 'acmee'" in unknown.stderr
    # a playbook mistake: once, at its file:line, before any site runs (secret --var values masked)
    (project / "bad.yml").write_text("name: bad\nsteps:\n  - name: x\n    shel: echo\n")
    secret = ["--var", "db_password=hunter2hunter2"]
    bad = run_cli("fleet", "run", "bad.yml", "--env", "production", "-P", "healthy.yml", *secret, cwd=project)
    assert bad.returncode == 2 and "bad.yml:4:" in bad.stderr, bad.stderr
    assert "hunter2hunter2" not in bad.stdout + bad.stderr
    assert not any(marker(ssh_hosts, s, "started") for s in SITES)


def test_sigterm_starts_no_new_site_and_rolls_the_running_ones_back(project, ssh_hosts):
    fleet = start_cli(
        "fleet", "run", "book.yml", "--env", "production", "--client", "acme", "--concurrency", "2",
        "--output", "json", "--var", "work_seconds=60", cwd=project,
    )  # fmt: skip
    wait_for(lambda: sum(bool(marker(ssh_hosts, s, "started")) for s in CLIENTS["acme"]) == 2, 60, "2 sites")
    fleet.send_signal(signal.SIGTERM)
    stdout, stderr = fleet.communicate(timeout=60)
    assert fleet.returncode == 1, stdout + stderr
    lines = {x["site"]: x for x in map(json.loads, stdout.splitlines())}
    started = [s for s in CLIENTS["acme"] if marker(ssh_hosts, s, "started")]
    (never,) = set(CLIENTS["acme"]) - set(started)
    assert lines[never]["status"] == "cancelled" and lines[never]["exit_code"] is None
    for site in started:  # stopped in `sleep 60`, rolled back, no done marker
        assert lines[site]["status"] == "failed" and lines[site]["exit_code"] == 1
        assert marker(ssh_hosts, site, "done") == [] and marker(ssh_hosts, site, "rolled-back") != []
    assert "no new site starts" in stderr
    assert lock_folders(ssh_hosts) == []


# -- Celery workers on Redis -------------------------------------------------------------------------


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def start_worker(project: Path, broker: str, name: str) -> subprocess.Popen[bytes]:
    log = (project / f"{name}.log").open("wb")
    return subprocess.Popen(
        maintkit_cmd(
            "worker",
            "--broker",
            broker,
            "-n",
            f"{name}@fleet-test",
            "-c",
            "2",
            "--visibility-timeout",
            "8",
            "--workdir",
            str(project),
        ),
        cwd=project,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "NO_COLOR": "1"},
    )


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (its fork server, the site runs forked from it, their ssh)."""
    found, stack = [], [pid]
    while stack:
        for task in Path(f"/proc/{stack.pop()}/task").glob("*"):
            try:
                children = [int(p) for p in (task / "children").read_text().split()]
            except OSError:
                continue
            found += children
            stack += children
    return found


def running_site(worker: int, project: Path) -> str | None:
    """The site a worker is running: the run writing a journal there names its hosts in ``run_start``."""
    for pid in descendants(worker):
        try:
            targets = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue
        for target in targets:
            if target.endswith(".jsonl") and "/.maintkit/runs/" in target:
                first = Path(target).read_text().split("\n", 1)[0]
                if first:
                    return str(json.loads(first)["hosts"][0]).removesuffix("-web")
    return None


def test_a_killed_worker_s_site_is_run_again_elsewhere_exactly_once(project, ssh_hosts, redis_server):
    workers = [start_worker(project, redis_server.url, name) for name in ("w1", "w2")]
    try:
        wait_for(
            lambda: all("ready" in (project / f"{n}.log").read_text() for n in ("w1", "w2")), 60, "workers"
        )
        fleet = start_cli(
            "fleet",
            "run",
            "book.yml",
            "--env",
            "production",
            "-P",
            "healthy.yml",
            "--workers",
            redis_server.url,
            "--output",
            "json",
            "--timeout",
            "60",
            "--grace",
            "5",
            "--var",
            "work_seconds=3",
            cwd=project,
        )
        killed = wait_for(lambda: running_site(workers[0].pid, project), 60, "w1 running a site")
        running = descendants(workers[0].pid)
        wait_for(lambda: marker(ssh_hosts, killed, "started"), 30, f"{killed} started on w1")
        workers[0].send_signal(signal.SIGKILL)  # mid-run: its site's `maintkit run` is in `sleep 3`
        workers[0].wait(timeout=10)
        stdout, stderr = fleet.communicate(timeout=120)
        wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in running), 30, "w1's runs to end")
    finally:
        for worker in workers:
            terminate(worker)  # type: ignore[arg-type]
    assert fleet.returncode == 0, stdout + stderr
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert sorted(line["site"] for line in lines) == sorted(HEALTHY)
    assert all(line["status"] == "done" for line in lines), lines
    for site in HEALTHY:  # every site done exactly once, by the run the fleet reports
        assert marker(ssh_hosts, site, "done") == [next(x["run_id"] for x in lines if x["site"] == site)]
    # the site w1 was running rolled back when w1 died, and was run again, by w2
    assert (
        len(marker(ssh_hosts, killed, "started")) == 2 and len(marker(ssh_hosts, killed, "rolled-back")) == 1
    )
    assert next(x for x in lines if x["site"] == killed)["worker"] == "w2@fleet-test"
    assert lock_folders(ssh_hosts) == []


def test_sigterm_revokes_the_sites_no_worker_started_and_stops_the_running_one(
    project, ssh_hosts, redis_server
):
    worker = subprocess.Popen(
        maintkit_cmd("worker", "--broker", redis_server.url, "-n", "solo@fleet-test", "-c", "1",
                     "--workdir", str(project)),
        cwd=project, stdout=(project / "solo.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for(lambda: "ready" in (project / "solo.log").read_text(), 60, "the worker")
        fleet = start_cli("fleet", "run", "book.yml", "--env", "production", "--client", "acme",
                          "--output", "json", "--workers", redis_server.url, "--var", "work_seconds=60",
                          cwd=project)  # fmt: skip
        wait_for(lambda: any(marker(ssh_hosts, s, "started") for s in CLIENTS["acme"]), 60, "a site started")
        fleet.send_signal(signal.SIGTERM)
        stdout, stderr = fleet.communicate(timeout=60)
        log = wait_for(
            lambda: (t := (project / "solo.log").read_text()).count("Discarding revoked") == 2 and t, 30
        )
    finally:
        terminate(worker)  # type: ignore[arg-type]
    assert fleet.returncode == 1, stdout + stderr
    lines = {x["site"]: x for x in map(json.loads, stdout.splitlines())}
    (running,) = [s for s in CLIENTS["acme"] if marker(ssh_hosts, s, "started")]
    assert lines[running]["status"] == "failed" and marker(ssh_hosts, running, "rolled-back") != []
    assert all(lines[s]["status"] == "cancelled" for s in CLIENTS["acme"] if s != running)
    assert all(marker(ssh_hosts, s, "done") == [] for s in CLIENTS["acme"]) and "revoked" in log
    assert lock_folders(ssh_hosts) == []


def _frozen(sites: list[str]) -> dict[str, Any]:
    """A portfolio of ``sites`` whose shop-a is in a freeze window from yesterday to tomorrow."""
    from datetime import UTC, datetime, timedelta

    today = datetime.now(UTC).date()
    portfolio = _portfolio(sites)
    portfolio["clients"]["acme"]["sites"]["shop-a"]["freeze"] = [
        {"from": (today - timedelta(days=1)).isoformat(), "to": (today + timedelta(days=1)).isoformat()}
    ]
    return portfolio


def _write_update_playbook(project: Path) -> None:
    """update.yml: marks the site done, then a composer step (what a freeze refuses)."""
    update = {
        "name": "update",
        "steps": [
            {
                "name": "done",
                "shell": "mkdir -p sites/{{ site }} && echo {{ run_id }} >> sites/{{ site }}/done",
            },
            {
                "name": "composer",
                "composer": {"command": "install", "working_dir": "~/sites/{{ site }}/none"},
            },
        ],
    }
    write_playbook(project, update, "update")


def test_a_frozen_site_is_refused_in_a_fleet_run_and_the_override_reaches_its_run(project, ssh_hosts):
    """The portfolio's freeze refuses the update of shop-a only; --override-freeze --reason is handed down."""
    (project / "portfolio.yml").write_text(yaml.safe_dump(_frozen(["shop-a", "shop-b"]), sort_keys=False))
    _write_update_playbook(project)
    args = (
        "fleet",
        "run",
        "update.yml",
        "--env",
        "production",
        "--output",
        "json",
        "--journal-dir",
        "journal",
    )

    refused = run_cli(*args, cwd=project, timeout=120)
    by_site = {line["site"]: line for line in map(json.loads, refused.stdout.splitlines())}
    assert by_site["shop-a"]["status"] == "invalid" and marker(ssh_hosts, "shop-a", "done") == []
    assert by_site["shop-b"]["status"] != "invalid" and marker(ssh_hosts, "shop-b", "done")

    forced = run_cli(
        *args, "--site", "shop-a", "--override-freeze", "--reason", "hotfix", cwd=project, timeout=120
    )
    [line] = map(json.loads, forced.stdout.splitlines())
    assert line["status"] != "invalid" and marker(ssh_hosts, "shop-a", "done") == [line["run_id"]]
    start = json.loads((project / "journal" / f"{line['run_id']}.jsonl").read_text().splitlines()[0])
    assert start["event"] == "run_start" and start["freeze_override"]["reason"] == "hotfix"


def test_the_fleet_run_and_its_sites_runs_are_recorded_in_the_history(project, ssh_hosts):
    """Each site's run is recorded with the command ``fleet``; the fleet run itself with ``fleet run``."""
    import sqlite3

    result = run_cli("fleet", "run", "book.yml", "--env", "production", "--client", "beta",
                     "--output", "json", "--journal-dir", "journal", "--timeout", "8", "--grace", "5",
                     cwd=project)  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    lines = {x["site"]: x for x in map(json.loads, result.stdout.splitlines())}
    with sqlite3.connect(project / ".maintkit" / "history.sqlite") as db:
        rows = db.execute(
            "SELECT id, command, sites, status, exit_code, error, finished FROM runs"
        ).fetchall()
    by_id = {row[0]: row for row in rows}
    for site in CLIENTS["beta"]:
        _, command, sites, _, code, _, finished = by_id[lines[site]["run_id"]]
        assert (command, json.loads(sites), code) == ("fleet", [site], lines[site]["exit_code"]) and finished
    [(fleet_id, _, sites, status, code, error, finished)] = [r for r in rows if r[1] == "fleet run"]
    assert (json.loads(sites), status, code) == (CLIENTS["beta"], "failed", 1) and finished
    assert "2 of 3 sites not done" in error and "beta/shop-d/production failed" in error
    for site in CLIENTS["beta"]:  # each site's journal names the fleet run it belongs to
        first = (project / "journal" / f"{lines[site]['run_id']}.jsonl").read_text().splitlines()[0]
        assert json.loads(first)["fleet_run"] == fleet_id
    assert (project / "journal" / f"{fleet_id}.jsonl").is_file()
    # status: the fleet run is nobody's lock holder, and the sites' ended runs neither
    status = run_cli("status", "--output", "json", "--journal-dir", "journal", cwd=project)
    assert all(x["lock_holders"] == [] for x in map(json.loads, status.stdout.splitlines())), status.stdout


def test_the_portfolio_given_with_P_is_the_one_every_site_s_run_reads(project, ssh_hosts):
    """-P reaches each site's run: its freeze windows refuse the update (portfolio.yml has none)."""
    (project / "frozen.yml").write_text(yaml.safe_dump(_frozen(["shop-a"]), sort_keys=False))
    _write_update_playbook(project)
    result = run_cli("fleet", "run", "update.yml", "--env", "production", "-P", "frozen.yml",
                     "--output", "json", cwd=project, timeout=120)  # fmt: skip
    [line] = map(json.loads, result.stdout.splitlines())
    assert (line["site"], line["status"]) == ("shop-a", "invalid"), result.stdout + result.stderr
    assert "freeze" in (line["error"] or "") and marker(ssh_hosts, "shop-a", "done") == []


def test_sites_on_one_server_account_share_one_ssh_connection_for_their_streams(
    project, ssh_hosts, ssh_servers, tmp_path
):
    """acme's three sites live on prod1's one user (shared hosting): their snapshots' streams ride
    one master connection the fleet opened for that account (each new ``ssh`` connection costs
    ~105 ms of CPU), every snapshot is complete, and no master outlives the fleet."""
    book = {
        "name": "files",
        "steps": [
            {"shell": "mkdir -p sites/{{ site }} && echo {{ site }} > sites/{{ site }}/index.html"},
            {"snapshot": {"files": {"root": "~/sites/{{ site }}"}}},
        ],
    }
    write_playbook(project, book, "files")
    inventory = project / "inventories" / "production.yml"
    data = yaml.safe_load(inventory.read_text())
    data["all"]["vars"]["storage"] = [{"name": "local", "type": "local", "path": str(tmp_path / "backups")}]
    inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    server = ssh_servers.servers["prod1"]

    def logins() -> int:
        return server.log.read_text(errors="replace").count(f"Accepted publickey for {server.user}")

    before = logins()
    result = run_cli(
        "fleet", "run", "files.yml", "--env", "production", "--client", "acme", "--concurrency", "1",
        cwd=project, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    manifests = sorted((tmp_path / "backups").rglob("manifest.json"))
    assert [json.loads(m.read_text())["site"] for m in manifests] == ["shop-a", "shop-b", "shop-c"]
    assert logins() - before == 4  # each site's own (paramiko) connection, and one master for all
    masters = subprocess.run(["ps", "ww", "-e", "-o", "args="], capture_output=True, text=True).stdout
    assert not [line for line in masters.splitlines() if line.startswith("ssh: ") and "[mux]" in line]
