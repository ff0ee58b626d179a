"""`sigprobe doctor`: what an interrupt would do to a live process, and why.

Standard library only: it runs under any Python (the CLI, a Jupyter kernel).
Two steps, kept apart so other commands can reuse them (`--watch` adds
traced sends to the same facts):

    facts = gather(pid)            # a JSON-ready dict of what was measured
    text = render(facts)           # the report: facts, then conclusions

Conclusions come from RULES (data: an id, a test on the facts and a sentence
naming the fact behind it), applied by conclude(facts). Everything is read
from /proc on Linux, from `ps -o` elsewhere on POSIX; on Windows windows.py
reads the console, the ignore-Ctrl+C flag and the Jupyter handles instead,
with its own rules. The package (doctor/__init__.py) picks the platform.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from .common import SIGNALS, NoSuchProcess, _fmt_members, _kernel, _read_or_problem


# ---- the inherited dispositions of this very process ----------------------

def snapshot_inherited() -> dict:
    """The dispositions this Python process was started with, as CPython
    recorded them at start-up. Valid only before the program changes any
    handler: sigprobe's main module calls it at import, before main()
    installs its own SIGINT/SIGTERM handlers. CPython installs
    default_int_handler for SIGINT only when SIGINT was SIG_DFL on entry and
    keeps SIG_IGN otherwise, so default_int_handler here means `default`."""
    out = {}
    for name in [n for n in SIGNALS if hasattr(signal, n)]:  # Windows has no SIGHUP or SIGQUIT
        h = signal.getsignal(getattr(signal, name))
        if h == signal.SIG_IGN:
            out[name] = "ignored"
        elif h == signal.SIG_DFL or (name == "SIGINT" and h is signal.default_int_handler):
            out[name] = "default"
        else:
            out[name] = "caught"
    blocked = set()
    if hasattr(signal, "pthread_sigmask"):
        blocked = {s.name for s in signal.pthread_sigmask(signal.SIG_BLOCK, []) if s.name in SIGNALS}
    return {"dispositions": out, "blocked": sorted(blocked)}


# ---- reading /proc ---------------------------------------------------------

def _signum(name: str) -> int:
    return int(getattr(signal, name))


def _mask_has(mask_hex: str, name: str) -> bool:
    """proc_pid_status(5): hex masks, bit n-1 is signal n."""
    return bool(int(mask_hex, 16) >> (_signum(name) - 1) & 1)


def _status(path: Path) -> dict:
    fields = {}
    for line in path.read_text().splitlines():
        k, _, v = line.partition(":")
        fields[k] = v.strip()
    return fields


def _stat(path: Path) -> dict:
    """proc_pid_stat(5); comm may hold spaces and parentheses, so split at the last ')'."""
    text = path.read_text()
    comm = text[text.index("(") + 1:text.rindex(")")]
    rest = text[text.rindex(")") + 2:].split()
    # rest[0] is field 3 (state).
    return {"comm": comm, "state": rest[0], "ppid": int(rest[1]), "pgid": int(rest[2]), "sid": int(rest[3]),
            "tty_nr": int(rest[4]), "tpgid": int(rest[5])}


def _tty_name(tty_nr: int) -> str | None:
    """The device whose st_rdev is tty_nr, looked up in /dev (pts first)."""
    if tty_nr == 0:
        return None
    major = (tty_nr >> 8) & 0xFFF
    minor = (tty_nr & 0xFF) | ((tty_nr >> 12) & 0xFFF00)
    if 136 <= major <= 143:
        return f"/dev/pts/{(major - 136) * 256 + minor}"
    for d in (Path("/dev"),):
        try:
            for p in d.iterdir():
                try:
                    if p.name.startswith("tty") and p.stat().st_rdev == os.makedev(major, minor):
                        return str(p)
                except OSError:
                    continue
        except OSError:
            pass
    return f"tty {major}:{minor}"


def group_members(pgid: int) -> list[dict]:
    """Every process whose process group is pgid: who a killpg(pgid) reaches."""
    out = []
    proc = Path("/proc")
    if proc.is_dir():
        for d in proc.iterdir():
            if not d.name.isdigit():
                continue
            try:
                st = _stat(d / "stat")
            except (OSError, ValueError):
                continue
            if st["pgid"] == pgid:
                out.append({"pid": int(d.name), "comm": st["comm"]})
    elif shutil.which("ps"):
        r = subprocess.run(["ps", "-A", "-o", "pid=,pgid=,comm="], capture_output=True, text=True)
        for line in r.stdout.splitlines():
            parts = line.split(None, 2)
            if len(parts) >= 2 and parts[1] == str(pgid):
                out.append({"pid": int(parts[0]), "comm": parts[2] if len(parts) > 2 else "?"})
    return sorted(out, key=lambda m: m["pid"])


def _gather_proc(pid: int, facts: dict, problems: list) -> None:
    base = Path(f"/proc/{pid}")
    try:
        status = _status(base / "status")
        stat = _stat(base / "stat")
    except FileNotFoundError:
        raise NoSuchProcess(f"no process with pid {pid}") from None
    facts["source"] = "/proc"
    facts["comm"] = stat["comm"]
    facts["uid"] = int(status.get("Uid", "-1").split()[0])
    facts["process"] = {
        "pid": pid, "ppid": stat["ppid"], "pgid": stat["pgid"], "sid": stat["sid"],
        "tty_nr": stat["tty_nr"], "tty": _tty_name(stat["tty_nr"]), "tpgid": stat["tpgid"],
        "foreground": (stat["tpgid"] == stat["pgid"]) if stat["tty_nr"] else None,
        "group_leader": stat["pgid"] == pid, "session_leader": stat["sid"] == pid,
    }
    facts["signals"] = {
        name: {"disposition": "ignored" if _mask_has(status["SigIgn"], name)
               else "caught" if _mask_has(status["SigCgt"], name) else "default",
               "pending_process": _mask_has(status["ShdPnd"], name)}
        for name in SIGNALS}
    threads = []
    for tdir in sorted((base / "task").iterdir(), key=lambda p: int(p.name)) if (base / "task").is_dir() else []:
        ts = _read_or_problem(lambda: _status(tdir / "status"), f"thread {tdir.name} status", problems)
        if ts is None:
            continue
        threads.append({"tid": int(tdir.name), "name": ts.get("Name", "?"),
                        "blocked": [n for n in SIGNALS if _mask_has(ts["SigBlk"], n)],
                        "pending": [n for n in SIGNALS if _mask_has(ts["SigPnd"], n)]})
    facts["threads"] = threads
    for name in SIGNALS:
        sig = facts["signals"][name]
        blocked_in = [t["tid"] for t in threads if name in t["blocked"]]
        sig["blocked"] = "all" if threads and len(blocked_in) == len(threads) else "some" if blocked_in else "none"
        sig["blocked_in"] = blocked_in
        sig["pending"] = sig["pending_process"] or any(name in t["pending"] for t in threads)
    facts["threads_differ"] = len({(tuple(t["blocked"]), tuple(t["pending"])) for t in threads}) > 1
    cmdline = _read_or_problem(lambda: (base / "cmdline").read_bytes(), "cmdline", problems)
    facts["cmdline"] = [a.decode(errors="replace") for a in cmdline.split(b"\0")[:-1]] if cmdline else []
    environ = _read_or_problem(lambda: (base / "environ").read_bytes(), "environ", problems)
    facts["environ_readable"] = environ is not None
    env = {}
    if environ:
        for item in environ.split(b"\0"):
            k, sep, v = item.decode(errors="replace").partition("=")
            if sep:
                env[k] = v
    facts["_env"] = env
    cwd = _read_or_problem(lambda: os.readlink(base / "cwd"), "cwd", problems)
    facts["_cwd"] = cwd


PS_FIELDS = ("pid", "ppid", "pgid", "sess", "tpgid", "tty", "ignored", "caught", "blocked", "pending", "comm")


def _gather_ps(pid: int, facts: dict, problems: list) -> None:
    """The portable fallback: `ps -o` gives dispositions and the masks of the
    process (not per thread). Masks are printed in hex by BSD and procps ps."""
    if not shutil.which("ps"):
        facts["source"] = "unsupported"
        problems.append("neither /proc nor ps is available: nothing can be read here")
        return
    r = subprocess.run(["ps", "-p", str(pid), "-o", ",".join(f"{f}=" for f in PS_FIELDS)],
                       capture_output=True, text=True)
    line = r.stdout.strip()
    if r.returncode != 0 or not line:
        raise NoSuchProcess(f"no process with pid {pid}")
    parts = line.split(None, len(PS_FIELDS) - 1)
    row = dict(zip(PS_FIELDS, parts))
    facts["source"] = "ps"
    facts["comm"] = row.get("comm", "?")
    tty = row.get("tty", "?")
    has_tty = tty not in ("?", "??", "-")
    tpgid = int(row["tpgid"])
    pgid = int(row["pgid"])
    facts["process"] = {
        "pid": pid, "ppid": int(row["ppid"]), "pgid": pgid, "sid": int(row["sess"]),
        "tty": (tty if tty.startswith("/") else f"/dev/{tty}") if has_tty else None, "tpgid": tpgid,
        "foreground": (tpgid == pgid) if has_tty else None,
        "group_leader": pgid == pid, "session_leader": int(row["sess"]) == pid,
    }
    facts["signals"] = {
        name: {"disposition": "ignored" if _mask_has(row["ignored"], name)
               else "caught" if _mask_has(row["caught"], name) else "default",
               "blocked": "blocked" if _mask_has(row["blocked"], name) else "none",
               "blocked_in": [], "pending": _mask_has(row["pending"], name)}
        for name in SIGNALS}
    facts["threads"] = "unsupported here (ps shows one blocked mask, the main thread's)"
    facts["threads_differ"] = None
    r = subprocess.run(["ps", "-p", str(pid), "-ww", "-o", "args="], capture_output=True, text=True)
    facts["cmdline"] = r.stdout.strip().split()
    facts["environ_readable"] = False
    problems.append("environ: not read (ps cannot show another process's environment portably)")
    facts["_env"], facts["_cwd"] = {}, None


# ---- Jupyter ---------------------------------------------------------------

# ---- gather ----------------------------------------------------------------

def gather(pid: int, own: bool, inherited: dict | None = None, source: str | None = None) -> dict:
    """Everything measurable about pid through /proc or `ps` as a JSON-ready
    dict (the `_` keys feed the Jupyter detection and are dropped after). `inherited` (from snapshot_inherited()) replaces the dispositions
    of this process by the ones it was started with. `source` forces "ps"
    (the portable fallback) for testing it where /proc exists."""
    facts: dict = {"pid": pid, "platform": sys.platform, "self": own}
    problems: list[str] = []
    if source != "ps" and Path(f"/proc/{pid}/status").exists() and Path("/proc/self/status").exists():
        _gather_proc(pid, facts, problems)
    elif source != "ps" and Path("/proc/self/status").exists():
        raise NoSuchProcess(f"no process with pid {pid}")
    else:
        _gather_ps(pid, facts, problems)
    if facts.get("source") == "unsupported":
        facts["problems"] = problems
        return facts
    if own and inherited:
        for name, disp in inherited["dispositions"].items():
            facts["signals"][name]["now"] = facts["signals"][name]["disposition"]
            facts["signals"][name]["disposition"] = disp
            facts["signals"][name]["inherited"] = True
        facts["inherited_note"] = ("read at start-up, before sigprobe installed its own handlers: "
                                   "what a program started from this shell inherits")
    # pgid 0 is the kernel's own threads' group, not a group one can signal.
    # The doctor's own process is left out when it diagnoses another one.
    pgid = facts["process"]["pgid"]
    facts["group_members"] = [m for m in group_members(pgid) if own or m["pid"] != os.getpid()] if pgid else []
    facts["problems"] = problems
    return facts


# ---- conclusions: rules as data ---------------------------------------------

def _sig(f, name):
    return f["signals"][name]


def _others(f):
    return [m for m in f.get("group_members", []) if m["pid"] != f["pid"]]


def _idle(f):
    """SIGINT between cells, where the caller (the IPython extension) measured it."""
    return f.get("kernel_states", {}).get("idle", {})


def _blocked_where(f, name):
    return ", ".join(str(t) for t in _sig(f, name)["blocked_in"])


def _unblocked_threads(f, name):
    return ", ".join(f"{t['tid']} ({t['name']})" for t in f["threads"] if name not in t["blocked"])


# Each rule: (id, applies(facts), sentence(facts), fact behind it(facts)).
# Sentences say what happens in plain words; the fact names where it was read.
RULES = [
    ("no-tty",
     lambda f: f["process"]["tty"] is None,
     lambda f: "A Ctrl+C typed in a terminal will not reach this process: it has no controlling terminal. "
               "Only a signal sent to it (kill) or to its process group (killpg) does.",
     lambda f: f"tty_nr 0 ({f['source']})"),
    ("tty-background",
     lambda f: f["process"]["tty"] is not None and not f["process"]["foreground"],
     lambda f: f"A Ctrl+C typed in {f['process']['tty']} will not reach this process: it is not in that "
               f"terminal's foreground process group.",
     lambda f: f"pgid {f['process']['pgid']} != tpgid {f['process']['tpgid']} (the terminal's foreground group)"),
    ("tty-foreground",
     lambda f: f["process"]["tty"] is not None and f["process"]["foreground"],
     lambda f: f"A Ctrl+C typed in {f['process']['tty']} sends SIGINT to this process and to every process in "
               f"its group {f['process']['pgid']}.",
     lambda f: f"pgid {f['process']['pgid']} == tpgid {f['process']['tpgid']} of {f['process']['tty']}"),
    ("group-shared",
     lambda f: bool(_others(f)),
     lambda f: f"A signal to the process group {f['process']['pgid']} (killpg, a terminal's ^C, a Jupyter "
               f"interrupt) also reaches {len(_others(f))} other process(es): {_fmt_members(_others(f))}.",
     lambda f: f"processes whose pgid is {f['process']['pgid']}"),
    ("jupyter-signal",
     lambda f: _kernel(f) and f["jupyter"]["interrupt_mode"] == "signal",
     lambda f: f"This is a Jupyter kernel in signal mode: interrupt sends SIGINT to its process group "
               f"({f['process']['pgid']}); ipykernel re-installs Python's handler for every cell, so a C handler "
               f"installed at import is gone during the next cell.",
     lambda f: "; ".join(f["jupyter"]["evidence"]) + f"; interrupt_mode from {f['jupyter']['interrupt_mode_source']}"),
    ("jupyter-message",
     lambda f: _kernel(f) and f["jupyter"]["interrupt_mode"] == "message",
     lambda f: "This is a Jupyter kernel in message mode: interrupt sends an interrupt_request on the control "
               "channel, and ipykernel answers it by sending SIGINT to its own process group (POSIX), so native "
               "code sees the same SIGINT as in signal mode; ipykernel re-installs Python's handler for every "
               "cell, so a C handler installed at import is gone during the next cell.",
     lambda f: "; ".join(f["jupyter"]["evidence"]) + f"; interrupt_mode from {f['jupyter']['interrupt_mode_source']}"),
    ("jupyter-unknown-mode",
     lambda f: _kernel(f) and f["jupyter"]["interrupt_mode"] == "unknown",
     lambda f: "This looks like a Jupyter kernel, but its interrupt mode is unknown; with jupyter_client's "
               "default (signal) an interrupt is SIGINT to its process group.",
     lambda f: "; ".join(f["jupyter"]["evidence"]) + f"; {f['jupyter']['interrupt_mode_source']}"),
    ("jupyter-idle-ignored",
     lambda f: _kernel(f) and (_sig(f, "SIGINT")["disposition"] == "ignored" or _idle(f).get("os") == "ignored"),
     lambda f: "SIGINT is ignored while the kernel is idle: ipykernel sets SIG_IGN between cells and installs "
               "Python's default_int_handler only while it handles a message, so an interrupt of an idle "
               "kernel does nothing.",
     lambda f: "SigIgn has SIGINT (bit 2)" + (" now" if _sig(f, "SIGINT")["disposition"] == "ignored"
                                              else f" between cells ({_idle(f).get('how')})")),
    ("jupyter-running-caught",
     lambda f: _kernel(f) and _sig(f, "SIGINT")["disposition"] == "caught",
     lambda f: "SIGINT is caught right now: the kernel is handling a message (running a cell), when ipykernel "
               "installs Python's default_int_handler; between cells it is SIG_IGN.",
     lambda f: "SigCgt has SIGINT (bit 2)"),
    ("sigint-ignored-inherited",
     lambda f: not _kernel(f) and _sig(f, "SIGINT")["disposition"] == "ignored" and _sig(f, "SIGINT").get("inherited"),
     lambda f: "SIGINT is ignored (inherited): a handler installed with signal() or sigaction() would override "
               "this, Python will not (it keeps SIG_IGN at start-up, so no KeyboardInterrupt); programs started "
               "from here inherit it too (SIG_IGN survives exec).",
     lambda f: "SIGINT was SIG_IGN when this process started"),
    ("sigint-ignored",
     lambda f: not _kernel(f) and _sig(f, "SIGINT")["disposition"] == "ignored" and not _sig(f, "SIGINT").get("inherited"),
     lambda f: "SIGINT is ignored: an interrupt has no effect on this process. Either it was inherited (SIG_IGN "
               "survives exec, as for `cmd &` in a non-interactive shell) or the program set it; a handler "
               "installed with signal() or sigaction() would override it, Python would not (it keeps SIG_IGN "
               "at start-up).",
     lambda f: "SigIgn has SIGINT (bit 2)"),
    ("sigint-caught",
     lambda f: not _kernel(f) and _sig(f, "SIGINT")["disposition"] == "caught",
     lambda f: "SIGINT is caught: the handler this program installed decides what an interrupt does (Python's "
               "raises KeyboardInterrupt at the next bytecode); programs it starts get the default action "
               "(exec resets caught signals).",
     lambda f: "SigCgt has SIGINT (bit 2)"),
    ("sigint-default",
     lambda f: _sig(f, "SIGINT")["disposition"] == "default",
     lambda f: "SIGINT has the default action: an interrupt that reaches this process terminates it.",
     lambda f: "SIGINT in neither SigIgn nor SigCgt" + (" when this process started" if _sig(f, "SIGINT").get("inherited") else "")),
    ("sigint-blocked-all",
     lambda f: _sig(f, "SIGINT")["blocked"] == "all",
     lambda f: "SIGINT is blocked in every thread: it stays pending until a thread unblocks it or reads it "
               "(sigwait, signalfd); no handler runs meanwhile.",
     lambda f: f"SigBlk has SIGINT in threads {_blocked_where(f, 'SIGINT')}"),
    ("sigint-blocked-some",
     lambda f: _sig(f, "SIGINT")["blocked"] == "some",
     lambda f: f"SIGINT is blocked in some threads only: a SIGINT sent to the process is delivered to a thread "
               f"that does not block it ({_unblocked_threads(f, 'SIGINT')}).",
     lambda f: f"SigBlk has SIGINT in threads {_blocked_where(f, 'SIGINT')} only"),
    ("sigint-pending",
     lambda f: _sig(f, "SIGINT")["pending"],
     lambda f: "A SIGINT is pending: it was sent but not yet delivered (blocked, or the process is stopped).",
     lambda f: "SigPnd/ShdPnd has SIGINT"),
    ("sigterm-ignored",
     lambda f: _sig(f, "SIGTERM")["disposition"] == "ignored",
     lambda f: "SIGTERM is ignored: `kill PID` (SIGTERM) will not stop this process; only SIGKILL will.",
     lambda f: "SigIgn has SIGTERM (bit 15)"),
    ("sighup-ignored",
     lambda f: _sig(f, "SIGHUP")["disposition"] == "ignored",
     lambda f: "SIGHUP is ignored: this process survives its terminal closing (as under nohup).",
     lambda f: "SigIgn has SIGHUP (bit 1)"),
    ("sigquit-ignored",
     lambda f: _sig(f, "SIGQUIT")["disposition"] == "ignored",
     lambda f: "SIGQUIT is ignored: Ctrl+\\ in a terminal has no effect on this process.",
     lambda f: "SigIgn has SIGQUIT (bit 3)"),
]


# ---- render ------------------------------------------------------------------
