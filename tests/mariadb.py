"""A real MariaDB server for tests: Debian's ``mariadbd`` on a throw-away datadir and a free port.

Why a real server: what a snapshot must prove (a dump that restores to the same rows and
checksums, routines/triggers/views/events surviving, real authentication with a hostile password,
the password absent from ``ps``) only exists with the real server and the real dump tool.

Startup takes about a second: ``mariadb-install-db`` and the server run with ``--no-defaults``
(nothing from ``/etc/mysql`` leaks in), small InnoDB files, and no fsync (``nosync``: a test
server's data is disposable). Readiness is polled (the server's handshake on the TCP port), never
slept for. The server listens on 127.0.0.1 only, with its socket in the temp folder; it is stopped
by its own PID (SIGTERM, wait) and the folder removed.

Real authentication: ``root`` (no password) over the socket administers; the shop's user
``SHOP_USER`` has the shell-hostile ``SHOP_PASSWORD`` and ``ALL`` on its database only, and creates
the shop's schema itself, so routines, views and triggers have it as their definer, as on a real
shop.

Usage in a test module::

    from tests.mariadb import mariadb_fixture
    mariadb = mariadb_fixture()            # session-scoped, seeded shop database

Without ``mariadbd`` the tests skip with the reason, except under ``CI`` where they fail.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

MARIADBD = "mariadbd"
INSTALL_DB = "mariadb-install-db"
CLIENT = "mariadb"
READY_TIMEOUT = 30.0

SHOP_DB = "shop"
SHOP_USER = "shop"
#: every character a naive quoting would trip on: $ space ' ; " ` # \ non-ASCII, trailing space
SHOP_PASSWORD = "pa$$ w'rd;\"x`id`#\\ ü $(true) "

#: the base tables :func:`seed_shop` creates (and the other schema objects)
SHOP_TABLES = (
    "catalog_product_entity",
    "customer_entity",
    "media_storage_file_storage",
    "sales_order",
    "sales_order_item",
    "store",
)
SHOP_VIEWS = ("sales_order_summary",)
SHOP_TRIGGERS = ("trg_sales_order_item_row_total",)
SHOP_ROUTINES = ("price_with_tax", "sales_order_customer_total")
SHOP_EVENTS = ("ev_purge_canceled_orders",)

#: server options shared by install-db and the server: small, fast, disposable
FAST_INNODB = (
    "--innodb-log-file-size=8M",
    "--innodb-buffer-pool-size=32M",
    "--innodb-data-file-path=ibdata1:12M:autoextend",
    "--innodb-flush-log-at-trx-commit=0",
    "--innodb-doublewrite=0",
    "--innodb-flush-method=nosync",
)


def skip_or_fail(reason: str) -> None:
    """Skip, or fail under CI (where a skipped integration test would hide a regression)."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: integration tests may not skip)", pytrace=False)
    pytest.skip(reason)


def require_mariadb() -> None:
    for tool in (MARIADBD, INSTALL_DB, CLIENT, "mariadb-dump"):
        if shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None:
            skip_or_fail(f"{tool} is missing: install mariadb-server to run the MariaDB integration tests")


def option_value(value: str) -> str:
    """Quote a value for a MySQL option file (independent of maintkit's, so each checks the other)."""
    table = {"\\": "\\\\", '"': '\\"', "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b"}
    return '"' + "".join(table.get(ch, ch) for ch in value) + '"'


def sql_string(value: str) -> str:
    """A SQL string literal (default sql_mode: backslash escapes on)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def sql_name(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def unescape_batch(value: str) -> str:
    """Undo the ``--batch`` output escaping (``\\t``, ``\\n``, ``\\0``, ``\\\\``)."""
    out, i = [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            out.append(
                {"t": "\t", "n": "\n", "0": "\0", "\\": "\\", "r": "\r"}.get(value[i + 1], value[i + 1])
            )
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Credentials:
    """How a client logs in: the values of a ``[client]`` option group."""

    user: str
    password: str | None = None
    host: str = "localhost"
    port: int | None = None
    socket: str | None = None

    def option_file(self) -> str:
        lines = ["[client]", f"user={option_value(self.user)}"]
        if self.password is not None:
            lines.append(f"password={option_value(self.password)}")
        lines.append(f"host={option_value(self.host)}")
        if self.port is not None:
            lines.append(f"port={self.port}")
        if self.socket is not None:
            lines.append(f"socket={option_value(self.socket)}")
        return "\n".join(lines) + "\n"


class MariaDBServer:
    """One ``mariadbd`` on 127.0.0.1:``port`` with its socket and datadir in a private temp folder."""

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="mk-mariadb-"))
        self.datadir = self.workdir / "data"
        self.socket = str(self.workdir / "mysqld.sock")
        self.log = self.workdir / "error.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._cnf_files: dict[Credentials, Path] = {}
        self.admin = Credentials(user="root", socket=self.socket)

    # -- lifecycle -------------------------------------------------------------------------
    def _user_args(self) -> list[str]:
        # mariadbd refuses to run as root unless told to; as another user it runs as that user
        return ["--user=root"] if os.geteuid() == 0 else []

    def _tmpdir(self) -> Path:
        """The server's temporary folder (internal temporary tables) inside its work folder."""
        folder = self.workdir / "tmp"
        folder.mkdir(mode=0o700, exist_ok=True)
        return folder

    def start(self) -> MariaDBServer:
        install = subprocess.run(
            [
                INSTALL_DB,
                "--no-defaults",
                f"--datadir={self.datadir}",
                *self._user_args(),
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
                *FAST_INNODB,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if install.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed:\n{install.stdout}\n{install.stderr}")
        last_log = ""
        for _attempt in range(5):
            self.port = free_port()
            self.proc = subprocess.Popen(
                [
                    shutil.which(MARIADBD, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") or MARIADBD,
                    "--no-defaults",
                    f"--datadir={self.datadir}",
                    *self._user_args(),
                    f"--port={self.port}",
                    "--bind-address=127.0.0.1",
                    f"--socket={self.socket}",
                    f"--pid-file={self.workdir / 'mariadbd.pid'}",
                    f"--log-error={self.log}",
                    f"--tmpdir={self._tmpdir()}",  # its own: not /tmp, which other sessions sweep
                    "--skip-name-resolve",
                    "--skip-log-bin",
                    "--character-set-server=utf8mb4",
                    "--collation-server=utf8mb4_unicode_ci",
                    "--max-connections=100",
                    *FAST_INNODB,
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if self._wait_ready():
                return self
            last_log = self.log.read_text(errors="replace") if self.log.exists() else ""
            self._terminate()
            if "Address already in use" not in last_log and "Can't start server" not in last_log:
                break
        raise RuntimeError(f"mariadbd did not start; its log:\n{last_log[-4000:]}")

    def _wait_ready(self) -> bool:
        """Poll until the server sends its handshake on the TCP port (it is then accepting logins)."""
        assert self.proc is not None
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
                    if sock.recv(4):
                        return True
            except OSError:
                pass
            time.sleep(0.02)  # a poll interval, not a wait for a guess
        return False

    def _terminate(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def stop(self) -> None:
        """Stop the server (by its PID) and remove its folder."""
        self._terminate()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> MariaDBServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- clients ---------------------------------------------------------------------------
    def tcp(self, user: str = SHOP_USER, password: str | None = SHOP_PASSWORD) -> Credentials:
        """Credentials for ``user`` over TCP on 127.0.0.1."""
        return Credentials(user=user, password=password, host="127.0.0.1", port=self.port)

    def defaults_file(self, creds: Credentials | None = None) -> Path:
        """A 0600 option file for ``creds`` (default: the admin), for ``--defaults-file``."""
        creds = creds or self.admin
        path = self._cnf_files.get(creds)
        if path is None:
            path = self.workdir / f"client-{len(self._cnf_files)}.cnf"
            path.write_text(creds.option_file())
            path.chmod(0o600)
            self._cnf_files[creds] = path
        return path

    def client(
        self, database: str | None = None, *, creds: Credentials | None = None, extra: tuple[str, ...] = ()
    ) -> list[str]:
        """argv of the ``mariadb`` client (batch mode, utf8mb4) logged in as ``creds``."""
        return [
            CLIENT,
            f"--defaults-file={self.defaults_file(creds)}",
            "--batch",
            "--skip-column-names",
            "--default-character-set=utf8mb4",
            *extra,
            *([database] if database else []),
        ]

    def sql(
        self, statements: str, database: str | None = None, *, creds: Credentials | None = None
    ) -> list[tuple[str, ...]]:
        """Run SQL statements (``DELIMITER`` allowed) and return the rows of their output."""
        result = subprocess.run(
            self.client(database, creds=creds),
            input=statements.encode("utf-8"),
            capture_output=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"SQL failed (exit {result.returncode}): {result.stderr.decode('utf-8', 'replace').strip()}"
            )
        text = result.stdout.decode("utf-8")
        return [tuple(unescape_batch(v) for v in line.split("\t")) for line in text.splitlines()]

    def load(self, database: str, dump: Path | bytes) -> None:
        """Load a plain SQL dump into ``database`` as the admin."""
        if isinstance(dump, Path):
            with dump.open("rb") as fh:
                result = subprocess.run(self.client(database), stdin=fh, capture_output=True, check=False)
        else:
            result = subprocess.run(self.client(database), input=dump, capture_output=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"loading the dump failed: {result.stderr.decode('utf-8', 'replace').strip()}")

    # -- administration --------------------------------------------------------------------
    def create_database(self, name: str, *, owner: str | None = None) -> None:
        stmts = f"CREATE DATABASE {sql_name(name)} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;"
        if owner:
            stmts += f"GRANT ALL PRIVILEGES ON {sql_name(name)}.* TO {sql_string(owner)}@'%';"
        self.sql(stmts)

    def drop_database(self, name: str) -> None:
        self.sql(f"DROP DATABASE IF EXISTS {sql_name(name)};")

    def create_user(self, user: str, password: str) -> None:
        """``user``@``%`` with ``password``: one account whether it logs in over the socket or TCP
        (there are no anonymous users to shadow it), so it is the definer of what it creates either
        way. A dump can show a routine's body only to its definer (or to an account with SELECT on
        ``mysql.proc``)."""
        self.sql(f"CREATE USER IF NOT EXISTS {sql_string(user)}@'%' IDENTIFIED BY {sql_string(password)};")

    # -- inspection ------------------------------------------------------------------------
    def base_tables(self, database: str) -> list[str]:
        rows = self.sql(
            "SELECT TABLE_NAME FROM information_schema.TABLES "
            f"WHERE TABLE_SCHEMA = {sql_string(database)} AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME;"
        )
        return [r[0] for r in rows]

    def table_row_counts(self, database: str) -> dict[str, int]:
        """Exact ``COUNT(*)`` of every base table (not information_schema's estimates)."""
        tables = self.base_tables(database)
        if not tables:
            return {}
        query = " UNION ALL ".join(
            f"SELECT {sql_string(t)}, COUNT(*) FROM {sql_name(database)}.{sql_name(t)}" for t in tables
        )
        return {name: int(count) for name, count in self.sql(query + ";")}

    def checksum_tables(self, database: str) -> dict[str, int | None]:
        """``CHECKSUM TABLE`` of every base table, by table name (None: the server could not)."""
        tables = self.base_tables(database)
        if not tables:
            return {}
        rows = self.sql(
            "CHECKSUM TABLE "
            + ", ".join(f"{sql_name(database)}.{sql_name(t)}" for t in tables)
            + " EXTENDED;"
        )
        return {
            qualified.split(".", 1)[1]: (None if value == "NULL" else int(value)) for qualified, value in rows
        }

    def schema_objects(self, database: str) -> dict[str, set[str]]:
        """Names of the views, triggers, routines and events of ``database``."""
        db = sql_string(database)
        queries = {
            "views": f"SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = {db};",
            "triggers": f"SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = {db};",
            "routines": f"SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = {db};",
            "events": f"SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = {db};",
        }
        return {kind: {r[0] for r in self.sql(q)} for kind, q in queries.items()}


def seed_shop(
    server: MariaDBServer,
    database: str = SHOP_DB,
    *,
    user: str = SHOP_USER,
    password: str = SHOP_PASSWORD,
    products: int = 2000,
    customers: int = 1000,
    orders: int = 1500,
    bulk_bytes: int = 4 * 1024 * 1024,
) -> None:
    """Create ``database`` owned by ``user`` and fill it as a small Magento-like shop would be.

    Several thousand rows over InnoDB tables with decimals, datetimes (fractional seconds too),
    utf8mb4 text (accents, CJK, emoji), text with quotes, backslashes, tabs and newlines, NULLs,
    binary data with every byte value, a view, a trigger, a procedure, a function and an event.
    ``bulk_bytes`` of incompressible binary rows make the dump big enough to still be running while
    a test looks at it (4 MiB: the pipes fill and the dump blocks until it is read).
    """
    server.create_user(user, password)
    server.create_database(database, owner=user)
    creds = Credentials(user=user, password=password, socket=server.socket)
    schema = f"""
CREATE TABLE store (
  store_id SMALLINT UNSIGNED NOT NULL PRIMARY KEY,
  code VARCHAR(32) NOT NULL UNIQUE,
  name VARCHAR(255) NOT NULL
) ENGINE=InnoDB;
INSERT INTO store VALUES (0, 'admin', 'Admin'), (1, 'default', 'Default Store View'),
  (2, 'fr', 'Boutique française'), (3, 'jp', '日本語ストア');

CREATE TABLE catalog_product_entity (
  entity_id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  attribute_set_id SMALLINT UNSIGNED NOT NULL DEFAULT 4,
  type_id VARCHAR(32) NOT NULL DEFAULT 'simple',
  sku VARCHAR(64) NOT NULL,
  name VARCHAR(255) NOT NULL,
  price DECIMAL(20,6) NOT NULL,
  weight DECIMAL(12,4) NULL,
  description MEDIUMTEXT NULL,
  created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  UNIQUE KEY catalog_product_entity_sku (sku)
) ENGINE=InnoDB;
INSERT INTO catalog_product_entity
  (entity_id, type_id, sku, name, price, weight, description, created_at, updated_at)
SELECT seq, ELT(1 + seq % 3, 'simple', 'configurable', 'virtual'), CONCAT('SKU-', LPAD(seq, 6, '0')),
  CONCAT(ELT(1 + seq % 6, 'Café crème ☕', 'Çedilla shirt', 'Naïve tee', 'Smörgåsbord plate',
                          'Emoji mug 😀🛒', 'Plain "quoted" \\\\ item'), ' #', seq),
  ROUND(seq * 1.37 + 0.99, 6), IF(seq % 7 = 0, NULL, seq / 8),
  IF(seq % 5 = 0, NULL, CONCAT('Line one\\nLine two\\twith tab, quote '' and backslash \\\\ ',
                               REPEAT('lorem ipsum ', seq % 20))),
  TIMESTAMP('2024-01-01') + INTERVAL seq MINUTE, TIMESTAMP('2024-06-01') + INTERVAL seq SECOND
FROM seq_1_to_{products};

CREATE TABLE customer_entity (
  entity_id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  email VARCHAR(255) NOT NULL,
  firstname VARCHAR(255) NOT NULL,
  lastname VARCHAR(255) NOT NULL,
  dob DATE NULL,
  gender TINYINT UNSIGNED NULL,
  is_active TINYINT(1) NOT NULL DEFAULT 1,
  created_at DATETIME NOT NULL,
  UNIQUE KEY customer_entity_email (email)
) ENGINE=InnoDB;
INSERT INTO customer_entity (entity_id, email, firstname, lastname, dob, gender, is_active, created_at)
SELECT seq, CONCAT('customer', seq, '@example.test'),
  ELT(1 + seq % 8, 'Zoë', 'José', 'Łukasz', 'Søren', '美咲', 'Renée 🌸', 'Ævar', 'D''Arcy'),
  ELT(1 + seq % 6, 'Müller', 'Ñúñez', 'O''Brien', 'Dvořák', '山田', 'Smith 🚀'),
  IF(seq % 9 = 0, NULL, DATE('1950-01-01') + INTERVAL seq * 11 DAY), seq % 3, seq % 10 <> 0,
  TIMESTAMP('2023-01-01 08:00:00') + INTERVAL seq * 37 MINUTE
FROM seq_1_to_{customers};

CREATE TABLE sales_order (
  entity_id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  increment_id VARCHAR(50) NOT NULL UNIQUE,
  customer_id INT UNSIGNED NULL,
  store_id SMALLINT UNSIGNED NOT NULL,
  state VARCHAR(32) NOT NULL,
  status VARCHAR(32) NOT NULL,
  grand_total DECIMAL(20,4) NOT NULL,
  subtotal DECIMAL(20,4) NOT NULL,
  tax_amount DECIMAL(20,4) NOT NULL,
  discount_amount DECIMAL(20,4) NOT NULL DEFAULT 0,
  order_currency_code CHAR(3) NOT NULL,
  customer_note TEXT NULL,
  created_at DATETIME NOT NULL,
  updated_at DATETIME(6) NOT NULL,
  CONSTRAINT fk_sales_order_customer FOREIGN KEY (customer_id)
    REFERENCES customer_entity (entity_id) ON DELETE SET NULL,
  CONSTRAINT fk_sales_order_store FOREIGN KEY (store_id) REFERENCES store (store_id)
) ENGINE=InnoDB;
INSERT INTO sales_order (entity_id, increment_id, customer_id, store_id, state, status, grand_total,
  subtotal, tax_amount, discount_amount, order_currency_code, customer_note, created_at, updated_at)
SELECT seq, LPAD(100000000 + seq, 9, '0'), IF(seq % 11 = 0, NULL, 1 + seq % {customers}), seq % 4,
  ELT(1 + seq % 4, 'new', 'processing', 'complete', 'canceled'),
  ELT(1 + seq % 4, 'pending', 'processing', 'complete', 'canceled'),
  ROUND(seq * 3.1415 + 5, 4), ROUND(seq * 2.5, 4), ROUND(seq * 0.475, 4), -ROUND(seq % 10 * 1.1, 4),
  ELT(1 + seq % 3, 'EUR', 'USD', 'JPY'),
  IF(seq % 4 = 0, NULL, CONCAT('Please ring twice; "door" B\\\\C', CHAR(10), 'Merci ', seq, ' 🙏')),
  TIMESTAMP('2024-02-01') + INTERVAL seq * 17 MINUTE,
  TIMESTAMP('2024-02-01') + INTERVAL seq * 17 MINUTE + INTERVAL seq * 1013 MICROSECOND
FROM seq_1_to_{orders};

CREATE TABLE sales_order_item (
  item_id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  order_id INT UNSIGNED NOT NULL,
  product_id INT UNSIGNED NULL,
  sku VARCHAR(64) NOT NULL,
  qty_ordered DECIMAL(12,4) NOT NULL,
  price DECIMAL(20,4) NOT NULL,
  row_total DECIMAL(20,4) NOT NULL DEFAULT 0,
  CONSTRAINT fk_sales_order_item_order FOREIGN KEY (order_id)
    REFERENCES sales_order (entity_id) ON DELETE CASCADE
) ENGINE=InnoDB;

DELIMITER //
CREATE TRIGGER trg_sales_order_item_row_total BEFORE INSERT ON sales_order_item FOR EACH ROW
BEGIN
  SET NEW.row_total = ROUND(NEW.qty_ordered * NEW.price, 4);
END//
CREATE FUNCTION price_with_tax(p DECIMAL(20,6), rate DECIMAL(6,4)) RETURNS DECIMAL(20,6) DETERMINISTIC
BEGIN
  RETURN ROUND(p * (1 + rate), 6);
END//
CREATE PROCEDURE sales_order_customer_total(IN cust INT UNSIGNED, OUT total DECIMAL(20,4))
READS SQL DATA
BEGIN
  SELECT COALESCE(SUM(grand_total), 0) INTO total FROM sales_order WHERE customer_id = cust;
END//
DELIMITER ;

INSERT INTO sales_order_item (order_id, product_id, sku, qty_ordered, price)
SELECT 1 + seq % {orders}, 1 + seq % {products}, CONCAT('SKU-', LPAD(1 + seq % {products}, 6, '0')),
  1 + seq % 5, ROUND(seq * 0.77 + 1, 4)
FROM seq_1_to_{orders * 2};

CREATE VIEW sales_order_summary AS
  SELECT customer_id, COUNT(*) AS orders, SUM(grand_total) AS total FROM sales_order GROUP BY customer_id;

CREATE EVENT ev_purge_canceled_orders ON SCHEDULE EVERY 1 DAY DISABLE
  DO DELETE FROM sales_order WHERE state = 'canceled' AND created_at < NOW() - INTERVAL 5 YEAR;

CREATE TABLE media_storage_file_storage (
  file_id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  content LONGBLOB NULL,
  digest BINARY(16) NULL,
  filename VARCHAR(100) NOT NULL,
  directory VARCHAR(255) NULL
) ENGINE=InnoDB;
INSERT INTO media_storage_file_storage (content, digest, filename, directory) VALUES
  (0x00FF00FF00, UNHEX('00FF00112233445566778899AABBCCDD'), 'nul-and-ff.bin', 'catalog/product'),
  ({_all_bytes_literal()}, UNHEX(MD5('all')), 'all-256-bytes.bin', NULL),
  ('', NULL, 'empty.bin', 'wysiwyg'),
  (NULL, NULL, 'null.bin', NULL);
"""
    server.sql(schema, database, creds=creds)
    # incompressible rows: a dump that takes a moment and fills the pipes
    rng = random.Random(20261122)
    chunk = 64 * 1024
    for start in range(0, bulk_bytes, chunk * 8):
        rows = ", ".join(
            f"(0x{rng.randbytes(chunk).hex()}, NULL, 'bulk-{start + i * chunk}.bin', 'bulk')"
            for i in range(min(8, (bulk_bytes - start + chunk - 1) // chunk))
        )
        server.sql(
            f"INSERT INTO media_storage_file_storage (content, digest, filename, directory) VALUES {rows};",
            database,
            creds=creds,
        )


def _all_bytes_literal() -> str:
    return "0x" + bytes(range(256)).hex() * 4


def mariadb_fixture(
    name: str = "mariadb", scope: Any = "session", *, seed: Callable[[MariaDBServer], None] | None = seed_shop
) -> Any:
    """Return a pytest fixture (bind it to a module-level name) yielding a running, seeded server."""

    @pytest.fixture(name=name, scope=scope)
    def _mariadb() -> Iterator[MariaDBServer]:
        require_mariadb()
        with MariaDBServer() as server:
            if seed is not None:
                seed(server)
            yield server

    return _mariadb


@contextlib.contextmanager
def table_lock(server: MariaDBServer, database: str, table: str) -> Iterator[Callable[[], None]]:
    """Hold ``LOCK TABLES table WRITE`` from another session; yield a function that releases it.

    A dump reaching ``table`` then waits on the lock, alive, for as long as the test wants: how a
    test catches a dump mid-stream (to look at ``ps``, or to let a timeout kill it) without
    guessing how long it takes. Released at the latest when the block ends.
    """
    proc = subprocess.Popen(
        server.client(database, extra=("--unbuffered",)),  # answer each statement as it runs
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(f"LOCK TABLES {sql_name(table)} WRITE;\nSELECT 'locked';\n")
    proc.stdin.flush()
    line = proc.stdout.readline()  # the lock is held once the SELECT after it answers
    if line.strip() != "locked":
        proc.kill()
        raise RuntimeError(f"could not lock {table}: {proc.communicate()[1]}")

    def release() -> None:
        if proc.poll() is None and proc.stdin is not None and not proc.stdin.closed:
            proc.stdin.write("UNLOCK TABLES;\n")
            proc.stdin.close()  # the client exits at EOF
            proc.wait(timeout=30)

    try:
        yield release
    finally:
        release()


@contextlib.contextmanager
def scratch_database(server: MariaDBServer, name: str, *, owner: str | None = None) -> Iterator[str]:
    """A fresh empty database, dropped afterwards. ``owner`` gets ALL on it: the definer of the
    restored views and routines (``SQL SECURITY DEFINER``) needs rights where they now live."""
    server.drop_database(name)
    server.create_database(name, owner=owner)
    try:
        yield name
    finally:
        server.drop_database(name)
