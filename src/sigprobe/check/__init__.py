"""`sigprobe check`: is *this* code interruptible, under which host, where,
and why not. Runs the user's code (a subject) under the Python hosts and in
real kernels, interrupts it --after ms into the code, and writes the answer
as a results document whose cells are platform/host/code:NAME/delivery."""
from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..catalog import SUBJECT_PREFIX
from ..errors import BadInput
from ..results import document
from . import kernels, local
from .verdict import basename, conclusion, ending, judge

# host -> the delivery it gets (the matrix's words).
HOSTS = {"python-tty": "tty-intr", "python-no-tty": "kill", "console": "ctrl-c", "jupyter": "kernel-interrupt",
         "jupyter-message": "kernel-interrupt"}
# The hosts of a POSIX check (the default); a Windows one's are winhost.HOSTS.
POSIX_HOSTS = ("python-tty", "python-no-tty", "jupyter", "jupyter-message")
# Not a kernel: the code is the interpreter's main program (console: a Windows one's, on its own console).
LOCAL_HOSTS = ("python-tty", "python-no-tty", "console")


@dataclass
class Subject:
    name: str
    kind: str  # code, script, call
    code: str = ""
    path: str = ""
    args: list = field(default_factory=list)
    target: str = ""
    setup: str = ""

    def spec(self) -> dict:
        d = {"kind": self.kind, "name": self.name}
        if self.kind == "code":
            d["code"] = self.code
        elif self.kind == "script":
            d["path"], d["args"] = self.path, list(self.args)
        else:
            d["target"] = self.target
        setup = self.setup
        if self.kind == "call":
            setup = f"import {self.target.partition(':')[0]}\n" + setup
        if setup:
            d["setup"] = setup
        return d

    def shown(self) -> str:
        return {"code": self.code, "script": " ".join([self.path, *self.args]), "call": self.target}[self.kind]


def platform_name() -> str:
    """The matrix's name for this platform: linux, macos, windows, or
    windows-wine (Wine's ntdll exports wine_get_version, as the C runner asks)."""
    if sys.platform == "win32":
        import ctypes
        return "windows-wine" if hasattr(ctypes.WinDLL("ntdll"), "wine_get_version") else "windows"
    return "linux" if sys.platform.startswith("linux") else ("macos" if sys.platform == "darwin" else sys.platform)


def cell_id(platform: str, host: str, subject: Subject) -> str:
    return f"{platform}/{host}/{SUBJECT_PREFIX}{subject.name}/{HOSTS[host]}"


@dataclass
class Settings:
    python: str
    hosts: list
    after_ms: int = 1000
    timeout_s: float = 10.0
    repeat: int = 1
    jobs: int = 2


def _bad_code(seen: dict) -> str | None:
    """A subject that cannot run at all: one line, not a verdict per host."""
    f = seen.get("facts") or {}
    if f.get("outcome") == "bad-code":
        return f"the code cannot run: {f.get('error')}"
    if f.get("outcome") == "setup-failed":
        return f"the setup failed: {f.get('error')}"
    return None


def run_check(subject: Subject, s: Settings, progress=None, wine: "kernels.Wine | None" = None) -> dict:
    """Calibration (one uninterrupted run) beside the interrupted runs of
    every host; returns the results document. wine: the code runs in the
    Windows CPython under Wine (check/winhost.py; inside wine.wineserver),
    its kernels starting beside the uninterrupted run."""
    spec = subject.spec()
    if wine is not None and subject.kind == "script":
        spec["path"] = wine.path(spec["path"])
    stop = threading.Event()
    seen: dict[str, list] = {h: [] for h in s.hosts}
    calib: dict = {}
    versions: dict = {}
    lock = threading.Lock()

    def note(host, run):
        with lock:
            seen[host].append(run)
            if progress:
                progress(host, run)

    started = threading.Event()
    first: dict = {}

    def on_event(ev):
        if ev is None or ev["ev"] in ("start", "end"):
            if ev is not None and not first:
                first["facts"] = ev
            started.set()

    def calibrate():
        try:
            if wine is not None:
                from . import winhost
                calib.update(winhost.run_uninterrupted(wine, spec, s.timeout_s, stop, on_event))
            else:
                calib.update(local.run_local(s.python, spec, None, s.after_ms, s.timeout_s, stop, on_event))
        except Exception as e:  # the run could not even start: one line, never a wait for good
            calib["error"] = f"the uninterrupted run could not start: {type(e).__name__}: {e}"
            started.set()

    kernel_runs = [h for h in s.hosts if h not in LOCAL_HOSTS for _ in range(s.repeat)]
    decided = threading.Event()
    go = []

    def run_kernels(gate=None):
        versions.update(kernels.run_by_mode(s.python, [(h, spec) for h in kernel_runs], s.after_ms, s.timeout_s,
                                            lambda i, seen: note(kernel_runs[i], seen), wine, gate))

    kthread = None
    if wine is not None and kernel_runs:
        # Under Wine a kernel's start (15-25 s) dwarfs the rest: the drivers
        # start now, beside the uninterrupted run, and are given their plan
        # once that run's code has started (or told to stop, for bad code).
        kthread = threading.Thread(target=run_kernels, args=(lambda: decided.wait() and bool(go),), daemon=True)
        kthread.start()
    # The uninterrupted run first, until its code starts: code that cannot
    # run at all (a syntax error, a failing import) is one line, at once.
    calibration = threading.Thread(target=calibrate, daemon=True)
    calibration.start()
    try:
        started.wait()
        bad = _bad_code(first)
        if bad is None and not first:
            calibration.join()
            if calib.get("error"):
                bad = calib["error"]
    except BaseException:
        stop.set()
        decided.set()
        raise
    if bad is None:
        go.append(True)
    decided.set()
    if bad:
        calibration.join()
        if kthread:
            kthread.join()
        raise BadInput(bad)
    local_runs = [h for h in s.hosts if h in LOCAL_HOSTS for _ in range(s.repeat)]
    if kernel_runs and kthread is None:
        kthread = threading.Thread(target=run_kernels, daemon=True)
        kthread.start()
    try:
        with ThreadPoolExecutor(max_workers=max(1, s.jobs - 1 - (1 if kthread else 0))) as pool:
            futures = [pool.submit(lambda h=h: note(h, run_local(s.python, spec, h, s.after_ms, s.timeout_s, stop,
                                                                    wine)))
                       for h in local_runs]
            for f in futures:
                f.result()
        if kthread:
            kthread.join()
        calibration.join()
    except BaseException:
        stop.set()
        raise
    cf = calib.get("facts") or {}
    base = None  # the uninterrupted run, when it ended within the timeout
    if cf.get("t_end") is not None and cf.get("t_start") is not None and not calib.get("hung"):
        base = {"wall_ns": cf["t_end"] - cf["t_start"], "cpu_ns": cf.get("cpu_ns"), **ending(cf)}
    machine = {"python": cf.get("python") or versions.get("python"), "python_executable": s.python,
               "ipykernel": versions.get("ipykernel"), "jupyter_client": versions.get("jupyter_client")}
    if wine is not None:
        machine["wine"] = wine.version
    settings = {"after_ms": s.after_ms, "timeout_s": s.timeout_s, "repeat": s.repeat, "jobs": s.jobs}
    return build_document(subject, seen, base, settings, machine, "windows-wine" if wine is not None else None)


def run_local(python: str, spec: dict, host: str, after_ms: int, timeout_s: float, stop: threading.Event,
              wine: "kernels.Wine | None" = None) -> dict:
    """One interrupted run of a local host: the Windows console's under Wine,
    a POSIX one's (local.py) otherwise."""
    if wine is not None:
        from . import winhost
        return winhost.run_console(wine, spec, after_ms, timeout_s, stop)
    return local.run_local(python, spec, host, after_ms, timeout_s, stop)


def build_document(subject: Subject, seen: dict, base: dict | None, settings: dict, machine: dict,
                   platform: str | None = None) -> dict:
    """The results document of a check: seen is host -> what each run saw,
    base the uninterrupted run ({"wall_ns", "cpu_ns"}, None: it did not end);
    platform: the one the code ran on (default: this one)."""
    platform = platform or platform_name()
    cells = []
    for host, host_runs in seen.items():
        runs = [judge(host, r, base, settings["after_ms"]) for r in host_runs]
        for r in runs:
            r["strategy"], r["delivery"] = SUBJECT_PREFIX + subject.name, HOSTS[host]
        cell = document.aggregate(cell_id(platform, host, subject), runs)
        cell["conclusion"] = conclusion(host, cell)
        cells.append(cell)
    doc = document.document(platform, document.machine_info({}, machine), settings, cells)
    doc["subject"] = {"name": subject.name, "kind": subject.kind, "code": subject.shown(),
                      **({"setup": subject.setup} if subject.setup else {}),
                      "uninterrupted_ms": None if base is None else round(base["wall_ns"] / 1e6, 1),
                      "uninterrupted_cpu_ms": None if base is None or base["cpu_ns"] is None
                      else round(base["cpu_ns"] / 1e6, 1)}
    # The subject first: a reader sees what was checked before how.
    order = ["schema", "platform", "subject"]
    return {**{k: doc[k] for k in order}, **{k: v for k, v in doc.items() if k not in order}}


def text(doc: dict) -> str:
    """The report a person reads: one block per host."""
    subj = doc["subject"]
    lines = [f"sigprobe check: {subj['name']} ({subj['kind']}: {subj['code']})",
             f"  uninterrupted: {'did not end within the timeout' if subj['uninterrupted_ms'] is None else str(subj['uninterrupted_ms']) + ' ms'};"
             f" interrupted {doc['settings']['after_ms']} ms into the code; python "
             f"{doc['machine'].get('python')}"
             + (f", ipykernel {doc['machine']['ipykernel']}" if doc["machine"].get("ipykernel") else "")
             + (f"; Windows under {doc['machine']['wine']}" if doc["machine"].get("wine") else "")]
    for cell in doc["cells"]:
        run = cell["runs"][0]
        c = run.get("check", {})
        verdict = cell["verdict"] + (f" ({document.flaky_rate(cell)})" if cell["verdict"] == "flaky" else "")
        lines.append(f"\n{cell['host']:16} {verdict}")
        if c.get("at_interrupt"):
            lines.append(f"  at the interrupt: {c['at_interrupt']}" + (" — in native code" if c.get("native") else ""))
        if c.get("gil_held_ms"):
            lines.append(f"  GIL held without a release: {c['gil_held_ms']:.0f} ms")
        if c.get("ki_latency_ms") is not None:
            where = c.get("raised_at")
            lines.append(f"  KeyboardInterrupt {c['ki_latency_ms']} ms after the interrupt"
                         + (f", at {basename(where['file'])}:{where['line']} in {where['function']}"
                            if where else ""))
        owners = c.get("sigint_owner") or {}
        if owners:
            from .verdict import owner_words
            parts = [f"{k.replace('_', ' ')}: {owner_words(v[0]) if v[0] else v[1]}" for k, v in owners.items()]
            lines.append("  SIGINT's owner — " + "; ".join(parts))
        lines.append(f"  => {cell['conclusion']}")
    return "\n".join(lines) + "\n"
