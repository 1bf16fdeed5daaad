"""The restore's row counter against the decompression it runs beside, on a 200 MB SQL dump.

Why this baseline: on the control node every chunk of a dump is decompressed (zstd, to check it)
and its rows counted (to prove the restore later); both run in the thread that feeds the host. Issue 16
measured the counter at ~0.6 s of CPU per 200 MB, several times the decompression. Both are timed
here on the same bytes, in this run, in this process (CPU seconds of this thread; no subprocess to
start); the ratio says how much the proof costs against the cheapest work it must do anyway.

Two dump shapes, both as ``mariadb-dump --hex-blob`` writes them: one extended INSERT per line
(MariaDB 10.x, MySQL: tuples ``(…),(…)`` on one long line) and one row per line (MariaDB 11.x
``--extended-insert`` with line breaks). Rows hold JSON text with quotes, escapes and parentheses,
as a shop's ``sales_order`` does. Usage::

    .venv/bin/python benchmarks/dumprows_speed.py [--quick] [--mb 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time

import zstandard
from common import log, machine_facts, markdown_table, median, print_report, ratio

from maintkit.jobs.restore.dumprows import DumpRowCounter

MB = 1_000_000
CHUNK = 256 * 1024  # what the restore's reader hands the inspector (stream.CHUNK)


def row(n: int) -> bytes:
    token = hashlib.md5(str(n).encode()).hexdigest()
    note = "it\\'s a gift (wrapped); thanks" if n % 7 == 0 else "standard"
    return (
        f"({n},'{n:09d}','complete',{n % 997 / 10:.2f},'2026-11-{1 + n % 28:02d} 10:00:00',"
        f"'{{\\\"sku\\\":\\\"SKU-{n % 5000:06d}\\\",\\\"qty\\\":{1 + n % 3},\\\"token\\\":\\\"{token}\\\"}}',"
        f"'{note}',0x{token[:16]})"
    ).encode()


def dump(size: int, per_line: bool) -> tuple[bytes, int]:
    """A dump of about ``size`` bytes and its number of rows."""
    head = b"-- MariaDB dump\nCREATE TABLE `sales_order` (`id` int, `note` text COMMENT 'x (y)');\n"
    parts, total, n, statement = [head], len(head), 0, []
    while total < size:
        statement = [row(n + i) for i in range(1000)]
        n += len(statement)
        sep = b",\n" if per_line else b","
        text = b"INSERT INTO `sales_order` VALUES " + sep.join(statement) + b";\n"
        parts.append(text)
        total += len(text)
    parts.append(b"-- Dump completed on 2026-12-05 05:00:00\n")
    return b"".join(parts), n


def cpu(work: object) -> float:
    started = time.thread_time()
    work()  # type: ignore[operator]
    return time.thread_time() - started


def measure(data: bytes, rows: int, rounds: int) -> tuple[float, float]:
    compressed = zstandard.ZstdCompressor(level=3).compress(data)

    def count() -> None:
        counter = DumpRowCounter()
        for i in range(0, len(data), CHUNK):
            counter.write(data[i : i + CHUNK])
        if counter.rows != {"sales_order": rows}:
            raise SystemExit(f"the counter is wrong: {counter.rows}, expected {rows}")

    def decompress() -> None:
        reader = zstandard.ZstdDecompressor().decompressobj()
        for i in range(0, len(compressed), CHUNK):
            reader.decompress(compressed[i : i + CHUNK])

    counts, decompressions = [], []
    for _ in range(rounds):  # interleaved
        decompressions.append(cpu(decompress))
        counts.append(cpu(count))
    return median(counts), median(decompressions)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="5 MB, one round (CI: the script runs)")
    parser.add_argument("--mb", type=int, default=200, help="dump size in MB of SQL (default 200)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    size, rounds = (5 * MB, 1) if args.quick else (args.mb * MB, max(1, args.rounds))
    rows_out = []
    for shape, per_line in (("extended INSERT per line", False), ("one row per line", True)):
        data, rows = dump(size, per_line)
        log(f"{shape}: {len(data) / MB:.0f} MB, {rows} rows")
        count_s, decompress_s = measure(data, rows, rounds)
        mb = len(data) / MB
        rows_out.append(
            (shape, f"{mb:.0f}", f"{count_s:.3f}", f"{mb / count_s:.0f}", f"{decompress_s:.3f}",
             ratio(count_s, decompress_s))
        )  # fmt: skip
    header = ("dump", "MB of SQL", "counter CPU s", "counter MB/s", "zstd -d CPU s", "counter vs zstd -d")
    sections = [
        (f"Row counting on the control node, median of {rounds} rounds", markdown_table(header, rows_out)),
    ]
    print_report("Dump row counter", sections, machine_facts())
    return 0


if __name__ == "__main__":
    sys.exit(main())
