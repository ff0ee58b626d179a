"""`sigprobe check` in real kernels: runs the user's code in a fresh kernel of
the interpreter being checked, interrupts it the way a frontend does
(KernelManager.interrupt_kernel: SIGINT to the kernel's process group in
signal mode, an interrupt_request on the control channel in message mode)
and reports the facts subject.py gathered in the kernel.

Standard library plus jupyter_client, run as a script by the interpreter
checked (it imports kernel_driver and reads subject.py, both beside it).
subject.py reports on a Unix socket in the run's directory, or on Windows
(whose Python under Wine has no AF_UNIX) on loopback TCP with a token
(remote/channel.py).
Input: one JSON plan on stdin: {"runs": [{"mode": "signal"|"message",
"subject": {...}}, ...], "after_ms", "timeout_s", "start_timeout_s",
"tmp"}; stdin then stays open as a lifeline. Output: JSON lines on stdout:
{"ev":"versions",...}, then one {"ev":"run",...} per run, then
{"ev":"kernels",...}.
"""
import json
import os
import signal
import sys
import tempfile
import threading
import time

try:  # beside this script, which runs by its path
    import channel
    import kernel_driver as kd
except ImportError:
    # The embeddable Windows CPython (under Wine) leaves the script's folder off sys.path
    # (python311._pth); sigprobe itself is importable there (winpython._link_checkout).
    from sigprobe.remote import channel
    from sigprobe.remote import kernel_driver as kd

HERE = os.path.dirname(os.path.abspath(__file__))


def harness_cell(subject, address):
    """Defines subject.py's functions in the kernel (in one dict, out of the
    user's way), connects to the driver, and runs the subject's setup in the
    user's namespace."""
    with open(os.path.join(HERE, "subject.py"), encoding="utf-8") as f:
        source = f.read()
    return ("__sp_check = {'__name__': 'sigprobe_check', '__file__': '<sigprobe-check>'}\n"
            f"exec(compile({source!r}, '<sigprobe-check>', 'exec'), __sp_check)\n"
            f"__sp_check['emit'] = __sp_check['socket_emitter']({address!r})\n"
            f"__sp_check['setup'](__import__('json').loads({json.dumps(subject)!r}), globals(), "
            "__sp_check['emit'])\n")


def measure_cell(subject):
    """One top-level statement: an interrupt cannot land between two."""
    return (f"__sp_check['measure'](__import__('json').loads({json.dumps(subject)!r}), "
            "__sp_check['emit'], globals(), __sp_check['KERNEL_LATE_NS'])\n")


def exit_status(kernel):
    proc = kernel._process()
    rc = getattr(proc, "returncode", None) if proc is not None else None
    if rc is None:
        return ""
    return f" (killed by {signal.Signals(-rc).name})" if rc < 0 else f" (exit status {rc})"


def one_run(plan, pool, n, tmp):
    run = plan["runs"][n]
    mode = run["mode"]
    res = {"ev": "run", "mode": mode}
    try:
        # Always fresh: the subject's setup may leave state behind.
        kernel = pool.get(mode, True, spare=any(r["mode"] == mode for r in plan["runs"][n + 1:]))
    except Exception as e:
        res["error"] = f"the kernel did not start: {e}"
        return res
    chan = channel.Channel(None if os.name == "nt" else os.path.join(tmp, f"c{n}.sock"))
    try:
        res["kernel_pid"] = kernel.pid or 0
        setup = kd.Execution(kernel.kc, harness_cell(run["subject"], chan.address), plan["timeout_s"])
        setup.start()
        while setup.is_alive():
            chan.pump(0.01)
        chan.pump(0.05)
        if setup.failure():
            failed = chan.find("end")
            if failed:  # the subject's setup raised: a fact about the subject
                res["facts"] = failed
            else:
                res["error"] = f"the kernel could not run sigprobe's harness: {setup.failure()}"
            return res
        res["setup"] = chan.find("setup")
        ex = kd.Execution(kernel.kc, measure_cell(run["subject"]), plan["timeout_s"] + 5)
        log_offset = kernel.log_size()
        ex.start()
        start = None
        limit = time.monotonic() + plan["start_timeout_s"]
        while start is None and chan.find("end") is None and time.monotonic() < limit:
            alive = ex.is_alive()
            chan.pump(0.005)
            start = chan.find("start")
            if not alive:
                break  # the cell ended without starting the code
        if start is None and chan.find("end") is None and ex.is_alive():
            res["hung"] = True
            res["reason"] = f"the kernel did not start the code within {plan['start_timeout_s']:.0f} s"
        elif start is None and chan.find("end") is None:
            res["error"] = f"the cell ended without running the code: {ex.error or ex.reply['content'].get('evalue')}"
            return res
        if start is not None:
            due = start["t_ns"] + plan["after_ms"] * 1_000_000
            while chan.find("end") is None and kd.now_ns() < due:
                chan.pump(min(0.005, max(0.0, (due - kd.now_ns()) / 1e9)))
            if chan.find("end") is None:
                res["t_deliv"] = kernel.interrupt()
            end = start["t_ns"] / 1e9 + plan["timeout_s"]
            while chan.find("end") is None and kd.now_ns() / 1e9 < end:
                chan.pump(0.01)
                if not kernel.km.is_alive():
                    chan.pump(0.05)
                    if chan.find("end") is None:
                        res["error"] = f"the kernel died while running the code{exit_status(kernel)}"
                        res["kernel_log"] = kernel.log_tail()
                        return res
            ex.wait(max(0.5, end - kd.now_ns() / 1e9) if chan.find("end") is None else 5,
                    lambda: kernel.reply_lost(log_offset))
        res["facts"] = chan.find("end")
        if mode == "message" and os.name == "nt" and "t_deliv" in res:
            # ipykernel's answer to an interrupt_request on Windows, in its log (kernelbase.py,
            # _send_interrupt_children: "Interrupt message not supported on Windows").
            said = [line.strip() for line in kernel.log_since(log_offset).splitlines() if "Interrupt message" in line]
            if said:
                res["kernel_said"] = said[-1][:200]
        if res["facts"] is None or ex.is_alive() or ex.error is not None:
            if res["facts"] is None:
                res["hung"] = True
            if ex.reply_lost(kernel, log_offset):
                res["reason"] = ("the kernel went idle without replying: its log says \"KeyboardInterrupt caught in "
                                 "kernel\" (the interrupt landed in ipykernel's own code, after the cell's)")
            elif "reason" not in res:
                res["reason"] = (f"still running {plan['timeout_s'] - plan['after_ms'] / 1000:.1f} s after the "
                                 "interrupt" if res["facts"] is None else "the kernel did not reply to the cell")
            res["kernel_log"] = kernel.log_tail()
        else:
            content = ex.reply["content"]
            res["status"] = content.get("status")
            if content.get("ename"):
                res["ename"] = content["ename"]
        return res
    finally:
        if chan.refused:
            res["refused_connections"] = chan.refused
        pool.discard(kernel)
        chan.close()


def main():
    try:  # imported while the parent decides whether to run at all (slow under Wine)
        import jupyter_client.manager  # noqa: F401
    except ImportError:
        pass
    line = sys.stdin.readline()
    if not line.strip():
        return 0  # the parent closed stdin before sending a plan: nothing to run
    plan = json.loads(line)
    tmp = plan.get("tmp") or tempfile.mkdtemp(prefix="sigprobe-check-")
    kd.isolate(tmp)
    try:
        import ipykernel  # noqa: F401  (the kernels are this interpreter's)
        from jupyter_client.kernelspec import KernelSpecManager
    except ImportError as e:
        kd.emit({"ev": "versions", **kd.versions(), "missing": str(e)})
        return 0
    kd.emit({"ev": "versions", **kd.versions()})
    ksm = KernelSpecManager(kernel_dirs=[os.path.join(tmp, "kernels")])
    pool = kd.Pool(ksm, plan["start_timeout_s"], tmp)
    threading.Thread(target=kd.lifeline, args=(pool, [tmp]), daemon=True).start()

    # The parent removes tmp (it made it); the driver's own clean-up leaves it be.
    return kd.serve(plan, pool, lambda n: one_run(plan, pool, n, tmp), [])

if __name__ == "__main__":
    sys.exit(main())
