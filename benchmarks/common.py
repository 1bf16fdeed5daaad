"""Pieces shared by the benchmark scripts: timing a process, medians, tables, machine facts.

Why every tool runs as a child process timed from the outside: the figures must include what a user
waits for (interpreter start, imports, connection setup), and ``os.wait4`` hands us the child's peak
RSS for free, measured by the kernel rather than sampled.

Why the child environment drops ``PYTHONDONTWRITEBYTECODE``: a real install (pip, Debian) has
bytecode caches; a benchmark that recompiled every module on each start would measure a machine
nobody runs. Every Python tool (maintkit, fabric, ansible, pyinfra) gets the same treatment.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # tests.sshd & co. are reused as the fleet
    sys.path.insert(0, str(REPO))

BENCH = REPO / "benchmarks"
PEERS = Path(os.environ.get("MAINTKIT_BENCH_PEERS", BENCH / ".venv-peers"))
VENV_BIN = Path(sys.executable).parent
GNU_TIME = Path("/usr/bin/time")
#: the table marker run-quick greps for: a script that printed none has failed
TABLE_MARK = "<!-- benchmark-table -->"


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment every measured process gets (bytecode caches allowed, no colours)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update({"NO_COLOR": "1", "COLUMNS": "200", "LC_ALL": "C.UTF-8"})
    env.update(extra or {})
    return env


@dataclass
class Timed:
    """One measured process: wall seconds, exit code, peak RSS (KiB) and its output."""

    seconds: float
    rc: int
    max_rss_kib: int
    stdout: bytes
    stderr: bytes
    cpu_seconds: float = 0.0

    def check(self, what: str) -> Timed:
        """Raise unless the process succeeded (a failed run has no business in a table)."""
        if self.rc != 0:
            tail = (self.stdout[-1500:] + b"\n" + self.stderr[-2500:]).decode("utf-8", "replace")
            raise RuntimeError(f"{what} exited {self.rc}:\n{tail}")
        return self


def run_timed(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdout: int | object = subprocess.PIPE,
    timeout: float = 900.0,
) -> Timed:
    """Run ``argv`` to completion; time it and read its peak RSS.

    ``stdout`` may be an open binary file (the OpenSSH pipeline writes its snapshot there).

    Why GNU time in between: Linux carries a process's peak RSS across ``exec``, and Python starts
    children with ``vfork``, so ``wait4`` on a direct child reports at least *this* process's own
    peak (a 60 MB Python) even for a 6 MB ``ssh``. ``/usr/bin/time`` forks the tool from a tiny
    process, so ``%M`` is the tool's own peak. Without it, ``wait4``'s figure is used (an upper bound).
    """
    rss_file = None
    command = [str(a) for a in argv]
    if GNU_TIME.exists():
        handle, name = tempfile.mkstemp(prefix="rss-")
        os.close(handle)
        rss_file = Path(name)
        command = [str(GNU_TIME), "-q", "-f", "%M", "-o", name, *command]
    started = time.perf_counter()
    proc = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=stdout,  # type: ignore[arg-type]
        stderr=subprocess.PIPE,
        env=dict(env) if env is not None else child_env(),
        cwd=cwd,
    )
    out, err = _communicate(proc, timeout)
    _pid, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    max_rss = usage.ru_maxrss
    if rss_file is not None:
        lines = rss_file.read_text().split()
        rss_file.unlink()
        if lines and lines[-1].isdigit():
            max_rss = int(lines[-1])
    return Timed(
        seconds,
        proc.returncode,
        max_rss,
        out or b"",
        err or b"",
        usage.ru_utime + usage.ru_stime,
    )


def _communicate(proc: subprocess.Popen[bytes], timeout: float) -> tuple[bytes, bytes]:
    """Read both pipes until EOF without reaping the child (``wait4`` must do that, for rusage)."""
    import selectors

    chunks: dict[int, list[bytes]] = {}
    sel = selectors.DefaultSelector()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            sel.register(stream, selectors.EVENT_READ)
            chunks[stream.fileno()] = []
    deadline = time.monotonic() + timeout
    while sel.get_map():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            proc.kill()
            raise TimeoutError(f"{proc.args!r} ran over {timeout} s")
        for key, _ in sel.select(min(remaining, 1.0)):
            data = os.read(key.fd, 65536)
            if data:
                chunks[key.fd].append(data)
            else:
                sel.unregister(key.fileobj)
    sel.close()
    out = b"".join(chunks.get(proc.stdout.fileno(), [])) if proc.stdout else b""
    err = b"".join(chunks.get(proc.stderr.fileno(), [])) if proc.stderr else b""
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    return out, err


def median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


def ratio(value: float, baseline: float) -> str:
    """``1.23x``: how many baselines ``value`` is."""
    return f"{value / baseline:.2f}x" if baseline > 0 else "n/a"


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _first_line(argv: list[str]) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "missing"
    text = (result.stdout + result.stderr).strip()
    return text.splitlines()[0] if text else "?"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _dist_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "missing"


def machine_facts(extra_tools: Mapping[str, list[str]] | None = None) -> list[tuple[str, str]]:
    """What the figures were measured on: CPU, memory, OS, and the version of every tool involved."""
    try:
        mem_kib = int(re.findall(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())[0])
        memory = f"{mem_kib / 1024 / 1024:.1f} GiB"
    except (OSError, IndexError):
        memory = "?"
    os_release = "?"
    with_release = Path("/etc/os-release")
    if with_release.exists():
        match = re.search(r'PRETTY_NAME="([^"]+)"', with_release.read_text())
        os_release = match.group(1) if match else "?"
    facts = [
        ("date", _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")),
        ("CPU", f"{_cpu_model()}, {os.cpu_count()} cores"),
        ("memory", memory),
        ("OS", f"{os_release}, kernel {platform.release()}"),
        ("Python", platform.python_version()),
        ("maintkit", _dist_version("maintkit")),
        ("paramiko / fabric", f"{_dist_version('paramiko')} / {_dist_version('fabric')}"),
        ("OpenSSH", _first_line(["ssh", "-V"])),
    ]
    for name, argv in (extra_tools or {}).items():
        facts.append((name, _first_line(argv)))
    return facts


def print_report(title: str, sections: Sequence[tuple[str, str]], facts: Sequence[tuple[str, str]]) -> str:
    """Print (and return) the markdown block a run produces: tables first, then the machine."""
    parts = [f"### {title}", "", TABLE_MARK, ""]
    for heading, body in sections:
        if heading:
            parts += [f"**{heading}**", ""]
        parts += [body, ""]
    parts += [markdown_table(("machine", "value"), facts), ""]
    text = "\n".join(parts)
    print(text, flush=True)
    return text


def need_peer(tool: str) -> Path | None:
    """The peer tool from ``benchmarks/.venv-peers`` (``benchmarks/setup``), or None if missing."""
    path = PEERS / "bin" / tool
    return path if path.exists() else None


def need_system(tool: str) -> str | None:
    return shutil.which(tool) or (f"/usr/sbin/{tool}" if Path(f"/usr/sbin/{tool}").exists() else None)


def log(message: str) -> None:
    """Progress on stderr, so stdout holds only the report."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
