"""Telling the outside world how a run went: healthcheck pings, notifications, Prometheus metrics.

Why: cron users learn of a failed backup from these, not from the console (restic#1968: "cron not
running or mail broken"). borgmatic's convention is kept: ping ``URL/start`` when a run starts, ``URL``
on success, ``URL/fail`` on failure (healthchecks.io); notifications go through apprise URLs; a
failure to ping or notify is reported, never turns a good run into a failed one.

Configuration (inventory or playbook variables, read from every selected host and de-duplicated):
``healthcheck: URL``, ``notify: [apprise URLs]``, ``notify_on_success: false``, ``metrics_file: PATH``.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tenacity import Retrying, stop_after_attempt, wait_exponential

from maintkit.model.results import HostOutcome, RunOutcome
from maintkit.secrets import Redactor
from maintkit.text.templating import render

PING_TIMEOUT = 10.0


@dataclass
class Monitoring:
    """The monitoring hooks of one run."""

    env: str
    playbook: str
    healthchecks: list[str] = field(default_factory=list)
    notify: list[str] = field(default_factory=list)
    notify_on_success: bool = False
    metrics_files: list[str] = field(default_factory=list)
    emit: Callable[..., None] = lambda *a, **k: None

    @classmethod
    def from_variables(
        cls, env: str, playbook: str, host_vars: Iterable[Mapping[str, Any]], redactor: Redactor
    ) -> Monitoring:
        """Given every selected host's variables, collect the distinct hooks (their URLs are secret)."""
        hooks = cls(env, playbook)
        for variables in host_vars:
            for name, target in (
                ("healthcheck", hooks.healthchecks),
                ("notify", hooks.notify),
                ("metrics_file", hooks.metrics_files),
            ):
                for value in _as_list(render(variables.get(name), variables, redactor)):
                    if value not in target:
                        target.append(value)
            if variables.get("notify_on_success"):
                hooks.notify_on_success = True
        for url in hooks.healthchecks + hooks.notify:
            redactor.add(url)  # they embed tokens: never print them
        return hooks

    def start(self) -> None:
        for url in self.healthchecks:
            self._ping(url.rstrip("/") + "/start", "")

    def finish(self, outcome: RunOutcome, duration: float) -> None:
        ok = outcome.exit_code == 0
        summary = describe(outcome, self.playbook, self.env)
        for url in self.healthchecks:
            self._ping(url if ok else url.rstrip("/") + "/fail", summary)
        if self.notify and (not ok or self.notify_on_success):
            title = ("OK" if ok else outcome.status.upper()) + f": maintkit {self.playbook} on {self.env}"
            self._notify(title, summary, ok)
        for path in self.metrics_files:
            try:
                write_metrics(Path(path), self.env, self.playbook, outcome, duration)
            except OSError as error:
                self.emit("monitoring_error", hook="metrics_file", error=str(error))

    def warn(self, title: str, body: str) -> None:
        """Send a warning (a trend seen in the history) through the notification hooks, whatever
        ``notify_on_success`` says: a warning is the news itself."""
        if self.notify:
            self._notify(title, body, ok=True, warning=True)

    def _ping(self, url: str, body: str) -> None:
        import urllib.request  # here: http.client, email and ssl cost ~25 ms at every start otherwise

        try:
            for attempt in Retrying(
                stop=stop_after_attempt(3), wait=wait_exponential(0.5, max=4), reraise=True
            ):
                with attempt:
                    request = urllib.request.Request(url, data=body.encode()[:10_000], method="POST")  # noqa: S310
                    with urllib.request.urlopen(request, timeout=PING_TIMEOUT):  # noqa: S310
                        pass
            self.emit("healthcheck_ping", url=url)
        except OSError as error:
            self.emit("monitoring_error", hook="healthcheck", url=url, error=str(error))

    def _notify(self, title: str, body: str, ok: bool, warning: bool = False) -> None:
        import apprise  # imported here: only runs that notify pay for it

        sender = apprise.Apprise()
        for url in self.notify:
            if not sender.add(url):
                self.emit(
                    "monitoring_error", hook="notify", url=url, error="apprise does not understand this URL"
                )
        kind = apprise.NotifyType.SUCCESS if ok else apprise.NotifyType.FAILURE
        if warning:
            kind = apprise.NotifyType.WARNING
        if len(sender) and not sender.notify(title=title, body=body, notify_type=kind):
            self.emit("monitoring_error", hook="notify", error="a notification could not be delivered")
        elif len(sender):
            self.emit("notified", count=len(sender))


def describe(outcome: RunOutcome, playbook: str, env: str) -> str:
    """A plain-text summary of a run for pings and notifications."""
    code = int(outcome.exit_code)
    lines = [f"run {outcome.run_id}: playbook {playbook} on {env}: {outcome.status} (exit {code})"]
    if outcome.error:
        lines.append(outcome.error)
    for host in outcome.hosts:
        line = f"- {host.host}: {host.status}"
        if host.failed_step:
            failed = next((s for s in host.steps if s.name == host.failed_step and s.failed), None)
            line += f" at step {host.failed_step!r}" + (f": {failed.result.msg}" if failed else "")
        lines.append(line)
    return "\n".join(lines)


def _as_list(value: Any) -> list[str]:
    if value in (None, "", []):
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def host_bytes(host: HostOutcome) -> int:
    """Bytes a host's steps report having moved (``data.bytes`` of their results)."""
    return sum(int(s.result.data.get("bytes", 0) or 0) for s in host.steps)


def write_metrics(path: Path, env: str, playbook: str, outcome: RunOutcome, duration: float) -> None:
    """Rewrite a Prometheus textfile atomically, replacing only this run's series (per site).

    One series set per site (inventory host), env and playbook. The last success time survives failed
    runs: it is what an alert compares with "now".
    """
    existing = path.read_text().splitlines() if path.exists() else []
    now = time.time()
    ours: list[str] = []
    replaced: set[str] = set()
    for host in outcome.hosts:
        labels = f'{{env="{_escape(env)}",playbook="{_escape(playbook)}",site="{_escape(host.host)}"}}'
        replaced.add(labels)
        previous = [
            line.rsplit(" ", 1)[-1]
            for line in existing
            if line.startswith("maintkit_last_success_timestamp_seconds" + labels)
        ]
        success = f"{now:.3f}" if host.ok and outcome.exit_code == 0 else (previous[0] if previous else None)
        ours += [
            f"maintkit_last_run_timestamp_seconds{labels} {now:.3f}",
            f"maintkit_last_run_exit_code{labels} {int(outcome.exit_code)}",
            f"maintkit_last_run_interrupted{labels} {int(outcome.interrupted)}",
            f"maintkit_last_run_duration_seconds{labels} {host.duration or duration:.3f}",
            f"maintkit_last_run_bytes{labels} {host_bytes(host)}",
        ]
        if success is not None:
            ours.append(f"maintkit_last_success_timestamp_seconds{labels} {success}")
    kept = [
        line for line in existing if not line.startswith("#") and not any(label in line for label in replaced)
    ]
    body = "".join(f"{h}\n" for h in _HEADERS) + "".join(f"{line}\n" for line in sorted(kept + ours))
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".maintkit-metrics-")
    with os.fdopen(handle, "w") as out:
        out.write(body)
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)


_HEADERS = [
    "# HELP maintkit_last_run_timestamp_seconds When the last run of a playbook on an environment ended.",
    "# TYPE maintkit_last_run_timestamp_seconds gauge",
    "# HELP maintkit_last_run_exit_code Exit code of the last run (0 done, 1 failed, 3 rollback failed).",
    "# TYPE maintkit_last_run_exit_code gauge",
    "# HELP maintkit_last_run_interrupted 1 when a signal stopped the last run (SIGINT, SIGTERM, SIGHUP).",
    "# TYPE maintkit_last_run_interrupted gauge",
    "# HELP maintkit_last_run_duration_seconds Duration of the last run.",
    "# TYPE maintkit_last_run_duration_seconds gauge",
    "# HELP maintkit_last_run_bytes Bytes the last run moved for the site (snapshot artifacts).",
    "# TYPE maintkit_last_run_bytes gauge",
    "# HELP maintkit_last_success_timestamp_seconds When the last successful run ended.",
    "# TYPE maintkit_last_success_timestamp_seconds gauge",
]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
