"""The environment lock taken on every server at once: still all or nothing.

Why a unit test with local folders: ``EnvironmentLock`` only needs transports that run shell
commands; the local transport runs the real ``mkdir`` lock script in a temp folder per "server".
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from maintkit.engine.lock import EnvironmentLock, LockTarget
from maintkit.model.problems import LockHeld
from maintkit.transport.base import CommandResult
from maintkit.transport.local import LocalTransport


class CountingTransport(LocalTransport):
    """A local transport whose lock commands wait at a barrier: they pass only if all run at once."""

    def __init__(self, name: str, gate: threading.Barrier | None = None) -> None:
        super().__init__(name)
        self.gate = gate

    def run(self, command: str, **kwargs: Any) -> CommandResult:
        if self.gate is not None and "mkdir" in command:
            self.gate.wait(timeout=10)  # every acquire must be in flight together to pass
        return super().run(command, **kwargs)


def targets(tmp_path: Path, count: int, gate: threading.Barrier | None = None) -> list[LockTarget]:
    return [
        LockTarget(f"h{i}", CountingTransport(f"h{i}", gate), str(tmp_path / f"server{i}" / "lock"), 3600.0)
        for i in range(count)
    ]


def test_the_lock_is_taken_on_every_server_at_once(tmp_path: Path) -> None:
    gate = threading.Barrier(4)  # would time out if the acquisitions ran one after the other
    lock = EnvironmentLock(targets(tmp_path, 4, gate), run_id="r1", env="e", playbook="p", parallel=10)
    lock.acquire()
    assert all((tmp_path / f"server{i}" / "lock" / "holder.json").exists() for i in range(4))
    lock.release()
    assert not any((tmp_path / f"server{i}" / "lock").exists() for i in range(4))


def test_one_held_server_means_nothing_is_held_anywhere(tmp_path: Path) -> None:
    held = tmp_path / "server2" / "lock"
    held.mkdir(parents=True)
    (held / "holder.json").write_text(json.dumps({"run_id": "other", "started_epoch": 0, "pid": 1}))
    events: list[str] = []
    lock = EnvironmentLock(
        targets(tmp_path, 4),
        run_id="r2",
        env="e",
        playbook="p",
        parallel=10,
        emit=lambda event, **fields: events.append(f"{event}:{fields['host']}"),
    )
    with pytest.raises(LockHeld, match="h2: environment is locked"):
        lock.acquire()
    assert held.exists()  # the other run's lock is untouched
    for i in (0, 1, 3):
        assert not (tmp_path / f"server{i}" / "lock").exists()
    assert sorted(e for e in events if e.startswith("lock_released")) == [
        "lock_released:h0",
        "lock_released:h1",
        "lock_released:h3",
    ]
