"""`sigprobe check --platform windows-wine`: the user's code in the Windows
CPython under Wine (runners/winpython.py). The kernels are that Python's, started by
its own jupyter_client (remote/check_driver.py run by it), so that
KernelManager.interrupt_kernel() is what it is on Windows: SetEvent on the
kernel's JPY_INTERRUPT_EVENT in signal mode, an interrupt_request (which
ipykernel on Windows only logs) in message mode. The uninterrupted run is
that Python too, as a plain process: the code's own time under Wine is what
the verdicts compare against. Reports come over loopback TCP with a token
(remote/channel.py): Wine's Python has no AF_UNIX.

Every function here runs inside wine.wineserver(build) (the caller owns the
server: the command, or the test session's)."""
from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

from .. import scratch
from ..remote.channel import Channel
from ..runners import winpython
from ..runners.winelaunch import command
from .kernels import REMOTE, Wine
from .local import _Drain, how_it_ended, let_end, reap

# The hosts of a Windows kernel; python-tty and python-no-tty are POSIX ones
# (a pseudo-terminal's ^C, kill).
HOSTS = ("jupyter", "jupyter-message")
START_S = 60  # the Windows CPython's start and the code's setup under Wine (not timed)


def wine_for(build: Path, env: dict, cwd: str | None = None) -> Wine:
    version = subprocess.run(command("--version"), env=env, capture_output=True, text=True,
                             stdin=subprocess.DEVNULL).stdout.strip()
    return Wine(command(str(winpython.home(build) / "python.exe")), winpython.wine_path,
                {**env, "PYTHONUTF8": "1"}, version=version, cwd=cwd)


def python_exe(build: Path) -> str:
    """The Windows CPython's path as that Python names itself (sys.executable)."""
    return winpython.wine_path(winpython.home(build) / "python.exe")


def run_uninterrupted(wine: Wine, subject: dict, timeout_s: float, stop: threading.Event | None = None,
                      on_event=None) -> dict:
    """The calibration run under Wine: remote/subject.py run by the Windows
    CPython, not interrupted. Returns what local.run_local returns (facts,
    setup, exit, hung, output, error); on_event as there."""
    tmp = scratch.make_dir("sigprobe-check-")
    spec = tmp / "subject.json"
    spec.write_text(json.dumps(subject), encoding="utf-8")
    chan = Channel()
    seen: dict = {"host": None}
    proc = subprocess.Popen([*wine.launch, wine.path(REMOTE / "subject.py"), "@" + wine.path(spec)],
                            env={**wine.env, "SIGPROBE_CHECK_ADDR": chan.address}, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, cwd=wine.cwd)
    drain = _Drain(proc.stdout.fileno())
    drain.start()
    deadline = time.monotonic() + START_S
    told = 0
    try:
        while True:
            if stop is not None and stop.is_set():
                seen["error"] = "not run: sigprobe was interrupted"
                break
            if time.monotonic() >= deadline:
                seen["hung"] = True
                seen["reason"] = (f"still running after {timeout_s:.1f} s" if chan.find("start")
                                  else f"the code did not start within {START_S} s")
                break
            events = chan.pump(0.05)
            for ev in events[told:]:
                if on_event is not None:
                    on_event(ev)
                if ev.get("ev") == "start":
                    deadline = time.monotonic() + timeout_s
            told = len(events)
            if chan.find("end") is not None or chan.eof:
                break
            if proc.poll() is not None and chan.conn is None:
                break  # ended without connecting (it could not start)
        seen["facts"] = chan.find("end")
        seen["setup"] = chan.find("setup")
        let_end(proc, seen)
    finally:
        reap(proc, on_event)
        chan.close()
        drain.join(1)
        proc.stdout.close()
        shutil.rmtree(tmp, ignore_errors=True)
    how_it_ended(seen, proc, drain)
    rc = proc.returncode
    if seen["facts"] is None and not seen.get("hung") and "error" not in seen and chan.find("end") is None:
        if not chan.events:
            last = seen["output"].strip().splitlines()[-1:] or [f"exit status {rc}"]
            seen["error"] = f"the Windows CPython under Wine did not run the code: {last[0][:300]}"
    return seen
