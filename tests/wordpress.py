"""The fixture WordPress site (``tests/fixtures/wordpress``) on an sshd test host, served by ``php -S``.

Why a console of our own: wp-cli cannot be downloaded here, and what the WordPress playbooks must
prove (plugins really replaced, a plugin upgrade routine really changing the database, a page that
really breaks, a snapshot that really brings files and database back) needs a site that behaves
like WordPress where maintkit touches it. ``fixtures/wordpress/wp`` implements the wp-cli commands
maintkit calls with wp-cli's options, JSON fields, messages and exit codes; the "update source"
beside it stands for wordpress.org.

Layout made on each host::

    ~/wordpress/             the site: wp-config.php (this host's database), core 6.4.1,
                             plugins shop-banner 1.0.0 (active) and shop-reviews 1.0.0 (active),
                             theme storefront 1.0.0
    ~/wp-cli/wp              the console (executable, ``#!/usr/bin/env php``)
    ~/wp-cli/source/         the update source (core 6.4.1/6.4.2, shop-banner 1.0.0/1.1.0/1.2.0...)
    ~/router.php             ``php -S`` entry point (outside the root: a restore swaps the root)
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.mariadb import MariaDBServer, sql_name, sql_string
from tests.shop import as_user, file_tree, get_page, php_string, serve
from tests.sshd import SSHHost, terminate

FIXTURE = Path(__file__).parent / "fixtures" / "wordpress"
DB_USER = "mkwp_site"
DB_PASSWORD = "wp pa$$ 'x' \"y\" \\z"
CORE = "6.4.1"
PLUGINS = {"shop-banner": "1.0.0", "shop-reviews": "1.0.0"}
THEME = ("storefront", "1.0.0")

INSTALL_SQL = """
CREATE TABLE wp_options (option_id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  option_name VARCHAR(191) NOT NULL UNIQUE, option_value LONGTEXT NOT NULL) ENGINE=InnoDB;
CREATE TABLE wp_posts (ID BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, post_title TEXT NOT NULL,
  post_type VARCHAR(20) NOT NULL, post_status VARCHAR(20) NOT NULL) ENGINE=InnoDB;
CREATE TABLE wp_shop_banner (id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, text VARCHAR(255) NOT NULL)
  ENGINE=InnoDB;
INSERT INTO wp_options (option_name, option_value) VALUES ('blogname', 'Acme WordPress Shop'),
  ('db_version', '56657'), ('stylesheet', 'storefront'), ('shop_banner_db_version', '1.0.0'),
  ('active_plugins',
   'a:2:{i:0;s:27:"shop-banner/shop-banner.php";i:1;s:29:"shop-reviews/shop-reviews.php";}');
INSERT INTO wp_posts (post_title, post_type, post_status) VALUES ('Mug', 'product', 'publish'),
  ('Shirt', 'product', 'publish'), ('Café crème cup ☕', 'product', 'publish'),
  ('Draft', 'product', 'draft');
INSERT INTO wp_shop_banner (text) VALUES ('Summer sale');
"""


@dataclass
class Site:
    """The WordPress site on one host: where it is, its database, its URL, its console."""

    host: SSHHost
    root: Path
    database: str
    url: str = ""
    server: subprocess.Popen[bytes] | None = None

    @property
    def wp_path(self) -> Path:
        return self.host.home / "wp-cli" / "wp"

    @property
    def source(self) -> Path:
        return self.host.home / "wp-cli" / "source"

    def get(self) -> tuple[int, str]:
        return get_page(self.url)

    def wp(self, *args: str) -> subprocess.CompletedProcess[str]:
        return as_user(self.host, [str(self.wp_path), *args, f"--path={self.root}"], cwd=self.host.home)

    def offer(self, kind: str, name: str, version: str) -> None:
        """Make the update source offer ``version`` as the update (``latest``), as wordpress.org would."""
        folder = self.source / kind / name if kind != "core" else self.source / "core"
        (folder / "latest").write_text(version + "\n")

    def tree(self) -> dict[str, str]:
        """Every file and link under the root with its SHA-256 and mode (what "files identical" means)."""
        return file_tree(self.root)

    def stop(self) -> None:
        proc, self.server = self.server, None
        terminate(proc)


def _install_files(home: Path, database: str, db_port: int) -> Path:
    root = home / "wordpress"
    shutil.copytree(FIXTURE / "site", root)
    shutil.copytree(FIXTURE / "source" / "core" / CORE, root, dirs_exist_ok=True)
    for name, version in PLUGINS.items():
        shutil.copytree(FIXTURE / "source" / "plugins" / name / version, root / "wp-content/plugins" / name)
    shutil.copytree(
        FIXTURE / "source" / "themes" / THEME[0] / THEME[1], root / "wp-content/themes" / THEME[0]
    )
    config = (root / "wp-config.php").read_text()
    for key, value in {
        "DB_NAME": database,
        "DB_USER": DB_USER,
        "DB_PASSWORD": DB_PASSWORD,
        "DB_HOST": f"127.0.0.1:{db_port}",
    }.items():
        config = config.replace(f"'@{key}@'", php_string(value))
    (root / "wp-config.php").write_text(config)
    tools = home / "wp-cli"
    tools.mkdir()
    shutil.copy2(FIXTURE / "wp", tools / "wp")
    shutil.copytree(FIXTURE / "source", tools / "source")
    (home / "router.php").write_text(
        "<?php\n// php -S entry point: the site root is resolved per request (a restore swaps it).\n"
        "chdir(__DIR__ . '/wordpress');\nrequire __DIR__ . '/wordpress/index.php';\n"
    )
    return root


@contextmanager
def installed_site(host: SSHHost, mariadb: MariaDBServer, database: str) -> Iterator[Site]:
    """Install the fixture site on ``host`` with its own database, serve it; drop the database after."""
    root = _install_files(host.home, database, mariadb.port)
    subprocess.run(
        [
            "chown",
            "-R",
            f"{host.user}:{host.user}",
            str(root),
            str(host.home / "wp-cli"),
            str(host.home / "router.php"),
        ],
        check=True,
    )
    mariadb.create_user(DB_USER, DB_PASSWORD)
    mariadb.sql(
        f"CREATE DATABASE {sql_name(database)};"
        f"GRANT ALL PRIVILEGES ON {sql_name(database)}.* TO {sql_string(DB_USER)}@'%';"
        f"GRANT ALL PRIVILEGES ON {sql_name(database + '_mkrestore')}.* TO {sql_string(DB_USER)}@'%';"
    )
    site = Site(host, root, database)
    try:
        mariadb.sql(INSTALL_SQL, database)
        site.url, site.server = serve(host, host.home)
        yield site
    finally:
        site.stop()
        mariadb.drop_database(database)
        mariadb.drop_database(database + "_mkrestore")
