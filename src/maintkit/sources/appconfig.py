"""Reading an application's own configuration on the server: database settings and a fingerprint.

Why on the server, with PHP: the shop's config files are PHP (``app/etc/env.php``,
``wp-config.php``, ``app/config/parameters.php``), often computed (``getenv()``, includes), so the
only faithful reader is PHP itself, run as the login user. The password then goes straight from
the config into a 0600 MySQL defaults file: it never travels to the control node, never enters a
command line, and never reaches the journal.

The PHP programs are fed to ``php`` on stdin from a quoted here-document, so they appear on no
command line either (only ``php -- CMS ROOT FILE`` does). Each CMS's part of them (which file,
which keys) is its profile's (:mod:`maintkit.cms`); this module holds the shared frame and the
command builders.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from maintkit.cms.base import CmsName, ConfigCms, Profile, check, get, names
from maintkit.sources.script import bash_command, heredoc, host_path, parse_pairs

PHP_FLAGS = "-d display_errors=stderr -d log_errors=0 -d error_reporting=E_ALL"

#: where a frame below takes one ``case`` per CMS profile
CASES = "/*MAINTKIT_CASES*/\n"


def _with_cases(frame: str, part: Callable[[Profile], str]) -> str:
    """``frame`` with a ``case 'NAME':`` for every registered profile that has a ``part``."""
    cases = []
    for name in names():
        body = part(get(name))
        if body:
            cases.append(f"case '{name}':\n{body.strip(chr(10))}\n    break;\n")
    return frame.replace(CASES, "".join(cases))


def _read_part(profile: Profile) -> str:
    return profile.config.read_php if profile.config else ""


def _write_part(profile: Profile) -> str:
    return profile.config.write_php if profile.config else ""


def db_config_php() -> str:
    """The PHP program that reads a CMS's database settings (:data:`DB_CONFIG_FRAME` + profiles)."""
    return _with_cases(DB_CONFIG_FRAME, _read_part)


def version_php() -> str:
    """The PHP program that prints a CMS's version (:data:`VERSION_FRAME` + profiles)."""
    return _with_cases(VERSION_FRAME, lambda profile: profile.version_php)


def write_db_config_php() -> str:
    """The PHP program that points a CMS's config at other database settings."""
    return _with_cases(WRITE_DB_CONFIG_FRAME, _write_part)


#: Read the database settings of APP under ROOT, write a MySQL defaults file to OUT, print the
#: database name on stdout. Exit 3 with a ``maintkit: ...`` line on stderr when they are missing.
DB_CONFIG_FRAME = r"""<?php
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
/*MAINTKIT_CASES*/
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
VERSION_FRAME = r"""<?php
[$app, $root] = [$argv[1], rtrim($argv[2], '/')];
function mk_out($k, $v) { if (is_string($v) && $v !== '') { echo "$k=", strtr($v, "\r\n", '  '), "\n"; } }
switch ($app) {
/*MAINTKIT_CASES*/
}
"""


def read_db_config_snippet(app: ConfigCms, root: str, out_var: str = "f", name_var: str = "db") -> str:
    """Bash lines that run :func:`db_config_php`: the defaults file lands in ``$out_var``, the
    database name in ``$name_var``. The script exits 3 when the config cannot be read."""
    check(app, "config")
    return "\n".join(
        [
            "command -v php >/dev/null 2>&1 || "
            '{ echo "maintkit: php is not installed: cannot read the application\'s config" >&2; exit 127; }',
            f'{name_var}=$(php {PHP_FLAGS} -- {app} {host_path(root)} "${out_var}" '
            + heredoc("MAINTKIT_PHP", db_config_php()),
            ") || exit 3",
        ]
    )


def fingerprint_command(cms: CmsName, root: str) -> str:
    """A command printing ``KEY=VALUE`` lines that identify the application's code.

    ``composer_lock_sha256`` (Magento, PrestaShop 8+, any composer project) is what promotion
    compares; ``version`` is the human-readable release (Magento's product package from
    composer.lock, WordPress's ``$wp_version``, PrestaShop's ``AppKernel::VERSION``). A missing
    ``php`` only drops ``version``. The command fails (exit 2) when ROOT is not a folder.
    """
    check(cms)
    body = "\n".join(
        [
            f"root={host_path(root)}",
            '[ -d "$root" ] || { echo "maintkit: $root is not a folder" >&2; exit 2; }',
            f"echo cms={cms}",
            'if [ -f "$root/composer.lock" ]; then',
            '  sum=$(sha256sum < "$root/composer.lock") || exit 1',
            '  echo "composer_lock_sha256=${sum%% *}"',
            "fi",
            # no CMS: the version is read from composer.lock only, so no PHP start without one
            # (~20 ms of CPU a night for each of a fleet's plain sites)
            ('if [ -f "$root/composer.lock" ] && ' if cms == "none" else "if ")
            + "command -v php >/dev/null 2>&1; then",
            f'  php {PHP_FLAGS} -- {cms} "$root" ' + heredoc("MAINTKIT_PHP", version_php()),
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
WRITE_DB_CONFIG_FRAME = r"""<?php
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
/*MAINTKIT_CASES*/
default:
    mk_fail("unknown application '$app'");
}
echo "written=$file\n";
"""


def config_host(app: ConfigCms, host: str, port: int, socket: str | None) -> tuple[str, str]:
    """How ``app``'s config spells a database server: ``(host, port)`` (port "" when part of host).

    Its profile says (:class:`maintkit.cms.base.AppConfig`): ``host:port`` in one value or a
    separate port (PrestaShop); a socket as ``/path`` (Magento) or ``localhost:/path``;
    ``localhost`` alone is the default socket."""
    config = get(check(app, "config")).config
    assert config is not None
    if socket:
        return (socket if config.socket == "path" else f"localhost:{socket}"), ""
    if host == "localhost":
        return "localhost", ""
    spelled = f"[{host}]" if ":" in host else host
    if config.separate_port:
        return spelled, str(port)
    return f"{spelled}:{port}", ""


def write_db_config_command(app: ConfigCms, root: str, settings: dict[str, str]) -> tuple[str, bytes]:
    """Return ``(command, stdin)`` pointing APP's config under ROOT at ``settings`` (``host``,
    ``port``, ``name``, ``user``, ``password``; see :func:`config_host`).

    The settings (a password among them) travel as JSON on stdin into a 0600 ``mktemp`` file that
    PHP reads and deletes (a trap removes it if anything dies first): never on a command line.
    """
    check(app, "config")
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
            + heredoc("MAINTKIT_PHP", write_db_config_php()),
        ]
    )
    return bash_command(body), payload
