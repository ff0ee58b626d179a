"""This kernel, seen from inside, for both magics (magic.py: doctor and
selftest; check_magic.py: check): the extension probe built for this
interpreter, the SIGINT state a magic must leave as it found it, the helper
processes that interrupt this kernel from outside the way its manager would
(remote/sender.py, remote/sender_win.py), and the report object a magic
returns (text in a terminal, a table in a notebook)."""
from __future__ import annotations

import html
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from .. import doctor, paths
from ..doctor.common import _fmt_members
from ..remote.pyext_loader import load_pyext

REMOTE = Path(__file__).resolve().parents[1] / "remote"


def pyext_dir() -> Path:
    """$SIGPROBE_PYEXT_DIR, else the package's own extension probe."""
    return Path(os.environ.get("SIGPROBE_PYEXT_DIR") or paths.native_dir() / "pyext")


def pyext_module():
    """sigprobe_pyext for this interpreter, or None."""
    try:
        return load_pyext(str(pyext_dir()))
    except ImportError:
        return None


def how_to_build() -> str:
    return (f"the extension probe sigprobe_pyext is not built for this interpreter ({sys.executable}) in "
            f"{pyext_dir()}: install the sigprobe wheel for it (pip install sigprobe), or point "
            "SIGPROBE_PYEXT_DIR at a directory holding one (in a clone: scripts/sigprobe test builds build/pyext)")


def kernel_state() -> dict:
    """What the selftest must leave as it found it."""
    m = pyext_module()
    st = m.sigint_state()
    return {"python_handler": signal.getsignal(signal.SIGINT),
            "os_action": {k: st[k] for k in ("disposition", "owner", "handler", "flags")},
            "blocked": (sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, []))
                        if hasattr(signal, "pthread_sigmask") else None),
            "threads": sorted(t.name for t in threading.enumerate() if not t.name.startswith("sigprobe-")),
            "SIGPROBE_REPORT": os.environ.get("SIGPROBE_REPORT")}


class Helper:
    """The sender process (remote/sender.py, remote/sender_win.py): one JSON event a line
    on its stdout, read by a thread so that waiting works alike everywhere."""

    def __init__(self, argv, **popen):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, **popen)
        self.lines = queue.Queue()
        reader = threading.Thread(target=self._read_all, name="sigprobe-helper-reader", daemon=True)
        reader.start()
        self.reader = reader
        first = self.read(10)
        if not first or first.get("ev") != "listening":
            self.stop()
            raise RuntimeError(f"the helper process did not start: {first!r}")

    def _read_all(self):
        for line in self.proc.stdout:
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                self.lines.put({"ev": "error", "reason": f"the helper said {line[:200]!r}"})
        self.lines.put(None)

    def read(self, timeout):
        try:
            return self.lines.get(timeout=max(timeout, 0))
        except queue.Empty:
            return None

    def until_closed(self, timeout, events=None):
        """The run's events up to the helper's closed (or an error), appended
        to events (which keeps what was read if a KeyboardInterrupt cuts in)."""
        events = [] if events is None else events
        if events and events[-1]["ev"] in ("closed", "error"):
            return events
        while True:
            e = self.read(timeout)
            if e is None:
                events.append({"ev": "error", "reason": f"no word from the helper within {timeout:.0f} s"})
                return events
            events.append(e)
            if e["ev"] in ("closed", "error"):
                return events

    def stop(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(5)
        self.proc.stdout.close()


def _posix_sender(delay_ms, connection_file=None):
    """SIGINT to this kernel's process group (to its pid when the group holds
    other processes) from a helper in its own session; with connection_file,
    an interrupt_request on this kernel's control channel instead (message
    mode)."""
    pid, pgid = os.getpid(), os.getpgid(0)
    others = [mm for mm in doctor.posix.group_members(pgid) if mm["pid"] != pid]
    out = {"pid": pid, "pgid": pgid, "delivery": "killpg" if not others else "kill"}
    if connection_file:
        out = {"pid": pid, "pgid": pgid, "delivery": "message"}
    elif others:
        out["delivery_note"] = (f"the process group {pgid} holds other processes ({_fmt_members(others)}): "
                                f"killpg would interrupt them too, so SIGINT went to this kernel's pid only")
    # Short (Unix socket paths are limited), only this user can enter it, and
    # named for this kernel so that `sigprobe run` removes it should the kernel be killed.
    tmp = tempfile.mkdtemp(prefix=f"spst{pid}-", dir="/tmp")
    sock = os.path.join(tmp, "r.sock")
    try:
        helper = Helper([sys.executable, str(REMOTE / "sender.py"), sock, str(pid), str(pgid),
                         out["delivery"], str(delay_ms), *([connection_file] if connection_file else [])],
                        start_new_session=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out, helper, f"unix:{sock}", lambda: shutil.rmtree(tmp, ignore_errors=True)


def _windows_sender(delay_ms):
    """SetEvent on this kernel's JPY_INTERRUPT_EVENT from a helper process
    that inherits the event and the read end of the probe's report pipe."""
    import msvcrt
    event = os.environ.get("JPY_INTERRUPT_EVENT", "")
    facts = doctor.gather(os.getpid())
    fact = next((h for h in facts.get("handles", []) if h["variable"] == "JPY_INTERRUPT_EVENT"), None)
    if not fact or not fact.get("valid"):
        why = fact["why"] if fact else "it is not set"
        return {"unsupported": f"this kernel cannot be interrupted the way its manager does: JPY_INTERRUPT_EVENT "
                               f"{'=' + event + ' ' if event else ''}({why}); a Jupyter launcher on Windows passes "
                               f"an inherited event there"}, None, None, None
    r, w = os.pipe()
    rh, wh = msvcrt.get_osfhandle(r), msvcrt.get_osfhandle(w)
    os.set_handle_inheritable(rh, True)
    try:
        # -m: an embeddable CPython's ._pth puts no script's directory on sys.path.
        helper = Helper([sys.executable, "-m", "sigprobe.remote.sender_win", str(rh), event,
                         str(delay_ms)], close_fds=True,
                        startupinfo=subprocess.STARTUPINFO(lpAttributeList={"handle_list": [rh, int(event)]}),
                        creationflags=subprocess.CREATE_NO_WINDOW)
    except BaseException:
        os.close(r)
        os.close(w)
        raise
    os.close(r)  # the helper holds the read end now
    out = {"pid": os.getpid(), "delivery": "set-event", "event": event,
           "event_auto_reset": fact.get("auto_reset")}
    return out, helper, str(wh), lambda: os.close(w)


def users_interrupt(t_ns, events) -> bool:
    """Whether an interrupt this kernel saw at t_ns (a KeyboardInterrupt, a
    probe's handler firing; None: none seen) was the user's rather than the
    helper's: the helper delivers once per run and stamps the time just
    before it sends, so anything seen before that stamp, or in a run where it
    delivered nothing, came from someone else ("interrupt kernel", Ctrl+C).
    Both magics let the user's interrupt through and catch their own. (Two
    SIGINTs pending at once are one to the OS: a click that lands while the
    helper's own is still pending cannot be told apart, and is caught.)"""
    if t_ns is None:
        return False
    delivered = next((e for e in events if e.get("ev") == "delivered"), None)
    return delivered is None or t_ns < delivered["t_ns"]


class Report:
    """What a subcommand found: plain text for a terminal (and `print`), an
    HTML table for a notebook (self-contained: no script, no external style)."""

    def __init__(self, text: str, rows: list[dict] | None = None, title: str = ""):
        self.text, self.rows, self.title = text, rows, title

    def __repr__(self) -> str:
        return self.text

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(self.text)

    def _repr_html_(self) -> str | None:
        if not self.rows:
            return f"<pre>{html.escape(self.text)}</pre>"
        cols = list(self.rows[0])
        head = "".join(f"<th style='text-align:left'>{html.escape(c)}</th>" for c in cols)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r[c]))}</td>" for c in cols) + "</tr>"
                       for r in self.rows)
        return (f"<div><p><b>{html.escape(self.title)}</b></p><table><thead><tr>{head}</tr></thead>"
                f"<tbody>{body}</tbody></table><details><summary>text</summary><pre>{html.escape(self.text)}</pre>"
                f"</details></div>")
