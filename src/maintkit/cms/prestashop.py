"""PrestaShop 1.7/8: ``app/config/parameters.php``, the PS_SHOP_ENABLE setting, releases (composer).

URL rewriting of a restored copy is not supported: PrestaShop keeps its domain in
``PREFIX_shop_url`` and ``PS_SHOP_DOMAIN*`` settings, which maintkit does not rewrite yet.
"""

from __future__ import annotations

from maintkit.cms.base import AppConfig, MaintenanceSetting, Profile, ReleaseLayout, register

READ_PHP = r"""
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
"""

WRITE_PHP = r"""
    $file = "$root/app/config/parameters.php";
    $c = mk_include($file);
    if (!is_array($c) || !is_array($c['parameters'] ?? null)) { mk_fail("$file has no parameters"); }
    $c['parameters'] = array_merge($c['parameters'], [
        'database_host' => $s['host'], 'database_port' => $s['port'], 'database_name' => $s['name'],
        'database_user' => $s['user'], 'database_password' => $s['password']]);
    mk_write($file, "<?php return " . var_export($c, true) . ";\n");
"""

VERSION_PHP = r"""
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
"""

PROFILE = register(
    Profile(
        name="prestashop",
        title="PrestaShop 1.7 / 8",
        excludes=("var/cache",),
        config=AppConfig(
            "app/config/parameters.php", READ_PHP, WRITE_PHP, socket="localhost:path", separate_port=True
        ),
        version_php=VERSION_PHP,
        release=ReleaseLayout(
            shared=("app/config/parameters.php", "img", "upload", "download", "var/logs"),
            copy=("vendor", "composer.json", "composer.lock", "app/config/config.php"),
            clear=("var/cache",),
        ),
        maintenance=MaintenanceSetting(
            status_sql="SELECT value FROM {prefix}configuration WHERE name = 'PS_SHOP_ENABLE'",
            on_sql="UPDATE {prefix}configuration SET value = '0' WHERE name = 'PS_SHOP_ENABLE'",
            off_sql="UPDATE {prefix}configuration SET value = '1' WHERE name = 'PS_SHOP_ENABLE'",
            active_value="0",
            default_prefix="ps_",
        ),
        url_rewrite=None,
        audit="composer",
        rank=30,
        update_playbook="update-prestashop",
        promote_playbook="promote-prestashop",
    )
)
