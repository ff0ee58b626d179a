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
