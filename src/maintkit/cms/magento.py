"""Magento 2: ``app/etc/env.php``, bin/magento maintenance, core_config_data URLs, atomic releases."""

from __future__ import annotations

import shlex
from collections.abc import Callable

from maintkit.cms.base import AppConfig, MaintenanceCli, Profile, ReleaseLayout, UrlRewrite, register

READ_PHP = r"""
    $file = "$root/app/etc/env.php";
    $c = mk_include($file);
    $d = is_array($c) ? ($c['db']['connection']['default'] ?? null) : null;
    if (!is_array($d)) { mk_fail("$file has no db.connection.default"); }
    [$host, $port, $socket] = mk_host($d['host'] ?? 'localhost');
    if (isset($d['port']) && $d['port'] !== '') { $port = (int)$d['port']; }
    $name = $d['dbname'] ?? null; $user = $d['username'] ?? null; $pass = $d['password'] ?? '';
"""

WRITE_PHP = r"""
    $file = "$root/app/etc/env.php";
    $c = mk_include($file);
    if (!is_array($c)) { mk_fail("$file does not return an array"); }
    $d = $c['db']['connection']['default'] ?? [];
    if (!is_array($d)) { mk_fail("$file has a db.connection.default that is not an array"); }
    unset($d['port']);
    $d = array_merge($d, ['host' => $s['host'], 'dbname' => $s['name'], 'username' => $s['user'],
                          'password' => $s['password']]);
    $c['db']['connection']['default'] = $d;
    mk_write($file, "<?php\nreturn " . var_export($c, true) . ";\n");
"""

#: the product package in composer.lock names the edition and the version (any composer project:
#: the generic ``none`` profile reads the same)
VERSION_PHP = r"""
    $lock = is_readable("$root/composer.lock")
        ? json_decode(file_get_contents("$root/composer.lock"), true) : null;
    $versions = [];
    foreach (($lock['packages'] ?? []) as $pkg) { $versions[$pkg['name'] ?? ''] = $pkg['version'] ?? ''; }
    foreach (['magento/product-enterprise-edition', 'magento/product-community-edition',
              'magento/magento2-base'] as $n) {  // the product package names the edition
        if (isset($versions[$n])) { mk_out('version', $versions[$n]); mk_out('package', $n); break; }
    }
"""

#: the base URLs a copy must not keep (every scope)
BASE_PATHS = ("web/unsecure/base_url", "web/secure/base_url")
#: absolute link, static and media URLs: they get the copy's origin, their path kept
OTHER_PATHS = (
    "web/unsecure/base_link_url",
    "web/secure/base_link_url",
    "web/unsecure/base_static_url",
    "web/secure/base_static_url",
    "web/unsecure/base_media_url",
    "web/secure/base_media_url",
)


def origin(url: str) -> str:
    """``https://host:port`` of a URL."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def rewrite_statements(
    table: str, url: str, secure_url: str | None, literal: Callable[[str], str]
) -> list[str]:
    """``web/unsecure/base_url`` and ``web/secure/base_url`` (every scope) become the URL (with a
    trailing ``/``); the absolute link, static and media URLs get the new origin, their path kept
    (values using ``{{unsecure_base_url}}`` placeholders follow by themselves)."""
    unsecure = url.rstrip("/") + "/"
    secure = (secure_url or url).rstrip("/") + "/"
    paths = ", ".join(literal(p) for p in OTHER_PATHS)
    new_origin = literal(origin(secure))
    rest = "LOCATE('/', value, LOCATE('://', value) + 3)"
    unsecure_path, secure_path = BASE_PATHS
    return [
        f"UPDATE {table} SET value = {literal(unsecure)} WHERE path = {literal(unsecure_path)};",  # noqa: S608
        f"SELECT '#rewritten', {literal(unsecure_path)}, ROW_COUNT();",
        f"UPDATE {table} SET value = {literal(secure)} WHERE path = {literal(secure_path)};",  # noqa: S608
        f"SELECT '#rewritten', {literal(secure_path)}, ROW_COUNT();",
        f"UPDATE {table} SET value = IF({rest} = 0, {new_origin}, "  # noqa: S608
        f"CONCAT({new_origin}, SUBSTRING(value, {rest}))) "
        f"WHERE path IN ({paths}) AND (value LIKE 'http://%' OR value LIKE 'https://%');",
        "SELECT '#rewritten', 'link/static/media urls', ROW_COUNT();",
    ]


def maintenance_status(php: str, root: str, host_path: Callable[[str], str]) -> str:
    """Exit 0 in maintenance, 1 not (the flag lives in the release's ``var/``)."""
    return (
        f"cd {host_path(root)} && "
        f"out=$({shlex.quote(php)} bin/magento maintenance:status --no-interaction) "
        '&& case "$out" in *"is active"*) exit 0;; *) exit 1;; esac'
    )


def maintenance_switch(php: str, root: str, on: bool, host_path: Callable[[str], str]) -> str:
    verb = "maintenance:enable" if on else "maintenance:disable"
    return f"cd {host_path(root)} && {shlex.quote(php)} bin/magento {verb} --no-interaction"


PROFILE = register(
    Profile(
        name="magento",
        title="Magento 2 (Adobe Commerce, Mage-OS)",
        excludes=(
            "var/cache",
            "var/page_cache",
            "var/view_preprocessed",
            "generated/code",
            "generated/metadata",
            "pub/static/adminhtml",
            "pub/static/frontend",
            "pub/static/_cache",
            "pub/static/_requirejs",
            "pub/static/deployed_version.txt",
        ),
        config=AppConfig("app/etc/env.php", READ_PHP, WRITE_PHP, socket="path", separate_port=False),
        version_php=VERSION_PHP,
        release=ReleaseLayout(
            shared=("app/etc/env.php", "pub/media", "var/log", "var/session", "var/report", "var/export"),
            copy=(
                "vendor",
                "composer.json",
                "composer.lock",
                "app/etc/config.php",
                "generated",
                "pub/static",
            ),
            clear=("var/cache", "var/page_cache", "var/view_preprocessed"),
            setup_status=True,
        ),
        maintenance=MaintenanceCli("php", maintenance_status, maintenance_switch),
        url_rewrite=UrlRewrite("core_config_data", "", rewrite_statements),
        audit="composer",
        rank=10,
        update_playbook="update-magento",
        promote_playbook="promote",
    )
)
