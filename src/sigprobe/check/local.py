"""`sigprobe check` in a plain interpreter: python-no-tty (its own session,
no terminal; SIGINT by kill) and python-tty (a new pseudo-terminal whose
foreground process group it is; ^C typed on it), plus the uninterrupted
calibration run. The interpreter runs remote/subject.py, which reports on
an inherited pipe; sigprobe interrupts --after ms after the code started."""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import threading
import time
from pathlib import Path

REMOTE = Path(__file__).resolve().parents[1] / "remote"
# The child of a pseudo-terminal: its own session with the terminal as its
# controlling one (so ^C on it is SIGINT to its foreground group), then the
# interpreter checked.
TTY_SHIM = ("import os, sys, fcntl, termios\n"
            "os.setsid()\n"
            "fcntl.ioctl(0, termios.TIOCSCTTY, 0)\n"
            "os.execv(sys.argv[1], sys.argv[1:])\n")
OUTPUT_KEEP = 4000
END_GRACE_S = 2.0  # after the code's end, for the interpreter to exit


class _Drain(threading.Thread):
    """Reads what the code prints (a full pipe or terminal would stop it)
    and keeps the end of it, from a descriptor of its own, closed at its
    end: the caller may close its own while this still reads (a process
    that left a child holding the pipe), and that number may then be
    another pipe's."""

    def __init__(self, fd: int):
        super().__init__(daemon=True)
        self.fd, self.tail = os.dup(fd), b""

    def run(self):
        try:
            while True:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:  # EIO: the terminal's last process is gone
                    return
                if not chunk:
                    return
                self.tail = (self.tail + chunk)[-OUTPUT_KEEP:]
        finally:
            os.close(self.fd)


def run_local(python: str, subject: dict, host: str | None, after_ms: int, timeout_s: float,
              stop: threading.Event | None = None, on_event=None) -> dict:
    """One run: host "python-no-tty" or "python-tty", or None for the
    calibration (no interrupt; no terminal). Returns what was seen: facts
    (subject.py's end event), setup, t_deliv, exit, hung, output.
    on_event(ev) is called with each of subject.py's events as it comes,
    and with None once the run is over."""
    r, w = os.pipe()
    env = dict(os.environ, SIGPROBE_CHECK_FD=str(w), PYTHONUNBUFFERED="1")
    env.pop("PYTHONSTARTUP", None)
    cmd = [python, str(REMOTE / "subject.py"), json.dumps(subject)]
    master = None
    try:
        if host == "python-tty":
            import pty
            master, slave = pty.openpty()
            proc = subprocess.Popen([python, "-c", TTY_SHIM, *cmd], stdin=slave, stdout=slave, stderr=slave,
                                    pass_fds=(w,), env=env, close_fds=True)
            os.close(slave)
            drain = _Drain(master)
        else:
            out_r, out_w = os.pipe()
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out_w, stderr=out_w, pass_fds=(w,),
                                    env=env, start_new_session=True, close_fds=True)
            os.close(out_w)
            drain = _Drain(out_r)
            os.close(out_r)  # the drain reads its own
        drain.start()
    finally:
        os.close(w)
    seen: dict = {"host": host}
    events: dict = {}
    buf = b""
    deadline = time.monotonic() + timeout_s + 10  # the code's start may take a while (imports)
    due = None
    try:
        while True:
            if stop is not None and stop.is_set():
                seen["error"] = "not run: sigprobe was interrupted"
                break
            now = time.monotonic()
            if now >= deadline:
                seen["hung"] = True
                seen["reason"] = (f"still running {timeout_s - after_ms / 1000:.1f} s after the interrupt"
                                  if "t_deliv" in seen else f"still running after {timeout_s:.1f} s")
                break
            wait = deadline - now
            if due is not None and "t_deliv" not in seen:
                wait = max(0.0, min(wait, (due - time.monotonic_ns()) / 1e9))
            ready, _, _ = select.select([r], [], [], min(wait, 0.05))
            if due is not None and "t_deliv" not in seen and time.monotonic_ns() >= due and "end" not in events:
                seen["t_deliv"] = time.monotonic_ns()
                if host == "python-tty":
                    os.write(master, b"\x03")
                else:
                    os.kill(proc.pid, signal.SIGINT)
            if not ready:
                continue
            chunk = os.read(r, 65536)
            if not chunk:
                break  # the interpreter closed the pipe: it is ending
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                try:
                    ev = json.loads(line)
                    ev["ev"]
                except (ValueError, TypeError, KeyError):
                    seen["error"] = f"a malformed report from the interpreter: {line[:120]!r}"
                    break
                events[ev["ev"]] = ev
                if on_event is not None:
                    on_event(ev)
                if ev["ev"] == "start":
                    deadline = time.monotonic() + timeout_s
                    if host is not None:
                        due = ev["t_ns"] + after_ms * 1_000_000
            if "end" in events or "error" in seen:
                break
        seen["facts"] = events.get("end")
        seen["setup"] = events.get("setup")
        let_end(proc, seen)
    finally:
        reap(proc, on_event)
        os.close(r)
        drain.join(1)
        if master is not None:
            os.close(master)
    how_it_ended(seen, proc, drain)
    return seen


def let_end(proc: subprocess.Popen, seen: dict) -> None:
    """The code's process ends on its own within END_GRACE_S of its last event
    (not waited for after a hang or an error)."""
    try:
        proc.wait(END_GRACE_S if not seen.get("hung") and not seen.get("error") else 0.01)
    except subprocess.TimeoutExpired:
        pass


def reap(proc: subprocess.Popen, on_event=None) -> None:
    """The run is over: on_event(None), and the process's session (the code's
    children too; under Wine, the Wine processes it started) killed if it
    still runs, then waited for."""
    if on_event is not None:
        on_event(None)
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            proc.kill()
        proc.wait()


def how_it_ended(seen: dict, proc: subprocess.Popen, drain: "_Drain") -> None:
    """seen's exit (its code or signal) and the tail of what it printed."""
    rc = proc.returncode
    seen["exit"] = {"signal": signal.Signals(-rc).name} if rc < 0 else {"code": rc}
    seen["output"] = drain.tail.decode(errors="replace")
