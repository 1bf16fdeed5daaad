"""The transport registry: every connection kind an inventory may name has an opener, no other."""

from __future__ import annotations

import subprocess
import sys
import typing

import pytest

from maintkit.model.hosts import Host
from maintkit.model.problems import TransportError
from maintkit.transport.local import LocalTransport
from maintkit.transport.registry import OPENERS, open_transport


def test_every_connection_kind_of_a_host_has_an_opener() -> None:
    kinds = typing.get_args(typing.get_type_hints(Host)["connection"])
    assert set(OPENERS) == set(kinds)


def test_an_unknown_connection_kind_is_refused_naming_the_known_ones() -> None:
    host = Host(name="web1", connection="telnet")  # type: ignore[arg-type]
    with pytest.raises(TransportError, match=r"web1: unknown connection 'telnet' \(known: local, ssh\)"):
        open_transport(host)


def test_a_local_host_opens_without_loading_paramiko() -> None:
    code = (
        "import sys\n"
        "from maintkit.model.hosts import Host\n"
        "from maintkit.transport.registry import open_transport\n"
        "t = open_transport(Host(name='here', connection='local'))\n"
        "print(type(t).__name__, 'paramiko' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["LocalTransport", "False"]
    assert isinstance(open_transport(Host(name="here", connection="local")), LocalTransport)
