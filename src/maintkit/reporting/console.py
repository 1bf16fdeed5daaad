"""The console: one line per finished step, a summary table at the end; quiet for cron.

Why a sink on the event bus: the console sees exactly what the journal records (already redacted),
so what an engineer read at 3 a.m. can be found again with ``maintkit runs show``.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from maintkit.model.results import RunOutcome
from maintkit.reporting.facts import human_size, step_facts
from maintkit.sources.script import script_body

STATUS_STYLE = {
    "ok": ("✓", "green"),
    "changed": ("✓", "yellow"),
    "skipped": ("-", "dim"),
    "planned": ("?", "cyan"),
    "ignored": ("!", "magenta"),
    "failed": ("✗", "bold red"),
}
HOST_STYLE = {
    "ok": "green",
    "failed": "bold red",
    "rolled_back": "yellow",
    "rollback_failed": "bold red reverse",
    "not_run": "dim",
}


class ConsoleSink:
    """Render events for people. ``verbosity``: -1 quiet (only failures), 0 normal, 1 with output."""

    def __init__(self, console: Console, verbosity: int = 0) -> None:
        self.console = console
        self.verbosity = verbosity
        self._held: list[str] = []  # quiet mode keeps failure lines until the end
        self._start: dict[str, Any] = {}  # the run_start event: playbook, env, run id
        self._failure: dict[str, Any] | None = None  # the first failed step (the cause, for the headline)
        self._end: dict[str, Any] = {}

    def handle(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "run_start":
            self._start = event
        elif kind == "run_end":
            self._end = event
        elif kind == "step_end" and event.get("status") == "failed" and self._failure is None:
            self._failure = event
        line = getattr(self, f"_on_{kind}", None)
        text = line(event) if line else None
        if text is None:
            return
        if self.verbosity < 0:
            if kind in {"step_end", "run_end", "retry", "lock_broken", "manual_steps"} and _is_bad(event):
                self._held.append(text)
            return
        self.console.print(text, highlight=False, soft_wrap=True)

    def close(self) -> None:
        for text in self._held:
            self.console.print(text, highlight=False, soft_wrap=True)
        self._held = []

    def finish(self, outcome: RunOutcome, journal: Any, exit_code: int | None = None) -> None:
        """The end of the console output: summary table, then the journal's path as the last line.

        Quiet (cron) and failed: first one headline saying what failed where, then the held failure
        lines, then the table, then the journal path, so a cron mail's subject-like first line and
        its last line are the two things the reader needs. ``exit_code``: the final one (a drill's
        verdict may fail a run whose steps all passed).
        """
        code = outcome.exit_code if exit_code is None else exit_code
        if self.verbosity < 0:
            if code == 0:
                return
            self.console.print(self.headline(code), highlight=False, soft_wrap=True)
            self.close()
        self.summary(outcome, force=code != 0)
        self.console.print(f"[dim]journal: {escape(str(journal))}[/]", highlight=False, soft_wrap=True)

    def headline(self, exit_code: int) -> str:
        """One line: what failed where (playbook, env, host, step, its exit code) and the run id."""
        start, end, failure = self._start, self._end, self._failure
        parts = [f"playbook {start.get('playbook', '?')}", f"env {start.get('env', '?')}"]
        if failure:
            rc = f" (rc {failure['rc']})" if failure.get("rc") is not None else ""
            parts += [f"host {failure['host']}", f"step {failure['step']!r}{rc}"]
        elif end.get("error"):
            parts.append(str(end["error"]).splitlines()[0])
        status = str(end.get("status", "failed")).upper()
        parts.append(f"run {start.get('run_id') or end.get('run_id', '?')}")
        return f"[bold red]maintkit: {status} (exit {exit_code})[/]: " + escape(" · ".join(parts))

    # -- one method per event that people care about ---------------------------------------------

    def _on_run_start(self, e: dict[str, Any]) -> str:
        mode = " [cyan](check: nothing will run)[/]" if e.get("check") else ""
        return (
            f"[bold]maintkit run {escape(e['playbook'])}[/] · env {escape(str(e['env']))} · "
            f"{len(e['hosts'])} host(s) · run {e['run_id']}{mode}"
        )

    def _on_step_end(self, e: dict[str, Any]) -> str | None:
        if e["status"] == "planned":
            return None  # the plan event said it all
        mark, style = STATUS_STYLE.get(e["status"], ("?", ""))
        section = "" if e.get("section") == "steps" else f"[dim]{e['section']}:[/] "
        text = f"[{style}]{mark}[/] [bold]{escape(e['host'])}[/] {section}{escape(e['step'])}"
        if e.get("duration"):
            text += f" [dim]{e['duration']:.2f}s[/]"
        if e.get("attempts", 0) > 1:
            text += f" [dim]({e['attempts']} attempts)[/]"
        if e["status"] in {"failed", "ignored"} and e.get("msg"):
            text += f"\n    [red]{escape(e['msg'])}[/]"
            if e.get("stderr"):
                text += "\n" + _indent(e["stderr"][-1500:], "red")
        elif e["status"] == "skipped" and e.get("msg") and self.verbosity > 0:
            text += f" [dim]({escape(e['msg'])})[/]"
        for fact in step_facts(e):  # the snapshot it made, what prune deleted (the journal's data)
            text += f"\n    {escape(fact)}"
        if self.verbosity > 0 and e["status"] not in {"failed", "ignored"}:
            for stream in ("stdout", "stderr"):
                if e.get(stream):
                    text += "\n" + _indent(e[stream][-3000:], "dim")
        return text

    def _on_command(self, e: dict[str, Any]) -> str | None:
        if self.verbosity > 0:
            return f"  [dim]{escape(e['host'])} $ {escape(e['command'])}[/]"
        return None

    def _on_plan(self, e: dict[str, Any]) -> str:
        section = "" if e.get("section") == "steps" else f"[dim]{e['section']}:[/] "
        commands = "\n".join(_plan_line(c) for c in e.get("commands", []))
        when = f" [dim](when: {escape(e['when'])})[/]" if e.get("when") else ""
        return f"[cyan]?[/] [bold]{escape(e['host'])}[/] {section}{escape(e['step'])}{when}\n{commands}"

    def _on_retry(self, e: dict[str, Any]) -> str:
        return (
            f"[yellow]↻[/] [bold]{escape(e['host'])}[/] {escape(e['step'])}: attempt {e['attempt']} failed "
            f"({escape(str(e.get('error', '')))}); retrying in {e.get('wait', 0)} s"
        )

    def _on_progress(self, e: dict[str, Any]) -> str:
        eta = f", ETA {e['eta']} s" if e.get("eta") is not None else ""
        return (
            f"  [dim]⇣ {escape(e['host'])} {escape(e['artifact'])}: {_size(e['bytes'])} "
            f"at {_size(e['rate'])}/s{eta}[/]"
        )

    def _on_transferred(self, e: dict[str, Any]) -> str | None:
        if self.verbosity < 1:
            return None
        return (
            f"  [dim]⇣ {escape(e['host'])} {escape(e['artifact'])}: {_size(e['bytes'])} in {e['seconds']} s "
            f"({_size(e['rate'])}/s)[/]"
        )

    def _on_rollback_start(self, e: dict[str, Any]) -> str:
        return f"[yellow]⟲ {escape(e['host'])}: rolling back after {escape(str(e.get('failed_step')))}[/]"

    def _on_manual_steps(self, e: dict[str, Any]) -> str:
        host = escape(e["host"])
        lines = [f"[bold red reverse] {host}: THE ROLLBACK DID NOT FINISH: a human must finish it [/]"]
        if e.get("rollback_failed_step"):
            lines.append(
                f"[red]  rollback step failed: {escape(e['rollback_failed_step'])}: "
                f"{escape(str(e.get('rollback_error') or ''))}[/]"
            )
        if e.get("rolled_back"):
            lines.append("  done: " + escape(", ".join(e["rolled_back"])))
        if e.get("not_done"):
            lines.append("[bold]  not done:[/]")
            lines += [f"    - {escape(step)}" for step in e["not_done"]]
        if e.get("instructions"):
            lines.append("[bold]  left to do by hand:[/]")
            lines += [f"    {n}. {escape(text)}" for n, text in enumerate(e["instructions"], 1)]
        return "\n".join(lines)

    def _on_lock_broken(self, e: dict[str, Any]) -> str:
        return f"[yellow]lock on {escape(e['host'])} broken (--break-lock); previous holder recorded[/]"

    def _on_batch_failed(self, e: dict[str, Any]) -> str:
        return f"[red]batch {e['batch']} failed: {e['hosts_not_run']} host(s) not started[/]"

    def _on_run_end(self, e: dict[str, Any]) -> str:
        style = "bold red"
        if e["exit_code"] == 0:
            style = "green"
        elif e["status"] == "interrupted":
            style = "bold yellow"
        text = f"[{style}]{e['status']}[/] (exit {e['exit_code']}) in {e.get('duration', 0):.2f}s"
        if e.get("error"):
            text = f"[bold red]{escape(e['error'])}[/]\n" + text
        return text

    def summary(self, outcome: RunOutcome, *, force: bool = False) -> None:
        """Print the per-host table (not in quiet mode unless something failed, or ``force``)."""
        if self.verbosity < 0 and outcome.exit_code == 0 and not force:
            return
        if not outcome.hosts:
            return
        if outcome.status == "interrupted":
            self.console.print(
                "[bold yellow]interrupted[/]: no new step started after the signal; the hosts that had "
                "started ran their rollback and always steps"
            )
        table = Table(title=None, show_edge=False, pad_edge=False)
        for column in ("host", "status", "ok", "changed", "skipped", "failed", "time"):
            table.add_column(column, justify="right" if column not in {"host", "status"} else "left")
        for host in outcome.hosts:
            failed = sum(1 for s in host.steps if s.status == "failed")
            table.add_row(
                host.host,
                f"[{HOST_STYLE[host.status]}]{host.status}[/]",
                str(host.count("ok")),
                str(host.count("changed")),
                str(host.count("skipped")),
                str(failed),
                f"{host.duration:.2f}s",
            )
        self.console.print(table)


_size = human_size


def _is_bad(event: dict[str, Any]) -> bool:
    if event["event"] == "run_end":
        return event.get("exit_code") != 0
    if event["event"] == "manual_steps":
        return True
    return event.get("status") in {"failed", "ignored"} or event["event"] in {"retry", "lock_broken"}


def _plan_line(command: str) -> str:
    """One entry of a ``--check`` plan, read as a plan: a description (``(control node) …``) as a
    sentence, a command after ``$``, a generated bash script as one command with its body as a block
    (never a ``$`` on each of its lines, as if each were a command of its own)."""
    body = script_body(command)
    if body is not None:
        return "[cyan]    $ bash script:[/]\n" + _indent(body, "cyan", "        ")
    if command.startswith("("):
        return _indent(command, "cyan", "    · ")
    first, _, rest = command.partition("\n")
    return _indent(first, "cyan", "    $ ") + ("\n" + _indent(rest, "cyan", "      ") if rest else "")


def _indent(text: str, style: str, prefix: str = "    ") -> str:
    lines = text.rstrip("\n").splitlines() or [""]
    return "\n".join(f"[{style}]{prefix}{escape(line)}[/]" for line in lines)
