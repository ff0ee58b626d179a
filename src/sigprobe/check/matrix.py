"""The built-in subjects as cells of `sigprobe run` (`--only subjects`):
platform/host/code:NAME/delivery, run by sigprobe check's machinery one
subject at a time (its uninterrupted run once, then its interrupted runs),
each run handed to the run's checkpoint like any other cell's."""
from __future__ import annotations

import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor

from ..catalog import SUBJECT_PREFIX, Cell
from ..errors import BuildFailed
from . import HOSTS, LOCAL_HOSTS, POSIX_HOSTS, cysignals_ext, kernels, local, run_local
from .subjects import AFTER_MS, BUILTINS, subject
from .verdict import ending, judge

TIMEOUT_S = 10.0
# Runs of subjects that wait (a sleep, a lock, a pipe) at once, beside the busy ones' `jobs`:
# they leave the cores to the rest. Under Wine every run's start is a Windows process's, so
# `jobs` there too.
WAITING_AT_ONCE = 10
# A run is hung when still going this many times its uninterrupted run's
# length after its start (at least TIMEOUT_S): busy subjects stretch when
# runs share the cores, and that is no hang.
STRETCH = 5


def subject_cells(platform: str) -> list[Cell]:
    """Every built-in subject under every host of the platform: on Windows
    the console's Ctrl+C and its kernels (the python-* hosts are POSIX ones)."""
    from .winhost import HOSTS as WINDOWS_HOSTS
    hosts = {h: d for h, d in HOSTS.items() if h in (WINDOWS_HOSTS if platform.startswith("windows") else POSIX_HOSTS)}
    return [Cell(f"{platform}/{host}/{SUBJECT_PREFIX}{name}/{delivery}", platform, host, SUBJECT_PREFIX + name,
                 delivery, kind="subject")
            for name in BUILTINS for host, delivery in hosts.items()]


def _outcome(cell: Cell, rec: dict) -> dict:
    return {"id": cell.id, **rec, "host": cell.host, "strategy": cell.strategy, "delivery": cell.delivery}


def _unsupported(cell: Cell, reason: str) -> dict:
    return {"id": cell.id, "host": cell.host, "strategy": cell.strategy, "delivery": cell.delivery,
            "verdict": "unsupported", "reason": reason}


def _has(python: str, module: str, wine: kernels.Wine | None = None) -> bool:
    return subprocess.run([*(wine.launch if wine else [python]), "-c", f"import {module}"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                          env=wine.env if wine else None).returncode == 0


def in_lanes(items: list, busy, fn, busy_lanes: int, waiting_lanes: int) -> list:
    """fn(item) for every item, the busy ones (busy(item)) busy_lanes at a
    time, the others waiting_lanes at a time beside them; the results in
    the items' order (the first exception raised, once all have ended)."""
    with ThreadPoolExecutor(max_workers=busy_lanes) as b, ThreadPoolExecutor(max_workers=waiting_lanes) as w:
        futures = [(b if busy(item) else w).submit(fn, item) for item in items]
        return [f.result() for f in futures]


def run_subjects(python: str, no_jupyter: str | None, runs: list, jobs: int, on_outcome,
                 wine: kernels.Wine | None = None) -> dict:
    """Runs every (cell, repeat) of subject cells with the interpreter
    `python`; no_jupyter: None when it can run kernels, else why not. Each
    subject's uninterrupted run first (all side by side), then the kernel runs
    of every subject through one driver per interrupt mode (its next kernel
    starts while a run goes on) beside the plain-interpreter runs. wine: the
    Windows CPython under Wine (check/winhost.py), each subject in its
    Windows form, a POSIX-only one unsupported. Returns the kernels' drivers'
    versions."""
    stop = threading.Event()
    names = list(dict.fromkeys(c.strategy[len(SUBJECT_PREFIX):] for c, _ in runs))
    # name -> why its cells cannot run: ("unsupported" | "error", reason)
    missing = {}
    if wine is not None:
        missing = {name: ("unsupported", f"POSIX only: {BUILTINS[name].what} has no Windows form here")
                   for name in names if BUILTINS[name].posix_only}
    how = ("requirements-win.txt, the pinned Jupyter stack of the project's Windows CPython, has no {}"
           if wine is not None else "pip install {}")
    missing.update({name: ("unsupported", f"{BUILTINS[name].needs} is not installed for {python} "
                                          f"({how.format(BUILTINS[name].needs)})")
                    for name in names if name not in missing and BUILTINS[name].needs
                    and not _has(python, BUILTINS[name].needs, wine)})
    specs = {}
    for name in names:
        if name in missing:
            continue
        try:
            specs[name] = subject(name, python, windows=wine is not None).spec()
        except cysignals_ext.Unavailable as e:
            missing[name] = ("unsupported", str(e))
        except BuildFailed as e:
            missing[name] = ("error", str(e))
    def calibrate(n):
        if n in missing:
            return None
        if wine is not None:
            from . import winhost
            return winhost.run_uninterrupted(wine, specs[n], TIMEOUT_S, stop)
        return local.run_local(python, specs[n], None, AFTER_MS, TIMEOUT_S, stop)

    def by_load(items, name_of, fn, lanes):
        """in_lanes with the busy subjects `lanes` at a time; under Wine the waiting ones too."""
        return in_lanes(items, lambda item: BUILTINS[name_of(item)].busy, fn, lanes,
                        lanes if wine is not None else WAITING_AT_ONCE)

    calibrated = dict(zip(names, by_load(names, lambda n: n, calibrate, jobs)))
    base, todo = {}, []
    for cell, _ in runs:
        name = cell.strategy[len(SUBJECT_PREFIX):]
        calib = calibrated[name]
        f = (calib or {}).get("facts") or {}
        if name in missing:
            verdict, reason = missing[name]
            on_outcome(cell, {**_unsupported(cell, reason), "verdict": verdict})
        elif f.get("outcome") in ("bad-code", "setup-failed") or f.get("t_end") is None or calib.get("hung"):
            why = f.get("error") or "its uninterrupted run did not end within the timeout"
            on_outcome(cell, {**_unsupported(cell, f"the subject cannot run here: {why}"), "verdict": "error"})
        elif cell.host not in LOCAL_HOSTS and no_jupyter is not None:
            on_outcome(cell, _unsupported(cell, no_jupyter))
        else:
            base[name] = {"wall_ns": f["t_end"] - f["t_start"], "cpu_ns": f.get("cpu_ns"), **ending(f)}
            todo.append((cell, name))
    timeout = {n: max(TIMEOUT_S, STRETCH * b["wall_ns"] / 1e9) for n, b in base.items()}
    local_runs = [(c, n) for c, n in todo if c.host in LOCAL_HOSTS]
    kernel_runs = [(c, n) for c, n in todo if c.host not in LOCAL_HOSTS]

    def judged(cell, name, seen):
        on_outcome(cell, _outcome(cell, judge(cell.host, seen, base[name], AFTER_MS)))

    kthread = None
    versions: dict = {}
    if kernel_runs:
        kthread = threading.Thread(target=lambda: versions.update(kernels.run_by_mode(
            python, [(c.host, specs[n]) for c, n in kernel_runs], AFTER_MS, max(timeout.values()),
            lambda i, seen: judged(*kernel_runs[i], seen), wine)), daemon=True)
        kthread.start()
    try:
        by_load(local_runs, lambda r: r[1],
                lambda r: judged(*r, run_local(python, specs[r[1]], r[0].host, AFTER_MS, timeout[r[1]], stop, wine)),
                max(1, jobs - (1 if kthread else 0)))
        if kthread:
            kthread.join()
    except BaseException:
        stop.set()
        raise
    return versions
