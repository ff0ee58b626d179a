"""`sigprobe check` in real kernels (jupyter: signal mode, jupyter-message:
message mode) of the interpreter checked, through remote/check_driver.py
run by that interpreter with its own jupyter_client and ipykernel."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .. import runlog, scratch

REMOTE = Path(__file__).resolve().parents[1] / "remote"
MODES = {"jupyter": "signal", "jupyter-message": "message"}
KERNEL_START_S = 60  # a kernel's start is not measured (slow on a loaded machine)


@dataclass
class Wine:
    """How the Windows CPython is run under Wine (check/winhost.py): launch
    is the command before a script's path, path a Linux path as Wine sees
    it, env the prefix's environment, scale for the kernel's start timeout,
    version Wine's (`wine --version`) for the document, cwd the folder the
    code runs in (None: this process's)."""
    launch: list
    path: Callable[[Path], str]
    env: dict
    scale: float = 3.0
    version: str = ""
    cwd: str | None = None


def run_kernels(python: str, runs: list[tuple[str, dict]], after_ms: int, timeout_s: float, on_run,
                wine: "Wine | None" = None, gate=None) -> dict:
    """Runs each (host, subject spec) of `runs`, in order, each in a fresh
    kernel (the next one starts while a run goes on); calls on_run(index,
    seen) for each. Returns the versions the driver reported ({"missing":
    ...} when jupyter_client is not there). wine: the driver is the Windows
    CPython's, under Wine. gate: called once the driver is starting (its
    imports overlap the caller's uninterrupted run); False: nothing runs,
    no run is reported, and {} is returned."""
    tmp = scratch.make_dir("sigprobe-jupyter-")
    indexes = iter(range(len(runs)))
    path = wine.path if wine else str
    plan = {"runs": [{"mode": MODES[h], "subject": spec} for h, spec in runs], "after_ms": after_ms,
            "timeout_s": timeout_s, "start_timeout_s": KERNEL_START_S * (wine.scale if wine else 1),
            "tmp": path(tmp)}
    launch = wine.launch if wine else [python]
    proc = subprocess.Popen([*launch, path(REMOTE / "check_driver.py")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env=wine.env if wine else None, cwd=wine.cwd if wine else None)
    runlog.relay(proc.stderr)
    if gate is not None and not gate():
        _end(proc)
        shutil.rmtree(tmp, ignore_errors=True)
        return {}
    versions: dict = {}
    try:
        proc.stdin.write(json.dumps(plan) + "\n")
        proc.stdin.flush()  # stdin stays open: the driver's lifeline
        for line in proc.stdout:
            msg = json.loads(line)
            if msg["ev"] == "versions":
                versions = {k: v for k, v in msg.items() if k != "ev"}
                if versions.get("missing"):
                    break
            elif msg["ev"] == "kernels":
                versions["kernels"] = {k: v for k, v in msg.items() if k != "ev"}
            elif msg["ev"] == "run":
                on_run(next(indexes), msg)
    finally:
        _end(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    for i in indexes:  # the driver ended early
        if versions.get("missing"):
            on_run(i, {"unsupported": f"{python} has no Jupyter ({versions['missing']}): "
                                      f"{python} -m pip install ipykernel jupyter_client"})
        else:
            on_run(i, {"error": "the Jupyter driver ended before this run"})
    return versions


def _end(proc: subprocess.Popen) -> None:
    """The driver's lifeline cut (it shuts its kernels down), then it reaped."""
    try:
        proc.stdin.close()
    except OSError:
        pass
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()


def run_by_mode(python: str, runs: list[tuple[str, dict]], after_ms: int, timeout_s: float, on_run,
                wine: "Wine | None" = None, gate=None) -> dict:
    """run_kernels for each interrupt mode at once, one driver per mode: a
    run of one mode never waits for a run of the other (every run needs a
    fresh kernel, and each driver starts its next one while a run goes on).
    on_run gets indexes into `runs`; the versions are the drivers', with
    their kernels' counts added up."""
    by_host: dict[str, list[int]] = {}
    for i, (host, _) in enumerate(runs):
        by_host.setdefault(host, []).append(i)
    found: list[dict] = []
    lock = threading.Lock()

    def one(indexes):
        def report(j, seen):
            with lock:
                on_run(indexes[j], seen)
        v = run_kernels(python, [runs[i] for i in indexes], after_ms, timeout_s, report, wine, gate)
        with lock:
            found.append(v)

    threads = [threading.Thread(target=one, args=(ix,), daemon=True) for ix in by_host.values()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    versions: dict = {}
    for v in found:
        counts = v.pop("kernels", None)
        versions.update(v)
        if counts:
            total = versions.setdefault("kernels", {})
            for key, n in counts.items():
                total[key] = total.get(key, 0) + n
    return versions
