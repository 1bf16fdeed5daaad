"""WordPress: ``wp-config.php``, wp-cli maintenance, ``wp_options`` URLs, checksum audits; no releases.

WordPress updates itself in place (``wp core update``, plugins, themes): it has no atomic release
layout, so the ``release``, ``preview`` and ``preflight`` actions refuse it at validation.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable

from maintkit.cms.base import AppConfig, MaintenanceCli, Profile, UrlRewrite, register

READ_PHP = r"""
    $file = "$root/wp-config.php";
    $up = dirname($root);
    if (!is_file($file) && is_file("$up/wp-config.php") && !is_file("$up/wp-settings.php")) {
        $file = "$up/wp-config.php";  // WordPress also looks one folder up
    }
    // wp-config.php ends with require ABSPATH . 'wp-settings.php', which boots WordPress: point
    // ABSPATH at an empty stub so that including it only defines the constants.
    $stub = sys_get_temp_dir() . '/maintkit-wp-' . bin2hex(random_bytes(8));
    if (!@mkdir($stub, 0700) || !touch("$stub/wp-settings.php")) { mk_fail("cannot create $stub"); }
    define('ABSPATH', "$stub/");
    try { mk_include($file); } finally { @unlink("$stub/wp-settings.php"); @rmdir($stub); }
    foreach (['DB_NAME', 'DB_USER', 'DB_PASSWORD', 'DB_HOST'] as $k) {
        if (!defined($k)) { mk_fail("$file does not define $k"); }
    }
    [$host, $port, $socket] = mk_host(DB_HOST);
    $name = DB_NAME; $user = DB_USER; $pass = DB_PASSWORD;
"""

#: wp-config.php is code: the value expression of each ``define('DB_…', …)`` is replaced
WRITE_PHP = r"""
    $file = "$root/wp-config.php";
    if (!is_file($file) || !is_readable($file)) { mk_fail("cannot read $file"); }
    $values = ['DB_NAME' => $s['name'], 'DB_USER' => $s['user'], 'DB_PASSWORD' => $s['password'],
               'DB_HOST' => $s['host']];
    mk_write($file, mk_defines(file_get_contents($file), $values));
"""

VERSION_PHP = r"""
    if (is_readable("$root/wp-includes/version.php")) {
        (function ($f) {
            include $f;  // sets $wp_version, $wp_db_version... in this function's scope only
            mk_out('version', $wp_version ?? null);
            mk_out('db_version', isset($wp_db_version) ? (string)$wp_db_version : null);
        })("$root/wp-includes/version.php");
    }
"""


def rewrite_statements(
    table: str, url: str, secure_url: str | None, literal: Callable[[str], str]
) -> list[str]:
    """``siteurl`` and ``home`` become the URL (WordPress has one URL for both schemes)."""
    return [
        f"UPDATE {table} SET option_value = {literal(url.rstrip('/'))} "  # noqa: S608
        "WHERE option_name IN ('siteurl', 'home');",
        "SELECT '#rewritten', 'siteurl/home', ROW_COUNT();",
    ]


def maintenance_status(wp: str, root: str, host_path: Callable[[str], str]) -> str:
    return shlex.join([wp, "maintenance-mode", "is-active", f"--path={root}"])


def maintenance_switch(wp: str, root: str, on: bool, host_path: Callable[[str], str]) -> str:
    path = f"--path={root}"
    if on:  # --force: plain activate fails when maintenance is already on
        return shlex.join([wp, "maintenance-mode", "activate", "--force", path])
    # deactivate fails ("already deactivated") when WordPress's upgrader has already removed
    # .maintenance, as it does at the end of every core or active plugin/theme update
    status = shlex.join([wp, "maintenance-mode", "is-active", path])
    return (
        f"{status}; rc=$?; if [ $rc -eq 0 ]; then "
        f"{shlex.join([wp, 'maintenance-mode', 'deactivate', path])}; "
        "elif [ $rc -ne 1 ]; then exit $rc; fi"
    )


PROFILE = register(
    Profile(
        name="wordpress",
        title="WordPress (WooCommerce)",
        excludes=("wp-content/cache",),
        config=AppConfig("wp-config.php", READ_PHP, WRITE_PHP, socket="localhost:path", separate_port=False),
        version_php=VERSION_PHP,
        release=None,
        maintenance=MaintenanceCli("wp", maintenance_status, maintenance_switch),
        url_rewrite=UrlRewrite("options", "wp_", rewrite_statements),
        audit="wordpress",
        rank=20,
        update_playbook="update-wordpress",
        promote_playbook="promote-wordpress",
    )
)
