"""The Python and Jupyter cells: the extension probe inside a plain
interpreter (python-tty, python-no-tty, python-background: run by the C
runner with --exec) and inside real kernels (jupyter, jupyter-message,
jupyter-child: run by kernel_driver.py under the interpreter measured)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from .. import bootstrap, runlog, scratch
from ..catalog import Cell
from ..errors import BadInput, BuildFailed
from .native import Stopped, error_outcome, parse_outcome, run_runner, scaled_env, terminate_runners

REMOTE = Path(__file__).resolve().parents[1] / "remote"  # the scripts run inside the interpreter measured

# Every strategy of the extension probe (its STRATEGIES) also runs with the
# GIL released around the loop's wait; in kernels the import-time handler is
# also measured with import and call in one cell.
VARIANTS = ("", "+nogil")
SAME_CELL = "+same-cell"


def py_strategies(base: list[str]) -> list[str]:
    return [s + v for s in base for v in VARIANTS]


def kernel_strategies(base: list[str]) -> list[str]:
    return py_strategies(base) + [s + SAME_CELL + v for s in base if s == "c-handler-import" for v in VARIANTS]


# python-* host -> (the native host the runner uses, deliveries)
PYTHON_HOSTS = {
    "python-tty": ("tty", ["tty-intr"]),
    "python-no-tty": ("no-tty", ["kill", "killpg"]),
    "python-background": ("background", ["kill"]),
}
JUPYTER_HOSTS = {"jupyter": "signal", "jupyter-message": "message", "jupyter-child": "signal"}
# Windows: real kernels only. Signal mode is jupyter_client's SetEvent on the
# inherited JPY_INTERRUPT_EVENT (interrupt_kernel() on win32); message mode is
# ipykernel's no-op that still replies ok. jupyter-child (os.waitid) and the
# python-* hosts (ptys, process groups) are POSIX.
WINDOWS_JUPYTER_HOSTS = ("jupyter", "jupyter-message")
WINDOWS_PLATFORMS = ("windows", "windows-wine")

PY_LOOP_MS = 10000  # the runner's stop ends a quiet loop long before this
# A kernel's start is not measured: it may take long on a loaded machine or
# under Wine (3-4 s idle there, well over 10 s loaded) without being wrong.
KERNEL_START_S = 60


def python_cells(platform: str, pyext_strategies: list[str], native_strategies: list[str]) -> list[Cell]:
    """The Python and Jupyter cells of platform: the extension probe's
    strategies (pyext_strategies, its STRATEGIES) under each Python host, and
    the native probes' (native_strategies, from the runner's --list) started
    from a kernel cell."""
    kernel = kernel_strategies(pyext_strategies)
    if platform in WINDOWS_PLATFORMS:
        return [Cell(f"{platform}/{host}/{s}/kernel-interrupt", platform, host, s, "kernel-interrupt", kind="jupyter")
                for host in WINDOWS_JUPYTER_HOSTS for s in kernel]
    cells = []
    for host, (_, deliveries) in PYTHON_HOSTS.items():
        for s in py_strategies(pyext_strategies):
            for d in deliveries:
                cells.append(Cell(f"{platform}/{host}/{s}/{d}", platform, host, s, d, kind="python"))
    for host in JUPYTER_HOSTS:
        for s in (native_strategies if host == "jupyter-child" else kernel):
            cells.append(Cell(f"{platform}/{host}/{s}/kernel-interrupt", platform, host, s, "kernel-interrupt",
                              kind="jupyter"))
    return cells


def split_strategy(s: str) -> tuple[str, bool, bool]:
    """'c-handler-import+same-cell+nogil' -> ('c-handler-import', nogil, same_cell)."""
    parts = s.split("+")
    return parts[0], "nogil" in parts[1:], "same-cell" in parts[1:]


# ---- the interpreter and its extension build --------------------------------

class Interpreter:
    """An interpreter the cells run under: its path, its facts (versions of
    python, ipykernel, jupyter_client, pyzmq; None when missing) and the
    extension probe built for it, given as a path or as the function that
    builds it on first use: runs that need none (kernel cells of an
    interpreter without Jupyter) never wait for a build."""

    def __init__(self, python: str, pyext, facts: dict):
        self.python, self.facts = python, facts
        self._pyext = pyext
        self._lock = threading.Lock()

    @property
    def pyext_dir(self) -> Path:
        with self._lock:
            if callable(self._pyext):
                self._pyext = self._pyext()
            return self._pyext

    @property
    def has_jupyter(self) -> bool:
        return bool(self.facts.get("ipykernel") and self.facts.get("jupyter_client"))


FACTS = ("import json, sys\nout = {'python': sys.version.split()[0], 'python_executable': sys.executable}\n"
         "for mod, key in (('ipykernel', 'ipykernel'), ('jupyter_client', 'jupyter_client'), ('zmq', 'pyzmq')):\n"
         "    try:\n        out[key] = __import__(mod).__version__\n"
         "    except Exception:\n        out[key] = None\n"
         "print(json.dumps(out))\n")


def interpreter(python: str | None, build_dir: Path) -> Interpreter:
    """The interpreter the Python and Jupyter cells run under (default: this
    one), with the extension probe built for exactly it."""
    exe = python or sys.executable
    if not os.path.isfile(exe) or not os.access(exe, os.X_OK):
        raise BadInput(f"--python {exe}: not an executable file")
    r = subprocess.run([exe, "-c", FACTS], capture_output=True, text=True)
    if r.returncode != 0:
        raise BadInput(f"--python {exe}: could not run it: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
    facts = json.loads(r.stdout)
    return Interpreter(exe, lambda: pyext_for(exe, build_dir), facts)


def pyext_tree(python: str) -> Path:
    """The build tree of the extension probe for another interpreter."""
    tag = hashlib.sha256(os.path.realpath(python).encode() + python.encode()).hexdigest()[:10]
    return bootstrap.DEFAULT_BUILD / f"pyext-{tag}"


def pyext_for(python: str, build_dir: Path) -> Path:
    """The extension probe for this very interpreter: the one beside the runner
    (built for the interpreter sigprobe runs under), else built in its own
    tree from the checkout."""
    if os.path.samefile(python, sys.executable) and (build_dir / "pyext").is_dir():
        return build_dir / "pyext"
    root = bootstrap.checkout(f"--python {python} (building the extension probe for another interpreter)")
    tree = pyext_tree(python)
    cache = tree / "CMakeCache.txt"
    if not cache.exists():
        r = subprocess.run(["cmake", "-S", str(root / "probes" / "pyext"), "-B", str(tree),
                            f"-DPython3_EXECUTABLE={python}"], capture_output=True, text=True)
        if r.returncode != 0:
            hint = ""
            if "Development" in r.stdout + r.stderr or "Python.h" in r.stdout + r.stderr:
                hint = " (the interpreter's development headers are missing: on Debian, apt-get install python3-dev)"
            raise BuildFailed(f"cannot build the extension probe for {python}{hint}:\n{(r.stdout + r.stderr)[-2000:]}")
    r = subprocess.run(["cmake", "--build", str(tree), "-j", str(os.cpu_count() or 2)], capture_output=True, text=True)
    if r.returncode != 0:
        raise BuildFailed(f"building the extension probe for {python} failed:\n{(r.stdout + r.stderr)[-2000:]}")
    return tree / "pyext"


def jupyter_missing_reason(interp: Interpreter) -> str:
    if interp.python.startswith("/usr/bin/"):
        cmd = "apt-get install -y python3-ipykernel python3-jupyter-client"
    else:
        cmd = f"{interp.python} -m pip install ipykernel jupyter_client"
    return f"ipykernel/jupyter_client are not installed for {interp.python}; install them with: {cmd}"


# ---- running ---------------------------------------------------------------

def run_python_cell(runner: Path, interp: Interpreter, cell: Cell, window_scale: float) -> dict:
    native_host, _ = PYTHON_HOSTS[cell.host]
    strategy, nogil, _ = split_strategy(cell.strategy)
    args = [str(runner), "--host", native_host, "--delivery", cell.delivery, "--label", cell.id,
            "--exec", interp.python, str(REMOTE / "pydriver.py"), str(interp.pyext_dir), strategy,
            "1" if nogil else "0", str(PY_LOOP_MS)]
    try:
        r = run_runner(args, scaled_env(window_scale), 60 * max(1.0, window_scale))
    except subprocess.TimeoutExpired:
        return error_outcome(cell, "the runner itself did not finish (harness bug)")
    except Stopped:
        return error_outcome(cell, "not run: sigprobe was interrupted")
    return parse_outcome(cell, r)


def grouped(runs: list, key) -> dict:
    """key(cell) -> that group's runs, in order."""
    groups: dict = {}
    for r in runs:
        groups.setdefault(key(r[0]), []).append(r)
    return groups


def alternate(runs: list, key) -> list:
    """runs taken in turn from each key(cell)'s group, each group's order kept:
    [a1, a2, b1] -> [a1, b1, a2]."""
    groups = grouped(runs, key)
    out = []
    for i in range(max((len(g) for g in groups.values()), default=0)):
        out += [g[i] for g in groups.values() if i < len(g)]
    return out


class JupyterSession:
    """One kernel_driver.py process for all the kernel runs of an invocation.
    Under Wine (wine.run_kernel_cells) the driver is the Windows Python's:
    `launch` prefixes the command, `path` turns a path into the driver's
    view of it, `env` is the Wine prefix's, and `attach` the runner's
    endpoint kind ("tcp": Wine has no AF_UNIX). The driver's stderr is
    relayed through a pipe: the Windows CPython under Wine cannot start with
    a regular file as stderr (init_sys_streams: WinError 6), as when
    sigprobe's own stderr goes to a log."""

    def __init__(self, runner: Path, interp: Interpreter, build_dir: Path, window_scale: float,
                 fresh_kernels: bool = False, launch: list[str] | None = None, path=str, env: dict | None = None,
                 attach: str = "unix"):
        self.runner, self.interp, self.build_dir = runner, interp, build_dir
        self.window_scale, self.fresh = window_scale, fresh_kernels
        self.launch, self.path, self.env, self.attach = launch or [interp.python], path, env, attach
        self.proc: subprocess.Popen | None = None
        self.temporaries: list[Path] = []
        # close() may come from another thread before run() has started the driver: it then never starts.
        self._starting, self.closed = threading.Lock(), False
        # The runs whose outcomes are still to come, in the driver's order; open: add() may give more.
        self.queue: list[tuple[Cell, int]] = []
        self.open = False

    def items(self, runs: list[tuple[Cell, int]]) -> list[dict]:
        """The runs as the driver's plan names them."""
        items = []
        for cell, i in runs:
            item = {"id": cell.id, "mode": JUPYTER_HOSTS[cell.host], "loop_ms": PY_LOOP_MS}
            if cell.host == "jupyter-child":
                item.update(kind="child", probe=str(self.build_dir / "probes" / f"sigprobe-probe-{cell.strategy}"))
            else:
                strategy, nogil, same_cell = split_strategy(cell.strategy)
                # An import-time handler is installed by a first import: a fresh copy of the
                # module each run (kernel_driver.FRESH_IMPORT), imported in a cell of its own
                # before the call's, or in the call's (+same-cell).
                # lets_go_of_gil: the loop lets other threads (the kernel's control thread) run:
                # +nogil, or the header's check, which lets go of the GIL every millisecond
                # (probes/pyext/run.c); every other loop holds it until it ends.
                item.update(kind="pyext", pyext_strategy=strategy, nogil=nogil, same_cell=same_cell,
                            fresh_import=strategy == "c-handler-import",
                            lets_go_of_gil=nogil or strategy == "recommended")
            items.append(item)
        return items

    def plan(self, runs: list[tuple[Cell, int]]) -> dict:
        scale = self.window_scale
        return {"runner": self.path(self.runner), "pyext_dir": self.path(self.interp.pyext_dir),
                "runs": self.items(runs),
                "ready_ms": int(8000 * scale), "window_ms": int(100 * scale), "deadline_ms": int(10000 * scale),
                "kernel_timeout_s": 8 * scale, "kernel_start_timeout_s": KERNEL_START_S * scale,
                "fresh_kernels": self.fresh, "attach": self.attach}

    def run(self, runs: list[tuple[Cell, int]], on_outcome, stay_open: bool = False) -> dict:
        """Runs every (cell, repeat), the interrupt modes' runs alternating (a
        kernel given up is replaced in the background while the other mode's
        runs go on); calls on_outcome(cell, outcome). stay_open: the driver and its
        kernels stay up for the runs add() gives, until end(). Returns the
        versions."""
        runs = alternate(runs, lambda cell: JUPYTER_HOSTS[cell.host])
        plan = self.plan(runs)
        plan["open"] = stay_open
        versions: dict = {}
        failed: Exception | None = None
        try:
            with self._starting:
                if self.closed:
                    return {}
                self.queue, self.open = list(runs), stay_open
                # The driver's directories are made here, named for this process, so
                # that they are removed after the driver and its kernels are gone, and
                # what a killed run left is recognised by the next (scratch.py).
                self.temporaries = [scratch.make_dir("sigprobe-jupyter-")]
                plan["tmp"] = self.path(self.temporaries[0])
                if self.attach != "tcp":
                    self.temporaries.append(scratch.make_dir("spj", scratch.socket_base()))
                    plan["sock_dir"] = self.path(self.temporaries[1])
                proc = self.proc = subprocess.Popen([*self.launch, self.path(REMOTE / "kernel_driver.py")],
                                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                                    stderr=subprocess.PIPE, text=True, start_new_session=True,
                                                    env=self.env)
                runlog.relay(proc.stderr)
                proc.stdin.write(json.dumps(plan) + "\n")
                proc.stdin.flush()  # stdin stays open: the driver's lifeline
            for line in proc.stdout:
                msg = json.loads(line)
                if msg.get("ev") == "versions":
                    versions.update({k: v for k, v in msg.items() if k != "ev"})
                    continue
                if msg.get("ev") == "kernels":
                    versions["kernels"] = {k: v for k, v in msg.items() if k != "ev"}
                    continue
                with self._starting:
                    cell, _ = self.queue.pop(0)
                if msg.get("ev") == "error-outcome":
                    msg = error_outcome(cell, msg["reason"])
                on_outcome(cell, msg)
        except Exception as e:  # the driver could not be started or talked to: its runs say so, then this
            failed = e
        finally:
            self.close()
        with self._starting:
            left, self.queue = self.queue, []
        for cell, _ in left:  # the driver ended early, or never started
            on_outcome(cell, error_outcome(cell, f"the Jupyter driver failed: {failed}" if failed
                                           else "the Jupyter driver ended before this run"))
        if failed:
            raise failed
        return versions

    def add(self, runs: list[tuple[Cell, int]]) -> bool:
        """More runs for an open session's driver, after those it has; False
        (and nothing given) when it cannot take them: not open, ended, or gone."""
        with self._starting:
            if not self.open or self.closed or self.proc is None:
                return False
            try:
                self.proc.stdin.write(json.dumps({"runs": self.items(runs)}) + "\n")
                self.proc.stdin.flush()
            except (OSError, ValueError):
                return False
            self.queue.extend(runs)
            return True

    def end(self) -> None:
        """No more runs for an open session: its driver ends once its runs are done."""
        with self._starting:
            if not self.open or self.closed or self.proc is None:
                return
            self.open = False
            try:
                self.proc.stdin.write(json.dumps({"end": True}) + "\n")
                self.proc.stdin.flush()
            except (OSError, ValueError):
                pass  # gone: run() reports what it did not run

    def close(self) -> None:
        with self._starting:
            self.closed = True
            p, temporaries = self.proc, self.temporaries
            self.proc, self.temporaries = None, []
        if p is not None:
            try:
                p.stdin.close()  # the lifeline: the driver shuts its kernels down
            except OSError:
                pass
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                if hasattr(os, "killpg"):
                    os.killpg(p.pid, 9)
                else:
                    p.kill()  # Windows: the driver's kernels die with their parent handle (JPY_PARENT_PID)
                p.wait()
        for d in temporaries:  # also when the driver never started
            shutil.rmtree(d, ignore_errors=True)


def unsupported_outcome(cell: Cell, reason: str) -> dict:
    o = error_outcome(cell, reason)
    o["verdict"] = "unsupported"
    return o


def run_all(runner: Path, interp: Interpreter, build_dir: Path, runs: list[tuple[Cell, int]], window_scale: float,
            jobs: int, on_outcome, fresh_kernels: bool = False, more=None) -> dict:
    """Runs the kernel runs in their lanes (kernel_lanes) and, beside them,
    the python-* runs in a thread pool, python_workers at once while lanes
    run and `jobs` once they have ended. more(cell ids) -> runs: once every
    kernel run is in, the extra runs those cells need (the flaky ones') go
    to those lanes, whose drivers and kernels are still up (open sessions),
    each lane of them to a lane of its interrupt mode, and to lanes of their
    own where there are more of them than such lanes, while the python-*
    runs go on. Returns the facts for the results' `machine`."""
    from concurrent.futures import ThreadPoolExecutor

    py_runs = [(c, i) for c, i in runs if c.kind == "python"]
    k_runs = [(c, i) for c, i in runs if c.kind == "jupyter"]
    if py_runs or (k_runs and interp.has_jupyter):
        _ = interp.pyext_dir  # built here, before any run: a failed build is one error, not one per thread
    versions = dict(interp.facts)
    lock = threading.Lock()

    def report(cell, outcome):
        with lock:
            on_outcome(cell, outcome)

    sessions, threads = [], []
    slots = Slots(jobs)
    lanes = {"left": 0, "asked": more is None, "closed": False}
    # The open lanes (the first ones, when more may give runs): their interrupt modes, and how many of
    # their runs are still to be reported.
    open_modes: dict = {}
    owed: dict = {}

    def start_lanes(lane_runs_list, stay_open=False):
        """Under lock: a lane thread (its own driver and kernels) for each list of runs."""
        for lane_runs in lane_runs_list:
            session = JupyterSession(runner, interp, build_dir, window_scale, fresh_kernels)
            if stay_open:
                open_modes[session] = {JUPYTER_HOSTS[c.host] for c, _ in lane_runs}
                owed[session] = len(lane_runs)
            sessions.append(session)
            threads.append(threading.Thread(target=lane, args=(session, lane_runs, stay_open), daemon=True))
            lanes["left"] += 1
            threads[-1].start()
        slots.resize(python_workers(jobs, lanes["left"] > 0))

    def lane(session, lane_runs, stay_open):
        def counted(cell, outcome):
            report(cell, outcome)
            with lock:
                owed[session] -= 1
            maybe_more()

        try:
            facts = session.run(lane_runs, counted if stay_open else report, stay_open=stay_open)
            with lock:
                merge_facts(versions, facts)
        except Exception:
            pass  # the session has reported each run it did not run as an error, saying why
        finally:
            with lock:
                lanes["left"] -= 1
                slots.resize(python_workers(jobs, lanes["left"] > 0))
                if stay_open:
                    owed[session] = 0  # it reports nothing more, however it ended
            maybe_more()

    def maybe_more():
        """give_more, once, when every open lane's runs are in (or it ended)."""
        with lock:
            due = not lanes["asked"] and all(n <= 0 for n in owed.values())
            lanes["asked"] = lanes["asked"] or due
        if due:
            give_more()

    def give_more():
        """The extra runs, each lane of them (kernel_lanes) to an open lane
        of its modes that takes it, the others in lanes of their own; then
        the open lanes are told that no more come."""
        try:
            extra = [] if lanes["closed"] else more({c.id for c, _ in k_runs})
            takers = list(open_modes.items())
            own = []
            for lane_runs in kernel_lanes(extra, jobs) if extra else []:
                modes = {JUPYTER_HOSTS[c.host] for c, _ in lane_runs}
                taker = next((t for t in takers if modes <= t[1] and t[0].add(lane_runs)), None)
                if taker is None:
                    own.append(lane_runs)
                else:
                    takers.remove(taker)
            with lock:
                if not lanes["closed"]:
                    start_lanes(own)
        finally:
            for session in open_modes:
                session.end()

    if k_runs:
        if not interp.has_jupyter:
            for c, _ in k_runs:
                report(c, unsupported_outcome(c, jupyter_missing_reason(interp)))
        else:
            with lock:
                start_lanes(kernel_lanes(k_runs, jobs), stay_open=more is not None)

    def python_run(r):
        with slots:
            return run_python_cell(runner, interp, r[0], window_scale)

    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            try:
                for (c, _), out in zip(py_runs, pool.map(python_run, py_runs)):
                    report(c, out)
            except BaseException:
                # Interrupted: end the running runners now rather than wait for their cells.
                terminate_runners()
                raise
        k = 0
        while k < len(threads):  # the extra runs may start lanes of their own while these run
            threads[k].join()
            k += 1
    finally:
        with lock:
            lanes["closed"] = True  # no lane starts from here on
        for session in sessions:
            session.close()
    return versions


def run_side_by_side(sessions: list, lanes: list[list], on_outcome) -> dict:
    """Each lane of runs in its own session (JupyterSession.run), all at once,
    each in a thread; on_outcome is called under one lock. Returns the
    sessions' facts merged; an exception in a lane is raised once every lane
    has ended."""
    lock, facts, errors = threading.Lock(), {}, []

    def report(cell, outcome):
        with lock:
            on_outcome(cell, outcome)

    def lane(session, runs):
        try:
            got = session.run(runs, report)
            with lock:
                merge_facts(facts, got)
        except BaseException as e:  # raised below, in the caller's thread
            errors.append(e)

    threads = [threading.Thread(target=lane, args=pair, daemon=True) for pair in zip(sessions, lanes)]
    for t in threads:
        t.start()
    try:
        for t in threads:
            t.join()
    except BaseException:
        for session in sessions:
            session.close()  # interrupted: each driver ends its kernels now
        raise
    if errors:
        raise errors[0]
    return facts


class Slots:
    """At most n at once (`with slots:`), n changed at any time (resize):
    the python-* runs get a job back when the kernel lanes beside them end."""

    def __init__(self, n: int):
        self.n, self.used, self.cond = n, 0, threading.Condition()

    def resize(self, n: int) -> None:
        with self.cond:
            self.n = n
            self.cond.notify_all()

    def __enter__(self):
        with self.cond:
            self.cond.wait_for(lambda: self.used < self.n)
            self.used += 1

    def __exit__(self, *exc):
        with self.cond:
            self.used -= 1
            self.cond.notify_all()


def python_workers(jobs: int, kernel_lanes_running: bool) -> int:
    """How many python-* runs go at once: `jobs`, less one for the kernel
    lanes while they run. Their kernels, drivers and runs use the cores as
    much as one python-* run stream does; with `jobs` runs beside them the
    cores were oversubscribed, and the default -j 2 was slower than -j 1 (5
    alternating rounds of the default matrix at --repeat 1, load 2-4:
    medians 19.2 s with 2 workers, 17.4 s with 1; 15 % more CPU with 2)."""
    return max(1, jobs - 1 if kernel_lanes_running else jobs)


# A lane of its own costs a kernel's start (0.4 s of CPU here, 2.5-3 s on a
# slower machine): a mode's runs are split only into lanes of at least this
# many runs (0.1-1 s each).
MIN_LANE_RUNS = 12
# Up to this many lanes a job: a kernel run mostly waits (message mode's for
# the runner's window and the kernel's quiet period), so the cores hold more
# than one lane each, beside the python-* runs' one worker. The default matrix
# at -j 2: 3 lanes a job for the flaky cells' extra runs took 0.1-2.0 s less
# than 2 in every one of 7 alternating pairs; with those runs known from the
# start (Checkpoint.expect_flaky) and 3 lanes a job from the start, 10.0-11.9 s
# against 13.5-15.2 s in 5 alternating pairs (6 kernels started, not 8).
LANES_PER_JOB = 3


def kernel_lanes(runs: list, jobs: int) -> list[list]:
    """The kernel runs split into lanes, one driver (and its kernels) each:
    one lane per interrupt mode when -j allows two or more (a mode's kernels
    serve only that mode's runs), else one lane in which the modes alternate.
    At -j 2 or more, up to LANES_PER_JOB lanes a job: the mode with the most
    runs a lane gets one more lane, while each lane keeps MIN_LANE_RUNS. A
    mode's runs are dealt to its lanes cell by cell, so that each cell's runs
    are spread over its mode's kernels, each lane's in round order."""
    by_mode = grouped(runs, lambda cell: JUPYTER_HOSTS[cell.host])
    if jobs < len(by_mode):
        return [runs]
    ways = {mode: 1 for mode in by_mode}
    while jobs > 1 and sum(ways.values()) < LANES_PER_JOB * jobs:
        mode = max(ways, key=lambda m: len(by_mode[m]) / ways[m])
        if len(by_mode[mode]) // (ways[mode] + 1) < MIN_LANE_RUNS:
            break
        ways[mode] += 1
    dealt = {mode: sorted(by_mode[mode], key=lambda r: r[0].id) for mode, n in ways.items() if n > 1}
    return [sorted(dealt[mode][k::n], key=lambda r: r[1]) if n > 1 else by_mode[mode]
            for mode, n in ways.items() for k in range(n)]


def merge_facts(into: dict, facts: dict) -> None:
    """A lane's or a round's facts into the run's: the same interpreter's
    versions, the kernel counts added up."""
    facts = dict(facts)
    kernels = facts.pop("kernels", None)
    into.update(facts)
    if kernels:
        into["kernels"] = {k: into.get("kernels", {}).get(k, 0) + n for k, n in kernels.items()}
