"""Run by the Windows Python under Wine (tests/py/test_windows_python.py): a
real Windows Jupyter kernel started by jupyter_client (so it holds an
inherited JPY_INTERRUPT_EVENT and JPY_PARENT_PID), then, inside it,
`%load_ext sigprobe`, `%sigprobe doctor` and `%sigprobe selftest`, and from
outside `sigprobe doctor --pid KERNEL`; then a second kernel, in message mode
(started beside the first), interrupted by jupyter_client while a cell runs. Prints one JSON document.

    python kernel_selftest.py REPO PYEXT_DIR
"""
import json
import os
import subprocess
import sys
import tempfile
import time

from jupyter_client.manager import KernelManager

REPO, PYEXT = sys.argv[1], sys.argv[2]
HANDLERS = ("import signal as __s, json as __j, threading as __t\n"
            "__m = __import__('sigprobe.ipython.magic', fromlist=['magic']).pyext_module()\n"
            "print(__j.dumps({'py': repr(__s.getsignal(__s.SIGINT)), 'os': __m.sigint_state(),"
            " 'threads': sorted(t.name for t in __t.enumerate() if not t.name.startswith('sigprobe-idle'))}))\n"
            "del __s, __j, __m, __t")


# %%sigprobe check on code whose answer is known by construction: a pure-Python
# loop (the poller's interrupt_main() gets the GIL at a switch: handled); a
# native call that holds the GIL (ctypes.PyDLL: deferred, the GIL held about
# its 2 s); the line form on a sleep (deferred: the flag does not end the wait).
CHECKS = {
    "busy": "%%sigprobe check --json --after 300\nimport time\nt0 = time.perf_counter()\n"
            "while time.perf_counter() - t0 < 3:\n    pass\n",
    "pydll": "%%sigprobe check --json --after 300\nimport ctypes\nctypes.PyDLL('kernel32').Sleep(2000)\n",
    "sleep": "%sigprobe check --json --after 300 __import__('time').sleep(2)",
}


# execute(kc, code): beside this script, read by its path: the embeddable
# Windows CPython leaves a script's folder off sys.path (python311._pth).
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernel_cells.py"), encoding="utf-8") as f:
    exec(compile(f.read(), f.name, "exec"))


def parse(text):
    """A magic's --json output, or the text itself when it is not JSON."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def launch(tmp, mode):
    """A kernel in this interrupt mode, started (ready once kc.wait_for_ready() returns).
    Both modes' kernels start side by side (a kernel's start under Wine is
    mostly waiting on the wineserver: two take hardly longer than one)."""
    spec_dir = os.path.join(tmp, "kernels", f"sigprobe-{mode}")
    os.makedirs(spec_dir, exist_ok=True)  # again when a kernel is started once more (kernel_cells.ready)
    with open(os.path.join(spec_dir, "kernel.json"), "w") as f:
        json.dump({"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                   "display_name": f"sigprobe {mode}", "language": "python", "interrupt_mode": mode}, f)
    km = KernelManager(kernel_name=f"sigprobe-{mode}")
    km.start_kernel(env={**os.environ, "SIGPROBE_PYEXT_DIR": PYEXT})
    kc = km.client()
    kc.start_channels()
    return km, kc


def stop(km, kc):
    kc.stop_channels()
    km.shutdown_kernel(now=True)


def signal_mode(km, kc, out):
    pid = km.provisioner.process.pid
    out["kernel_pid"] = pid
    status, text, _ = execute(kc, "%load_ext sigprobe")
    assert status == "ok", text
    execute(kc, "pass")  # a cell ends: the extension measures the kernel as it goes idle
    r = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "sigprobe"), "doctor", "--pid", str(pid),
                        "--json"], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    out["doctor_pid"] = {"rc": r.returncode, "stderr": r.stderr[-2000:], "doc": json.loads(r.stdout or "null")}
    status, text, _ = execute(kc, "%sigprobe doctor --json")
    out["magic_doctor"] = {"status": status, "doc": parse(text)}
    status, text, _ = execute(kc, "%sigprobe doctor")
    out["magic_doctor_text"] = text
    before = execute(kc, HANDLERS)[1]
    status, text, ename = execute(kc, "%sigprobe selftest --json --repeat 2")
    out["selftest"] = {"status": status, "ename": ename,
                       "result": parse(text)}
    after = execute(kc, HANDLERS)[1]
    out["handlers"] = {"before": parse(before), "after": parse(after)}
    status, text, ename = execute(kc, "%sigprobe selftest --repeat 1 --loop-ms 600")
    out["selftest_text"] = {"status": status, "text": text}
    # %%sigprobe check: this kernel interrupts itself by SetEvent on its JPY_INTERRUPT_EVENT.
    out["check"] = {}
    for name, code in CHECKS.items():
        status, text, ename = execute(kc, code)
        out["check"][name] = {"status": status, "ename": ename, "doc": parse(text)}
    out["check_next_cell"] = execute(kc, "print('next')")
    out["check_handlers"] = parse(execute(kc, HANDLERS)[1])
    out["check_message_mode"] = execute(kc, "%sigprobe check --mode message pass")


def message_mode(km, kc, out):
    """What an interrupt in message mode does to a running cell on Windows."""
    r = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "sigprobe"), "doctor", "--pid",
                        str(km.provisioner.process.pid), "--json"], capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    out["message_doctor_pid"] = {"rc": r.returncode, "doc": json.loads(r.stdout or "null")}
    msg_id = kc.execute("import time\nt0 = time.perf_counter()\ntry:\n    while time.perf_counter() - t0 < 3:\n"
                        "        pass\n    print('completed')\nexcept KeyboardInterrupt:\n    print('interrupted')")
    time.sleep(1.0)
    t = time.monotonic()
    km.interrupt_kernel()
    texts = []
    while True:
        msg = kc.get_iopub_msg(timeout=30)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            texts.append(msg["content"]["text"].strip())
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    out["message_interrupt"] = {"printed": texts, "cell_ended_after_s": round(time.monotonic() - t, 2)}


def main():
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["JUPYTER_PATH"] = tmp
        os.environ["JUPYTER_RUNTIME_DIR"] = os.path.join(tmp, "runtime")
        os.environ["IPYTHONDIR"] = os.path.join(tmp, "ipython")
        kernels = []
        try:
            for mode in ("signal", "message"):
                kernels.append(launch(tmp, mode))
            kernels[0] = ready(lambda: launch(tmp, "signal"), kernels[0])
            signal_mode(*kernels[0], out)
            kernels[1] = ready(lambda: launch(tmp, "message"), kernels[1])
            message_mode(*kernels[1], out)
        finally:
            for km, kc in kernels:
                try:
                    stop(km, kc)
                except Exception:  # one that kernel_cells.ready stopped already
                    pass
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
