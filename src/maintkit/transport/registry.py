"""Which transport an inventory host's ``connection`` asks for: the one place that knows them all.

Why a module above the implementations and not a lookup in ``base``: the interface must not import
its subclasses (they import it), and each opener imports its module only when a host uses it, so
``--check`` and local runs never load paramiko. A new kind of connection is one module plus one
line in :data:`OPENERS` (and its name in the inventory's ``connection`` choices).
"""

from __future__ import annotations

from collections.abc import Callable

from maintkit.model.hosts import Host
from maintkit.model.problems import TransportError
from maintkit.transport.base import Transport


def _local(host: Host, accept_new_host_keys: bool) -> Transport:
    from maintkit.transport.local import LocalTransport

    return LocalTransport(host.name)


def _ssh(host: Host, accept_new_host_keys: bool) -> Transport:
    from maintkit.transport.ssh.transport import SSHTransport

    return SSHTransport(host, accept_new_host_keys=accept_new_host_keys or host.accept_new_host_keys)


#: connection kind (the inventory's ``connection`` / ``ansible_connection``) -> its opener
OPENERS: dict[str, Callable[[Host, bool], Transport]] = {"local": _local, "ssh": _ssh}


def open_transport(host: Host, *, accept_new_host_keys: bool = False) -> Transport:
    """Return the transport an inventory host asks for (not yet connected)."""
    opener = OPENERS.get(host.connection)
    if opener is None:  # the inventory loader refuses other kinds; this guards hand-built hosts
        known = ", ".join(sorted(OPENERS))
        raise TransportError(f"{host.name}: unknown connection {host.connection!r} (known: {known})")
    transport = opener(host, accept_new_host_keys)
    if host.become:  # every command as become_user through sudo (transport/become.py)
        from maintkit.transport.become import BecomeTransport

        return BecomeTransport(transport, host.become_user or "root", host.become_password)
    return transport
