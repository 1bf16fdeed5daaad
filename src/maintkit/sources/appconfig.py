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

import json
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


#: Point the application's config under ROOT at other database settings (read as JSON from the
#: 0600 file SETTINGS, which is deleted first). Magento's and PrestaShop's configs are arrays:
#: loaded, changed, written back with var_export. wp-config.php is code: the value expression of
#: each ``define('DB_…', …)`` is replaced (found with PHP's own tokenizer, exactly once each).
#: Written to a temporary file and renamed over the old one, mode kept. Exit 3 with a
#: ``maintkit: …`` line when the file cannot be changed safely.
WRITE_DB_CONFIG_PHP = r"""<?php
function mk_fail($m) { file_put_contents('php://stderr', "maintkit: $m\n"); exit(3); }
function mk_include($file) {
    if (!is_file($file) || !is_readable($file)) { mk_fail("cannot read $file"); }
    ob_start();
    try { $r = include $file; } finally { ob_end_clean(); }
    return $r;
}
function mk_write($file, $text) {
    $tmp = "$file.mkwrite";
    $mode = fileperms($file) & 0777;
    if (file_put_contents($tmp, $text) !== strlen($text)) { @unlink($tmp); mk_fail("cannot write $file"); }
    chmod($tmp, $mode);
    if (!rename($tmp, $file)) { @unlink($tmp); mk_fail("cannot replace $file"); }
}
function mk_skip($tokens, $i) {  // the index of the next token that is not whitespace or a comment
    while (isset($tokens[$i]) && is_array($tokens[$i])
           && in_array($tokens[$i][0], [T_WHITESPACE, T_COMMENT, T_DOC_COMMENT], true)) { $i++; }
    return $i;
}
function mk_text($t) { return is_array($t) ? $t[1] : $t; }
function mk_defines($code, $values) {
    $tokens = token_get_all($code); $n = count($tokens); $out = ''; $found = [];
    for ($i = 0; $i < $n; $i++) {
        $t = $tokens[$i];
        if (is_array($t) && $t[0] === T_STRING && strtolower($t[1]) === 'define') {
            $open = mk_skip($tokens, $i + 1);
            $name = mk_skip($tokens, $open + 1);
            $comma = mk_skip($tokens, $name + 1);
            if (($tokens[$open] ?? null) === '(' && is_array($tokens[$name] ?? null)
                && $tokens[$name][0] === T_CONSTANT_ENCAPSED_STRING && ($tokens[$comma] ?? null) === ',') {
                $constant = substr($tokens[$name][1], 1, -1);
                if (array_key_exists($constant, $values)) {
                    $depth = 0;
                    for ($e = $comma + 1; $e < $n; $e++) {
                        $x = mk_text($tokens[$e]);
                        if ($x === '(' || $x === '[' || $x === '{') { $depth++; }
                        elseif ($x === ')' || $x === ']' || $x === '}') { if ($depth-- === 0) { break; } }
                        elseif ($x === ',' && $depth === 0) { break; }
                    }
                    if ($e >= $n) { mk_fail("cannot parse the define of $constant"); }
                    for ($k = $i; $k <= $comma; $k++) { $out .= mk_text($tokens[$k]); }
                    $out .= ' ' . var_export($values[$constant], true);
                    $found[$constant] = ($found[$constant] ?? 0) + 1;
                    $i = $e - 1;
                    continue;
                }
            }
        }
        $out .= mk_text($t);
    }
    foreach ($values as $k => $v) {
        $times = $found[$k] ?? 0;
        if ($times !== 1) { mk_fail("defines $k $times times: cannot point it at another database safely"); }
    }
    return $out;
}

[$app, $root, $in] = [$argv[1], rtrim($argv[2], '/'), $argv[3]];
$s = json_decode((string)file_get_contents($in), true);
@unlink($in);
if (!is_array($s)) { mk_fail('the database settings did not arrive'); }
switch ($app) {
case 'magento':
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
    break;
case 'prestashop':
    $file = "$root/app/config/parameters.php";
    $c = mk_include($file);
    if (!is_array($c) || !is_array($c['parameters'] ?? null)) { mk_fail("$file has no parameters"); }
    $c['parameters'] = array_merge($c['parameters'], [
        'database_host' => $s['host'], 'database_port' => $s['port'], 'database_name' => $s['name'],
        'database_user' => $s['user'], 'database_password' => $s['password']]);
    mk_write($file, "<?php return " . var_export($c, true) . ";\n");
    break;
case 'wordpress':
    $file = "$root/wp-config.php";
    if (!is_file($file) || !is_readable($file)) { mk_fail("cannot read $file"); }
    $values = ['DB_NAME' => $s['name'], 'DB_USER' => $s['user'], 'DB_PASSWORD' => $s['password'],
               'DB_HOST' => $s['host']];
    mk_write($file, mk_defines(file_get_contents($file), $values));
    break;
default:
    mk_fail("unknown application '$app'");
}
echo "written=$file\n";
"""


def config_host(app: App, host: str, port: int, socket: str | None) -> tuple[str, str]:
    """How ``app``'s config spells a database server: ``(host, port)`` (port "" when part of host).

    Magento and WordPress take ``host:port`` in one value, PrestaShop a separate port; a socket is
    ``/path`` for Magento, ``localhost:/path`` for the others; ``localhost`` alone is the default
    socket."""
    if socket:
        return (socket if app == "magento" else f"localhost:{socket}"), ""
    if host == "localhost":
        return "localhost", ""
    spelled = f"[{host}]" if ":" in host else host
    if app == "prestashop":
        return spelled, str(port)
    return f"{spelled}:{port}", ""


def write_db_config_command(app: App, root: str, settings: dict[str, str]) -> tuple[str, bytes]:
    """Return ``(command, stdin)`` pointing APP's config under ROOT at ``settings`` (``host``,
    ``port``, ``name``, ``user``, ``password``; see :func:`config_host`).

    The settings (a password among them) travel as JSON on stdin into a 0600 ``mktemp`` file that
    PHP reads and deletes (a trap removes it if anything dies first): never on a command line.
    """
    if app not in CONFIG_FILES:
        raise ValueError(f"unknown application {app!r}")
    payload = json.dumps(settings).encode("utf-8")
    body = "\n".join(
        [
            "umask 077",
            'f=$(mktemp) || { echo "maintkit: mktemp failed" >&2; exit 1; }',
            "trap 'rm -f \"$f\"' EXIT",
            "command -v php >/dev/null 2>&1 || { echo "
            '"maintkit: php is not installed: cannot write the application\'s config" >&2; exit 127; }',
            f'head -c {len(payload)} > "$f"',
            f'[ "$(wc -c < "$f")" -eq {len(payload)} ] || '
            '{ echo "maintkit: the database settings did not arrive on stdin" >&2; exit 1; }',
            f'php {PHP_FLAGS} -- {app} {host_path(root)} "$f" '
            + heredoc("MAINTKIT_PHP", WRITE_DB_CONFIG_PHP),
        ]
    )
    return bash_command(body), payload
