"""`sigprobe doctor`: what an interrupt would do to a live process, and why.

Standard library only: it runs under any Python (the CLI, a Jupyter kernel).
Two steps, kept apart so other commands can reuse them (`--watch` adds
traced sends to the same facts):

    facts = gather(pid)            # a JSON-ready dict of what was measured
    text = render(facts)           # the report: facts, then conclusions

Conclusions come from RULES (data: an id, a test on the facts and a sentence
naming the fact behind it), applied by conclude(facts). Everything is read
from /proc on Linux, from `ps -o` elsewhere on POSIX; on Windows doctor_win
reads the console, the ignore-Ctrl+C flag and the Jupyter handles instead,
with its own rules.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")


class NoSuchProcess(Exception):
    """The pid names no process (or it ended while being read)."""


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


def _read_or_problem(read, what: str, problems: list):
    try:
        return read()
    except PermissionError:
        problems.append(f"{what}: not readable (permission denied: another user's process, or ptrace is restricted)")
    except FileNotFoundError:
        problems.append(f"{what}: gone (the process or thread ended while being read)")
    except OSError as e:
        problems.append(f"{what}: not readable ({e.strerror})")
    return None


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

def _connection_file(cmdline: list[str]) -> str | None:
    for i, a in enumerate(cmdline):
        if a == "-f" and i + 1 < len(cmdline):
            return cmdline[i + 1]
        if a.startswith("--f="):
            return a[4:]
        if a.startswith("--IPKernelApp.connection_file="):
            return a.split("=", 1)[1]
    return None


def _kernel_dirs(env: dict, cmdline: list[str]) -> list[Path]:
    """Where jupyter_client looks for kernelspecs (jupyter_core.paths.jupyter_path),
    rebuilt from the kernel's own environment where it was readable."""
    dirs = []
    for p in (env.get("JUPYTER_PATH") or os.environ.get("JUPYTER_PATH", "")).split(os.pathsep):
        if p:
            dirs.append(Path(p))
    data = env.get("JUPYTER_DATA_DIR") or os.environ.get("JUPYTER_DATA_DIR")
    if data:
        dirs.append(Path(data))
    home = env.get("HOME") or os.path.expanduser("~")
    dirs.append(Path(home) / ".local/share/jupyter")
    if cmdline:
        exe = Path(cmdline[0])
        if exe.is_absolute():
            dirs.append(exe.parent.parent / "share/jupyter")
        dirs.append(exe.parent / "share/jupyter")  # Windows: python.exe sits in the prefix itself
    for var in ("APPDATA", "PROGRAMDATA"):  # jupyter_core's user and system paths on Windows
        if env.get(var) or os.environ.get(var):
            dirs.append(Path(env.get(var) or os.environ[var]) / "jupyter")
    dirs += [Path(sys.prefix) / "share/jupyter", Path("/usr/local/share/jupyter"), Path("/usr/share/jupyter")]
    return [d / "kernels" for d in dirs]


def _jupyter(facts: dict, problems: list) -> dict:
    cmdline, env = facts.get("cmdline", []), facts.get("_env", {})
    evidence = []
    if any("ipykernel_launcher" in a or a == "ipykernel" for a in cmdline):
        evidence.append("cmdline runs ipykernel_launcher")
    cf = _connection_file(cmdline)
    if cf and (cf.endswith(".json") and "kernel" in os.path.basename(cf)):
        evidence.append(f"cmdline names a connection file (-f {cf})")
    if "JPY_PARENT_PID" in env:
        evidence.append(f"environ has JPY_PARENT_PID={env['JPY_PARENT_PID']}")
    out = {"kernel": bool(evidence), "evidence": evidence}
    if not evidence:
        if not facts.get("environ_readable"):
            out["note"] = "environ not readable: JPY_PARENT_PID could not be checked"
        return out
    if cf:
        path = Path(cf)
        if not path.is_absolute() and facts.get("_cwd"):
            path = Path(facts["_cwd"]) / path
        out["connection_file"] = str(path)
        conn = _read_or_problem(lambda: json.loads(path.read_text()), "connection file", problems)
        if conn is not None and conn.get("kernel_name"):
            out["kernel_name"] = conn["kernel_name"]
    name = out.get("kernel_name")
    if name:
        for d in _kernel_dirs(env, cmdline):
            spec_file = d / name / "kernel.json"
            if spec_file.is_file():
                try:
                    spec = json.loads(spec_file.read_text())
                except (OSError, ValueError):
                    continue
                out["kernelspec"] = str(spec_file)
                if "interrupt_mode" in spec:
                    out["interrupt_mode"] = spec["interrupt_mode"]
                    out["interrupt_mode_source"] = f"kernelspec {spec_file}"
                else:
                    out["interrupt_mode"] = "signal"
                    out["interrupt_mode_source"] = f"jupyter_client's default: kernelspec {spec_file} does not set it"
                break
    if "interrupt_mode" not in out:
        out["interrupt_mode"] = "unknown"
        why = ("the connection file names no kernel" if not name
               else f"no kernelspec named {name!r} found") if cf else "no connection file on the command line"
        out["interrupt_mode_source"] = f"{why}; jupyter_client's default is signal"
    return out


# ---- gather ----------------------------------------------------------------

def gather(pid: int | None = None, inherited: dict | None = None, source: str | None = None) -> dict:
    """Everything measurable about pid (default: this process) as a JSON-ready
    dict. `inherited` (from snapshot_inherited()) replaces the dispositions
    of this process by the ones it was started with. `source` forces "ps"
    (the portable fallback) for testing it where /proc exists."""
    own = pid is None or pid == os.getpid()
    pid = os.getpid() if pid is None else pid
    facts: dict = {"pid": pid, "platform": sys.platform, "self": own}
    problems: list[str] = []
    if os.name == "nt":
        from . import doctor_win
        facts = doctor_win.gather(pid, own)
        facts["jupyter"] = _jupyter(facts, facts["problems"])
        return {k: v for k, v in facts.items() if not k.startswith("_")}
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
    facts["jupyter"] = _jupyter(facts, problems)
    facts["problems"] = problems
    for k in [k for k in facts if k.startswith("_")]:
        del facts[k]
    return facts


# ---- conclusions: rules as data ---------------------------------------------

def _sig(f, name):
    return f["signals"][name]


def _others(f):
    return [m for m in f.get("group_members", []) if m["pid"] != f["pid"]]


def _kernel(f):
    return f.get("jupyter", {}).get("kernel", False)


def _idle(f):
    """SIGINT between cells, where the caller (the IPython extension) measured it."""
    return f.get("kernel_states", {}).get("idle", {})


def _fmt_members(ms, limit=5):
    s = ", ".join(f"{m['pid']} ({m['comm']})" for m in ms[:limit])
    return s + (f" and {len(ms) - limit} more" if len(ms) > limit else "")


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


def conclude(facts: dict) -> list[dict]:
    """The conclusions that apply, each with the fact behind it."""
    if facts.get("source") == "unsupported":
        return []
    rules = RULES
    if facts.get("platform") == "win32":
        from . import doctor_win
        rules = doctor_win.RULES
    return [{"id": rid, "text": text(facts), "because": why(facts)}
            for rid, applies, text, why in rules if applies(facts)]


# ---- render ------------------------------------------------------------------

def _kv(rows):
    width = max(len(k) for k, _ in rows)
    return [f"  {k:<{width}}  {v}" for k, v in rows]


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
        from . import doctor_win
        lines += doctor_win.sections(facts)
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
