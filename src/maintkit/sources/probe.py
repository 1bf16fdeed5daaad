"""One cheap command that tells what a host can do before a snapshot starts.

Why: a snapshot should fail *before* it opens uploads when the host lacks a dump program, and a
caller that names artifacts up front (``db.sql.zst`` or ``db.sql.gz``) must know the compression
before the first byte arrives. One round trip answers both.
"""

from __future__ import annotations

from dataclasses import dataclass

from maintkit.sources.compression import Compression
from maintkit.sources.script import bash_command, parse_pairs

PROBE_BODY = """\
first() { for p in "$@"; do if command -v "$p" >/dev/null 2>&1; then echo "$p"; return; fi; done; }
echo "dump_tool=$(first mariadb-dump mysqldump)"
echo "client_tool=$(first mariadb mysql)"
echo "compression=$(if command -v zstd >/dev/null 2>&1; then echo zstd; else echo gzip; fi)"
echo "gzip=$(if command -v gzip >/dev/null 2>&1; then echo yes; else echo no; fi)"
{php}
if tar --version 2>/dev/null | head -n 1 | grep -q 'GNU tar'; then echo gnu_tar=yes; else echo gnu_tar=no; fi
exit 0"""


@dataclass(frozen=True)
class HostTools:
    """What :func:`probe_command` found on a host ("" where a tool is missing)."""

    dump_tool: str
    client_tool: str
    compression: Compression
    php: str
    gnu_tar: bool
    gzip: bool = True

    def problems(
        self,
        *,
        database: bool,
        files: bool,
        app_config: bool,
        compression: str = "auto",
        count_rows: bool = False,
    ) -> list[str]:
        """Human-readable reasons a snapshot of this kind cannot run on the host, each naming the
        missing program (a clear error before any upload opens beats a ``command not found`` in the
        middle of a stream)."""
        out = []
        if database and not self.dump_tool:
            out.append("neither mariadb-dump nor mysqldump is installed")
        if database and count_rows and not self.client_tool:
            out.append(
                "neither the mariadb nor the mysql client is installed (count_rows needs one; "
                "or set count_rows: false)"
            )
        if compression == "zstd" and self.compression != "zstd":
            out.append("zstd is not installed (compression: zstd; install it, or use compression: auto)")
        elif compression == "gzip" and not self.gzip:
            out.append("gzip is not installed (compression: gzip)")
        elif compression == "auto" and self.compression != "zstd" and not self.gzip:
            out.append("neither zstd nor gzip is installed (the dump and the archive are compressed)")
        if app_config and not self.php:
            out.append("php is not installed (needed to read the application's config)")
        if files and not self.gnu_tar:
            out.append("GNU tar is not installed")
        return out


PHP_PROBE = "echo \"php=$(php -r 'echo PHP_VERSION;' 2>/dev/null)\""


def probe_command(*, php: bool = True) -> str:
    """The command; its stdout is ``KEY=VALUE`` lines for :func:`parse_probe`.

    ``php=False`` leaves PHP out: starting it is most of the probe's time (~50 ms), and only a
    snapshot that reads credentials from the application's config needs it.
    """
    return bash_command(PROBE_BODY.replace("{php}", PHP_PROBE if php else ""))


def parse_probe(stdout: str) -> HostTools:
    values = parse_pairs(stdout)
    compression = values.get("compression", "gzip")
    return HostTools(
        dump_tool=values.get("dump_tool", ""),
        client_tool=values.get("client_tool", ""),
        compression="zstd" if compression == "zstd" else "gzip",
        php=values.get("php", ""),
        gnu_tar=values.get("gnu_tar") == "yes",
        gzip=values.get("gzip", "yes") == "yes",
    )
