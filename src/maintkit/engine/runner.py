"""A run: one playbook against one environment, from the lock to the exit code.

Flow (DESIGN.md): connect → lock → for each batch (``serial``), hosts in parallel up to
``max_parallel``, each host its steps in order; a failing host runs ``rollback`` then ``always``; a
failing batch stops the batches after it; the lock is released on every path. ``--check`` plans every
step, opening no connection and taking no lock.
"""

from __future__ import annotations

import functools
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from maintkit.engine.journal import EventBus
from maintkit.engine.lock import EnvironmentLock
from maintkit.engine.lockplan import break_lock_command, lock_targets
from maintkit.engine.manual import manual_steps
from maintkit.engine.runconfig import RunConfig
from maintkit.engine.steps import CONNECT_ATTEMPTS, HostState, run_step
from maintkit.model.hosts import Host
from maintkit.model.playbooks import Playbook, Step
from maintkit.model.problems import LockHeld, MaintkitError, TransportError
from maintkit.model.results import ActionResult, ExitCode, HostOutcome, RunOutcome, StepOutcome
from maintkit.secrets import Redactor
from maintkit.storage.sites import site_name
from maintkit.text.templating import HostVars
from maintkit.transport.base import Transport
from maintkit.transport.registry import open_transport

if TYPE_CHECKING:
    from maintkit.jobs.restore.source import RestoreSource


@dataclass
class RunOptions:
    check: bool = False
    accept_new_host_keys: bool = False
    break_lock: bool = False
    #: the command line as typed (sys.argv), to print the retry with --break-lock; None: unknown
    argv: list[str] | None = None
    #: ``maintkit restore --into`` / ``drill``: the source environment, handed to every step as it is
    restore_source: RestoreSource | None = None
    #: which maintkit command runs the playbook (``run``, ``drill``, ``snapshots verify``...), for the history
    command: str | None = None
    #: ``--override-freeze --reason``: the reason, windows, hosts and steps (recorded in ``run_start``)
    freeze_override: dict[str, Any] | None = None
    #: the ``maintkit fleet run`` this run is one site of (its run id), named in ``run_start``
    fleet_run: str | None = None


def batches(hosts: list[Host], serial: int | str | None) -> list[list[Host]]:
    """Split hosts into the batches ``serial`` asks for: all at once, N at a time, or N% at a time."""
    if not hosts:
        return []
    if serial is None:
        size = len(hosts)
    elif isinstance(serial, str):
        size = max(1, math.ceil(len(hosts) * float(serial.rstrip("%")) / 100))
    else:
        size = serial
    return [hosts[i : i + size] for i in range(0, len(hosts), size)]


class Runner:
    """Executes one validated run. ``stop`` is set by the CLI's signal handler."""

    def __init__(
        self,
        config: RunConfig,
        bus: EventBus,
        redactor: Redactor,
        options: RunOptions | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.config = config
        self.playbook: Playbook = config.playbook
        self.bus = bus
        self.redactor = redactor
        self.options = options or RunOptions()
        self.stop = stop or threading.Event()
        self.run_id = bus.run_id
        self._once: dict[tuple[int, int], Future[StepOutcome]] = {}
        self._once_lock = threading.Lock()
        self.transports: dict[str, Transport] = {}
        self._connecting: list[Future[None]] | None = None
        #: the worker threads of the run: connections, lock and hosts reuse them (see _workers)
        self._pool: ThreadPoolExecutor | None = None

    def _workers(self) -> ThreadPoolExecutor:
        """The run's thread pool, made on first use; one worker per host, up to ``max_parallel``.

        Why one pool for the whole run: a thread started while twenty others are busy waits for the
        GIL to start, and the hosts of a batch started over ~0.1 s instead of at once at N = 20
        (docs/performance.md). The threads that opened the connections run the hosts.
        """
        if self._pool is None:
            size = max(1, min(self.playbook.max_parallel, len(self.config.hosts)))
            self._pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="maintkit-host")
        return self._pool

    # -- the run -------------------------------------------------------------------------------

    def start_connecting(self) -> None:
        """Begin opening every host's connection in the background; :meth:`run` waits for them.

        Why: the SSH handshakes (tens of milliseconds each, mostly waiting for the servers) then
        overlap what the caller still has to set up (console, journal, monitoring) instead of
        following it. Call it only for a validated run: nothing connects before validation, and
        nothing runs on a host before the lock, as without it. Does nothing in --check.
        """
        if self.options.check or self._connecting is not None:
            return
        hosts = self.config.hosts
        self.transports = self._open_transports()
        pool = self._workers()
        self._connecting = [pool.submit(self._connect, self.transports[h.name]) for h in hosts]

    def _open_transports(self) -> dict[str, Transport]:
        return {
            h.name: open_transport(h, accept_new_host_keys=self.options.accept_new_host_keys)
            for h in self.config.hosts
        }

    def run(self) -> RunOutcome:
        started = time.monotonic()
        hosts = self.config.hosts
        self.bus.emit(
            "run_start",
            playbook=self.playbook.name,
            playbook_path=self.playbook.path,
            env=self.config.inventory.name,
            hosts=[h.name for h in hosts],
            sites=self._sites(hosts),
            check=self.options.check,
            command=self.options.command,
            freeze_override=self.options.freeze_override,
            control_host=socket.gethostname(),
            pid=os.getpid(),
            **({"fleet_run": self.options.fleet_run} if self.options.fleet_run else {}),
        )
        outcome = RunOutcome(self.run_id, [HostOutcome(h.name) for h in hosts])
        try:
            if not self.transports:
                self.transports = self._open_transports()
            if self.options.check:
                self._run_batches(outcome)
            else:
                with self._locked(hosts):
                    self._run_batches(outcome)
        except LockHeld as error:
            outcome.error = str(error)
            outcome.exit_code_override = ExitCode.LOCKED
        except MaintkitError as error:
            outcome.error = str(error)
        finally:
            for transport in self.transports.values():
                transport.close()
            if self._pool is not None:
                self._pool.shutdown(wait=False)
                self._pool = None
        outcome.interrupted = outcome.interrupted or self.stop.is_set()
        self.bus.emit(
            "run_end",
            status=outcome.status,
            exit_code=int(outcome.exit_code),
            interrupted=outcome.interrupted,
            error=outcome.error,
            duration=round(time.monotonic() - started, 3),
            hosts={h.host: h.status for h in outcome.hosts},
        )
        return outcome

    def _sites(self, hosts: list[Host]) -> dict[str, str]:
        """Which site each host is (the history groups by site); the host's name when unreadable."""
        sites = {}
        for host in hosts:
            try:
                sites[host.name] = site_name(self.config.variables[host.name])
            except Exception:  # a template that cannot render yet: the step will say so, not this
                sites[host.name] = host.name
        return sites

    @contextmanager
    def _locked(self, hosts: list[Host]) -> Iterator[None]:
        """Connect to every host (in parallel, retried), then hold the environment lock around the body."""
        if self._connecting is not None:  # start_connecting() began it: wait for every host
            futures, self._connecting = self._connecting, None
            wait(futures)
            for future in futures:
                future.result()  # the first failure, in host order, as _parallel reports it
        else:
            self._parallel(hosts, lambda h: self._connect(self.transports[h.name]))
        env = self.config.inventory.name
        try:
            targets = lock_targets(hosts, self.config.variables, env, self.transports, self.redactor)
        except ValueError as error:  # validation checks these first; a library caller may not have
            raise MaintkitError(f"lock: {error}") from error
        lock = EnvironmentLock(
            targets,
            run_id=self.run_id,
            env=env,
            playbook=self.playbook.name,
            break_lock=self.options.break_lock,
            break_command=break_lock_command(self.options.argv),
            emit=self.bus.emit,
            parallel=self.playbook.max_parallel,
            pool=self._workers(),
        )
        lock.acquire()
        try:
            yield
        finally:
            lock.release()

    def _connect(self, transport: Transport) -> None:
        for attempt in Retrying(
            stop=stop_after_attempt(CONNECT_ATTEMPTS),
            wait=wait_exponential_jitter(multiplier=0.5, max=5),
            retry=retry_if_exception_type(TransportError),
            reraise=True,
        ):
            with attempt:
                transport.connect()

    def _parallel(self, hosts: list[Host], work: Callable[[Host], Any]) -> list[Any]:
        """Run ``work`` for each host on up to ``max_parallel`` threads; re-raise the first error."""
        if len(hosts) == 1:
            return [work(hosts[0])]
        futures = [self._workers().submit(work, h) for h in hosts]
        wait(futures)  # every host ends before an error is raised, as before
        return [f.result() for f in futures]

    def _run_batches(self, outcome: RunOutcome) -> None:
        by_name = {h.host: h for h in outcome.hosts}
        for number, batch in enumerate(batches(self.config.hosts, self.playbook.serial)):
            if self.stop.is_set():
                outcome.interrupted = True
                break
            self.bus.emit("batch_start", batch=number + 1, hosts=[h.name for h in batch])
            results: list[HostOutcome] = self._parallel(
                batch, functools.partial(self._run_host, batch=number)
            )
            for result in results:
                by_name[result.host] = result
            outcome.hosts = [by_name[h.host] for h in outcome.hosts]
            if any(not r.ok for r in results):
                remaining = len(self.config.hosts) - sum(1 for h in outcome.hosts if h.started)
                if remaining:
                    self.bus.emit("batch_failed", batch=number + 1, hosts_not_run=remaining)
                break

    # -- one host --------------------------------------------------------------------------------

    def _variables(self, host: Host) -> HostVars:
        """A fresh copy of the host's variables, every register name bound to a not-run result."""
        variables = self.config.variables[host.name].copy()
        not_run = ActionResult(skipped=True, msg="not run").as_vars()
        for name in self.playbook.registers:
            if name not in variables:
                variables[name] = dict(not_run)
        return variables

    def _run_host(self, host: Host, batch: int) -> HostOutcome:
        started = time.monotonic()
        outcome = HostOutcome(host.name, started=True)
        state = HostState(
            host,
            self.transports[host.name],
            self._variables(host),
            self.redactor,
            self.run_id,
            self.bus.emit,
            check=self.options.check,
            registers=frozenset(self.playbook.registers),
            registered_by={
                s.register: s.name
                for s in self.playbook.steps + self.playbook.rollback + self.playbook.always
                if s.register
            },
            restore_source=self.options.restore_source,
        )
        self.bus.emit("host_start", host=host.name)
        for index, step in enumerate(self.playbook.steps):
            if self.stop.is_set():
                outcome.interrupted = True
                break
            if step.run_once:
                result = self._run_once(step, (batch, index), state)
            else:
                result = run_step(step, "steps", state, self.stop)
            outcome.steps.append(result)
            if result.failed:
                outcome.failed_step = step.name
                outcome.interrupted = self.stop.is_set()
                break
        if (outcome.failed_step or outcome.interrupted) and outcome.steps and self.playbook.rollback:
            outcome.rollback_ran = True
            self.bus.emit("rollback_start", host=host.name, failed_step=outcome.failed_step)
            outcome.rollback_failed = not self._run_section(
                self.playbook.rollback, "rollback", state, outcome
            )
            if outcome.rollback_failed:
                self.bus.emit("manual_steps", **manual_steps(self.playbook, state, outcome))
        if self.options.check and self.playbook.rollback and not outcome.rollback_ran:
            self._run_section(self.playbook.rollback, "rollback", state, outcome)
        if self.playbook.always:
            outcome.always_failed = not self._run_section(
                self.playbook.always, "always", state, outcome, keep_going=True
            )
        outcome.duration = time.monotonic() - started
        self.bus.emit(
            "host_end",
            host=host.name,
            status=outcome.status,
            duration=round(outcome.duration, 3),
            failed_step=outcome.failed_step,
        )
        return outcome

    def _run_section(
        self,
        steps: list[Step],
        section: str,
        state: HostState,
        outcome: HostOutcome,
        keep_going: bool = False,
    ) -> bool:
        """Run rollback (stop at the first failure) or always (every step); return True if none failed.

        These steps are not cancelled by an interrupt: they are what makes the interrupt safe.
        """
        ok = True
        for step in steps:
            result = run_step(step, section, state, cancel=None)
            outcome.steps.append(result)
            if result.failed:
                ok = False
                if not keep_going:
                    break
        return ok

    def _run_once(self, step: Step, key: tuple[int, int], state: HostState) -> StepOutcome:
        """Run the step on the first host of the batch that reaches it; the others take its result."""
        with self._once_lock:
            future = self._once.get(key)
            owner = future is None
            if future is None:
                future = self._once[key] = Future()
        if owner:
            try:
                result = run_step(step, "steps", state, self.stop)
            except BaseException as error:
                future.set_exception(error)
                raise
            future.set_result(result)
            return result
        shared = future.result()
        if step.register:
            state.variables[step.register] = shared.result.as_vars()
        self.bus.emit(
            "step_end",
            host=state.host.name,
            step=step.name,
            action=step.action,
            section="steps",
            status=shared.status,
            run_once=True,
            msg="result of run_once step",
            duration=0,
        )
        return replace(shared, duration=0.0, commands=[])
