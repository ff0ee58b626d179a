"""IPython extension: `%load_ext sigprobe`, then

    %sigprobe doctor [--json]       the doctor report for this kernel, with SIGINT
                                    while a cell runs and between cells
    %sigprobe selftest [--json] [--repeat N] [--loop-ms N] [--delay-ms N] [--import]
                                    runs the extension probe's strategies in this
                                    kernel, interrupted the way its manager does
                                    (POSIX: SIGINT to its process group; Windows:
                                    SetEvent on JPY_INTERRUPT_EVENT), N times each
                                    (default 3): runs that disagree make the
                                    strategy flaky

Make it importable with sys.path.insert(0, "<repo>/scripts/sigprobe_ipython").
The extension probe (sigprobe_pyext) is found through $SIGPROBE_PYEXT_DIR or
the repository's build/pyext/.
"""
from __future__ import annotations

import json
import os
import queue
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[2]
REPO = SCRIPTS.parent
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))
from sigprobe_cli import doctor  # noqa: E402

IDLE_SAMPLE_AFTER_S = 0.25
USAGE = ("usage: %sigprobe doctor [--json] | "
         "%sigprobe selftest [--json] [--repeat N] [--loop-ms N] [--delay-ms N] [--import]")


# ---- SIGINT as this kernel has it now --------------------------------------

def _python_handler_name(h) -> str:
    if h is signal.default_int_handler:
        return "default_int_handler"
    if h == signal.SIG_IGN:
        return "SIG_IGN"
    if h == signal.SIG_DFL:
        return "SIG_DFL"
    return "other: " + getattr(h, "__qualname__", repr(h))


def pyext_module():
    """sigprobe_pyext from $SIGPROBE_PYEXT_DIR or <repo>/build/pyext, or None."""
    if "sigprobe_pyext" in sys.modules:
        return sys.modules["sigprobe_pyext"]
    for d in (os.environ.get("SIGPROBE_PYEXT_DIR"), str(REPO / "build" / "pyext")):
        if d and any(p.name.startswith("sigprobe_pyext.") for p in Path(d).glob("sigprobe_pyext.*")):
            if d not in sys.path:
                sys.path.insert(0, d)
            import sigprobe_pyext
            return sigprobe_pyext
    return None


def how_to_build() -> str:
    return ("the extension probe sigprobe_pyext is not built: run `scripts/sigprobe test` (or "
            "`cmake -S probes/pyext -B build/pyext-mine -DPython3_EXECUTABLE=" + sys.executable +
            " && cmake --build build/pyext-mine`) in " + str(REPO) + ", then set SIGPROBE_PYEXT_DIR to the "
            "directory holding sigprobe_pyext*.so (default: " + str(REPO / "build" / "pyext") + ")")


def sigint_now() -> dict:
    """SIGINT now, at both levels: the OS disposition (from /proc, which sees a C
    handler) and Python's record (signal.getsignal, which does not)."""
    out = {"python_handler": _python_handler_name(signal.getsignal(signal.SIGINT))}
    status = Path(f"/proc/{os.getpid()}/status")
    if status.exists():
        fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        bit = 1 << (signal.SIGINT - 1)
        out["os"] = ("ignored" if int(fields["SigIgn"], 16) & bit else
                     "caught" if int(fields["SigCgt"], 16) & bit else "default")
    m = pyext_module()
    if m is not None:
        st = m.sigint_state()
        out["os_action"] = {k: st[k] for k in ("disposition", "owner", "handler", "flags") if k in st}
    return out


class IdleSampler:
    """Measures SIGINT between cells: a magic always runs inside a cell, so the
    idle state is read by a short-lived thread IDLE_SAMPLE_AFTER_S after each
    cell ends, unless another cell has started by then."""

    def __init__(self):
        self.generation = 0
        self.sample = None
        self.lock = threading.Lock()

    def pre_execute(self):
        with self.lock:
            self.generation += 1

    def post_execute(self):
        with self.lock:
            self.generation += 1
            gen = self.generation
        ended = time.time()
        t = threading.Timer(IDLE_SAMPLE_AFTER_S, self._take, args=(gen, ended))
        t.daemon = True
        t.name = "sigprobe-idle-sampler"
        t.start()

    def _take(self, gen, ended):
        state = sigint_now()
        with self.lock:
            if gen == self.generation:  # no cell started meanwhile
                self.sample = {"state": state, "after_cell_s": round(time.time() - ended, 3),
                               "at": time.strftime("%H:%M:%S", time.localtime())}


SAMPLER = IdleSampler()


def kernel_states(now: dict) -> dict:
    idle = SAMPLER.sample
    if idle is not None:
        idle = {**idle["state"], "how": f"measured by a helper thread {idle['after_cell_s']} s after the previous "
                                        f"cell ended (at {idle['at']})"}
    else:
        idle = {"os": "ignored", "python_handler": "SIG_IGN",
                "how": "not measured yet (no cell has ended since the extension was loaded); this is "
                       "ipykernel's documented behaviour (kernelapp init_signal; post_handler_hook restores it)"}
    return {"running": {**now, "how": "measured now, during this magic (a cell is running)"}, "idle": idle}


def _state_lines(name, st):
    if "os" not in st:  # Windows: no OS-level SIGINT disposition to read
        return f"{name:<8} Python: {st['python_handler']}  ({st['how']})"
    os_part = st["os"]
    action = st.get("os_action")
    if action and action.get("disposition") == "caught":
        os_part += f" by {action.get('owner')}'s handler"
    return f"{name:<8} OS level: {os_part}; Python: {st['python_handler']}  ({st['how']})"


def doctor_facts() -> dict:
    facts = doctor.gather(os.getpid())
    states = kernel_states(sigint_now())
    facts["kernel_states"] = states
    facts["extra_sections"] = [{"title": "SIGINT in this kernel: running a cell vs idle",
                                "lines": [_state_lines("running", states["running"]),
                                          _state_lines("idle", states["idle"])]}]
    return facts


# ---- selftest -----------------------------------------------------------------

STRATEGIES = ["c-handler-per-call", "check-signals", "recommended", "self-pipe", "signalfd-thread", "none"]
WINDOWS_STRATEGIES = ["c-handler-per-call", "check-signals", "recommended", "self-pipe", "event-thread", "console-ctrl",
                      "none"]
# The probe's clock: CLOCK_MONOTONIC on POSIX, QueryPerformanceCounter on
# Windows (time.monotonic is GetTickCount64 there, milliseconds).
now_ns = time.perf_counter_ns if sys.platform == "win32" else time.monotonic_ns


def kernel_state() -> dict:
    """What the selftest must leave as it found it."""
    m = pyext_module()
    st = m.sigint_state()
    return {"python_handler": signal.getsignal(signal.SIGINT),
            "os_action": {k: st[k] for k in ("disposition", "owner", "handler", "flags")},
            "blocked": (sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, []))
                        if hasattr(signal, "pthread_sigmask") else None),
            "threads": sorted(t.name for t in threading.enumerate() if not t.name.startswith("sigprobe-")),
            "SIGPROBE_REPORT": os.environ.get("SIGPROBE_REPORT")}


class Helper:
    """The sender process (_sender.py, _sender_win.py): one JSON event a line
    on its stdout, read by a thread so that waiting works alike everywhere."""

    def __init__(self, argv, **popen):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, **popen)
        self.lines = queue.Queue()
        reader = threading.Thread(target=self._read_all, name="sigprobe-helper-reader", daemon=True)
        reader.start()
        self.reader = reader
        first = self.read(10)
        if not first or first.get("ev") != "listening":
            self.stop()
            raise RuntimeError(f"the helper process did not start: {first!r}")

    def _read_all(self):
        for line in self.proc.stdout:
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                self.lines.put({"ev": "error", "reason": f"the helper said {line[:200]!r}"})
        self.lines.put(None)

    def read(self, timeout):
        try:
            return self.lines.get(timeout=max(timeout, 0))
        except queue.Empty:
            return None

    def until_closed(self, timeout, events=None):
        """The run's events up to the helper's closed (or an error), appended
        to events (which keeps what was read if a KeyboardInterrupt cuts in)."""
        events = [] if events is None else events
        if events and events[-1]["ev"] in ("closed", "error"):
            return events
        while True:
            e = self.read(timeout)
            if e is None:
                events.append({"ev": "error", "reason": f"no word from the helper within {timeout:.0f} s"})
                return events
            events.append(e)
            if e["ev"] in ("closed", "error"):
                return events

    def stop(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(5)
        self.proc.stdout.close()


def _row(label, strategy, nogil, result, ki, t_ki, events, error=None):
    delivered = next((e for e in events if e["ev"] == "delivered"), None)
    probe = [e["event"] for e in events if e["ev"] == "probe"]
    fired = [e for e in probe if e.get("ev") == "fired"]
    done = next((e for e in probe if e.get("ev") == "done"), None)
    row = {"strategy": label, "nogil": nogil, "delivery": delivered["delivery"] if delivered else None,
           "fired": [{"handler": f.get("handler"), "thread": f.get("thread"),
                      "latency_us": round((f["t_ns"] - delivered["t_ns"]) / 1000) if delivered and "t_ns" in f else None}
                     for f in fired],
           "stopped_by": done.get("stopped_by") if done else (result or {}).get("stopped_by"),
           "keyboard_interrupt": ki}
    if ki == "after-return" and delivered:
        row["keyboard_interrupt_after_us"] = round((t_ki - delivered["t_ns"]) / 1000)
    own = [f for f in fired if f.get("handler") == strategy]
    errors = [e.get("reason") for e in events if e["ev"] == "error"] + [e.get("message") for e in probe if e.get("ev") == "error"]
    if error or not delivered:
        row["verdict"], row["reason"] = "error", error or "; ".join(filter(None, errors)) or "nothing was sent"
    elif own and row["stopped_by"] == strategy and ki in (None, "inside-call"):
        row["verdict"] = "handled"
    elif ki == "after-return":
        row["verdict"] = "deferred"
    else:
        row["verdict"] = "lost"
    row["noticed"] = row["verdict"] == "handled"
    return row


LATE_KI_GRACE_S = 0.5


def run_strategy(m, helper, label, strategy, nogil, loop_ms, call):
    result, ki, t_ki, error, events = None, None, None, None, []
    timeout = loop_ms / 1000 + 10
    try:
        try:
            result = call()
        except KeyboardInterrupt as e:
            t_ki = now_ns()
            ki = "inside-call" if getattr(e, "sigprobe_inside_call", False) else "after-return"
        except (OSError, RuntimeError, ValueError) as e:
            error = f"{type(e).__name__}: {e}"
        helper.until_closed(timeout, events)
        # An interrupt the call did not notice becomes a KeyboardInterrupt at
        # the interpreter's next check, here: at once on POSIX; on Windows once
        # ipykernel's poller thread gets the GIL the call held and calls
        # interrupt_main(). Wait for it where it is caught.
        fired = any(e["ev"] == "probe" and e["event"].get("ev") == "fired" and e["event"].get("handler") == strategy
                    for e in events)
        if ki is None and not fired and any(e["ev"] == "delivered" for e in events):
            end = time.monotonic() + LATE_KI_GRACE_S
            while time.monotonic() < end:
                time.sleep(0.005)
    except KeyboardInterrupt:  # landed after the call returned
        t_ki, ki = now_ns(), ki or "after-return"
    while True:  # this run's events, all of them, whatever lands meanwhile
        try:
            helper.until_closed(timeout, events)
            break
        except KeyboardInterrupt:
            t_ki, ki = t_ki or now_ns(), ki or "after-return"
    return _row(label, strategy, nogil, result, ki, t_ki, events, error)


def run_all(out, runs):
    """Each (label, strategy, nogil, call) through run_strategy; a
    KeyboardInterrupt later than every run's grace is counted, never let
    into the user's cell."""
    for args in runs:
        try:
            out["rows"].append(run_strategy(*args))
        except KeyboardInterrupt:
            out["stray_keyboard_interrupts"] = out.get("stray_keyboard_interrupts", 0) + 1


def _posix_sender(delay_ms):
    """SIGINT to this kernel's process group (to its pid when the group holds
    other processes) from a helper in its own session."""
    pid, pgid = os.getpid(), os.getpgid(0)
    others = [mm for mm in doctor.group_members(pgid) if mm["pid"] != pid]
    out = {"pid": pid, "pgid": pgid, "delivery": "killpg" if not others else "kill"}
    if others:
        out["delivery_note"] = (f"the process group {pgid} holds other processes ({doctor._fmt_members(others)}): "
                                f"killpg would interrupt them too, so SIGINT went to this kernel's pid only")
    tmp = tempfile.mkdtemp(prefix="spst", dir="/tmp")  # short: Unix socket paths are limited
    sock = os.path.join(tmp, "r.sock")
    try:
        helper = Helper([sys.executable, str(Path(__file__).with_name("_sender.py")), sock, str(pid), str(pgid),
                         out["delivery"], str(delay_ms)], start_new_session=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out, helper, f"unix:{sock}", lambda: shutil.rmtree(tmp, ignore_errors=True)


def _windows_sender(delay_ms):
    """SetEvent on this kernel's JPY_INTERRUPT_EVENT from a helper process
    that inherits the event and the read end of the probe's report pipe."""
    import msvcrt
    event = os.environ.get("JPY_INTERRUPT_EVENT", "")
    facts = doctor.gather(os.getpid())
    fact = next((h for h in facts.get("handles", []) if h["variable"] == "JPY_INTERRUPT_EVENT"), None)
    if not fact or not fact.get("valid"):
        why = fact["why"] if fact else "it is not set"
        return {"unsupported": f"this kernel cannot be interrupted the way its manager does: JPY_INTERRUPT_EVENT "
                               f"{'=' + event + ' ' if event else ''}({why}); a Jupyter launcher on Windows passes "
                               f"an inherited event there"}, None, None, None
    r, w = os.pipe()
    rh, wh = msvcrt.get_osfhandle(r), msvcrt.get_osfhandle(w)
    os.set_handle_inheritable(rh, True)
    try:
        helper = Helper([sys.executable, str(Path(__file__).with_name("_sender_win.py")), str(rh), event,
                         str(delay_ms)], close_fds=True,
                        startupinfo=subprocess.STARTUPINFO(lpAttributeList={"handle_list": [rh, int(event)]}),
                        creationflags=subprocess.CREATE_NO_WINDOW)
    except BaseException:
        os.close(r)
        os.close(w)
        raise
    os.close(r)  # the helper holds the read end now
    out = {"pid": os.getpid(), "delivery": "set-event", "event": event,
           "event_auto_reset": fact.get("auto_reset")}
    return out, helper, str(wh), lambda: os.close(w)


def selftest(loop_ms=1000, delay_ms=100, with_import=False, repeat=3) -> dict:
    m = pyext_module()
    if m is None:
        return {"error": how_to_build()}
    out, helper, report, cleanup = (_windows_sender if sys.platform == "win32" else _posix_sender)(delay_ms)
    if helper is None:
        return out
    out.update({"loop_ms": loop_ms, "delay_ms": delay_ms, "repeat": repeat, "rows": []})
    before = kernel_state()
    saved_env = os.environ.get("SIGPROBE_REPORT")
    os.environ["SIGPROBE_REPORT"] = report
    try:
        strategies = WINDOWS_STRATEGIES if sys.platform == "win32" else [
            s for s in STRATEGIES if s != "signalfd-thread" or sys.platform.startswith("linux")]
        run_all(out, [(m, helper, s, s, nogil, loop_ms, lambda s=s, nogil=nogil: m.run(s, loop_ms, nogil=nogil))
                      for _ in range(repeat) for s in strategies for nogil in (False, True)])
        _import_rows(helper, loop_ms, with_import, out, repeat)
    finally:
        if saved_env is None:
            os.environ.pop("SIGPROBE_REPORT", None)
        else:
            os.environ["SIGPROBE_REPORT"] = saved_env
        helper.stop()
        cleanup()
    after = kernel_state()
    out["state_unchanged"] = before == after
    if not out["state_unchanged"]:
        out["state_diff"] = {k: [repr(before[k]), repr(after[k])] for k in before if before[k] != after[k]}
        signal.signal(signal.SIGINT, before["python_handler"])  # puts CPython's own handler back at OS level
        out["restored"] = kernel_state() == before
    out["helper_exit"] = helper.proc.returncode
    out["summary"] = summarize(out["rows"])
    return out


def summarize(rows) -> list[dict]:
    """One line per (strategy, gil): its verdict, or `flaky` with the count of
    each verdict when its runs disagree; the median latency of the runs whose
    handler fired."""
    groups: dict = {}
    for row in rows:
        groups.setdefault((row["strategy"], row["nogil"]), []).append(row)
    out = []
    for (strategy, nogil), runs in groups.items():
        counts: dict = {}
        for r in runs:
            counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
        lat = sorted(f["latency_us"] for r in runs for f in r["fired"][:1] if f["latency_us"] is not None)
        late = sorted(r["keyboard_interrupt_after_us"] for r in runs if "keyboard_interrupt_after_us" in r)
        line = {"strategy": strategy, "nogil": nogil, "runs": len(runs),
                "verdict": next(iter(counts)) if len(counts) == 1 else "flaky", "counts": counts,
                "noticed": f"{sum(r['noticed'] for r in runs)}/{len(runs)}",
                "handlers": sorted({f"{f['handler']} ({f['thread']} thread)" for r in runs for f in r["fired"]})}
        if lat:
            line["latency_us_median"] = lat[len(lat) // 2]
        if late:
            line["keyboard_interrupt_after_us_median"] = late[len(late) // 2]
        reasons = sorted({r["reason"] for r in runs if r.get("reason")})
        if reasons:
            line["reasons"] = reasons
        out.append(line)
    return out


def _import_rows(helper, loop_ms, with_import, out, repeat):
    """c-handler-import: the seed's case, a C handler installed once at import."""
    def runs(label, mi):
        return [(None, helper, label, "c-handler-import", nogil, loop_ms,
                 lambda nogil=nogil: mi.run(loop_ms, nogil=nogil)) for _ in range(repeat) for nogil in (False, True)]

    if "sigprobe_pyext_import" in sys.modules:
        run_all(out, runs("c-handler-import (imported before this cell)", sys.modules["sigprobe_pyext_import"]))
        return
    if not with_import:
        out["import_note"] = ("c-handler-import not run: import sigprobe_pyext_import in an earlier cell and run "
                              "the selftest again (or pass --import); importing installs its C handler for the "
                              "life of the process, so the selftest does not do it unasked")
        return
    import sigprobe_pyext_import as mi
    run_all(out, runs("c-handler-import (imported in this cell)", mi))
    # What the next cell does first: ipykernel's own pre_handler_hook, replayed
    # here; the cell's saved handler is kept so that this cell ends as usual.
    kernel = getattr(_ipython(), "kernel", None)
    if kernel is None or not hasattr(kernel, "pre_handler_hook"):
        out["import_note"] = "no ipykernel kernel object: the next-cell case was not run"
        return
    saved = kernel.saved_sigint_handler
    try:
        kernel.pre_handler_hook()
        run_all(out, runs("c-handler-import (next cell: pre_handler_hook replayed)", mi))
    finally:
        kernel.saved_sigint_handler = saved


def render_selftest(r: dict) -> str:
    if "unsupported" in r:
        return f"sigprobe selftest: unsupported here: {r['unsupported']}"
    if "error" in r:
        return f"sigprobe selftest: {r['error']}"
    if r["delivery"] == "set-event":
        how = (f"SetEvent on JPY_INTERRUPT_EVENT={r['event']}"
               + (" (auto-reset)" if r.get("event_auto_reset") else "") + ", as jupyter_client does,")
    else:
        how = (f"SIGINT by {r['delivery']} "
               f"({'group ' + str(r['pgid']) if r['delivery'] == 'killpg' else 'pid ' + str(r['pid'])})")
    lines = [f"sigprobe selftest in kernel pid {r['pid']}, {r['repeat']} run(s) per line: {how} from a helper "
             f"process, {r['delay_ms']} ms after the probe was ready; each call loops up to {r['loop_ms']} ms"]
    if r.get("delivery_note"):
        lines.append(f"  note: {r['delivery_note']}")
    lines.append("")
    lines.append(f"  {'strategy':<56} {'gil':<6} {'noticed':<8} {'verdict':<9} how")
    for line in r["summary"]:
        if line["handlers"]:
            how = ", ".join(line["handlers"]) + f" fired, median {line['latency_us_median']} us after the interrupt"
        else:
            how = "no handler fired"
        if "keyboard_interrupt_after_us_median" in line:
            how += (f"; KeyboardInterrupt only after the call returned, median "
                    f"{line['keyboard_interrupt_after_us_median'] / 1000:.0f} ms after the interrupt (caught)")
        if line["verdict"] == "flaky":
            how = ", ".join(f"{v} {n}" for v, n in line["counts"].items()) + "; " + how
        if line.get("reasons"):
            how += "; " + "; ".join(line["reasons"])
        lines.append(f"  {line['strategy']:<56} {'nogil' if line['nogil'] else 'gil':<6} "
                     f"{line['noticed']:<8} {line['verdict']:<9} {how}")
    lines.append("  (KeyboardInterrupts raised inside the call, by check-signals and recommended, are counted as handled and caught)")
    answer = []
    for label, pick in (("in every run", lambda c: set(c) == {"handled"}),
                        ("in some runs only", lambda c: "handled" in c and len(c) > 1),
                        ("never", lambda c: "handled" not in c)):
        names = [f"{ln['strategy']}{' +nogil' if ln['nogil'] else ''}" for ln in r["summary"] if pick(ln["counts"])]
        if names:
            answer.append(f"{label}: {', '.join(names)}")
    lines += ["", "  Noticed the interrupt inside the native call " + "; ".join(answer) + "."]
    if r.get("import_note"):
        lines += ["", f"  {r['import_note']}"]
    if r.get("stray_keyboard_interrupts"):
        lines += ["", f"  {r['stray_keyboard_interrupts']} KeyboardInterrupt(s) arrived more than "
                      f"{LATE_KI_GRACE_S} s after their run ended (caught; that run's row is missing)"]
    lines.append("")
    if r["state_unchanged"]:
        lines.append("  kernel state afterwards: unchanged (Python and OS-level SIGINT handlers"
                     + (", blocked signals" if sys.platform != "win32" else "")
                     + ", threads, SIGPROBE_REPORT); the helper process has exited")
    else:
        lines.append(f"  kernel state afterwards: CHANGED {r['state_diff']}; restored: {r.get('restored')}")
    return "\n".join(lines)


# ---- the magic ------------------------------------------------------------------

def _ipython():
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def sigprobe_magic(line: str):
    args = shlex.split(line)
    if not args or args[0] not in ("doctor", "selftest"):
        print(USAGE)
        return
    as_json = "--json" in args
    if args[0] == "doctor":
        facts = doctor_facts()
        print(json.dumps(doctor.report(facts), indent=2) if as_json else doctor.render(facts))
        return
    opts = {"loop_ms": 1000, "delay_ms": 100, "repeat": 3, "with_import": "--import" in args}
    for flag, key in (("--loop-ms", "loop_ms"), ("--delay-ms", "delay_ms"), ("--repeat", "repeat")):
        if flag in args:
            try:
                opts[key] = int(args[args.index(flag) + 1])
                if opts[key] < (1 if key == "repeat" else 0):
                    raise ValueError
            except (IndexError, ValueError):
                print(f"{flag} needs a number; {USAGE}")
                return
    r = selftest(**opts)
    print(json.dumps(r, indent=2, default=repr) if as_json else render_selftest(r))


def load_ipython_extension(ip):
    ip.register_magic_function(sigprobe_magic, magic_kind="line", magic_name="sigprobe")
    ip.events.register("pre_execute", SAMPLER.pre_execute)
    ip.events.register("post_execute", SAMPLER.post_execute)


def unload_ipython_extension(ip):
    for name, cb in (("pre_execute", SAMPLER.pre_execute), ("post_execute", SAMPLER.post_execute)):
        try:
            ip.events.unregister(name, cb)
        except ValueError:
            pass
