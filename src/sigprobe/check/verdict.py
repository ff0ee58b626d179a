"""The verdict of one `sigprobe check` run, from the facts subject.py took in
the interpreter or kernel, the moment sigprobe interrupted, and the code's
uninterrupted run (its calibration). The words are the matrix's: handled,
deferred, lost, hung, killed, error.

handled and deferred differ in whether the interrupt cut the code short:
a KeyboardInterrupt that comes only when the code would have ended anyway
came when the call returned on its own. "Would have ended" is measured two
ways, and either suffices: the wall time from the code's start, and the
process's CPU time, all its threads (for busy code: when runs share the
cores the wall time stretches, not the work done — a BLAS call's worker
threads included), each at least DEFERRED_SHARE of the uninterrupted run's."""
from __future__ import annotations


DEFERRED_SHARE = 0.8
CPU_MEANINGFUL_NS = 50_000_000  # below this the code mostly waited: its CPU time says nothing
GIL_EXPLAINS_SHARE = 0.5  # of the interrupt -> KeyboardInterrupt time, for the GIL to be the reason
GIL_REPORT_MS = 20  # a hold shorter than this is the interpreter's own switching (5 ms), not a fact worth naming

# What the reference recommends, by what stood in the way.
FIX_CHECK = ("make the native loop check for interrupts: call PyErr_CheckSignals() every few milliseconds "
             "(sigprobe's interruptible.h does it at a measured cost: `sigprobe.get_include()`), "
             "and release the GIL around what waits")
FIX_GIL = ("release the GIL in the native code (Py_BEGIN_ALLOW_THREADS, ctypes.CDLL rather than PyDLL) and "
           "check for interrupts there: ipykernel's message mode and its Windows poller need the GIL to act")
FIX_HANDLER = ("do not rely on a C SIGINT handler installed at import: ipykernel puts Python's back around "
               "every cell; check PyErr_CheckSignals() in the loop instead (sigprobe's interruptible.h)")
FIX_SWALLOW = ("let KeyboardInterrupt propagate: a bare `except:` or `except BaseException:` around a loop "
               "swallows it")
FIX_DFL = "leave SIGINT to Python (signal.default_int_handler) while this code runs"
FIX_WINDOWS_MESSAGE = ("interrupt a Windows kernel in signal mode (the kernelspec's default interrupt_mode), where "
                       "jupyter_client sets the kernel's JPY_INTERRUPT_EVENT")
FIX_WAIT = ("wait in slices (a timeout of a few tens of ms, then again) so that the main thread gets back to "
            "Python, or to PyErr_CheckSignals(), between them")
# The thread that passes a kernel's interrupt on to the main thread, where it needs the GIL to do so.
GIL_THREAD = {"message": "in message mode the kernel's control thread turns the interrupt_request into SIGINT",
              "windows": "on Windows the kernel's poller thread turns the interrupt event into interrupt_main()"}


def basename(path: str) -> str:
    """A file's name, from a POSIX or a Windows path (the code may have run under Wine)."""
    return path.replace("\\", "/").rsplit("/", 1)[-1]


def ms(ns: int | None) -> float | None:
    return None if ns is None else round(ns / 1e6, 1)


def _gil_hold(facts: dict, t_deliv: int | None) -> list | None:
    """The longest stretch without a watchdog wake-up that covers the
    interrupt (or, with no interrupt, the longest)."""
    gaps = facts.get("gaps") or []
    if t_deliv is not None:
        gaps = [g for g in gaps if g[0] <= t_deliv <= g[1] + 2_000_000]
    return max(gaps, key=lambda g: g[1] - g[0], default=None)


def _frame_at(facts: dict, t: int | None) -> list | None:
    """The main thread's last sampled position in the code, at or before t."""
    frames = [f for f in facts.get("frames") or [] if f[0] >= (facts.get("t_start") or 0)]
    best = None
    for f in frames:
        if t is None or f[0] <= t:
            best = f
        else:
            break
    return best


def _owner_at(facts: dict, t: int | None) -> list | None:
    owners = facts.get("owners") or []
    best = None
    for o in owners:
        if t is None or o[0] <= t:
            best = o
    return best


def _place(f: list | None) -> str | None:
    if not f:
        return None
    _, file, line, func, _, *src = f
    where = f"{basename(file) if not file.startswith('<') else file}:{line} in {func}"
    return f"{where} ({src[0]})" if src and src[0] else where


def owner_words(o: str | None) -> str:
    return {"python": "Python's handler", "default": "the default action (SIG_DFL)", "ignored": "ignored (SIG_IGN)",
            None: "unknown", "unknown": "a handler in no known object"}.get(o, f"a handler in {o}")


def ending(facts: dict) -> dict:
    """How an uninterrupted run ended, when not by returning: the exception
    the code raises on its own (queue.get(timeout=...) raises Empty), so
    that an interrupted run ending the same way ran to its end."""
    return {"error": facts["error"]} if facts.get("outcome") == "exception" and facts.get("error") else {}


def ran_to_end(facts: dict, t_ki: int, calib: dict | None) -> bool:
    """Whether the code had done, by the KeyboardInterrupt, what its
    uninterrupted run does (calib: {"wall_ns", "cpu_ns"}; None: that run
    did not end within the timeout)."""
    if not calib:
        return False
    if t_ki - facts["t_start"] >= DEFERRED_SHARE * calib["wall_ns"]:
        return True
    cpu, cpu_ki = calib.get("cpu_ns"), facts.get("cpu_ki_ns")
    return cpu is not None and cpu_ki is not None and cpu >= CPU_MEANINGFUL_NS and cpu_ki >= DEFERRED_SHARE * cpu


def judge(host: str, run: dict, calib: dict | None, after_ms: int) -> dict:
    """run: what the host runner saw ({"facts", "t_deliv", "setup", "exit",
    "hung", "reason", "error", "output"}); calib: the code's uninterrupted
    run ({"wall_ns", "cpu_ns"}; None: it did not end within the timeout).
    Returns the run's record for the results document."""
    facts = run.get("facts") or {}
    t_deliv = run.get("t_deliv")
    start = facts.get("t_start")
    rec: dict = {"host": host}
    check: dict = {}
    rec["check"] = check

    def verdict(v: str, reason: str | None = None) -> dict:
        rec["verdict"] = v
        if reason:
            rec["reason"] = reason
        return rec

    if start is not None and t_deliv is not None:
        check["interrupted_at_ms"] = ms(t_deliv - start)
    if facts.get("t_end") is not None and start is not None:
        check["ended_at_ms"] = ms(facts["t_end"] - start)
    hold = _gil_hold(facts, t_deliv)
    if hold is not None and hold[1] - hold[0] >= GIL_REPORT_MS * 1e6:
        check["gil_held_ms"] = ms(hold[1] - hold[0])
        if start is not None:
            check["gil_held_from_ms"] = ms(hold[0] - start)
    pos = _frame_at(facts, (hold[0] if hold else t_deliv))
    if pos and t_deliv is not None:
        check["at_interrupt"] = _place(pos)
        # Native: the main thread sat at one instruction (a call into C, or a
        # C-level operation) across the interrupt, or held the GIL through it.
        still = [f for f in facts.get("frames") or [] if f[0] > pos[0] and f[0] <= t_deliv]
        check["native"] = bool(hold) or (not still and t_deliv - pos[0] >= 5_000_000)
    owners = {}
    if run.get("setup") and run["setup"].get("owner"):
        owners["after_setup"] = run["setup"]["owner"]
    if facts.get("owner_before"):
        owners["before"] = facts["owner_before"]
    during = _owner_at(facts, t_deliv)
    if during:
        owners["during"] = during[1:]
    if facts.get("owner_after"):
        owners["after"] = facts["owner_after"]
    if owners:
        check["sigint_owner"] = owners
    if facts.get("where"):
        check["raised_at"] = facts["where"]
    if run.get("kernel_log"):
        rec["kernel_log"] = run["kernel_log"]
    if run.get("kernel_said"):  # what the kernel logged about the interrupt (Windows, message mode)
        check["kernel_said"] = run["kernel_said"]

    if run.get("unsupported"):
        return verdict("unsupported", run["unsupported"])
    if run.get("error"):
        return verdict("error", run["error"])
    outcome = facts.get("outcome")
    if outcome in ("bad-code", "setup-failed"):
        return verdict("error", facts.get("error"))
    if run.get("hung"):
        reason = run.get("reason") or "still running at the deadline"
        return verdict("hung", f"{reason}; sigprobe ended it")
    ex = run.get("exit") or {}
    if not facts and ex.get("signal") == "SIGINT":
        return verdict("killed", "SIGINT ended the process: its disposition was the default action")
    if not facts:
        how = (f"killed by {ex['signal']}" if ex.get("signal") else f"exited with code {ex.get('code')}") if ex \
            else "ended"
        return verdict("error", f"the interpreter {how} without reporting the code's end"
                                + (f": {run['output'].strip().splitlines()[-1][:200]}" if run.get("output", "").strip()
                                   else ""))
    if t_deliv is None:
        return verdict("error", f"the code ended after {ms(facts['t_end'] - start)} ms, before the interrupt at "
                                f"--after {after_ms} ms ({outcome}{': ' + facts['error'] if facts.get('error') else ''})")
    t_ki = facts.get("t_ki")
    if t_ki is not None:
        check["ki_latency_ms"] = ms(t_ki - t_deliv)
        elapsed = t_ki - start
        if outcome == "keyboard-interrupt-after" or ran_to_end(facts, t_ki, calib):
            because = ("the code had returned" if outcome == "keyboard-interrupt-after" else
                       f"uninterrupted, it ends after {ms(calib['wall_ns'])} ms"
                       + (f", {ms(calib['cpu_ns'])} ms of CPU; this run had used {ms(facts['cpu_ki_ns'])}"
                          if calib.get("cpu_ns") and facts.get("cpu_ki_ns") is not None else ""))
            return verdict("deferred", f"KeyboardInterrupt only {ms(t_ki - t_deliv)} ms after the interrupt, "
                                       f"{ms(elapsed)} ms into the code ({because})")
        rec["fired"] = [{"handler": "KeyboardInterrupt", "latency_us": round((t_ki - t_deliv) / 1e3, 3)}]
        return verdict("handled")
    own_end = ""
    if outcome == "exception":
        if not (calib and calib.get("error") == facts.get("error")):
            return verdict("error", f"the code raised {facts.get('error')} after the interrupt, not KeyboardInterrupt")
        own_end = f" (raising {facts['error']}, as it does uninterrupted)"
    if outcome == "exit" and facts.get("exit_code"):
        return verdict("error", f"the code exited with status {facts['exit_code']} after the interrupt")
    return verdict("lost", f"the code ran to its end{own_end}, {ms(facts['t_end'] - t_deliv)} ms after the "
                           "interrupt, and no KeyboardInterrupt was raised")


def conclusion(host: str, cell: dict) -> str:
    """One plain-words sentence for a host: what happened, the fact behind it,
    and the fix the reference recommends."""
    runs = cell.get("runs") or []
    v = cell["verdict"]
    first = next((r for r in runs if r["verdict"] == v), runs[0] if runs else {})
    c = first.get("check", {})
    kernel = host.startswith("jupyter")
    windows = cell.get("id", "").startswith("windows")
    owners = c.get("sigint_owner", {})
    set_up = (owners.get("after_setup") or [None])[0]
    before = (owners.get("before") or [None])[0]
    # The GIL explains a late KeyboardInterrupt when it was held for most of the wait for it: a watchdog
    # wake-up missed by tens of ms on a loaded machine, in a call that waited 2 s without it, does not.
    gil = c.get("gil_held_ms")
    if gil and c.get("ki_latency_ms") is not None and gil < GIL_EXPLAINS_SHARE * c["ki_latency_ms"]:
        gil = None
    at = c.get("at_interrupt")
    if v == "handled":
        lat = cell.get("latency_us", {}).get("median")
        where = c.get("raised_at") or {}
        return (f"interruptible: KeyboardInterrupt {lat / 1000:.1f} ms after the interrupt"
                + (f", raised at {basename(where['file'])}:{where['line']}" if where else "") + ".")
    if v == "flaky":
        return f"not reliably: {cell.get('counts')}; run it with a larger --repeat to know the proportion."
    if v == "deferred":
        if set_up not in (None, "python", "default", "ignored") and before == "python" and kernel:
            return (f"only when the call returns: the SIGINT handler your setup installed ({set_up}) was replaced "
                    f"by Python's before the code ran (ipykernel re-installs it around every cell). Fix: {FIX_HANDLER}.")
        if gil and (host == "jupyter-message" or (kernel and windows)):
            return (f"only when the call returns: {GIL_THREAD['message' if host == 'jupyter-message' else 'windows']}"
                    f", and it needs the GIL, which the main thread held for {gil:.0f} ms"
                    f"{' at ' + at if at else ''}. Fix: {FIX_GIL}.")
        if kernel and windows and not gil:
            return (f"only when the call returns: {GIL_THREAD['windows']}, which sets Python's flag for the main "
                    f"thread to see between bytecodes; it does not end a wait the main thread is in"
                    f"{' (at ' + at + ')' if at else ''}, as Ctrl+C in a console does. Fix: {FIX_WAIT}.")
        if gil:
            return (f"only when the call returns: the main thread held the GIL for {gil:.0f} ms without checking "
                    f"for signals{' at ' + at if at else ''}. Fix: {FIX_CHECK}.")
        return (f"only when the call returns: the native call{' at ' + at if at else ''} does not check for "
                f"signals. Fix: {FIX_CHECK}.")
    if v == "lost":
        during = (owners.get("during") or [None, None])
        if during[0] == "ignored" or during[1] == "SIG_IGN":
            return f"never: SIGINT was ignored while the code ran. Fix: {FIX_DFL}."
        if host == "jupyter-message" and windows:
            said = c.get("kernel_said")
            return ("never: ipykernel on Windows does nothing for an interrupt_request (message mode)"
                    + (f"; this kernel logged \"{said}\"" if said else "") + f". Fix: {FIX_WINDOWS_MESSAGE}.")
        if host == "jupyter-message" and gil:
            return (f"never: in message mode the kernel's control thread needs the GIL to raise the interrupt, and "
                    f"the main thread held it for {gil:.0f} ms{' at ' + at if at else ''}; the request was dropped "
                    f"when the code ended. Fix: {FIX_GIL}.")
        return f"never: nothing noticed the interrupt and the code ran to its end. Fix: {FIX_CHECK}."
    if v == "hung":
        return f"the code did not stop after the interrupt ({first.get('reason', '')}). Fix: {FIX_SWALLOW}."
    if v == "killed":
        return f"the interrupt killed the process (SIGINT's default action): nothing handled it. Fix: {FIX_DFL}."
    if v == "unsupported":
        return f"not measured here: {first.get('reason')}"
    return f"could not be measured: {first.get('reason') or (cell.get('reasons') or ['?'])[0]}"
