"""The Python and Jupyter cells: the extension probe inside a plain
interpreter (python-tty, python-no-tty, python-background: run by the C
runner with --exec) and inside real kernels (jupyter, jupyter-message,
jupyter-child: run by jupyter_driver.py under the interpreter measured)."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from . import bootstrap
from .cells import Cell
from .errors import BadInput, BuildFailed
from .native import Stopped, error_outcome, parse_outcome, run_runner, scaled_env, terminate_runners

HERE = Path(__file__).resolve().parent

PY_BASE_STRATEGIES = ["c-handler-import", "c-handler-per-call", "check-signals", "recommended", "self-pipe",
                      "signalfd-thread", "event-thread", "console-ctrl", "none"]
# Every strategy also with the GIL released around the loop's wait.
PY_STRATEGIES = [s + v for s in PY_BASE_STRATEGIES for v in ("", "+nogil")]
# In kernels the import-time handler is also measured with import and call in one cell.
KERNEL_STRATEGIES = PY_STRATEGIES + ["c-handler-import+same-cell", "c-handler-import+same-cell+nogil"]
NATIVE_STRATEGIES = ["none", "signal", "sigaction", "sigwait-thread", "self-pipe", "signalfd", "all"]

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


def python_cells(platform: str) -> list[Cell]:
    if platform in WINDOWS_PLATFORMS:
        return [Cell(f"{platform}/{host}/{s}/kernel-interrupt", platform, host, s, "kernel-interrupt", kind="jupyter")
                for host in WINDOWS_JUPYTER_HOSTS for s in KERNEL_STRATEGIES]
    cells = []
    for host, (_, deliveries) in PYTHON_HOSTS.items():
        for s in PY_STRATEGIES:
            for d in deliveries:
                cells.append(Cell(f"{platform}/{host}/{s}/{d}", platform, host, s, d, kind="python"))
    for host in JUPYTER_HOSTS:
        for s in (NATIVE_STRATEGIES if host == "jupyter-child" else KERNEL_STRATEGIES):
            cells.append(Cell(f"{platform}/{host}/{s}/kernel-interrupt", platform, host, s, "kernel-interrupt",
                              kind="jupyter"))
    return cells


def split_strategy(s: str) -> tuple[str, bool, bool]:
    """'c-handler-import+same-cell+nogil' -> ('c-handler-import', nogil, same_cell)."""
    parts = s.split("+")
    return parts[0], "nogil" in parts[1:], "same-cell" in parts[1:]


# ---- the interpreter and its extension build --------------------------------

@dataclass
class Interpreter:
    python: str
    pyext_dir: Path
    facts: dict  # versions of python, ipykernel, jupyter_client, pyzmq (None when missing)

    @property
    def has_jupyter(self) -> bool:
        return bool(self.facts.get("ipykernel") and self.facts.get("jupyter_client"))


FACTS = ("import json, sys\nout = {'python': sys.version.split()[0], 'python_executable': sys.executable}\n"
         "for mod, key in (('ipykernel', 'ipykernel'), ('jupyter_client', 'jupyter_client'), ('zmq', 'pyzmq')):\n"
         "    try:\n        out[key] = __import__(mod).__version__\n"
         "    except Exception:\n        out[key] = None\n"
         "print(json.dumps(out))\n")


def interpreter(python: str | None, build_dir: Path) -> Interpreter:
    """The interpreter the Python and Jupyter cells run under (default: the
    project's venv), with the extension probe built for exactly it."""
    exe = python or str(bootstrap.venv_python() if bootstrap.venv_python().exists() else sys.executable)
    if not os.path.isfile(exe) or not os.access(exe, os.X_OK):
        raise BadInput(f"--python {exe}: not an executable file")
    r = subprocess.run([exe, "-c", FACTS], capture_output=True, text=True)
    if r.returncode != 0:
        raise BadInput(f"--python {exe}: could not run it: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
    facts = json.loads(r.stdout)
    return Interpreter(exe, build_pyext(exe, build_dir), facts)


def build_pyext(python: str, build_dir: Path) -> Path:
    """Builds the extension probe for this very interpreter (its own build tree;
    the main build already holds the one for the project's venv)."""
    venv = bootstrap.venv_python()
    if venv.exists() and os.path.samefile(python, venv) and (build_dir / "pyext").is_dir():
        return build_dir / "pyext"
    tag = hashlib.sha256(os.path.realpath(python).encode() + python.encode()).hexdigest()[:10]
    tree = build_dir / f"pyext-{tag}"
    cache = tree / "CMakeCache.txt"
    if not cache.exists():
        r = subprocess.run(["cmake", "-S", str(bootstrap.ROOT / "probes" / "pyext"), "-B", str(tree),
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
            "--exec", interp.python, str(HERE / "pydriver.py"), str(interp.pyext_dir), strategy,
            "1" if nogil else "0", str(PY_LOOP_MS)]
    try:
        r = run_runner(args, scaled_env(window_scale), 60 * max(1.0, window_scale))
    except subprocess.TimeoutExpired:
        return error_outcome(cell, "the runner itself did not finish (harness bug)")
    except Stopped:
        return error_outcome(cell, "not run: sigprobe was interrupted")
    return parse_outcome(cell, r)


def spread_fresh(runs: list, fresh) -> list:
    """runs with those for which fresh(cell) is true placed evenly among the
    others (order otherwise kept)."""
    f = [r for r in runs if fresh(r[0])]
    rest = [r for r in runs if not fresh(r[0])]
    if not f or not rest:
        return list(runs)
    out, step = [], len(rest) / len(f)
    for i, r in enumerate(f):
        out += rest[round(i * step):round((i + 1) * step)] + [r]
    return out


class JupyterSession:
    """One jupyter_driver.py process for all the kernel runs of an invocation.
    Under Wine (wine.run_kernel_cells) the driver is the Windows Python's:
    `launch` prefixes the command, `path` turns a path into the driver's
    view of it, `env` is the Wine prefix's, and `attach` the runner's
    endpoint kind ("tcp": Wine has no AF_UNIX). The driver's stderr is
    relayed through a pipe: the Windows CPython under Wine cannot start with
    a regular file as stderr (init_sys_streams: WinError 6), as when
    sigprobe's own stderr goes to a log."""

    def __init__(self, runner: Path, interp: Interpreter, build_dir: Path, window_scale: float,
                 fresh_kernels: bool = False, launch: list[str] | None = None, path=str, env: dict | None = None,
                 attach: str = "unix", kernel_start_s: float = 8):
        self.runner, self.interp, self.build_dir = runner, interp, build_dir
        self.window_scale, self.fresh = window_scale, fresh_kernels
        self.launch, self.path, self.env, self.attach = launch or [interp.python], path, env, attach
        self.kernel_start_s = kernel_start_s
        self.proc: subprocess.Popen | None = None

    @staticmethod
    def needs_fresh(cell: Cell) -> bool:
        """An import-time handler leaves state behind: a fresh kernel each run."""
        return cell.host != "jupyter-child" and split_strategy(cell.strategy)[0] == "c-handler-import"

    def plan(self, runs: list[tuple[Cell, int]]) -> dict:
        scale = self.window_scale
        items = []
        for cell, i in runs:
            item = {"id": cell.id, "mode": JUPYTER_HOSTS[cell.host], "loop_ms": PY_LOOP_MS}
            if cell.host == "jupyter-child":
                item.update(kind="child", probe=str(self.build_dir / "probes" / f"sigprobe-probe-{cell.strategy}"))
            else:
                strategy, nogil, same_cell = split_strategy(cell.strategy)
                item.update(kind="pyext", pyext_strategy=strategy, nogil=nogil, same_cell=same_cell)
                if self.needs_fresh(cell):
                    item["fresh"] = True
                    item["import_cell"] = not same_cell
            items.append(item)
        return {"runner": self.path(self.runner), "pyext_dir": self.path(self.interp.pyext_dir), "runs": items,
                "ready_ms": int(8000 * scale), "window_ms": int(100 * scale), "deadline_ms": int(10000 * scale),
                "kernel_timeout_s": 8 * scale, "kernel_start_timeout_s": self.kernel_start_s * scale,
                "fresh_kernels": self.fresh, "attach": self.attach}

    def run(self, runs: list[tuple[Cell, int]], on_outcome) -> dict:
        """Runs every (cell, repeat), the ones that need a fresh kernel spread
        among the others so the spare kernel the driver starts in the
        background is ready when one is taken; calls on_outcome(cell,
        outcome). Returns the versions."""
        runs = spread_fresh(runs, self.needs_fresh)
        plan = self.plan(runs)
        self.proc = subprocess.Popen([*self.launch, self.path(HERE / "jupyter_driver.py")], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True, env=self.env)
        threading.Thread(target=lambda err=self.proc.stderr: [sys.stderr.write(line) for line in err],
                         name="driver-stderr", daemon=True).start()
        self.proc.stdin.write(json.dumps(plan) + "\n")
        self.proc.stdin.flush()  # stdin stays open: the driver's lifeline
        versions: dict = {}
        it = iter(runs)
        try:
            for line in self.proc.stdout:
                msg = json.loads(line)
                if msg.get("ev") == "versions":
                    versions = {k: v for k, v in msg.items() if k != "ev"}
                    continue
                cell, _ = next(it)
                if msg.get("ev") == "error-outcome":
                    msg = error_outcome(cell, msg["reason"])
                on_outcome(cell, msg)
        finally:
            self.close()
        for cell, _ in it:  # the driver ended early
            on_outcome(cell, error_outcome(cell, "the Jupyter driver ended before this run"))
        return versions

    def close(self) -> None:
        p = self.proc
        if p is None:
            return
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
        self.proc = None


def unsupported_outcome(cell: Cell, reason: str) -> dict:
    o = error_outcome(cell, reason)
    o["verdict"] = "unsupported"
    return o


def run_all(runner: Path, interp: Interpreter, build_dir: Path, runs: list[tuple[Cell, int]], window_scale: float,
            jobs: int, on_outcome, fresh_kernels: bool = False) -> dict:
    """Runs the python-* runs in a thread pool and the kernel runs through the
    driver concurrently. Returns the facts for the results' `machine`."""
    from concurrent.futures import ThreadPoolExecutor

    py_runs = [(c, i) for c, i in runs if c.kind == "python"]
    k_runs = [(c, i) for c, i in runs if c.kind == "jupyter"]
    versions = dict(interp.facts)
    lock = threading.Lock()

    def report(cell, outcome):
        with lock:
            on_outcome(cell, outcome)

    session = None
    thread = None
    if k_runs:
        if not interp.has_jupyter:
            for c, _ in k_runs:
                report(c, unsupported_outcome(c, jupyter_missing_reason(interp)))
        else:
            session = JupyterSession(runner, interp, build_dir, window_scale, fresh_kernels)
            thread = threading.Thread(target=lambda: versions.update(session.run(k_runs, report)), daemon=True)
            thread.start()
    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs - (1 if thread else 0))) as pool:
            try:
                for (c, _), out in zip(py_runs, pool.map(lambda r: run_python_cell(runner, interp, r[0], window_scale),
                                                         py_runs)):
                    report(c, out)
            except BaseException:
                # Interrupted: end the running runners now rather than wait for their cells.
                terminate_runners()
                raise
        if thread:
            thread.join()
    finally:
        if session:
            session.close()
    return versions
