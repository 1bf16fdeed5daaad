"""WordPress checksum verification feeds the integrity view: a nightly ``audit`` (tool: wordpress)
over real sshd, with the fixture wp-cli (tests/wordpress.py: wp-cli's commands and messages, the
update source standing for wordpress.org) against a real MariaDB-backed site. A tampered core file
and a tampered plugin file are named on stderr, notified to a real receiver, on ``status`` and in
the report; the next night, with nothing new, is quiet.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import inventory_data
from tests.integration.test_monitoring import Recorder
from tests.integration.test_monitoring import receiver as receiver  # the fixture, reused
from tests.integration.test_report import PERIOD, _cli
from tests.mariadb import MariaDBServer, mariadb_fixture
from tests.shop import require_php_and_composer
from tests.sshd import SSHHost
from tests.wordpress import Site, installed_site

pytestmark = pytest.mark.integration

mariadb = mariadb_fixture("mariadb", scope="module", seed=None)


@pytest.fixture
def site(clean_homes: dict[str, SSHHost], mariadb: MariaDBServer) -> Iterator[Site]:
    require_php_and_composer()
    with installed_site(clean_homes["prod1"], mariadb, f"mkwp_audit_{uuid.uuid4().hex[:8]}") as installed:
        yield installed


@pytest.fixture
def project(tmp_path: Path, ssh_hosts, known_hosts_file, site: Site, receiver) -> Path:
    data = inventory_data(ssh_hosts, known_hosts_file)
    data["all"]["vars"].update(
        wp_root=str(site.root),
        wp=str(site.wp_path),
        notify=[f"json://{receiver}/notify"],
        storage=[{"name": "local", "type": "local", "path": str(tmp_path / "backups")}],
    )
    (tmp_path / "inventories").mkdir()
    (tmp_path / "inventories/production.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    portfolio = {
        "clients": {"acme": {"sites": {"acme-wp": {"environments": {"production": {"site": "prod1"}}}}}}
    }
    (tmp_path / "portfolio.yml").write_text(yaml.safe_dump(portfolio, sort_keys=False))
    book = {
        "name": "nightly-audit",
        "steps": [
            {
                "name": "verify core and plugin checksums",
                "audit": {"tool": "wordpress", "working_dir": "{{ wp_root }}", "wp": "{{ wp }}"},
                "ignore_errors": True,  # a mismatch is reported by the integrity view; the night goes on
            }
        ],
    }
    (tmp_path / "audit.yml").write_text(yaml.safe_dump(book, sort_keys=False))
    return tmp_path


def nightly(project: Path) -> subprocess.CompletedProcess[str]:
    env = {"MAINTKIT_JOURNAL_DIR": str(project / "journal")}
    result = _cli(project, env, "run", project / "audit.yml", "--env", "production", "--limit", "prod1")
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_wordpress_checksum_mismatches_show_in_the_integrity_view(project, site: Site, ssh_hosts):
    assert "checksums" not in nightly(project).stderr  # a clean install verifies
    owner = site.root.stat()
    with open(site.root / "wp-includes/version.php", "a") as handle:
        handle.write("\n// injected\n")
    with open(site.root / "wp-content/plugins/shop-banner/shop-banner.php", "a") as handle:
        handle.write("\n/* injected */\n")
    subprocess.run(["chown", "-R", f"{owner.st_uid}:{owner.st_gid}", str(site.root)], check=True)

    Recorder.received = []
    warned = nightly(project).stderr
    expected = (
        "WordPress files differ from wordpress.org's checksums: core: wp-includes/version.php (changed); "
        "plugin shop-banner: shop-banner.php (Checksum does not match)"
    )
    assert f"warning: trend: prod1 (production): {expected}" in warned, warned
    notes = [json.loads(body) for path, body in Recorder.received if path == "/notify"]
    assert notes and notes[0]["type"] == "warning" and "wp-includes/version.php" in notes[0]["message"]
    Recorder.received = []
    assert "checksums" not in nightly(project).stderr  # nothing new: not warned again
    assert not [p for p, _ in Recorder.received if p == "/notify"]

    env = {"MAINTKIT_JOURNAL_DIR": str(project / "journal")}
    status = _cli(project, env, "status", "--output", "json")
    line = json.loads(status.stdout.splitlines()[0])
    assert {"kind": "integrity", "message": expected} in line["warnings"], line
    made = _cli(
        project, env, "report", "--client", "acme", "--period", PERIOD, "--out", project / "r", "--no-pdf"
    )
    assert made.returncode == 0, made.stderr
    report = json.loads((project / "r" / f"acme-{PERIOD}.json").read_text())["sites"][0]
    [finding] = report["integrity"]
    assert finding["kind"] == "wordpress-checksums" and len(finding["items"]) == 2
    assert any("wordpress.org" in action for action in report["next_actions"])
    html = (project / "r" / f"acme-{PERIOD}.html").read_text()
    assert "wp-includes/version.php (changed)" in html and "differ from wordpress.org" in html


ADVISORY = {
    "advisoryId": "ACME-2026-1",
    "packageName": "acme/lib",
    "affectedVersions": ">=1.0.0,<1.0.1",
    "title": "Remote code execution in acme/lib",
    "cve": "CVE-2026-0001",
    "link": "https://example.invalid/ACME-2026-1",
    "reportedAt": "2026-11-01 00:00:00",
    "sources": [{"name": "acme", "remoteId": "ACME-2026-1"}],
    "severity": "critical",
}


def _composer_project(home: Path) -> Path:
    """A locked project using acme/lib 1.0.0 and a composer repository (file://, no network) that
    publishes a security advisory for it, as packagist.org does, for the real ``composer audit``."""
    repo, project = home / "advisories-repo", home / "shop"
    (repo / "p2/acme").mkdir(parents=True)
    (repo / "packages.json").write_text(
        json.dumps(
            {
                "packages": [],
                "metadata-url": f"file://{repo}/p2/%package%.json",
                "security-advisories": {"metadata": True},
            }
        )
    )
    package = {"name": "acme/lib", "version": "1.0.0", "version_normalized": "1.0.0.0", "type": "library"}
    (repo / "p2/acme/lib.json").write_text(
        json.dumps({"packages": {"acme/lib": [package]}, "security-advisories": [ADVISORY]})
    )
    project.mkdir()
    (project / "composer.json").write_text(
        json.dumps(
            {
                "name": "acme/shop",
                "require": {"acme/lib": "1.0.0"},
                "repositories": [{"type": "composer", "url": f"file://{repo}"}, {"packagist.org": False}],
            }
        )
    )
    lock = {
        "content-hash": "fixture",
        "packages": [{"name": "acme/lib", "version": "1.0.0", "type": "library"}],
        "packages-dev": [],
        "aliases": [],
        "minimum-stability": "stable",
        "stability-flags": [],
        "prefer-stable": False,
        "prefer-lowest": False,
        "platform": [],
        "platform-dev": [],
        "plugin-api-version": "2.3.0",
    }
    (project / "composer.lock").write_text(json.dumps(lock))
    owner = home.stat()
    subprocess.run(["chown", "-R", f"{owner.st_uid}:{owner.st_gid}", str(repo), str(project)], check=True)
    return project


def test_composer_audit_advisories_show_in_the_integrity_view_once(
    tmp_path: Path, ssh_hosts, known_hosts_file, clean_homes, receiver
):
    require_php_and_composer()
    home = Path(ssh_hosts["prod1"].home)
    project = _composer_project(home)
    data = inventory_data(ssh_hosts, known_hosts_file)
    data["all"]["vars"]["notify"] = [f"json://{receiver}/notify"]
    (tmp_path / "inventories").mkdir()
    (tmp_path / "inventories/production.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    composer_env = {"COMPOSER_HOME": str(home / ".composer-mk"), "COMPOSER_DISABLE_NETWORK": "1"}
    book = {
        "name": "nightly-audit",
        "steps": [
            {
                "name": "composer audit",
                "audit": {"working_dir": str(project), "fail_on": "never", "env": composer_env},
            }
        ],
    }
    (tmp_path / "audit.yml").write_text(yaml.safe_dump(book, sort_keys=False))
    Recorder.received = []
    warned = nightly(tmp_path).stderr
    expected = (
        # composer 2.5 prints no severity: an advisory without one counts as high (the audit action)
        "composer audit reports security advisories: acme/lib: Remote code execution in acme/lib [high]"
    )
    assert f"warning: trend: prod1 (production): {expected}" in warned, warned
    notes = [json.loads(body) for path, body in Recorder.received if path == "/notify"]
    assert notes and "Remote code execution" in notes[0]["message"]
    assert "warning: notification" not in warned  # it went out: nothing to say about it
    assert "composer audit" not in nightly(tmp_path).stderr  # the same advisory: said once
    env = {"MAINTKIT_JOURNAL_DIR": str(tmp_path / "journal")}
    line = json.loads(_cli(tmp_path, env, "status", "--output", "json").stdout.splitlines()[0])
    assert {"kind": "integrity", "message": expected} in line["warnings"], line
