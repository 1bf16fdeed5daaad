"""A real PostgreSQL server for tests: Debian's ``initdb``/``pg_ctl`` on a throw-away cluster and a free port.

Why a real server: the history must work on the PostgreSQL a team shares (psycopg 3, Alembic's
migrations, the foreign keys SQLite does not check), which only the real server proves.

The cluster runs as a dedicated non-root user (PostgreSQL refuses root): ``{prefix}pg``, created like
the test hosts' users (:func:`tests.sshd.ensure_user`). It listens on 127.0.0.1 only, its socket in
its own folder; password authentication (scram) for the superuser, whose password holds characters
a URL must escape. Readiness is ``pg_ctl start -w``; it is stopped by ``pg_ctl stop`` (the server's
own PID file, this cluster only) and the folder removed.

Usage in a test module::

    from tests.postgres import postgres_fixture
    postgres = postgres_fixture()          # session-scoped; postgres.new_database() per test
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.mariadb import free_port, skip_or_fail
from tests.sshd import ensure_user

#: the superuser's password: URL-hostile on purpose (it must be escaped, and never printed)
PASSWORD = "pg-s3cret:@/ü"


def pg_bin(tool: str) -> str | None:
    """The newest installed PostgreSQL's ``tool`` (Debian keeps them in /usr/lib/postgresql/N/bin)."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"), key=lambda p: int(p.split("/")[4]))
    return found[-1] if found else shutil.which(tool)


class PostgresServer:
    """One cluster on 127.0.0.1:``port``, run by ``user``, in a private temp folder."""

    def __init__(self, user: str) -> None:
        self.user = user
        self.workdir = Path(tempfile.mkdtemp(prefix="mk-postgres-"))
        self.datadir = self.workdir / "data"
        self.port = 0
        entry = pwd.getpwnam(user)
        os.chown(self.workdir, entry.pw_uid, entry.pw_gid)
        self.workdir.chmod(0o700)

    def _as_user(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["runuser", "-u", self.user, "--", *argv], capture_output=True, text=True, check=False, cwd="/"
        )

    def start(self) -> PostgresServer:
        pwfile = self.workdir / "pw"
        pwfile.write_text(PASSWORD + "\n")
        entry = pwd.getpwnam(self.user)
        os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        init = self._as_user(
            str(pg_bin("initdb")),
            "-D",
            str(self.datadir),
            "-U",
            "postgres",
            "--auth=scram-sha-256",
            f"--pwfile={pwfile}",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        )
        pwfile.unlink()
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{init.stdout}\n{init.stderr}")
        for _attempt in range(5):
            self.port = free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.workdir} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off"
            )
            started = self._as_user(
                str(pg_bin("pg_ctl")),
                "-D",
                str(self.datadir),
                "-o",
                options,
                "-l",
                str(self.workdir / "server.log"),
                "-w",
                "-t",
                "30",
                "start",
            )
            if started.returncode == 0:
                return self
        raise RuntimeError(f"pg_ctl start failed:\n{started.stdout}\n{started.stderr}")

    def stop(self) -> None:
        if self.datadir.is_dir():
            self._as_user(str(pg_bin("pg_ctl")), "-D", str(self.datadir), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.workdir, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        """A ``postgresql://`` URL of ``database`` with the (escaped) superuser password."""
        return f"postgresql://postgres:{quote(PASSWORD, safe='')}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """Create an empty database for one test; return its URL."""
        import psycopg

        name = f"t_{secrets.token_hex(4)}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def require_postgres() -> None:
    for tool in ("initdb", "pg_ctl"):
        if pg_bin(tool) is None:
            skip_or_fail(f"{tool} is missing: install postgresql to run the PostgreSQL history tests")
    if os.geteuid() != 0:
        skip_or_fail("needs root to create the PostgreSQL test user")


def postgres_fixture() -> object:
    """A session-scoped fixture: a running :class:`PostgresServer`."""

    @pytest.fixture(scope="session")
    def postgres() -> Iterator[PostgresServer]:
        require_postgres()
        prefix = os.environ.get("MAINTKIT_TEST_USER_PREFIX", "mk")
        ensure_user(f"{prefix}pg")
        server = PostgresServer(f"{prefix}pg").start()
        try:
            yield server
        finally:
            server.stop()

    return postgres
