"""Run commands on a host over one reused SSH connection (fabric for the connection, paramiko for I/O).

Why fabric for the connection only: ``fabric.Connection`` resolves ``~/.ssh/config`` (HostName, User,
Port, IdentityFile, ProxyJump/ProxyCommand, ConnectTimeout) and the agent exactly as users expect. Its
``Runner``, though, buffers whole outputs, has no stdin-from-stream, and on a timeout abandons the
remote command instead of killing it. So commands run on raw paramiko channels with our own I/O loop:

* stdout goes chunk by chunk (64 KiB) to the caller's sink; memory stays bounded because paramiko
  only lets the server send one channel window (2 MiB) ahead of what we have read;
* stdin is copied by a thread (``sendall`` blocks on the window), then ``shutdown_write`` sends EOF;
* every command starts with ``printf 'mk-pid:%s\\n' "$$" >&2``: sshd makes the login shell a
  session and process-group leader, so ``$$`` is the process group of the whole command tree. That
  first stderr line is stripped from the result; on a timeout or a cancel a second channel runs
  ``kill -- -PGID`` (TERM, then KILL) so nothing keeps running on the host.

A short command (no input, no sink) does not even get a channel of its own: it runs in the host's
long-lived session (:mod:`maintkit.transport.session`), which saves the host a session, a login
shell and its rc files per command. A command that streams gigabytes (its output goes to a sink, or
its input is a stream) runs through the system ``ssh`` instead, under the host key this connection
verified; see :mod:`maintkit.transport.openssh`. This connection still kills it on a timeout.

Connection setup also fixes three things paramiko/fabric leave out: host keys are checked (see
:mod:`maintkit.transport.hostkeys`), keep-alives are on, and ``TCP_NODELAY`` is set before the
handshake (without it each short command, and the handshake itself, pays ~40 ms of Nagle +
delayed-ACK latency; see docs/performance.md).
"""

from __future__ import annotations

import getpass
import logging
import os
import select
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, NoReturn

import paramiko
from fabric import Connection

from maintkit.model.hosts import Host
from maintkit.model.problems import (
    CommandLost,
    CommandTimeout,
    HostKeyError,
    Interrupted,
    MaintkitError,
    TransportError,
)
from maintkit.transport import openssh
from maintkit.transport.base import CommandResult, Sink, Tail, Transport, with_env
from maintkit.transport.hostkeys import (
    USER_KNOWN_HOSTS,
    changed_key_error,
    check_not_revoked,
    known_hosts_name,
    load_known_hosts,
    secure_client,
)
from maintkit.transport.openssh import BulkTarget, BulkUnavailable, PinnedHostKey
from maintkit.transport.openssh_forward import ForwardUnavailable, OpenSSHForward, forward_argv
from maintkit.transport.session import MAX_SCRIPT, Aborted, Session, SessionLost
from maintkit.transport.ssh.channels import channel_writer, join_feeder, pump, read_input, remote_command
from maintkit.transport.ssh.connect import (
    CONNECT_TIMEOUT,
    KEEPALIVE_INTERVAL,
    NETWORK_ERRORS,
    chain,
    close_chain,
    connect_direct,
    describe,
    gateway_chain,
    got_banner,
    network_reason,
    set_nodelay,
)
from maintkit.transport.ssh.forward import remote_forward
from maintkit.transport.ssh.kill import PID_GRACE, PidFilter, kill_group, reap
from maintkit.transport.ssh.rekey import avoid_rekey_deadlock
from maintkit.transport.streams import (
    CHUNK,
    CountingSink,
    StdinFeeder,
)

log = logging.getLogger(__name__)

#: set to ``0`` to give every command its own SSH session (the behaviour before the session runner)
SESSION_ENV = "MAINTKIT_SSH_SESSION"
#: tries of a short command in the session: a dead reused session, then a dead reused connection
SESSION_ATTEMPTS = 3


class SSHTransport(Transport):
    """One lazily opened, reused SSH connection to an inventory host.

    ``user_known_hosts`` replaces ``~/.ssh/known_hosts`` (tests use it to stay off the real one).
    :attr:`connect_count` counts the connections opened, so tests and benchmarks can prove reuse.
    """

    def __init__(
        self,
        host: Host,
        accept_new_host_keys: bool = False,
        *,
        user_known_hosts: str | os.PathLike[str] | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        self.host = host
        self.name = host.name
        self.accept_new_host_keys = accept_new_host_keys
        self.connect_timeout = host.connect_timeout or connect_timeout
        #: seconds to wait for the server's SSH banner, and for authentication to finish
        self.banner_timeout = host.banner_timeout or self.connect_timeout
        self.auth_timeout = host.auth_timeout or self.connect_timeout
        self.user_known_hosts = Path(user_known_hosts or USER_KNOWN_HOSTS).expanduser()
        self.connect_count = 0
        #: process groups a dead connection left running, stopped as soon as a connection opens
        self._orphans: set[int] = set()
        #: (pgid, outcome) of each command whose connection died under it (tests read it)
        self.lost_commands: list[tuple[int | None, str]] = []
        self._conn: Connection | None = None
        self._lock = threading.Lock()
        #: why bulk streams no longer go through ``ssh`` on this host (None: they do)
        self.bulk_off: str | None = None
        #: bulk streams that went through the system OpenSSH client (tests and benchmarks read it)
        self.bulk_count = 0
        #: remote forwards opened through the system ``ssh -R`` (tests and benchmarks read it)
        self.openssh_forwards = 0
        self._pin: PinnedHostKey | None = None
        self._pinned: tuple[str, str] | None = None
        #: the long-lived session short commands run in (see maintkit.transport.session)
        self._session: Session | None = None
        self._session_lock = threading.Lock()
        #: why short commands no longer use the long-lived session on this host (None: they do)
        self.session_off: str | None = None if os.environ.get(SESSION_ENV, "1") != "0" else SESSION_ENV
        #: long-lived sessions started (tests and benchmarks read it)
        self.session_count = 0
        address = host.address or host.name
        self._target = f"{host.user or getpass.getuser()}@{address}:{host.port or 22}"

    # -- connection -------------------------------------------------------------------------------

    @property
    def label(self) -> str:
        """``name (user@address:port)`` for messages; exact once connected (ssh_config applied)."""
        return f"{self.name} ({self._target})"

    @property
    def connection(self) -> Connection | None:
        """The open fabric connection, or None."""
        return self._conn

    @property
    def known_hosts_files(self) -> list[Path]:
        files = [self.user_known_hosts]
        if self.host.known_hosts:
            files.append(Path(self.host.known_hosts).expanduser())
        return files

    @property
    def save_new_keys_to(self) -> Path:
        """Where accept-new records keys: the inventory's known_hosts file, else the user's."""
        if self.host.known_hosts:
            return Path(self.host.known_hosts).expanduser()
        return self.user_known_hosts

    def connect(self) -> None:
        """Open the connection and start the session short commands share (both idempotent)."""
        transport, fresh = self._ensure_connected()
        if self.session_off is None and self._session_lock.acquire(blocking=False):
            try:
                if self._live_session(transport, fresh) is None and self.session_off is None:
                    transport, fresh = self._ensure_connected()  # the reused one was dead: a new one
                    self._live_session(transport, fresh)
            finally:
                self._session_lock.release()

    @contextmanager
    def forward_remote(self, local_port: int, *, bulk: bool = True) -> Iterator[int]:
        """While open, the host's 127.0.0.1:<yielded port> leads to the control node's ``local_port``.

        Why: an engine running on the host writes to a control-side server through it, and the host
        never gets a way to the control node beyond that one port (:mod:`.forward`). ``bulk`` (much
        will cross, e.g. a first engine night): through the system ``ssh -R`` when it can (its
        bytes cost a fraction of the CPU), else, and when little will cross, over this paramiko
        connection, which needs no new SSH handshake (~0.15 s; both measured, docs/performance.md).
        ``MAINTKIT_BULK_SSH=paramiko`` forces paramiko's.
        """
        transport, _fresh = self._ensure_connected()
        forward = self._openssh_forward(transport, local_port) if bulk else None
        if forward is not None:
            with forward:
                yield forward.port
            return
        with remote_forward(transport, local_port) as port:
            yield port

    def _openssh_forward(self, transport: paramiko.Transport, local_port: int) -> OpenSSHForward | None:
        """The forward through the system ``ssh -R`` (faster: :mod:`maintkit.transport.openssh_forward`),
        under the key this connection verified; None when ``ssh`` cannot give it (paramiko's then)."""
        program = openssh.client()
        conn = self._conn
        if program is None or conn is None or conn.gateway:
            return None
        target = self._bulk_target(conn, transport)
        pin = self._pin_key(target)
        argv = forward_argv(program, target, pin.path, local_port)
        try:
            forward = OpenSSHForward(argv, timeout=target.connect_timeout + 10).start()
        except ForwardUnavailable as why:
            log.info("%s: the remote forward goes over paramiko: %s", self.label, why)
            return None
        self.openssh_forwards += 1
        return forward

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            pin, self._pin, self._pinned = self._pin, None, None
            session, self._session = self._session, None
        if session is not None:
            session.close()
        if conn is not None:
            close_chain(conn)
        if pin is not None:
            openssh.close_masters(pin.folder)  # this run's; a fleet's shared ones are the fleet's
            pin.remove()

    def _ensure_connected(self) -> tuple[paramiko.Transport, bool]:
        """Return the live paramiko transport, (re)connecting if needed, and whether it is new."""
        with self._lock:
            conn = self._conn
            if conn is not None and conn.transport is not None and conn.transport.is_active():
                return conn.transport, False
            if conn is not None:
                self._conn = None
                close_chain(conn)
            conn = self._open()
            self._conn = conn
            self.connect_count += 1
            assert conn.transport is not None
            orphans, self._orphans = self._orphans, set()
        for pgid in orphans:  # before any command of the new connection (outside the lock: it runs one)
            outcome = reap(conn.transport, pgid, self.label, self.connect_timeout)
            log.info("%s: the command a lost connection left running: %s", self.label, outcome)
        return conn.transport, True

    def _new_connection(self) -> Connection:
        host = self.host
        connect_kwargs: dict[str, object] = {
            "banner_timeout": self.banner_timeout,
            "auth_timeout": self.auth_timeout,
        }
        if host.key_file:
            connect_kwargs["key_filename"] = [os.path.expanduser(host.key_file)]
        conn = Connection(
            host.address or host.name,
            user=host.user or None,
            port=host.port or None,
            connect_kwargs=connect_kwargs,
            gateway=gateway_chain(host.proxy_jump, connect_kwargs),
        )
        for hop in chain(conn):
            if hop.connect_timeout is None:  # ConnectTimeout in ~/.ssh/config wins
                hop.connect_timeout = self.connect_timeout
        return conn

    def _open(self) -> Connection:
        try:
            conn = self._new_connection()
        except Exception as exc:
            raise TransportError(f"{self.label}: cannot set up the SSH connection: {exc}") from exc
        self._target = describe(conn)
        known = load_known_hosts(self.known_hosts_files)
        hops = list(chain(conn))
        for hop in hops:
            hop_label = self.label if hop is conn else f"gateway {describe(hop)} of {self.name}"
            secure_client(
                hop.client,
                label=hop_label,
                known=known,
                accept_new=self.accept_new_host_keys,
                save_to=self.save_new_keys_to,
            )
        try:
            connect_direct(conn)
            conn.open()
            for hop in hops:
                assert hop.transport is not None
                check_not_revoked(describe(hop), hop.transport.get_remote_server_key(), known)
        except HostKeyError:
            close_chain(conn)
            raise
        except paramiko.BadHostKeyException as exc:
            close_chain(conn)
            hop = next((h for h in hops if h.host == exc.hostname), conn)
            hop_label = self.label if hop is conn else f"gateway {describe(hop)} of {self.name}"
            name = known_hosts_name(hop.host, hop.port)
            raise changed_key_error(hop_label, name, exc, known.files) from None
        except paramiko.AuthenticationException as exc:
            close_chain(conn)
            raise TransportError(
                f"{self.label}: authentication failed ({exc}); check the user, the key file "
                f"({self.host.key_file or 'none set'}) and the ssh-agent"
            ) from exc
        except NETWORK_ERRORS as exc:
            why = self._connect_failure(exc, hops)  # before the close: it reads what each hop got
            close_chain(conn)
            raise TransportError(f"{self.label}: {why}") from exc
        for hop in hops:  # gateways too: their sockets carry every byte of ours
            assert hop.transport is not None
            hop.transport.set_keepalive(KEEPALIVE_INTERVAL)
            set_nodelay(hop.transport.sock)
            avoid_rekey_deadlock(hop.transport)
        return conn

    def _connect_failure(self, exc: BaseException, hops: list[Connection]) -> str:
        """Say why a connection failed in the user's terms.

        Why the banner case is singled out: a port that accepts TCP but where no SSH server speaks
        (a stuck sshd, MaxStartups throttling, the wrong port behind a load balancer) makes paramiko
        report "Error reading SSH protocol banner" or, depending on timing, "No existing session";
        neither says which host or what to change. The hop is the last one that never got its
        banner (a gateway of a ProxyJump chain, or the host itself).
        """
        text = network_reason(exc)
        silent = [h for h in hops if not got_banner(h)]
        if silent and ("banner" in text or "No existing session" in text):
            hop = silent[-1]  # a silent gateway leaves every hop behind it silent too
            return (
                f"no SSH banner from {hop.host}:{hop.port} within {self.banner_timeout:g} s (the port "
                "accepts connections but no SSH server answers; the wait is the inventory var "
                "ssh_banner_timeout)"
            )
        if isinstance(exc, paramiko.SSHException) and "Authentication timeout" in text:
            return (
                f"authentication did not finish within {self.auth_timeout:g} s (the inventory var "
                "ssh_auth_timeout)"
            )
        if silent and silent[-1] is not hops[0]:  # the first gateway of a ProxyJump never answered
            return f"cannot connect to gateway {describe(silent[-1])} (ProxyJump): {text}"
        return f"cannot connect: {text}"

    def _open_channel(self) -> tuple[paramiko.Transport, paramiko.Channel]:
        """Open a session channel; a reused connection that turns out dead is replaced once.

        Retrying here is safe: nothing has run yet. Later failures are left to the engine's retries.
        """
        for attempt in (1, 2):
            transport, fresh = self._ensure_connected()
            try:
                return transport, transport.open_session(timeout=self.connect_timeout)
            except paramiko.ChannelException as exc:  # refused (e.g. MaxSessions); connection is fine
                raise TransportError(f"{self.label}: the server refused a new session: {exc}") from exc
            except NETWORK_ERRORS as exc:
                self._drop(transport)
                if fresh or attempt == 2:
                    raise TransportError(f"{self.label}: connection failed: {network_reason(exc)}") from exc
        raise AssertionError("unreachable")

    def _drop(self, transport: paramiko.Transport) -> None:
        """Forget the connection that owns ``transport`` so that the next command reconnects."""
        with self._lock:
            conn = self._conn
            if conn is not None and conn.transport is transport:
                self._conn = None
            else:
                conn = None
        if conn is not None:
            close_chain(conn)

    # -- commands ---------------------------------------------------------------------------------

    def run(
        self,
        command: str,
        *,
        stdin: bytes | BinaryIO | None = None,
        stdout: Sink | None = None,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        secret: bool = False,
        cancel: threading.Event | None = None,
    ) -> CommandResult:
        streams_in = stdin is not None and not isinstance(stdin, bytes | bytearray | memoryview)
        if (stdout is not None or streams_in) and self.bulk_off is None:
            try:
                return self._run_bulk(
                    command, stdin=stdin, stdout=stdout, timeout=timeout, env=env, secret=secret,
                    cancel=cancel,
                )  # fmt: skip
            except BulkUnavailable as why:
                self.bulk_off = str(why) or "ssh could not start the command"
                log.info("%s: bulk streams go over paramiko: %s", self.label, self.bulk_off)
        if stdin is None and stdout is None and self.session_off is None:
            result = self._run_in_session(command, timeout=timeout, env=env, cancel=cancel)
            if result is not None:
                return result
        started = time.monotonic()
        deadline = None if timeout is None else started + timeout
        remote, prefix = remote_command(command, env, secret)

        transport, chan = self._open_channel()
        try:
            chan.exec_command(remote)
        except NETWORK_ERRORS as exc:
            chan.close()
            self._drop(transport)
            raise TransportError(f"{self.label}: could not start the command: {network_reason(exc)}") from exc

        out: Tail | CountingSink = Tail() if stdout is None else CountingSink(stdout)
        err = PidFilter(Tail())
        feeder = StdinFeeder(
            write=channel_writer(chan),
            close=chan.shutdown_write,
            prefix=prefix,
            source=stdin,
            name=f"{self.name}-stdin",
        )
        if prefix or stdin is not None:
            feeder.start()
        else:
            # Nothing to send but EOF: do it here. A thread per command costs ~0.3 ms of CPU,
            # which a fleet of short steps pays hundreds of times (docs/performance.md).
            feeder.run()
        reason: str | None = None
        try:
            reason = pump(chan, out, err, deadline, cancel, feeder)
        except BaseException:
            # The sink failed, or KeyboardInterrupt: stop the command on the host before re-raising.
            self._kill(transport, chan, err)
            raise
        if reason is not None:
            killed = self._kill(transport, chan, err)
            join_feeder(feeder)
            self._raise_abort(reason, killed, timeout, feeder)
        err.flush()
        join_feeder(feeder)
        received_status = chan.status_event.is_set() and chan.exit_status != -1
        # A server always sends EOF before closing a channel; a channel closed without EOF and
        # without exit status was torn down with the connection.
        lost = not received_status and (not chan.eof_received or not transport.is_active())
        chan.close()
        if lost:
            self._drop(transport)
            raise self._command_lost(err.pgid)
        return CommandResult(
            command=command,
            rc=chan.exit_status,  # -1: killed by a signal (paramiko drops "exit-signal")
            stdout=out.text() if isinstance(out, Tail) else "",
            stderr=err.tail.text(),
            duration=time.monotonic() - started,
            stdout_bytes=out.total,
            stderr_bytes=err.tail.total,
        )

    def _command_lost(self, pgid: int | None) -> CommandLost:
        """The error for a connection that died mid-command, after stopping what it left running.

        Why at once, on a new connection: the command goes on without us on the host (sshd sends
        no signal to a session without a terminal when it dies), so a retry would run it a second
        time beside it. If no connection can be opened now, the group is stopped on the next one.
        """
        outcome = "unknown"
        if pgid is not None and pgid > 1:
            try:
                transport, _fresh = self._ensure_connected()  # reaps remembered orphans too
                outcome = reap(transport, pgid, self.label, self.connect_timeout)
            except MaintkitError as exc:
                log.info("%s: cannot reconnect to stop the lost command: %s", self.label, exc)
                with self._lock:
                    self._orphans.add(pgid)
        said = {
            "stopped": "it was still running and was stopped on a new connection",
            "ended": "it had already ended on the host (its result is unknown)",
            "unknown": "it may still be running on the host (it is stopped on the next connection)",
        }[outcome]
        self.lost_commands.append((pgid, outcome))
        return CommandLost(f"{self.label}: connection lost while a command was running; {said}", outcome)

    def _raise_abort(
        self, reason: str, killed: bool, timeout: float | None, feeder: StdinFeeder | None
    ) -> NoReturn:
        suffix = "and was killed" if killed else "and could not be killed: it may still be running"
        if reason == "timeout":
            raise CommandTimeout(f"{self.label}: command timed out after {timeout:g} s {suffix}")
        if reason == "cancel":
            raise Interrupted(f"{self.label}: interrupted; the command {suffix.removeprefix('and ')}")
        assert feeder is not None and feeder.error is not None
        raise feeder.error

    # -- short commands in the long-lived session (see maintkit.transport.session) ----------------

    def _run_in_session(
        self,
        command: str,
        *,
        timeout: float | None,
        env: Mapping[str, str] | None,
        cancel: threading.Event | None,
    ) -> CommandResult | None:
        """Run a command without input or sink in the host's session; None: use a channel of its own.

        The session serves one command at a time: a command that comes while another runs (another
        thread of the same host) gets its own channel instead of waiting. A secret command is safe
        here: the script only ever travels on the runner's stdin.
        """
        script = with_env(command, env)
        if len(script) > MAX_SCRIPT or not self._session_lock.acquire(blocking=False):
            return None
        try:
            started = time.monotonic()
            deadline = None if timeout is None else started + timeout
            for attempt in range(SESSION_ATTEMPTS):
                transport, fresh = self._ensure_connected()
                session = self._live_session(transport, fresh)
                if session is None:
                    if self.session_off is not None:
                        return None
                    continue  # the reused connection was dead: the next turn opens a new one
                out, err = Tail(), Tail()
                try:
                    rc = session.run(script, out, err, deadline, cancel.is_set if cancel else None)
                except SessionLost as lost:
                    self._forget_session(session)
                    if not lost.started:
                        if attempt < SESSION_ATTEMPTS - 1:
                            continue  # nothing ran: safe to send again on a new session
                        raise TransportError(f"{self.label}: connection failed: {lost}") from None
                    if not transport.is_active():
                        self._drop(transport)
                        raise self._command_lost(session.pgid) from None
                    rc = lost.status if lost.status > 0 else -1  # the command ended the runner
                except Aborted as abort:
                    killed = self._end_session(transport, session)
                    self._raise_abort(abort.reason, killed, timeout, None)
                except BaseException:
                    self._end_session(transport, session)
                    raise
                return CommandResult(
                    command=command,
                    rc=rc,
                    stdout=out.text(),
                    stderr=err.text(),
                    duration=time.monotonic() - started,
                    stdout_bytes=out.total,
                    stderr_bytes=err.total,
                )
            raise TransportError(f"{self.label}: connection failed: no session could be started")
        finally:
            self._session_lock.release()

    def _live_session(self, transport: paramiko.Transport, fresh: bool) -> Session | None:
        """The running session on ``transport``, started if needed; None when it cannot start.

        None with :attr:`session_off` unset means the reused connection was dead and was dropped:
        the caller's next ``_ensure_connected`` opens a new one (a new connection that fails raises).
        """
        session = self._session
        if session is not None and session.transport is transport and session.alive:
            return session
        if session is not None:
            self._forget_session(session)
        try:
            session = Session(transport, self.connect_timeout)
        except paramiko.ChannelException as exc:  # refused (e.g. MaxSessions); connection is fine
            raise TransportError(f"{self.label}: the server refused a new session: {exc}") from exc
        except (SessionLost, Aborted) as exc:
            if not transport.is_active():  # the connection died, not the runner
                self._drop(transport)
                if fresh:
                    raise TransportError(f"{self.label}: connection lost while starting a session") from exc
                return None
            # A login shell that is not POSIX, or one that never answers: commands get channels.
            self.session_off = f"the session runner did not start: {exc}"
            log.info("%s: commands get a session each: %s", self.label, self.session_off)
            return None
        except NETWORK_ERRORS as exc:
            self._drop(transport)
            if fresh:
                raise TransportError(f"{self.label}: connection failed: {network_reason(exc)}") from exc
            return None
        self._session = session
        self.session_count += 1
        return session

    def _forget_session(self, session: Session) -> None:
        if self._session is session:
            self._session = None
        session.close()

    def _end_session(self, transport: paramiko.Transport, session: Session) -> bool:
        """Kill the session's process group (the running command with it); True if a kill was sent."""
        self._forget_session(session)
        return kill_group(transport, session.pgid, self.label, self.connect_timeout)

    # -- bulk streams through the system OpenSSH client (see maintkit.transport.openssh) ----------

    def _run_bulk(
        self,
        command: str,
        *,
        stdin: bytes | BinaryIO | None,
        stdout: Sink | None,
        timeout: float | None,
        env: Mapping[str, str] | None,
        secret: bool,
        cancel: threading.Event | None,
    ) -> CommandResult:
        """Run a command that streams (output to a sink, or input from a stream) through ``ssh``.

        Same contract as :meth:`run`. Raises :class:`BulkUnavailable` when ``ssh`` could not start
        the command: nothing ran and nothing was read from ``stdin``, which is why the input is
        held back until the host's shell has printed its pid line (a few milliseconds).
        """
        program = openssh.client()
        if program is None:
            raise BulkUnavailable(f"no ssh client (or {openssh.DISABLE_ENV}=paramiko)")
        started = time.monotonic()
        deadline = None if timeout is None else started + timeout
        transport, _fresh = self._ensure_connected()  # the verified connection: key, user, port
        conn = self._conn
        if conn is None or conn.gateway:
            raise BulkUnavailable("the host is reached through a gateway")
        target = self._bulk_target(conn, transport)
        pin = self._pin_key(target)
        remote, prefix = remote_command(command, env, secret)
        control = openssh.control_path(openssh.shared_folder() or pin.folder, target)
        proc = openssh.start(openssh.ssh_argv(program, target, pin.path, remote, control))
        assert proc.stdin is not None
        out: Tail | CountingSink = Tail() if stdout is None else CountingSink(stdout)
        err = PidFilter(Tail())
        feeder = StdinFeeder(
            write=openssh.pipe_writer(proc.stdin),
            close=proc.stdin.close,
            prefix=prefix,
            source=stdin,
            name=f"{self.name}-stdin",
        )
        if not prefix and stdin is None:
            feeder.run()  # EOF at once, no thread

        def start_input() -> None:
            """Start sending stdin once the command runs (pid line, output, or after the grace)."""
            waiting = feeder.ident is None and (prefix or stdin is not None)
            if waiting and (err.settled or out.total or time.monotonic() - started > PID_GRACE):
                feeder.start()

        try:
            reason = openssh.pump(proc, out, err, deadline, cancel, feeder, start_input)
        except BaseException:
            self._kill_bulk(transport, proc, err)
            raise
        if reason is not None:
            killed = self._kill_bulk(transport, proc, err)
            join_feeder(feeder)
            self._raise_abort(reason, killed, timeout, feeder)
        err.flush()
        join_feeder(feeder)
        openssh.stop(proc)
        rc = proc.returncode
        stderr = openssh.without_mux_notices(err.tail.text())
        if rc == 255 and err.pgid is None and out.total == 0 and not read_input(feeder, stdin):
            raise BulkUnavailable(f"ssh could not start the command: {stderr.strip()[-300:]}")
        if rc == 255 and openssh.lost_connection(stderr.encode("utf-8", "replace")):
            raise TransportError(
                f"{self.label}: connection lost while a command was running; it may still be running"
            )
        self.bulk_count += 1
        return CommandResult(
            command=command,
            rc=rc,
            stdout=out.text() if isinstance(out, Tail) else "",
            stderr=stderr,
            duration=time.monotonic() - started,
            stdout_bytes=out.total,
            stderr_bytes=err.tail.total,
        )

    def _bulk_target(self, conn: Connection, transport: paramiko.Transport) -> BulkTarget:
        key = transport.get_remote_server_key()
        files = conn.connect_kwargs.get("key_filename") or []
        files = [files] if isinstance(files, str) else files
        return BulkTarget(
            host=str(conn.host),
            port=int(conn.port),
            user=str(conn.user),
            identity_files=tuple(os.path.expanduser(str(f)) for f in files),
            connect_timeout=float(conn.connect_timeout or self.connect_timeout),
            key_name=key.get_name(),
            key_base64=key.get_base64(),
            keepalive=KEEPALIVE_INTERVAL,
        )

    def _pin_key(self, target: BulkTarget) -> PinnedHostKey:
        """The private known_hosts file holding the key this connection verified."""
        with self._lock:
            if self._pin is None or self._pinned != (target.key_name, target.key_base64):
                if self._pin is not None:
                    openssh.close_masters(self._pin.folder)
                    self._pin.remove()
                self._pin = PinnedHostKey(target)
                self._pinned = (target.key_name, target.key_base64)
            return self._pin

    def _kill_bulk(
        self, transport: paramiko.Transport, proc: subprocess.Popen[bytes], err: PidFilter
    ) -> bool:
        """Kill the command's process group (over paramiko), then end the local ``ssh``."""
        try:
            give_up = time.monotonic() + PID_GRACE
            stream = proc.stderr
            while stream is not None and err.pgid is None and time.monotonic() < give_up:
                ready, _, _ = select.select([stream], [], [], 0.05)
                if ready:
                    data = os.read(stream.fileno(), CHUNK)
                    if not data:
                        break
                    err.write(data)
                elif proc.poll() is not None:
                    break
            return kill_group(transport, err.pgid, self.label, self.connect_timeout)
        finally:
            openssh.stop(proc)

    def _kill(self, transport: paramiko.Transport, chan: paramiko.Channel, err: PidFilter) -> bool:
        """Kill the command's process group on the host, close its channel; True if a kill was sent."""
        try:
            give_up = time.monotonic() + PID_GRACE
            # The pid line is the first thing the shell prints; wait for it if the abort came early.
            while err.pgid is None and not chan.closed and time.monotonic() < give_up:
                if chan.recv_stderr_ready():
                    err.write(chan.recv_stderr(CHUNK))
                elif chan.recv_ready():
                    chan.recv(CHUNK)  # discarded: the command is being stopped
                elif chan.eof_received:
                    break
                else:
                    select.select([chan.fileno()], [], [], 0.05)
            return kill_group(transport, err.pgid, self.label, self.connect_timeout)
        except NETWORK_ERRORS as exc:
            log.warning("%s: could not kill the command: %s", self.label, exc)
            return False
        finally:
            chan.close()
