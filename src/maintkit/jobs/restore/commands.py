"""The host commands of a restore: pure builders of shell text (and of the bytes sent on stdin).

Credentials travel exactly as for a snapshot (:mod:`maintkit.sources.database`): the defaults file
arrives as the first bytes of stdin, or is written by PHP from the application's config, is opened
on fd 3 and unlinked before the client starts; everything after those bytes on stdin is the
command's input (SQL text, or the compressed dump). Nothing secret is ever on a command line.

Files are extracted into a **sibling folder** of the root (``PARENT/.NAME.mkrestore.XXXXXX``: same
filesystem, so the swap is a rename) and swapped in by a second command, sent only once the control
node has proven the archive; a failed or refused extraction removes its folder and leaves the root
as it was. Every path from the inventory is quoted (``~/`` is the login user's home).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Literal

from maintkit.sources.compression import Compression
from maintkit.sources.database import CLIENT_FOR, DatabaseSource, _credentials_snippet, _tool_snippet
from maintkit.sources.script import bash_command, host_path

CLIENT_OPTIONS = "--batch --skip-column-names --default-character-set=utf8mb4"

#: lines of a mysqldump/mariadb-dump file that carry a DEFINER clause (views, triggers, events,
#: routines); anchored at the line start, so no data line (always ``INSERT INTO`` or ``(…``) matches
DEFINER_LINE = r"^(/\*!5[0-9]{4} (CREATE\*/ /\*!5[0-9]{4} )?|CREATE )DEFINER="
DEFINER_CLAUSE = r"DEFINER=`([^`]|``)*`@`([^`]|``)*`"

#: the file a drill writes into the root it restores (holding its run id): its cleanup resets only a
#: root that carries this run's marker
MARKER_FILE = ".maintkit-drill"

_DECOMPRESS = {"zstd": "zstd -q -d -c", "gzip": "gzip -d -c"}


def _client(src: DatabaseSource) -> str:
    return _tool_snippet("client", CLIENT_FOR[src.dump_tool], ("mariadb", "mysql"))


def _decompressor(compression: Compression) -> str:
    program = _DECOMPRESS[compression].split()[0]
    return (
        f"command -v {program} >/dev/null 2>&1 || "
        f'{{ echo "maintkit: {program} is not installed on this host: cannot decompress the snapshot" >&2; '
        "exit 127; }"
    )


def sql_command(src: DatabaseSource) -> tuple[str, bytes]:
    """Return ``(command, payload)``: run the SQL that follows ``payload`` on stdin, print the rows.

    The script sets ``@mk_db`` to the database name (known on the host only when it comes from the
    application's config) before the SQL, and reports it on stderr as ``maintkit:database=NAME``.
    """
    creds, payload = _credentials_snippet(src)
    body = "\n".join(
        [
            "set -o pipefail",
            creds,
            _client(src),
            "printf 'maintkit:database=%s\\n' \"$db\" >&2",
            "hex=$(printf '%s' \"$db\" | od -An -v -tx1 | tr -d ' \\n')",
            f'{{ printf "SET @mk_db = _utf8mb4 X\'%s\';\\n" "$hex"; cat; }} | '
            f'"$client" --defaults-file=/dev/fd/3 {CLIENT_OPTIONS}',
        ]
    )
    return bash_command(body), payload


def import_command(
    src: DatabaseSource, staging: str, compression: Compression, *, strip_definers: bool
) -> tuple[str, bytes]:
    """Return ``(command, payload)`` loading the compressed dump that follows ``payload`` on stdin
    into the staging database ``staging`` (created before, by :func:`sql_command`, so that a target
    that cannot be staged into fails before any stream starts).

    The dump is decompressed on the host: the compressed bytes are what crosses the network. With
    ``strip_definers`` the DEFINER clauses go (the objects then belong to the restoring user, which
    needs no SUPER/SET USER privilege); data lines cannot match the anchored pattern.
    """
    creds, payload = _credentials_snippet(src)
    stages = [_DECOMPRESS[compression]]
    if strip_definers:
        stages.append("sed -E " + shlex.quote(f"\\,{DEFINER_LINE},s,{DEFINER_CLAUSE},,"))
    stages.append(
        f'"$client" --defaults-file=/dev/fd/3 --batch --default-character-set=utf8mb4 '
        f"--max-allowed-packet=1G -- {shlex.quote(staging)}"
    )
    body = "\n".join(
        [
            "set -o pipefail",
            creds,
            _client(src),
            _decompressor(compression),
            " | ".join(stages),
        ]
    )
    return bash_command(body), payload


# -- files ------------------------------------------------------------------------------------------

_ROOT_LINES = [
    'case "$root" in */) root=${root%/};; esac',
    'parent=$(dirname -- "$root"); base=$(basename -- "$root")',
    'if [ -z "$base" ] || [ "$root" = / ] || [ "$root" = "$HOME" ] || [ "$base" = . ] || \\',
    '   [ "$base" = .. ]; then',
    '  echo "maintkit: refusing to replace $root" >&2; exit 2',
    "fi",
]

_SWAP_FUNCTION = """\
swap() {  # swap "$1" (live) with "$2" (new); the live one is removed once the new one is in place
  if [ -e "$1" ] || [ -L "$1" ]; then
    old="$(dirname -- "$1")/.$(basename -- "$1").mkold.$$"
    rm -rf -- "$old" && mv -T -- "$1" "$old" || return 1
    if ! mv -T -- "$2" "$1"; then mv -T -- "$old" "$1"; return 1; fi
    rm -rf -- "$old"
  else
    mkdir -p -- "$(dirname -- "$1")" && mv -T -- "$2" "$1"
  fi
}"""


def _keep_lines(keep: Sequence[str]) -> list[str]:
    """Copy each kept path of the live root into the new tree (replacing the snapshot's version)."""
    if not keep:
        return []
    return [
        f"for k in {' '.join(shlex.quote(k) for k in keep)}; do",
        '  if [ -e "$root/$k" ] || [ -L "$root/$k" ]; then',
        '    mkdir -p -- "$(dirname -- "$tmp/$k")" && rm -rf -- "$tmp/$k" &&',
        '      cp -a -- "$root/$k" "$tmp/$k" || exit 1',
        "    printf 'maintkit:kept=%s\\n' \"$k\" >&2",
        "  fi",
        "done",
    ]


#: an extracted tree without a ``./`` member takes the live root's mode (0755 when there is none)
_LIVE_ROOT_MODE = [
    'if [ -d "$root" ]; then chmod --reference="$root" -- "$tmp"; else chmod 755 -- "$tmp"; fi || exit 1'
]


def extract_command(root: str, compression: Compression, *, root_mode: Literal["tar", "live"] = "tar") -> str:
    """Extract the compressed tar on stdin into a new sibling folder of ``root``; print its path on
    stderr as ``maintkit:staging=PATH``. On any failure (or a kill) the folder is removed.

    ``root_mode``: the folder's own mode comes from the archive's ``./`` member (``tar``), or, for
    a tree without one (an engine's: restic keeps no metadata of the folder it ran in), from the
    live root (``live``; 0755 when there is none).

    Folders left by a restore that was SIGKILLed are swept first (the environment lock guarantees
    no other restore of this root is running).
    """
    body = "\n".join(
        [
            "set -o pipefail",
            f"root={host_path(root)}",
            *_ROOT_LINES,
            _decompressor(compression),
            'mkdir -p -- "$parent" || exit 1',
            'for stale in "$parent/.$base.mkrestore."*; do [ -e "$stale" ] && rm -rf -- "$stale"; done',
            'tmp=$(mktemp -d "$parent/.$base.mkrestore.XXXXXX") || exit 1',
            "printf 'maintkit:staging=%s\\n' \"$tmp\" >&2",
            "done=0",
            'trap \'[ "$done" = 1 ] || rm -rf -- "$tmp"\' EXIT',
            "trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 143' TERM",
            f'{_DECOMPRESS[compression]} | tar -C "$tmp" -x -f - || exit $?',
            *(_LIVE_ROOT_MODE if root_mode == "live" else []),
            "done=1",
        ]
    )
    return bash_command(body)


def _check_staging(staging: str) -> list[str]:
    return [
        f"tmp={shlex.quote(staging)}",
        'case "$tmp" in "$parent/.$base.mkrestore."*) ;; '
        '*) echo "maintkit: $tmp is not a restore folder of $root" >&2; exit 2;; esac',
        '[ -d "$tmp" ] || { echo "maintkit: the extracted files ($tmp) are gone" >&2; exit 1; }',
    ]


def prepare_command(root: str, staging: str, keep: Sequence[str], marker: str | None = None) -> str:
    """Before the files' commit: copy the ``keep`` paths of the live root into the extracted tree
    (so the copy's own config can be read back and proven *before* the swap), and, for a drill,
    write its ``marker`` (the run id) into :data:`MARKER_FILE`. Prints ``maintkit:kept=PATH`` lines."""
    lines = ["set -u", f"root={host_path(root)}", *_ROOT_LINES, *_check_staging(staging), *_keep_lines(keep)]
    if marker is not None:
        lines.append(f"printf '%s\\n' {shlex.quote(marker)} > \"$tmp/{MARKER_FILE}\" || exit 1")
    return bash_command("\n".join(lines))


def swap_command(root: str, staging: str, paths: Sequence[str], keep: Sequence[str]) -> str:
    """The files' commit: put the extracted tree (``staging``) in place of ``root`` (or, when the
    snapshot archived some ``paths`` only, each of those in place of the live one), after copying the
    ``keep`` paths of the live root into it. Each swap is two renames on one filesystem."""
    whole = list(paths) in ([], ["."])
    lines = [
        "set -u",
        f"root={host_path(root)}",
        *_ROOT_LINES,
        *_check_staging(staging),
        _SWAP_FUNCTION,
        *_keep_lines(keep),
    ]
    if whole:
        lines.append(
            'swap "$root" "$tmp" || { echo "maintkit: could not swap $tmp into $root" >&2; exit 1; }'
        )
    else:
        quoted = " ".join(shlex.quote(p) for p in paths)
        lines += [
            f"for p in {quoted}; do",
            '  [ -e "$tmp/$p" ] || [ -L "$tmp/$p" ] ||',
            '    { echo "maintkit: the archive holds no $p" >&2; exit 1; }',
            "done",
            f"for p in {quoted}; do",
            '  swap "$root/$p" "$tmp/$p" || { echo "maintkit: could not swap $p into $root" >&2; exit 1; }',
            "done",
            'rm -rf -- "$tmp"',
        ]
    return bash_command("\n".join(lines))


def sync_command(root: str, staging: str) -> str:
    """Flush the extracted tree (``staging``) to disk: ``sync -f`` (syncfs of the filesystem that
    holds it) once, instead of an fsync per file (coreutils 8.24 or later). An I/O error fails it:
    a tree that may not be on disk is never swapped in."""
    lines = [
        "set -u",
        f"root={host_path(root)}",
        *_ROOT_LINES,
        *_check_staging(staging),
        'sync -f -- "$tmp"',
    ]
    return bash_command("\n".join(lines))


def discard_command(root: str, staging: str) -> str:
    """Remove an extracted tree that will not be swapped in (another part of the restore failed)."""
    lines = ["set -u", f"root={host_path(root)}", *_ROOT_LINES, *_check_staging(staging), 'rm -rf -- "$tmp"']
    return bash_command("\n".join(lines))


def sweep_command(root: str) -> str:
    """Remove every extraction folder of ``root`` (``PARENT/.NAME.mkrestore.*``): after a killed
    extraction whose folder was never announced. Safe only under the environment's lock, which
    guarantees no other restore of this root is extracting."""
    lines = [
        "set -u",
        f"root={host_path(root)}",
        *_ROOT_LINES,
        'for stale in "$parent/.$base.mkrestore."*; do [ -e "$stale" ] && rm -rf -- "$stale"; done',
        "exit 0",
    ]
    return bash_command("\n".join(lines))


def reset_command(root: str, keep: Sequence[str], marker: str | None = None) -> str:
    """A drill's cleanup of its files: ``root`` keeps only the ``keep`` paths (or goes entirely).

    With ``marker`` (the drill's run id) only a root whose :data:`MARKER_FILE` holds it is touched:
    anything else was not restored by this drill (``maintkit:files=unmarked``, nothing changed).
    Prints ``maintkit:files=reset`` or ``maintkit:files=removed`` (or nothing when absent)."""
    check = []
    if marker is not None:
        check = [
            '[ -e "$root" ] || [ -L "$root" ] || exit 0',
            f'if [ "$(cat -- "$root/{MARKER_FILE}" 2>/dev/null)" != {shlex.quote(marker)} ]; then',
            "  echo 'maintkit:files=unmarked' >&2; exit 0",
            "fi",
        ]
    lines = [
        "set -u",
        f"root={host_path(root)}",
        *_ROOT_LINES,
        *check,
        'for stale in "$parent/.$base.mkrestore."* "$parent/.$base.mkold."*; do '
        '[ -e "$stale" ] && rm -rf -- "$stale"; done',
        '[ -e "$root" ] || [ -L "$root" ] || exit 0',
        _SWAP_FUNCTION,
        'tmp=$(mktemp -d "$parent/.$base.mkrestore.XXXXXX") || exit 1',
        *_keep_lines(keep),
        'if [ -n "$(ls -A -- "$tmp")" ]; then',
        '  swap "$root" "$tmp" || exit 1; echo \'maintkit:files=reset\' >&2',
        "else",
        '  rm -rf -- "$root" "$tmp" || exit 1; echo \'maintkit:files=removed\' >&2',
        "fi",
    ]
    return bash_command("\n".join(lines))
