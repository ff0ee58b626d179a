"""What the Windows kernel scripts beside this file share (kernel_selftest.py,
wheel_kernel.py): one cell run to its end in a kernel, its stdout and the
magics' reports. They run it by its path: the embeddable Windows CPython
leaves a script's folder off sys.path (python311._pth)."""
import time


def execute(kc, code, timeout=240):
    """(status, stdout text, ename) of one cell."""
    msg_id = kc.execute(code)
    out = []
    deadline = time.monotonic() + timeout
    while True:
        msg = kc.get_iopub_msg(timeout=max(deadline - time.monotonic(), 1))
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] in ("execute_result", "display_data"):  # the magic's report
            out.append(msg["content"]["data"].get("text/plain", ""))
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    while True:
        reply = kc.get_shell_msg(timeout=30)
        if reply["parent_header"].get("msg_id") == msg_id:
            c = reply["content"]
            if c["status"] == "error":  # its message (a UsageError's one line goes to stderr, not iopub's error)
                out.append(c.get("evalue", ""))
            return c["status"], "".join(out), c.get("ename")


def ready(start, kernel=None, timeout=120):
    """(km, kc) of a kernel that answers: kernel, or start()'s. A kernel that
    died as it started is stopped and start() is called once more:
    jupyter_client picks a kernel's ports free and the kernel binds them
    later, and a kernel starting at the same moment elsewhere (the suite's
    groups run side by side, Linux's kernels and Wine's on one loopback) can
    take one in between (`ZMQError: Address in use`, the kernel exits)."""
    for attempt in (1, 2):
        km, kc = kernel if kernel is not None and attempt == 1 else start()
        try:
            kc.wait_for_ready(timeout=timeout)
            return km, kc
        except RuntimeError:
            alive = km.is_alive()
            kc.stop_channels()
            km.shutdown_kernel(now=True)
            if alive or attempt == 2:
                raise
