"""`sigprobe doctor`: what an interrupt would do to a live process, and why.

Standard library only: it runs under any Python (the CLI, a Jupyter kernel).
Two steps, kept apart so other commands can reuse them:

    facts = gather(pid)            # a JSON-ready dict of what was measured
    text = render(facts)           # the report: facts, then conclusions

posix.py reads /proc (or `ps`) and holds the POSIX rules; windows.py reads the
console, the ignore-Ctrl+C flag and the Jupyter handles through ctypes and
holds the Windows rules; common.py has what both share (Jupyter detection).
This module picks the platform: the one place that knows both."""
from __future__ import annotations

import os
import sys

from . import posix
from .common import SIGNALS, NoSuchProcess, _fmt_members, _jupyter, _kv
from .posix import snapshot_inherited

__all__ = ["NoSuchProcess", "conclude", "gather", "render", "report", "snapshot_inherited"]


def _windows():
    from . import windows  # ctypes' Windows API: imported only where it is used
    return windows


def gather(pid: int | None = None, inherited: dict | None = None, source: str | None = None) -> dict:
    """Everything measurable about pid (default: this process) as a JSON-ready
    dict. `inherited` (from snapshot_inherited()) replaces the dispositions
    of this process by the ones it was started with. `source` forces "ps"
    (the portable fallback) for testing it where /proc exists."""
    own = pid is None or pid == os.getpid()
    pid = os.getpid() if pid is None else pid
    facts = _windows().gather(pid, own) if os.name == "nt" else posix.gather(pid, own, inherited, source)
    if facts.get("source") != "unsupported":
        facts["jupyter"] = _jupyter(facts, facts["problems"])
    return {k: v for k, v in facts.items() if not k.startswith("_")}


def conclude(facts: dict) -> list[dict]:
    """The conclusions that apply, each with the fact behind it."""
    if facts.get("source") == "unsupported":
        return []
    rules = _windows().RULES if facts.get("platform") == "win32" else posix.RULES
    return [{"id": rid, "text": text(facts), "because": why(facts)}
            for rid, applies, text, why in rules if applies(facts)]


def render(facts: dict, conclusions: list[dict] | None = None) -> str:
    if conclusions is None:
        conclusions = conclude(facts)
    lines = []
    p = facts.get("process")
    title = f"pid {facts['pid']} ({facts.get('comm', '?')})" + (" — this process" if facts.get("self") else "")
    lines.append(f"sigprobe doctor: {title}, read from {facts.get('source')}")
    if facts.get("cmdline"):
        lines.append("  cmdline: " + " ".join(facts["cmdline"])[:300])
    if facts.get("platform") == "win32":
        lines += _windows().sections(facts)
    elif p:
        lines.append("")
        lines.append("Process")
        tty = p["tty"] or "none"
        fg = "" if p["foreground"] is None else (" (in its foreground group)" if p["foreground"]
                                                  else " (not in its foreground group)")
        lines += _kv([("pid / ppid", f"{p['pid']} / {p['ppid']}"),
                      ("pgid", f"{p['pgid']}" + (" (leader)" if p["group_leader"] else "")),
                      ("sid", f"{p['sid']}" + (" (leader)" if p["session_leader"] else "")),
                      ("controlling tty", f"{tty}{fg}" + (f", tpgid {p['tpgid']}" if p["tty"] else "")),
                      ("group members", _fmt_members(facts.get("group_members", []), 8) or "?")])
    if facts.get("signals"):
        lines.append("")
        lines.append("Signals" + (" (as inherited at start-up)" if facts.get("inherited_note") else ""))
        lines.append(f"  {'signal':<8} {'disposition':<12} {'blocked':<10} pending")
        for name in SIGNALS:
            s = facts["signals"][name]
            blocked = s["blocked"]
            now = f"  (now: {s['now']})" if s.get("now") and s["now"] != s["disposition"] else ""
            lines.append(f"  {name:<8} {s['disposition']:<12} {blocked:<10} {'yes' if s['pending'] else 'no'}{now}")
        if facts.get("inherited_note"):
            lines.append(f"  ({facts['inherited_note']})")
        threads = facts.get("threads")
        if isinstance(threads, str):
            lines.append(f"  per thread: {threads}")
        elif threads and facts.get("threads_differ"):
            lines.append("  per thread (they differ):")
            for t in threads:
                lines.append(f"    {t['tid']:>7} {t['name']:<16} blocked: {', '.join(t['blocked']) or '-'}"
                             f"; pending: {', '.join(t['pending']) or '-'}")
        elif threads:
            lines.append(f"  {len(threads)} thread(s), all with the same blocked and pending signals")
    j = facts.get("jupyter")
    if j:
        lines.append("")
        lines.append("Jupyter")
        if j["kernel"]:
            rows = [("kernel", "yes: " + "; ".join(j["evidence"]))]
            for k in ("connection_file", "kernel_name", "kernelspec"):
                if k in j:
                    rows.append((k.replace("_", " "), j[k]))
            rows.append(("interrupt_mode", f"{j['interrupt_mode']} ({j['interrupt_mode_source']})"))
            lines += _kv(rows)
        else:
            lines.append("  not a Jupyter kernel (no ipykernel_launcher, connection file or JPY_PARENT_PID)"
                         + (f"; {j['note']}" if j.get("note") else ""))
    for section in facts.get("extra_sections", []):
        lines.append("")
        lines.append(section["title"])
        lines += [f"  {line}" for line in section["lines"]]
    if facts.get("problems"):
        lines.append("")
        lines.append("Could not read")
        lines += [f"  {pr}" for pr in facts["problems"]]
    lines.append("")
    lines.append("Conclusions")
    for c in conclusions:
        lines.append(f"  - {c['text']}")
        lines.append(f"      (because: {c['because']})")
    return "\n".join(lines)


def report(facts: dict) -> dict:
    """The JSON document: the facts and the conclusions."""
    return {**facts, "conclusions": conclude(facts)}
