"""Snapshot sources without a server: models, quoting, option-file escaping, parsers, the watcher.

What must hold here is what a reviewer cannot see by eye: every hostile value stays one shell word
(or one option-file value), the password stays out of every command, and the trailer watcher
decides correctly whatever the chunking of the stream.
"""

from __future__ import annotations

import gzip
import io
import random
import re
import shlex
import subprocess

import pytest
import zstandard
from pydantic import ValidationError

from maintkit.cms import base as profiles
from maintkit.sources import (
    DatabaseSource,
    DumpTrailerWatcher,
    FilesSource,
    StreamDecompressor,
    check_dump_trailer,
    defaults_file,
    detect_compression,
    dump_command,
    fingerprint_command,
    option_value,
    parse_fingerprint,
    parse_markers,
    parse_probe,
    parse_tables,
    probe_command,
    strip_markers,
    tables_command,
    tar_command,
)
from maintkit.sources.compression import compressor_snippet
from maintkit.sources.files import exclude_options
from maintkit.sources.script import DELIMITER, bash_command, host_path

HOSTILE = "pa$$ w'rd;\"x`id`#\\ ü $(true) \n\t"


def body_of(command: str) -> str:
    """The bash script inside a :func:`bash_command` wrapper."""
    match = re.fullmatch(rf"exec bash -c \"\$\(cat <<'{DELIMITER}'\n(.*)\n{DELIMITER}\n\)\"", command, re.S)
    assert match, command
    return match.group(1)


def run_bash_syntax_check(command: str) -> None:
    """``bash -n``: the generated script parses (without running anything)."""
    result = subprocess.run(["bash", "-n", "-c", body_of(command)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# -- models ------------------------------------------------------------------------------------------


def test_explicit_source_and_its_secret_password() -> None:
    src = DatabaseSource(name="shop", user="u", password=HOSTILE)
    assert src.host == "localhost" and src.port == 3306 and src.dump_tool == "auto"
    assert HOSTILE not in repr(src) and HOSTILE not in str(src.model_dump())
    assert HOSTILE not in src.describe()


def test_from_source_uses_the_from_key() -> None:
    src = DatabaseSource.model_validate({"from": "magento", "root": "/var/www/shop"})
    assert src.from_ == "magento"
    assert src.describe() == "magento config under /var/www/shop"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"from": "magento"}, "needs 'root'"),
        ({"from": "magento", "root": "/x", "password": "p"}, "either 'from' or explicit"),
        ({"name": "shop"}, "missing user"),
        ({"user": "u"}, "missing name"),
        ({"name": "shop", "user": "u", "root": "/x"}, "only used with 'from'"),
        ({"name": "shop", "user": "u", "passwd": "p"}, "Extra inputs are not permitted"),
        ({"from": "drupal", "root": "/x"}, "Input should be"),
        ({"name": "shop", "user": "u", "port": 0}, "greater than or equal to 1"),
        ({"name": "shop", "user": "u", "password": "a\0b"}, "NUL"),
        ({"name": "shop", "user": "u", "dump_tool": "pg_dump"}, "Input should be"),
    ],
)
def test_invalid_database_sources(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        DatabaseSource.model_validate(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"root": ""}, "non-empty"),
        ({"root": "/x", "paths": ["/etc"]}, "must be relative"),
        ({"root": "/x", "paths": ["a/../../b"]}, "leaves the root"),
        ({"root": "/x", "paths": []}, "may not be empty"),
        ({"root": "/x", "exclude": ["/"]}, "invalid exclude"),
        ({"root": "/x", "cms": "joomla"}, "Input should be"),
        ({"root": "/x", "excludes": []}, "Extra inputs"),
    ],
)
def test_invalid_files_sources(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        FilesSource.model_validate(data)


def test_files_source_normalizes_paths() -> None:
    src = FilesSource(root="/x", paths=["./app/", "pub//media", "."])
    assert src.paths == ["app", "pub/media", "."]


# -- option files ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", '"plain"'),
        ("", '""'),
        (" spaced ", '" spaced "'),
        ("a#b;c", '"a#b;c"'),
        ('q"uote', '"q\\"uote"'),
        ("apo's", '"apo\\\'s"'),
        ("back\\slash", '"back\\\\slash"'),
        ("new\nline\r\ttab\b", '"new\\nline\\r\\ttab\\b"'),
        ("ünï 😀", '"ünï 😀"'),
    ],
)
def test_option_value_escaping(value: str, expected: str) -> None:
    assert option_value(value) == expected


def test_option_value_rejects_nul() -> None:
    with pytest.raises(ValueError, match="NUL"):
        option_value("a\0b")


def test_defaults_file_holds_every_setting() -> None:
    src = DatabaseSource(
        name="shop", user="o'neil", password=HOSTILE, host="db.internal", port=3307, socket="/s"
    )
    text = defaults_file(src).decode()
    assert text == (
        "[client]\n"
        'user="o\\\'neil"\n'
        f"password={option_value(HOSTILE)}\n"
        'host="db.internal"\n'
        "port=3307\n"
        'socket="/s"\n'
    )
    assert "\n" not in option_value(HOSTILE)  # one line per setting, whatever the password holds


def test_defaults_file_needs_an_explicit_source() -> None:
    with pytest.raises(ValueError, match="explicit"):
        defaults_file(DatabaseSource.model_validate({"from": "wordpress", "root": "/w"}))


# -- command builders ---------------------------------------------------------------------------------


def test_dump_command_keeps_the_password_on_stdin_only() -> None:
    src = DatabaseSource(name="shop", user="u", password=HOSTILE)
    command, stdin = dump_command(src)
    assert HOSTILE not in command
    for fragment in ("pa$$", "w'rd", "`id`"):
        assert fragment not in command
    assert stdin == defaults_file(src)
    assert f'head -c {len(stdin)} > "$f"' in command
    run_bash_syntax_check(command)


def test_dump_command_options_and_order() -> None:
    command, _ = dump_command(DatabaseSource(name="shop", user="u"))
    body = body_of(command)
    dump_line = next(line for line in body.splitlines() if line.startswith('"$dump"'))
    words = shlex.split(dump_line.split("|")[0])
    assert words[1] == "--defaults-file=/dev/fd/3"  # must be the first option
    for option in ("--single-transaction", "--quick", "--routines", "--triggers", "--events", "--hex-blob"):
        assert option in words
    assert "--default-character-set=utf8mb4" in words
    assert words[-2:] == ["--", "$db"]
    assert "set -o pipefail" in body
    assert body.index('rm -f "$f"') < body.index(dump_line)  # unlinked before the dump runs
    assert "--databases" not in body  # restorable into any database


def test_a_hostile_database_name_is_one_shell_word() -> None:
    name = "shop'; rm -rf / #"
    command, _ = dump_command(DatabaseSource(name=name, user="u"))
    line = next(line for line in body_of(command).splitlines() if line.startswith("db="))
    assert shlex.split(line[3:]) == [name]


@pytest.mark.parametrize(("tool", "first"), [("mysqldump", "mysqldump"), ("mariadb-dump", "mariadb-dump")])
def test_a_forced_dump_tool_is_the_only_candidate(tool: str, first: str) -> None:
    command, _ = dump_command(DatabaseSource(name="d", user="u", dump_tool=tool))  # type: ignore[arg-type]
    assert f"command -v {first} " in command
    other = {"mysqldump": "mariadb-dump", "mariadb-dump": "mysqldump"}[tool]
    assert f"command -v {other} " not in command


def test_from_sources_read_the_config_with_php_and_send_nothing() -> None:
    src = DatabaseSource.model_validate({"from": "wordpress", "root": "/var/www/it's mine"})
    command, stdin = dump_command(src)
    assert stdin == b""
    body = body_of(command)
    php_line = next(line for line in body.splitlines() if line.startswith("db=$(php"))
    words = shlex.split(php_line.split("<<")[0][len("db=$(") :])
    assert words[words.index("--") + 1 :] == ["wordpress", "/var/www/it's mine", "$f"]
    assert "<'MAINTKIT_PHP'" in php_line
    run_bash_syntax_check(command)


@pytest.mark.parametrize("compression", ["auto", "zstd", "gzip"])
def test_every_generated_script_parses(compression: str) -> None:
    explicit = DatabaseSource(name="d", user="u", password=HOSTILE)
    from_app = DatabaseSource.model_validate({"from": "prestashop", "root": "~/shop"})
    for src in (explicit, from_app):
        run_bash_syntax_check(dump_command(src, compression)[0])  # type: ignore[arg-type]
        run_bash_syntax_check(tables_command(src)[0])
    run_bash_syntax_check(tar_command(FilesSource(root="/x", cms="magento"), compression))  # type: ignore[arg-type]
    for cms in ("magento", "wordpress", "prestashop", "none"):
        run_bash_syntax_check(fingerprint_command(cms, "/var/www/x y"))
    run_bash_syntax_check(probe_command())
    run_bash_syntax_check(probe_command(php=False))


def test_compressor_snippet_reports_and_refuses_unknown_values() -> None:
    auto = compressor_snippet("auto")
    assert "command -v zstd" in auto and "gzip -c" in auto and "maintkit:compression=" in auto
    forced = compressor_snippet("gzip")
    assert "comp=gzip" in forced and "exit 127" in forced
    with pytest.raises(ValueError):
        compressor_snippet("xz")  # type: ignore[arg-type]


def test_bash_command_refuses_a_body_that_would_end_the_here_document() -> None:
    with pytest.raises(ValueError):
        bash_command(f"echo hi\n{DELIMITER}\nrm -rf /")


@pytest.mark.parametrize(
    ("path", "quoted"),
    [
        ("/var/www/shop", "/var/www/shop"),
        ("/var/www/it's", "'/var/www/it'\"'\"'s'"),
        ("~", '"$HOME"'),
        ("~/", '"$HOME"/'),
        ("~/www/my shop", "\"$HOME\"/'www/my shop'"),
        ("~user/x", "'~user/x'"),
    ],
)
def test_host_path(path: str, quoted: str) -> None:
    assert host_path(path) == quoted


# -- tar ----------------------------------------------------------------------------------------------


def tar_words(command: str) -> list[str]:
    """The words of the tar invocation (a quoted path may span lines)."""
    match = re.search(r'^(tar .*?) \| "\$\{zc\[@\]\}"$', body_of(command), re.S | re.M)
    assert match, command
    return shlex.split(match.group(1))


def test_tar_command_quotes_every_value() -> None:
    hostile = ["it's here", "$(rm -rf ~)", "-rf", "new\nline", "*"]
    src = FilesSource(root="/srv/shop 'a'", paths=hostile, exclude=["*.log", "var/x y/*"])
    command = tar_command(src)
    words = tar_words(command)
    assert words[:3] == ["tar", "-C", "$tar_root"]
    assert words[words.index("--") + 1 :] == ["it's here", "$(rm -rf ~)", "./-rf", "new\nline", "*"]
    root_line = next(line for line in body_of(command).splitlines() if line.startswith("tar_root="))
    assert shlex.split(root_line[len("tar_root=") :]) == ["/srv/shop 'a'"]
    run_bash_syntax_check(command)


def test_exclude_options_anchor_patterns_with_a_slash() -> None:
    opts = exclude_options(["*.log", "var/cache/", "/pub/static", "./media/tmp", ".git"])
    anchored = opts[: opts.index("--no-anchored")]
    floating = opts[opts.index("--no-anchored") :]
    assert anchored == [
        "--anchored",
        "--no-wildcards-match-slash",
        "--exclude=var/cache",
        "--exclude=./var/cache",
        "--exclude=pub/static",
        "--exclude=./pub/static",
        "--exclude=media/tmp",
        "--exclude=./media/tmp",
    ]
    assert floating == ["--no-anchored", "--wildcards-match-slash", "--exclude=*.log", "--exclude=.git"]


def test_cms_excludes_are_added_after_the_users() -> None:
    src = FilesSource(root="/x", cms="wordpress", exclude=["*.bak"])
    assert src.all_excludes() == ["*.bak", "wp-content/cache"]
    words = tar_words(tar_command(src))
    assert "--exclude=wp-content/cache" in words and "--exclude=./wp-content/cache" in words
    assert "var/cache" in profiles.get("magento").excludes
    assert "var/cache" in profiles.get("prestashop").excludes
    assert not any(p.endswith(".htaccess") for p in profiles.get("magento").excludes)


def test_tar_status_handling() -> None:
    body = body_of(tar_command(FilesSource(root="/x")))
    assert 'st=("${PIPESTATUS[@]}")' in body
    assert "maintkit:warning=files-changed" in body


# -- markers, listings, probes -----------------------------------------------------------------------


def test_markers_are_parsed_and_stripped() -> None:
    stderr = (
        "maintkit:compression=zstd\nmaintkit:database=shop\nmariadb-dump: Got error\nmaintkit:warning=x\n"
    )
    assert parse_markers(stderr) == {"compression": "zstd", "database": "shop", "warning": "x"}
    assert strip_markers(stderr) == "mariadb-dump: Got error\n"


def test_parse_tables() -> None:
    out = "#database\tshop\ncatalog_product_entity\t2000\nweird\\ttab\\\\name\t3\nempty\t0\n"
    listing = parse_tables(out)
    assert listing.database == "shop"
    assert listing.tables == {"catalog_product_entity": 2000, "weird\ttab\\name": 3, "empty": 0}
    assert listing.as_dict() == {"database": "shop", "tables": listing.tables}
    assert parse_tables("#database\tempty_db\n").tables == {}


@pytest.mark.parametrize("bad", ["", "t\t1\n", "#database\tshop\nt\tmany\n", "#database\tshop\nnocount\n"])
def test_parse_tables_refuses_unexpected_output(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_tables(bad)


def test_parse_fingerprint_and_probe() -> None:
    assert parse_fingerprint("cms=magento\nversion=2.4.7\nnoise line\ncomposer_lock_sha256=ab\n") == {
        "cms": "magento",
        "version": "2.4.7",
        "composer_lock_sha256": "ab",
    }
    tools = parse_probe("dump_tool=\nclient_tool=mysql\ncompression=gzip\nphp=\ngnu_tar=no\n")
    assert tools.compression == "gzip" and not tools.gnu_tar
    assert tools.problems(database=True, files=True, app_config=True) == [
        "neither mariadb-dump nor mysqldump is installed",
        "php is not installed (needed to read the application's config)",
        "GNU tar is not installed",
    ]


# -- decompression and the trailer ----------------------------------------------------------------------

DUMP = (
    b"-- MariaDB dump 10.19\n--\n"
    b"DROP TABLE IF EXISTS `a``b`;\nCREATE TABLE `a``b` (\n  `x` int\n);\n"
    b"INSERT INTO `a``b` VALUES (1),(2);\n"
    b"/*!50001 CREATE VIEW `v` AS SELECT 1 AS `x` */;\n"
    b"CREATE TABLE `caf\xc3\xa9` (`y` blob);\nINSERT INTO `caf\xc3\xa9` VALUES (0x00FF);\n"
    b"-- Dump completed on 2026-11-22 10:00:00\n"
)


def zstd_bytes(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("compress", [zstd_bytes, gzip.compress], ids=["zstd", "gzip"])
@pytest.mark.parametrize("size", [1, 7, 4096])
def test_watcher_accepts_a_complete_dump_in_any_chunking(compress: object, size: int) -> None:
    data = compress(DUMP)  # type: ignore[operator]
    plain = io.BytesIO()
    watcher = DumpTrailerWatcher(plain=plain)
    for piece in chunks(data, size):
        assert watcher.write(piece) == len(piece)
    watcher.close()
    assert watcher.ok, watcher.reason
    assert watcher.tables == ["a`b", "café"]  # not the view's placeholder
    assert plain.getvalue() == DUMP
    assert watcher.plain_bytes == len(DUMP) and watcher.compressed_bytes == len(data)
    assert watcher.tail.endswith(b"10:00:00\n")


def test_watcher_accepts_concatenated_frames_and_members() -> None:
    half = len(DUMP) // 2
    for data in (
        zstd_bytes(DUMP[:half]) + zstd_bytes(DUMP[half:]),
        gzip.compress(DUMP[:half]) + gzip.compress(DUMP[half:]),
    ):
        watcher = DumpTrailerWatcher()
        for piece in chunks(data, 5):
            watcher.write(piece)
        watcher.close()
        assert watcher.ok, watcher.reason
        assert watcher.tables == ["a`b", "café"]


@pytest.mark.parametrize(
    ("data", "expected", "reason"),
    [
        (zstd_bytes(DUMP)[:-5], None, "truncated"),
        (gzip.compress(DUMP)[:-12], None, "truncated"),
        (zstd_bytes(DUMP.replace(b"-- Dump completed", b"-- Dump stopped")), None, "trailer"),
        (zstd_bytes(b""), None, "trailer"),
        (b"", None, "empty"),
        (b"\x1f", None, "neither zstd nor gzip"),
        (DUMP, None, "neither zstd nor gzip"),
        (gzip.compress(DUMP), "zstd", "gzip data, zstd was announced"),
        (zstd_bytes(DUMP) + b"garbage" * 10, None, "invalid zstd data"),
        (gzip.compress(DUMP) + b"\x1f\x8bgarbage" * 10, None, "invalid gzip data"),
    ],
)
def test_watcher_rejects(data: bytes, expected: str | None, reason: str) -> None:
    watcher = DumpTrailerWatcher(expected)  # type: ignore[arg-type]
    for piece in chunks(data, 3):
        watcher.write(piece)
    assert not watcher.ok  # not before close either
    watcher.close()
    watcher.close()  # idempotent
    assert not watcher.ok
    assert reason in (watcher.reason or "")


def test_watcher_finds_a_table_name_split_across_chunks() -> None:
    data = gzip.compress(DUMP)
    watcher = DumpTrailerWatcher()
    # feed plain bytes one at a time through the internal scanner too (via 1-byte compressed chunks)
    for piece in chunks(data, 1):
        watcher.write(piece)
    watcher.close()
    assert watcher.tables == ["a`b", "café"]


def test_table_scan_is_the_same_for_every_split_of_the_plain_stream() -> None:
    long_name = b"n" * 1100  # longer than any real name: kept or skipped, never a crash or a shift
    plain = DUMP.replace(b"INSERT INTO `a``b`", b"CREATE TABLE `" + long_name + b"` (x int);\nINSERT") * 3
    expected = ["a`b", "café"] * 3
    rng = random.Random(5)
    splits = [[cut] for cut in range(1, len(plain))]
    splits += [sorted(rng.sample(range(1, len(plain)), k)) for k in (2, 5, 40, 300) for _ in range(20)]
    for cuts in splits:
        watcher = DumpTrailerWatcher()
        for start, end in zip([0, *cuts], [*cuts, len(plain)], strict=True):
            watcher._scan_tables(plain[start:end])
        assert [t for t in watcher.tables if not t.startswith("nnn")] == expected, cuts


@pytest.mark.parametrize(
    ("tail", "ok"),
    [
        (b"...\n-- Dump completed on 2026-11-22 10:00:00\n", True),
        (b"-- Dump completed\n\n  \n", True),
        (b"-- Dump completed", True),
        (b"-- Dump completed on x\nINSERT INTO t VALUES (1);\n", False),
        (b"", False),
        (b"INSERT INTO `t` VALUES ('-- Dump completed'", False),
    ],
)
def test_check_dump_trailer(tail: bytes, ok: bool) -> None:
    assert check_dump_trailer(tail) is ok


def test_compression_is_detected_from_magic_bytes() -> None:
    assert detect_compression(zstd_bytes(b"x")[:4]) == "zstd"
    assert detect_compression(gzip.compress(b"x")[:2]) == "gzip"
    assert detect_compression(b"PK\x03\x04") is None


@pytest.mark.parametrize("kind", ["zstd", "gzip"])
def test_stream_decompressor_is_complete_only_at_a_frame_end(kind: str) -> None:
    plain = b"hello " * 10_000
    data = zstd_bytes(plain) if kind == "zstd" else gzip.compress(plain)
    d = StreamDecompressor(kind)  # type: ignore[arg-type]
    assert not d.complete
    out = d.decompress(data[:10])
    assert not d.complete
    out += d.decompress(data[10:])
    assert d.complete and out == plain


def test_stream_decompressor_refuses_unknown_kinds() -> None:
    with pytest.raises(ValueError):
        StreamDecompressor("xz")  # type: ignore[arg-type]


def test_probe_problems_name_a_missing_compressor_or_client() -> None:
    no_zstd = parse_probe("dump_tool=mariadb-dump\nclient_tool=\ncompression=gzip\ngzip=yes\ngnu_tar=yes\n")
    assert no_zstd.problems(database=False, files=True, app_config=False) == []
    assert no_zstd.problems(database=False, files=True, app_config=False, compression="zstd") == [
        "zstd is not installed (compression: zstd; install it, or use compression: auto)"
    ]
    assert (
        "count_rows needs one"
        in no_zstd.problems(database=True, files=False, app_config=False, count_rows=True)[0]
    )
    nothing = parse_probe("dump_tool=mysqldump\nclient_tool=mysql\ncompression=gzip\ngzip=no\ngnu_tar=yes\n")
    assert nothing.problems(database=True, files=False, app_config=False) == [
        "neither zstd nor gzip is installed (the dump and the archive are compressed)"
    ]
