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

# The hosts of a Windows check: the console's Ctrl+C and the two of a Windows
# kernel; python-tty and python-no-tty are POSIX ones (a pseudo-terminal's ^C, kill).
HOSTS = ("console", "jupyter", "jupyter-message")
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
    return run_in_windows(wine, subject, None, timeout_s, stop, on_event)


def run_console(wine: Wine, subject: dict, after_ms: int, timeout_s: float,
                stop: threading.Event | None = None) -> dict:
    """One run of the console host: the code on a console of its own
    (remote/console_host.py), Ctrl+C on that console after_ms into the code,
    sent and stamped on the Windows side, on subject.py's clock."""
    return run_in_windows(wine, subject, after_ms, timeout_s, stop)


class _Lines(threading.Thread):
    """The console host's report lines (its stdout), as they come."""

    def __init__(self, stream):
        super().__init__(daemon=True)
        self.stream, self.lines = stream, []

    def run(self):
        for raw in self.stream:
            self.lines.append(raw.decode(errors="replace").strip())


def run_in_windows(wine: Wine, subject: dict, after_ms: int | None, timeout_s: float,
                   stop: threading.Event | None = None, on_event=None) -> dict:
    """remote/subject.py in the Windows CPython as a plain process (after_ms
    None: the uninterrupted run), or on a console of its own through
    remote/console_host.py, told when to send Ctrl+C once the code has
    started. Returns what local.run_local returns."""
    tmp = scratch.make_dir("sigprobe-check-")
    spec = tmp / "subject.json"
    spec.write_text(json.dumps(subject), encoding="utf-8")
    chan = Channel()
    seen: dict = {"host": None if after_ms is None else "console"}
    console = after_ms is not None
    script = [wine.path(REMOTE / "console_host.py")] if console else []
    proc = subprocess.Popen([*wine.launch, *script, wine.path(REMOTE / "subject.py"), "@" + wine.path(spec)],
                            env={**wine.env, "SIGPROBE_CHECK_ADDR": chan.address},
                            stdin=subprocess.PIPE if console else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE if console else subprocess.STDOUT,
                            start_new_session=True, cwd=wine.cwd)
    drain = _Drain((proc.stderr if console else proc.stdout).fileno())
    drain.start()
    said = None
    if console:
        said = _Lines(proc.stdout)
        said.start()
    deadline = time.monotonic() + START_S
    told = 0
    try:
        while True:
            if stop is not None and stop.is_set():
                seen["error"] = "not run: sigprobe was interrupted"
                break
            if time.monotonic() >= deadline:
                seen["hung"] = True
                seen["reason"] = ((f"still running {timeout_s - after_ms / 1000:.1f} s after the interrupt"
                                   if "t_deliv" in seen else f"still running after {timeout_s:.1f} s")
                                  if chan.find("start") else f"the code did not start within {START_S} s")
                break
            events = chan.pump(0.05)
            for ev in events[told:]:
                if on_event is not None:
                    on_event(ev)
                if ev.get("ev") == "start":
                    deadline = time.monotonic() + timeout_s
                    if console:
                        _tell(proc, f"at {ev['t_ns'] + after_ms * 1_000_000}")
            told = len(events)
            if said is not None:
                _heard(said.lines, seen)
            if chan.find("end") is not None or chan.eof or "error" in seen:
                break
            if proc.poll() is not None and chan.conn is None:
                break  # ended without connecting (it could not start)
        seen["facts"] = chan.find("end")
        seen["setup"] = chan.find("setup")
        let_end(proc, seen)
    finally:
        if console:
            try:
                proc.stdin.close()  # the console host's lifeline: the code ends with it
            except OSError:
                pass
        reap(proc, on_event)
        chan.close()
        drain.join(1)
        if said is not None:
            said.join(1)
            _heard(said.lines, seen)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        shutil.rmtree(tmp, ignore_errors=True)
    how_it_ended(seen, proc, drain)
    rc = proc.returncode
    if seen["facts"] is None and not seen.get("hung") and "error" not in seen and chan.find("end") is None:
        if not chan.events:
            last = seen["output"].strip().splitlines()[-1:] or [f"exit status {rc}"]
            seen["error"] = f"the Windows CPython under Wine did not run the code: {last[0][:300]}"
    return seen


def _tell(proc: subprocess.Popen, line: str) -> None:
    try:
        proc.stdin.write((line + "\n").encode())
        proc.stdin.flush()
    except OSError:  # the host is gone: its exit says why
        pass


def _heard(lines: list, seen: dict) -> None:
    """What the console host said: when it sent Ctrl+C, or why it could not."""
    for line in lines:
        word, _, rest = line.partition(" ")
        if word == "ok" and "t_deliv" not in seen:
            if not rest.isdigit():
                seen.setdefault("error", f"a malformed line from the console host: {line[:120]!r}")
                continue
            seen["t_deliv"] = int(rest)
        elif word == "error" and "error" not in seen:
            seen["error"] = f"the console's Ctrl+C could not be sent: {rest}"
