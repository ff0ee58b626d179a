"""Runs the user's code (a `sigprobe check` subject) and watches it: when it
started and ended, where a KeyboardInterrupt was raised, how long the main
thread held the GIL, where it was, and who owned SIGINT at the OS level.

Standard library only, any CPython >= 3.7: it runs inside the interpreter
being checked. Two ways in:
  * as a script (the python-* hosts, and the uninterrupted run): argv[1] is
    the subject as JSON (or @FILE holding it), the facts go to the inherited
    file descriptor SIGPROBE_CHECK_FD (or, on Windows, to the loopback
    address SIGPROBE_CHECK_ADDR, see socket_emitter) as JSON lines ({"ev":"start",...} right before the code, {"ev":"end",...});
  * inside a kernel (the jupyter* hosts): the driver sends this file's
    source as a cell, then a cell that calls measure() with the driver's
    socket as the way out (socket_emitter).

The subject: {"kind": "code"|"script"|"call", "code": ..., "path": ...,
"args": [...], "target": "module:function", "setup": code run first (its
time is not the code's)}. Nothing here decides a verdict: the facts go to
sigprobe (src/sigprobe/check/), which compares them with the moment it
interrupted and with the code's uninterrupted run.
"""
import json
import os
import signal
import sys
import threading
import time
import traceback

# One clock for every process on the machine (CLOCK_MONOTONIC on POSIX; on
# Windows time.monotonic is GetTickCount64, milliseconds, so QPC).
now_ns = time.perf_counter_ns if os.name == "nt" else time.monotonic_ns
HERE = "<sigprobe-check>"  # this file's frames, when its source runs inside a kernel

GAP_NS = 3_000_000        # a watchdog wake-up later than this: the GIL was not available
WATCH_S = 0.001           # the watchdog's period
FRAME_EVERY = 2           # it samples the main thread's frame every this many periods
OWNER_EVERY = 10          # and SIGINT's owner every this many
MAX_SAMPLES = 4000        # frame samples kept (the last ones: the interrupt comes late)
MAX_GAPS = 400
# In a kernel, how long to wait after the code for an interrupt still on its
# way (measure's late_ns).
KERNEL_LATE_NS = 150_000_000


# ---- who owns SIGINT --------------------------------------------------------

class _OsOwner:
    """SIGINT's disposition at the OS level, named: sigaction() for the
    handler's address, dladdr() for the shared object holding it. Linux and
    the BSDs; None elsewhere (Windows has no sigaction)."""

    def __init__(self):
        self.ok = False
        if os.name != "posix":
            return
        try:
            import ctypes
            import ctypes.util
            self.ctypes = ctypes
            libc = ctypes.CDLL(None, use_errno=True)

            class SigAction(ctypes.Structure):  # glibc's struct sigaction (x86-64, aarch64)
                _fields_ = [("handler", ctypes.c_void_p), ("mask", ctypes.c_ulong * 16),
                            ("flags", ctypes.c_int), ("restorer", ctypes.c_void_p)]

            class DlInfo(ctypes.Structure):
                _fields_ = [("fname", ctypes.c_char_p), ("fbase", ctypes.c_void_p),
                            ("sname", ctypes.c_char_p), ("saddr", ctypes.c_void_p)]

            self.SigAction, self.DlInfo = SigAction, DlInfo
            self.sigaction = libc.sigaction
            try:
                self.dladdr = libc.dladdr
            except AttributeError:  # glibc < 2.34
                self.dladdr = ctypes.CDLL(ctypes.util.find_library("dl") or "libdl.so.2").dladdr
            self.dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(DlInfo)]
            exe = os.path.realpath(sys.executable)
            self.python_objects = {exe}
            self.ok = True
        except Exception:
            self.ok = False

    def name(self):
        if not self.ok:
            return None
        ctypes = self.ctypes
        old = self.SigAction()
        if self.sigaction(signal.SIGINT, None, ctypes.byref(old)) != 0:
            return None
        h = old.handler or 0
        if h == 0:
            return "default"
        if h == 1:
            return "ignored"
        info = self.DlInfo()
        if not self.dladdr(h, ctypes.byref(info)) or not info.fname:
            return "unknown"
        fname = info.fname.decode(errors="replace")
        real = os.path.realpath(fname) if os.sep in fname else fname
        base = os.path.basename(real)
        if real in self.python_objects or base.startswith("libpython") or base.startswith("python"):
            return "python"
        sname = info.sname.decode(errors="replace") if info.sname else None
        return base + (":" + sname if sname else "")


def python_handler():
    """What Python's signal module says SIGINT's Python-level handler is."""
    return handler_name(signal.getsignal(signal.SIGINT))


def handler_name(h):
    """A Python-level signal handler, named."""
    if h is signal.default_int_handler:
        return "default_int_handler"
    if h == signal.SIG_IGN:
        return "SIG_IGN"
    if h == signal.SIG_DFL:
        return "SIG_DFL"
    if h is None:
        return "not-python"
    return "other: " + (getattr(h, "__qualname__", None) or repr(h))


# ---- the watchdog -----------------------------------------------------------

class Watchdog(threading.Thread):
    """Wakes every millisecond: a wake-up much later than asked means no
    Python thread could run (the main thread held the GIL); every few, where
    the main thread is, and who owns SIGINT."""

    def __init__(self, main_ident, owner):
        super().__init__(daemon=True, name="sigprobe-check-watchdog")
        self.main_ident, self.owner = main_ident, owner
        self.halt = threading.Event()
        self.gaps, self.frames, self.owners = [], [], []
        self.last_frame = None

    def sample_frame(self, t):
        f = sys._current_frames().get(self.main_ident)
        while f is not None and f.f_code.co_filename == HERE:
            f = f.f_back
        if f is None:
            return
        key = (f.f_code.co_filename, f.f_lineno, f.f_code.co_name, f.f_lasti)
        if key != self.last_frame:
            self.last_frame = key
            self.frames.append([t, *key])
            if len(self.frames) > MAX_SAMPLES:
                del self.frames[:MAX_SAMPLES // 4]

    def sample_owner(self, t):
        o = [self.owner.name(), python_handler()]
        if not self.owners or self.owners[-1][1:] != o:
            self.owners.append([t, *o])

    def run(self):
        n = 0
        prev = now_ns()
        while not self.halt.is_set():
            time.sleep(WATCH_S)
            t = now_ns()
            if t - prev > GAP_NS + WATCH_S * 1e9:
                self.gaps.append([prev, t])
                if len(self.gaps) > MAX_GAPS:
                    self.gaps.sort(key=lambda g: g[0] - g[1])
                    del self.gaps[MAX_GAPS // 2:]
                    self.gaps.sort()
            prev = t
            n += 1
            if n % FRAME_EVERY == 0:
                self.sample_frame(t)
            if n % OWNER_EVERY == 0:
                self.sample_owner(t)


# ---- running the subject ----------------------------------------------------

def _source_line(filename, lineno):
    try:
        import linecache
        return linecache.getline(filename, lineno).strip()[:200]
    except Exception:
        return ""


def _where(tb):
    """The innermost frame of a traceback that is not this file's."""
    frames = [f for f in traceback.extract_tb(tb) if f.filename != HERE and f.filename != __file__]
    if not frames:
        return None
    f = frames[-1]
    return {"file": f.filename, "line": f.lineno, "function": f.name, "code": (f.line or "")[:200]}


def _compile(subject):
    """The code object to run and the namespace to run it in."""
    kind = subject["kind"]
    if kind == "script":
        path = subject["path"]
        with open(path, "rb") as f:
            source = f.read()
        ns = {"__name__": "__main__", "__file__": path, "__builtins__": __builtins__}
        return compile(source, path, "exec"), ns
    if kind == "call":
        mod, _, fn = subject["target"].partition(":")
        source = f"import {mod} as __sp_module\n__sp_module.{fn}()\n"
        return compile(source, "<sigprobe check --call>", "exec"), {"__name__": "__sigprobe_check__"}
    return compile(subject["code"], "<sigprobe check -c>", "exec"), {"__name__": "__main__"}


def measure(subject, emit, ns=None, late_ns=0):
    """Runs the subject once and emits its facts; every fact is taken, every
    exception caught (the code's own included): it never raises. late_ns:
    how long to wait after the code for an interrupt still on its way (in a
    kernel a helper thread raises it once it gets the GIL)."""
    owner = _OsOwner()
    facts = {"ev": "end", "pid": os.getpid(), "python": sys.version.split()[0]}
    try:
        code, run_ns = _compile(subject)
    except SyntaxError as e:
        facts.update(outcome="bad-code", error=f"SyntaxError: {e.msg} (line {e.lineno})")
        emit(facts)
        return
    except OSError as e:
        facts.update(outcome="bad-code", error=f"{subject.get('path')}: {e.strerror}")
        emit(facts)
        return
    if ns is not None and subject["kind"] == "code":
        run_ns = ns  # what the setup defined
    old_argv = sys.argv
    if subject["kind"] == "script":
        sys.argv = [subject["path"], *subject.get("args", [])]
        sys.path.insert(0, os.path.dirname(os.path.abspath(subject["path"])))
    elif subject["kind"] == "call":
        _cwd_importable()
    facts["owner_before"] = [owner.name(), python_handler()]
    watchdog = Watchdog(threading.main_thread().ident, owner)
    watchdog.sample_owner(now_ns())
    outcome, t_ki, where, error, exit_code = "returned", None, None, None, None
    t_start = t_end = None
    cpu_start = cpu_ki = cpu_end = None
    try:
        try:
            watchdog.start()
            emit({"ev": "start", "t_ns": now_ns(), "pid": os.getpid()})
            t_start, cpu_start = now_ns(), time.process_time_ns()  # after the emit (a kernel's flush waits)
            exec(code, run_ns)
            cpu_end, t_end = time.process_time_ns(), now_ns()
        except KeyboardInterrupt as e:
            cpu_end = cpu_ki = time.process_time_ns()
            t_ki = t_end = now_ns()
            where = _where(e.__traceback__)
            # No frame of the code in its traceback: raised here, once the code had returned (an
            # interrupt noted during a native call that ran to its end, raised at the next check).
            outcome = "keyboard-interrupt" if where else "keyboard-interrupt-after"
        except SystemExit as e:
            cpu_end, t_end = time.process_time_ns(), now_ns()
            outcome, exit_code = "exit", e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException as e:  # the code's own failure is a fact, not sigprobe's
            cpu_end, t_end = time.process_time_ns(), now_ns()
            outcome, where = "exception", _where(e.__traceback__)
            error = f"{type(e).__name__}: {e}"[:300]
        # After the code: an interrupt Python has noted but not yet raised is
        # raised here at the latest, as is one a kernel's helper thread could
        # only pass on once the code let go of the GIL (message mode, the
        # Windows poller): that is `deferred`. Sleeping lets those threads run.
        late_until = now_ns() + late_ns
        while True:
            try:
                for _ in range(10000):
                    pass
                while now_ns() < late_until:
                    time.sleep(0.002)
                break
            except KeyboardInterrupt as e:
                if t_ki is None:
                    t_ki, cpu_ki = now_ns(), cpu_end
                    outcome, where = "keyboard-interrupt-after", _where(e.__traceback__)
    finally:
        watchdog.halt.set()
        watchdog.join(1)
        sys.argv = old_argv
    facts.update(outcome=outcome, t_start=t_start, t_end=t_end, t_ki=t_ki, where=where,
                 cpu_ns=None if cpu_end is None else cpu_end - cpu_start,
                 cpu_ki_ns=None if cpu_ki is None else cpu_ki - cpu_start,
                 owner_after=[owner.name(), python_handler()], gaps=watchdog.gaps,
                 frames=watchdog.frames, owners=watchdog.owners)
    if error:
        facts["error"] = error
    if exit_code is not None:
        facts["exit_code"] = exit_code
    for s in facts["frames"]:
        s.append(_source_line(s[1], s[2]))
    while True:  # an interrupt landing now must not lose the facts
        try:
            emit(facts)
            return
        except KeyboardInterrupt:
            facts.setdefault("late_interrupts", 0)
            facts["late_interrupts"] += 1


def _cwd_importable():
    """--call's module is found in the working directory, as `python -c`
    finds it (a kernel of the embeddable Windows CPython has no '' on
    sys.path: python311._pth)."""
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


def setup(subject, ns, emit):
    """The subject's setup (its imports: `--call`'s module, `--setup`), run
    before the code and not timed with it; in a kernel, its own cell. False
    (and the failure emitted) when it raised."""
    if not subject.get("setup"):
        return True
    if subject["kind"] == "call":
        _cwd_importable()
    try:
        exec(compile(subject["setup"], "<sigprobe check setup>", "exec"), ns)
    except BaseException as e:
        emit({"ev": "end", "outcome": "setup-failed", "error": f"{type(e).__name__}: {e}"[:300],
              "owner_before": [_OsOwner().name(), python_handler()]})
        return False
    emit({"ev": "setup", "owner": [_OsOwner().name(), python_handler()]})
    return True


def fd_emitter(fd):
    def emit(obj):
        data = (json.dumps(obj) + "\n").encode()
        while data:
            data = data[os.write(fd, data):]
    return emit


def socket_emitter(address):
    """Inside a kernel: the events go straight to the driver's socket,
    written by the main thread itself. Not the cell's stdout: ipykernel's IO
    thread sends that, and it cannot run while the code holds the GIL (the
    driver would learn of the start only at the end). address: a Unix
    socket's path, or "tcp:HOST:PORT:TOKEN" (Windows, whose Python under Wine
    has no AF_UNIX: loopback TCP, the token sent first so that the listener
    knows the connection is its run's; remote/channel.py)."""
    import socket
    if address.startswith("tcp:"):
        _, host, port, token = address.split(":", 3)
        sock = socket.create_connection((host, int(port)))
        sock.sendall((token + "\n").encode())
    else:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(address)

    def emit(obj):
        sock.sendall((json.dumps(obj) + "\n").encode())
    emit.close = sock.close  # the reader sees the end of the run
    return emit


def main():
    arg = sys.argv[1]
    if arg.startswith("@"):  # the subject in a file (a command line under Wine keeps no newlines safe)
        with open(arg[1:], encoding="utf-8") as f:
            arg = f.read()
    subject = json.loads(arg)
    if "SIGPROBE_CHECK_ADDR" in os.environ:  # Windows: the listener's loopback port and token
        emit = socket_emitter(os.environ.pop("SIGPROBE_CHECK_ADDR"))
    else:
        emit = fd_emitter(int(os.environ.pop("SIGPROBE_CHECK_FD")))
    del sys.argv[1:]
    # Imports as `python -c` would see them: the working directory first, not this script's
    # (the embeddable Windows CPython puts no script's folder there: python311._pth).
    if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
        sys.path[0] = ""
    else:
        sys.path.insert(0, "")
    ns = {"__name__": "__main__"}
    if not setup(subject, ns, emit):
        return 0
    measure(subject, emit, ns)
    return 0


if __name__ == "__main__":
    sys.exit(main())
