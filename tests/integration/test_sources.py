"""Snapshot sources against a real MariaDB, real PHP, real zstd/gzip and GNU tar.

The commands run through :class:`~maintkit.transport.local.LocalTransport` (a real ``/bin/sh``
subprocess on this machine, exactly as a server's login shell would run them; SSH is proven in
``test_transport.py``). What is asserted is what a restore depends on: the dump loads into a fresh
database with the same rows and ``CHECKSUM TABLE`` values, the schema objects come along, files
come back byte for byte, and failures are loud.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from maintkit.model.problems import CommandTimeout
from maintkit.sources import (
    DatabaseSource,
    DumpTrailerWatcher,
    FilesSource,
    StreamDecompressor,
    defaults_file,
    detect_compression,
    dump_command,
    fingerprint_command,
    parse_fingerprint,
    parse_markers,
    parse_probe,
    parse_tables,
    probe_command,
    tables_command,
    tar_command,
)
from maintkit.sources.appconfig import db_config_php
from maintkit.sources.identity import (
    database_identity_command,
    identity_and_tables_command,
    parse_database_identity,
    parse_identity_and_tables,
)
from maintkit.transport.base import CommandResult
from maintkit.transport.local import LocalTransport
from tests.mariadb import (
    SHOP_DB,
    SHOP_EVENTS,
    SHOP_PASSWORD,
    SHOP_ROUTINES,
    SHOP_TABLES,
    SHOP_TRIGGERS,
    SHOP_USER,
    SHOP_VIEWS,
    MariaDBServer,
    mariadb_fixture,
    scratch_database,
    table_lock,
)

pytestmark = pytest.mark.integration

mariadb = mariadb_fixture()

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "appconfigs"
#: fragments of the password that would betray it even if cut or re-quoted
PASSWORD_NEEDLES = (SHOP_PASSWORD, SHOP_PASSWORD.strip(), "pa$$ w'rd", "w'rd;", "`id`#")


# -- helpers ----------------------------------------------------------------------------------------


class FileSink:
    """Write a stream to a file (what a local storage target does)."""

    def __init__(self, path: Path) -> None:
        self.fh = path.open("wb")

    def write(self, data: bytes) -> int:
        return self.fh.write(data)

    def close(self) -> None:
        self.fh.close()


class Tee:
    """Fan a stream out to several sinks (what the snapshot action does with storage targets)."""

    def __init__(self, *sinks: Any, on_write: Callable[[bytes], None] | None = None) -> None:
        self.sinks = sinks
        self.on_write = on_write

    def write(self, data: bytes) -> int:
        if self.on_write is not None:
            self.on_write(data)
        for sink in self.sinks:
            sink.write(data)
        return len(data)


def processes() -> str:
    """Every process's full command line (``ww``: ps would cut lines at 80 columns in a pipe)."""
    return subprocess.run(["ps", "ww", "-eo", "args="], capture_output=True, text=True, check=False).stdout


def explicit(server: MariaDBServer, **overrides: Any) -> DatabaseSource:
    values: dict[str, Any] = {
        "name": SHOP_DB,
        "user": SHOP_USER,
        "password": SHOP_PASSWORD,
        "host": "127.0.0.1",
        "port": server.port,
    }
    values.update(overrides)
    return DatabaseSource(**values)


def dump(
    transport: LocalTransport,
    src: DatabaseSource,
    tmp_path: Path,
    *,
    compression: Any = "auto",
    env: dict[str, str] | None = None,
    on_write: Callable[[bytes], None] | None = None,
    timeout: float | None = 60,
    secret: bool = False,
) -> tuple[CommandResult, DumpTrailerWatcher, Path, Path]:
    """Run a dump into a file (compressed) and through a watcher that writes the plain SQL."""
    command, stdin = dump_command(src, compression)
    compressed, plain = tmp_path / "db.sql.compressed", tmp_path / "db.sql"
    plain_sink, stored = FileSink(plain), FileSink(compressed)
    watcher = DumpTrailerWatcher(plain=plain_sink)
    try:
        result = transport.run(
            command,
            stdin=stdin,
            stdout=Tee(stored, watcher, on_write=on_write),
            env=env,
            timeout=timeout,
            secret=secret,
        )
    finally:
        stored.close()
        watcher.close()
        plain_sink.close()
    return result, watcher, compressed, plain


def path_without(tmp_path: Path, *missing: str) -> str:
    """A PATH holding every program of this machine's PATH except those whose name starts with one
    of ``missing`` (how a server without zstd looks)."""
    bin_dir = tmp_path / "restricted-bin"
    bin_dir.mkdir(exist_ok=True)
    dirs = [*os.environ.get("PATH", "").split(":"), "/usr/sbin", "/sbin", "/usr/bin", "/bin"]
    for directory in dirs:
        if not directory or not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            if entry.name.startswith(missing) or (bin_dir / entry.name).exists():
                continue
            if os.access(entry.path, os.X_OK) and not entry.is_dir():
                (bin_dir / entry.name).symlink_to(entry.path)
    return str(bin_dir)


def fake_program(tmp_path: Path, name: str, script: str) -> str:
    """A folder to put first on PATH with an executable ``name`` running the bash ``script``."""
    bin_dir = tmp_path / f"fake-{name}"
    bin_dir.mkdir()
    program = bin_dir / name
    program.write_text("#!/bin/bash\n" + script)
    program.chmod(0o755)
    return f"{bin_dir}:{os.environ['PATH']}"


def assert_same_database(server: MariaDBServer, source: str, copy: str) -> None:
    assert server.table_row_counts(copy) == server.table_row_counts(source)
    assert server.checksum_tables(copy) == server.checksum_tables(source)
    assert server.schema_objects(copy) == server.schema_objects(source)


@pytest.fixture(scope="module")
def transport() -> Iterator[LocalTransport]:
    local = LocalTransport("db-host")
    yield local
    local.close()


# -- database dumps ---------------------------------------------------------------------------------


def test_dump_restores_to_identical_tables_and_schema_objects(
    mariadb: MariaDBServer, transport: LocalTransport, tmp_path: Path
) -> None:
    src = explicit(mariadb)
    started = time.monotonic()
    result, watcher, compressed, plain = dump(transport, src, tmp_path)
    elapsed = time.monotonic() - started

    assert result.rc == 0, result.stderr
    assert watcher.ok, watcher.reason
    markers = parse_markers(result.stderr)
    assert markers["compression"] == "zstd"
    assert markers["dump_tool"] == "mariadb-dump"
    assert markers["database"] == SHOP_DB
    assert "MariaDB" in markers["dump_version"]
    assert watcher.compression == "zstd"
    assert watcher.compressed_bytes == compressed.stat().st_size == result.stdout_bytes
    assert sorted(watcher.tables) == sorted(SHOP_TABLES)
    # an independent decompressor (the zstd program) agrees byte for byte with the watcher
    unzstd = subprocess.run(["zstd", "-dc", str(compressed)], capture_output=True, check=True).stdout
    assert hashlib.sha256(unzstd).digest() == hashlib.sha256(plain.read_bytes()).digest()
    assert watcher.plain_bytes == len(unzstd)

    with scratch_database(mariadb, "restored_zstd", owner=SHOP_USER) as copy:
        mariadb.load(copy, plain)
        assert_same_database(mariadb, SHOP_DB, copy)
        objects = mariadb.schema_objects(copy)
        assert objects["views"] == set(SHOP_VIEWS)
        assert objects["triggers"] == set(SHOP_TRIGGERS)
        assert objects["routines"] == set(SHOP_ROUTINES)
        assert objects["events"] == set(SHOP_EVENTS)
        # the binary rows survived every byte value, and the routines work
        rows = mariadb.sql(
            "SELECT HEX(content) FROM media_storage_file_storage WHERE filename = 'all-256-bytes.bin';", copy
        )
        assert rows == [(bytes(range(256)).hex().upper() * 4,)]
        assert mariadb.sql("SELECT price_with_tax(100, 0.2);", copy) == [("120.000000",)]
    mib = 2**20
    print(
        f"\ndump: {watcher.plain_bytes / mib:.1f} MiB SQL -> {watcher.compressed_bytes / mib:.1f} MiB zstd "
        f"in {elapsed:.2f} s ({watcher.plain_bytes / mib / elapsed:.0f} MiB/s of SQL)"
    )


def test_the_password_is_in_no_process_list_no_command_and_no_file(
    mariadb: MariaDBServer, transport: LocalTransport, tmp_path: Path
) -> None:
    src = explicit(mariadb)
    command, _ = dump_command(src)
    assert SHOP_PASSWORD not in command
    tmpdir = tmp_path / "server-tmp"
    tmpdir.mkdir()
    samples: list[str] = []
    files_during_dump: list[list[str]] = []  # the server's temp folder, while the dump runs
    dump_process = "mariadb-dump --defaults-file=/dev/fd/3"

    def watch(release: Callable[[], None]) -> None:
        # The dump waits on the locked table: sample ps (and the server's temp folder) while it
        # is alive, then let it finish.
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and sum(dump_process in s for s in samples) < 5:
                samples.append(processes())
                if dump_process in samples[-1]:
                    files_during_dump.append(os.listdir(tmpdir))
        finally:
            release()

    with table_lock(mariadb, SHOP_DB, "store") as release:
        watcher_thread = threading.Thread(target=watch, args=(release,))
        watcher_thread.start()
        try:
            result, watcher, _, _ = dump(transport, src, tmp_path, env={"TMPDIR": str(tmpdir)}, secret=True)
        finally:
            watcher_thread.join()
    assert result.rc == 0, result.stderr
    assert watcher.ok, watcher.reason
    assert sum(dump_process in s for s in samples) >= 5, "the dump was never seen running"
    for snapshot in samples:
        for needle in PASSWORD_NEEDLES:
            assert needle not in snapshot
    # the defaults file was unlinked before the dump started, and nothing is left behind
    assert files_during_dump and all(listing == [] for listing in files_during_dump)
    assert os.listdir(tmpdir) == []


def test_login_over_the_unix_socket(
    mariadb: MariaDBServer, transport: LocalTransport, tmp_path: Path
) -> None:
    src = explicit(mariadb, host="localhost", port=3306, socket=mariadb.socket)
    result, watcher, _, _ = dump(transport, src, tmp_path)
    assert result.rc == 0, result.stderr
    assert watcher.ok, watcher.reason


def test_tables_command_lists_exact_row_counts(mariadb: MariaDBServer, transport: LocalTransport) -> None:
    command, stdin = tables_command(explicit(mariadb))
    assert SHOP_PASSWORD not in command
    result = transport.run(command, stdin=stdin, timeout=30)
    assert result.rc == 0, result.stderr
    listing = parse_tables(result.stdout)
    assert listing.database == SHOP_DB
    assert listing.tables == mariadb.table_row_counts(SHOP_DB)
    assert sorted(listing.tables) == sorted(SHOP_TABLES)  # views are not tables


def test_identity_and_row_counts_in_one_session_equal_the_two_questions_asked_apart(
    mariadb: MariaDBServer, transport: LocalTransport
) -> None:
    """A snapshot asks who the server is and how many rows each table has in one client session
    (one login less per snapshot); the answers must be exactly those of the two separate commands."""
    src = explicit(mariadb)
    command, stdin = identity_and_tables_command(src)
    assert SHOP_PASSWORD not in command
    both = transport.run(command, stdin=stdin, timeout=30)
    assert both.rc == 0, both.stderr
    identity, listing = parse_identity_and_tables(both.stdout)
    command, stdin = database_identity_command(src)
    alone = transport.run(command, stdin=stdin, timeout=30)
    command, stdin = tables_command(src)
    tables = transport.run(command, stdin=stdin, timeout=30)
    assert identity == parse_database_identity(alone.stdout) and identity.name == SHOP_DB
    assert listing == parse_tables(tables.stdout)
    assert listing.tables == mariadb.table_row_counts(SHOP_DB) and listing.database == SHOP_DB
    with pytest.raises(ValueError, match="database name"):
        parse_identity_and_tables(alone.stdout)  # no listing: never taken for an empty database


def test_a_wrong_password_fails_readably_without_a_trailer(
    mariadb: MariaDBServer, transport: LocalTransport, tmp_path: Path
) -> None:
    result, watcher, _, _ = dump(transport, explicit(mariadb, password="not-the-password"), tmp_path)
    assert result.rc != 0
    assert f"Access denied for user '{SHOP_USER}'" in result.stderr
    assert not watcher.ok
    assert watcher.reason is not None and "trailer" in watcher.reason


def test_a_dump_killed_mid_stream_is_detected(
    mariadb: MariaDBServer, transport: LocalTransport, tmp_path: Path
) -> None:
    # the dump streams every table before `store`, then waits on its lock until the timeout kills it
    with table_lock(mariadb, SHOP_DB, "store"), pytest.raises(CommandTimeout):
        dump(transport, explicit(mariadb), tmp_path, timeout=1.0)
    assert "mariadb-dump --defaults-file=/dev/fd/3" not in processes()
    # what reached storage does not pass the check (dump() closed its own watcher on the way out)
    partial = (tmp_path / "db.sql.compressed").read_bytes()
    assert partial, "the dump was killed before it streamed anything"
    watcher = DumpTrailerWatcher()
    watcher.write(partial)
    watcher.close()
    assert not watcher.ok
    assert watcher.reason is not None and ("truncated" in watcher.reason or "trailer" in watcher.reason)
    assert "store" not in watcher.tables


def test_a_dump_that_exits_0_without_its_trailer_is_caught(
    mariadb: MariaDBServer, transport: LocalTransport, tmp_path: Path
) -> None:
    # a dump program that stops early but reports success: only the trailer check can tell
    path = fake_program(
        tmp_path,
        "mariadb-dump",
        "printf -- '-- MariaDB dump\\nCREATE TABLE `t` (a int);\\nINSERT INTO `t`'\n",
    )
    result, watcher, _, _ = dump(transport, explicit(mariadb), tmp_path, env={"PATH": path})
    assert result.rc == 0
    assert not watcher.ok
    assert "trailer" in (watcher.reason or "")
    assert watcher.tables == ["t"]


def test_gzip_is_used_where_zstd_is_missing(
    mariadb: MariaDBServer, transport: LocalTransport, tmp_path: Path
) -> None:
    env = {"PATH": path_without(tmp_path, "zstd", "unzstd")}
    result, watcher, compressed, plain = dump(transport, explicit(mariadb), tmp_path, env=env)
    assert result.rc == 0, result.stderr
    assert parse_markers(result.stderr)["compression"] == "gzip"
    assert detect_compression(compressed.read_bytes()[:4]) == "gzip"
    assert watcher.ok and watcher.compression == "gzip", watcher.reason
    with scratch_database(mariadb, "restored_gzip", owner=SHOP_USER) as copy:
        mariadb.load(copy, plain)
        assert_same_database(mariadb, SHOP_DB, copy)


def test_forcing_a_missing_compressor_fails_before_dumping(
    mariadb: MariaDBServer, transport: LocalTransport, tmp_path: Path
) -> None:
    env = {"PATH": path_without(tmp_path, "zstd", "unzstd")}
    result, watcher, _, _ = dump(transport, explicit(mariadb), tmp_path, compression="zstd", env=env)
    assert result.rc == 127
    assert "zstd is not installed" in result.stderr
    assert result.stdout_bytes == 0 and not watcher.ok


def test_option_files_written_by_python_and_php_read_back_exactly(
    mariadb: MariaDBServer, tmp_path: Path
) -> None:
    """The real client's option parser (my_print_defaults) reads back every hostile value."""
    tool = shutil.which("my_print_defaults")
    if tool is None:
        pytest.skip("my_print_defaults is missing")  # ships with mariadb-server; CI has it
    hostile = [
        SHOP_PASSWORD,
        " lead and trail ",
        "a#b;c",
        "tab\there",
        "new\nline",
        "back\\slash\\",
        '"',
        "'",
        "",
    ]
    for value in hostile:
        src = DatabaseSource(name="d", user="u", password=value, host="h", port=3307, socket="/s o#ck")
        cnf = tmp_path / "py.cnf"
        cnf.write_bytes(defaults_file(src))
        out = subprocess.run([tool, f"--defaults-file={cnf}", "client"], capture_output=True, text=True)
        assert out.stdout == f"--user=u\n--password={value}\n--host=h\n--port=3307\n--socket=/s o#ck\n"
        # the same values from a WordPress config, through PHP's writer
        site = tmp_path / "wp"
        site.mkdir(exist_ok=True)
        (site / "wp-config.php").write_text(
            "<?php\n"
            + "".join(
                f"define('{k}', {php_literal(v)});\n"
                for k, v in {
                    "DB_NAME": "d",
                    "DB_USER": "u",
                    "DB_PASSWORD": value,
                    "DB_HOST": "h:3307",
                }.items()
            )
        )
        php_cnf = tmp_path / "php.cnf"
        php = subprocess.run(
            ["php", "--", "wordpress", str(site), str(php_cnf)],
            input=db_config_php(),
            capture_output=True,
            text=True,
        )
        assert php.returncode == 0, php.stderr
        assert php.stdout == "d"
        out = subprocess.run([tool, f"--defaults-file={php_cnf}", "client"], capture_output=True, text=True)
        assert out.stdout == f"--user=u\n--password={value}\n--host=h\n--port=3307\n"


# -- credentials from the application's own config ------------------------------------------------------


def php_literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def install_app(app: str, dest: Path, values: dict[str, str]) -> Path:
    """Copy an application's fixture tree to ``dest`` with the placeholders filled in."""
    shutil.copytree(FIXTURES / app, dest)
    for path in dest.rglob("*.php"):
        text = path.read_text()
        for key, value in values.items():
            text = text.replace(f"'@{key}@'", php_literal(value))
        path.write_text(text)
    return dest


APP_CASES = {
    # Magento: host:port; WordPress: localhost:/socket; PrestaShop: host + separate port
    "magento": lambda s: {"DB_HOST": f"127.0.0.1:{s.port}"},
    "wordpress": lambda s: {"DB_HOST": f"localhost:{s.socket}"},
    "prestashop": lambda s: {"DB_HOST": "127.0.0.1", "DB_PORT": str(s.port)},
}


@pytest.mark.parametrize("app", sorted(APP_CASES))
def test_credentials_read_from_the_application_config(
    app: str, mariadb: MariaDBServer, transport: LocalTransport, tmp_path: Path
) -> None:
    values = {
        "DB_NAME": SHOP_DB,
        "DB_USER": SHOP_USER,
        "DB_PASSWORD": SHOP_PASSWORD,
        **APP_CASES[app](mariadb),
    }
    root = install_app(app, tmp_path / "www" / "shop 'root' $HOME", values)
    src = DatabaseSource.model_validate({"from": app, "root": str(root)})

    command, stdin = dump_command(src)
    assert stdin == b"" and SHOP_PASSWORD not in command
    result, watcher, _, _ = dump(transport, src, tmp_path)
    assert result.rc == 0, result.stderr
    assert "wp-settings.php was loaded" not in result.stderr
    assert watcher.ok, watcher.reason
    assert parse_markers(result.stderr)["database"] == SHOP_DB
    assert sorted(watcher.tables) == sorted(SHOP_TABLES)

    command, stdin = tables_command(src)
    listing = transport.run(command, stdin=stdin, timeout=30)
    assert listing.rc == 0, listing.stderr
    assert parse_tables(listing.stdout).tables == mariadb.table_row_counts(SHOP_DB)

    printed = transport.run(fingerprint_command(app, str(root)), timeout=30)
    assert printed.rc == 0, printed.stderr
    fingerprint = parse_fingerprint(printed.stdout)
    assert fingerprint["cms"] == app
    assert fingerprint["version"] == {"magento": "2.4.7-p3", "wordpress": "6.5.2", "prestashop": "8.1.5"}[app]
    if app == "magento":
        lock = (root / "composer.lock").read_bytes()
        assert fingerprint["composer_lock_sha256"] == hashlib.sha256(lock).hexdigest()
        assert fingerprint["package"] == "magento/product-community-edition"


def test_an_unreadable_application_config_fails_clearly(transport: LocalTransport, tmp_path: Path) -> None:
    src = DatabaseSource.model_validate({"from": "magento", "root": str(tmp_path / "no-shop")})
    command, stdin = dump_command(src)
    result = transport.run(command, stdin=stdin, timeout=30)
    assert result.rc == 3
    assert f"maintkit: cannot read {tmp_path / 'no-shop'}/app/etc/env.php" in result.stderr
    assert result.stdout_bytes == 0


def test_probe_reports_the_tools_of_the_host(transport: LocalTransport) -> None:
    result = transport.run(probe_command(), timeout=30)
    assert result.rc == 0, result.stderr
    tools = parse_probe(result.stdout)
    assert tools.dump_tool in ("mariadb-dump", "mysqldump")
    assert tools.client_tool in ("mariadb", "mysql")
    assert tools.compression == ("zstd" if shutil.which("zstd") else "gzip")
    assert tools.gnu_tar and tools.php
    assert tools.problems(database=True, files=True, app_config=True) == []
    without_php = parse_probe(transport.run(probe_command(php=False), timeout=30).stdout)
    assert without_php.php == "" and without_php.gnu_tar and without_php.dump_tool == tools.dump_tool


# -- files ------------------------------------------------------------------------------------------

HOSTILE_NAMES = [
    "name with spaces.txt",
    "quote'single\"double.txt",
    "new\nline.txt",
    "-leading-dash",
    "ünïcødé 😀.txt",
    "star*and?question[.txt",
    "$(touch pwned).txt",
]


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A Magento-shaped site folder with hostile names, binary data, a symlink and caches."""
    root = tmp_path / "site root 'x'"
    files = {
        "index.php": b"<?php require __DIR__ . '/app/bootstrap.php';\n",
        "app/etc/config.php": b"<?php return ['modules' => []];\n",
        "pub/media/catalog/product/a/b/ab.jpg": os.urandom(300_000),
        "pub/static/.htaccess": b"RewriteEngine on\n",
        "pub/static/frontend/Magento/luma/en_US/css/styles.css": b"body{}\n",
        "pub/static/deployed_version.txt": b"1700000000\n",
        "generated/.htaccess": b"Require all denied\n",
        "generated/code/Magento/Foo/Interceptor.php": b"<?php\n",
        "var/cache/mage--0/x": b"cache\n",
        "var/page_cache/y": b"fpc\n",
        "var/log/system.log": b"log line\n",
        "vendor/acme/lib/var/cache/keep.php": b"<?php // not a cache: deep var/cache must stay\n",
        "vendor/acme/lib/generated/keep.php": b"<?php\n",
        **{f"odd/{name}": name.encode() * 3 for name in HOSTILE_NAMES},
    }
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    latin1 = os.fsencode(root / "odd") + b"/caf\xe9-latin1.txt"  # not valid UTF-8
    with open(latin1, "wb") as fh:
        fh.write(b"\x00\xff" * 100)
    (root / "empty-dir").mkdir()
    (root / "link-to-index").symlink_to("index.php")
    (root / "app/etc/config.php").chmod(0o640)
    os.utime(root / "index.php", (1_600_000_000, 1_600_000_000))
    return root


def tree(root: Path) -> dict[bytes, tuple[str, int, bytes, int]]:
    """Every entry under ``root`` (bytes paths): kind, permission bits, content or link target, and
    a file's mtime."""
    out: dict[bytes, tuple[str, int, bytes, int]] = {}
    base = os.fsencode(root)
    for dirpath, dirnames, filenames in os.walk(base):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            rel = os.path.relpath(full, base)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", 0, os.readlink(full), 0)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode), b"", 0)
            else:
                with open(full, "rb") as fh:
                    out[rel] = ("file", stat.S_IMODE(st.st_mode), fh.read(), int(st.st_mtime))
    return out


def run_tar(
    transport: LocalTransport, src: FilesSource, dest: Path, *, compression: Any = "auto", env: Any = None
) -> CommandResult:
    """Run tar_command into a file, then extract it with the real tar and zstd/gzip programs."""
    archive = dest.with_suffix(".tar.compressed")
    sink = FileSink(archive)
    try:
        result = transport.run(tar_command(src, compression), stdout=sink, env=env, timeout=60)
    finally:
        sink.close()
    if result.rc == 0:
        dest.mkdir()
        kind = detect_compression(archive.read_bytes()[:4])
        flag = {"zstd": "--zstd", "gzip": "--gzip"}[kind or "zstd"]
        subprocess.run(["tar", "-C", str(dest), flag, "-xf", str(archive)], check=True, capture_output=True)
    return result


@pytest.mark.parametrize("compression", ["zstd", "gzip"])
def test_tar_extracts_byte_identical_files(
    compression: str, site: Path, transport: LocalTransport, tmp_path: Path
) -> None:
    result = run_tar(transport, FilesSource(root=str(site)), tmp_path / "out", compression=compression)
    assert result.rc == 0, result.stderr
    assert parse_markers(result.stderr)["compression"] == compression
    assert tree(tmp_path / "out") == tree(site)
    assert not (tmp_path / "out" / "pwned").exists() and not Path("pwned").exists()


def test_tar_excludes_user_patterns_and_cms_caches_but_not_lookalikes(
    site: Path, transport: LocalTransport, tmp_path: Path
) -> None:
    src = FilesSource(root=str(site), cms="magento", exclude=["*.log", "pub/media/catalog/", "odd/star*"])
    result = run_tar(transport, src, tmp_path / "out")
    assert result.rc == 0, result.stderr
    got = {os.fsdecode(p) for p in tree(tmp_path / "out")}
    for gone in [
        "var/cache",
        "var/page_cache",
        "generated/code",
        "pub/static/frontend",
        "pub/static/deployed_version.txt",
        "var/log/system.log",
        "pub/media/catalog",
        "odd/star*and?question[.txt",
    ]:
        assert gone not in got
    for kept in [
        "index.php",
        "generated/.htaccess",
        "pub/static/.htaccess",
        "pub/media",
        "var/log",
        "vendor/acme/lib/var/cache/keep.php",
        "vendor/acme/lib/generated/keep.php",
        "odd/name with spaces.txt",
    ]:
        assert kept in got


def test_tar_of_selected_paths_with_a_home_relative_root(
    site: Path, transport: LocalTransport, tmp_path: Path
) -> None:
    src = FilesSource(root=f"~/{site.name}", paths=["app", "pub/media", "odd/-leading-dash"], cms="magento")
    result = run_tar(transport, src, tmp_path / "out", env={"HOME": str(site.parent)})
    assert result.rc == 0, result.stderr
    got = {os.fsdecode(p) for p in tree(tmp_path / "out")}
    assert got == {
        "app",
        "app/etc",
        "app/etc/config.php",
        "pub",
        "pub/media",
        "pub/media/catalog",
        "pub/media/catalog/product",
        "pub/media/catalog/product/a",
        "pub/media/catalog/product/a/b",
        "pub/media/catalog/product/a/b/ab.jpg",
        "odd",
        "odd/-leading-dash",
    }


def test_tar_fails_on_a_missing_path_or_root(site: Path, transport: LocalTransport, tmp_path: Path) -> None:
    result = run_tar(
        transport, FilesSource(root=str(site), paths=["index.php", "no such dir"]), tmp_path / "a"
    )
    assert result.rc == 2
    assert "no such dir: Cannot stat" in result.stderr
    result = run_tar(transport, FilesSource(root=str(tmp_path / "nowhere")), tmp_path / "b")
    assert result.rc == 2
    assert "nowhere" in result.stderr


def test_tar_files_changed_while_reading_is_a_warning_worse_is_a_failure(
    site: Path, transport: LocalTransport, tmp_path: Path
) -> None:
    # GNU tar's exit 1 means "a file changed as we read it": simulated by a tar that says so
    real_tar = shutil.which("tar")
    changed = fake_program(
        tmp_path, "tar", f'{real_tar} "$@"; echo "tar: x: file changed as we read it" >&2; exit 1\n'
    )
    result = run_tar(transport, FilesSource(root=str(site)), tmp_path / "a", env={"PATH": changed})
    assert result.rc == 0
    assert parse_markers(result.stderr).get("warning") == "files-changed"
    assert tree(tmp_path / "a") == tree(site)

    failing = tmp_path / "failing"
    failing.mkdir()
    env = {"PATH": fake_program(failing, "tar", f'{real_tar} "$@"; exit 2\n')}
    result = run_tar(transport, FilesSource(root=str(site)), tmp_path / "b", env=env)
    assert result.rc == 2


def test_stream_decompressor_reads_what_tar_wrote(
    site: Path, transport: LocalTransport, tmp_path: Path
) -> None:
    archive = tmp_path / "files.tar.zst"
    sink = FileSink(archive)
    transport.run(tar_command(FilesSource(root=str(site)), "zstd"), stdout=sink, timeout=60)
    sink.close()
    data = archive.read_bytes()
    d = StreamDecompressor("zstd")
    plain = b"".join(d.decompress(data[i : i + 4096]) for i in range(0, len(data), 4096))
    assert d.complete
    listing = subprocess.run(["tar", "-tf", "-"], input=plain, capture_output=True, check=True).stdout
    assert re.search(rb"^\./pub/static/\.htaccess$", listing, re.MULTILINE)


def test_a_plain_site_s_fingerprint_reads_composer_lock_and_starts_no_php_without_one(
    transport: LocalTransport, tmp_path: Path
) -> None:
    """A site without a CMS: the version comes from composer.lock when there is one; without one,
    the fingerprint is the folder's and PHP is not started (a fleet of plain sites pays it nightly)."""
    root = tmp_path / "plain site"
    root.mkdir()
    bin_dir = tmp_path / "bin"  # a php first on PATH that notes each start, then runs the real one
    bin_dir.mkdir()
    starts = tmp_path / "php-starts"
    (bin_dir / "php").write_text(f'#!/bin/sh\necho started >> {starts}\nexec {shutil.which("php")} "$@"\n')
    (bin_dir / "php").chmod(0o755)
    command = f"PATH={bin_dir}:$PATH; " + fingerprint_command("none", str(root))
    assert parse_fingerprint(transport.run(command, timeout=30).stdout) == {"cms": "none"}
    assert not starts.exists()
    lock = {"packages": [{"name": "magento/magento2-base", "version": "2.4.7"}]}
    (root / "composer.lock").write_text(json.dumps(lock))
    found = parse_fingerprint(transport.run(command, timeout=30).stdout)
    assert found["version"] == "2.4.7" and found["package"] == "magento/magento2-base"
    assert found["composer_lock_sha256"] == hashlib.sha256((root / "composer.lock").read_bytes()).hexdigest()
    assert starts.read_text() == "started\n"
