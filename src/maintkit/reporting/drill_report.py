"""The drill report: what a restore drill proved, how long each phase took, and the verdict.

Built from the run's journal (the ``restore``, ``smoke``/``http`` and ``drill_cleanup`` step results
are there, with their data), so it reports exactly what ran, and can be rebuilt from any drill's
journal. Two files land beside the journal: ``RUN_ID.drill.json`` (for machines) and
``RUN_ID.drill.html`` (for the client: one self-contained page, inline CSS and SVG, no script, no
external resource).

The time to restore (RTO) is measured from the start of the run (connecting to the drill hosts
included) to the end of the last smoke check: what an engineer restoring the shop for real would
wait before it is back and proven. The cleanup afterwards is not part of it. The data-loss window
is the snapshot's age at the start of the drill: what a restore of it would lose today (the
changes made since the dump began).
"""

from __future__ import annotations

import html
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from maintkit import __version__
from maintkit.jobs.restore.record import PHASES

REPORT_FORMAT = 1
ALL_PHASES = ("prepare", *PHASES, "smoke")

#: the message of each cause of failure (the drill's distinct messages)
CAUSES = {
    "run": "the run failed before restoring",
    "restore_not_run": "the restore did not run",
    "production": "the drill environment resolves to production",
    "refused": "the restore was refused",
    "integrity": "snapshot integrity check failed",
    "unsafe_archive": "the files archive holds unsafe members",
    "tables": "tables missing or incomplete after the restore",
    "extract": "extracting the files failed",
    "commit": "the commit (swap into place) failed",
    "error": "the restore failed",
    "smoke_missing": "no smoke checks are configured",
    "smoke": "a smoke check failed",
    "rto": "the restore took longer than the RTO",
    "cleanup": "the drill environment was not cleaned",
}


def _time(ts: str) -> datetime:
    return datetime.fromisoformat(ts)


def _duration(seconds: float) -> str:
    """``2 d 3 h``, ``4 min 5 s``, ``1.25 s``."""
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s"


def build_report(
    events: list[dict[str, Any]], *, source_env: str, rto: float | None, keep: bool
) -> dict[str, Any]:
    """Given the events of a drill run, the report (a JSON-ready mapping) with its verdict."""
    start = next((e for e in events if e["event"] == "run_start"), None)
    end = next((e for e in events if e["event"] == "run_end"), None)
    if start is None:
        raise ValueError("the journal has no run_start event")
    began = _time(start["ts"])
    hosts = [_host_report(name, events, began, rto, keep) for name in start.get("hosts", [])]
    causes = [cause for host in hosts for cause in host["causes"]]
    if end is not None and end.get("error") and not any(h["restore"] for h in hosts):
        causes.insert(0, _cause("run", None, f"{CAUSES['run']}: {end['error']}"))
    if not hosts:
        causes.append(_cause("run", None, "the drill environment has no host"))
    measured = max((h["rto_seconds"] for h in hosts if h["rto_seconds"] is not None), default=None)
    passed = not causes and bool(hosts)
    return {
        "format": REPORT_FORMAT,
        "tool_version": __version__,
        "run_id": start["run_id"],
        "playbook": start.get("playbook"),
        "source_env": source_env,
        "drill_env": start.get("env"),
        "started": start["ts"],
        "finished": end["ts"] if end else None,
        "rto_objective_seconds": rto,
        "rto_seconds": measured,
        "kept": keep,
        "hosts": hosts,
        "verdict": {"passed": passed, "summary": _summary(hosts, rto) if passed else "", "causes": causes},
    }


def _cause(cause: str, host: str | None, message: str) -> dict[str, Any]:
    return {"cause": cause, "host": host, "message": message}


def _steps(events: list[dict[str, Any]], host: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == "step_end" and e.get("host") == host]


def _host_report(
    host: str, events: list[dict[str, Any]], began: datetime, rto: float | None, keep: bool
) -> dict[str, Any]:
    steps = _steps(events, host)
    restore_step = next(
        (s for s in steps if s.get("action") == "restore" and s.get("section") == "steps"), None
    )
    record: dict[str, Any] = (restore_step or {}).get("data") or {}
    causes: list[dict[str, Any]] = []
    phases = [_offset(p, began) for p in record.get("phases", [])]
    if phases:  # from the start of the run to the first byte: connect, lock, probe, inspect the target
        first = min(p["offset"] for p in phases)
        phases.append(_synthetic("prepare", 0.0, first, "connect, lock, check the host and the target"))
    smoke: list[dict[str, Any]] = []
    last_end = None
    if restore_step is not None:
        last_end = _time(restore_step["ts"])
    for step in steps:
        if step.get("section") != "steps" or step.get("action") not in ("smoke", "http"):
            continue
        step_end = _time(step["ts"])
        seconds = float(step.get("duration") or 0)
        if step["status"] == "skipped" and not (step.get("data") or {}).get("checks"):
            continue
        last_end = step_end
        offset = (step_end - began).total_seconds() - seconds
        phases.append(_synthetic("smoke", offset, seconds, step.get("step", "")))
        smoke += _smoke_results(step)
    totals = {name: round(sum(p["seconds"] for p in phases if p["name"] == name), 3) for name in ALL_PHASES}
    rto_seconds = round((last_end - began).total_seconds(), 3) if last_end is not None else None

    if restore_step is None:
        causes.append(_cause("restore_not_run", host, f"{host}: {CAUSES['restore_not_run']}"))
    elif restore_step["status"] == "failed":
        cause = record.get("cause") or "error"
        causes.append(
            _cause(cause, host, f"{host}: {CAUSES.get(cause, CAUSES['error'])}: {restore_step.get('msg')}")
        )
    if restore_step is not None and restore_step["status"] != "failed":
        if not smoke:
            causes.append(_cause("smoke_missing", host, f"{host}: {CAUSES['smoke_missing']} (set `smoke:`)"))
        for check in smoke:
            if not check["ok"]:
                causes.append(
                    _cause("smoke", host, f"{host}: {CAUSES['smoke']}: {check['name']}: {check['msg']}")
                )
    if rto is not None and rto_seconds is not None and rto_seconds > rto and restore_step is not None:
        causes.append(
            _cause(
                "rto",
                host,
                f"{host}: {CAUSES['rto']}: restored and checked in {rto_seconds:.2f} s, "
                f"the objective is {rto:g} s",
            )
        )
    cleanup = _cleanup(steps, keep)
    if cleanup["status"] == "failed":
        causes.append(_cause("cleanup", host, f"{host}: {CAUSES['cleanup']}: {cleanup['msg']}"))
    created = record.get("snapshot_created")
    window = round((began - _time(created)).total_seconds(), 3) if created else None
    rows = sum(t.get("restored_rows") or 0 for t in record.get("tables", []))
    return {
        "host": host,
        "site": record.get("site"),
        "snapshot_id": record.get("snapshot_id"),
        "snapshot_created": created,
        "storage_target": record.get("storage_target"),
        "data_loss_window_seconds": window,
        "restore": {
            "status": restore_step["status"] if restore_step else "not_run",
            "msg": restore_step.get("msg") if restore_step else None,
            "cause": record.get("cause"),
            "artifact": record.get("artifact"),
            "committed": record.get("committed", False),
            "database": record.get("database", {}),
            "files": record.get("files", {}),
            "urls": record.get("urls", {}),
            "identity": record.get("identity", {}),
            "config": record.get("config", {}),
            "bytes": record.get("bytes", 0),
            "plain_bytes": record.get("plain_bytes", 0),
            "seconds": restore_step.get("duration") if restore_step else None,
        },
        "phases": sorted(phases, key=lambda p: p["offset"]),
        "phase_totals": totals,
        "tables": record.get("tables", []),
        "rows": rows,
        "smoke": smoke,
        "cleanup": cleanup,
        "rto_seconds": rto_seconds,
        "causes": causes,
    }


def _synthetic(name: str, offset: float, seconds: float, note: str) -> dict[str, Any]:
    """A phase the report adds from the journal (not measured by the restore action)."""
    return {
        "name": name,
        "artifact": None,
        "started": None,
        "offset": round(offset, 3),
        "seconds": round(seconds, 3),
        "bytes": None,
        "note": note,
    }


def _offset(phase: dict[str, Any], began: datetime) -> dict[str, Any]:
    out = dict(phase)
    out["offset"] = round((_time(phase["started"]) - began).total_seconds(), 3)
    return out


def _smoke_results(step: dict[str, Any]) -> list[dict[str, Any]]:
    data = step.get("data") or {}
    if step.get("action") == "smoke":
        return list(data.get("checks", []))
    return [
        {
            "name": step.get("step"),
            "url": data.get("url"),
            "ok": step["status"] != "failed",
            "status": data.get("status"),
            "latency_ms": data.get("latency_ms"),
            "msg": step.get("msg", ""),
        }
    ]


def _cleanup(steps: list[dict[str, Any]], keep: bool) -> dict[str, Any]:
    step = next((s for s in steps if s.get("action") == "drill_cleanup"), None)
    if step is None:
        return {"status": "kept" if keep else "not_run", "msg": "kept (--keep)" if keep else "did not run"}
    if step["status"] == "skipped":
        if keep:
            return {"status": "kept", "msg": "kept (--keep)"}
        return {"status": "not_needed", "msg": "not run: the restore staged nothing of its own"}
    return {"status": "failed" if step["status"] == "failed" else "done", "msg": step.get("msg", "")}


def _summary(hosts: list[dict[str, Any]], rto: float | None) -> str:
    parts = []
    for host in hosts:
        objective = f" (objective {rto:g} s)" if rto is not None else ""
        window = host["data_loss_window_seconds"]
        parts.append(
            f"{host['host']}: snapshot {host['snapshot_id']} restored and checked in "
            f"{host['rto_seconds']:.2f} s{objective}; "
            f"{len(host['tables'])} tables / {host['rows']} rows proven; "
            f"{len(host['smoke'])} smoke check(s) passed; data-loss window {_duration(window or 0)}"
        )
    return "; ".join(parts)


def write_report(report: dict[str, Any], folder: Path, run_id: str) -> tuple[Path, Path]:
    """Write ``RUN_ID.drill.json`` and ``RUN_ID.drill.html`` into ``folder``; return both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    json_path = folder / f"{run_id}.drill.json"
    html_path = folder / f"{run_id}.drill.html"
    json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    html_path.write_text(render_html(report), encoding="utf-8")
    return json_path, html_path


# -- HTML -------------------------------------------------------------------------------------------

COLORS = {
    "prepare": "#d3d6dc",
    "download": "#4e79a7",
    "decrypt": "#bab0ac",
    "decompress": "#76b7b2",
    "import": "#f28e2b",
    "verify": "#edc948",
    "extract": "#59a14f",
    "commit": "#e15759",
    "smoke": "#b07aa1",
}

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;margin:0;
background:#f6f7f9}
main{max-width:980px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:28px 0 8px}h3{font-size:16px;margin:18px 0 6px}
.muted{color:#666}.verdict{padding:14px 18px;border-radius:8px;margin:16px 0;font-weight:600}
.pass{background:#e3f4e1;border:1px solid #59a14f}.fail{background:#fbe3e3;border:1px solid #e15759}
.verdict ul{margin:6px 0 0;font-weight:normal}
table{border-collapse:collapse;width:100%;background:#fff;margin:6px 0 12px}
th,td{border:1px solid #dde;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#eef0f4;font-weight:600}table.narrow{width:auto;min-width:320px}td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#2f7d32;font-weight:600}.bad{color:#c62828;font-weight:600}
.card{background:#fff;border:1px solid #dde;border-radius:8px;padding:4px 16px 12px;margin:14px 0}
svg text{font:12px system-ui,sans-serif;fill:#333}footer{margin:30px 0 10px;font-size:13px;color:#777}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _size(value: int | None) -> str:
    if not value:
        return ""
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(value)


def _mark(ok: bool) -> str:
    return '<span class="ok">✓</span>' if ok else '<span class="bad">✗</span>'


def render_html(report: dict[str, Any]) -> str:
    """The report as one self-contained HTML page."""
    verdict = report["verdict"]
    passed = verdict["passed"]
    causes = "".join(f"<li>{_e(c['message'])}</li>" for c in verdict["causes"])
    banner = (
        f'<div class="verdict pass">PASSED — {_e(verdict["summary"])}</div>'
        if passed
        else f'<div class="verdict fail">FAILED<ul>{causes}</ul></div>'
    )
    rto = report["rto_objective_seconds"]
    facts = [
        ("source environment", report["source_env"]),
        ("drill environment", report["drill_env"]),
        ("drill started", report["started"]),
        (
            "measured time to restore (RTO)",
            _duration(report["rto_seconds"]) if report["rto_seconds"] else "—",
        ),
        ("RTO objective", _duration(rto) if rto is not None else "none given"),
        ("drill copy", "kept (--keep)" if report["kept"] else "cleaned afterwards"),
        ("run", report["run_id"]),
    ]
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts)
    body = [
        f"<h1>Restore drill: {_e(report['source_env'])} → {_e(report['drill_env'])}</h1>",
        f'<div class="muted">maintkit {_e(report["tool_version"])} · {_e(report["started"])}</div>',
        banner,
        f"<table>{rows}</table>",
    ]
    body += [_host_html(host) for host in report["hosts"]]
    body.append(
        "<footer>The time to restore runs from the start of the drill (connecting included) to the end of "
        "the last smoke check. Phases of one artifact overlap: it streams from storage through the "
        "control node (size and SHA-256 checked, every tar member checked) to the host, which "
        "decompresses and imports it as it arrives. Row counts: <em>dump</em> is counted while reading "
        "the dump, <em>restored</em> is COUNT(*) of the restored table, <em>manifest</em> was counted "
        "when the snapshot was taken (it may differ on a busy shop).</footer>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>Restore drill {_e(report['run_id'])}: {'passed' if passed else 'FAILED'}</title>"
        f"<style>{CSS}</style></head><body><main>{''.join(body)}</main></body></html>\n"
    )


def _host_html(host: dict[str, Any]) -> str:
    restore = host["restore"]
    window = host["data_loss_window_seconds"]
    facts = [
        ("site", host["site"]),
        ("snapshot", host["snapshot_id"]),
        ("snapshot taken", host["snapshot_created"]),
        ("data-loss window (snapshot age)", _duration(window) if window is not None else "—"),
        ("read from storage target", host["storage_target"]),
        (
            "restore",
            ("ok" if restore["status"] in ("ok", "changed") else restore["status"])
            + (f": {restore['msg']}" if restore["msg"] else ""),
        ),
        ("transferred", f"{_size(restore['bytes'])} compressed, {_size(restore['plain_bytes'])} restored"),
        ("time to restore", _duration(host["rto_seconds"]) if host["rto_seconds"] is not None else "—"),
        ("cleanup", host["cleanup"]["msg"] or host["cleanup"]["status"]),
    ]
    if restore.get("urls"):
        facts.append(("URLs rewritten", ", ".join(f"{k}: {v}" for k, v in restore["urls"].items())))
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts)
    parts = [f'<div class="card"><h2>{_e(host["host"])}</h2><table>{rows}</table>']
    parts.append("<h3>Phases</h3>" + phase_chart(host["phases"]))
    totals = "".join(
        f"<tr><td>{_e(name)}</td><td class='num'>{seconds:.3f} s</td></tr>"
        for name, seconds in host["phase_totals"].items()
    )
    parts.append(
        f"<table class='narrow'><tr><th>phase</th><th>seconds (all artifacts)</th></tr>{totals}</table>"
    )
    if host["tables"]:
        lines = "".join(
            f"<tr><td>{_e(t['name'])}</td><td class='num'>{_e(t.get('manifest_rows'))}</td>"
            f"<td class='num'>{_e(t.get('dump_rows'))}</td><td class='num'>{_e(t.get('restored_rows'))}</td>"
            f"<td>{_mark(t['ok'])} {_e(t.get('problem'))}</td></tr>"
            for t in host["tables"]
        )
        parts.append(
            f"<h3>Tables ({len(host['tables'])}, {host['rows']} rows restored)</h3><table><tr><th>table</th>"
            f"<th>manifest rows</th><th>dump rows</th><th>restored rows</th><th></th></tr>{lines}</table>"
        )
    if host["smoke"]:
        lines = "".join(
            f"<tr><td>{_mark(c['ok'])}</td><td>{_e(c['name'])}</td><td>{_e(c.get('status'))}</td>"
            f"<td class='num'>{_e(c.get('latency_ms'))}</td><td>{_e(c.get('msg'))}</td></tr>"
            for c in host["smoke"]
        )
        parts.append(
            "<h3>Smoke checks</h3><table><tr><th></th><th>check</th><th>status</th><th>ms</th><th>result</th>"
            f"</tr>{lines}</table>"
        )
    parts.append("</div>")
    return "".join(parts)


def phase_chart(phases: list[dict[str, Any]]) -> str:
    """An inline SVG time line: one bar per phase, placed at its start, as long as it took."""
    if not phases:
        return "<p class='muted'>no phase ran</p>"
    label_w, chart_w, bar_h, gap, top, right = 210, 560, 16, 6, 8, 64
    end = max(p["offset"] + p["seconds"] for p in phases) or 1.0
    step = _tick(end)
    scale = chart_w / (end * 1.02)
    height = top + len(phases) * (bar_h + gap) + 26
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + chart_w + right}" height="{height}" '
        f'role="img" aria-label="phase timings">'
    ]
    tick = 0.0
    while tick <= end * 1.02:
        x = label_w + tick * scale
        out.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{height - 22}" stroke="#e3e5ea"/>')
        out.append(f'<text x="{x:.1f}" y="{height - 8}" text-anchor="middle">{tick:g} s</text>')
        tick = round(tick + step, 6)
    for index, phase in enumerate(phases):
        y = top + index * (bar_h + gap)
        label = phase["name"] + (f" {phase['artifact']}" if phase.get("artifact") else "")
        width = max(phase["seconds"] * scale, 1.5)
        color = COLORS.get(phase["name"], "#999")
        title = f"{label}: {phase['seconds']:.3f} s from {phase['offset']:.3f} s. {phase.get('note') or ''}"
        out.append(f'<text x="{label_w - 8}" y="{y + bar_h - 4}" text-anchor="end">{_e(label)}</text>')
        out.append(
            f'<rect x="{label_w + phase["offset"] * scale:.1f}" y="{y}" width="{width:.1f}" height="{bar_h}" '
            f'rx="2" fill="{color}"><title>{_e(title)}</title></rect>'
        )
        shown = "n/a" if phase["name"] == "decrypt" and not phase["seconds"] else f"{phase['seconds']:.2f} s"
        x = label_w + phase["offset"] * scale + width + 4
        out.append(f'<text x="{x:.1f}" y="{y + bar_h - 4}">{shown}</text>')
    out.append("</svg>")
    return "".join(out)


def _tick(end: float) -> float:
    """A round tick interval giving 4 to 10 ticks over ``end`` seconds."""
    for step in (0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200):
        if end / step <= 10:
            return float(step)
    return 3600.0 * round(end / 36000 + 1)
