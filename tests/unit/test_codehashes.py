"""The hash list made beside a snapshot: started detached, read back whole, removed; run by real bash."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from maintkit.sources.codehashes import (
    DEFAULT_EXCLUDE,
    ListSink,
    cleanup_command,
    collect_command,
    parse_hashes,
    parse_started,
    start_command,
)


def _bash(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=False)


def test_started_detached_then_collected_whole_and_removed(tmp_path: Path) -> None:
    root = tmp_path / "shop it's"
    files = {"index.php": "<?php", "app/a b.php": "x", "pub/media/p.jpg": "jpg", "var/cache/c": "c"}
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    started = _bash(start_command(str(root), DEFAULT_EXCLUDE))
    where = parse_started(started.stdout)
    assert started.returncode == 0 and where is not None, started.stderr
    path, _pid = where
    collected = _bash(collect_command(path, 30))
    assert collected.returncode == 0 and "maintkit:hashes=0" in collected.stderr
    assert parse_hashes(collected.stdout) == {
        name: hashlib.sha256(text.encode()).hexdigest()
        for name, text in files.items()
        if name in ("index.php", "app/a b.php")
    }
    assert not Path(path).exists() and not Path(path + ".done").exists()


def test_a_list_that_never_finishes_times_out_and_the_cleanup_stops_it(tmp_path: Path) -> None:
    path = tmp_path / "maintkit-hashes.never"
    path.write_text("")
    late = _bash(collect_command(str(path), 0.2))
    assert late.returncode == 1 and "maintkit:hashes=timeout" in late.stderr
    sleeper = subprocess.Popen(["setsid", "sleep", "60"])
    assert _bash(cleanup_command(str(path), sleeper.pid)).returncode == 0
    assert sleeper.wait(timeout=10) != 0 and not path.exists()


def test_the_sink_keeps_everything_up_to_its_limit() -> None:
    sink = ListSink(limit=10)
    sink.write(b"12345")
    sink.write(b"678901234")
    assert sink.truncated and sink.text() == "1234567890"
    assert parse_started("list=relative\npid=1\n") is None and parse_started("list=/tmp/x\npid=7\n") == (
        "/tmp/x",
        7,
    )
