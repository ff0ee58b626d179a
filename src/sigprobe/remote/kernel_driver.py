"""Runs the Jupyter cells against real kernels, under the interpreter being
measured, with that interpreter's own jupyter_client and ipykernel.

Standard library plus jupyter_client only: it is run as a script by the
chosen interpreter (the project's venv, or e.g. Debian's /usr/bin/python3).
Input: one JSON plan on stdin (see Plan below); stdin then stays open as a
lifeline (EOF means the parent is gone: shut everything down). A plan with
"open": true takes more runs on stdin ({"runs": [...]} lines) until an
{"end": true} line (Feed). Output: JSON lines on stdout: first
{"ev":"versions",...}, then one outcome per run.

Each run: a `sigprobe-run --attach` runner listens on a Unix socket (AF_UNIX
on Windows 10 1803+ too, where interrupt_kernel() is SetEvent on the kernel's
JPY_INTERRUPT_EVENT in signal mode and message mode is ipykernel's no-op;
with the plan's "attach": "tcp", as under Wine, a loopback TCP port); a cell
in the kernel calls the extension probe (or starts a native probe as a child
process) with SIGPROBE_REPORT=<what the runner said it listens on>; when the probe reports ready,
the runner asks for the interrupt, which this script sends the way a user's
frontend does (KernelManager.interrupt_kernel), then tells the runner when
and what, and finally how the cell ended (execute_reply status, ename, where
the KeyboardInterrupt was raised). The runner derives the verdict.
"""
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

WHERE_TAG = "SIGPROBE_WHERE="
# The probe's clock: CLOCK_MONOTONIC on POSIX, QueryPerformanceCounter on
# Windows (where time.monotonic is GetTickCount64, in milliseconds).
now_ns = time.perf_counter_ns if os.name == "nt" else time.monotonic_ns
CHILD_TAG = "SIGPROBE_CHILD="

if __package__:  # imported from the package (the magics, catalog)
    from . import pyext_loader
else:  # run by its path under the interpreter measured; pyext_loader.py is beside it
    try:
        import pyext_loader
    except ImportError:
        # The embeddable Windows CPython (under Wine) leaves the script's folder off sys.path
        # (python311._pth); sigprobe itself is importable there (winpython._link_checkout).
        from sigprobe.remote import pyext_loader
load_pyext = pyext_loader.load_pyext


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def versions():
    out = {"python": sys.version.split()[0], "python_executable": sys.executable}
    for mod in ("ipykernel", "jupyter_client", "zmq", "IPython"):
        try:
            m = __import__(mod)
            out["pyzmq" if mod == "zmq" else mod.lower()] = getattr(m, "__version__", "?")
        except Exception:
            out["pyzmq" if mod == "zmq" else mod.lower()] = None
    return out


class Lines:
    """Line reader on a raw fd with a timeout (no buffering surprises). On
    Windows select() takes sockets only, so a thread reads the pipe there,
    from a descriptor of its own that it closes at EOF: the caller's may be
    closed (a Popen dropped) while that thread is between two reads, and its
    number given to the next runner's pipe, whose first line the thread
    would then take (under Wine, loaded: a run's "listening" line lost once
    in about 560 kernel runs, the run an error after the runner's 8 s)."""

    def __init__(self, fd):
        self.fd, self.buf = fd, b""
        self.eof = False
        if os.name == "nt":
            import queue
            self.chunks = queue.Queue()
            self.fd = os.dup(fd)
            threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        try:
            while True:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:
                    chunk = b""
                self.chunks.put(chunk)
                if not chunk:
                    return
        finally:
            os.close(self.fd)

    def _chunk(self, left):
        """The next bytes (b"" at EOF), or None when nothing came in time."""
        if os.name == "nt":
            import queue
            try:
                return self.chunks.get(timeout=left)
            except queue.Empty:
                return None
        r, _, _ = select.select([self.fd], [], [], left)
        return os.read(self.fd, 65536) if r else None

    def read(self, timeout):
        end = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0 or self.eof:
                return None if not self.buf or not self.eof else self._take_all()
            chunk = self._chunk(left)
            if chunk is None:
                continue
            if not chunk:
                self.eof = True
                return None if not self.buf else self._take_all()
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode(errors="replace")

    def _take_all(self):
        line, self.buf = self.buf, b""
        return line.decode(errors="replace")


class Kernel:
    def __init__(self, km, kc, mode, log_path=None):
        self.km, self.kc, self.mode, self.log_path = km, kc, mode, log_path
        self.prepared = False
        self.setup_s = 0.0  # how long its setup cell took
        self.imported = 0  # how many copies of sigprobe_pyext_import it has imported (see FRESH_IMPORT)

    @property
    def stacks_path(self):
        return self.log_path + ".stacks" if self.log_path else None

    def dump_stacks(self, timeout_s=1.0):
        """What the kernel's threads are doing: the Python stacks of all of
        them, which faulthandler writes from its SIGUSR2 handler (registered
        by the setup cell, POSIX only) even while the interpreter is stuck,
        since it needs neither the GIL nor the kernel's event loop. None
        where it cannot be asked (Windows, no setup cell, no process)."""
        pid, path = self.pid, self.stacks_path
        if not hasattr(signal, "SIGUSR2") or not pid or not path or not os.path.exists(path):
            return None
        start = os.path.getsize(path)
        try:
            os.kill(pid, signal.SIGUSR2)
        except OSError:
            return None
        end, size, stable_at = time.monotonic() + timeout_s, start, None
        while time.monotonic() < end:
            time.sleep(0.01)
            now = os.path.getsize(path)
            if now != size:
                size, stable_at = now, time.monotonic() + 0.05
            elif stable_at is not None and time.monotonic() >= stable_at:
                break  # written, and nothing more for 50 ms
        with open(path, "rb") as f:
            f.seek(start)
            return f.read().decode(errors="replace").strip() or None

    def activity_ns(self):
        """How long the kernel's threads have run or waited to run, summed
        (ns, /proc/PID/task/*/schedstat), or None where that is not known."""
        pid = self.pid
        if not pid or os.name == "nt":
            return None
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            return None
        total = 0
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    ran, waited = f.read().split()[:2]
                total += int(ran) + int(waited)
            except (OSError, ValueError):
                continue  # a thread that ended meanwhile
        return total

    def interrupt(self, await_reply_s=0.0):
        """Interrupts the kernel as Jupyter does (jupyter_client's
        interrupt_kernel()) and returns when it asked (now_ns). In message mode
        that only sends an interrupt_request on the control channel: ipykernel
        signals itself once its control thread has handled it (that thread
        needs the GIL and the CPU: 2-19 ms idle, over 100 ms under load), then
        answers on the manager's control socket, which nobody else reads.
        With await_reply_s, in message mode, this returns only once that
        answer came (the interrupt has reached the process), or after
        await_reply_s without one."""
        while self._control_message(0) is not None:
            pass  # an answer to an earlier request (one whose wait gave up)
        t = now_ns()
        self.km.interrupt_kernel()
        end = time.monotonic() + await_reply_s
        while await_reply_s and self._control_message(end - time.monotonic()) not in (None, "interrupt_reply"):
            pass  # another message: none is expected, nobody else sends on this socket
        return t

    def _control_message(self, timeout_s):
        """In message mode, the type of the next message on the manager's
        control socket ("" for one without a type); None when none came
        within timeout_s, or there is no such socket to read."""
        sock = getattr(self.km, "_control_socket", None) if self.mode == "message" else None
        if sock is None:
            return None
        import zmq
        try:
            if not sock.poll(max(0, int(timeout_s * 1000))):
                return None
            _, msg = self.km.session.recv(sock, mode=zmq.NOBLOCK)
        except Exception:  # a socket the manager closed meanwhile; a message it cannot read
            return None
        return (msg or {}).get("msg_type") or ""

    def log_tail(self, limit=2000):
        """The end of what the kernel printed (its stdout and stderr)."""
        return self.log_since(max(0, self.log_size() - limit))

    def log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except (OSError, TypeError):
            return 0

    def start_failure(self):
        """The exception that ended the kernel's start, when its log shows
        one (its last line), else None. ipykernel's app may fail in
        initialize() without its process ending: a port that jupyter_client
        found free was taken, before the kernel bound it, by another
        driver's kernel (`ZMQError: Address already in use`, 1 start in
        about 150 with six drivers starting kernels at once), and the
        process stays alive with its threads, so waiting for its first
        reply would take the whole start timeout."""
        log = self.log_since(0)
        if "Traceback (most recent call last)" not in log or "launch_instance" not in log:
            return None
        lines = [line.strip() for line in log.splitlines() if line.strip()]
        return lines[-1] if lines else None

    def reply_lost(self, offset):
        """Whether the kernel logged, since offset, that a KeyboardInterrupt
        escaped its message handling (the cell's reply is then never sent)."""
        return REPLY_LOST in self.log_since(offset)

    def log_since(self, offset):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except (OSError, TypeError):
            return ""

    @property
    def pid(self):
        return getattr(self._process(), "pid", None)

    def shutdown(self):
        """Kills the kernel's process group and reaps the kernel: once this
        returns, nothing of it can write into the run's directory."""
        if self.kc is not None:
            try:
                self.kc.stop_channels()
            except Exception:
                pass
        proc = self._process()
        try:
            self.km.shutdown_kernel(now=True)
        except Exception:
            pid = self.pid
            if pid and hasattr(os, "killpg"):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass
            elif pid:  # Windows: no process groups; the kernel's own process
                try:
                    self.km.kernel.kill()
                except Exception:
                    pass
        if proc is not None:
            try:
                proc.wait(10)  # jupyter_client waits 5 s at most, then goes on
            except Exception:
                pass

    def _process(self):
        """The kernel's process object (jupyter_client 7 and 8 keep it in different places)."""
        prov = getattr(self.km, "provisioner", None)
        proc = getattr(prov, "process", None) if prov is not None else None
        return proc if proc is not None else getattr(self.km, "kernel", None)


# A kernel formats the traceback of the first cell that raised with modules
# IPython imports only then (stack_data, pygments' formatters: 0.2 s here,
# about 5 s under Wine, more under load). Each kernel pays that as it starts,
# so it lands in no measured run: a first interrupted run under Wine took
# 5.6 s instead of 0.4 s, and under load overran its 8 s reply deadline (hung).
WARM_CELL = """def __sp_warm():
    import sys
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        get_ipython().InteractiveTB.structured_traceback(*sys.exc_info())
__sp_warm()
del __sp_warm
"""


# How often a starting kernel's log is looked at for a failed start.
START_CHECK_S = 1


def wait_ready(k, timeout_s):
    """Until the kernel (a Kernel, its client started) answers, in short
    waits: a start that failed (Kernel.start_failure) is given up at once,
    not after timeout_s; RuntimeError says why."""
    end = time.monotonic() + timeout_s
    while True:
        try:
            k.kc.wait_for_ready(timeout=max(1, min(START_CHECK_S, end - time.monotonic())))
            return
        except RuntimeError:  # no reply within this wait, or the kernel died
            failure = k.start_failure()
            if failure:
                raise RuntimeError(f"it failed as it started: {failure}") from None
            if not k.km.is_alive():
                raise
            if time.monotonic() >= end:
                raise RuntimeError(f"Kernel didn't respond in {timeout_s:.0f} seconds") from None


class Pool:
    """Kernels per interrupt mode, reused from run to run (--fresh-kernels: a
    fresh one each run, with one spare started ahead in the background so it
    is ready)."""

    def __init__(self, ksm, timeout_s, log_dir):
        self.ksm, self.timeout_s, self.log_dir = ksm, timeout_s, log_dir
        self.idle = {}
        self.spares = {}
        self.live = []
        self.lock = threading.Lock()
        self.closed = False
        self.stats = {"started": 0, "reused": 0, "retried": 0, "lost": 0, "recovered": 0}

    def count(self, what):
        with self.lock:
            self.stats[what] += 1

    def _start(self, mode):
        from jupyter_client import KernelManager
        with self.lock:
            if self.closed:
                raise RuntimeError("sigprobe is shutting down")
        km = KernelManager(kernel_name=f"sigprobe-{mode}", kernel_spec_manager=self.ksm)
        # In the run's own directory (jupyter_client's default is a new file in
        # the system's temporary directory, left there should the run be killed).
        stamp = f"{mode}-{time.monotonic_ns()}"
        km.connection_file = os.path.join(os.environ["JUPYTER_RUNTIME_DIR"], f"kernel-{stamp}.json")
        path = os.path.join(self.log_dir, f"kernel-{stamp}.log")
        log = open(path, "wb")
        km.start_kernel(stdout=log, stderr=log)
        log.close()
        k = Kernel(km, None, mode, path)
        with self.lock:
            closed = self.closed
            if not closed:
                self.live.append(k)
        if closed:  # shutdown_all() ran meanwhile and did not see this kernel
            k.shutdown()
            raise RuntimeError("sigprobe is shutting down")
        try:
            kc = km.client()
            kc.start_channels()
            k.kc = kc
            wait_ready(k, self.timeout_s)
            warm = Execution(kc, WARM_CELL, self.timeout_s)
            warm.finish()
            if warm.failure():
                raise RuntimeError(f"the kernel could not format a traceback: {warm.failure()}")
        except BaseException:
            self.discard(k)  # not left running, holding its ports, until the driver ends
            raise
        self.count("started")
        return k

    def _spare(self, mode):
        box = {}

        def target():
            try:
                start()
            finally:
                close_thread_loop()

        def start():
            # A start that fails outright is the harness's problem, not a
            # measurement (under a loaded Wine, CreateProcess once failed with
            # error 1359): one more try, said on stderr.
            for attempt in (1, 2):
                try:
                    box["kernel"] = self._start(mode)
                    return
                except Exception as e:  # reported when the spare is taken
                    box["error"] = e
                    if self.closed:
                        return
                    self.count("lost")
                    if attempt == 1:
                        self.count("retried")
                        sys.stderr.write(f"sigprobe: a {mode}-mode kernel did not start ({e}); starting another\n")

        t = threading.Thread(target=target, daemon=True)
        t.start()
        self.spares[mode] = (t, box)

    def prestart(self, mode):
        """A kernel of this mode starts now, in the background, for the next get()."""
        if mode not in self.spares:
            self._spare(mode)

    def get(self, mode, fresh, spare=True):
        """A kernel of this interrupt mode: an idle one unless fresh, else the
        spare. spare: whether a later run will want a fresh kernel of this
        mode (its start then overlaps this run); a spare nobody takes costs a
        whole kernel start (3-4 s under Wine)."""
        if not fresh and self.idle.get(mode):
            self.count("reused")
            return self.idle[mode].pop()
        self.prestart(mode)
        t, box = self.spares.pop(mode)
        if spare:
            self._spare(mode)  # the next fresh kernel starts while this one works
        t.join(self.timeout_s + 5)
        if "kernel" not in box and "error" in box:
            raise RuntimeError(f"the kernel did not start: {box['error']}")
        if "kernel" not in box:
            raise RuntimeError(f"the kernel did not start within {self.timeout_s:.0f} s")
        return box["kernel"]

    def give_back(self, k):
        self.idle.setdefault(k.mode, []).append(k)

    def discard(self, k):
        if k is None:
            return
        k.shutdown()
        with self.lock:
            if k in self.live:
                self.live.remove(k)

    def shutdown_all(self):
        """Every kernel shut down and reaped, those still starting included:
        no kernel starts after this."""
        for _ in range(2):
            # First the kernels there are (a spare waiting for its kernel's
            # first reply then fails at once), then, once no start is under
            # way, any that finished starting meanwhile.
            with self.lock:
                self.closed = True
                kernels = list(self.live)
                self.live.clear()
            for k in kernels:
                k.shutdown()
            for t, _ in list(self.spares.values()):
                t.join()


def write_kernelspecs(root, python, env):
    for mode in ("signal", "message"):
        d = os.path.join(root, "kernels", f"sigprobe-{mode}")
        os.makedirs(d)
        spec = {"argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": f"sigprobe ({mode})", "language": "python",
                "interrupt_mode": mode, "env": env}
        with open(os.path.join(d, "kernel.json"), "w") as f:
            json.dump(spec, f)


def isolate(tmp):
    """Kernels whose Jupyter and IPython directories are all inside tmp
    (nothing goes to the user's own), with the sigprobe-signal and
    sigprobe-message kernelspecs for this interpreter."""
    for var, sub in (("JUPYTER_RUNTIME_DIR", "runtime"), ("JUPYTER_DATA_DIR", "data"),
                     ("JUPYTER_CONFIG_DIR", "config"), ("IPYTHONDIR", "ipython")):
        os.environ[var] = os.path.join(tmp, sub)
        os.makedirs(os.environ[var])
    os.environ["JUPYTER_PATH"] = os.path.join(tmp, "data")
    os.environ["JUPYTER_PLATFORM_DIRS"] = "1"
    env = {k: os.environ[k] for k in ("JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR", "JUPYTER_CONFIG_DIR", "IPYTHONDIR")}
    write_kernelspecs(tmp, sys.executable, env)


def probe_cell(run, report):
    """The code of the cell that runs the probe, as a user would write it: one
    top-level statement, so that an interrupt cannot land between statements."""
    s, nogil = run["pyext_strategy"], run["nogil"]
    call = (f"sigprobe_pyext_import.run(loop_ms={run['loop_ms']}, nogil={nogil})" if s == "c-handler-import"
            else f"sigprobe_pyext.run({s!r}, loop_ms={run['loop_ms']}, nogil={nogil})")
    same_cell_import = "    import sigprobe_pyext_import\n" if run.get("same_cell") else ""
    # Where the KeyboardInterrupt of an interrupt the call did not notice is
    # raised: POSIX, at the next bytecode; Windows, once ipykernel's poller
    # thread has had the GIL to call interrupt_main(), so wait for it there
    # (sleeping lets the poller run; each wake-up is a check).
    late = ("    __sp_end = __import__('time').perf_counter() + 0.2\n"
            "    while __import__('time').perf_counter() < __sp_end:\n        __import__('time').sleep(0.005)\n"
            if os.name == "nt" else "    for __sp_i in range(10000):\n        pass\n")
    return ("import os\n"
            f"os.environ['SIGPROBE_REPORT'] = {report!r}\n"
            "__sp_where = 'nowhere'\n"
            "try:\n"
            f"{same_cell_import}"
            f"    __sp_r = {call}\n"
            f"{late}"
            "except KeyboardInterrupt as __sp_e:\n"
            "    __sp_where = 'inside-call' if getattr(__sp_e, 'sigprobe_inside_call', False) else 'after-return'\n"
            "    raise\n"
            "finally:\n"
            f"    print({WHERE_TAG!r} + __sp_where, flush=True)\n")


def child_cell(run, report):
    """A native probe started from a cell as a child process, as subprocess.run
    or !cmd would. IPython runs a cell's top-level statements one by one, and an
    interrupt may land between any two; so it is all one function call. The
    child's end is read with waitid(WNOWAIT) before reaping it: a KeyboardInterrupt
    landing just after Popen.wait()'s waitpid() loses the status (the retry then
    gets ECHILD and subprocess reports exit code 0 — measured here). The child
    can report ready, and so be interrupted, before Popen has returned it: a
    KeyboardInterrupt inside Popen then leaves a child whose pid the cell never
    got, so the cell waits for whichever child it has (waitid P_ALL: a kernel
    starts none of its own) and starts another only when there is none (a
    second probe once reported in its place, with the first one's handler).
    That child is never reaped behind the cell's back: a Popen object dropped
    by the KeyboardInterrupt polls its child in __del__ (waitpid WNOHANG), and
    a child already ended was reaped there, its status lost, and a second
    started (seen in a loaded suite); the cell's Popen does not."""
    return ("def __sp_child():\n"
            "    import os, subprocess\n"
            "    class Popen(subprocess.Popen):\n"
            "        def __del__(self):  # the cell reaps its child, below\n"
            "            pass\n"
            f"    env = dict(os.environ, SIGPROBE_REPORT={report!r})\n"
            "    proc, info, ki, started = None, None, False, False\n"
            "    while info is None:\n"
            "        try:\n"
            "            if proc is None and started:\n"
            "                try:  # Popen was interrupted: its child, if it has one\n"
            "                    info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT)\n"
            "                except ChildProcessError:\n"
            "                    started = False\n"
            "                continue\n"
            "            if proc is None:\n"
            "                started = True\n"
            f"                proc = Popen([{run['probe']!r}], env=env, stdin=subprocess.DEVNULL)\n"
            "            info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)\n"
            "        except KeyboardInterrupt:\n"
            "            ki = True\n"
            "    how = 'exited' if info.si_code == os.CLD_EXITED else 'signaled'\n"
            "    while True:\n"
            "        try:\n"
            "            proc.wait() if proc is not None else os.waitpid(info.si_pid, 0)\n"
            "            break\n"
            "        except KeyboardInterrupt:\n"
            "            ki = True\n"
            "        except ChildProcessError:\n"
            "            break\n"
            f"    print({CHILD_TAG!r} + '%s %d %d' % (how, info.si_status, ki), flush=True)\n"
            "__sp_child()\n")


# A run of the import-time handler (c-handler-import) needs a kernel in which
# `import sigprobe_pyext_import` runs the module's init, which installs the
# handler. In a kernel that imported it before, the import would be a no-op
# (sys.modules) and the handler never installed again; so that run imports a
# copy of the module file that this process has not loaded, from a folder of
# its own: the init runs (the dynamic loader and CPython's extension cache go
# by path), with statics of its own, and the cell's `import` is a user's. The
# earlier copies' handlers are not installed any more: installing replaces
# (sigaction, the CRT's signal on Windows), and ipykernel restores its saved
# handler after every cell. Was a fresh kernel per run, 8 kernel starts out of
# 11 in a default run at --repeat 1; `--fresh-kernels` still does that, and the
# verdicts are the same (test_jupyter.py).
FRESH_IMPORT = """def __sp_fresh_import(src, dst):
    import os, shutil, sys
    os.makedirs(dst)
    for name in os.listdir(src):
        if name.startswith('sigprobe_pyext_import.'):
            shutil.copyfile(os.path.join(src, name), os.path.join(dst, name))
    sys.modules.pop('sigprobe_pyext_import', None)
    for finder in sys.meta_path:
        if getattr(finder, 'modules', None) == ('sigprobe_pyext', 'sigprobe_pyext_import'):
            finder.import_where = dst
__sp_fresh_import(%r, %r)
del __sp_fresh_import
"""


# Run by the setup cell: SIGUSR2 makes the kernel write every thread's Python
# stack into a file of the run's (Kernel.dump_stacks). Not its stderr: ipykernel
# pipes fd 2 through a thread of its own, which a hung kernel may never run.
STACKS_CELL = """
import faulthandler as __sp_faulthandler, signal as __sp_signal
if hasattr(__sp_faulthandler, "register"):
    __sp_stacks = open(%r, "w")
    __sp_faulthandler.register(__sp_signal.SIGUSR2, file=__sp_stacks, all_threads=True, chain=False)
del __sp_faulthandler, __sp_signal
"""


def setup_cell(pyext_dir, stacks_path=None):
    """The kernel imports the probe as load_pyext() does here (its source goes
    along), so the cells can `import sigprobe_pyext_import` as a user would;
    with stacks_path, it also says where to write its stacks when asked."""
    with open(pyext_loader.__file__, encoding="utf-8") as f:
        source = f.read()
    source = source[source.index("def load_pyext("):]
    return (source.replace("def load_pyext(", "def __sp_load_pyext(") + "\n"
            f"import os, sys\nsigprobe_pyext = __sp_load_pyext({pyext_dir!r})\ndel __sp_load_pyext\n"
            + (STACKS_CELL % stacks_path if stacks_path else ""))


def close_thread_loop():
    """Closes the event loop this thread's blocking client calls made.
    jupyter_client runs each of them on the calling thread's own loop
    (jupyter_core's run_sync; jupyter_client 7's) and never closes it. Once
    the thread ended, that loop and its self-pipe were garbage in one cycle,
    which the collector takes in no set order: when it closed the pipe's
    socket first, the loop's __del__ printed "ValueError: Invalid file
    descriptor: -1" with a traceback into the run's log (2 default runs in
    3). For threads that end, never the main one."""
    import asyncio
    try:
        loop = asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:  # this thread never made one
        return
    if not loop.is_running() and not loop.is_closed():
        loop.close()


class Abandoned(Exception):
    """The driver stopped waiting for this cell's reply (Execution.abandon)."""


class Execution(threading.Thread):
    """One cell in a thread, so the runner can be served meanwhile: what
    execute_interactive does (the cell's iopub messages to its idle status,
    then its reply on the shell channel), in short polls, so that waiting for
    a reply known to be lost can be given up and the kernel's client used
    again (abandon)."""

    POLL_S = 0.05

    def __init__(self, kc, code, timeout_s):
        super().__init__(daemon=True)
        self.kc, self.code, self.timeout_s = kc, code, timeout_s
        self.reply, self.error, self.stream = None, None, []
        self.idle_at = None  # when the kernel said it is idle again after this cell
        self.heard_at = None  # when the kernel last sent anything on iopub (any cell's)
        self.busy_at = None  # when the kernel was last seen at work though silent (wait)
        self.idle_checked = False  # whether wait saw its threads do no work before it gave up
        self.abandoned = threading.Event()

    def hook(self, msg):
        if msg.get("msg_type") == "stream":
            self.stream.append(msg["content"].get("text", ""))
        elif msg.get("msg_type") == "status" and msg["content"].get("execution_state") == "idle":
            self.idle_at = time.monotonic()

    def wait(self, timeout_s, reply_lost, quiet_s=None, since=None, activity=None):
        """Until the reply came, or the timeout, or reply_lost() says the
        kernel went idle without one, or (quiet_s) the kernel has sent
        nothing at all for quiet_s since `since` or its last message. No need
        to wait out the timeout for what is already known. activity (where
        known: Kernel.activity_ns) tells a silent kernel that works from one
        that waits on nothing: one whose threads ran, or waited to run, for
        BUSY_SHARE of a quiet period is at work (formatting a traceback
        under load took over 1 s) and gets another."""
        end = time.monotonic() + timeout_s
        before = activity() if activity else None
        while self.is_alive() and time.monotonic() < end:
            self.join(0.02)
            if self.idle_at is not None and reply_lost():
                return
            if quiet_s is not None and self.idle_at is None and self.quiet_for(since) > quiet_s:
                now = activity() if before is not None else None
                if now is None or now - before < BUSY_SHARE * quiet_s * 1e9:
                    self.idle_checked = now is not None
                    return
                self.busy_at, before = time.monotonic(), now

    def reply_lost(self, kernel, offset):
        """Whether the kernel went idle after this cell without replying:
        its log says, since offset, that ipykernel caught the
        KeyboardInterrupt in its own message handling (Kernel.reply_lost)."""
        return self.idle_at is not None and kernel.reply_lost(offset)

    def quiet_for(self, since):
        """Seconds since the kernel last sent anything or was last seen at
        work (or since `since`, if later)."""
        return time.monotonic() - max(since, self.heard_at or since, self.busy_at or since)

    def abandon(self):
        """Stops waiting for the reply: once this returns, this thread no
        longer reads the kernel's client (its messages are told apart by
        their parent's msg_id, so a late one is skipped by the next cell)."""
        self.abandoned.set()
        self.join()

    def finish(self):
        """Runs the cell to its end in this thread of its own, as every cell
        runs: a kernel's client is read from short-lived threads only. The
        asyncio sockets of jupyter_client 7 (Debian's) leave a reader on the
        event loop of every thread that polled them; the driver's main thread
        polled them too, and its loop, run again after a kernel's sockets had
        closed, printed ZMQError tracebacks into the run's log."""
        self.start()
        self.join()
        return self

    # ipykernel aborts the execute requests that reach it between its error
    # reply to a cell (an interrupted cell's, most often) and the end of the
    # abort that reply starts (stop_on_error): such a cell was not run, and is
    # sent again, for this long at most (the abort ends within one turn of the
    # kernel's loop). "resent" in the driver's kernel counts.
    RESEND_ABORTED_S = 2.0
    resent = 0  # how many cells were sent again, in all
    _resent_lock = threading.Lock()

    def run(self):
        try:
            until = time.monotonic() + self.RESEND_ABORTED_S
            self.reply = self._execute()
            while self.aborted() and time.monotonic() < until and not self.abandoned.is_set():
                with Execution._resent_lock:
                    Execution.resent += 1
                self.idle_at, self.stream = None, []
                time.sleep(0.01)
                self.reply = self._execute()
        except BaseException as e:  # TimeoutError: never replied; CancelledError: its kernel was shut down
            self.error = e
        finally:
            close_thread_loop()

    def _execute(self):
        import queue
        end = time.monotonic() + self.timeout_s
        msg_id = self.kc.execute(self.code, store_history=False, allow_stdin=False)
        idle = False
        while True:
            if self.abandoned.is_set():
                raise Abandoned("the driver stopped waiting for the reply")
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {'reply' if idle else 'idle status'} within {self.timeout_s:.0f} s")
            try:
                msg = (self.kc.get_shell_msg if idle else self.kc.get_iopub_msg)(timeout=min(self.POLL_S, left))
            except queue.Empty:
                continue
            self.heard_at = time.monotonic()
            if msg["parent_header"].get("msg_id") != msg_id:
                continue  # another cell's (one whose reply was given up)
            if idle:
                return msg
            self.hook(msg)
            idle = self.idle_at is not None

    def aborted(self):
        """Whether the kernel answered that it did not run the cell."""
        return self.error is None and self.reply is not None and self.reply["content"].get("status") == "aborted"

    def failure(self):
        """None when the cell replied ok; else why not (no reply, or the exception it raised)."""
        if self.error is None and self.reply["content"].get("status") == "ok":
            return None
        return self.error or f"{self.reply['content'].get('ename')}: {self.reply['content'].get('evalue')}"

    def tagged(self, tag):
        for line in "".join(self.stream).splitlines():
            if line.startswith(tag):
                return line[len(tag):].strip()
        return None


# What ipykernel logs when a KeyboardInterrupt escapes its message handler
# (it landed after the cell's code, in ipykernel's own handling of the
# message): the execute_reply is never sent, then the kernel goes idle.
REPLY_LOST = "KeyboardInterrupt caught in kernel"
# A run's cell may take this many times what the kernel's setup cell took (see one_run).
REPLY_STRETCH = 20
# After the interrupt, a kernel that answers sends something within the
# runner's window and a little more (the cell's output, its end, its idle
# status: the probe's loop ends at the runner's stop, one window after the
# interrupt at most); one that has sent nothing at all for this many windows
# (1 s), or for REPLY_STRETCH times what its setup cell took if that is longer
# (a loaded machine, Wine), has stopped answering: hung, without waiting out
# the reply's whole deadline.
QUIET_WINDOWS = 10
# How long a cell that the runner has already judged may take to reply before
# its kernel is given up (a kernel given up is a kernel to start again: about
# 1.5 s here, 3-4 s under Wine; 8 in a default run, one per unsupported cell).
SETTLE_S = 2
# A silent kernel whose threads ran or waited to run for this share of its
# quiet period is at work, not hung (Execution.wait). One that waits on
# nothing uses about 1 ms a second here (its heartbeat and pollers).
BUSY_SHARE = 0.1


def result_line(run, execution, kernel, log_offset=0, quiet_s=None, since=None):
    if execution.is_alive() or execution.error is not None:
        if execution.reply_lost(kernel, log_offset):
            why = ("the kernel went idle without replying to the cell: its log says \"KeyboardInterrupt caught "
                   "in kernel.\" (the interrupt landed in ipykernel's own message handling, after the cell's "
                   "code, and the execute_reply was never sent)")
        elif quiet_s is not None and execution.quiet_for(since) > quiet_s:
            work = ", its threads doing no work," if execution.idle_checked else ""
            why = (f"the kernel stopped answering: nothing on any of its channels{work} for {quiet_s:.1f} s after "
                   "the interrupt (its quiet period), and no reply to the cell")
        else:
            why = f"the kernel did not reply within {execution.timeout_s:.0f} s"
        return {"ev": "result", "hung": True, "reason": why, "kernel_pid": kernel.pid or 0}
    content = execution.reply["content"]
    res = {"ev": "result", "status": content.get("status", "?"), "kernel_pid": kernel.pid or 0}
    if content.get("ename"):
        res["ename"] = content["ename"]
    if run["kind"] == "child":
        res["where"] = "nowhere"
        child = execution.tagged(CHILD_TAG)
        if child:
            how, status, ki = child.split()
            if how == "signaled":
                res["exit_kind"], res["exit_signal"] = "signaled", signal.Signals(int(status)).name
            else:
                res["exit_kind"], res["exit_code"] = "exited", int(status)
            ki = int(ki)
            if ki:
                res["exception"] = "KeyboardInterrupt"
    else:
        res["where"] = execution.tagged(WHERE_TAG) or "nowhere"
        if res["where"] != "nowhere":
            res["exception"] = content.get("ename") or "KeyboardInterrupt"
    if content.get("status") == "error" and res.get("where") == "nowhere" and run["kind"] != "child":
        res["reason"] = f"{content.get('ename')}: {content.get('evalue', '')}"[:200]
    return res


def send(runner, obj):
    """Tells the runner something; a runner that already ended (it had seen
    enough to decide) is not an error: its outcome is on its stdout."""
    try:
        runner.stdin.write((json.dumps(obj) + "\n").encode())
        runner.stdin.flush()
    except (OSError, ValueError):  # POSIX: BrokenPipeError; Windows: EINVAL on a closed pipe
        pass


def settle(pool, kernel, ex, log_offset, verdict, timeout_s):
    """The kernel once its run has a verdict: itself when it can run the next
    cell, else None (given up, counted lost)."""
    if ex.is_alive() and verdict != "hung":
        # The runner can decide before the cell's reply is in (the probe said
        # `unsupported` and returns): the kernel is fine once it replies.
        ex.wait(SETTLE_S, lambda: kernel.reply_lost(log_offset))
    if ex.is_alive() and ex.reply_lost(kernel, log_offset):
        ex.abandon()
        if answers(kernel, timeout_s):
            pool.count("recovered")
            return kernel
        return give_up(pool, kernel)
    if ex.is_alive() or ex.error is not None:
        return give_up(pool, kernel)  # it never went idle: not trusted again
    return kernel


def answers(kernel, timeout_s):
    """Whether the kernel runs a cell and replies ok: a kernel whose reply to a
    run's cell was lost (REPLY_LOST: ipykernel caught the KeyboardInterrupt,
    restored its SIGINT handler and went idle) is used again when it does;
    one left unable to run cells (e.g. aborting every request) is given up."""
    check = Execution(kernel.kc, "pass\n", timeout_s)
    check.finish()
    return check.failure() is None


def give_up(pool, kernel):
    pool.discard(kernel)
    pool.count("lost")
    return None


def one_run(plan, pool, run, sock_dir, n):
    fresh = bool(plan.get("fresh_kernels"))
    mode = run["mode"]
    later = plan["runs"][n + 1:]
    try:
        kernel = pool.get(mode, fresh, spare=fresh and any(r["mode"] == mode for r in later))
    except Exception as e:
        return {"ev": "error-outcome", "id": run["id"], "reason": str(e)}, None
    try:
        if not kernel.prepared:
            t0 = time.monotonic()
            ex = Execution(kernel.kc, setup_cell(plan["pyext_dir"], kernel.stacks_path), plan["kernel_timeout_s"])
            ex.finish()
            if ex.failure():
                pool.discard(kernel)
                return {"ev": "error-outcome", "id": run["id"],
                        "reason": f"the kernel could not import the probe: {ex.failure()}"}, None
            kernel.prepared = True
            kernel.setup_s = time.monotonic() - t0
        # How long this kernel may take to answer a run's cell: the plan's figure, or a generous
        # multiple of what its own setup cell took (import and load the probe), whichever is
        # longer: a kernel slowed by a loaded machine (or Wine) is slow at both, not hung.
        reply_s = max(plan["kernel_timeout_s"], REPLY_STRETCH * kernel.setup_s)
        quiet_s = max(QUIET_WINDOWS * plan["window_ms"] / 1000, REPLY_STRETCH * kernel.setup_s)
        if run.get("fresh_import"):
            if kernel.imported:
                copy = os.path.join(plan["tmp"], "imports", str(n))
                ex = Execution(kernel.kc, FRESH_IMPORT % (plan["pyext_dir"], copy), plan["kernel_timeout_s"])
                ex.finish()
                if ex.failure():
                    return {"ev": "error-outcome", "id": run["id"],
                            "reason": f"the kernel could not take a fresh copy of the probe: {ex.failure()}"}, kernel
            kernel.imported += 1
            if not run.get("same_cell"):
                ex = Execution(kernel.kc, "import sigprobe_pyext_import\n", plan["kernel_timeout_s"])
                ex.finish()
        sock = os.path.join(sock_dir, f"r{n}.sock")
        endpoint = "tcp:127.0.0.1:0" if plan.get("attach") == "tcp" else sock
        # The runner waits for this driver's result at least as long as the driver waits for the cell.
        deadline_ms = max(plan["deadline_ms"], int(reply_s * 1000) + 2000)
        runner = subprocess.Popen([plan["runner"], "--label", run["id"], "--ready-ms", str(plan["ready_ms"]),
                                   "--window-ms", str(plan["window_ms"]), "--deadline-ms", str(deadline_ms),
                                   "--attach", endpoint], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        lines = Lines(runner.stdout.fileno())
        try:
            first = lines.read(10)
            listening = json.loads(first) if first else {}
            if listening.get("ev") != "listening":
                return {"ev": "error-outcome", "id": run["id"], "reason": f"the runner did not listen: {first!r}"}, kernel
            report = listening.get("report", "unix:" + sock)
            code = child_cell(run, report) if run["kind"] == "child" else probe_cell(run, report)
            ex = Execution(kernel.kc, code, reply_s)
            log_offset = kernel.log_size()  # what the kernel logs from here on is this run's
            ex.start()
            sent_result, stacks = False, None
            while True:
                line = lines.read(0.02)
                if line is None and runner.poll() is not None:
                    line = lines.read(2)  # its last lines may still be on their way (a reader thread on Windows)
                    if line is None:
                        return {"ev": "error-outcome", "id": run["id"], "reason": "the runner exited early"}, kernel
                if line is None:
                    if not ex.is_alive() and not sent_result:
                        # The cell ended before the probe got going: say so.
                        send(runner, result_line(run, ex, kernel, log_offset))
                        sent_result = True
                    continue
                msg = json.loads(line)
                if msg.get("ev") == "deliver":
                    delivered_at = time.monotonic()
                    # The runner's window for a handler starts when it hears "delivered". A loop
                    # that lets the kernel's control thread run is told once the interrupt has
                    # reached the process (message mode), or after a quiet period without that;
                    # one that holds the GIL throughout keeps that thread from answering until the
                    # window has ended the loop, so it is told at once.
                    t = kernel.interrupt(quiet_s if run.get("lets_go_of_gil") else 0.0)
                    # SIGINT as Python sees it: on Windows interrupt_kernel() sets the kernel's
                    # JPY_INTERRUPT_EVENT, which ipykernel's poller turns into interrupt_main(SIGINT).
                    send(runner, {"ev": "delivered", "t_ns": t, "sig": "SIGINT", "sender_pid": os.getpid()})
                    ex.wait(reply_s, lambda: kernel.reply_lost(log_offset), quiet_s, delivered_at, kernel.activity_ns)
                    result = result_line(run, ex, kernel, log_offset, quiet_s, delivered_at)
                    if result.get("hung") and not ex.reply_lost(kernel, log_offset):
                        # Hung, and its log does not say why: what it was doing, before it is given up.
                        stacks = kernel.dump_stacks()
                    send(runner, result)
                    sent_result = True
                    continue
                if "verdict" in msg:
                    if os.name != "nt":
                        # When the run ended, on the clock of the kernel's trace (trace.py): what the
                        # driver does afterwards (a kernel's shutdown interrupts it) is not this run's.
                        msg["t_end_ns"] = time.monotonic_ns()
                    if msg["verdict"] in ("hung", "error"):
                        tail = kernel.log_tail()
                        if tail.strip():
                            msg["kernel_log"] = tail
                    if msg["verdict"] == "hung" and stacks:
                        msg["kernel_stacks"] = stacks
                    return msg, settle(pool, kernel, ex, log_offset, msg["verdict"], plan["kernel_timeout_s"])
        finally:
            try:
                runner.stdin.close()
            except OSError:
                pass
            try:
                runner.wait(10)
            except subprocess.TimeoutExpired:
                runner.kill()
                runner.wait()
            if os.path.exists(os.path.join(sock_dir, f"r{n}.sock")):
                os.unlink(os.path.join(sock_dir, f"r{n}.sock"))
    except BaseException:
        pool.discard(kernel)
        raise


FINISHED = threading.Event()
LIFELINE_GRACE_S = 60


class Feed:
    """The plan's runs. An open plan's parent adds runs ({"runs": [...]}
    lines on stdin, read by the lifeline) until it says {"end": true}: the
    kernels of a lane stay up for the runs its parent finds it needs once
    the first ones are in (the flaky cells' extra runs)."""

    WAIT_S = 0.5  # a wait in slices: a stop (SIGTERM, interrupt_main) is seen between them

    def __init__(self, plan):
        self.runs, self.open = plan["runs"], bool(plan.get("open"))
        self.cond = threading.Condition()

    def take(self, line):
        try:
            msg = json.loads(line)
        except ValueError:
            print(f"kernel_driver: not a JSON line on stdin: {line[:120]!r}", file=sys.stderr, flush=True)
            return
        with self.cond:
            self.runs.extend(msg.get("runs", []))
            if msg.get("end"):
                self.open = False
            self.cond.notify_all()

    def has(self, n):
        """Whether there is a run n, waiting for one while the plan is open."""
        with self.cond:
            while n >= len(self.runs) and self.open:
                self.cond.wait(self.WAIT_S)
            return n < len(self.runs)


# Reading stdin has no deadline: the parent says when it is done (EOF).
STDIN_WAIT_S = 3600


def lifeline(pool, temporaries, feed=None, stdin=None):
    """Stdin EOF before the last run: the parent is gone or wants us to stop.
    The main thread is told (it shuts the kernels down and removes the
    directories once they are reaped); should it not finish in time, this
    thread does the same and ends the process. The lines before it go to
    feed. stdin: the Lines the plan was read from, else a new one on fd 0
    (raw reads: a daemon thread must not hold a buffered reader's lock when
    the interpreter shuts down)."""
    stdin = stdin or Lines(0)
    try:
        while True:
            line = stdin.read(STDIN_WAIT_S)
            if line is None and stdin.eof:
                break
            if line and line.strip() and feed is not None:
                feed.take(line)
    except OSError:
        pass
    if FINISHED.is_set():
        return
    with pool.lock:
        pool.closed = True  # no kernel starts from now on
    if hasattr(signal, "pthread_kill"):
        signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)
    else:
        import _thread
        _thread.interrupt_main()
    if FINISHED.wait(LIFELINE_GRACE_S):
        return
    pool.shutdown_all()
    for d in temporaries:
        shutil.rmtree(d, ignore_errors=True)
    os._exit(3)


def main():
    stdin = Lines(0)  # the plan's line, then the lifeline's (Feed)
    plan = json.loads(stdin.read(STDIN_WAIT_S) or "")
    # The parent names the directories (it removes them too, after this
    # process ended); alone, this script makes its own.
    tmp = plan.get("tmp") or tempfile.mkdtemp(prefix="sigprobe-jupyter-")
    plan["tmp"] = tmp
    isolate(tmp)
    try:
        from jupyter_client.kernelspec import KernelSpecManager
    except ImportError as e:
        emit({"ev": "versions", **versions(), "missing": str(e)})
        shutil.rmtree(tmp, ignore_errors=True)
        return 0
    emit({"ev": "versions", **versions()})
    ksm = KernelSpecManager(kernel_dirs=[os.path.join(tmp, "kernels")])
    # Starting a kernel may take longer than answering a cell (under Wine, loaded, well over 8 s).
    pool = Pool(ksm, plan.get("kernel_start_timeout_s", plan["kernel_timeout_s"]), tmp)
    # Short, for Unix socket paths are limited (about 108 bytes); only this user can enter it.
    sock_dir = plan.get("sock_dir") or tempfile.mkdtemp(prefix="spj", dir=None if os.name == "nt" else "/tmp")
    feed = Feed(plan)
    threading.Thread(target=lifeline, args=(pool, [tmp, sock_dir], feed, stdin), daemon=True).start()

    def each(n):
        run = plan["runs"][n]
        out, kernel = one_run(plan, pool, run, sock_dir, n)
        if kernel is not None:
            if plan.get("fresh_kernels"):
                pool.discard(kernel)
            else:
                pool.give_back(kernel)
        elif any(r["mode"] == run["mode"] for r in plan["runs"][n + 1:]):
            # Its kernel was given up (hung): the next one of this mode starts
            # now, while the other mode's runs go on (the plan alternates them).
            pool.prestart(run["mode"])
        return out

    return serve(plan, pool, each, [tmp, sock_dir], feed)


def serve(plan, pool, each, temporaries, feed=None):
    """The driver's loop, shared with check_driver.py: the first kernel of
    every mode starts at once; each(n) runs plan["runs"][n] and returns its
    line, for every run the plan has (feed: and is given until its end);
    SIGTERM (the lifeline) or the end shuts every kernel down and reaps it
    before the directories go, then the kernels' counts."""
    def stop(signo, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        for mode in dict.fromkeys(r["mode"] for r in plan["runs"]):
            pool.prestart(mode)  # the first kernel of each mode starts now, beside the others
        n = 0
        while n < len(plan["runs"]) or (feed is not None and feed.has(n)):
            emit(each(n))
            n += 1
    except KeyboardInterrupt:
        pass
    finally:
        # The lifeline's stop must not cut the clean-up short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        pool.shutdown_all()
        for d in temporaries:
            shutil.rmtree(d, ignore_errors=True)
        FINISHED.set()
        try:
            emit({"ev": "kernels", **pool.stats, "resent": Execution.resent})
        except (BrokenPipeError, ValueError):
            pass  # the parent is gone
    return 0


if __name__ == "__main__":
    sys.exit(main())
