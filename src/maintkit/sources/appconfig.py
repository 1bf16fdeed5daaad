"""Reading an application's own configuration on the server: database settings and a fingerprint.

Why on the server, with PHP: the shop's config files are PHP (``app/etc/env.php``,
``wp-config.php``, ``app/config/parameters.php``), often computed (``getenv()``, includes), so the
only faithful reader is PHP itself, run as the login user. The password then goes straight from
the config into a 0600 MySQL defaults file: it never travels to the control node, never enters a
command line, and never reaches the journal.

The PHP programs are fed to ``php`` on stdin from a quoted here-document, so they appear on no
command line either (only ``php -- CMS ROOT FILE`` does).
"""

from __future__ import annotations

from typing import Literal

from maintkit.sources.script import bash_command, heredoc, host_path, parse_pairs

App = Literal["magento", "wordpress", "prestashop"]
Cms = Literal["magento", "wordpress", "prestashop", "none"]

#: where each application keeps its database settings, relative to its root
CONFIG_FILES: dict[str, str] = {
    "magento": "app/etc/env.php",
    "wordpress": "wp-config.php",
    "prestashop": "app/config/parameters.php",
}

PHP_FLAGS = "-d display_errors=stderr -d log_errors=0 -d error_reporting=E_ALL"

#: Read the database settings of APP under ROOT, write a MySQL defaults file to OUT, print the
#: database name on stdout. Exit 3 with a ``maintkit: ...`` line on stderr when they are missing.
DB_CONFIG_PHP = r"""<?php
// (STDERR is not defined when the program itself arrives on stdin)
function mk_fail($m) { file_put_contents('php://stderr', "maintkit: $m\n"); exit(3); }

// "host", "host:port", "[v6]:port", "/socket", "host:/socket" (Magento, WordPress, PrestaShop forms)
function mk_host($h) {
    $h = trim((string)$h); $port = null; $socket = null;
    if ($h !== '' && $h[0] === '/') { return ['localhost', null, $h]; }
    $p = strpos($h, ':/');
    if ($p !== false) { $socket = substr($h, $p + 1); $h = substr($h, 0, $p); }
    if (preg_match('/^\[(.*)\](?::(\d*))?$/', $h, $m)) { $h = $m[1]; $port = $m[2] ?? null; }
    elseif (substr_count($h, ':') === 1) { [$h, $port] = explode(':', $h); }
    if ($h === '') { $h = 'localhost'; }
    return [$h, ($port === null || $port === '') ? null : (int)$port, $socket];
}

// A value for a MySQL option file: double-quoted, with the escapes the client's parser undoes.
function mk_opt($v) {
    $v = (string)$v;
    if (strpos($v, "\0") !== false) { mk_fail('a database setting contains a NUL byte'); }
    return '"' . strtr($v, ["\\" => "\\\\", '"' => '\\"', "'" => "\\'", "\n" => '\\n', "\r" => '\\r',
                            "\t" => '\\t', "\x08" => '\\b']) . '"';
}

// Include a config file; anything it prints (a stray BOM, whitespace) must not reach stdout.
function mk_include($file) {
    if (!is_file($file) || !is_readable($file)) { mk_fail("cannot read $file"); }
    ob_start();
    try { $r = include $file; } finally { ob_end_clean(); }
    return $r;
}

[$app, $root, $out] = [$argv[1], rtrim($argv[2], '/'), $argv[3]];
if ($root === '') { $root = '/'; }
$port = null; $socket = null;
switch ($app) {
case 'magento':
    $file = "$root/app/etc/env.php";
    $c = mk_include($file);
    $d = is_array($c) ? ($c['db']['connection']['default'] ?? null) : null;
    if (!is_array($d)) { mk_fail("$file has no db.connection.default"); }
    [$host, $port, $socket] = mk_host($d['host'] ?? 'localhost');
    if (isset($d['port']) && $d['port'] !== '') { $port = (int)$d['port']; }
    $name = $d['dbname'] ?? null; $user = $d['username'] ?? null; $pass = $d['password'] ?? '';
    break;
case 'wordpress':
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
    break;
case 'prestashop':
    $file = "$root/app/config/parameters.php";
    $c = mk_include($file);
    $p = is_array($c) ? ($c['parameters'] ?? null) : null;
    if (!is_array($p)) { mk_fail("$file has no parameters"); }
    [$host, $port, $socket] = mk_host($p['database_host'] ?? 'localhost');
    if (($p['database_port'] ?? '') !== '' && ($p['database_port'] ?? null) !== null) {
        $port = (int)$p['database_port'];
    }
    $name = $p['database_name'] ?? null; $user = $p['database_user'] ?? null;
    $pass = $p['database_password'] ?? '';
    break;
default:
    mk_fail("unknown application '$app'");
}
if (!is_string($name) || $name === '') { mk_fail("$file names no database"); }
if (!is_string($user) || $user === '') { mk_fail("$file names no database user"); }
$cnf = "[client]\nuser=" . mk_opt($user) . "\npassword=" . mk_opt($pass ?? '')
     . "\nhost=" . mk_opt($host) . "\n";
if ($port !== null) { $cnf .= "port=$port\n"; }
if ($socket !== null) { $cnf .= "socket=" . mk_opt($socket) . "\n"; }
if (file_put_contents($out, $cnf) !== strlen($cnf)) { mk_fail("cannot write the defaults file"); }
echo $name;
"""

#: Print ``KEY=VALUE`` lines naming the application's version (APP under ROOT).
VERSION_PHP = r"""<?php
[$app, $root] = [$argv[1], rtrim($argv[2], '/')];
function mk_out($k, $v) { if (is_string($v) && $v !== '') { echo "$k=", strtr($v, "\r\n", '  '), "\n"; } }
if ($app === 'magento' || $app === 'none') {
    $lock = is_readable("$root/composer.lock")
        ? json_decode(file_get_contents("$root/composer.lock"), true) : null;
    $versions = [];
    foreach (($lock['packages'] ?? []) as $pkg) { $versions[$pkg['name'] ?? ''] = $pkg['version'] ?? ''; }
    foreach (['magento/product-enterprise-edition', 'magento/product-community-edition',
              'magento/magento2-base'] as $n) {  // the product package names the edition
        if (isset($versions[$n])) { mk_out('version', $versions[$n]); mk_out('package', $n); break; }
    }
} elseif ($app === 'wordpress') {
    if (is_readable("$root/wp-includes/version.php")) {
        (function ($f) {
            include $f;  // sets $wp_version, $wp_db_version... in this function's scope only
            mk_out('version', $wp_version ?? null);
            mk_out('db_version', isset($wp_db_version) ? (string)$wp_db_version : null);
        })("$root/wp-includes/version.php");
    }
} elseif ($app === 'prestashop') {
    $sources = [
        "$root/app/AppKernel.php" => "/const\s+VERSION\s*=\s*'([^']+)'/",                 // 1.7, 8
        "$root/config/settings.inc.php" => "/_PS_VERSION_'\s*,\s*'([^']+)'/",              // 1.6
        "$root/install/install_version.php" => "/_PS_INSTALL_VERSION_'\s*,\s*'([^']+)'/",
    ];
    foreach ($sources as $f => $re) {
        if (is_readable($f) && preg_match($re, file_get_contents($f), $m)) {
            mk_out('version', $m[1]);
            break;
        }
    }
}
"""


def read_db_config_snippet(app: App, root: str, out_var: str = "f", name_var: str = "db") -> str:
    """Bash lines that run :data:`DB_CONFIG_PHP`: the defaults file lands in ``$out_var``, the
    database name in ``$name_var``. The script exits 3 when the config cannot be read."""
    if app not in CONFIG_FILES:
        raise ValueError(f"unknown application {app!r}")
    return "\n".join(
        [
            "command -v php >/dev/null 2>&1 || "
            '{ echo "maintkit: php is not installed: cannot read the application\'s config" >&2; exit 127; }',
            f'{name_var}=$(php {PHP_FLAGS} -- {app} {host_path(root)} "${out_var}" '
            + heredoc("MAINTKIT_PHP", DB_CONFIG_PHP),
            ") || exit 3",
        ]
    )


def fingerprint_command(cms: Cms, root: str) -> str:
    """A command printing ``KEY=VALUE`` lines that identify the application's code.

    ``composer_lock_sha256`` (Magento, PrestaShop 8+, any composer project) is what promotion
    compares; ``version`` is the human-readable release (Magento's product package from
    composer.lock, WordPress's ``$wp_version``, PrestaShop's ``AppKernel::VERSION``). A missing
    ``php`` only drops ``version``. The command fails (exit 2) when ROOT is not a folder.
    """
    if cms not in ("magento", "wordpress", "prestashop", "none"):
        raise ValueError(f"unknown cms {cms!r}")
    body = "\n".join(
        [
            f"root={host_path(root)}",
            '[ -d "$root" ] || { echo "maintkit: $root is not a folder" >&2; exit 2; }',
            f"echo cms={cms}",
            'if [ -f "$root/composer.lock" ]; then',
            '  sum=$(sha256sum < "$root/composer.lock") || exit 1',
            '  echo "composer_lock_sha256=${sum%% *}"',
            "fi",
            "if command -v php >/dev/null 2>&1; then",
            f'  php {PHP_FLAGS} -- {cms} "$root" ' + heredoc("MAINTKIT_PHP", VERSION_PHP),
            "fi",
        ]
    )
    return bash_command(body)


def parse_fingerprint(stdout: str) -> dict[str, str]:
    """Return the ``KEY=VALUE`` lines of :func:`fingerprint_command`'s output as a mapping."""
    return parse_pairs(stdout)
