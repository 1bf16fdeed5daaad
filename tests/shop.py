"""The fixture shop (``tests/fixtures/shop``) installed on the sshd test hosts, served by ``php -S``.

Why so real: what the update playbooks must prove (composer resolving and installing real packages,
a schema that really moves, a page that really breaks, an atomic switch a running web server sees
on its next request) only exists with the real tools. Composer works offline: the extensions come
from a path repository inside the site root, packagist is disabled, COMPOSER_HOME is private.

Layout made on each host (the one DESIGN.md describes)::

    ~/shop/current -> releases/20200101T000000Z
    ~/shop/releases/20200101T000000Z/     composer project, vendor/ installed at 1.0.0
    ~/shop/shared/app/etc/env.php          the host's own database
    ~/shop/packages/acme/*/1.0.0|1.1.0|1.2.0
    ~/shop/router.php                      php -S entry point (resolves current per request)

The composer install runs once per session in a template folder (as root), and the template is
copied to each host (chowned), so staging and production start from the same composer.lock.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.mariadb import MariaDBServer, sql_name, sql_string
from tests.sshd import SSHHost, free_port, skip_or_fail, terminate

FIXTURE = Path(__file__).parent / "fixtures" / "shop"
FIRST_RELEASE = "20200101T000000Z"
SHARED = ["app/etc/env.php", "pub/media", "var/log", "var/session", "var/report", "var/export"]
DB_USER = "mkupd_shop"
DB_PASSWORD = "shop pa$$ 'x' \"y\""
FAIL_MARKER = "shop-fail-setup-upgrade"
WAITING_MARKER = "shop-setup-upgrade-waiting"


def require_php_and_composer() -> None:
    for tool in ("php", "composer"):
        if shutil.which(tool) is None:
            skip_or_fail(f"{tool} is missing: install php-cli, php-mysql and composer")
    modules = subprocess.run(["php", "-m"], capture_output=True, text=True, check=False).stdout
    if "pdo_mysql" not in modules:
        skip_or_fail("PHP's pdo_mysql is missing: install php-mysql")


def composer_env(home: Path) -> dict[str, str]:
    """Offline composer: a private COMPOSER_HOME, no network at all."""
    return {"COMPOSER_HOME": str(home / ".composer-mk"), "COMPOSER_DISABLE_NETWORK": "1"}


def build_template(folder: Path) -> Path:
    """``folder/shop``: the site layout with the first release installed at 1.0.0 (composer, once)."""
    require_php_and_composer()
    root = folder / "shop"
    release = root / "releases" / FIRST_RELEASE
    shutil.copytree(FIXTURE / "packages", root / "packages")
    shutil.copytree(FIXTURE / "project", release)
    shutil.copy(FIXTURE / "router.php", root / "router.php")
    env = {**os.environ, **composer_env(folder)}
    # install 1.0.0 of both extensions, keeping composer.json's "^1.0" (as a shop that updates has it)
    manifest = (release / "composer.json").read_text()
    (release / "composer.json").write_text(manifest.replace('"^1.0"', '"1.0.*"'))
    _composer(release, env, "update")
    (release / "composer.json").write_text(manifest)
    _composer(release, env, "update", "--lock")
    for path in SHARED:
        shared = root / "shared" / path
        if path.endswith(".php"):
            shared.parent.mkdir(parents=True, exist_ok=True)
        else:
            shared.mkdir(parents=True, exist_ok=True)
        target = release / path
        if target.exists() or target.is_symlink():
            shutil.rmtree(target) if target.is_dir() and not target.is_symlink() else target.unlink()
        target.parent.mkdir(parents=True, exist_ok=True)
    (root / "current").symlink_to(f"releases/{FIRST_RELEASE}")
    return root


def _composer(cwd: Path, env: dict[str, str], *args: str) -> None:
    argv = ["composer", *args, "--no-interaction", "--no-progress"]
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed in the fixture template:\n{result.stdout}\n{result.stderr}"
        )


def env_php(database: str, port: int) -> str:
    def php(value: str) -> str:
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

    return (
        "<?php\nreturn ['db' => ['connection' => ['default' => [\n"
        f"    'host' => '127.0.0.1', 'port' => '{port}', 'dbname' => {php(database)},\n"
        f"    'username' => {php(DB_USER)}, 'password' => {php(DB_PASSWORD)},\n"
        "]]]];\n"
    )


@dataclass
class Shop:
    """The shop on one host: where it is, its database, its URL."""

    host: SSHHost
    root: Path
    database: str
    url: str
    server: subprocess.Popen[bytes] | None = None

    @property
    def current(self) -> str:
        return os.readlink(self.root / "current").rsplit("/", 1)[-1]

    def release(self, release_id: str | None = None) -> Path:
        return self.root / "releases" / (release_id or self.current)

    def get(self) -> tuple[int, str]:
        return get_page(self.url)

    def magento(self, *args: str) -> subprocess.CompletedProcess[str]:
        return as_user(self.host, ["php", "bin/magento", *args], cwd=self.root / "current")

    def stop(self) -> None:
        proc, self.server = self.server, None
        terminate(proc)


def get_page(url: str) -> tuple[int, str]:
    """The status and body of ``url`` (an HTTP error status is an answer, not an exception)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")


def as_user(host: SSHHost, argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a command as the host's Unix user (as the site's own tools would run)."""
    entry = pwd.getpwnam(host.user)
    env = {"HOME": str(host.home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    return subprocess.run(
        argv,
        cwd=cwd,
        env=env,
        user=entry.pw_uid,
        group=entry.pw_gid,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@contextmanager
def installed_shop(template: Path, host: SSHHost, mariadb: MariaDBServer, database: str) -> Iterator[Shop]:
    """Install the template on ``host`` with its own database, serve it; remove the database after."""
    root = host.home / "shop"
    shutil.copytree(template, root, symlinks=True)
    (root / "shared" / "app" / "etc" / "env.php").write_text(env_php(database, mariadb.port))
    release = root / "releases" / FIRST_RELEASE
    for path in SHARED:
        (release / path).symlink_to(root / "shared" / path)
    subprocess.run(["chown", "-R", f"{host.user}:{host.user}", str(root)], check=True)
    mariadb.create_user(DB_USER, DB_PASSWORD)
    mariadb.sql(
        f"CREATE DATABASE {sql_name(database)};"
        f"GRANT ALL PRIVILEGES ON {sql_name(database)}.* TO {sql_string(DB_USER)}@'%';"
        f"GRANT ALL PRIVILEGES ON {sql_name(database + '_mkrestore')}.* TO {sql_string(DB_USER)}@'%';"
    )
    shop = Shop(host, root, database, "")
    try:
        for command in (["setup:upgrade"], ["setup:di:compile"]):
            result = as_user(host, ["php", "bin/magento", *command], cwd=release)
            assert result.returncode == 0, result.stdout + result.stderr
        shop.url, shop.server = serve(host, root)
        yield shop
    finally:
        shop.stop()
        mariadb.drop_database(database)
        mariadb.drop_database(database + "_mkrestore")


def serve(host: SSHHost, root: Path) -> tuple[str, subprocess.Popen[bytes]]:
    """``php -S`` on a free loopback port as the host's user, with no realpath cache (so the switch
    of ``current`` is seen on the next request, as nginx's ``$realpath_root`` gives)."""
    entry = pwd.getpwnam(host.user)
    port = free_port()
    log = (root / "php-server.log").open("wb")
    proc = subprocess.Popen(
        [
            "php",
            "-d",
            "realpath_cache_size=0",
            "-d",
            "opcache.enable=0",
            "-d",
            "opcache.enable_cli=0",
            "-d",
            "display_errors=1",
            "-S",
            f"127.0.0.1:{port}",
            "router.php",
        ],
        cwd=root,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        user=entry.pw_uid,
        group=entry.pw_gid,
        env={"HOME": str(host.home), "PATH": os.environ.get("PATH", "")},
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return url, proc
        except urllib.error.HTTPError:
            return url, proc  # it answers
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.02)  # polling interval
    proc.kill()
    raise RuntimeError(f"php -S did not start: {(root / 'php-server.log').read_text(errors='replace')}")


def dump(mariadb: MariaDBServer, database: str) -> bytes:
    """A comparable dump: schema and data, no dump date (what "identical" means in the tests)."""
    result = subprocess.run(
        [
            "mariadb-dump",
            f"--socket={mariadb.socket}",
            "-uroot",
            "--skip-dump-date",
            "--routines",
            "--triggers",
            "--events",
            "--hex-blob",
            "--skip-comments",
            database,
        ],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"mariadb-dump failed: {result.stderr.decode(errors='replace')}")
    return result.stdout


def php_string(value: str) -> str:
    """``value`` as a single-quoted PHP string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def file_tree(root: Path, skip: Callable[[str], bool] = lambda rel: False) -> dict[str, str]:
    """Every file, link and folder under ``root`` with its SHA-256 and mode, by relative path
    (what "files identical" means); ``skip`` leaves paths out."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if skip(rel):
            continue
        if path.is_symlink():
            out[rel] = "link:" + os.readlink(path)
        elif path.is_file():
            out[rel] = f"{path.stat().st_mode:o}:" + hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[rel] = f"dir:{path.stat().st_mode:o}"
    return out
