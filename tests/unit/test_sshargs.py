"""ProxyJump out of Ansible's ssh argument variables (config/sshargs.py)."""

from __future__ import annotations

import pytest

from maintkit.config.sshargs import proxy_jump
from maintkit.model.hosts import JumpHop


@pytest.mark.parametrize(
    "args",
    [
        "-o ProxyJump=deploy@bastion:2222",
        "-oProxyJump=deploy@bastion:2222",
        "-o 'ProxyJump deploy@bastion:2222'",
        "-J deploy@bastion:2222",
        "-Jdeploy@bastion:2222",
        "-o proxyjump=deploy@bastion:2222",
    ],
)
def test_every_spelling_ssh_takes_gives_the_hop(args: str) -> None:
    assert proxy_jump(args) == [JumpHop("bastion", 2222, "deploy")]


def test_several_hops_first_hop_first_and_ipv6() -> None:
    hops = proxy_jump("-J a,u@[2001:db8::1]:22,b:2200")
    assert hops == [JumpHop("a"), JumpHop("2001:db8::1", 22, "u"), JumpHop("b", 2200)]
    assert [str(h) for h in hops] == ["a", "u@[2001:db8::1]:22", "b:2200"]


def test_none_and_empty_mean_no_jump() -> None:
    assert proxy_jump("") == [] and proxy_jump("-o ProxyJump=none") == []


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ("-o StrictHostKeyChecking=no", "'-o StrictHostKeyChecking=no' is not supported"),
        ("-J gw -i other_key", "'-i' is not supported"),
        ("-J", "-J needs a value"),
        ("-J 'a b'", "ProxyJump hop 'a b' is not [user@]host[:port]"),
        ("-J gw:70000", "the port must be from 1 to 65535"),
        ("-o 'ProxyJump", "cannot be split as a shell would"),
    ],
)
def test_anything_else_is_refused_by_name(args: str, says: str) -> None:
    with pytest.raises(ValueError, match=None) as error:
        proxy_jump(args)
    assert says in str(error.value)
