"""The IPython extension: `%load_ext sigprobe`, then

    %sigprobe doctor [--json]       the doctor report for this kernel, with SIGINT
                                    while a cell runs and between cells
    %%sigprobe check [--after MS] [--mode signal|message] [--repeat N] [--json]
                                    runs the cell's code in this kernel, interrupts
                                    it the way its manager would, and says whether,
                                    where and why not (sigprobe check's report);
                                    %sigprobe check EXPR for one expression
    %sigprobe selftest [--json] [--repeat N] [--loop-ms N] [--delay-ms N] [--import]
                                    runs the extension probe's strategies in this
                                    kernel, interrupted the way its manager does
                                    (POSIX: SIGINT to its process group; Windows:
                                    SetEvent on JPY_INTERRUPT_EVENT), N times each
                                    (default 3): runs that disagree make the
                                    strategy flaky; "interrupt kernel" while it
                                    runs stops it (KeyboardInterrupt in the cell),
                                    its own interrupts stay caught

`%sigprobe --help` says the same. The extension probe (sigprobe_pyext) is the
one installed in the package (built for this interpreter by the wheel), or
the one in $SIGPROBE_PYEXT_DIR.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from IPython.core import magic_arguments
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class

from .. import doctor
from ..catalog import VERDICTS
from ..commands.options import bounded_int
from ..remote.pyext_loader import load_pyext
from ..remote.subject import handler_name
from .kernel import (Report, _posix_sender, _windows_sender, how_to_build, kernel_state, pyext_dir, pyext_module,
                     users_interrupt)



# ---- SIGINT as this kernel has it now --------------------------------------

def sigint_now() -> dict:
    """SIGINT now, at both levels: the OS disposition (from /proc, which sees a C
    handler) and Python's record (signal.getsignal, which does not)."""
    out = {"python_handler": handler_name(signal.getsignal(signal.SIGINT))}
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
    """Measures SIGINT between cells. A magic always runs inside a cell, so the
    idle state is read right after ipykernel's post_handler_hook (which puts
    back the handler the kernel keeps while idle) has run for a cell, in the
    kernel's own thread: what an interrupt meets while the kernel waits for
    the next message. (A timer a fixed time after the cell raced that hook on
    a loaded machine and sometimes read the running state.)"""

    def __init__(self):
        self.sample = None
        self.ended = None  # when the last cell ended, until the sample after it is taken
        self.kernel = None

    def install(self, ip) -> None:
        kernel = getattr(ip, "kernel", None)
        hook = getattr(kernel, "post_handler_hook", None)
        if hook is None or self.kernel is not None:
            return  # not in a kernel (a terminal IPython), or installed already

        def post_handler_hook():
            hook()
            self.take()

        kernel.post_handler_hook = post_handler_hook  # on the instance: uninstall() deletes it
        self.kernel = kernel

    def uninstall(self) -> None:
        if self.kernel is not None:
            self.kernel.__dict__.pop("post_handler_hook", None)
            self.kernel = None

    def post_execute(self):
        self.ended = time.time()

    def take(self):
        if self.ended is None:
            return  # a message other than a cell's (kernel_info, complete, ...)
        ended, self.ended = self.ended, None
        self.sample = {"state": sigint_now(), "after_cell_s": round(time.time() - ended, 3),
                       "at": time.strftime("%H:%M:%S", time.localtime())}


SAMPLER = IdleSampler()


def kernel_states(now: dict) -> dict:
    idle = SAMPLER.sample
    if idle is not None:
        idle = {**idle["state"], "how": f"measured as the kernel went idle after the previous cell "
                                        f"({idle['after_cell_s']} s after it ended, at {idle['at']})"}
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

# The extension's strategies that exist on one platform only (its run() says
# `unsupported` elsewhere): the selftest runs a strategy where it can run.
# c-handler-import installs its handler for the life of the process: asked for with --import.
PLATFORM_ONLY = {"signalfd-thread": "linux", "event-thread": "win32", "console-ctrl": "win32"}


def selftest_strategies(m) -> list[str]:
    return [s for s in m.STRATEGIES
            if s != "c-handler-import" and sys.platform.startswith(PLATFORM_ONLY.get(s, sys.platform))]


# The probe's clock: CLOCK_MONOTONIC on POSIX, QueryPerformanceCounter on
# Windows (time.monotonic is GetTickCount64 there, milliseconds).
now_ns = time.perf_counter_ns if sys.platform == "win32" else time.monotonic_ns


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
        t_ki, ki = t_ki or now_ns(), ki or "after-return"
    while True:  # this run's events, all of them, whatever lands meanwhile
        try:
            helper.until_closed(timeout, events)
            break
        except KeyboardInterrupt:
            t_ki, ki = t_ki or now_ns(), ki or "after-return"
    row = _row(label, strategy, nogil, result, ki, t_ki, events, error)
    # The first interrupt this run saw: a KeyboardInterrupt, or a probe's
    # handler (which swallows it). Before the helper's, it was the user's.
    seen = [t_ki] + [e["event"]["t_ns"] for e in events
                     if e["ev"] == "probe" and e["event"].get("ev") == "fired" and "t_ns" in e["event"]]
    first = min((t for t in seen if t is not None), default=None)
    row["_seen"] = first is not None
    row["_users"] = users_interrupt(first, events)
    return row


def run_all(out, runs):
    """Each (label, strategy, nogil, call) through run_strategy. The user's
    interrupt ("interrupt kernel" during a run, told from the helper's by
    kernel.users_interrupt) stops the selftest: the run's events are all in,
    its own interrupt caught, and the KeyboardInterrupt goes to the user's
    cell. A KeyboardInterrupt between runs, later than every run's grace, is
    counted, never let into the user's cell; so is one that comes before a
    run's own delivery while an earlier run's interrupt was never seen (on
    Windows the poller thread may call interrupt_main() that late): only an
    interrupt beyond all those the helper sent is the user's."""
    owed = 0  # the helper's interrupts no run has seen yet
    for args in runs:
        try:
            row = run_strategy(*args)
        except KeyboardInterrupt:
            out["stray_keyboard_interrupts"] = out.get("stray_keyboard_interrupts", 0) + 1
            owed = max(0, owed - 1)
            continue
        seen, users = row.pop("_seen"), row.pop("_users")
        if users and owed == 0:
            raise KeyboardInterrupt
        if users:  # a late one of an earlier run's
            out["stray_keyboard_interrupts"] = out.get("stray_keyboard_interrupts", 0) + 1
            owed -= 1
        owed += (row["delivery"] is not None) - (seen and not users)
        out["rows"].append(row)


def selftest(loop_ms=1000, delay_ms=100, with_import=False, repeat=3) -> dict:
    m = pyext_module()
    if m is None:
        return {"error": how_to_build()}
    before = kernel_state()
    out, helper, report, cleanup = (_windows_sender if sys.platform == "win32" else _posix_sender)(delay_ms)
    if helper is None:
        return out
    saved_env = os.environ.get("SIGPROBE_REPORT")
    try:
        out.update({"loop_ms": loop_ms, "delay_ms": delay_ms, "repeat": repeat, "rows": []})
        os.environ["SIGPROBE_REPORT"] = report
        strategies = selftest_strategies(m)
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
    mi = load_pyext(str(pyext_dir()), "sigprobe_pyext_import")
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


def selftest_rows(r: dict) -> list[dict]:
    """The summary as table rows, one per (strategy, gil)."""
    return [{"strategy": ln["strategy"], "gil": "nogil" if ln["nogil"] else "gil", "noticed": ln["noticed"],
             "verdict": ln["verdict"] if ln["verdict"] in VERDICTS else f"{ln['verdict']} ({ln['counts']})",
             "latency_us_median": ln.get("latency_us_median", "")} for ln in r.get("summary", [])]


SELFTEST_ONLY = ("repeat", "loop_ms", "delay_ms", "with_import")
DEFAULTS = {"repeat": 3, "loop_ms": 1000, "delay_ms": 100, "with_import": False}


@magics_class
class SigprobeMagics(Magics):
    @magic_arguments.magic_arguments()
    @magic_arguments.argument("-h", "--help", action="store_true", help="show this help")
    @magic_arguments.argument("command", nargs="?", choices=("doctor", "selftest", "check"),
                              help="check: `%%%%sigprobe check [--after MS] [--mode signal|message] [--repeat N]` "
                                   "runs the cell's code here, interrupts it, and says whether, where and why not "
                                   "(`%%sigprobe check EXPR` for one line; `%%sigprobe check --help`); "
                                   "doctor: this kernel's interrupt handling, with the facts behind it; "
                                   "selftest: interrupt this kernel the way its manager does while each of the "
                                   "extension probe's strategies runs, and say which noticed")
    @magic_arguments.argument("--json", action="store_true", help="print the result as JSON")
    @magic_arguments.argument("--repeat", type=bounded_int(1000), metavar="N",
                              help=f"selftest: runs per strategy (default {DEFAULTS['repeat']}); runs that "
                                   "disagree make it flaky")
    @magic_arguments.argument("--loop-ms", type=bounded_int(600_000), metavar="N",
                              help=f"selftest: how long each native call loops at most (default {DEFAULTS['loop_ms']})")
    @magic_arguments.argument("--delay-ms", type=bounded_int(600_000, low=0), metavar="N",
                              help=f"selftest: the interrupt comes N ms after the probe is ready "
                                   f"(default {DEFAULTS['delay_ms']})")
    @magic_arguments.argument("--import", dest="with_import", action="store_true",
                              help="selftest: also c-handler-import (installs a C SIGINT handler for the life of "
                                   "the process)")
    @line_cell_magic
    def sigprobe(self, line: str, cell: str | None = None):
        """Which interrupt handler fires in this kernel, and how fast; and
        `%%sigprobe check`: is this cell's code interruptible here."""
        words = line.split(None, 1)
        if words[:1] == ["check"]:
            from . import check_magic
            try:
                return check_magic.magic(self.shell, words[1] if len(words) > 1 else "", cell)
            except check_magic.UsageProblem as e:
                raise UsageError(str(e)) from None
        if cell is not None:
            raise UsageError("%%sigprobe: only `%%sigprobe check` takes a cell (see %sigprobe --help)")
        parser = self.sigprobe.parser
        try:
            args = parser.parse_argstring(line)
        except ValueError as e:  # an unclosed quote
            raise UsageError(f"%sigprobe: {e}") from None
        if args.help:
            print(parser.format_help())
            return None
        if args.command is None:
            raise UsageError("%sigprobe needs a subcommand: doctor or selftest (see %sigprobe --help)")
        given = {k: getattr(args, k) for k in SELFTEST_ONLY if getattr(args, k) not in (None, False)}
        if args.command == "doctor":
            if given:
                flags = ", ".join("--" + ("import" if k == "with_import" else k.replace("_", "-")) for k in given)
                raise UsageError(f"{flags}: only for %sigprobe selftest")
            facts = doctor_facts()
            if args.json:
                print(json.dumps(doctor.report(facts), indent=2))
                return None
            return Report(doctor.render(facts), title="sigprobe doctor")
        if not hasattr(self.shell, "kernel"):
            raise UsageError("%sigprobe selftest interrupts the Jupyter kernel it runs in, and this IPython is not "
                             "one (run it in a notebook or a kernel: pip install ipykernel)")
        r = selftest(**{**DEFAULTS, **given})
        if args.json:
            print(json.dumps(r, indent=2, default=repr))
            return None
        return Report(render_selftest(r), selftest_rows(r), "sigprobe selftest: did each strategy notice the "
                                                            "interrupt inside the native call?")


def load_ipython_extension(ip):
    ip.register_magics(SigprobeMagics)
    ip.events.register("post_execute", SAMPLER.post_execute)
    SAMPLER.install(ip)


def unload_ipython_extension(ip):
    SAMPLER.uninstall()
    try:
        ip.events.unregister("post_execute", SAMPLER.post_execute)
    except ValueError:
        pass
