"""Opening an SSH connection: fabric resolves ``~/.ssh/config``; we add TCP_NODELAY, quick ACKs, keep-alives.

Why these by hand: see :func:`connect_direct` and :class:`_QuickAckSocket` (each short command and
the handshake itself would otherwise pay ~40 ms of Nagle + delayed-ACK latency; docs/performance.md).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator, Mapping, Sequence

import paramiko
from fabric import Connection

from maintkit.model.hosts import JumpHop

CONNECT_TIMEOUT = 10.0
KEEPALIVE_INTERVAL = 15
NETWORK_ERRORS = (paramiko.SSHException, OSError, EOFError)


def set_nodelay(sock: object) -> None:
    """Disable Nagle on a real TCP socket (not on a gateway channel or a ProxyCommand pipe)."""
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def connect_direct(conn: Connection) -> None:
    """Open the TCP connection ourselves, with ``TCP_NODELAY`` set *before* the SSH handshake.

    Why: the handshake is a dozen small request/response packets; with Nagle on, several of them wait
    for a delayed ACK (~40 ms each), and a connection took ~80 ms on loopback instead of ~15 ms.
    paramiko creates its socket inside ``SSHClient.connect`` and never sets the option, but it takes
    a ready socket (``sock=``) and still uses ``hostname``/``port`` for the host-key lookup. Only for
    direct connections: a ProxyJump or ProxyCommand hop brings its own transport (its gateway's
    socket gets the option after it opens).
    """
    if conn.gateway or "sock" in conn.connect_kwargs:
        return
    sock = socket.create_connection((conn.host, conn.port), timeout=conn.connect_timeout)
    set_nodelay(sock)
    if _QUICKACK is not None:
        sock = _QuickAckSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
    conn.connect_kwargs["sock"] = sock


_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only


class _QuickAckSocket(socket.socket):
    """A TCP socket that acknowledges what it read at once instead of up to 40 ms later.

    Why: right after authentication OpenSSH's sshd sends a couple of small messages (the
    ``hostkeys-00@openssh.com`` request, ``authorized_keys`` option notices) that want no answer, so
    our kernel delays its ACK; sshd, which sets no ``TCP_NODELAY`` for non-interactive sessions,
    then holds its next small packet, the confirmation of our first channel, until that ACK comes:
    the first command of every connection took ~50 ms instead of ~4 ms. ``TCP_QUICKACK`` is not
    sticky, so it is re-armed after every read; set while an ACK is pending it sends that ACK now.
    One ``setsockopt`` per read costs about a microsecond.
    """

    def recv(self, bufsize: int, flags: int = 0, /) -> bytes:
        data = super().recv(bufsize, flags)
        if _QUICKACK is not None:
            with contextlib.suppress(OSError):
                self.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        return data


def gateway_chain(hops: Sequence[JumpHop], connect_kwargs: Mapping[str, object]) -> Connection | None:
    """The gateway of a connection whose inventory names ProxyJump hops (first hop first), or None.

    Each hop is a fabric ``Connection`` whose gateway is the hop before it, as ``ssh -J a,b`` goes
    through a, then b. The hops get the host's key file and timeouts (a bastion usually takes the
    same deploy key); ``~/.ssh/config`` still applies to each hop by its name. The caller secures
    every hop's host key like the host's own (:func:`chain`).
    """
    gateway: Connection | None = None
    for hop in hops:
        gateway = Connection(
            hop.address,
            user=hop.user or None,
            port=hop.port or None,
            connect_kwargs=dict(connect_kwargs),
            gateway=gateway,
        )
    return gateway


def chain(conn: Connection) -> Iterator[Connection]:
    """The connection and, for ProxyJump, every gateway connection behind it."""
    while isinstance(conn, Connection):
        yield conn
        conn = conn.gateway


def close_chain(conn: Connection) -> None:
    """Close the connection and its gateways, even half-open ones (fabric's close skips those)."""
    for hop in chain(conn):
        with contextlib.suppress(Exception):
            hop.client.close()
        hop.transport = None


def network_reason(exc: BaseException) -> str:
    """The readable part of a network error (``[Errno None] Unable to...`` -> ``Unable to...``)."""
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def got_banner(conn: Connection) -> bool:
    """Whether the SSH server of ``conn`` sent its version banner (the first thing it says)."""
    transport = conn.client.get_transport()
    return transport is not None and bool(getattr(transport, "remote_version", ""))


def describe(conn: Connection) -> str:
    return f"{conn.user}@{conn.host}:{conn.port}"
