"""scripts/test on a fresh machine: apt waits for the dpkg lock that unattended-upgrades holds at boot.

Run with stand-in ``dpkg-query`` (every package missing) and ``apt-get`` (records its arguments; its
``install`` fails, so the script stops before it touches the virtualenv) first on PATH.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(os.geteuid() != 0, reason="scripts/test installs system packages only as root")
def test_apt_waits_for_the_dpkg_lock_and_says_so(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "dpkg-query").write_text("#!/bin/sh\nexit 1\n")
    calls_file = tmp_path / "apt-calls"
    apt = f'#!/bin/sh\nprintf "%s\\n" "$*" >> {calls_file}\ncase "$*" in *install*) exit 1;; esac\n'
    (bin_dir / "apt-get").write_text(apt)
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    result = subprocess.run(
        [str(ROOT / "scripts" / "test"), "--setup-only"], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode != 0  # the stand-in apt-get failed: the script stops there
    calls = calls_file.read_text().splitlines()
    assert calls[0] == "-o DPkg::Lock::Timeout=600 update -q"
    assert calls[1].startswith("-o DPkg::Lock::Timeout=600 install -y -q openssh-server ")
    assert "waits for it, up to 10 minutes" in result.stdout
