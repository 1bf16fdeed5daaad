"""The fixture PrestaShop shop (``tests/fixtures/prestashop``) on an sshd test host, served by ``php -S``.

Why a console of our own: the 1-click upgrade module needs a whole PrestaShop (and PrestaShop's
distribution API) to run, and what the PrestaShop playbooks must prove (files really replaced, an
upgrade really changing the schema and ``PS_VERSION_DB``, a page that really breaks, a snapshot that
really brings files and database back, promotion pinned to one version) needs a shop that behaves
like PrestaShop where maintkit touches it. ``site/modules/autoupgrade/bin/console`` implements the
autoupgrade v7 commands maintkit calls, with the module's options, configuration keys, messages and
exit codes; the release archives built here stand for the ones downloaded from prestashop.com.

Layout made on each host::

    ~/prestashop/                     the shop: PrestaShop 8.1.5 (app/AppKernel.php, index.php,
                                      classes/), app/config/parameters.php (this host's database),
                                      admin-fixture/ (the admin folder), modules/autoupgrade/
    ~/prestashop/admin-fixture/autoupgrade/download/
                                      prestashop_8.1.6.zip / .xml, prestashop_8.1.7.zip / .xml
                                      (the module's local channel; 8.1.7 breaks the page)
    ~/router.php                      ``php -S`` entry point (outside the root: a restore swaps it)
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.mariadb import MariaDBServer, sql_name, sql_string
from tests.shop import as_user, file_tree, get_page, php_string, serve
from tests.sshd import SSHHost, terminate

FIXTURE = Path(__file__).parent / "fixtures" / "prestashop"
ADMIN_DIR = "admin-fixture"
INSTALLED = "8.1.5"
ARCHIVES = ("8.1.6", "8.1.7")
DB_USER = "mkps_site"
DB_PASSWORD = "ps pa$$ 'x' \"y\" \\z"

INSTALL_SQL = """
CREATE TABLE ps_configuration (id_configuration INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  id_shop_group INT UNSIGNED NULL, id_shop INT UNSIGNED NULL, name VARCHAR(254) NOT NULL,
  value TEXT NULL, date_add DATETIME NOT NULL, date_upd DATETIME NOT NULL, KEY name (name)) ENGINE=InnoDB;
CREATE TABLE ps_product (id_product INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  reference VARCHAR(64) NULL, price DECIMAL(20,6) NOT NULL DEFAULT 0, active TINYINT(1) NOT NULL DEFAULT 0)
  ENGINE=InnoDB;
CREATE TABLE ps_product_lang (id_product INT UNSIGNED NOT NULL, id_lang INT UNSIGNED NOT NULL,
  name VARCHAR(128) NOT NULL, PRIMARY KEY (id_product, id_lang)) ENGINE=InnoDB;
INSERT INTO ps_configuration (name, value, date_add, date_upd) VALUES
  ('PS_SHOP_NAME', 'Acme PrestaShop', '2024-01-15 10:00:00', '2024-01-15 10:00:00'),
  ('PS_SHOP_ENABLE', '1', '2024-01-15 10:00:00', '2024-01-15 10:00:00'),
  ('PS_VERSION_DB', '8.1.5', '2024-01-15 10:00:00', '2024-01-15 10:00:00'),
  ('PS_THEME_NAME', 'classic', '2024-01-15 10:00:00', '2024-01-15 10:00:00');
INSERT INTO ps_product (reference, price, active) VALUES ('MUG', 9.9, 1), ('SHIRT', 19.9, 1),
  ('CUP', 4.5, 1), ('DRAFT', 1, 0);
INSERT INTO ps_product_lang (id_product, id_lang, name) VALUES (1, 1, 'Mug'), (2, 1, 'Shirt'),
  (3, 1, 'Café crème cup ☕'), (4, 1, 'Draft');
"""


def release_archive(version: str) -> tuple[bytes, bytes]:
    """The release as prestashop.com ships it (``prestashop_X.zip`` holding ``prestashop.zip``, whose
    ``install/install_version.php`` names the version) and its checksum XML (``ps_root_dir version``),
    the two files the module's local channel reads."""
    folder = FIXTURE / "releases" / version
    inner = io.BytesIO()
    md5 = []
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                rel = str(path.relative_to(folder))
                archive.write(path, rel)
                md5.append(
                    f'    <md5file name="{rel}">{hashlib.md5(path.read_bytes()).hexdigest()}</md5file>'
                )
    outer = io.BytesIO()
    with zipfile.ZipFile(outer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("prestashop.zip", inner.getvalue())
        archive.writestr("index.php", "<?php // the release's unzipper\n")
        archive.writestr("Install_PrestaShop.html", "<html>Install</html>\n")
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<checksum_list>\n'
        f'  <ps_root_dir version="{version}">\n' + "\n".join(md5) + "\n  </ps_root_dir>\n</checksum_list>\n"
    )
    return outer.getvalue(), xml.encode()


@dataclass
class Shop:
    """The PrestaShop shop on one host: where it is, its database, its URL, its console."""

    host: SSHHost
    root: Path
    database: str
    url: str = ""
    server: subprocess.Popen[bytes] | None = None

    @property
    def download(self) -> Path:
        return self.root / ADMIN_DIR / "autoupgrade" / "download"

    def get(self) -> tuple[int, str]:
        return get_page(self.url)

    def console(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the autoupgrade console as the host's user, from the shop root (as maintkit does)."""
        return as_user(self.host, ["php", "modules/autoupgrade/bin/console", *args], cwd=self.root)

    def version(self) -> str:
        text = (self.root / "app" / "AppKernel.php").read_text()
        return text.split("const VERSION = '", 1)[1].split("'", 1)[0]

    def tree(self) -> dict[str, str]:
        """Every file and link under the root with its SHA-256 and mode (what "files identical"
        means); var/cache is left out, as the snapshot leaves it out."""
        return file_tree(
            self.root, lambda rel: rel in ("var/cache", "php-server.log") or rel.startswith("var/cache/")
        )

    def stop(self) -> None:
        proc, self.server = self.server, None
        terminate(proc)


def _install_files(home: Path, database: str, db_port: int) -> Path:
    root = home / "prestashop"
    shutil.copytree(FIXTURE / "site", root)
    release = FIXTURE / "releases" / INSTALLED
    shutil.copytree(release, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns("install"))
    (root / "var" / "logs").mkdir(parents=True)
    params = root / "app" / "config" / "parameters.php"
    text = params.read_text()
    for key, value in {
        "database_host": "127.0.0.1",
        "database_port": str(db_port),
        "database_name": database,
        "database_user": DB_USER,
        "database_password": DB_PASSWORD,
    }.items():
        text = text.replace(f"'@{key}@'", php_string(value))
    params.write_text(text)
    download = root / ADMIN_DIR / "autoupgrade" / "download"
    download.mkdir(parents=True)
    for version in ARCHIVES:
        archive, xml = release_archive(version)
        (download / f"prestashop_{version}.zip").write_bytes(archive)
        (download / f"prestashop_{version}.xml").write_bytes(xml)
    (home / "router.php").write_text(
        "<?php\n// php -S entry point: the shop root is resolved per request (a restore swaps it).\n"
        "chdir(__DIR__ . '/prestashop');\nrequire __DIR__ . '/prestashop/index.php';\n"
    )
    return root


@contextmanager
def installed_shop(host: SSHHost, mariadb: MariaDBServer, database: str) -> Iterator[Shop]:
    """Install the fixture shop on ``host`` with its own database, serve it; drop the database after."""
    root = _install_files(host.home, database, mariadb.port)
    subprocess.run(
        ["chown", "-R", f"{host.user}:{host.user}", str(root), str(host.home / "router.php")], check=True
    )
    mariadb.create_user(DB_USER, DB_PASSWORD)
    mariadb.sql(
        f"CREATE DATABASE {sql_name(database)};"
        f"GRANT ALL PRIVILEGES ON {sql_name(database)}.* TO {sql_string(DB_USER)}@'%';"
        f"GRANT ALL PRIVILEGES ON {sql_name(database + '_mkrestore')}.* TO {sql_string(DB_USER)}@'%';"
    )
    shop = Shop(host, root, database)
    try:
        mariadb.sql(INSTALL_SQL, database)
        shop.url, shop.server = serve(host, host.home)
        yield shop
    finally:
        shop.stop()
        mariadb.drop_database(database)
        mariadb.drop_database(database + "_mkrestore")
