"""Checks several test files share, and a real Jupyter kernel to run cells in."""
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

DEADLINE_S = 30 * float(os.environ.get("SIGPROBE_TIMEOUT_MULTIPLIER", "1"))


class AtOnce:
    """Counts what is inside `with at_once:` now and the most ever at once,
    from any thread."""

    def __init__(self):
        self.lock, self.now, self.most = threading.Lock(), 0, 0

    def __enter__(self):
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def __exit__(self, *exc):
        with self.lock:
            self.now -= 1


def one_error_line(r) -> str:
    """Bad input's contract: exit 2 and one line on stderr, never a traceback."""
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


def answering_kernel(start, timeout_s):
    """start(attempt) -> kernel_driver.Kernel (started, its client's channels
    too, its output in its log); once it answers, waited for as sigprobe's
    driver waits (kernel_driver.wait_ready). A kernel that failed as it
    started (a port taken by another kernel starting at the same moment) is
    ended and started again, once."""
    from sigprobe.remote import kernel_driver as kd
    for attempt in (1, 2):
        k = start(attempt)
        try:
            kd.wait_ready(k, timeout_s)
            return k
        except RuntimeError:
            k.shutdown()
            if attempt == 2:
                raise


class Kernel:
    """A real ipykernel started by jupyter_client in temporary Jupyter dirs."""

    def __init__(self, tmp, interrupt_mode=None):
        from jupyter_client import KernelManager
        from jupyter_client.kernelspec import KernelSpecManager

        from sigprobe.remote import kernel_driver as kd
        self.tmp = tmp
        env = {var: str(tmp / sub) for var, sub in (("JUPYTER_RUNTIME_DIR", "runtime"), ("JUPYTER_DATA_DIR", "data"),
                                                    ("JUPYTER_CONFIG_DIR", "config"), ("IPYTHONDIR", "ipython"))}
        env["JUPYTER_PATH"] = str(tmp / "data")
        for d in env.values():
            os.makedirs(d, exist_ok=True)
        spec_dir = tmp / "data" / "kernels" / "sp-doctor"
        spec_dir.mkdir(parents=True)
        spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "sigprobe doctor", "language": "python", "env": env}
        if interrupt_mode:
            spec["interrupt_mode"] = interrupt_mode
        (spec_dir / "kernel.json").write_text(json.dumps(spec))
        self.spec_file = spec_dir / "kernel.json"

        def start(attempt):
            saved = {k: os.environ.get(k) for k in env}
            os.environ.update(env)  # the connection file goes to the temporary runtime dir
            try:
                km = KernelManager(kernel_name="sp-doctor",
                                   kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec_dir.parent)]))
                log = tmp / f"kernel-{attempt}.log"
                with open(log, "wb") as f:
                    km.start_kernel(stdout=f, stderr=f)
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
            kc = km.client()
            kc.start_channels()
            return kd.Kernel(km, kc, None, str(log))

        k = answering_kernel(start, DEADLINE_S)
        self.km, self.kc = k.km, k.kc
        self.pid = self.km.provisioner.process.pid

    def execute(self, code, timeout=120):
        out = []
        self.html = []

        def hook(m):
            # The magic prints JSON and returns its report: text/plain beside text/html.
            if m["msg_type"] == "stream":
                out.append(m["content"].get("text", ""))
            elif m["msg_type"] in ("execute_result", "display_data"):
                out.append(m["content"]["data"].get("text/plain", ""))
                self.html.append(m["content"]["data"].get("text/html"))

        reply = self.kc.execute_interactive(code, timeout=timeout, store_history=False, allow_stdin=False,
                                            output_hook=hook)
        return reply["content"], "".join(out)

    def shutdown(self):
        try:
            self.kc.stop_channels()
            self.km.shutdown_kernel(now=True)
        except Exception:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)  # its own group (start_new_session): only what it started
            raise
        assert not Path(f"/proc/{self.pid}").exists() or "Z" in Path(f"/proc/{self.pid}/stat").read_text().split()[2]
