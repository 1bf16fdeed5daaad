"""The "raw fabric" peer of runner_overhead.py: one Connection per host, a thread per host, N conn.run.

This is what a team writes before it has a tool: fabric 3 with its defaults (its own Runner,
``hide=True`` so output is not echoed). Run as a separate process so that interpreter start and
imports count, as they do for every other tool. Usage: ``python fabric_workload.py SPEC.json`` where
the spec is ``{"hosts": [{"host", "port", "user", "key"}], "commands": ["...", ...]}``.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

from fabric import Connection


def work(host: dict[str, Any], commands: list[str], errors: list[str]) -> None:
    """Run every command on one host over one connection; record failures instead of raising."""
    try:
        conn = Connection(
            host["host"],
            user=host["user"],
            port=host["port"],
            connect_kwargs={"key_filename": [host["key"]]},
        )
        with conn:
            for command in commands:
                conn.run(command, hide=True)
    except Exception as exc:  # report every host's failure, not only the first
        errors.append(f"{host['user']}@{host['port']}: {exc}")


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as handle:
        spec = json.load(handle)
    errors: list[str] = []
    threads = [threading.Thread(target=work, args=(host, spec["commands"], errors)) for host in spec["hosts"]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for error in errors:
        print(error, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
